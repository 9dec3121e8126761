"""How far skipping members of negligible weight moves TRIRL's reward, on a real buffer.

``negligible_weight`` (default 1e-7, ``trirl.reward_buffer``) skips the buffer members
whose summed weight in the corrected reward is below it and R_fit's regression while
R_fit's weight is. This script trains TRIRL (k = 100, the fitted model, a full buffer
as ``buffer_cost.py`` builds it) for ``--warmup`` iterations, so every member and eta is
real, then evaluates the corrected reward of that one buffer on the demos' rows and on
the last rollout's rows twice: as trained (skipping) and with ``negligible_weight=0``
(every member). It reports how many members the default evaluates, R_fit's weight,
and the largest difference against the largest |reward| -- the bound says at most
``tau * max |beta D|`` from the members (R_fit's part is its weight times its error).

    python benchmarks/negligible_weight.py --env halfcheetah --warmup 110
"""

from __future__ import annotations

import argparse
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from trirl import demos as demos_lib
from trirl import envs, learn
from trirl import reward_buffer as rb
from trirl import settings as settings_lib
from trirl.evaluation import bundled_demos

import buffer_cost
from _report import write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="halfcheetah")
    parser.add_argument("--warmup", type=int, default=110)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()

    env = envs.make(args.env)
    demos = demos_lib.load(bundled_demos(args.env), env=env)
    expert = learn.expert_data(demos, env.action_size)
    config, iterate, state = buffer_cost.build(env, expert, {"capacity": 100}, True, {})
    for i in range(args.warmup):
        state, metrics, trace = iterate(state, expert)
    learner, _, _ = learn.compiled(env, config, 1000)
    seed0 = lambda tree: jax.tree.map(lambda a: a[0], tree)  # noqa: E731
    buffer, stats = seed0(state.buffer), seed0(state.disc_stats)
    rollout = seed0(trace.rollout)
    rows = {
        "demos": learner.disc_x(stats, expert.obs, expert.actions, expert.next_obs,
                                expert.absorbing),
        "rollout": learner.disc_x(stats, rollout.obs, rollout.action, rollout.next_obs,
                                  rollout.absorbing).reshape(-1, learner.input_dim),
    }
    exact = buffer.replace(cfg=dataclasses.replace(buffer.cfg, negligible_weight=0.0))
    needed = rb.needed_members(buffer, config.eps)
    etas = np.asarray(buffer.etas, np.float64)[: int(buffer.count)]
    out = {"members": int(buffer.count), "members_evaluated": int(jnp.sum(needed)),
           "r_fit_weight": float(np.prod(1.0 - config.eps / (1.0 + np.maximum(etas, 0.0)))),
           "eta_min": float(jnp.min(buffer.etas)), "eta_max": float(jnp.max(buffer.etas)),
           "negligible_weight": config.negligible_weight}
    corrected = jax.jit(rb.corrected_reward, static_argnums=(2, 3))
    for name, x in rows.items():
        a = np.asarray(corrected(buffer, x, config.beta, config.eps), np.float64)
        b = np.asarray(corrected(exact, x, config.beta, config.eps), np.float64)
        out[name] = {"rows": int(x.shape[0]), "max_abs_reward": float(np.max(np.abs(b))),
                     "max_abs_difference": float(np.max(np.abs(a - b))),
                     "relative": float(np.max(np.abs(a - b)) / np.max(np.abs(b)))}
    for key, value in out.items():
        print(f"{key}: {value}")
    write_json(args.json, {"env": args.env, "warmup": args.warmup}, [out])


if __name__ == "__main__":
    main()
