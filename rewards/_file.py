"""The ``.reward`` container: a safetensors file with a JSON header in its metadata.

Nothing here executes code from the file: safetensors holds raw little-endian arrays and
a JSON table, the header is parsed with ``json``, and every field is checked before a
:class:`~trirl.rewards.Reward` is built. See ``docs/reward-format.md`` for the fields.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from trirl.errors import TrirlError
from trirl.rewards import features

FORMAT = "trirl.reward"
FORMAT_VERSION = 1
METADATA_KEY = "trirl_reward"
FORMS = ("composite", "fitted", "features", "adversarial")
# "s": a state-only reward r(s) (AIRL's unshaped g).
INPUT_KINDS = ("s", "sa", "ss", "sas", "features")
# Output transforms of the adversarial form (trirl.rewards.reward.OUTPUT_TRANSFORMS).
OUTPUTS = ("identity", "log_sigmoid", "softplus", "amp")
ACTIVATIONS = ("tanh", "relu", "elu", "silu")


class RewardFileError(TrirlError):
    """A ``.reward`` file that cannot be used; the message names the file and the fix."""


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks (wheels and demo files can be
    large); used for provenance (demo and reward files) and the robot-model cache."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tensors_sha256(tensors: dict[str, np.ndarray]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        digest.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def finalize(path: Path, header: dict[str, Any], tensors: dict[str, np.ndarray]
             ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Fill in ``format``, ``format_version`` and ``tensors_sha256`` and validate the
    result exactly as :func:`read` would; ``path`` only names the file in errors."""
    tensors = {name: np.ascontiguousarray(t) for name, t in tensors.items()}
    header = {**header, "format": FORMAT, "format_version": FORMAT_VERSION,
              "tensors_sha256": tensors_sha256(tensors)}
    validate(Path(path), header, tensors)
    return header, tensors


def write(path: str | Path, header: dict[str, Any], tensors: dict[str, np.ndarray]) -> Path:
    """Write a ``.reward`` file atomically (temporary file, then rename).

    The header is completed and validated by :func:`finalize` first, so an invalid
    file is never written.
    """
    from safetensors.numpy import save

    path = Path(path)
    header, tensors = finalize(path, header, tensors)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        data = save(tensors, metadata={METADATA_KEY: json.dumps(header, sort_keys=True)})
        # Opened here with mode 0o666 so the umask decides the permissions, as for any new
        # file: a reward file is made to be shared (safetensors' save_file makes it 0o600).
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666), "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(header, tensors)`` of a ``.reward`` file, fully validated (checksum included)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise RewardFileError(f"{path}: no such reward file; export one with "
                              "`trirl export RUN -o FILE.reward`")
    try:
        with safe_open(str(path), framework="np") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RewardFileError(f"{path}: not a readable .reward file (truncated or not "
                              f"safetensors: {reason}); re-export or re-download it") from None
    if METADATA_KEY not in metadata:
        raise RewardFileError(f"{path}: safetensors file without a trirl reward header "
                              f"(metadata key {METADATA_KEY!r}); write it with `trirl export`")
    try:
        header = json.loads(metadata[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise RewardFileError(f"{path}: header is not valid JSON ({exc.msg}); re-export "
                              "the file") from None
    if not isinstance(header, dict):
        raise RewardFileError(f"{path}: header is not a JSON object; re-export the file")
    validate(path, header, tensors)
    return header, tensors


# ----------------------------------------------------------------------------- checks


def _fail(path: Path, field: str, problem: str, fix: str = "re-export the file") -> None:
    raise RewardFileError(f"{path}: header field {field!r} {problem}; {fix}")


def _get(path: Path, header: dict, dotted: str, kinds) -> Any:
    value: Any = header
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            _fail(path, dotted, "is missing")
        value = value[part]
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    # bool is an int in Python; a JSON true is not a valid count or size.
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        _fail(path, dotted, f"has the wrong type ({type(value).__name__})")
    return value


def _check_network(path: Path, header: dict, name: str, tensors: dict, stacked: int | None,
                   in_dim: int) -> None:
    """Tensors ``{name}/layer{i}/kernel|bias`` match the header's layer sizes."""
    layers = _get(path, header, f"networks.{name}.layers", list)
    activation = _get(path, header, f"networks.{name}.activation", str)
    if activation not in ACTIVATIONS:
        _fail(path, f"networks.{name}.activation", f"is {activation!r}, not one of "
              f"{', '.join(ACTIVATIONS)}", "upgrade trirl or re-export the file")
    if len(layers) < 2 or not all(isinstance(w, int) and w > 0 for w in layers):
        _fail(path, f"networks.{name}.layers", "must list two or more positive widths")
    if layers[0] != in_dim or layers[-1] != 1:
        _fail(path, f"networks.{name}.layers", f"is {layers}: it must start with the input "
              f"width {in_dim} and end with 1")
    lead = () if stacked is None else (stacked,)
    for i in range(len(layers) - 1):
        for part, shape in (("kernel", lead + (layers[i], layers[i + 1])),
                            ("bias", lead + (layers[i + 1],))):
            key = f"{name}/layer{i}/{part}"
            if key not in tensors:
                raise RewardFileError(f"{path}: tensor {key!r} is missing; the file is "
                                      "incomplete, re-export it")
            if tuple(tensors[key].shape) != shape or tensors[key].dtype != np.float32:
                raise RewardFileError(f"{path}: tensor {key!r} is {tensors[key].dtype}"
                                      f"{list(tensors[key].shape)}, expected float32{list(shape)}"
                                      "; re-export the file")


def normalized_width(header: dict) -> int:
    """Width of the normalised part: the observation, or the base features."""
    if header["inputs"]["kind"] == "features":
        return len(header["features"])
    return header["env"]["observation_size"]


def input_width(header: dict) -> int:
    obs, act = header["env"]["observation_size"], header["env"]["action_size"]
    indicator = int(header["inputs"]["absorbing_indicator"])
    if header["inputs"]["kind"] == "features":
        return len(header["features"]) + indicator
    state = obs + indicator
    return {"s": state, "sa": state + act, "ss": 2 * state,
            "sas": 2 * state + act}[header["inputs"]["kind"]]


def validate(path: Path, header: dict, tensors: dict[str, np.ndarray]) -> None:
    """Raise :class:`RewardFileError` unless header and tensors form a usable reward."""
    fmt = header.get("format")
    if fmt != FORMAT:
        _fail(path, "format", f"is {fmt!r}, not {FORMAT!r}", "this is not a trirl reward file")
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        _fail(path, "format_version", f"is {version!r}, not a positive integer")
    if version > FORMAT_VERSION:
        _fail(path, "format_version", f"is {version}, newer than this reader's "
              f"{FORMAT_VERSION}", "upgrade trirl (pip install -U trirl)")
    checksum = _get(path, header, "tensors_sha256", str)
    if checksum != tensors_sha256(tensors):
        raise RewardFileError(f"{path}: checksum mismatch: the tensors do not match the header's "
                              "tensors_sha256 (the file was modified or corrupted); re-export "
                              "or re-download it")
    form = _get(path, header, "form", str)
    if form not in FORMS:
        _fail(path, "form", f"is {form!r}, not one of {', '.join(FORMS)}", "upgrade trirl")
    obs = _get(path, header, "env.observation_size", int)
    act = _get(path, header, "env.action_size", int)
    _get(path, header, "env.name", str)
    names = _get(path, header, "env.observation_names", list)
    if obs < 1 or act < 0 or len(names) not in (0, obs):
        _fail(path, "env", f"has observation_size={obs}, action_size={act} and "
              f"{len(names)} observation names, which do not fit together")
    for bound in ("action_low", "action_high"):  # optional: clip actions to the env's
        if bound in header["env"]:
            values = _get(path, header, f"env.{bound}", list)
            if len(values) != act or not all(isinstance(v, (int, float)) for v in values):
                _fail(path, f"env.{bound}", f"must list {act} numbers")
    kind = _get(path, header, "inputs.kind", str)
    if kind not in INPUT_KINDS:
        _fail(path, "inputs.kind", f"is {kind!r}, not one of {', '.join(INPUT_KINDS)}")
    _get(path, header, "inputs.absorbing_indicator", bool)
    _get(path, header, "inputs.normalize", bool)
    _get(path, header, "inputs.clip", (int, float))
    beta = _get(path, header, "beta", (int, float))
    if not beta > 0:
        _fail(path, "beta", f"is {beta}, it must be > 0")
    _get(path, header, "absorbing_reward", (int, float))
    if kind == "features":
        problem = features.spec_problem(header.get("features"), obs, act)
        if problem:
            _fail(path, "features", problem)
    elif form == "features":
        _fail(path, "inputs.kind", f"is {kind!r}, but the features form reads base features "
              "(kind 'features')")
    norm = normalized_width(header)
    if header["inputs"]["normalize"]:
        for key in ("normalizer/mean", "normalizer/std"):
            if key not in tensors:
                raise RewardFileError(f"{path}: tensor {key!r} is missing; the file is "
                                      "incomplete, re-export it")
            if tuple(tensors[key].shape) != (norm,):
                raise RewardFileError(f"{path}: tensor {key!r} has shape "
                                      f"{list(tensors[key].shape)}, expected [{norm}]; re-export")
    width = input_width(header)
    if form == "fitted":
        _check_network(path, header, "fit", tensors, None, width)
        return
    if form == "features":
        _check_network(path, header, "reward", tensors, None, width)
        return
    if form == "adversarial":
        _check_network(path, header, "reward", tensors, None, width)
        output = _get(path, header, "adversarial.output", str)
        if output not in OUTPUTS:
            _fail(path, "adversarial.output", f"is {output!r}, not one of {', '.join(OUTPUTS)}",
                  "upgrade trirl or re-export the file")
        return
    if kind == "s":
        _fail(path, "inputs.kind", "is 's' (state only), which only the adversarial form "
              "uses")
    base = _get(path, header, "composite.base", str)
    if base not in ("fit", "zero"):
        _fail(path, "composite.base", f"is {base!r}, not 'fit' or 'zero'")
    if base == "fit":
        _check_network(path, header, "fit", tensors, None, width)
        if "fit_scale" in header["composite"]:
            _get(path, header, "composite.fit_scale", (int, float))
    count = _get(path, header, "composite.members", int)
    if count < 0:
        _fail(path, "composite.members", f"is {count}, it must be >= 0")
    if count:
        _check_network(path, header, "members", tensors, count, width)
    if "members/step" not in tensors or tuple(tensors["members/step"].shape) != (count,):
        raise RewardFileError(f"{path}: tensor 'members/step' is missing or not of shape "
                              f"[{count}]; re-export the file")
