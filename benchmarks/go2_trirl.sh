#!/usr/bin/env bash
# Issue 6: TRIRL on the Unitree Go2 from the expert's 30 demonstrations (state-action, as
# in the paper's Table 8; benchmarks/go2_expert.sh makes demos/go2.npz), with the robot
# preset (networks 512-256-128, App. C.5), then the exported reward re-optimised by a
# fresh policy. Results: docs/benchmarks.md "TRIRL on Go2".
# Usage: benchmarks/go2_trirl.sh [STEPS] [RUN_DIR] [RETRAIN_STEPS]
#   (Ctrl-C saves; trirl learn --resume RUN_DIR)
set -euo pipefail
STEPS=${1:-1000000}
RUN=${2:-runs/go2-trirl}
RETRAIN_STEPS=${3:-$STEPS}
echo "# $(date -u +%FT%TZ) $(uname -n) $(nproc) cores: $0 $STEPS $RUN $RETRAIN_STEPS"
trirl learn --env go2 --demos demos/go2.npz --steps "$STEPS" --run-dir "$RUN"
trirl evaluate "$RUN" --episodes 30
trirl plot "$RUN"
trirl export "$RUN" -o "$RUN.reward"
trirl retrain --reward "$RUN.reward" --seeds 1 --steps "$RETRAIN_STEPS" --run-dir "$RUN-retrain"
trirl evaluate "$RUN-retrain" --episodes 30
