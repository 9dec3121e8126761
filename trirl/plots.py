"""Learning-curve plots from ``metrics.jsonl`` (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from trirl.errors import TrirlError
from trirl.runner import read_metrics


def step_label(steps: float, _pos=None) -> str:
    """An env-step count for an axis tick: 0, 500, 25k, 250k, 1M, 2.5M (plain numbers
    run into each other at a figure's width)."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(steps) >= scale:
            return f"{steps / scale:.4g}{suffix}"
    return f"{steps:.4g}"


def steps_axis(ax, label: str) -> None:
    """Label ``ax``'s x axis with ``label`` and :func:`step_label` ticks."""
    from matplotlib.ticker import FuncFormatter

    ax.set_xlabel(label)
    ax.xaxis.set_major_formatter(FuncFormatter(step_label))


def learning_curves(run_dirs: list[Path], output: Optional[Path] = None,
                    metric: str = "episode_return") -> Path:
    """Plot ``metric`` against env steps for each run (mean over seeds, and the per-seed
    range when the run has several seeds); returns the PNG path written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for run_dir in run_dirs:
        lines = read_metrics(run_dir)
        if not lines:
            raise TrirlError(f"{run_dir}: no metrics.jsonl to plot; is this a trirl run directory?")
        if metric not in lines[-1]:
            names = sorted(k for k in lines[-1] if not k.endswith("_per_seed"))
            raise TrirlError(f"{run_dir}/metrics.jsonl has no metric {metric!r}; choose one of: "
                             f"{', '.join(names)}")
        rows = [(ln["env_steps"], ln[metric], ln.get(metric + "_per_seed")) for ln in lines
                if ln.get(metric) is not None]
        steps = np.array([r[0] for r in rows], float)
        ax.plot(steps, [r[1] for r in rows], label=Path(run_dir).name)
        if rows and rows[0][2] is not None:
            per = np.array([[np.nan if v is None else v for v in r[2]] for r in rows], float)
            ax.fill_between(steps, np.nanmin(per, 1), np.nanmax(per, 1), alpha=0.2)
    steps_axis(ax, "environment steps")
    ax.set_ylabel(metric.replace("_", " "))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    out = Path(output) if output else Path(run_dirs[0]) / "learning_curve.png"
    tmp = out.with_name(f".{out.stem}.tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(out)
    return out
