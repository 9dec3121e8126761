#!/usr/bin/env bash
# Regenerates examples/point_maze.npz (the bundled demos) and the expert figure in
# docs/benchmarks.md. Seed 0 of this 3-seed run is the policy the demos come from.
set -euo pipefail
trirl expert --env point_maze --seeds 3 --seed 0 --run-dir runs/point_maze-expert
trirl evaluate runs/point_maze-expert --episodes 100
trirl demos runs/point_maze-expert --episodes 30 --seed-index 0 -o examples/point_maze.npz
