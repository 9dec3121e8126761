"""Env wrapper throughput vs the bare MJX physics it runs, per batch size (MJX backend;
``benchmarks/backends.py`` compares MJX with MuJoCo C).

For each env and batch size B, three jitted functions advance B environments by one
control step (``frame_skip`` physics steps), on the same ``env.backend.model``:

* ``bare``:      ``jax.jit(jax.vmap(lambda d, u: frame_skip x mjx.step))`` -- the physics
                 limit (ctrl set, then ``frame_skip`` ``mjx.step`` in a ``fori_loop``, as
                 the backend does);
* ``vmap``:      ``jax.jit(jax.vmap(env.step))`` -- clip, physics, obs, reward, flags;
* ``autoreset``: ``jax.jit(AutoReset(env).step)`` -- the same plus the restart from a pool;
* ``untuned``:   for the locomotion envs, ``bare`` on the model with Gymnasium v5's own
                 solver caps (100 iterations, 50 line-search steps) instead of trirl's
                 MJX-tuned 4 and 8 (``envs/mujoco_v5.py``): the peer for the tuning's
                 speed-up, ``untuned time / vmap time`` (the whole env step, tuned, against
                 bare physics, untuned).

Each is called ``--steps`` times from a Python loop (one dispatch per control step, as
written) or, with ``--scan``, the ``--steps`` control steps run inside one jitted
``lax.scan`` (no per-step dispatch: what a training rollout does). Compilation and a
warm-up call are excluded; every repeat times the three variants back to back (so load
from other processes hits them alike) and ends with ``block_until_ready``. Rates are
env *control* steps/s (B * steps / seconds); the bare rate is the same count, i.e.
physics steps/s / frame_skip, so ``overhead = t_env / t_bare - 1`` compares equal work.
The table gives rates from the best repeat and the overhead two ways: from the best
times, and as the median over repeats of t_env / t_bare measured back to back ("paired"),
which cancels slow changes in load from other processes. The JSON also has medians and
process-CPU-time (``time.process_time``) overheads.

Usage:
  python benchmarks/env_throughput.py [--env point_maze ...] [--batch-sizes 1,4,16,64,256]
      [--steps 100] [--repeats 20] [--scan] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import jax

from trirl import envs
from trirl.envs._mjx import mjx

from _report import write_json  # sibling module (benchmarks/ is sys.path[0])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def untuned_of(env: envs.Env):
    """The same env with v5's solver caps, or None for envs without solver settings."""
    if not hasattr(env.config, "solver_iterations"):
        return None
    return envs.make(env.name, solver_iterations=100, solver_ls_iterations=50)


def build(env: envs.Env, batch: int, steps: int, scan: bool, seed: int = 0):
    """Jitted one-step (or ``steps``-step scan) functions and their initial arguments."""
    model, frame_skip = env.backend.model, env.backend.frame_skip
    untuned = untuned_of(env)
    auto = envs.AutoReset(env)
    key_state, key_pool, key_act = jax.random.split(jax.random.key(seed), 3)
    reset = jax.jit(auto.reset_pool, static_argnums=1)  # reset_pool is reset (one compile)
    state, pool = reset(key_state, batch), reset(key_pool, batch)
    actions = jax.random.uniform(key_act, (batch, env.action_size), minval=-1.0, maxval=1.0)

    def bare_one(d, u, model=model):
        d = d.replace(ctrl=u.astype(d.ctrl.dtype))
        return jax.lax.fori_loop(0, frame_skip, lambda _, x: mjx.step(model, x), d)

    bare = jax.vmap(bare_one)
    vstep = jax.vmap(env.step)
    # (step function, extra arguments after the carry). The actions and the pool are
    # arguments, not closed-over constants, as in a training loop (XLA compiles closed-over
    # arrays into the program as constants, which made AutoReset.step measurably slower).
    one = {
        "bare": (bare, (actions,)),
        "vmap": (vstep, (actions,)),
        "autoreset": (auto.step, (actions, pool)),
    }
    init = {"bare": state.data, "vmap": state, "autoreset": state}
    if untuned is not None:
        one["untuned"] = (jax.vmap(lambda d, u: bare_one(d, u, untuned.backend.model)),
                          (actions,))
        init["untuned"] = state.data

    fns = {}
    for name, (f, extra) in one.items():
        if scan:
            def many(carry, *xs, f=f):
                return jax.lax.scan(lambda c, _: (f(c, *xs), None), carry, None, length=steps)[0]
            fns[name] = (jax.jit(many), extra)
        else:
            fns[name] = (jax.jit(f), extra)
    return fns, init


def measure(fns, init, steps: int, repeats: int, scan: bool) -> dict[str, list[float]]:
    carries, compile_s = {}, {}
    variants = list(fns)
    for name in variants:
        t0 = time.perf_counter()
        f, extra = fns[name]
        carries[name] = jax.block_until_ready(f(init[name], *extra))  # compile + warm-up
        compile_s[name] = time.perf_counter() - t0
    times = {name: [] for name in variants}
    cpu_times = {name: [] for name in variants}
    for _ in range(repeats):
        for name in variants:
            (f, extra), carry = fns[name], carries[name]
            t0, c0 = time.perf_counter(), time.process_time()
            if scan:
                carry = f(carry, *extra)
            else:
                for _ in range(steps):
                    carry = f(carry, *extra)
            carry = jax.block_until_ready(carry)
            times[name].append(time.perf_counter() - t0)
            cpu_times[name].append(time.process_time() - c0)
            carries[name] = carry
    return times, cpu_times, compile_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", nargs="+", default=["point_maze"],
                        help="env name(s) (see `trirl envs`)")
    parser.add_argument("--batch-sizes", default="1,4,16,64,256",
                        help="comma-separated numbers of parallel envs")
    parser.add_argument("--steps", type=int, default=100,
                        help="control steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--scan", action="store_true",
                        help="run the steps inside one jitted lax.scan instead of a Python loop")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]

    meta = {
        "command": " ".join(["python"] + sys.argv),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind),
        "cpu": cpu_model(),
        "nproc": os.cpu_count(),
        "mode": "scan" if args.scan else "loop",
        "steps": args.steps,
        "repeats": args.repeats,
        "date": time.strftime("%Y-%m-%d"),
    }
    print(f"# {meta['command']}\n# jax {meta['jax']} on {meta['backend']} "
          f"({meta['device']}; {meta['cpu']}, {meta['nproc']} cores); mode={meta['mode']}, "
          f"{args.steps} control steps x {args.repeats} repeats", flush=True)

    rows = []
    for name in args.env:
        env = envs.make(name, backend="mjx")  # bare = mjx.step: an MJX measurement
        for batch in batch_sizes:
            fns, init = build(env, batch, args.steps, args.scan)
            times, cpu_times, compile_s = measure(fns, init, args.steps, args.repeats,
                                                  args.scan)
            work = batch * args.steps
            row = {"env": name, "batch": batch, "frame_skip": env.backend.frame_skip,
                   "compile_s": {k: round(v, 2) for k, v in compile_s.items()}}
            for v in times:
                best, med = min(times[v]), statistics.median(times[v])
                row[v] = {"best_s": best, "median_s": med, "steps_per_s_best": work / best,
                          "steps_per_s_median": work / med, "times_s": times[v],
                          "cpu_best_s": min(cpu_times[v]), "cpu_times_s": cpu_times[v]}
            for v in ("vmap", "autoreset"):
                row[f"overhead_{v}_best"] = min(times[v]) / min(times["bare"]) - 1
                row[f"overhead_{v}_median"] = (statistics.median(times[v])
                                               / statistics.median(times["bare"]) - 1)
                row[f"overhead_{v}_cpu_best"] = min(cpu_times[v]) / min(cpu_times["bare"]) - 1
                # each repeat times bare and env back to back: the median of the per-repeat
                # ratios cancels slow changes in machine load
                row[f"overhead_{v}_paired"] = statistics.median(
                    t / b for t, b in zip(times[v], times["bare"])) - 1
            if "untuned" in times:
                row["tuned_speedup_paired"] = statistics.median(
                    u / t for u, t in zip(times["untuned"], times["vmap"]))
            row["physics_steps_per_s_best"] = row["bare"]["steps_per_s_best"] * row["frame_skip"]
            rows.append(row)
            print(f"{name} B={batch}: bare {row['bare']['steps_per_s_best']:.0f}/s, "
                  f"vmap {row['vmap']['steps_per_s_best']:.0f}/s "
                  f"({100 * row['overhead_vmap_best']:+.1f}%, paired "
                  f"{100 * row['overhead_vmap_paired']:+.1f}%), "
                  f"autoreset {row['autoreset']['steps_per_s_best']:.0f}/s "
                  f"({100 * row['overhead_autoreset_best']:+.1f}%, paired "
                  f"{100 * row['overhead_autoreset_paired']:+.1f}%)"
                  + (f", untuned bare {row['untuned']['steps_per_s_best']:.0f}/s (tuned "
                     f"env.step {row['tuned_speedup_paired']:.2f}x faster, paired)"
                     if "untuned" in row else ""), flush=True)

    print_table(rows, meta)
    write_json(args.json, meta, rows)


def print_table(rows, meta) -> None:
    header = ["env", "B", "bare ctrl steps/s", "vmap(env.step)/s", "AutoReset.step/s",
              "overhead vmap: best / paired", "overhead AutoReset: best / paired",
              "untuned v5 bare/s", "env.step vs untuned bare (paired)"]
    body = []
    for r in rows:
        pct = lambda v: (f"{100 * r[f'overhead_{v}_best']:+.1f}% / "
                         f"{100 * r[f'overhead_{v}_paired']:+.1f}%")
        body.append([r["env"], str(r["batch"]), f"{r['bare']['steps_per_s_best']:,.0f}",
                     f"{r['vmap']['steps_per_s_best']:,.0f}",
                     f"{r['autoreset']['steps_per_s_best']:,.0f}", pct("vmap"),
                     pct("autoreset"),
                     f"{r['untuned']['steps_per_s_best']:,.0f}" if "untuned" in r else "-",
                     f"{r['tuned_speedup_paired']:.2f}x" if "untuned" in r else "-"])
    title = (f"Env control steps/s (best of {meta['repeats']} wall times; bare = physics "
             f"steps/s / frame_skip), mode={meta['mode']}; overhead = t_env / t_bare - 1 from "
             f"the best wall times and the median of the per-repeat (back-to-back) ratios")
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        Console = None
    if Console is not None and sys.stdout.isatty():
        table = Table(title=title)
        for h in header:
            table.add_column(h, justify="left" if h == "env" else "right")
        for line in body:
            table.add_row(*line)
        Console().print(table)
        return
    # plain Markdown table (pipe-friendly, pasteable into docs/benchmarks.md)
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for line in body:
        print("| " + " | ".join(line) + " |")


if __name__ == "__main__":
    main()
