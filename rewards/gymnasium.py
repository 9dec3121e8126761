"""A gymnasium wrapper that replaces the env's reward with a learned ``.reward``.

    import gymnasium as gym
    from trirl.rewards.gymnasium import LearnedReward
    env = LearnedReward(gym.make("MyEnv-v0"), "point_maze.reward")

Any gymnasium-based agent (Stable-Baselines3, CleanRL, ...) then trains on the learned
reward. Terminal transitions: trirl treats termination as entering an absorbing state
s_a that keeps paying ``r(s_a)`` forever (paper App. C.4). Agents built on gymnasium stop
bootstrapping at ``terminated``, so the wrapper adds that future to the terminal step:
``r(s, a, s') + gamma / (1 - gamma) * r(s_a)`` -- the same value trirl's own PPO
bootstraps. Truncation (time limits) is not termination and gets nothing extra. The
env's own reward stays available as ``info["env_reward"]``.

Needs gymnasium (``pip install "trirl[gymnasium]"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import gymnasium
import numpy as np

from trirl.rewards.reward import Reward, load


class LearnedReward(gymnasium.Wrapper):
    """Replace ``env``'s reward by a learned reward.

    Args:
      env: a gymnasium env with flat Box observations (and Box actions for rewards that
        read actions) laid out as the reward expects.
      reward: a ``.reward`` path or a loaded :class:`~trirl.rewards.Reward`.
      gamma: discount of the agent, for the terminal absorbing-state value
        [default: the discount the reward was learned with].
      absorbing_value: add ``gamma / (1 - gamma) * r(s_a)`` at termination (set False if
        your agent models absorbing states itself).
    """

    def __init__(self, env: gymnasium.Env, reward: Union[str, Path, Reward],
                 gamma: Optional[float] = None, absorbing_value: bool = True):
        super().__init__(env)
        self.reward = reward if isinstance(reward, Reward) else load(reward)
        shape = getattr(env.observation_space, "shape", None)
        if shape is None or len(shape) != 1:
            raise ValueError(f"{self.reward.path}: the env's observation space "
                             f"{env.observation_space} is not a flat Box; flatten it first")
        self.reward.check_observations(int(shape[0]), where="the gymnasium env")
        if self.reward.reads_action:
            act_shape = getattr(env.action_space, "shape", None)
            if act_shape is None or tuple(act_shape) != (self.reward.action_size,):
                raise ValueError(f"{self.reward.path}: the reward reads {self.reward.action_size}"
                                 f" action values; the env's action space is {env.action_space}")
        self.gamma = float(self.reward.header.get("gamma", 0.99) if gamma is None else gamma)
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"gamma must be in [0, 1), got {self.gamma}")
        self.terminal_bonus = (self.gamma / (1.0 - self.gamma) * self.reward.absorbing_reward
                               if absorbing_value else 0.0)
        self._obs = None

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._obs = np.asarray(obs, np.float32)
        return obs, info

    def step(self, action):
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        next_obs, env_reward, terminated, truncated, info = self.env.step(action)
        r = float(self.reward(self._obs[None], np.asarray(action, np.float32)[None],
                              np.asarray(next_obs, np.float32)[None],
                              absorbing=np.array([bool(terminated)]))[0])
        if terminated:
            r += self.terminal_bonus
        self._obs = np.asarray(next_obs, np.float32)
        return next_obs, r, terminated, truncated, {**info, "env_reward": env_reward}
