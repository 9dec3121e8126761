"""``trirl render``: GIFs of a demo file's states and of a run's deterministic policy,
offscreen. Skipped, with the reason, where MuJoCo finds no offscreen OpenGL (EGL or
OSMesa; see the README for what to install). Frames are checked to be real pictures:
the right size and count (hand-computed from the control rate), not blank, and changing
as the bodies move."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from trirl import envs, mocap, motion
from trirl import render as render_lib
from trirl.cli.main import main
from trirl.errors import TrirlError


@pytest.fixture(scope="module")
def gl():
    try:
        return render_lib.ensure_gl()
    except TrirlError as exc:
        pytest.skip(f"no offscreen OpenGL here: {exc}")


def invoke(args):
    return CliRunner().invoke(main, [str(a) for a in args], env={"COLUMNS": "200"})


def gif_frames(path) -> list[np.ndarray]:
    from PIL import Image

    with Image.open(path) as im:
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB"), np.float64))
    return frames


@pytest.fixture(scope="module")
def walker_demos(tmp_path_factory):
    """A walker2d demo file with states: 41 frames at 125 Hz of a closed-form gait that
    moves forward 0.5 m/s and swings every joint (no physics stepping: fast)."""
    folder = tmp_path_factory.mktemp("render")
    env = envs.make("walker2d", backend="c")
    t = np.arange(41) * env.dt
    qpos = np.zeros((41, 9)) + np.array([0.0, 1.25] + [0.0] * 7)
    qvel = np.zeros((41, 9))
    qpos[:, 0], qvel[:, 0] = 0.5 * t, 0.5
    qpos[:, 3:], qvel[:, 3:] = 0.6 * np.sin(20 * t)[:, None], 12 * np.cos(20 * t)[:, None]
    names, types = motion.joint_layout(env.mj_model)
    mocap.save_loco_mujoco(folder / "clip.npz", names, qpos, qvel, 1 / env.dt,
                           joint_types=types)
    out = folder / "walker_demos.npz"
    mocap.convert(folder / "clip.npz", env, output=out)
    return out


def test_demo_file_renders_real_frames(gl, walker_demos, tmp_path):
    out = tmp_path / "walk.gif"
    result = invoke(["render", walker_demos, "-o", out, "--size", "64x48", "--fps", "25"])
    assert result.exit_code == 0, (result.output, result.exception)
    frames = gif_frames(out)
    # 40 stored states (obs rows) at 125 Hz, every 5th for 25 fps: rows 0, 5, ..., 35
    assert len(frames) == 8 and all(f.shape == (48, 64, 3) for f in frames)
    assert all(f.std() > 5 for f in frames)                          # not blank
    assert np.abs(frames[0] - frames[4]).mean() > 1.0                 # the legs move
    assert f"wrote {out}: 8 frames of 64x48 at 25 fps" in result.stdout
    # a second demo file beside it: two panels side by side
    two = tmp_path / "two.gif"
    result = invoke(["render", walker_demos, "--beside", walker_demos, "-o", two,
                     "--size", "64x48"])
    assert result.exit_code == 0, result.output
    pair = gif_frames(two)
    assert pair[0].shape == (48, 128, 3)
    # same states, same camera: the right panel equals the left (labels aside)
    np.testing.assert_allclose(pair[3][16:, 64:], pair[3][16:, :64], atol=8)


def test_run_policy_renders(gl, tmp_path):
    run = tmp_path / "pm"
    tiny = ["--set", "num_envs=8", "--set", "rollout_length=4", "--set", "minibatch_size=16",
            "--set", "hidden=8"]
    result = invoke(["expert", "--env", "point_maze", "--steps", "64", *tiny, "--run-dir", run])
    assert result.exit_code == 0, result.output
    result = invoke(["render", run, "--seconds", "0.4", "--size", "80x60"])
    assert result.exit_code == 0, (result.output, result.exception)
    frames = gif_frames(run / "gait.gif")   # default output inside the run
    # point_maze steps 0.01 s: 41 states, every 4th at 25 fps -> 11 frames (or fewer
    # if the particle reached the goal, which ends the episode)
    assert 1 <= len(frames) <= 11 and frames[0].shape == (60, 80, 3)
    assert frames[0].std() > 5
    # another run beside it (here the same one: the expert a learner imitated, for Go2)
    result = invoke(["render", run, "--beside", run, "--seconds", "0.2", "--size", "80x60",
                     "-o", tmp_path / "pair.gif"])
    assert result.exit_code == 0, (result.output, result.exception)
    pair = gif_frames(tmp_path / "pair.gif")
    assert pair[0].shape == (60, 160, 3) and "beside it: the policy of" in result.stdout
    np.testing.assert_allclose(pair[-1][16:, 80:], pair[-1][16:, :80], atol=8)  # same policy


def test_render_errors_are_one_line_and_write_nothing(gl, walker_demos, tmp_path):
    out = tmp_path / "walk.mp4"
    result = invoke(["render", walker_demos, "-o", out])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "only GIF output" in result.stderr and not out.exists()
    from trirl import demos as demos_lib
    import dataclasses

    plain = tmp_path / "plain.npz"
    d = demos_lib.load(walker_demos)
    demos_lib.save(plain, dataclasses.replace(d, qpos=None, qvel=None))
    result = invoke(["render", plain, "-o", tmp_path / "p.gif"])
    assert result.exit_code == 2 and "keeps no states to replay" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.npz"]


def test_no_gl_backend_is_one_line_with_what_to_install(monkeypatch):
    monkeypatch.setattr(render_lib, "_chosen_gl", None)
    monkeypatch.setenv("MUJOCO_GL", "no-such-backend")
    with pytest.raises(TrirlError) as err:
        render_lib.ensure_gl()
    message = str(err.value)
    assert "\n" not in message and "MUJOCO_GL=no-such-backend" in message
    assert "apt-get install libegl1" in message and "libosmesa6" in message
