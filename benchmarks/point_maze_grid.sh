#!/usr/bin/env bash
# Point Maze, 5 seeds, every setting a default: TRIRL (the feature preset) and AIRL with
# the paper's Table 1 columns (Training / Retraining / Transfer to point_maze_flipped),
# then TRIRL's fitted model, GAIL and AMP for the training column. One `trirl compare`
# output directory; rerunning resumes (finished cells and stages are skipped).
# Figures: docs/benchmarks.md, "Table 1 from the defaults, 5 new training seeds".
#
#   bash benchmarks/point_maze_grid.sh [OUT] [SEEDS]
set -euo pipefail
out=${1:-runs/compare-pm5}
seeds=${2:-5}
echo "# $(date -u +%FT%TZ) $(uname -n) $(nproc) cores: $0 $out $seeds"
trirl compare --envs point_maze --algos trirl_features,airl --seeds "$seeds" --retrain \
    --transfer point_maze=point_maze_flipped --out "$out"
trirl compare --envs point_maze --algos trirl,gail,amp --seeds "$seeds" --out "$out"
