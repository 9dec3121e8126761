"""Train any gymnasium agent on a trirl reward: a complete, runnable example.

    python -m trirl.examples.gymnasium_reward REWARD_FILE [--episodes 3]

1. ``PointMazeGym`` exposes trirl's Point Maze (MuJoCo MJX, one env, jitted step) with
   the gymnasium API -- any gymnasium env with the reward's observation layout works.
2. ``LearnedReward`` replaces its reward with the ``.reward`` file's.
3. A random policy stands in for the agent; with Stable-Baselines3 it would be

       from stable_baselines3 import PPO
       PPO("MlpPolicy", env).learn(1_000_000)

Needs gymnasium (``pip install "trirl[gymnasium]"``).
"""

from __future__ import annotations

import argparse

import gymnasium
import jax
import numpy as np

from trirl import envs
from trirl.rewards.gymnasium import LearnedReward


class PointMazeGym(gymnasium.Env):
    """trirl's ``point_maze`` as a single gymnasium env (true reward, time limit)."""

    def __init__(self, name: str = "point_maze"):
        self.env = envs.make(name)
        n, m = self.env.observation_size, self.env.action_size
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (n,), np.float32)
        self.action_space = gymnasium.spaces.Box(self.env.action_low, self.env.action_high,
                                                 (m,), np.float32)
        self._reset = jax.jit(self.env.reset)
        self._step = jax.jit(self.env.step)
        self._state = None

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        key = jax.random.PRNGKey(int(self.np_random.integers(2**31)))
        self._state = self._reset(key)
        return np.asarray(self._state.obs), {}

    def step(self, action):
        self._state = self._step(self._state, np.asarray(action, np.float32))
        s = self._state
        return (np.asarray(s.obs), float(s.reward), bool(s.absorbing), bool(s.truncated), {})


def main(argv=None) -> list[tuple[float, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reward")
    parser.add_argument("--episodes", type=int, default=3)
    args = parser.parse_args(argv)
    env = LearnedReward(PointMazeGym(), args.reward)
    env.action_space.seed(0)
    results = []
    for episode in range(args.episodes):
        obs, _ = env.reset(seed=episode)
        learned = true = 0.0
        done = False
        while not done:
            obs, r, terminated, truncated, info = env.step(env.action_space.sample())
            learned, true = learned + r, true + info["env_reward"]
            done = terminated or truncated
        results.append((learned, true))
        print(f"episode {episode}: learned return {learned:.3f}, true return {true:.3f}")
    return results


if __name__ == "__main__":
    main()
