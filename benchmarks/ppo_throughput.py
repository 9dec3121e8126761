"""End-to-end PPO throughput: trirl's PPO vs brax's ``ppo.train`` in the same run.

Both train on the same trirl MJX environment (brax through benchmarks/brax_adapter.py)
with the same batch (num_envs x rollout_length transitions per iteration), the same
3 x 256 tanh networks, 4 epochs of 512-transition minibatches, observation
normalisation, Adam 3e-4 and grad clip 1.0. Compilation is excluded on both sides:

* trirl: env steps of iterations 2..N divided by their wall time (``block_until_ready``
  after each iteration, as the real training loop syncs once per iteration to log);
* brax: its own ``training/sps`` (epoch time without brax's per-epoch evaluation), the
  median over epochs after the first; its end-to-end rate including evaluations is
  reported too.

The runs alternate (trirl, brax, trirl, brax, ...) so that background load on a shared
machine hits both alike; the ratio is computed per round and its median reported.
brax runs in its own virtualenv (benchmarks/README.md, "Peer: brax"):

    python benchmarks/ppo_throughput.py --env point_maze --num-envs 256 \
        --steps 600000 --rounds 2 --brax-python /work/venvs/brax/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time

import jax

from trirl import envs
from trirl.ppo import PPO, PPOConfig

from _report import write_json  # sibling module (benchmarks/ is sys.path[0])

HERE = os.path.dirname(os.path.abspath(__file__))


def run_trirl(env_name: str, num_envs: int, rollout_length: int, steps: int, seed: int) -> dict:
    env = envs.make(env_name)
    cfg = PPOConfig(num_envs=num_envs, rollout_length=rollout_length)
    ppo = PPO(env, cfg)
    iterate = jax.jit(jax.vmap(ppo.iteration))
    state = jax.jit(jax.vmap(ppo.init))(jax.random.split(jax.random.PRNGKey(seed), 1))
    t0 = time.perf_counter()
    state, metrics = iterate(state)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    iterations = max(2, steps // cfg.batch_size)
    t0 = time.perf_counter()
    for _ in range(iterations - 1):
        state, metrics = iterate(state)
        jax.block_until_ready(metrics)
    wall = time.perf_counter() - t0
    return {"steps_per_s": (iterations - 1) * cfg.batch_size / wall, "compile_s": compile_s,
            "iterations": iterations, "batch": cfg.batch_size}


def run_brax(python: str, env_name: str, num_envs: int, rollout_length: int, steps: int,
             seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "brax.json")
        cmd = [python, os.path.join(HERE, "brax_peer.py"), "--env", env_name,
               "--num-envs", str(num_envs), "--unroll-length", str(rollout_length),
               "--total-steps", str(steps), "--num-evals", "4", "--seed", str(seed),
               "--json", out]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        with open(out) as f:
            result = json.load(f)
    return {"steps_per_s": result["train_sps"], "end_to_end_steps_per_s": result["steps_per_s"],
            "compile_s": result.get("compile_s")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="point_maze")
    p.add_argument("--num-envs", type=int, default=256)
    p.add_argument("--rollout-length", type=int, default=16)
    p.add_argument("--steps", type=int, default=600_000, help="env steps per run")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--brax-python", default="/work/venvs/brax/bin/python")
    p.add_argument("--json", default=None)
    args = p.parse_args()

    rounds = []
    for r in range(args.rounds):
        t = run_trirl(args.env, args.num_envs, args.rollout_length, args.steps, args.seed)
        b = run_brax(args.brax_python, args.env, args.num_envs, args.rollout_length, args.steps,
                     args.seed)
        ratio = t["steps_per_s"] / b["steps_per_s"]
        rounds.append({"trirl": t, "brax": b, "ratio": ratio})
        print(f"round {r + 1}: trirl {t['steps_per_s']:,.0f} steps/s, brax train "
              f"{b['steps_per_s']:,.0f} (end to end {b['end_to_end_steps_per_s']:,.0f}) "
              f"-> trirl/brax {ratio:.2f}x", flush=True)
    summary = {"env": args.env, "num_envs": args.num_envs, "rollout_length": args.rollout_length,
               "steps": args.steps, "median_ratio": statistics.median(x["ratio"] for x in rounds),
               "rounds": rounds, "jax": jax.__version__, "backend": jax.default_backend(),
               "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine()}
    print(f"median trirl/brax throughput ratio: {summary['median_ratio']:.2f}x")
    write_json(args.json, {k: v for k, v in summary.items() if k != "rounds"}, summary["rounds"])


if __name__ == "__main__":
    main()
