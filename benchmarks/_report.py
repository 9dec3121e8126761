"""What every benchmark's ``--json`` records besides its figures: the machine and date."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any, Optional

import jax

from trirl.runner import write_json_atomic


def write_json(path: Optional[str], settings: dict[str, Any], rows: list[dict]) -> None:
    """Write ``{"meta": settings + machine, "rows": rows}`` to ``path`` atomically
    (nothing if None)."""
    if not path:
        return
    meta = {**settings, "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
            "machine": platform.machine(), "cpus": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M")}
    write_json_atomic(Path(path), {"meta": meta, "rows": rows})
