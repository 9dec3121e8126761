"""Throughput of seeds trained as one vmapped program (issue 7): env steps/s summed over
seeds for 1, 4 and 16 seeds of `trirl expert` and `trirl learn`, in one run.

Each (command, env, seeds) program is the one the CLI runs (`--seeds N`: the iteration
vmapped over a leading seed axis), compiled once; timed rounds alternate between the
seed counts so machine load hits all of them alike. Speed-ups are quoted against the
1-seed program of the same run.

    python benchmarks/seeds.py --json seeds.json
    python benchmarks/seeds.py --envs point_maze,halfcheetah --seeds 1,4,16 --backend c
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import write_json  # noqa: E402
from backends import cpu_model, expert_program, learn_program  # noqa: E402  (not a package)

from trirl import envs  # noqa: E402


def program(command: str, name: str, seeds: int, backend: str):
    """(compiled iterate, extra args, state, env steps per iteration and seed), compile s."""
    build = {"expert": expert_program, "learn": learn_program}[command]
    iterate, extra, state, batch = build(name, backend, seeds=seeds)
    t0 = time.perf_counter()
    compiled = iterate.lower(state, *extra).compile()
    compile_s = time.perf_counter() - t0
    state = jax.block_until_ready(compiled(state, *extra)[0])   # warm-up iteration
    return [compiled, extra, state, batch], compile_s


def measure(command: str, name: str, seed_counts: list[int], backend: str, iterations: int,
            rounds: int) -> dict:
    progs, compile_s = {}, {}
    for n in seed_counts:
        progs[n], compile_s[n] = program(command, name, n, backend)
    rates = {n: [] for n in seed_counts}
    for r in range(rounds):
        for n in (seed_counts if r % 2 == 0 else seed_counts[::-1]):
            step, extra, state, batch = progs[n]
            t0 = time.perf_counter()
            for _ in range(iterations):
                state, metrics = step(state, *extra)[:2]
                jax.block_until_ready(metrics)
            rates[n].append(n * iterations * batch / (time.perf_counter() - t0))
            progs[n][2] = state
    base = seed_counts[0]
    speedups = {n: statistics.median(a / b for a, b in zip(rates[n], rates[base]))
                for n in seed_counts}
    return {"command": command, "env": name, "backend": backend,
            "env_steps_per_iteration_and_seed": progs[base][3],
            "compile_s": {n: round(t, 1) for n, t in compile_s.items()},
            "rates": rates, "median": {n: statistics.median(rates[n]) for n in seed_counts},
            "speedup_vs_first": speedups}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--envs", default="point_maze,halfcheetah")
    p.add_argument("--commands", default="expert,learn")
    p.add_argument("--seeds", default="1,4,16")
    p.add_argument("--backend", default="auto")
    p.add_argument("--iterations", type=int, default=2, help="timed iterations per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args()
    seed_counts = [int(s) for s in args.seeds.split(",")]
    backend = envs.resolve_backend(args.backend)
    meta = {"command": " ".join(["python"] + sys.argv), "date": time.strftime("%Y-%m-%d %H:%M"),
            "jax": jax.__version__, "jax_backend": jax.default_backend(), "cpu": cpu_model(),
            "nproc": os.cpu_count(), "backend": backend}
    print(f"# {meta['command']}\n# {meta['date']}, jax {meta['jax']} on {meta['jax_backend']} "
          f"({meta['cpu']}, {meta['nproc']} cores), physics backend {backend}", flush=True)
    rows = []
    for name in args.envs.split(","):
        for command in args.commands.split(","):
            row = measure(command, name, seed_counts, backend, args.iterations, args.rounds)
            rows.append(row)
            for n in seed_counts:
                print(f"trirl {command} {name} seeds={n}: {row['median'][n]:,.0f} env steps/s "
                      f"summed over seeds ({row['speedup_vs_first'][n]:.2f}x {seed_counts[0]} "
                      f"seed; compile {row['compile_s'][n]:.0f} s)", flush=True)
    print("\n| command | env | " + " | ".join(f"{n} seeds" for n in seed_counts) + " |")
    print("|---|---|" + "---:|" * len(seed_counts))
    for r in rows:
        cells = " | ".join(f"{r['median'][n]:,.0f} ({r['speedup_vs_first'][n]:.2f}x)"
                           for n in seed_counts)
        print(f"| {r['command']} | {r['env']} | {cells} |")
    write_json(args.json, meta, rows)


if __name__ == "__main__":
    main()
