"""Training-time cost of TRIRL's discriminator buffer vs plain GAIL-style updates.

Same environment, batch, networks and discriminator training in every configuration;
the reward machinery differs, and the baselines also skip TRPL (as they train):

* ``GAIL`` (the reference; also ``AIRL``, ``AMP``): the baselines as ``trirl learn
  --algo`` trains them: plain clipped PPO without TRPL, the latest discriminator only;
* ``no_buffer``: TRIRL's learner (TRPL included) with no buffer, no correction, no
  reward fitting -- the policy is trained on ``beta * D^(i)`` (``variant=no_fit,
  capacity=0, eps=1``), which isolates the cost of the buffer machinery (this was
  called ``gail`` before the real baselines existed);
* ``k=1``, ``k=25``, ``k=100``: TRIRL's default ``max_eta`` variant with buffer capacity
  k and R_fit regression. The buffer starts full (``--fill``, default on) -- iterations
  on an empty or partly filled buffer would skip evaluations (the R_fit regression only
  runs once the buffer is full). ``--warmup`` untimed
  iterations (default 110) then replace the filled buffer's empty members by real ones
  with real etas: the default skips members of negligible weight
  (``negligible_weight``), and what it skips depends on the etas, so timing a buffer of
  empty slots (eta 0, the largest steps) would flatter it.
* ``k=100-exact``: k = 100 with ``negligible_weight=0``: every member evaluated, R_fit
  refitted at every eviction, as the paper.
* ``features``: the feature-based reward model (``--reward-model features``), which
  needs no buffer (``trirl.feature_reward``).

Each configuration's iteration is compiled first (excluded); then rounds alternate
through the configurations (so background load hits all alike), timing ``--iterations``
iterations each, ``block_until_ready`` after every iteration as the training loop does.
Reported: seconds per million env steps (median over rounds) and the ratio to
``--reference`` (default ``GAIL``) per round (median). The paper's own figures (Sec. 5): 1.38x (k=1) to 1.60x (k=100).

    python benchmarks/buffer_cost.py --env point_maze --iterations 10 --rounds 3
    python benchmarks/buffer_cost.py --set fit.num_steps=25   # cheaper R_fit
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

from trirl import reward_buffer as rb
from trirl import settings as settings_lib
from trirl import envs, learn
from trirl import demos as demos_lib
from trirl.evaluation import bundled_demos

from _report import write_json

CONFIGS = {
    # The real baselines (trirl/baselines.py): plain clipped PPO without the TRPL
    # projection, the latest discriminator only. "GAIL" is the reference.
    "GAIL": {"algo": "gail"},
    "AIRL": {"algo": "airl"},
    "AMP": {"algo": "amp"},
    # TRIRL's own learner with the buffer switched off (TRPL kept): isolates the buffer.
    "no_buffer": {"variant": "no_fit", "capacity": 0, "eps": 1.0},
    "k=1": {"capacity": 1},
    "k=25": {"capacity": 25},
    "k=100": {"capacity": 100},
    # Every member evaluated and R_fit refitted at every eviction (the paper's arithmetic;
    # the default skips members of negligible weight, trirl.reward_buffer).
    "k=100-exact": {"capacity": 100, "negligible_weight": 0.0},
    # The feature-based reward model: no buffer, the correction is exact in the linear
    # weights (trirl.feature_reward). Its discriminator reads base features, not (s, a).
    "features": {"reward_model": "features"},
}


def build(env, expert, overrides: dict, fill: bool, settings: dict, seed: int = 0):
    config = settings_lib.build_config(settings_lib.merge_settings(settings, {"": overrides}))
    learner, init, iterate = learn.compiled(env, config, 1000)
    state = init(jax.random.split(jax.random.PRNGKey(seed), 1), expert)
    if fill and config.algo == "trirl" and config.capacity > 0 and not config.features:
        # A full buffer with R_fit active, as after k iterations.
        buffer = state.buffer
        state = state.replace(buffer=buffer.replace(
            count=jnp.full_like(buffer.count, config.capacity),
            fit_active=jnp.ones_like(buffer.fit_active)))
    return config, iterate, state


def members_evaluated(config, state) -> int | None:
    """How many of the buffer's members the next iteration evaluates (seed 0)."""
    if config.algo != "trirl" or config.features or config.capacity == 0:
        return None
    buffer = jax.tree.map(lambda a: a[0], state.buffer)
    needed = rb.needed_members(buffer, config.eps)
    return int(buffer.count) if needed is None else int(jnp.sum(needed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="point_maze")
    parser.add_argument("--iterations", type=int, default=10, help="timed iterations per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-fill", dest="fill", action="store_false")
    parser.add_argument("--warmup", type=int, default=110,
                        help="untimed iterations after compiling (real members and etas)")
    parser.add_argument("--configs", default="GAIL,no_buffer,k=1,k=25,k=100,features")
    parser.add_argument("--reference", default="GAIL", help="config the ratios divide by")
    parser.add_argument("--set", dest="settings", action="append", default=[],
                        metavar="KEY=VALUE", help="TRIRL setting for every config, as in "
                        "`trirl learn --set` (e.g. fit.num_steps=25)")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()

    env = envs.make(args.env)
    demos = demos_lib.load(bundled_demos(args.env), env=env)
    expert = learn.expert_data(demos, env.action_size)
    names = args.configs.split(",")
    runs = {}
    for name in names:
        config, iterate, state = build(env, expert, CONFIGS[name], args.fill,
                                       settings_lib.parse_settings(tuple(args.settings)))
        t0 = time.perf_counter()
        state, metrics, _ = iterate(state, expert)
        jax.block_until_ready(metrics)
        compile_s = time.perf_counter() - t0
        for _ in range(args.warmup):
            state, metrics, _ = iterate(state, expert)
        jax.block_until_ready(metrics)
        eta = float(jnp.ravel(metrics["eta"])[0]) if "eta" in metrics else float("nan")
        evaluated = members_evaluated(config, state)
        runs[name] = {"iterate": iterate, "state": state, "compile_s": compile_s,
                      "batch": config.ppo.batch_size, "s_per_m": [],
                      "members_evaluated": evaluated, "last_eta": eta}
        print(f"{name}: compiled in {compile_s:.1f} s, {args.warmup} warm-up iterations "
              f"(last eta {eta:.2f}; members evaluated {evaluated})", flush=True)

    ratios = {name: [] for name in names}
    for r in range(args.rounds):
        times = {}
        for name in names:
            run = runs[name]
            state = run["state"]
            t0 = time.perf_counter()
            for _ in range(args.iterations):
                state, metrics, _ = run["iterate"](state, expert)
                jax.block_until_ready(metrics)
            times[name] = time.perf_counter() - t0
            run["state"] = state
            run["s_per_m"].append(times[name] / (args.iterations * run["batch"]) * 1e6)
        for name in names:
            if args.reference in times:
                ratios[name].append(times[name] / times[args.reference])
        print(f"round {r + 1}: " + ", ".join(
            f"{n} {runs[n]['s_per_m'][-1]:.0f} s/M" for n in names), flush=True)

    rows = []
    for name in names:
        row = {"config": name, "settings": CONFIGS[name],
               "s_per_million_steps_median": statistics.median(runs[name]["s_per_m"]),
               "s_per_million_steps": runs[name]["s_per_m"],
               "reference": args.reference,
               "ratio_median": statistics.median(ratios[name]) if ratios[name] else None,
               "ratios": ratios[name], "compile_s": runs[name]["compile_s"],
               "members_evaluated": runs[name]["members_evaluated"],
               "last_warmup_eta": runs[name]["last_eta"]}
        rows.append(row)
        ratio = row["ratio_median"]
        print(f"{name:>9}: {row['s_per_million_steps_median']:8.0f} s per 1M env steps"
              + (f", {ratio:.3f}x {args.reference}" if ratio is not None else ""))
    # The headline figures, by the names issue 29 gave them (median ratio per round).
    headline = {f"trirl_{name.replace('=', '').replace('-', '_')}_over_{args.reference.lower()}":
                row["ratio_median"] for name, row in zip(names, rows)
                if name.startswith("k=") and row["ratio_median"] is not None}
    write_json(args.json, {"env": args.env, "iterations": args.iterations,
                           "rounds": args.rounds, "fill": args.fill, "warmup": args.warmup,
                           "settings": args.settings,
                           "batch": runs[names[0]]["batch"]}, rows, **headline)


if __name__ == "__main__":
    main()
