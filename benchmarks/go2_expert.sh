#!/usr/bin/env bash
# Issue 6: the Go2 expert (PPO on the go2 task reward) and its 30 demonstrations, the
# demonstrations TRIRL learns from on Go2 (paper Table 8). Results: docs/benchmarks.md
# "Go2 expert". Usage: benchmarks/go2_expert.sh [STEPS] [RUN_DIR]
set -euo pipefail
STEPS=${1:-3000000}
RUN=${2:-runs/go2-expert}
mkdir -p demos
trirl assets fetch go2
trirl expert --env go2 --steps "$STEPS" --run-dir "$RUN"
trirl evaluate "$RUN" --episodes 30
trirl demos "$RUN" --episodes 30 -o demos/go2.npz
