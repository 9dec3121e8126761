#!/usr/bin/env bash
# HalfCheetah, paper Table 1 layout: Training / Retraining / Transfer to halfcheetah_wind
# (W) and halfcheetah_mars (MG), feature-based TRIRL (the paper's Table 1 model) on the
# env's base features -- forward velocity and action cost -- from the bundled demos
# (examples/halfcheetah.npz, expert 7,238). MODEL "linear" (default): HalfCheetah's
# feature preset, a reward linear in the features; "encoder": the paper's, an encoder of
# the features (the discriminator's default 256-256-256 MLP, lr 2e-4) and a linear reward.
# Every training seed's reward is exported and re-optimised once on each env by a fresh
# PPO policy (`trirl retrain`'s default seed): the learner's PPO and TRPL settings, but
# starting at the expert preset's action std 0.2 instead of 0.6 (the learner's std takes
# ~1M steps to shrink to 0.2 under the trust region: a CPU retraining budget cannot
# spend that). The learner itself starts at 0.6 (`--set ppo.init_std=0.6`: the PPO
# default when these figures were measured; HalfCheetah's learn preset starts at 0.2 now).
# Figures: docs/benchmarks.md, "HalfCheetah: Training / Retraining / Transfer".
#
#   bash benchmarks/halfcheetah_table1.sh [LEARN_STEPS] [RETRAIN_STEPS] [OUT] [MODEL]
set -euo pipefail
learn_steps=${1:-1500000}
retrain_steps=${2:-1000000}
out=${3:-runs/hc-table1-linear}
model=${4:-linear}
case "$model" in
    linear) model_set=() ;;
    encoder) model_set=(--set disc.hidden=256,256,256 --set disc.learning_rate=2e-4) ;;
    *) echo "MODEL must be linear or encoder (got $model)" >&2; exit 2 ;;
esac
seeds=3
mkdir -p "$out"
echo "# $(date -u +%FT%TZ) $(uname -n) $(nproc) cores: $0 $learn_steps $retrain_steps $out $model"

# Every step resumes (or skips) what an interrupted run of this script left.
if [ -f "$out/learn/config.json" ]; then trirl learn --resume "$out/learn"
else trirl learn --env halfcheetah --reward-model features --seeds $seeds \
        --steps "$learn_steps" --set ppo.init_std=0.6 ${model_set[@]+"${model_set[@]}"} --run-dir "$out/learn"
fi

runs=("$out/learn")
for i in $(seq 0 $((seeds - 1))); do
    reward="$out/seed$i.reward"
    [ -f "$reward" ] || trirl export "$out/learn" --seed-index "$i" -o "$reward"
    for env in halfcheetah halfcheetah_wind halfcheetah_mars; do
        run="$out/$env-seed$i"
        cmd=transfer; [ "$env" = halfcheetah ] && cmd=retrain
        if [ -f "$run/evaluation.json" ]; then :
        elif [ -f "$run/config.json" ]; then trirl "$cmd" --resume "$run"
        else trirl "$cmd" --reward "$reward" --env "$env" --seeds 1 --steps "$retrain_steps" \
                --set init_std=0.2 --run-dir "$run"
        fi
        runs+=("$run")
    done
done
trirl report "${runs[@]}" -o "$out/report"
cat "$out/report/report.md"
