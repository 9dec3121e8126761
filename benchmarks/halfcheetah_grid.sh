#!/usr/bin/env bash
# HalfCheetah, 5 seeds: TRIRL (the feature preset: a reward linear in forward velocity
# and action cost) and AIRL with Table 1's columns, then GAIL and AMP (training), all on
# the same PPO, discriminator and env. Table 1: each seed's reward re-optimised by a fresh PPO
# policy on halfcheetah (Retraining), halfcheetah_wind and halfcheetah_mars (Transfer),
# at the expert preset's initial action std 0.2 (benchmarks/halfcheetah_table1.sh says
# why). The learners start at action std 0.6 (`--set ppo.init_std=0.6`: the PPO default
# when this grid was measured; HalfCheetah's learn preset has started at 0.2 since, see
# halfcheetah_grid_std02.sh). One `trirl compare` output directory; rerunning resumes.
# Figures: docs/benchmarks.md, "HalfCheetah grid, 5 seeds".
#
#   bash benchmarks/halfcheetah_grid.sh [OUT] [SEEDS] [STEPS] [RETRAIN_STEPS]
set -euo pipefail
out=${1:-runs/compare-hc5}
seeds=${2:-5}
steps=${3:-1000000}
retrain_steps=${4:-1000000}
echo "# $(date -u +%FT%TZ) $(uname -n) $(nproc) cores: $0 $out $seeds $steps $retrain_steps"
trirl compare --envs halfcheetah --algos trirl_features,airl --seeds "$seeds" \
    --steps "$steps" --set ppo.init_std=0.6 --retrain --transfer halfcheetah=halfcheetah_wind \
    --transfer halfcheetah=halfcheetah_mars --retrain-steps "$retrain_steps" \
    --retrain-set init_std=0.2 --out "$out"
trirl compare --envs halfcheetah --algos gail,amp --seeds "$seeds" --steps "$steps" \
    --set ppo.init_std=0.6 --out "$out"
