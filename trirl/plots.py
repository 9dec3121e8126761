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


def latest_per_seed(values) -> np.ndarray:
    """(iterations, seeds) with NaN where a seed logged nothing -> each seed's latest
    logged value so far (NaN before its first)."""
    per = np.array(values, float)
    idx = np.where(np.isnan(per), 0, np.arange(len(per))[:, None])
    np.maximum.accumulate(idx, axis=0, out=idx)
    out = per[idx, np.arange(per.shape[1])]
    out[np.isnan(per[0]) & (idx == 0)] = np.nan
    return out


def learning_curves(run_dirs: list[Path], output: Optional[Path] = None,
                    metric: str = "episode_return") -> Path:
    """Plot ``metric`` against env steps for each run (mean over seeds, and the per-seed
    range when the run has several seeds; each seed counts with its latest logged value,
    from the iteration on where every seed has one); returns the PNG path written."""
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
        per_seed = metric + "_per_seed"
        if lines[-1].get(per_seed) is not None:
            # Episode metrics are logged by the seeds whose episodes ended in that
            # iteration; a mean over whichever seeds logged would jump between seeds.
            blank = [None] * len(lines[-1][per_seed])  # for lines from before it was logged
            per = latest_per_seed([[np.nan if v is None else v
                                    for v in (ln.get(per_seed) or blank)] for ln in lines])
            keep = ~np.isnan(per).any(1)
            steps = np.array([ln["env_steps"] for ln in lines], float)[keep]
            ax.plot(steps, per[keep].mean(1), label=Path(run_dir).name)
            ax.fill_between(steps, per[keep].min(1), per[keep].max(1), alpha=0.2)
        else:
            rows = [(ln["env_steps"], ln[metric]) for ln in lines if ln.get(metric) is not None]
            ax.plot([r[0] for r in rows], [r[1] for r in rows], label=Path(run_dir).name)
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
