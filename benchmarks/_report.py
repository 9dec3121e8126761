"""What every benchmark's ``--json`` records besides its figures: the machine and date."""

from __future__ import annotations

import json
import os
import platform
import time
from typing import Any, Optional

import jax


def write_json(path: Optional[str], settings: dict[str, Any], rows: list[dict]) -> None:
    """Write ``{"meta": settings + machine, "rows": rows}`` to ``path`` (nothing if None)."""
    if not path:
        return
    meta = {**settings, "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
            "machine": platform.machine(), "cpus": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M")}
    with open(path, "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=2)
