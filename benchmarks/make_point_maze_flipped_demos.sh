#!/usr/bin/env bash
# Regenerates examples/point_maze_flipped.npz: the flipped maze's expert/random returns
# are the reference of the normalized transfer score (`trirl transfer --env
# point_maze_flipped`). Seed 0 of this 3-seed run is the policy the demos come from.
set -euo pipefail
trirl expert --env point_maze_flipped --seeds 3 --seed 0 --run-dir runs/point_maze_flipped-expert
trirl evaluate runs/point_maze_flipped-expert --episodes 100
trirl demos runs/point_maze_flipped-expert --episodes 30 --seed-index 0 -o examples/point_maze_flipped.npz
