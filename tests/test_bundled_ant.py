"""The bundled Ant files (issue 30): examples/ant.npz and ant_disabled.npz (30 expert
episodes each, `benchmarks/ant_reward.sh`) and examples/ant.reward, learned from the
former, which `trirl transfer --reward examples/ant.reward --env ant_disabled` optimises."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np
import pytest

from trirl import demos as demos_lib
from trirl import envs, retrain, rewards
from trirl.evaluation import bundled_demos
from trirl.rewards import _file


def _example(name: str) -> Path:
    return Path(str(importlib.resources.files("trirl.examples") / name))


def _v5_ant_returns(demos) -> np.ndarray:
    """Episode returns by Gymnasium Ant-v5's formula, float64, from the recorded rows:
    forward velocity (obs[13], the torso's x velocity) + 1 (healthy) - 0.5 |a|^2
    - 5e-4 |clipped cfrc_ext|^2 (obs[27:])."""
    a, nxt = demos.actions.astype(np.float64), demos.next_obs.astype(np.float64)
    r = nxt[:, 13] + 1.0 - 0.5 * np.sum(a * a, 1) - 5e-4 * np.sum(nxt[:, 27:] ** 2, 1)
    return np.add.reduceat(r, demos.episode_starts)


@pytest.mark.parametrize("env_name", ["ant", "ant_disabled"])
def test_bundled_demos_are_30_whole_expert_episodes(env_name):
    path = bundled_demos(env_name)
    assert path is not None and path.name == f"{env_name}.npz"
    demos = demos_lib.load(path, env=envs.make(env_name), require_actions=True)
    meta = demos.metadata
    assert demos.num_episodes == 30 and meta["deterministic"] is True
    # Recorded with --drop-terminated: every episode walks to the time limit.
    assert not demos.absorbing.any() and np.all(demos.episode_lengths == 1000)
    assert meta["dropped_terminated_episodes"] >= 0
    assert meta["expert_return_mean"] > meta["random_return_mean"] + 2000
    if env_name == "ant":   # an independent check of the stored reference return
        returns = _v5_ant_returns(demos)
        assert returns.mean() == pytest.approx(meta["expert_return_mean"], rel=2e-3)
        assert returns.std() == pytest.approx(meta["expert_return_std"], rel=2e-2)
