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


def test_bundled_reward_is_a_features_reward_that_pays_for_walking_not_falling():
    """examples/ant.reward: learned from examples/ant.npz (its hash in the provenance)
    with Ant's feature preset, reads only what ant_disabled also has, rises with forward
    velocity (hand check: a linear reward in raw features, r(v2) - r(v1) = w_v (v2 -
    v1)), ignores the action, and values the absorbing state (a fall) below the
    expert's own transitions."""
    reward = rewards.load(_example("ant.reward"))
    assert reward.header["form"] == "features" and reward.env_name == "ant"
    prov = reward.header["provenance"]
    assert prov["demos_sha256"] == _file.file_sha256(bundled_demos("ant")), \
        "examples/ant.npz changed: rerun benchmarks/ant_reward.sh"
    retrain.check_compatible(reward, envs.make("ant_disabled"))
    names = [f["name"] for f in reward.header["features"]]
    assert names == ["x_velocity", "torso_height"] and not reward.header["inputs"]["normalize"]

    demos = demos_lib.load(bundled_demos("ant"))
    obs, act, nxt = demos.obs[:200], demos.actions[:200], demos.next_obs[:200]
    faster = nxt.copy()
    faster[:, 13] += 1.0
    w_v = float(reward.tensors["reward/layer0/kernel"].astype(np.float64).ravel()[0])
    r, r_fast = reward(obs, act, next_obs=nxt), reward(obs, act, next_obs=faster)
    assert w_v > 0
    np.testing.assert_allclose(r_fast.astype(np.float64) - r, w_v, rtol=1e-4)
    np.testing.assert_array_equal(reward(obs, np.zeros_like(act), next_obs=nxt), r)
    assert reward.absorbing_reward < np.percentile(r, 5)
