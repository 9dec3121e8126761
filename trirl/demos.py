"""Expert demonstrations: the ``.npz`` file format, its validation, and recording.

A demonstration file is a flat list of transitions ``(obs, action, next_obs)`` from one
or more episodes, stored as plain numeric arrays plus one JSON metadata string in a
NumPy ``.npz`` archive. It can be written without trirl (``docs/demo-format.md``) and
is never unpickled: :func:`load` reads it with ``allow_pickle=False`` and checks every
array and field, so a bad file fails at load time with one line that names the file,
the field and the fix -- not as a shape error deep inside a training run.

>>> demos, returns = record(env, act_fn, jax.random.key(0), episodes=16, params=params)
>>> save("expert.npz", demos)
>>> demos = load("expert.npz", env=env, require_actions=True)

Arrays (``N`` transitions, ``E`` episodes, stored back to back, episode by episode):

- ``obs`` float32 ``(N, obs_size)``: observation the action was taken in.
- ``next_obs`` float32 ``(N, obs_size)``: observation the transition reached.
- ``actions`` float32 ``(N, action_size)``, optional: absent for observation-only demos
  (e.g. motion capture); :attr:`Demos.actions` is then ``None``.
- ``absorbing`` bool ``(N,)``: the transition entered a terminal state (its successor is
  the absorbing state). Only an episode's last transition may set it.
- ``truncated`` bool ``(N,)``: the episode was cut by the time limit at this transition
  (``next_obs`` is an ordinary state). Only an episode's last transition may set it;
  never together with ``absorbing``.
- ``episode_starts`` int64 ``(E,)``: index of each episode's first transition; starts
  at 0 and strictly increases. Inside an episode ``next_obs[i] == obs[i + 1]``.
- ``metadata``: 0-d unicode array holding a JSON object (see :data:`METADATA_FIELDS`).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import math
import os
import uuid
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

import trirl
from trirl.errors import TrirlError

FORMAT_VERSION = 1
"""Version of the file layout written by :func:`save`. :func:`load` reads every version
up to this one and refuses newer files (they may hold data this trirl would misread)."""

REQUIRED_METADATA = ("format_version", "env", "obs_size", "action_size", "obs_names",
                     "control_timestep", "episode_length")
"""Metadata fields every file must have. ``action_size`` may be ``null`` only in a file
without actions."""

OPTIONAL_METADATA = ("expert_return_mean", "expert_return_std", "random_return_mean",
                     "random_return_std", "source", "trirl_version", "created", "seed",
                     "deterministic")
"""Metadata fields that may be missing or ``null``; :func:`load` fills missing ones with
``None`` so ``Demos.metadata`` always has every field."""

METADATA_FIELDS = REQUIRED_METADATA + OPTIONAL_METADATA

_ARRAY_KEYS = ("obs", "next_obs", "actions", "absorbing", "truncated", "episode_starts")
_REQUIRED_KEYS = ("obs", "next_obs", "absorbing", "truncated", "episode_starts", "metadata")
# Optional MuJoCo states of each obs row (motion capture keeps them: `trirl render`
# replays them); float64 (N, nq) and (N, nv), both or neither.
_STATE_KEYS = ("qpos", "qvel")
_ALL_KEYS = _ARRAY_KEYS + _STATE_KEYS + ("metadata",)

# next_obs[i] must equal obs[i + 1] inside an episode. Data written through float32
# is bit-identical; the tolerance only forgives a user's float64 -> float32 pipeline
# that rounded the two copies differently. A missing episode boundary jumps by far more.
_CONTINUITY_RTOL = 1e-5
_CONTINUITY_ATOL = 1e-6


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: == on arrays is ambiguous
class Demos:
    """Validated demonstrations; build them with :func:`record` or :func:`load`.

    Attributes:
      obs: float32 ``(N, obs_size)``, the observation each action was taken in.
      next_obs: float32 ``(N, obs_size)``, the observation each transition reached.
      actions: float32 ``(N, action_size)``, or ``None`` for observation-only demos.
      absorbing: bool ``(N,)``, the transition entered a terminal state.
      truncated: bool ``(N,)``, the episode hit its time limit at this transition.
      episode_starts: int64 ``(E,)``, index of each episode's first transition.
      metadata: dict with every field of :data:`METADATA_FIELDS` (and any extra ones
        the file carried). Change it with ``dataclasses.replace(demos, metadata=...)``.
      qpos, qvel: float64 ``(N, nq)``, ``(N, nv)``: the environment's MuJoCo state in
        which each ``obs`` row was observed, or ``None`` (optional; motion capture
        converted by trirl keeps them, so the demos can be replayed and rendered).
    """

    obs: np.ndarray
    next_obs: np.ndarray
    actions: Optional[np.ndarray]
    absorbing: np.ndarray
    truncated: np.ndarray
    episode_starts: np.ndarray
    metadata: dict
    qpos: Optional[np.ndarray] = None
    qvel: Optional[np.ndarray] = None

    @property
    def num_transitions(self) -> int:
        return int(self.obs.shape[0])

    @property
    def num_episodes(self) -> int:
        return int(self.episode_starts.shape[0])

    @property
    def has_actions(self) -> bool:
        return self.actions is not None

    @property
    def episode_ends(self) -> np.ndarray:
        """int64 ``(E,)``: one past each episode's last transition (slice ends)."""
        return np.append(self.episode_starts[1:], self.num_transitions).astype(np.int64)

    @property
    def episode_lengths(self) -> np.ndarray:
        """int64 ``(E,)``: transitions per episode."""
        return self.episode_ends - self.episode_starts


# ------------------------------------------------------------------------------ errors


def _fail(source: str, field: str, problem: str, fix: str):
    """Raise the one-line :class:`TrirlError` every validation failure uses."""
    message = f"demo file {source}: {field}: {problem}; fix: {fix}"
    # Embedded exception texts may span lines; the CLI contract is one line.
    raise TrirlError(" ".join(message.splitlines()))


def _short(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split())
    text = text if len(text) <= limit else text[:limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ---------------------------------------------------------------------------- metadata


def env_metadata(env, **fields) -> dict:
    """Metadata for demos of ``env``: every field of :data:`METADATA_FIELDS`, the ones
    the environment determines filled in, the rest ``None`` unless given in ``fields``
    (which may also add fields of your own)."""
    metadata = dict.fromkeys(METADATA_FIELDS)
    metadata.update(
        format_version=FORMAT_VERSION, env=env.name, obs_size=int(env.observation_size),
        action_size=int(env.action_size), obs_names=[str(n) for n in env.obs_names],
        control_timestep=float(env.dt), episode_length=int(env.episode_length),
        trirl_version=trirl.__version__,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    metadata.update(fields)
    return metadata


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _reject_constant(name: str):
    # json.loads accepts NaN/Infinity by default; they are not JSON and no field may hold them.
    raise ValueError(f"{name} is not valid JSON (use null)")


def _parse_metadata(source: str, entry: np.ndarray) -> dict:
    """Decode the ``metadata`` entry (0-d unicode array holding a JSON object)."""
    if entry.dtype.kind != "U" or entry.ndim != 0:
        _fail(source, "metadata", f"is a {entry.ndim}-d {entry.dtype} array, expected a 0-d "
              "unicode string holding a JSON object",
              "store it as metadata=np.array(json.dumps(metadata_dict))")
    try:
        metadata = json.loads(str(entry[()]), parse_constant=_reject_constant)
    except ValueError as exc:
        _fail(source, "metadata", f"is not valid JSON ({_short(exc)})",
              "write it with json.dumps(metadata_dict)")
    if not isinstance(metadata, dict):
        _fail(source, "metadata", f"holds a JSON {type(metadata).__name__}, expected an object",
              "store a dict: np.array(json.dumps({'format_version': 1, ...}))")
    return metadata


def _check_metadata(source: str, metadata: dict) -> dict:
    """Check the metadata fields' presence and types; return them with optional fields
    defaulted to ``None``."""
    version = metadata.get("format_version")
    if "format_version" not in metadata or not _is_int(version):
        _fail(source, "metadata.format_version", f"is {version!r}, expected an integer",
              f"set format_version to {FORMAT_VERSION}")
    if version > FORMAT_VERSION:
        # Checked before any other field: a newer layout may have renamed them.
        _fail(source, "metadata.format_version",
              f"is {version}, newer than the {FORMAT_VERSION} this trirl "
              f"{trirl.__version__} reads", "upgrade trirl (pip install -U trirl)")
    if version < 1:
        _fail(source, "metadata.format_version", f"is {version}, versions start at 1",
              f"set format_version to {FORMAT_VERSION}")
    missing = [name for name in REQUIRED_METADATA if name not in metadata]
    if missing:
        _fail(source, f"metadata.{missing[0]}", "is missing",
              f"add {', '.join(missing)} to the metadata JSON (see docs/demo-format.md)")

    def need(name, ok, expected):
        if not ok(metadata.get(name)):
            _fail(source, f"metadata.{name}", f"is {metadata.get(name)!r}, expected {expected}",
                  "correct it in the metadata JSON (see docs/demo-format.md)")

    need("env", lambda v: isinstance(v, str) and v != "", "a non-empty environment name")
    need("obs_size", lambda v: _is_int(v) and v >= 1, "a positive integer")
    need("action_size", lambda v: v is None or (_is_int(v) and v >= 1),
         "a positive integer (or null without actions)")
    need("obs_names", lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v),
         "a list of strings")
    if len(metadata["obs_names"]) != metadata["obs_size"]:
        _fail(source, "metadata.obs_names", f"has {len(metadata['obs_names'])} names but "
              f"obs_size is {metadata['obs_size']}", "give one name per observation column")
    need("control_timestep", lambda v: _is_number(v) and v > 0, "a positive number of seconds")
    need("episode_length", lambda v: _is_int(v) and v >= 1, "a positive integer")
    for name in ("expert_return_mean", "random_return_mean"):
        need(name, lambda v: v is None or _is_number(v), "a finite number or null")
    for name in ("expert_return_std", "random_return_std"):
        need(name, lambda v: v is None or (_is_number(v) and v >= 0),
             "a non-negative number or null")
    for name in ("source", "trirl_version"):
        need(name, lambda v: v is None or isinstance(v, str), "a string or null")
    need("seed", lambda v: v is None or _is_int(v), "an integer or null")
    need("deterministic", lambda v: v is None or isinstance(v, bool), "true, false or null")

    def iso_date(v):
        if v is None:
            return True
        try:
            datetime.datetime.fromisoformat(v)
        except (TypeError, ValueError):
            return False
        return True

    need("created", iso_date, "an ISO 8601 date such as '2025-01-31T12:00:00+00:00', or null")
    normalized = dict.fromkeys(METADATA_FIELDS)
    normalized.update(metadata)
    return normalized


# ------------------------------------------------------------------------------ arrays


def _check_matrix(source: str, arrays: dict, key: str, rows: Optional[int],
                  width: int, width_field: str) -> np.ndarray:
    """A float32 ``(rows, width)`` array with only finite values."""
    a = arrays[key]
    if a.dtype != np.float32:
        _fail(source, key, f"has dtype {a.dtype}, expected float32",
              f"save {key}.astype(np.float32)")
    if a.ndim != 2:
        _fail(source, key, f"has shape {a.shape}, expected 2-D (transitions, {width_field})",
              f"store one row per transition, shape (N, {width})")
    if a.shape[1] != width:
        _fail(source, key, f"has {a.shape[1]} columns but metadata.{width_field} is {width}",
              f"make metadata.{width_field} match the data, or store the right columns")
    if rows is not None and a.shape[0] != rows:
        _fail(source, key, f"has {a.shape[0]} rows but obs has {rows}",
              "store exactly one row per transition in every array")
    problem = non_finite(a, "row")
    if problem:
        _fail(source, key, problem, "drop or repair the transitions with NaN/inf before saving")
    return a


def non_finite(a: np.ndarray, unit: str) -> Optional[str]:
    """Where a 2-D array first holds NaN/inf, for an error message (None if nowhere)."""
    bad = ~np.isfinite(a)
    if not bad.any():
        return None
    row, col = np.argwhere(bad)[0]
    return (f"contains {a[row, col]} at {unit} {row}, column {col} "
            f"({int(bad.sum())} non-finite values in all)")


def _check_flags(source: str, arrays: dict, key: str, rows: int) -> np.ndarray:
    a = arrays[key]
    if a.dtype != np.bool_:
        _fail(source, key, f"has dtype {a.dtype}, expected bool", f"save {key}.astype(bool)")
    if a.shape != (rows,):
        _fail(source, key, f"has shape {a.shape}, expected ({rows},), one flag per transition",
              "store one flag per transition")
    return a


def _validate(source: str, arrays: dict) -> Demos:
    """Check the raw arrays of a demo file (``metadata`` still a JSON string) and build
    :class:`Demos`. Raises :class:`TrirlError` naming ``source`` and the field."""
    for key, a in arrays.items():
        if not isinstance(a, np.ndarray):
            _fail(source, key, f"is a {type(a).__name__}, expected a numpy array",
                  f"pass np.asarray({key})")
    metadata = _check_metadata(source, _parse_metadata(source, arrays["metadata"]))
    obs_size, action_size = metadata["obs_size"], metadata["action_size"]

    obs = _check_matrix(source, arrays, "obs", None, obs_size, "obs_size")
    n = obs.shape[0]
    if n == 0:
        _fail(source, "obs", "has no transitions", "record at least one transition")
    next_obs = _check_matrix(source, arrays, "next_obs", n, obs_size, "obs_size")
    actions = arrays.get("actions")
    if actions is not None:
        if action_size is None:
            _fail(source, "metadata.action_size", "is null but the file has actions",
                  "set action_size to the number of action columns")
        actions = _check_matrix(source, arrays, "actions", n, action_size, "action_size")
    absorbing = _check_flags(source, arrays, "absorbing", n)
    truncated = _check_flags(source, arrays, "truncated", n)

    starts = arrays["episode_starts"]
    if starts.dtype.kind not in "iu":
        _fail(source, "episode_starts", f"has dtype {starts.dtype}, expected an integer type",
              "save episode_starts.astype(np.int64)")
    if starts.ndim != 1 or starts.shape[0] == 0:
        _fail(source, "episode_starts", f"has shape {starts.shape}, expected (E,) with E >= 1",
              "list the index of each episode's first transition, e.g. [0] for one episode")
    starts = starts.astype(np.int64)
    if starts[0] != 0:
        _fail(source, "episode_starts", f"begins at {starts[0]}, expected 0",
              "the first episode starts at transition 0")
    steps = np.diff(starts)
    if (steps <= 0).any():
        i = int(np.argmax(steps <= 0)) + 1
        _fail(source, "episode_starts", f"is not strictly increasing at position {i} "
              f"({starts[i - 1]} then {starts[i]})", "sort it and remove duplicates/empty episodes")
    if starts[-1] >= n:
        _fail(source, "episode_starts", f"has start {starts[-1]} but there are only {n} "
              "transitions", "every start must index an existing transition (< N)")

    is_end = np.zeros(n, bool)
    is_end[np.append(starts[1:] - 1, n - 1)] = True
    for key, flags in (("absorbing", absorbing), ("truncated", truncated)):
        inside = flags & ~is_end
        if inside.any():
            i = int(np.argmax(inside))
            _fail(source, key, f"is set at transition {i}, which is not the last of its "
                  "episode", f"an episode ends at its first {key} transition: add {i + 1} to "
                  "episode_starts or clear the flag")
    both = absorbing & truncated
    if both.any():
        _fail(source, "truncated", f"is set together with absorbing at transition "
              f"{int(np.argmax(both))}", "a terminal transition is absorbing, not truncated: "
              "clear truncated there")
    # Inside an episode each transition starts where the previous one ended; a jump is
    # almost always two episodes glued together without an entry in episode_starts.
    inner = np.flatnonzero(~is_end[:-1])
    close = np.isclose(next_obs[inner], obs[inner + 1], rtol=_CONTINUITY_RTOL,
                       atol=_CONTINUITY_ATOL).all(axis=1)
    if not close.all():
        i = int(inner[np.argmin(close)])
        _fail(source, "next_obs", f"next_obs[{i}] differs from obs[{i + 1}] inside one episode",
              f"if an episode starts at {i + 1}, add it to episode_starts; otherwise next_obs "
              "must be the observation the transition reached")
    states = _check_states(source, arrays, n)
    return Demos(obs=obs, next_obs=next_obs, actions=actions, absorbing=absorbing,
                 truncated=truncated, episode_starts=starts, metadata=metadata, **states)


def _check_states(source: str, arrays: dict, rows: int) -> dict:
    """The optional ``qpos``/``qvel`` arrays: both or neither, float64 2-D, one row per
    transition, finite."""
    present = [key for key in _STATE_KEYS if arrays.get(key) is not None]
    if not present:
        return {}
    if len(present) == 1:
        other = ({*_STATE_KEYS} - {present[0]}).pop()
        _fail(source, other, f"is missing but the file has {present[0]}",
              "store both qpos and qvel (the states of the obs rows), or neither")
    out = {}
    for key in _STATE_KEYS:
        a = arrays[key]
        if a.dtype != np.float64 or a.ndim != 2 or a.shape[0] != rows:
            _fail(source, key, f"is a {a.dtype} array of shape {a.shape}, expected float64 "
                  f"({rows}, n{key[1:]}), one state per transition",
                  f"store {key}.astype(np.float64), one row per obs row")
        problem = non_finite(a, "row")
        if problem:
            _fail(source, key, problem, "drop or repair the states with NaN/inf")
        out[key] = a
    return out


def _check_env(source: str, demos: Demos, env) -> None:
    """Refuse demos recorded for a different environment (or layout, or timestep)."""
    meta = demos.metadata
    fix = f"use demos recorded on {env.name!r} with these settings, or the matching environment"
    if meta["env"] != env.name:
        _fail(source, "metadata.env", f"is {meta['env']!r} but the environment is "
              f"{env.name!r}", fix)
    if meta["obs_size"] != env.observation_size:
        _fail(source, "metadata.obs_size", f"is {meta['obs_size']} but {env.name!r} has "
              f"{env.observation_size} observations", fix)
    if meta["action_size"] is not None and meta["action_size"] != env.action_size:
        _fail(source, "metadata.action_size", f"is {meta['action_size']} but {env.name!r} has "
              f"{env.action_size} actions", fix)
    names = list(getattr(env, "obs_names", ()) or ())
    if names and meta["obs_names"] != names:
        first = next(i for i, (a, b) in enumerate(zip(meta["obs_names"], names)) if a != b)
        _fail(source, "metadata.obs_names", f"column {first} is {meta['obs_names'][first]!r} "
              f"but {env.name!r} has {names[first]!r} there", fix)
    model = getattr(env, "mj_model", None)
    if demos.qpos is not None and model is not None and (
            demos.qpos.shape[1] != model.nq or demos.qvel.shape[1] != model.nv):
        _fail(source, "qpos", f"has {demos.qpos.shape[1]} columns and qvel "
              f"{demos.qvel.shape[1]}, but {env.name!r} has nq={model.nq}, nv={model.nv}", fix)
    dt = getattr(env, "dt", None)
    if dt is not None and not math.isclose(meta["control_timestep"], dt, rel_tol=1e-6):
        # next_obs at another timestep is a different transition, even with equal layouts.
        _fail(source, "metadata.control_timestep", f"is {meta['control_timestep']} s but "
              f"{env.name!r} steps {dt} s", fix + " (same frame_skip)")


# ------------------------------------------------------------------------- save / load


def _json_default(value):
    if isinstance(value, np.generic):  # numpy scalars from mean()/std() and the like
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _to_arrays(source: str, demos: Demos) -> dict:
    """The entries of the file for ``demos``, metadata encoded; not yet validated."""
    if not isinstance(demos.metadata, dict):
        _fail(source, "metadata", f"is a {type(demos.metadata).__name__}, expected a dict",
              "build it with trirl.demos.env_metadata(env, ...)")
    metadata = dict(demos.metadata)
    metadata["format_version"] = FORMAT_VERSION  # save writes this version's layout
    try:
        text = json.dumps(metadata, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as exc:
        _fail(source, "metadata", f"cannot be written as JSON ({_short(exc)})",
              "use only str, int, float (finite), bool, None, lists and dicts")
    # np.asarray: accept jax arrays; their dtypes are then checked like a file's.
    arrays = {key: np.asarray(getattr(demos, key)) for key in _ARRAY_KEYS + _STATE_KEYS
              if getattr(demos, key) is not None}
    arrays["metadata"] = np.array(text)
    return arrays


def save(path, demos: Demos) -> None:
    """Write ``demos`` to ``path`` (``.npz``, compressed), atomically.

    The demos are validated first, so no file :func:`load` would reject is written.
    The archive goes to a fresh temporary file in the destination directory and is
    renamed over ``path`` only once complete and flushed to disk: readers see the old
    file or the new one, never a partial one, and a failed write leaves no file behind.
    ``metadata.format_version`` is set to :data:`FORMAT_VERSION`.

    Raises:
      TrirlError: invalid demos, missing directory, or an OS error while writing.
    """
    path = os.fspath(path)
    arrays = _to_arrays(path, demos)
    _validate(path, arrays)
    write_npz_atomic(path, arrays, lambda field, problem, fix: _fail(path, field, problem, fix))


def check_output_directory(path) -> None:
    """One-line error unless ``path``'s directory exists: commands that compute for a
    while before they write (``trirl demos convert``) call it first, so a typo in ``-o``
    costs nothing."""
    path = os.fspath(path)
    _check_directory(path, lambda field, problem, fix: _fail(path, field, problem, fix))


def _check_directory(path: str, fail: Callable[[str, str, str], Any]) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        fail("file", f"directory {directory} does not exist", "create it first")
    return directory


def write_npz_atomic(path, arrays: dict, fail: Callable[[str, str, str], Any]) -> None:
    """Write ``arrays`` to the ``.npz`` file ``path`` (compressed) through a temporary file
    in its directory, flushed, renamed over ``path`` and the rename persisted: readers see
    the old file or the new one, and a failed write leaves no file behind. Problems go to
    ``fail(field, problem, fix)``, which must raise (a one-line error naming the file)."""
    path = os.fspath(path)
    directory = _check_directory(path, fail)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        # O_EXCL: never clobber anything; mode 0o666 lets the umask decide permissions
        # as for any new file (mkstemp would leave a private 0o600 file behind).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            # A file object, not a name: savez would append ".npz" to a name.
            np.savez_compressed(f, **arrays)
            f.flush()
            os.fsync(f.fileno())  # data on disk before the rename makes it visible
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:  # never created, or already gone
            pass
        if isinstance(exc, OSError):
            fail("file", f"could not be written ({_short(exc)})",
                 "check free disk space and write permission")
        raise
    try:  # persist the rename itself; best effort (not possible on every platform)
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _read_npz(source: str) -> dict:
    try:
        npz = np.load(source, allow_pickle=False)
    except Exception as exc:  # BadZipFile, EOFError, OSError, ValueError (pickle guess)
        _fail(source, "file", f"is not a readable .npz archive ({_short(exc)})",
              "if it was copied, copy it again (it may be truncated); otherwise re-create it "
              "with trirl.demos.save or np.savez_compressed")
    if not isinstance(npz, np.lib.npyio.NpzFile):
        _fail(source, "file", "is a single .npy array, not an .npz archive",
              "write all arrays into one archive with np.savez_compressed(path, obs=..., ...)")
    arrays = {}
    with npz:
        present = set(npz.files)
        missing = [key for key in _REQUIRED_KEYS if key not in present]
        if missing:
            _fail(source, missing[0], "is missing from the archive",
                  f"add {', '.join(missing)} (see docs/demo-format.md)")
        unknown = sorted(present - set(_ALL_KEYS))
        if unknown:
            # Rejected rather than ignored: a misspelt "action" would silently turn
            # state-action demos into observation-only ones.
            _fail(source, unknown[0], "is not a field of the demo format",
                  f"rename or remove it; valid fields: {', '.join(_ALL_KEYS)}")
        for key in npz.files:
            try:
                arrays[key] = npz[key]
            except ValueError as exc:
                if "pickle" in str(exc):  # "Object arrays cannot be loaded when allow_pickle=False"
                    _fail(source, key, "is an object array (pickled Python objects), which "
                          "is never loaded because unpickling can run arbitrary code",
                          f"store {key} as a plain numeric array (np.asarray(x, np.float32))")
                _fail(source, key, f"cannot be read ({_short(exc)})",
                      "re-create the file; it is corrupted")
            except Exception as exc:  # zlib.error, BadZipFile (CRC), EOFError
                _fail(source, key, f"cannot be read, the archive is corrupted ({_short(exc)})",
                      "copy the file again or re-create it")
    return arrays


def load(path, *, env=None, require_actions: bool = False) -> Demos:
    """Read and validate a demonstration file.

    Args:
      path: the ``.npz`` file.
      env: if given, the demos must match it: name, observation size and names, action
        size (when the file states one) and control timestep.
      require_actions: refuse observation-only files (for learners that need actions).

    Returns:
      :class:`Demos` with float32 observations/actions, bool flags, int64 episode starts
      and metadata with every field of :data:`METADATA_FIELDS`.

    Raises:
      TrirlError: one line naming the file, the field and the fix, for a missing,
        unreadable, truncated or corrupted file, a missing/unknown/pickled entry, bad
        metadata, a newer format version, a wrong dtype/shape/length, NaN/inf, bad
        episode boundaries or flags, missing actions, or an environment mismatch.
    """
    source = os.fspath(path)
    if not os.path.exists(source):
        _fail(source, "file", "does not exist", "check the path")
    if os.path.isdir(source):
        _fail(source, "file", "is a directory", "pass the .npz file inside it")
    demos = _validate(source, _read_npz(source))
    if require_actions and not demos.has_actions:
        _fail(source, "actions", "are absent (observation-only demos, e.g. motion capture) "
              "but this method learns from state-action pairs",
              "use demos recorded with actions, or a method that learns from observations")
    if env is not None:
        _check_env(source, demos, env)
    return demos


# ---------------------------------------------------------------------------- recording


@functools.partial(jax.jit, static_argnames=("env", "act_fn", "episodes"))
def _rollout(env, act_fn, episodes: int, params, key):
    """``episodes`` full episodes in parallel; arrays shaped ``(episodes, T, ...)``."""
    reset_key, act_key = jax.random.split(key)
    reset_keys = jax.random.split(reset_key, episodes)
    act_keys = jax.random.split(act_key, episodes)

    def episode(reset_key, act_key):
        state = env.reset(reset_key)

        def step(carry, step_key):
            state, alive = carry
            action = jnp.asarray(act_fn(params, state.obs, step_key), jnp.float32)
            # Record what the env applies: step clips to the bounds anyway.
            action = jnp.clip(action, env.action_low, env.action_high)
            nxt = env.step(state, action)
            out = dict(obs=state.obs, actions=action, next_obs=nxt.next_obs,
                       reward=nxt.reward, absorbing=nxt.absorbing, truncated=nxt.truncated,
                       alive=alive)
            # Steps after the first done keep running (a fixed-length scan) but are
            # masked out; without auto-reset they would continue a finished episode.
            return (nxt, alive & ~nxt.done), out

        step_keys = jax.random.split(act_key, env.episode_length)
        return jax.lax.scan(step, (state, jnp.ones((), bool)), step_keys)[1]

    return jax.vmap(episode)(reset_keys, act_keys)


def record(env, act_fn: Callable[[Any, jax.Array, jax.Array], jax.Array], key: jax.Array,
           episodes: int, *, params=None) -> tuple[Demos, np.ndarray]:
    """Roll out ``episodes`` episodes of ``env`` with a policy and keep them as demos.

    The episodes run in parallel (``vmap``) for ``env.episode_length`` steps (``scan``),
    jitted; each ends at its first ``done`` (absorbing or truncated) and later steps are
    not recorded. Randomness is reproducible: with ``k_reset, k_act = split(key)``,
    episode ``i`` starts from ``env.reset(split(k_reset, episodes)[i])`` and its step
    ``t`` calls ``act_fn`` with ``split(split(k_act, episodes)[i], episode_length)[t]``.

    The jitted rollout is cached per ``(env, act_fn, episodes)``; pass a module-level
    ``act_fn`` and change only ``params``/``key`` to avoid recompiling.

    Args:
      env: a trirl environment (functional ``reset``/``step``).
      act_fn: jittable ``act_fn(params, obs, key) -> action`` for one observation
        ``(obs_size,)``, returning ``(action_size,)``. Actions are clipped to the
        environment's bounds and recorded clipped (what the environment applied).
      key: PRNG key.
      episodes: number of episodes (>= 1).
      params: pytree passed to ``act_fn`` (e.g. policy parameters).

    Returns:
      ``(demos, returns)``: :class:`Demos` with metadata from :func:`env_metadata`
      (expert/random returns, source, seed and deterministic left ``None`` for the
      caller), and float64 ``(episodes,)`` true returns, the sum of the task reward of
      each recorded transition.
    """
    episodes = int(episodes)
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    # Checked on shapes alone, before the (slow) trace of the whole rollout: a wrong
    # shape would otherwise broadcast silently through clip and fail inside the physics.
    obs_spec = jax.ShapeDtypeStruct((env.observation_size,), jnp.float32)
    action_spec = jax.eval_shape(act_fn, params, obs_spec, jax.random.split(key)[0])
    if getattr(action_spec, "shape", None) != (env.action_size,):
        raise ValueError(f"act_fn returned {action_spec}, expected an action of shape "
                         f"({env.action_size},) for {env.name!r}")
    out = jax.device_get(_rollout(env, act_fn, episodes, params, key))
    alive = np.asarray(out["alive"], bool)  # (episodes, T); a prefix of each row
    lengths = alive.sum(axis=1)
    # Boolean indexing flattens row-major: episode by episode, steps in order.
    flat = {k: np.asarray(out[k])[alive] for k in
            ("obs", "actions", "next_obs", "absorbing", "truncated")}
    returns = np.where(alive, np.asarray(out["reward"], np.float64), 0.0).sum(axis=1)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    demos = Demos(obs=flat["obs"].astype(np.float32), next_obs=flat["next_obs"].astype(np.float32),
                  actions=flat["actions"].astype(np.float32), absorbing=flat["absorbing"],
                  truncated=flat["truncated"], episode_starts=starts, metadata=env_metadata(env))
    # Same checks as a file gets: a diverged simulation (NaN) fails here, not later.
    _validate(f"<recorded on {env.name}>", _to_arrays(f"<recorded on {env.name}>", demos))
    return demos, returns


def _uniform_action(bounds, obs, key):
    low, high = bounds
    return jax.random.uniform(key, low.shape, minval=low, maxval=high)


def random_returns(env, key: jax.Array, episodes: int) -> np.ndarray:
    """True returns ``(episodes,)`` of a policy acting uniformly at random within the
    action bounds (the baseline behind ``random_return_mean``/``random_return_std``).

    It is :func:`record` with ``act_fn(params, obs, k) = uniform(k, (action_size,),
    action_low, action_high)``, so the same key gives the same returns."""
    bounds = (jnp.asarray(env.action_low), jnp.asarray(env.action_high))
    return record(env, _uniform_action, key, episodes, params=bounds)[1]
