"""Feature-based reward model: an encoder of base features and a reward linear in it.

Paper Sec. 5.1 / Fig. 9 (used there for the transfer experiments): the discriminator
reads only an env's named base features ``f`` (``trirl.rewards.features``; e.g. the
particle position in Point Maze), passes them through a non-linear encoder ``z = phi(f)``
and is linear in the encoding, ``D(f) = w . z + b``. The discriminator network is the
ordinary :class:`~trirl.networks.ScalarMLP`: its hidden layers are the encoder and its
output layer is ``(w, b)``.

Because every discriminator is linear in the *shared* encoding, the reward correction of
Algorithm 2 (lines 19-24) needs no buffer of networks and no regression: the recursion
``R <- (1 - s) R + s * beta * D`` acts on the linear weights alone,

    theta <- (1 - s) theta + s * beta * w,     bias <- (1 - s) bias + s * beta * b,

with ``s = eps / (1 + eta)``, and the corrected reward is ``R(f) = theta . phi(f) + bias``
with the current encoder -- exact, at the cost of one dot product. As in the authors'
feature-based variant (``trirl_trpl_fb``), the encoder keeps training with the
discriminator, so ``theta`` always weighs the newest encoding; the exported ``features``
form is that encoder with ``theta`` as its output layer.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from trirl import discriminator as disc
from trirl.networks import ACTIVATIONS

Params = Any


@struct.dataclass
class LinearReward:
    """The corrected reward's linear weights on the encoding, in the learner's units
    (``r``, not ``r / beta``)."""

    theta: jax.Array  # (H,)
    bias: jax.Array  # ()


def init(width: int) -> LinearReward:
    """R^(0) = 0 (no fitted reward to start from)."""
    return LinearReward(theta=jnp.zeros((width,), jnp.float32), bias=jnp.zeros((), jnp.float32))


def _dense_layers(params: Params) -> list[dict]:
    dense = params["params"]["MLP_0"]
    return [dense[name] for name in sorted(dense, key=lambda n: int(n.split("_")[1]))]


def encode(cfg: disc.DiscriminatorConfig, params: Params, x: jax.Array) -> jax.Array:
    """The encoding ``phi`` (the discriminator's last hidden layer): (..., D) -> (..., H)."""
    act = ACTIVATIONS[cfg.activation]
    h = x
    for layer in _dense_layers(params)[:-1]:
        h = act(h @ layer["kernel"] + layer["bias"])
    return h


def head(params: Params) -> tuple[jax.Array, jax.Array]:
    """The discriminator's linear weights on the encoding, ``(w (H,), b ())``."""
    last = _dense_layers(params)[-1]
    return last["kernel"][:, 0], last["bias"][0]


def corrected_reward(reward: LinearReward, z: jax.Array) -> jax.Array:
    """Corrected reward (Alg. 2 lines 19-23) of encodings z (..., H)."""
    return z @ reward.theta + reward.bias


def intermediate_reward(reward: LinearReward, disc_params: Params, z: jax.Array, beta: float,
                        eps: float) -> jax.Array:
    """Alg. 2 line 24: ``(1 - eps) R + eps * beta * D^(i)``, all on the same encoding."""
    w, b = head(disc_params)
    return (1.0 - eps) * corrected_reward(reward, z) + eps * beta * (z @ w + b)


def update(reward: LinearReward, disc_params: Params, eta: jax.Array, beta: float,
           eps: float) -> LinearReward:
    """One reward correction with ``D^(i)`` and its multiplier: step ``eps / (1 + eta)``."""
    step = eps / (1.0 + jnp.maximum(eta, 0.0))
    w, b = head(disc_params)
    return LinearReward(theta=(1.0 - step) * reward.theta + step * beta * w,
                        bias=(1.0 - step) * reward.bias + step * beta * b)
