"""Settings as users write them, turned into configs.

A TRIRL run's settings come in layers, later ones winning field by field
(:func:`merge_settings`): the paper's defaults (:class:`trirl.config.TRIRLConfig`) <
the env's preset (:mod:`trirl.presets`) < a ``--config`` TOML file < ``--set
KEY=VALUE`` < the dedicated flags (``--eps``, ``--k``, ...). Each layer is a dict of
sections (``""`` for TRIRL's own fields, ``"ppo"``, ``"trust_region"``, ``"disc"``,
``"fit"``) of typed values; :func:`build_config` makes the frozen config from the
merged dict. ``*_from_dict`` rebuild configs from a run's ``config.json``.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any, Optional

from trirl import discriminator as disc
from trirl import reward_buffer as rb
from trirl.config import TRIRLConfig
from trirl.errors import TrirlError
from trirl.ppo import PPOConfig, TrustRegionConfig

Settings = dict[str, dict[str, Any]]


def parse_overrides(pairs: tuple[str, ...], config_class: type, what: str) -> dict:
    """``("lr=3e-4", "hidden=64,64")`` -> typed dict for ``config_class`` fields."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep:
            raise TrirlError(f"{what} override {pair!r} is not KEY=VALUE (e.g. learning_rate=1e-4)")
        if name not in fields:
            raise TrirlError(f"{what} has no setting {name!r}; valid: {', '.join(sorted(fields))}")
        default = getattr(config_class(), name)
        annotation = str(fields[name].type)
        if default is None and "tuple" in annotation:
            default = ()  # an optional width list, e.g. critic_hidden=1024,512
        elif default is None and text.strip().lower() == "none":
            out[name] = None  # an optional setting switched off, e.g. max_grad_norm=none
            continue
        elif default is None and ("float" in annotation or "int" in annotation):
            # An optional number (e.g. disc.gp_alpha=0.5): its type is in the annotation.
            default = 0.0 if "float" in annotation else 0
        try:
            if isinstance(default, bool):
                if text.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                value: Any = text.lower() in ("true", "1")
            elif isinstance(default, int):
                value = int(text)
            elif isinstance(default, float):
                value = float(text)
            elif isinstance(default, tuple):
                # An empty default says its element type only in the annotation.
                item = type(default[0]) if default else (
                    str if "str" in str(fields[name].type) else int)
                value = tuple(item(v.strip()) for v in text.split(",") if v.strip())
            elif isinstance(default, str):
                value = text.strip()  # choices are checked by the config itself
            else:
                raise TrirlError(f"{what} setting {name!r} cannot be set from the command line")
        except ValueError:
            # Only integer lists fail to parse among tuples; an empty default such as
            # critic_hidden's would be no example of one.
            expected = ("comma-separated integers (e.g. 64,64)" if isinstance(default, tuple)
                        else f"a value like {default!r}")
            raise TrirlError(f"{what} setting {name}={text!r}: expected {expected}") from None
        out[name] = value
    return out


_SECTIONS = {"ppo": PPOConfig, "trust_region": TrustRegionConfig,
             "disc": disc.DiscriminatorConfig, "fit": rb.RewardFitConfig}


def _section_of(name: str) -> tuple[str, str]:
    section, dot, field = name.partition(".")
    return (section.strip(), field.strip()) if dot else ("", name.strip())


def parse_settings(pairs: tuple[str, ...], source: str = "--set") -> dict[str, dict[str, Any]]:
    """``("eps=0.5", "ppo.learning_rate=3e-4", "disc.hidden=64,64")`` -> typed values per
    section ("" for :class:`TRIRLConfig`'s own fields). ``source`` names where the pairs
    came from in error messages (a flag or a file)."""
    grouped: dict[str, list[str]] = {}
    own = {f.name for f in dataclasses.fields(TRIRLConfig)}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        section, field = _section_of(name)
        if section and section not in _SECTIONS:
            raise TrirlError(f"{source} {pair!r}: unknown section {section!r}; use one of "
                             f"{', '.join(_SECTIONS)} (e.g. ppo.learning_rate=1e-4) or a TRIRL "
                             "setting without a section (e.g. eps=0.5)")
        if not section and sep and field.replace("-", "_") not in own:
            hits = [f"{s}.{field}" for s, cls in _SECTIONS.items()
                    if field.replace("-", "_") in {f.name for f in dataclasses.fields(cls)}]
            if hits:
                raise TrirlError(f"{source} {pair!r}: {field!r} is not a TRIRL setting; did you "
                                 f"mean {' or '.join(hits)}?")
        grouped.setdefault(section, []).append(f"{field}{sep}{value}")
    try:
        return {section: parse_overrides(tuple(items), _SECTIONS.get(section, TRIRLConfig),
                                         section or "TRIRL")
                for section, items in grouped.items()}
    except TrirlError as exc:
        if source == "--set":
            raise
        raise TrirlError(f"{source}: {exc}") from None


def _toml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def read_config_file(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """A ``--config`` TOML file -> (settings as :func:`parse_settings` returns them,
    environment settings as KEY=VALUE strings).

    Top-level keys are TRIRL settings (``eps``, ``capacity``, ``variant``, ...); tables
    ``[ppo]``, ``[trust_region]``, ``[disc]``, ``[fit]`` hold their sections and ``[env]``
    the environment's settings -- the same names ``--set`` and ``--env-set`` take.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise TrirlError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TrirlError(f"{path}: not valid TOML ({exc})") from None
    pairs, env_pairs = [], []
    for key, value in data.items():
        if not isinstance(value, dict):
            pairs.append(f"{key}={_toml_text(value)}")
            continue
        if key != "env" and key not in _SECTIONS:
            raise TrirlError(f"{path}: unknown table [{key}]; use [{'], ['.join(_SECTIONS)}] "
                             "or [env]")
        for name, item in value.items():
            if isinstance(item, dict):
                raise TrirlError(f"{path}: [{key}] {name} is a table; settings are plain "
                                 "values (numbers, booleans, strings, lists)")
            (env_pairs if key == "env" else pairs).append(
                f"{'' if key == 'env' else key + '.'}{name}={_toml_text(item)}")
    return parse_settings(tuple(pairs), source=str(path)), tuple(env_pairs)


def build_config(settings: Optional[dict[str, dict[str, Any]]] = None) -> TRIRLConfig:
    """A :class:`TRIRLConfig` from the paper defaults and per-section settings (e.g. from
    :func:`parse_settings`, a preset or a config file; ``""`` holds TRIRL's own fields,
    variant, inputs and reward model included)."""
    settings = settings or {}
    base = TRIRLConfig()
    ppo = dataclasses.replace(base.ppo, **settings.get("ppo", {}))
    if settings.get("trust_region"):
        ppo = dataclasses.replace(ppo, trust_region=dataclasses.replace(
            ppo.trust_region or TrustRegionConfig(), **settings["trust_region"]))
    try:
        disc_cfg = dataclasses.replace(base.disc, **settings.get("disc", {}))
        fit_cfg = dataclasses.replace(base.fit, **settings.get("fit", {}))
    except ValueError as exc:  # the sections' own checks (e.g. disc.loss's choices)
        raise TrirlError(f"invalid setting: {exc}") from None
    return TRIRLConfig(**settings.get("", {}), ppo=ppo, disc=disc_cfg, fit=fit_cfg)


def merge_settings(*settings: dict) -> dict:
    """Later settings win, field by field."""
    out: dict[str, dict] = {}
    for s in settings:
        for section, values in s.items():
            out.setdefault(section, {}).update(values)
    return out


def ppo_config_from_dict(values: dict, source: str) -> PPOConfig:
    """Rebuild a :class:`PPOConfig` from JSON, with a clear error for unknown fields."""
    fields = {f.name for f in dataclasses.fields(PPOConfig)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise TrirlError(f"{source}: unknown PPO setting {unknown[0]!r}; valid: "
                         f"{', '.join(sorted(fields))}")
    values = dict(values)
    if isinstance(values.get("trust_region"), dict):
        values["trust_region"] = TrustRegionConfig(**values["trust_region"])
    return PPOConfig(**values)


def _flat_from_dict(cls, values: dict, source: str):
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise TrirlError(f"{source}: unknown {cls.__name__} setting {unknown[0]!r}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def config_from_dict(values: dict, source: str) -> TRIRLConfig:
    """Rebuild a :class:`TRIRLConfig` from ``dataclasses.asdict`` JSON."""
    # Runs recorded before members of negligible weight were skipped evaluated them all;
    # they resume as they ran.
    values = {"negligible_weight": 0.0, **values}
    try:
        ppo = ppo_config_from_dict(values.pop("ppo"), source)
        sub = {"disc": _flat_from_dict(disc.DiscriminatorConfig, values.pop("disc"), source),
               "fit": _flat_from_dict(rb.RewardFitConfig, values.pop("fit"), source)}
        return _flat_from_dict(TRIRLConfig, {**values, "ppo": ppo, **sub}, source)
    except (KeyError, TypeError) as exc:
        raise TrirlError(f"{source}: invalid TRIRL config ({exc}); start a new run") from None
