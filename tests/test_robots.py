"""The robot envs (Unitree G1 ``g1_walk``/``g1_run``, Go2 ``go2``) on the C backend.

References are independent of the env code: MuJoCo's own float64 quaternion routines for
base-frame velocities and roll/pitch, finite differences of body positions for the
reward, and the prepared model's structure read back from ``mujoco.MjModel``. C vs a
plain MuJoCo loop and C vs MJX for these envs are in tests/test_backends.py (the MJX
comparison is ``slow``: 1-2 min of compilation per robot).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from trirl import envs
from trirl.envs import g1, legged
from trirl.envs.base import PhysicsArrays
from trirl.errors import TrirlError

from robots import make


@pytest.fixture(scope="module")
def g1_env():
    return make("g1_walk", backend="c")


@pytest.fixture(scope="module")
def go2_env():
    return make("go2", backend="c")


@pytest.fixture(scope="module")
def g1_rollout(g1_env):
    """20 steps of random actions from a reset: (states, actions)."""
    env = g1_env
    step = jax.jit(env.step)
    state = jax.jit(env.reset)(jax.random.key(0))
    actions = jax.random.uniform(jax.random.key(1), (20, env.action_size), minval=-0.3,
                                 maxval=0.3)
    states = [state]
    for a in actions:
        states.append(step(states[-1], a))
    return states, actions


def _joint_names(model):
    return [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(model.njnt)]


def test_g1_model_has_23_joints_wrists_locked_and_feet_floor_contacts_only(g1_env):
    m = g1_env.mj_model
    names = _joint_names(m)
    assert g1_env.action_size == m.nu == 23 and m.nq == 7 + 23 and m.nv == 6 + 23
    assert not any("wrist" in n for n in names)
    assert np.all(m.geom_contype == 0) and np.all(m.geom_conaffinity == 0)
    def name(g):
        return mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, int(g))
    pairs = {frozenset((name(a), name(b))) for a, b in zip(m.pair_geom1, m.pair_geom2)}
    assert pairs == {frozenset((foot, "floor")) for foot in g1.FEET}
    assert g1_env.dt == pytest.approx(0.02)
    # position servos: force = kp (ctrl - q) - kv qdot, kp > 0
    assert np.all(m.actuator_biasprm[:, 1] == -m.actuator_gainprm[:, 0])
    assert np.all(m.actuator_gainprm[:, 0] > 0)


def test_g1_home_pose_is_the_menagerie_keyframe_without_wrists(g1_env):
    full = g1._home_keyframe((g1.robot_dir("unitree_g1") / "scene_mjx.xml").read_text())
    assert len(full) == 7 + 29
    np.testing.assert_allclose(g1_env.home_qpos[:7], full[:7], rtol=1e-6)
    # knees bent 0.3 rad, elbows 1.28 rad in Menagerie's home keyframe
    q = dict(zip(g1_env.joint_names(), g1_env.home_qpos[7:]))
    assert q["left_knee_joint"] == pytest.approx(0.3) and q["right_elbow_joint"] == pytest.approx(1.28)


def test_g1_observation_against_mujoco_quaternion_routines(g1_rollout, g1_env):
    states, _ = g1_rollout
    env = g1_env
    for state in states[1:]:
        arrays = jax.tree.map(np.asarray, state.data.arrays)
        qpos, qvel = arrays.qpos.astype(np.float64), arrays.qvel.astype(np.float64)
        quat = qpos[3:7] / np.linalg.norm(qpos[3:7])
        neg = np.empty(4)
        mujoco.mju_negQuat(neg, quat)
        lin = np.empty(3)
        mujoco.mju_rotVecQuat(lin, qvel[:3], neg)
        mat = np.empty(9)
        mujoco.mju_quat2Mat(mat, quat)
        mat = mat.reshape(3, 3)
        roll, pitch = np.arctan2(mat[2, 1], mat[2, 2]), -np.arcsin(mat[2, 0])
        act_q = env._actuator_qpos
        expected = np.concatenate([lin, qvel[3:6], [roll, pitch],
                                   qpos[act_q] - env.home_qpos[act_q],
                                   qvel[env._actuator_qvel]])
        np.testing.assert_allclose(np.asarray(state.obs[:g1.PROPRIO]), expected,
                                   rtol=1e-4, atol=1e-4)
    assert env.obs_names[:3] == ("vx", "vy", "vz")
    assert env.observation_size == g1.PROPRIO * (env.config.history + 1) == 216


def test_g1_history_stack_shifts_by_one_frame(g1_rollout, g1_env):
    states, _ = g1_rollout
    p, h = g1.PROPRIO, g1_env.config.history
    first = np.asarray(states[0].obs)
    np.testing.assert_array_equal(first, np.tile(first[:p], h + 1))   # reset: no past yet
    for prev, cur in zip(states[:-1], states[1:]):
        np.testing.assert_array_equal(np.asarray(cur.obs[p:]), np.asarray(prev.obs[:p * h]))


def test_g1_reward_is_the_imitation_score_of_the_torso_velocity(g1_rollout, g1_env):
    states, _ = g1_rollout
    torso = mujoco.mj_name2id(g1_env.mj_model, mujoco.mjtObj.mjOBJ_BODY, "torso_link")
    for prev, cur in zip(states[:-1], states[1:]):
        dx = (np.asarray(cur.data.arrays.xpos[torso, :2], np.float64)
              - np.asarray(prev.data.arrays.xpos[torso, :2], np.float64)) / 0.02
        expected = np.exp(-((dx[0] - 1.0) ** 2 + dx[1] ** 2))
        assert float(cur.reward) == pytest.approx(expected, rel=1e-4, abs=1e-5)
    # standing still scores exp(-1) per step for the 1 m/s walk, exp(-6.25) for the run
    assert envs.make("g1_run", backend="c").config.target_speed == 2.5


def test_g1_replays_its_own_states_into_the_same_observations(g1_rollout, g1_env):
    states, _ = g1_rollout
    qpos = np.stack([np.asarray(s.data.arrays.qpos) for s in states])
    qvel = np.stack([np.asarray(s.data.arrays.qvel) for s in states])
    replay = g1_env.observations_of(qpos, qvel)
    # CData's arrays are float32 copies of the float64 state: float32-level agreement
    np.testing.assert_allclose(replay, np.stack([np.asarray(s.obs) for s in states]),
                               rtol=1e-4, atol=1e-4)


def test_g1_falls_are_absorbing(g1_env):
    state = jax.jit(g1_env.reset)(jax.random.key(0))
    arrays = jax.tree.map(np.asarray, state.data.arrays)
    low = arrays.replace(qpos=arrays.qpos.copy())
    low.qpos[2] = 0.3
    assert bool(g1_env._terminated(low)) and not bool(g1_env._terminated(arrays))
    tilted = arrays.replace(qpos=arrays.qpos.copy())
    tilted.qpos[3:7] = [np.cos(0.6), np.sin(0.6), 0, 0]   # 69 degrees of roll
    assert bool(g1_env._terminated(tilted))


def test_g1_stands_with_zero_action_and_falls_with_large_random_actions(g1_env):
    step = jax.jit(jax.vmap(g1_env.step))
    state = jax.jit(jax.vmap(g1_env.reset))(jax.random.split(jax.random.key(2), 4))
    fell = np.zeros(4, bool)
    key = jax.random.key(3)
    for _ in range(100):
        key, sub = jax.random.split(key)
        state = step(state, jax.random.uniform(sub, (4, 23), minval=-1, maxval=1))
        fell |= np.asarray(state.absorbing)
    assert fell.any(), "random PD targets should topple the humanoid"
    state = jax.jit(g1_env.reset)(jax.random.key(4))
    one = jax.jit(g1_env.step)
    for _ in range(50):
        state = one(state, jnp.zeros(23))
        assert not bool(state.done)


def test_go2_observes_the_previous_action_and_holds_its_stance(go2_env):
    env = go2_env
    assert env.observation_size == 42 and env.action_size == 12 and env.mj_model.npair == 4
    state = jax.jit(env.reset)(jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(state.obs[-12:]), np.zeros(12))
    step = jax.jit(env.step)
    a = jnp.linspace(-0.5, 0.5, 12)
    state = step(state, a)
    np.testing.assert_allclose(np.asarray(state.obs[-12:]), np.asarray(a), rtol=1e-6)
    state = step(state, 2 * jnp.ones(12))         # clipped to the bounds before it is seen
    np.testing.assert_array_equal(np.asarray(state.obs[-12:]), np.ones(12))
    state = jax.jit(env.reset)(jax.random.key(1))
    for _ in range(100):
        state = step(state, jnp.zeros(12))
        assert not bool(state.done)
    assert float(state.data.arrays.qpos[2]) > 0.2
    with pytest.raises(TrirlError, match="previous actions"):
        env.observations_of(np.zeros((2, env.mj_model.nq)), np.zeros((2, env.mj_model.nv)))


def test_go2_velocities_are_in_the_trunk_frame():
    # A yawed trunk moving along world x: the trunk-frame velocity is rotated by -yaw.
    yaw = 0.7
    quat = np.array([np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)])
    v = np.asarray(legged.rotate_inverse(jnp.asarray(quat), jnp.array([1.0, 0.0, 0.0])))
    np.testing.assert_allclose(v, [np.cos(yaw), -np.sin(yaw), 0.0], atol=1e-6)
    np.testing.assert_allclose(np.asarray(legged.roll_pitch(jnp.asarray(quat))), [0, 0],
                               atol=1e-6)


def test_missing_robot_model_is_one_line_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("TRIRL_ASSETS_DIR", str(tmp_path))
    with pytest.raises(TrirlError, match=r"trirl assets fetch g1") as info:
        envs.make("g1_walk", backend="c")
    assert "\n" not in str(info.value)


def test_physics_arrays_round_trip_for_a_robot(g1_env):
    # the env reads only PhysicsArrays: the same arrays from a raw MjData give its obs
    d = mujoco.MjData(g1_env.mj_model)
    d.qpos[:] = g1_env.home_qpos
    mujoco.mj_forward(g1_env.mj_model, d)
    obs = np.asarray(g1_env._observe(PhysicsArrays.from_mjdata(d)))
    assert obs.shape == (216,) and np.all(np.isfinite(obs))
    np.testing.assert_allclose(obs[6:8], [0, 0], atol=1e-7)        # upright at home


# ---------------------------------------------------- motion capture -> reward -> policy

TINY_G1 = ("ppo.num_envs=4", "ppo.rollout_length=4", "ppo.minibatch_size=8",
           "ppo.num_epochs=1", "ppo.hidden=8", "disc.hidden=8", "disc.num_steps=2",
           "disc.minibatch_size=8", "fit.hidden=8", "fit.num_steps=2", "fit.minibatch_size=8",
           "capacity=2")


def test_g1_mocap_to_reward_file_to_retrained_policy(tmp_path):
    """The headline path of issue 6 on a tiny budget: the synthetic G1 gait in the
    LocoMuJoCo layout -> `trirl demos convert` -> `trirl learn --demos` (no --inputs:
    observation-only demos select D(s, s')) -> `trirl export` -> `trirl retrain`."""
    import json

    import numpy as np_
    from click.testing import CliRunner

    from trirl.cli.main import main
    from trirl.rewards import reward as reward_file

    make("g1_walk", backend="c")   # fetches the model if needed

    def cli(*args):
        result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    gait, demos = tmp_path / "gait.npz", tmp_path / "g1_walk.npz"
    cli("demos", "synthetic-gait", "-o", gait, "--seconds", 2, "--segments", 2)
    cli("demos", "convert", "--from", "loco-mujoco", gait, "-o", demos, "--env", "g1_walk")
    meta = json.loads(str(np_.load(demos)["metadata"]))
    assert meta["expert_return_mean"] == 1000.0 and meta["random_return_mean"] < 200
    sets = [x for s in TINY_G1 for x in ("--set", s)]
    run = tmp_path / "learn"
    cli("learn", "--demos", demos, "--steps", 32, "--run-dir", run, "--backend", "c",
        "--env-set", "episode_length=20", *sets)
    config = json.loads((run / "config.json").read_text())
    assert config["env"] == "g1_walk" and config["trirl"]["inputs"] == "ss"
    out = tmp_path / "g1.reward"
    cli("export", run, "-o", out)
    reward = reward_file.load(out)
    assert reward.inputs == "ss" and not reward.reads_action and reward.env_name == "g1_walk"
    obs = np_.load(demos)["obs"][:5]
    values = reward(obs=obs, next_obs=np_.load(demos)["next_obs"][:5])
    assert values.shape == (5,) and np_.all(np_.isfinite(values))
    retrain = tmp_path / "retrain"
    cli("retrain", "--reward", out, "--steps", 32, "--seeds", 1, "--run-dir", retrain,
        "--backend", "c", "--set", "num_envs=4", "--set", "rollout_length=4",
        "--set", "minibatch_size=8", "--set", "num_epochs=1", "--set", "hidden=8")
    assert (retrain / "config.json").exists()
