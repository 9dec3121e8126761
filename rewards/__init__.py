"""Reader for trirl ``.reward`` files (import name ``trirl.rewards``).

    from trirl import rewards
    reward = rewards.load("point_maze.reward")
    r = reward(obs, action)                 # NumPy, float32, batches of any shape
    fn = reward.as_jax()                    # the same function, jittable

Imports numpy and safetensors only: no JAX, no MuJoCo (``as_jax`` imports JAX when
called). The file format is described in ``docs/reward-format.md``.
"""

from trirl.rewards._file import FORMAT_VERSION, RewardFileError
from trirl.rewards.reward import Reward, load

__all__ = ["FORMAT_VERSION", "Reward", "RewardFileError", "load"]
