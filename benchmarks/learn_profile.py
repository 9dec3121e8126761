"""Where one ``trirl learn`` iteration spends its time, per backend, and what that bounds.

A TRIRL iteration (paper Algorithm 2, trirl's defaults) is: the rollout (policy + physics),
``disc.num_steps`` discriminator steps, the k buffered discriminators evaluated on the
rollout, ``fit.num_steps`` R_fit steps and ``ppo.num_epochs`` PPO/TRPL epochs. This script
times the full iteration on MJX and on MuJoCo C (paired rounds, alternating order, so that
load from other processes hits both), and prices each part on the C backend by ablation:
the same iteration with that part cut to one step (one epoch, one member), scaled back
to its full count, ``part = (t_full - t_cut) * n / (n - 1)``. The physics of a rollout
(``ppo.rollout_length`` AutoReset steps of ``ppo.num_envs`` envs with random actions) is
timed on both backends with ``backends.env_program``.

The bound it prints: even if the C physics cost nothing, ``trirl learn`` could not run
faster than the C iteration minus its physics, so C/MJX end to end is at most
``t_mjx / (t_c - physics_c)``.

    python benchmarks/learn_profile.py --env halfcheetah --json learn_profile.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import jax
import jax.numpy as jnp

from trirl import config as config_lib
from trirl import presets
from trirl import settings as settings_lib
from trirl import envs, learn

from _report import write_json            # sibling modules (benchmarks/ is sys.path[0])
from backends import demos_for, env_program


def ablations(config: config_lib.TRIRLConfig) -> list[tuple[str, dict, int]]:
    """Each part as (name, settings that cut it to one, its full count)."""
    return [("PPO/TRPL epochs", {"ppo": {"num_epochs": 1}}, config.ppo.num_epochs),
            ("discriminator steps", {"disc": {"num_steps": 1}}, config.disc.num_steps),
            ("R_fit steps", {"fit": {"num_steps": 1}}, config.fit.num_steps),
            ("buffered discriminators", {"": {"capacity": 1}}, config.capacity)]


def iteration_program(env: envs.Env, settings: dict, expert):
    """``(compiled iterate, state)`` for ``trirl learn``'s iteration with ``settings``."""
    config = settings_lib.build_config(settings)
    _, init, iterate = learn.compiled(env, config, 1000)
    state = init(jax.random.split(jax.random.PRNGKey(0), 1), expert)
    compiled = iterate.lower(state, expert).compile()
    state = jax.block_until_ready(compiled(state, expert)[0])        # warm-up iteration
    return compiled, state


def time_iterations(prog: list, expert, iterations: int) -> float:
    """Seconds per iteration over ``iterations`` iterations (synced after each, as the
    training loop logs); advances the program's state."""
    compiled, state = prog
    t0 = time.perf_counter()
    for _ in range(iterations):
        state, metrics = compiled(state, expert)[:2]
        jax.block_until_ready(metrics)
    prog[1] = state
    return (time.perf_counter() - t0) / iterations


def physics_seconds(env: envs.Env, config: config_lib.TRIRLConfig, repeats: int) -> float:
    """Best time of one rollout's physics: ``rollout_length`` steps of ``num_envs`` envs."""
    run, state, pool, key = env_program(env, config.ppo.num_envs)
    n = jnp.int32(config.ppo.rollout_length)
    state, key = jax.block_until_ready(run(state, pool, key, n))    # compile + warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        state, key = jax.block_until_ready(run(state, pool, key, n))
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="halfcheetah")
    p.add_argument("--rounds", type=int, default=3, help="paired rounds per program")
    p.add_argument("--iterations", type=int, default=3, help="timed iterations per round")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args()
    preset = presets.preset_settings(args.env)
    config = settings_lib.build_config(preset)
    print(f"# {' '.join(['python'] + sys.argv)}\n# {time.strftime('%Y-%m-%d %H:%M')}, "
          f"jax {jax.__version__} on {jax.default_backend()}; {args.env}, "
          f"{config.ppo.batch_size} env steps per iteration", flush=True)

    env = {b: envs.make(args.env, backend=b) for b in ("mjx", "c")}
    expert = learn.expert_data(demos_for(env["c"]), env["c"].action_size)
    progs = {"MJX full": iteration_program(env["mjx"], preset, expert),
             "C full": iteration_program(env["c"], preset, expert)}
    cuts = ablations(config)
    for name, cut, _ in cuts:
        progs[name] = iteration_program(env["c"], settings_lib.merge_settings(preset, cut), expert)
    progs = {k: list(v) for k, v in progs.items()}

    times: dict[str, list[float]] = {k: [] for k in progs}
    order = list(progs)
    for r in range(args.rounds):           # every program once per round, order alternating
        for name in (order if r % 2 == 0 else order[::-1]):
            times[name].append(time_iterations(progs[name], expert, args.iterations))
    med = {k: statistics.median(v) for k, v in times.items()}
    physics = {b: physics_seconds(env[b], config, 5) for b in ("mjx", "c")}

    rows = []
    for name, _, n in cuts:
        part = (med["C full"] - med[name]) * n / (n - 1)
        rows.append({"part": name, "count": n, "seconds": part})
    rows.append({"part": "physics (rollout)", "count": config.ppo.rollout_length,
                 "seconds": physics["c"]})
    bound = med["MJX full"] / (med["C full"] - physics["c"])

    print(f"\niteration: MJX {med['MJX full']:.3f} s, C {med['C full']:.3f} s -> C/MJX "
          f"{med['MJX full'] / med['C full']:.2f}x end to end\n")
    print("| part (C backend) | count | s / iteration | share |\n|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['part']} | {r['count']} | {r['seconds']:.3f} | "
              f"{100 * r['seconds'] / med['C full']:.0f} % |")
    total = sum(r["seconds"] for r in rows)
    # Not a remainder: XLA runs independent parts (the discriminator's steps and the
    # members' forward passes, say) at the same time on the cores, so cutting one part
    # saves its own cost less what it overlapped; the parts need not add up to the total.
    print(f"\nparts sum to {total:.3f} s of the {med['C full']:.3f} s iteration (parts that "
          "overlap on the cores are counted in full in each)")
    print(f"physics of one rollout: MJX {physics['mjx']:.3f} s, C {physics['c']:.3f} s "
          f"({physics['mjx'] / physics['c']:.1f}x)")
    print(f"bound: with free C physics, C/MJX end to end <= {med['MJX full']:.3f} / "
          f"({med['C full']:.3f} - {physics['c']:.3f}) = {bound:.2f}x")
    write_json(args.json, {"command": " ".join(["python"] + sys.argv), "env": args.env,
                           "iteration_s": times, "median_s": med, "physics_s": physics,
                           "bound": bound},
               rows)


if __name__ == "__main__":
    main()
