"""Small Flax networks shared by the policy, critic, discriminator and reward models.

All networks are plain ``flax.linen`` modules whose parameters are ordinary pytrees,
so a stack of k of them is one pytree with a leading axis and can be evaluated with
``jax.vmap`` (see ``trirl.reward_buffer``).
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "elu": jax.nn.elu,
    "silu": jax.nn.silu,
}


class MLP(nn.Module):
    """Fully connected network with orthogonal initialisation.

    Attributes:
      hidden: widths of the hidden layers (paper default: three layers of 256).
      out_dim: width of the linear output layer.
      activation: name of the hidden activation, a key of ``ACTIVATIONS``.
      out_scale: orthogonal gain of the output layer; small values (0.01) make a
        fresh policy start near zero mean, as in PPO practice.
    """

    hidden: Sequence[int]
    out_dim: int
    activation: str = "tanh"
    out_scale: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for width in self.hidden:
            x = nn.Dense(width, kernel_init=nn.initializers.orthogonal(np.sqrt(2.0)),
                         bias_init=nn.initializers.zeros)(x)
            x = act(x)
        return nn.Dense(self.out_dim, kernel_init=nn.initializers.orthogonal(self.out_scale),
                        bias_init=nn.initializers.zeros)(x)


class ScalarMLP(nn.Module):
    """An ``MLP`` with one output, squeezed: values, logits and rewards."""

    hidden: Sequence[int]
    activation: str = "tanh"
    out_scale: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return MLP(self.hidden, 1, self.activation, self.out_scale)(x)[..., 0]
