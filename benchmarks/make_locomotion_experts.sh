#!/usr/bin/env bash
# Experts and 30-episode demonstrations for the locomotion suite (issue: experts and
# demos made by trirl itself). Usage: benchmarks/make_locomotion_experts.sh [ENV ...]
# [default: all]; STEPS=N overrides the budget (default: each env's expert preset).
# Demos land in demos/<env>.npz (not committed when > 5 MB); expert and random returns
# are in each file's metadata (docs/demo-format.md). An interrupted run
# resumes: `trirl expert --resume runs/<env>-expert`.
set -euo pipefail
envs=("$@")
[ ${#envs[@]} -eq 0 ] && envs=(halfcheetah halfcheetah_wind halfcheetah_mars hopper walker2d
                              ant ant_disabled humanoid)
mkdir -p demos
for env in "${envs[@]}"; do
  run=runs/${env}-expert
  if [ -f "$run/config.json" ]; then
    trirl expert --resume "$run"
  else
    trirl expert --env "$env" --seed 0 --run-dir "$run" ${STEPS:+--steps "$STEPS"}
  fi
  trirl evaluate "$run" --episodes 30
  trirl demos "$run" --episodes 30 --seed-index 0 -o "demos/${env}.npz"
done
