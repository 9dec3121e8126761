"""Generalised advantage estimation with termination and truncation kept apart.

For each transition ``(s_t, a_t, r_t, s'_t)`` of a rollout of length T:

    delta_t = r_t + gamma * V_next_t - V(s_t)
    A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}

where ``V_next_t`` is

* ``V(s'_t)`` for an ordinary step *and for a truncated one* (a time-out is not an end
  of the MDP, so the return is bootstrapped from the state the episode was cut at);
* the value of the absorbing state for a step that entered a terminal state
  (``absorbing``): ``r_abs / (1 - gamma)``, which is 0 for a true task reward and the
  learned reward of s_a for IRL (paper App. C.4, following DAC).

``done`` (termination or truncation) only stops the backward recursion from mixing
two episodes. ``V(s'_t)`` is evaluated on the pre-reset observation, so auto-reset
never leaks the next episode's first state into the bootstrap.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gae(rewards: jax.Array, values: jax.Array, next_values: jax.Array, absorbing: jax.Array,
        done: jax.Array, gamma: float, lam: float,
        absorbing_value: jax.Array | float = 0.0) -> tuple[jax.Array, jax.Array]:
    """Advantages and value targets for time-major arrays of shape ``(T, ...)``.

    Args:
      rewards: ``r_t``.
      values: ``V(s_t)``.
      next_values: ``V(s'_t)`` on the pre-reset next observation.
      absorbing: step entered a terminal state.
      done: ``absorbing | truncated``.
      gamma, lam: discount and GAE lambda.
      absorbing_value: value of the absorbing state (scalar or broadcastable).

    Returns:
      ``(advantages, returns)`` with ``returns = advantages + values``.
    """
    bootstrap = jnp.where(absorbing, absorbing_value, next_values)
    deltas = rewards + gamma * bootstrap - values
    not_done = 1.0 - done.astype(deltas.dtype)

    def backward(carry, xs):
        delta, nd = xs
        adv = delta + gamma * lam * nd * carry
        return adv, adv

    _, advantages = jax.lax.scan(backward, jnp.zeros_like(deltas[0]), (deltas, not_done),
                                 reverse=True)
    return advantages, advantages + values
