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

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner

from trirl import demos as demos_lib
from trirl import envs, mocap
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
    names, types = mocap.joint_layout(model)
    order = list(range(model.njnt)) if order is None else list(order)
    width = {mocap.FREE: (7, 6), mocap.HINGE: (1, 1), mocap.SLIDE: (1, 1)}
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
    new_qpos, _ = mocap.resample(qpos, qvel, 10.0, 50.0, quat_columns=[3, 4, 5, 6])
    fine = np.arange(51) / 50.0
    np.testing.assert_allclose(new_qpos[:, 3:7], analytic_free_body(fine)[0][:, 3:7], atol=1e-12)
    # q and -q are one rotation: slerp takes the short way and keeps q0's sign
    q0, q1 = qpos[[0]][:, 3:7], -qpos[[1]][:, 3:7]
    mid = mocap.slerp(q0, q1, np.array([0.5]))
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
