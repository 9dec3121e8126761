#!/usr/bin/env bash
# The shipped Ant reward (examples/ant.reward) re-optimised by fresh PPO policies for
# longer than its 1M-step training budget (issue 30): transfer to ant_disabled with the
# learner's TRPL steps, the same with TR-loss steps (--kl-penalty 80 -> 0), and
# retraining on ant; each evaluated over 30 deterministic episodes (score against the
# bundled demos' expert, falls, forward distance). Interrupted runs resume.
#
#   bash benchmarks/ant_reoptimise_long.sh [OUT] [STEPS]     (defaults: runs/ant-long 3000000)
set -euo pipefail
out=${1:-runs/ant-long}
steps=${2:-3000000}
mkdir -p "$out"
echo "# $(date -u +%FT%TZ) $(uname -n) $(nproc) cores: $0 $out $steps"
run_one() {  # name, command, extra flags...
    local run="$out/$1" cmd=$2; shift 2
    [ -f "$run/evaluation.json" ] && return
    if [ -f "$run/config.json" ]; then trirl "$cmd" --resume "$run" --steps "$steps"
    else trirl "$cmd" --reward examples/ant.reward --seeds 1 --steps "$steps" --run-dir "$run" "$@"
    fi
    trirl evaluate "$run" --episodes 30 --json > "$run/evaluation.json"
}
run_one ant_disabled-transfer transfer --env ant_disabled
run_one ant_disabled-transfer-kl transfer --env ant_disabled --kl-penalty 80
run_one ant-retrain retrain
for name in ant_disabled-transfer ant_disabled-transfer-kl ant-retrain; do
    python - "$out/$name/evaluation.json" "$name" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["per_seed"][0]
print(f"{sys.argv[2]:26s} score {s['normalized_score']:.3f}  return {s['return_mean']:8.1f}  "
      f"falls {s['terminated_fraction']:.0%}  forward {s['forward_distance_mean']:6.1f} "
      f"+- {s['forward_distance_std']:5.1f} m")
PY
done
