"""Joint trajectories in memory, whatever file they came from: the :class:`Motion`
record, the layout of a model's joints, the checks shared by every motion reader, and
the resampling (cubic splines, slerp for free joints' quaternions) to a control rate.

The readers are :mod:`trirl.mocap` (LocoMuJoCo, plain arrays) and :mod:`trirl.mjlab`
(mjlab / BeyondMimic motion files); :mod:`trirl.mocap` converts a motion to demos.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Sequence

import numpy as np

from trirl import demos as demos_lib
from trirl.errors import TrirlError

FREE, BALL, SLIDE, HINGE = 0, 1, 2, 3  # mujoco.mjtJoint values, as LocoMuJoCo stores them


_QPOS_WIDTH = {FREE: 7, SLIDE: 1, HINGE: 1}


_QVEL_WIDTH = {FREE: 6, SLIDE: 1, HINGE: 1}


_TYPE_NAME = {FREE: "free", BALL: "ball", SLIDE: "slide", HINGE: "hinge"}


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
