"""Robot models that trirl cannot ship, kept in a local cache (``trirl assets fetch``).

Cache layout: ``$TRIRL_ASSETS_DIR`` (default ``~/.cache/trirl/assets``) holds one folder
per robot, e.g. ``unitree_g1/`` (the menagerie ``unitree_g1`` folder: ``g1_mjx.xml``,
``assets/`` meshes, ``LICENSE``) and ``unitree_go2/`` (``go2.xml``, ``assets/``,
``LICENSE``).
"""

from __future__ import annotations

import os
from pathlib import Path

from trirl.errors import TrirlError

CACHE_ENV = "TRIRL_ASSETS_DIR"
ROBOT_COMMANDS = {"unitree_g1": "g1", "unitree_go2": "go2"}


def cache_dir() -> Path:
    """The asset cache: ``$TRIRL_ASSETS_DIR`` or ``~/.cache/trirl/assets``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "trirl" / "assets"


def robot_dir(name: str) -> Path:
    """The cached folder of robot ``name``; a one-line error saying how to fetch it."""
    path = cache_dir() / name
    if not path.is_dir():
        raise TrirlError(f"robot model {name!r} is not in the asset cache {cache_dir()}; "
                         f"fix: run `trirl assets fetch {ROBOT_COMMANDS.get(name, name)}`")
    return path
