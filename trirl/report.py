"""Table-1-style reports: Training / Retraining / Transfer normalised scores.

Each run contributes its evaluation (``evaluation.json``: written by retrain/transfer
runs, computed and cached for learner runs): per-seed normalised scores of the
deterministic policy on the true task reward, shown as mean ± std over seeds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trirl.errors import TrirlError

COLUMNS = {"trirl": "Training", "retrain": "Retraining", "transfer": "Transfer"}
EVALUATION_FILE = "evaluation.json"


def cached_evaluation(run_dir: Path) -> dict:
    """The run's ``evaluation.json``, computed (``trirl.evaluation.evaluate_run``) and
    written atomically the first time: evaluating 100 episodes per seed is not free."""
    from trirl.evaluation import evaluate_run
    from trirl.runner import write_json_atomic

    path = Path(run_dir) / EVALUATION_FILE
    if path.is_file():
        return json.loads(path.read_text())
    result = evaluate_run(run_dir)
    write_json_atomic(path, result)
    return result


def run_scores(run_dir: Path) -> tuple[str, str, list[float]]:
    """``(column, reward env, per-seed normalised scores)`` of one run. A transfer run's
    column names its target env ("Transfer (halfcheetah_wind)"): one reward may be
    transferred to several changed dynamics, and they are different tasks."""
    from trirl.runs import read_record

    run_dir = Path(run_dir)
    config = read_record(run_dir)
    kind = config.get("kind")
    if kind not in COLUMNS:
        raise TrirlError(f"{run_dir}: a {kind!r} run; report takes trirl learn, retrain and "
                         "transfer runs")
    scores = seed_scores(cached_evaluation(run_dir), run_dir,
                         "evaluate it with `trirl evaluate RUN --demos FILE` first")
    env = config.get("reward_env", config["env"])
    column = f"{COLUMNS[kind]} ({config['env']})" if kind == "transfer" else COLUMNS[kind]
    return column, env, scores


def seed_scores(result: dict, source, fix: str) -> list[float]:
    """The per-seed normalised scores of an evaluation ``result``; a one-line error
    naming ``source`` and ``fix`` when its env had no reference returns."""
    scores = [s["normalized_score"] for s in result["per_seed"]]
    if any(s is None for s in scores):
        raise TrirlError(f"{source}: no reference returns for a normalised score; {fix}")
    return [float(s) for s in scores]


def build(runs: list[Path]) -> dict[str, dict[str, list[float]]]:
    """``{reward env: {column: scores}}``; two runs in one cell pool their seeds."""
    table: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        column, env, scores = run_scores(run)
        table.setdefault(env, {}).setdefault(column, []).extend(scores)
    return table


def _cell(scores) -> str:
    if not scores:
        return "-"
    n = len(scores)
    return f"{np.mean(scores):.2f} ± {np.std(scores):.2f} ({n} seed{'s' if n != 1 else ''})"


def columns(table: dict) -> list[str]:
    """Training, Retraining, then each transfer target's column, alphabetically."""
    transfers = sorted({c for cells in table.values() for c in cells
                        if c.startswith(COLUMNS["transfer"])})
    return [COLUMNS["trirl"], COLUMNS["retrain"], *transfers]


def markdown(table: dict) -> str:
    cols = columns(table)
    lines = ["| env | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for env, cells in table.items():
        lines.append(f"| {env} | " + " | ".join(_cell(cells.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def write(runs: list[Path], output: Path) -> dict:
    """Write ``report.md``, ``report.json`` and ``report.png`` into ``output``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from trirl.runner import write_json_atomic

    table = build(runs)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    text = ("# Normalized scores (expert = 1, random = 0; mean ± std over seeds)\n\n"
            + markdown(table) + "\nRuns: " + ", ".join(str(r) for r in runs) + "\n")
    tmp = output / ".report.md.tmp"
    tmp.write_text(text)
    tmp.replace(output / "report.md")
    write_json_atomic(output / "report.json", table)
    cols = columns(table)
    fig, ax = plt.subplots(figsize=(2 + 2.2 * len(table), 3.2))
    width = 0.8 / len(cols)
    for i, col in enumerate(cols):
        means = [np.mean(table[e][col]) if table[e].get(col) else np.nan for e in table]
        stds = [np.std(table[e][col]) if table[e].get(col) else 0.0 for e in table]
        ax.bar(np.arange(len(table)) + (i - (len(cols) - 1) / 2) * width, means, width,
               yerr=stds, label=col, capsize=3)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(table)), list(table))
    ax.set_ylabel("normalized score")
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp_png = output / ".report.png.tmp.png"
    fig.savefig(tmp_png, dpi=120)
    plt.close(fig)
    tmp_png.replace(output / "report.png")
    return {"table": table, "markdown": markdown(table)}
