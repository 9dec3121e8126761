"""trirl environments on MuJoCo (MJX or C): Point Maze and the Gymnasium v5 locomotion
suite with the paper's transfer variants; ``make(name, backend=..., **overrides)`` and
the registry.

>>> from trirl import envs
>>> env = envs.make("point_maze", episode_length=50)           # backend="auto"
>>> env = envs.make("halfcheetah", backend="c")                # MuJoCo C on the CPU
>>> state = env.reset(jax.random.key(0))
>>> state = env.step(state, jnp.zeros(env.action_size))
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from trirl.envs.base import (BACKENDS, AutoReset, Env, EnvConfig, EnvState, MjxBackend,
                             PhysicsArrays, resolve_backend)
from trirl.envs.ant import Ant, AntDisabled
from trirl.envs.g1 import G1Run, G1Walk
from trirl.envs.go2 import Go2
from trirl.envs.half_cheetah import HalfCheetah, HalfCheetahMars, HalfCheetahWind
from trirl.envs.hopper import Hopper
from trirl.envs.humanoid import Humanoid
from trirl.envs.point_maze import PointMaze, PointMazeConfig, PointMazeFlipped
from trirl.envs.walker2d import Walker2d
from trirl.errors import TrirlError

__all__ = ["make", "names", "register", "registry", "Env", "EnvConfig", "EnvState",
           "AutoReset", "MjxBackend", "PhysicsArrays", "PointMaze", "PointMazeConfig",
           "BACKENDS", "resolve_backend"]

_REGISTRY: dict[str, type[Env]] = {}


def register(env_class: type[Env]) -> type[Env]:
    """Add an :class:`Env` subclass to the registry under ``env_class.name``."""
    _REGISTRY[env_class.name] = env_class
    return env_class


def registry() -> dict[str, type[Env]]:
    """A copy of the registry: name -> Env class."""
    return dict(_REGISTRY)


def names() -> list[str]:
    return sorted(_REGISTRY)


def make(name: str, backend: Optional[str] = "auto", **overrides) -> Env:
    """Build the environment ``name`` with its config fields replaced by ``overrides``.

    Args:
      backend: physics backend, ``"mjx"``, ``"c"`` or ``"auto"``/None (MJX when JAX's default
        device is a GPU/TPU, MuJoCo C on a CPU, where it is several times faster). Both
        run the same model and env definition; see ``trirl.envs.base``.

    Raises:
      TrirlError: unknown name, unknown backend or unknown/invalid override field.
    """
    if name not in _REGISTRY:
        raise TrirlError(f"unknown environment {name!r}; choose one of: {', '.join(names())} "
                         "(see `trirl envs`)")
    env_class = _REGISTRY[name]
    fields = {f.name for f in dataclasses.fields(env_class.config_class)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TrirlError(f"environment {name!r} has no setting {unknown[0]!r}; "
                         f"valid settings: {', '.join(sorted(fields))}")
    backend = resolve_backend(backend)
    return env_class(dataclasses.replace(env_class.config_class(), **overrides), backend=backend)


for _env_class in (PointMaze, PointMazeFlipped, HalfCheetah, HalfCheetahWind, HalfCheetahMars,
                   Hopper, Walker2d, Ant, AntDisabled, Humanoid, G1Walk, G1Run, Go2):
    register(_env_class)
