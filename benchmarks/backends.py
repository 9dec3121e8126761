"""MJX vs MuJoCo C backend, in one run: env steps/s per env and batch, and end to end.

Part 1 (env throughput). For each env and batch size B, both backends run the same
jitted program: ``AutoReset.step`` (what a training rollout runs) on B envs with uniform
random actions drawn inside the graph and a reset pool passed as an argument, in a
``fori_loop`` whose trip count is an argument, so that each timed repeat is one call of
at least ``--min-time`` seconds (no per-step Python dispatch on either side). The
programs are compiled first, two at a time (compilation excluded), then warmed up. Each
repeat times MJX and C back to back (alternating which goes first); a repeat's ratio is
C's rate over MJX's, and the table gives the best rates and the median of the per-repeat
ratios, so load from other processes on a shared machine hits both sides alike.

Part 2 (end to end). The programs ``trirl expert`` and ``trirl learn`` run, one seed:
``jax.jit(jax.vmap(PPO.iteration))`` with the expert preset of the env, and TRIRL's
cached ``learn.compiled`` iteration with its defaults (point_maze: the bundled demos;
halfcheetah: demos recorded from a uniform random policy -- the content of the demos
does not change the cost). The first iteration (compilation) is excluded; then rounds
alternate MJX and C, each timing ``--e2e-iterations`` iterations with
``block_until_ready`` after each, as the training loop syncs once per iteration to log.
Rate = env steps of those iterations / their wall time (learning included).

    python benchmarks/backends.py --json backends.json
    python benchmarks/backends.py --envs halfcheetah --batch-sizes 256 --skip-e2e
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp

from trirl import presets
from trirl import settings as settings_lib
from trirl import demos as demos_lib
from trirl import envs, learn
from trirl.evaluation import bundled_demos
from trirl.presets import EXPERT_PRESETS
from trirl.ppo import PPO, PPOConfig

from _report import write_json  # sibling modules (benchmarks/ is sys.path[0])
from env_throughput import cpu_model

BACKENDS = ("mjx", "c")
DEFAULT_ENVS = "point_maze,halfcheetah,hopper,walker2d,ant,humanoid"


# --------------------------------------------------------------------- env throughput


def env_program(env: envs.Env, batch: int, seed: int = 0):
    """A jitted ``(state, pool, key, n) -> (state, key)`` running ``n`` AutoReset steps of
    ``batch`` envs with uniform random actions (a ``fori_loop`` with a traced trip count:
    one compiled program runs any number of steps, so a timed call is one dispatch however
    long it runs), and its initial arguments."""
    auto = envs.AutoReset(env)
    k_state, k_pool, key = jax.random.split(jax.random.key(seed), 3)
    reset = jax.jit(auto.reset_pool, static_argnums=1)
    state, pool = reset(k_state, batch), reset(k_pool, batch)
    low, high = jnp.asarray(env.action_low), jnp.asarray(env.action_high)

    def run(state, pool, key, n):
        def body(_, carry):
            s, k = carry
            k, sub = jax.random.split(k)
            a = jax.random.uniform(sub, (batch, env.action_size), minval=low, maxval=high)
            return auto.step(s, a, pool), k
        return jax.lax.fori_loop(0, n, body, (state, key))

    return jax.jit(run), state, pool, key


def compile_all(jobs: dict) -> tuple[dict, dict]:
    """``{name: (jitted, args)}`` compiled on two threads (XLA compiles without the GIL,
    and MJX programs take 20-120 s each here): ``({name: compiled}, {name: seconds})``."""
    def one(item):
        name, (fn, args) = item
        t0 = time.perf_counter()
        compiled = fn.lower(*args).compile()
        return name, compiled, time.perf_counter() - t0
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(one, jobs.items()))
    return {n: c for n, c, _ in done}, {n: round(t, 1) for n, _, t in done}


def env_throughput(name: str, batches: list[int], repeats: int, min_time: float) -> list[dict]:
    """Rows for one env: every batch size, both backends, paired repeats."""
    progs, jobs = {}, {}
    for backend in BACKENDS:
        env = envs.make(name, backend=backend)
        for batch in batches:
            run, state, pool, key = env_program(env, batch)
            progs[backend, batch] = [state, pool, key]
            jobs[backend, batch] = (run, (state, pool, key, jnp.int32(1)))
    compiled, compile_s = compile_all(jobs)
    rows = []
    for batch in batches:
        steps, rates = {}, {b: [] for b in BACKENDS}
        for backend in BACKENDS:
            run, (state, pool, key) = compiled[backend, batch], progs[backend, batch]
            state, key = jax.block_until_ready(run(state, pool, key, jnp.int32(1)))  # warm-up
            t0 = time.perf_counter()
            state, key = jax.block_until_ready(run(state, pool, key, jnp.int32(2)))
            per_step = (time.perf_counter() - t0) / 2
            steps[backend] = max(1, math.ceil(min_time / per_step))
            progs[backend, batch] = [state, pool, key]
        for r in range(repeats):
            for backend in (BACKENDS if r % 2 == 0 else BACKENDS[::-1]):
                run, (state, pool, key) = compiled[backend, batch], progs[backend, batch]
                t0 = time.perf_counter()
                state, key = jax.block_until_ready(
                    run(state, pool, key, jnp.int32(steps[backend])))
                rates[backend].append(batch * steps[backend] / (time.perf_counter() - t0))
                progs[backend, batch][0], progs[backend, batch][2] = state, key
        ratios = [c / m for c, m in zip(rates["c"], rates["mjx"])]
        rows.append({"env": name, "batch": batch, "steps_per_repeat": steps,
                     "compile_s": {b: compile_s[b, batch] for b in BACKENDS}, "rates": rates,
                     "best": {b: max(rates[b]) for b in BACKENDS},
                     "median": {b: statistics.median(rates[b]) for b in BACKENDS},
                     "ratio_median": statistics.median(ratios), "ratios": ratios})
    return rows


# ------------------------------------------------------------------------ end to end


def expert_program(name: str, backend: str, seed: int = 0, seeds: int = 1):
    """``trirl expert --seeds N``'s iteration: (jitted iterate, its extra args, state, env
    steps per iteration and seed)."""
    env = envs.make(name, backend=backend)
    ppo = PPO(env, PPOConfig(**EXPERT_PRESETS.get(name, {}).get("ppo", {})))
    state = jax.jit(jax.vmap(ppo.init))(jax.random.split(jax.random.PRNGKey(seed), seeds))
    return jax.jit(jax.vmap(ppo.iteration)), (), state, ppo.config.batch_size


def demos_for(env: envs.Env):
    """The env's bundled demos, else a few episodes of a uniform random policy (recorded
    on the C backend: only their shapes matter for the cost)."""
    path = bundled_demos(env.name)
    if path is not None:
        return demos_lib.load(path, env=env)
    recorder = envs.make(env.name, backend="c")
    bounds = (jnp.asarray(recorder.action_low), jnp.asarray(recorder.action_high))
    demos, _ = demos_lib.record(recorder, demos_lib._uniform_action, jax.random.PRNGKey(1), 8,
                                params=bounds)
    return demos


def learn_program(name: str, backend: str, seed: int = 0, seeds: int = 1):
    """``trirl learn --seeds N``'s iteration with its defaults (same tuple as
    expert_program)."""
    env = envs.make(name, backend=backend)
    config = settings_lib.build_config(presets.preset_settings(name))
    expert = learn.expert_data(demos_for(env), env.action_size)
    _, init, iterate = learn.compiled(env, config, 1000)
    state = init(jax.random.split(jax.random.PRNGKey(seed), seeds), expert)
    return iterate, (expert,), state, config.ppo.batch_size


def end_to_end(command: str, name: str, iterations: int, rounds: int) -> dict:
    build = {"expert": expert_program, "learn": learn_program}[command]

    def prepare(backend):   # both backends at once: XLA compiles without the GIL
        fn, extra, state, batch = build(name, backend)
        t0 = time.perf_counter()
        compiled = fn.lower(state, *extra).compile()
        compile_s = time.perf_counter() - t0
        state = jax.block_until_ready(compiled(state, *extra)[0])      # warm-up iteration
        return backend, [compiled, extra, state, batch], compile_s

    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(prepare, BACKENDS))
    progs = {b: prog for b, prog, _ in done}
    compile_s = {b: round(t, 1) for b, _, t in done}
    rates = {b: [] for b in BACKENDS}
    for r in range(rounds):
        for backend in (BACKENDS if r % 2 == 0 else BACKENDS[::-1]):
            step, extra, state, batch = progs[backend]
            t0 = time.perf_counter()
            for _ in range(iterations):
                state, metrics = step(state, *extra)[:2]
                jax.block_until_ready(metrics)
            rates[backend].append(iterations * batch / (time.perf_counter() - t0))
            progs[backend][2] = state
    ratios = [c / m for c, m in zip(rates["c"], rates["mjx"])]
    return {"command": command, "env": name, "iterations": iterations, "rounds": rounds,
            "env_steps_per_iteration": progs["c"][3], "compile_s": compile_s,
            "rates": rates, "median": {b: statistics.median(rates[b]) for b in BACKENDS},
            "ratio_median": statistics.median(ratios), "ratios": ratios}


# ------------------------------------------------------------------------------ main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--envs", default=DEFAULT_ENVS, help="comma-separated env names, or 'all'")
    p.add_argument("--batch-sizes", default="16,64,256")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--min-time", type=float, default=0.5,
                   help="seconds per timed repeat and backend (at least one step)")
    p.add_argument("--e2e-envs", default="point_maze,halfcheetah")
    p.add_argument("--e2e-iterations", type=int, default=2,
                   help="timed iterations per round (after the compile iteration)")
    p.add_argument("--e2e-rounds", type=int, default=2)
    p.add_argument("--skip-env", action="store_true")
    p.add_argument("--skip-e2e", action="store_true")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args()
    names = envs.names() if args.envs == "all" else [n for n in args.envs.split(",") if n]
    batches = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    meta = {"command": " ".join(["python"] + sys.argv), "date": time.strftime("%Y-%m-%d %H:%M"),
            "jax": jax.__version__, "jax_backend": jax.default_backend(), "cpu": cpu_model(),
            "nproc": os.cpu_count(), "c_threads": envs.make(names[0] if names else
                                                            "point_maze",
                                                            backend="c").backend.num_threads}
    print(f"# {meta['command']}\n# {meta['date']}, jax {meta['jax']} on {meta['jax_backend']} "
          f"({meta['cpu']}, {meta['nproc']} cores; C backend threads: {meta['c_threads']})",
          flush=True)
    t_start = time.perf_counter()
    env_rows, e2e_rows = [], []
    if not args.skip_env:
        for name in names:
            for row in env_throughput(name, batches, args.repeats, args.min_time):
                env_rows.append(row)
                print(f"{name} B={row['batch']}: MJX {row['best']['mjx']:,.0f}, "
                      f"C {row['best']['c']:,.0f} env steps/s -> C/MJX "
                      f"{row['ratio_median']:.1f}x (compile MJX {row['compile_s']['mjx']:.0f} s, "
                      f"C {row['compile_s']['c']:.0f} s)", flush=True)
    if not args.skip_e2e:
        for name in [n for n in args.e2e_envs.split(",") if n]:
            for command in ("expert", "learn"):
                row = end_to_end(command, name, args.e2e_iterations, args.e2e_rounds)
                e2e_rows.append(row)
                print(f"trirl {command} {name}: MJX {row['median']['mjx']:,.0f}, "
                      f"C {row['median']['c']:,.0f} env steps/s (learning included) -> "
                      f"C/MJX {row['ratio_median']:.2f}x", flush=True)
    meta["wall_s"] = round(time.perf_counter() - t_start, 1)
    print_tables(env_rows, e2e_rows, meta)
    write_json(args.json, meta, env=env_rows, end_to_end=e2e_rows)


def print_tables(env_rows, e2e_rows, meta) -> None:
    if env_rows:
        print("\nEnv steps/s (AutoReset.step in a jitted loop, random actions; best repeat), "
              "C/MJX = median of paired repeats\n")
        print("| env | B | MJX | C | C/MJX |")
        print("|---|---:|---:|---:|---:|")
        for r in env_rows:
            print(f"| {r['env']} | {r['batch']} | {r['best']['mjx']:,.0f} | {r['best']['c']:,.0f} "
                  f"| {r['ratio_median']:.1f}x |")
    if e2e_rows:
        print("\nEnd to end, env steps/s including learning (median of rounds, compile "
              "excluded), one seed\n")
        print("| command | env | MJX | C | C/MJX |")
        print("|---|---|---:|---:|---:|")
        for r in e2e_rows:
            print(f"| trirl {r['command']} | {r['env']} | {r['median']['mjx']:,.0f} | "
                  f"{r['median']['c']:,.0f} | {r['ratio_median']:.2f}x |")
    print(f"\n(total {meta['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
