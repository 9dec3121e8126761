"""Diagonal Gaussian policy and value function (paper App. C.5 defaults).

The policy network predicts the mean; the standard deviation is a state-independent
log-std parameter (the paper's setting), so ``std`` has shape ``(action_size,)``.
Actions are sampled unbounded and clipped to the bounds by the environment; log
probabilities are those of the unclipped sample, as in PPO practice.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from trirl.networks import MLP, ScalarMLP


class GaussianActor(nn.Module):
    """``obs -> (mean, std)``; mean from a tanh MLP, std from a log-std parameter."""

    action_size: int
    hidden: Sequence[int] = (256, 256, 256)
    activation: str = "tanh"
    init_std: float = 1.0

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        # A small output gain starts the policy near zero mean (Andrychowicz et al. 2021).
        mean = MLP(self.hidden, self.action_size, self.activation, out_scale=0.01)(obs)
        log_std = self.param("log_std", nn.initializers.constant(math.log(self.init_std)),
                             (self.action_size,))
        return mean, jnp.exp(log_std)


class Critic(nn.Module):
    """``obs -> V(obs)``."""

    hidden: Sequence[int] = (256, 256, 256)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return ScalarMLP(self.hidden, self.activation, out_scale=1.0)(obs)


def log_prob(mean: jax.Array, std: jax.Array, action: jax.Array) -> jax.Array:
    """Log density of ``action`` under ``N(mean, diag(std^2))``, summed over the last axis."""
    z = (action - mean) / std
    return jnp.sum(-0.5 * z**2 - jnp.log(std) - 0.5 * math.log(2 * math.pi), axis=-1)


def entropy(std: jax.Array) -> jax.Array:
    """Differential entropy of ``N(., diag(std^2))`` (sum over the last axis)."""
    return jnp.sum(jnp.log(std) + 0.5 * math.log(2 * math.pi * math.e), axis=-1)
