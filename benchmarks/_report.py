"""What every benchmark's ``--json`` records besides its figures: the machine and date."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any, Optional

import jax

from trirl.runner import write_json_atomic


def write_json(path: Optional[str], settings: dict[str, Any], rows: Optional[list] = None,
               **sections: Any) -> None:
    """Write ``{"meta": settings + machine, "rows": rows, **sections}`` to ``path``
    atomically (nothing if None); ``sections`` are further named lists of results."""
    if not path:
        return
    meta = {**settings, "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
            "machine": platform.machine(), "cpus": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M")}
    body = {"meta": meta, **({} if rows is None else {"rows": rows}), **sections}
    write_json_atomic(Path(path), body)
    print(f"wrote {path}")
