"""How TRIRL obtains the multiplier eta of its reward correction ``eps / (1 + eta)``
(paper Sec. 4.3, ``TRIRLConfig.variant``): one small function per variant.

* ``max_eta`` (default): after the TRPL policy update, the updated (raw) policy is
  projected onto the trust region around the behaviour policy on every rollout state,
  and ``eta = max over states of max(eta_mean(s), eta_cov)`` (:func:`max_eta`);
* ``retrospective_eta``: as ``max_eta``, but every iteration the step sizes of all
  buffer members are recomputed per state on the current rollout, from the stored
  policy pair (before, after) of the update each member was made with
  (:func:`retrospective`, Alg. 2 lines 11-12). The absorbing state, where no policy
  acts, keeps each member's stored max-eta;
* ``no_fit``: ``retrospective_eta`` without reward fitting (ablation iv);
* ``tr_loss``: no projection; PPO's loss gets ``eta * KL(pi || pi_behaviour)`` with
  ``eta = eta_init`` decayed linearly to 0 over the run or held (:func:`tr_loss`); that
  eta is the correction's.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from trirl import trpl
from trirl.config import TRIRLConfig
from trirl.ppo import PPO, PPOState, Rollout, linear_decay

Params = Any


def max_multiplier(proj: trpl.Projection) -> jax.Array:
    """Per-state scalar multiplier ``max(eta_mean(s), eta_cov)`` (paper Sec. 4.3)."""
    return jnp.maximum(proj.eta_mean, proj.eta_cov)


def max_eta(ppo: PPO, updated: PPOState, rollout: Rollout) -> tuple[jax.Array, dict]:
    """eta of the TRPL update just made, and its parts for the metrics (PPO's own
    ``eta_*_max`` metrics are the projections' during the epochs)."""
    proj = ppo.trust_region_projection(updated, rollout)
    return jnp.max(max_multiplier(proj)), {"update_eta_mean_max": jnp.max(proj.eta_mean),
                                           "update_eta_cov": proj.eta_cov}


def tr_loss(config: TRIRLConfig, iteration: jax.Array, num_iterations: int) -> jax.Array:
    """Penalty weight of the ``tr_loss`` variant at a (0-based) iteration."""
    if config.eta_schedule == "linear":
        return linear_decay(config.eta_init, iteration, num_iterations)
    return jnp.asarray(config.eta_init, jnp.float32)


def retrospective(ppo: PPO, config: TRIRLConfig, policies: Params, obs: jax.Array) -> jax.Array:
    """Per slot and state ``max(eta_mean_j(s), eta_cov_j)`` of the stored update
    before_j -> after_j, re-evaluated on ``obs`` (..., obs_dim) -> ``(k, ...)``."""
    tr = config.ppo.trust_region

    def member(pair):
        (actor_b, stats_b), (actor_a, stats_a) = pair
        old_mean, old_std = ppo.policy(actor_b, stats_b, obs)
        mean, std = ppo.policy(actor_a, stats_a, obs)
        return max_multiplier(trpl.project(mean, std, old_mean, old_std, tr.mean_bound,
                                           tr.cov_bound))

    # They are the reward recursion's multipliers, so the floor applies to them too.
    return jnp.maximum(jax.vmap(member)(policies), config.reward_eta_floor)


def empty_policy_pairs(ppo_state: PPOState, capacity: int) -> Params:
    """Zeroed slots for the (before, after) policy pair of each buffer member."""
    policy = (ppo_state.actor, ppo_state.obs_stats)
    return jax.tree.map(lambda x: jnp.zeros((capacity,) + x.shape, x.dtype), (policy, policy))


def store_policy_pair(policies: Params, slot: jax.Array, before: PPOState,
                      after: PPOState) -> Params:
    """Remember the update a member is pushed with, in that member's slot."""
    pair = ((before.actor, before.obs_stats), (after.actor, after.obs_stats))
    return jax.tree.map(lambda stack, p: stack.at[slot].set(p), policies, pair)
