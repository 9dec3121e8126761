#!/usr/bin/env bash
# Issue 6: TRIRL from observation-only motion capture on the Unitree G1 (g1_walk), on
# the synthetic gait (real motion capture is brought by the user: trirl demos convert
# --from loco-mujoco THEIR_FILE.npz). Results: docs/benchmarks.md "G1 from motion capture".
# Usage: benchmarks/g1_walk.sh [STEPS] [RUN_DIR]   (Ctrl-C saves; trirl learn --resume RUN_DIR)
set -euo pipefail
STEPS=${1:-1000000}
RUN=${2:-runs/g1-walk}
mkdir -p demos
trirl assets fetch g1
# 10 clips of 20 s (200 s in all: 10 x 1000 control steps at 50 Hz), 1 m/s, different phases
trirl demos synthetic-gait -o demos/g1_gait_locomujoco.npz --speed 1.0 --seconds 200 --segments 10
trirl demos convert --from loco-mujoco demos/g1_gait_locomujoco.npz -o demos/g1_walk.npz --env g1_walk
# observation-only demos: the discriminator is D(s, s') without a flag
trirl learn --demos demos/g1_walk.npz --steps "$STEPS" --run-dir "$RUN"
trirl evaluate "$RUN" --episodes 20
trirl plot "$RUN"
trirl export "$RUN" -o "$RUN.reward"
