"""Forward distance per episode (trirl.evaluation.forward_distances), against sums by hand."""

import types

import numpy as np

from trirl import demos as demos_lib
from trirl.evaluation import forward_distances


def _demos(next_obs, starts):
    n = len(next_obs)
    return demos_lib.Demos(obs=np.zeros_like(next_obs), next_obs=next_obs, actions=None,
                           absorbing=np.zeros(n, bool), truncated=np.zeros(n, bool),
                           episode_starts=np.asarray(starts, np.int64), metadata={})


def test_distance_integrates_the_forward_speed_per_episode():
    env = types.SimpleNamespace(dt=0.05, feature_terms=(("action_sq_sum", "action_sq_sum"),
                                                        ("x_velocity", "next_obs", 1)))
    speed = np.array([1.0, 2.0, 3.0, -1.0, 4.0], np.float32)
    next_obs = np.stack([np.full(5, 9.0, np.float32), speed], axis=1)
    got = forward_distances(env, _demos(next_obs, [0, 3]))
    # episode 0: (1 + 2 + 3) * 0.05 = 0.3 m; episode 1: (-1 + 4) * 0.05 = 0.15 m
    np.testing.assert_allclose(got, [0.3, 0.15], rtol=1e-6)


def test_env_without_a_forward_speed_has_no_distance():
    env = types.SimpleNamespace(dt=0.1, feature_terms=(("goal_distance", "next_obs", 0),))
    assert forward_distances(env, _demos(np.zeros((2, 1), np.float32), [0])) is None
