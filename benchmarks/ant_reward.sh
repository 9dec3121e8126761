#!/usr/bin/env bash
# Ant -> Ant Disabled end to end (issue 30): how examples/ant.npz, examples/ant_disabled.npz
# and examples/ant.reward were made, and the Training / Retraining / Transfer figures of
# docs/benchmarks.md, "Ant -> Ant Disabled".
#   1. PPO experts on the true rewards (the expert preset: 10 epochs, std 0.2, lr 1e-4,
#      3M steps, seed 0) and 30 deterministic demo episodes each, only episodes that did
#      not fall (--drop-terminated: a fall in the demos tells the discriminator that the
#      absorbing state is the expert's).
#   2. Feature-based TRIRL from examples/ant.npz with Ant's learn preset (trirl/presets.py),
#      LEARN_STEPS steps, exported as the reward file.
#   3. The reward re-optimised by fresh PPO policies on ant (retrain) and on ant_disabled
#      (transfer), RETRAIN_STEPS each, twice: with the learner's recorded PPO/TRPL steps
#      (the commands' default) and with the expert preset's PPO steps (no trust region,
#      10 epochs, rollouts of 16, no entropy bonus: the oracle's optimiser); every run
#      evaluated over 30 episodes (score, falls, forward distance).
# Every step resumes or skips what an interrupted run of this script left.
#
#   bash benchmarks/ant_reward.sh [OUT] [LEARN_STEPS] [RETRAIN_STEPS] [SEEDS]
# (defaults: what docs/benchmarks.md reports: 1M, 1M, 1 seed)
set -euo pipefail
out=${1:-runs/ant}
learn_steps=${2:-1000000}
retrain_steps=${3:-1000000}
seeds=${4:-1}
expert_ppo=(--set trust_region=none --set num_epochs=10 --set rollout_length=16
            --set entropy_coef=0)
mkdir -p "$out"
echo "# $(date -u +%FT%TZ) $(uname -n) $(nproc) cores: $0 $out $learn_steps $retrain_steps $seeds"

for env in ant ant_disabled; do
    run="$out/$env-expert"
    if [ -f "$run/evaluation.json" ]; then :
    else
        if [ -f "$run/config.json" ]; then trirl expert --resume "$run"
        else trirl expert --env "$env" --seed 0 --run-dir "$run"; fi
        trirl evaluate "$run" --episodes 30 --json > "$run/evaluation.json"
    fi
    [ -f "$out/$env.npz" ] || trirl demos "$run" --episodes 30 --drop-terminated -o "$out/$env.npz"
done

learn="$out/learn"
if [ -f "$learn/config.json" ]; then trirl learn --resume "$learn" --steps "$learn_steps"
else trirl learn --demos "$out/ant.npz" --reward-model features --seeds "$seeds" --seed 0 \
        --steps "$learn_steps" --run-dir "$learn"
fi
trirl evaluate "$learn" --episodes 30 --json > "$learn/evaluation.json"
[ -f "$out/ant.reward" ] || trirl export "$learn" -o "$out/ant.reward"

reoptimised=()
for steps in learner expert-ppo; do
    for env in ant ant_disabled; do
        run="$out/$env-reoptimised-$steps"
        reoptimised+=("$env-reoptimised-$steps")
        cmd=transfer; [ "$env" = ant ] && cmd=retrain
        ppo=(); [ "$steps" = expert-ppo ] && ppo=("${expert_ppo[@]}")
        if [ -f "$run/evaluation.json" ]; then continue; fi
        if [ -f "$run/config.json" ]; then trirl "$cmd" --resume "$run"
        else trirl "$cmd" --reward "$out/ant.reward" --env "$env" --demos "$out/$env.npz" \
                --seeds "$seeds" --steps "$retrain_steps" ${ppo[@]+"${ppo[@]}"} --run-dir "$run"
        fi
        trirl evaluate "$run" --episodes 30 --json > "$run/evaluation.json"
    done
done
python - "$out" "${reoptimised[@]}" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
for name in ["ant-expert", "ant_disabled-expert", "learn", *sys.argv[2:]]:
    ev = json.loads((out / name / "evaluation.json").read_text())
    for i, s in enumerate(ev["per_seed"]):
        score = s["normalized_score"]
        print(f"{name:26s} seed {i}: return {s['return_mean']:9.1f} +- {s['return_std']:7.1f}  "
              f"score {score if score is None else round(score, 3)}  falls {s['terminated_fraction']:.0%}  "
              f"forward {s['forward_distance_mean']:6.1f} +- {s['forward_distance_std']:5.1f} m")
PY
