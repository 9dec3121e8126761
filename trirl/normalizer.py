"""Running observation normalisation (statistics travel with the model).

Mean and variance are merged batch by batch with Chan et al.'s parallel update, which
is exact for any batch sizes (no exponential forgetting), so the statistics after N
samples equal those of one pass over all N. They are part of the training state and
of every checkpoint and exported reward: a policy or reward is meaningless without the
normalisation it was trained under.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class RunningStats:
    """Mean, variance and sample count of a stream of vectors (float32)."""

    mean: jax.Array
    var: jax.Array
    count: jax.Array


def init(size: int) -> RunningStats:
    return RunningStats(mean=jnp.zeros(size, jnp.float32), var=jnp.ones(size, jnp.float32),
                        count=jnp.zeros((), jnp.float32))


def update(stats: RunningStats, x: jax.Array) -> RunningStats:
    """Merge the rows of ``x`` (any leading axes, last axis = features) into ``stats``."""
    x = x.reshape(-1, x.shape[-1]).astype(jnp.float32)
    n = jnp.asarray(x.shape[0], jnp.float32)
    batch_mean = x.mean(axis=0)
    batch_var = x.var(axis=0)
    total = stats.count + n
    delta = batch_mean - stats.mean
    mean = stats.mean + delta * n / total
    # The prior var is a placeholder 1 while count == 0; the weights below give it 0.
    m2 = stats.var * stats.count + batch_var * n + delta**2 * stats.count * n / total
    return RunningStats(mean=mean, var=m2 / total, count=total)


def normalize(stats: RunningStats, x: jax.Array, clip: float = 10.0) -> jax.Array:
    """``(x - mean) / std``, clipped to ``[-clip, clip]``; std floored at 1e-4 so that
    constant features (e.g. a fixed goal position) map to 0 instead of blowing up."""
    std = jnp.sqrt(jnp.maximum(stats.var, 1e-8))
    return jnp.clip((x - stats.mean) / jnp.maximum(std, 1e-4), -clip, clip)
