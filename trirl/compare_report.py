"""The report of a `trirl compare` grid, rendered from its finished cells only.

Reads what the cells left on disk (``trirl.compare`` layout) and writes
``OUT/report/``:

* ``summary.json``: per cell, the per-seed normalised scores of each column (Training:
  the learner's deterministic policy, ``evaluation.json``; Retraining / Transfer: the
  fresh policy on seed i's exported reward), wall time and peak RSS; per env and
  algorithm the IQM with its bootstrap interval over seeds; per algorithm the
  aggregate IQM over all envs with a stratified bootstrap interval (``trirl.stats``);
* ``summary.md``: the same as tables (Table 1 layout: mean ± std over seeds);
* ``learning_curves.png``: per env, the IQM over seeds of the normalised score logged
  during training (the stochastic policy's finished episodes, ``metrics.jsonl``) with
  its 95 % bootstrap band.

Nothing is trained or evaluated here, so ``--report-only`` is cheap and repeatable;
every interval is seeded (``CompareConfig.bootstrap_seed``) and so reproducible.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import numpy as np

from trirl import stats
from trirl.grid import (CELL_FILE, GRID_FILE, LEARN_DIR, CompareConfig, cell_dir,
                        reoptimise_dirs)
from trirl.errors import TrirlError
from trirl.report import EVALUATION_FILE, seed_scores

REPORT_DIR = "report"
COLUMNS = ("training", "retraining", "transfer")
CURVE_REPS = 2_000  # per logged iteration: a band, not a headline number
TRAIN_STAGES = ("train", "resume")


def _scores(evaluation: Path) -> Optional[list[float]]:
    if not evaluation.is_file():
        return None
    return seed_scores(json.loads(evaluation.read_text()), evaluation,
                       "delete the file and pass --demos ENV=FILE with them")


def _resources(cell: Path) -> dict:
    """Training's wall time, env steps (all seeds) and peak RSS, summed / maxed over
    the cell's train and resume invocations (``cell.json``)."""
    path = cell / CELL_FILE
    runs = json.loads(path.read_text())["invocations"] if path.is_file() else []
    runs = [r for r in runs if r["stage"] in TRAIN_STAGES]
    if not runs:
        return {"wall_s": None, "env_steps": None, "wall_s_per_million_steps": None,
                "peak_rss_mb": None, "rss_scope": None, "invocations": 0}
    wall, steps = sum(r["wall_s"] for r in runs), sum(r["env_steps"] for r in runs)
    return {"wall_s": wall, "env_steps": steps,
            "wall_s_per_million_steps": wall / steps * 1e6 if steps else None,
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "rss_scope": sorted({r["rss_scope"] for r in runs}), "invocations": len(runs)}


def collect_cell(config: CompareConfig, out: Path, env_name: str, algo: str) -> dict:
    """What one cell has finished: scores per column and resources."""
    cell = cell_dir(out, env_name, algo)
    entry = {"env": env_name, "algo": algo, "cell": str(cell.relative_to(out)),
             "training": _scores(cell / LEARN_DIR / EVALUATION_FILE),
             "retraining": None, "transfer": {}, **_resources(cell)}
    runs = reoptimise_dirs(config, cell, env_name)
    by_stage: dict[tuple[str, str], list] = {}
    for kind, target, run_dir in runs:
        by_stage.setdefault((kind, target), []).append(_scores(run_dir / EVALUATION_FILE))
    for (kind, target), per_seed in by_stage.items():
        # A column counts once all its seeds are evaluated (a partial one would
        # compare a different number of runs than the other columns).
        scores = None if any(s is None for s in per_seed) else [x for s in per_seed for x in s]
        if kind == "retrain":
            entry["retraining"] = scores
        else:
            entry["transfer"][target] = scores
    done = (entry["training"] is not None
            and (entry["retraining"] is not None or not config.retrain)
            and all(v is not None for v in entry["transfer"].values()))
    # A later invocation may add --retrain/--transfer for some columns only (a grid's
    # baselines, say): a trained cell none of whose re-optimisation runs was started is
    # complete for what was asked of it.
    started = any(d.is_dir() for _, _, d in runs)
    entry["status"] = ("finished" if done else
                       "training only" if entry["training"] is not None and not started else
                       "unfinished")
    return entry


def _summary(scores_per_task, config: CompareConfig) -> dict:
    out = stats.summarize(scores_per_task, reps=config.bootstrap_reps,
                          seed=config.bootstrap_seed)
    out["scores"] = [list(map(float, s)) for s in scores_per_task]
    return out


def build(out: Path) -> dict:
    """The summary of the grid in ``out`` (``summary.json``'s content)."""
    out = Path(out)
    path = out / GRID_FILE
    if not path.is_file():
        raise TrirlError(f"{out}: not a trirl compare directory (no {GRID_FILE}); pass the "
                         "--out of a `trirl compare` run")
    config = CompareConfig.from_json(json.loads(path.read_text()))
    cells = [collect_cell(config, out, e, a) for e in config.envs for a in config.algos]
    per_env: dict = {}
    aggregate: dict = {}
    for algo in config.algos:
        mine = [c for c in cells if c["algo"] == algo]
        tasks: dict[str, list] = {col: [] for col in COLUMNS}
        for c in mine:
            env_stats = per_env.setdefault(c["env"], {}).setdefault(algo, {})
            for col in ("training", "retraining"):
                if c[col] is not None:
                    env_stats[col] = _summary([c[col]], config)
                    tasks[col].append(c[col])
            for target, scores in c["transfer"].items():
                if scores is not None:
                    env_stats.setdefault("transfer", {})[target] = _summary([scores], config)
                    tasks["transfer"].append(scores)
        # Aggregate over tasks (envs, or env -> target pairs): runs are resampled within
        # each task, never across, as rliable's stratified bootstrap.
        aggregate[algo] = {col: _summary(t, config) for col, t in tasks.items() if t}
        timed = [c for c in mine if c["env_steps"]]
        wall = sum(c["wall_s"] for c in timed)
        steps = sum(c["env_steps"] for c in timed)
        aggregate[algo]["resources"] = {
            "wall_s_per_million_steps": wall / steps * 1e6 if steps else None,
            "peak_rss_mb": max((c["peak_rss_mb"] for c in timed), default=None),
            "cells": len(timed)}
    return {"grid": config.to_json(), "cells": cells, "per_env": per_env,
            "aggregate": aggregate,
            "statistics": {
                "point_estimate": "interquartile mean of the pooled per-seed normalized "
                                  "scores (drop floor(n/4) at each end)",
                "interval": "percentile, stratified bootstrap (runs resampled within each "
                            "task)",
                "confidence": stats.DEFAULT_CONFIDENCE, "reps": config.bootstrap_reps,
                "seed": config.bootstrap_seed,
                "normalized_score": "(return - random) / (expert - random), deterministic "
                                    "policy, 100 episodes per seed",
                "wall_s_per_million_steps": "training wall time (compilation included) per "
                                            "1e6 env steps summed over seeds",
                "peak_rss_mb": "resource.getrusage(RUSAGE_SELF).ru_maxrss after training, "
                               "in the process named by rss_scope"}}


# ----------------------------------------------------------------------------- markdown


def _ci(s: Optional[dict]) -> str:
    if not s:
        return "-"
    return f"{s['iqm']:.2f} [{s['ci_low']:.2f}, {s['ci_high']:.2f}]"


def _mean_std(scores: Optional[list]) -> str:
    if scores is None:
        return "-"
    return f"{np.mean(scores):.2f} ± {np.std(scores):.2f}"


def _num(x, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def markdown(summary: dict) -> str:
    grid = summary["grid"]
    algos, cells = grid["algos"], summary["cells"]
    cols = [c for c in COLUMNS if any(c in a for a in summary["aggregate"].values())]
    steps = grid["steps"] if grid["steps"] is not None else "preset"
    lines = [f"# trirl compare: {', '.join(grid['envs'])} x {', '.join(algos)}", "",
             f"{grid['seeds']} seeds per cell, {steps} env steps per seed. Normalized score: "
             "expert = 1, random = 0 (deterministic policy, 100 episodes per seed)."
             + _reoptimisation_line(grid), "",
             "## Aggregate over environments", "",
             "Interquartile mean of the pooled per-seed scores with its 95 % stratified "
             f"bootstrap interval ({grid['bootstrap_reps']} resamples, seed "
             f"{grid['bootstrap_seed']}); docs/compare.md explains both.", "",
             "| algorithm | " + " | ".join(f"{c} IQM [95% CI]" for c in cols)
             + " | s / 1M env steps | peak RSS (MB) |",
             "|---|" + "---|" * (len(cols) + 2)]
    for algo in algos:
        agg = summary["aggregate"].get(algo, {})
        res = agg.get("resources", {})
        lines.append(f"| {algo} | " + " | ".join(_ci(agg.get(c)) for c in cols)
                     + f" | {_num(res.get('wall_s_per_million_steps'), '.0f')} | "
                     f"{_num(res.get('peak_rss_mb'), '.0f')} |")
    lines += ["", "## Per environment (Table 1 layout: mean ± std over seeds)", ""]
    lines += _table1(summary)
    lines += ["", "## Per cell", "",
              "| env | algorithm | status | training IQM [95% CI] | seeds | s / 1M env steps "
              "| peak RSS (MB) | RSS measured in |", "|---|---|---|---|---|---|---|---|"]
    for c in cells:
        s = summary["per_env"].get(c["env"], {}).get(c["algo"], {}).get("training")
        lines.append(f"| {c['env']} | {c['algo']} | {c['status']} | {_ci(s)} | "
                     f"{len(c['training']) if c['training'] else 0} | "
                     f"{_num(c['wall_s_per_million_steps'], '.0f')} | "
                     f"{_num(c['peak_rss_mb'], '.0f')} | {', '.join(c['rss_scope'] or ['-'])} |")
    return "\n".join(lines) + "\n"


def _reoptimisation_line(grid: dict) -> str:
    if not (grid["retrain"] or grid["transfer"]):
        return ""
    budget = CompareConfig.from_json(grid).reoptimise_steps
    budget = f"{budget} env steps" if budget else "the learner's budget"
    settings = grid.get("retrain_settings") or ()
    return (" Retraining / transfer: one fresh policy per training seed's reward, "
            f"{budget}" + (f", {', '.join(settings)}" if settings else "") + ".")


def _table1(summary: dict) -> list[str]:
    """Rows env x algorithm, columns Training, Retraining and one Transfer per target
    (the paper's Table 1, transposed to one line per learner)."""
    grid, cells = summary["grid"], summary["cells"]
    targets = list(dict.fromkeys(t for e, t in grid["transfer"]))
    head = ["training"] + (["retraining"] if grid["retrain"] else []) \
        + [f"transfer: {t}" for t in targets]
    lines = ["| env | algorithm | " + " | ".join(head) + " |", "|---|---|" + "---|" * len(head)]
    for c in cells:
        row = [c["training"]] + ([c["retraining"]] if grid["retrain"] else []) \
            + [c["transfer"].get(t) for t in targets]
        lines.append(f"| {c['env']} | {c['algo']} | " + " | ".join(map(_mean_std, row)) + " |")
    return lines


# ----------------------------------------------------------------------------- curves


def curve(run_dir: Path, config: CompareConfig) -> Optional[dict]:
    """IQM over seeds of the logged normalised score per iteration, with its 95 %
    bootstrap band; iterations where no seed finished an episode are left out."""
    from trirl.runner import read_metrics

    steps, mid, low, high = [], [], [], []
    for line in read_metrics(run_dir):
        per_seed = line.get("normalized_score_per_seed") or [line.get("normalized_score")]
        values = np.array([np.nan if v is None else v for v in per_seed], np.float64)
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        point, lo, hi = stats.stratified_bootstrap_ci([values], reps=CURVE_REPS,
                                                      seed=config.bootstrap_seed)
        steps.append(line["env_steps"])
        mid.append(point)
        low.append(lo)
        high.append(hi)
    return {"env_steps": steps, "iqm": mid, "low": low, "high": high} if steps else None


def plot_curves(summary: dict, out: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from trirl.plots import steps_axis

    config = CompareConfig.from_json(summary["grid"])
    envs = list(config.envs)
    fig, axes = plt.subplots(1, len(envs), figsize=(4.5 * len(envs), 3.4), squeeze=False)
    for ax, env in zip(axes[0], envs):
        for algo in config.algos:
            data = curve(cell_dir(out, env, algo) / LEARN_DIR, config)
            if data is None:
                continue
            line, = ax.plot(data["env_steps"], data["iqm"], label=algo, marker=".", ms=3)
            ax.fill_between(data["env_steps"], data["low"], data["high"], alpha=0.2,
                            color=line.get_color())
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_title(env)
        steps_axis(ax, "environment steps per seed")
        ax.set_ylabel("normalized score (IQM, 95% CI)")
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def write(out: Path) -> dict:
    """Render ``OUT/report/`` from the finished cells; returns the summary."""
    from trirl.runner import write_json_atomic

    out = Path(out)
    summary = build(out)
    report = out / REPORT_DIR
    report.mkdir(parents=True, exist_ok=True)
    write_json_atomic(report / "summary.json", summary)
    text = markdown(summary)
    tmp = report / f".summary.md.tmp{os.getpid()}"
    tmp.write_text(text)
    os.replace(tmp, report / "summary.md")
    plot_curves(summary, out, report / "learning_curves.png")
    return {**summary, "markdown": text, "report_dir": str(report)}
