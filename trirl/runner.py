"""The host-side training loop shared by experts and learners.

Everything inside an iteration is one jitted, seed-vmapped function; this loop only
logs, shows progress, checkpoints, and stops cleanly:

* ``metrics.jsonl`` in the run directory gets one JSON line per iteration (mean over
  seeds plus per-seed values);
* checkpoints of the full stacked state every ``checkpoint_every`` iterations and at
  the end (``trirl.checkpoint``); ``resume`` restarts from the latest one and trims
  the metrics log back to it, so a resumed run's log equals an uninterrupted one's;
* Ctrl-C saves a checkpoint of the last completed iteration before exiting;
* NaN/inf in parameters or losses stops the run with a one-line error and keeps the
  last good checkpoint (the diverged state is never saved).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import jax
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from trirl.checkpoint import Checkpointer
from trirl.errors import Interrupted, TrirlError

console = Console(stderr=True)


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_metrics(run_dir: str | Path) -> list[dict]:
    """All lines of ``run_dir/metrics.jsonl`` (empty list if none)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _trim_metrics(path: Path, last_iteration: int) -> None:
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line)["iteration"] <= last_iteration]
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, path)


def _summarise(metrics: dict, iteration: int, env_steps: int, wall: float) -> dict:
    """Host copy of per-seed metrics -> one JSON-able record."""
    line: dict[str, Any] = {"iteration": iteration, "env_steps": env_steps, "wall_s": round(wall, 3)}
    for name, value in metrics.items():
        per_seed = np.asarray(value, dtype=np.float64).reshape(-1)
        finite = per_seed[np.isfinite(per_seed)]
        line[name] = float(finite.mean()) if finite.size else None
        if per_seed.size > 1:
            line[name + "_per_seed"] = [float(v) if np.isfinite(v) else None for v in per_seed]
    return line


def _diverged(metrics: dict) -> Optional[str]:
    finite = np.asarray(metrics.get("finite", True))
    if not finite.all():
        return "non-finite parameters"
    for name in ("loss", "policy_loss", "value_loss", "disc_loss", "reward_mean"):
        if name in metrics and not np.isfinite(np.asarray(metrics[name])).all():
            return f"non-finite {name}"
    return None


@contextlib.contextmanager
def _sigterm_as_ctrl_c():
    """Treat SIGTERM like Ctrl-C while training: batch schedulers, ``timeout`` and
    ``kill`` send SIGTERM, and a run stopped that way should checkpoint and be
    resumable too. Signal handlers can only be set from the main thread.

    Yields a list that the handler appends to: the KeyboardInterrupt it raises can land
    where Python swallows it (a garbage-collection callback prints "Exception ignored"
    and goes on), so the loop also stops at the next iteration boundary when it is
    non-empty (before, such a SIGTERM was lost and a run went on to its end)."""
    requested: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def handler(signum, frame):
        requested.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield requested
    finally:
        signal.signal(signal.SIGTERM, previous)


def train_loop(run_dir: Path, init: Callable[[], Any], iterate: Callable[[Any], tuple],
               *, num_iterations: int, steps_per_iteration: int, checkpoint_every: int,
               resume: bool, label: str, max_to_keep: int = 3,
               show_progress: bool = True) -> Any:
    """Run ``iterate`` until ``num_iterations``; returns the final stacked state.

    Args:
      run_dir: existing run directory (``config.json`` already written by the caller).
      init: ``() -> state`` builds the initial (seed-stacked) state.
      iterate: jitted ``state -> (state, metrics)``; metrics leaves are per-seed.
      num_iterations: total iterations of the run (not of this invocation).
      steps_per_iteration: environment steps per iteration and seed (for logging).
      checkpoint_every: iterations between checkpoints.
      resume: continue from the latest checkpoint in ``run_dir/checkpoints``.
      label: progress-bar title.
    """
    ckpt = Checkpointer(run_dir / "checkpoints", max_to_keep=max_to_keep)
    metrics_path = run_dir / "metrics.jsonl"
    step = ckpt.latest_step() if resume else None
    if resume and step is None:
        # Checked before init(): building the initial state compiles the physics.
        ckpt.close()
        raise TrirlError(f"{run_dir}: no checkpoint to resume from; start a new run instead")
    state = init()
    start = 0
    if resume:
        state, record = ckpt.restore(state, step)
        start = int(record.get("iteration", step))
        _trim_metrics(metrics_path, start)
        console.print(f"resumed {run_dir} at iteration {start}")
    elif metrics_path.exists():
        metrics_path.unlink()

    wall0 = time.perf_counter()
    last_return = float("nan")
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                        TextColumn("it {task.completed}/{task.total}"),
                        TextColumn("{task.fields[steps]} steps"),
                        TextColumn("{task.fields[sps]} steps/s"),
                        TextColumn("return {task.fields[ret]}"),
                        TimeElapsedColumn(), TimeRemainingColumn(),
                        console=console, disable=not show_progress)
    iteration = start
    try:
        with _sigterm_as_ctrl_c() as stop_requested, progress, metrics_path.open("a") as log:
            task = progress.add_task(label, total=num_iterations, completed=start,
                                     steps="0", sps="-", ret="-")
            timed_from, timed_steps = None, 0
            while iteration < num_iterations:
                if stop_requested:
                    raise KeyboardInterrupt
                new_state, metrics = iterate(state)
                metrics = jax.device_get(metrics)
                problem = _diverged(metrics)
                if problem:
                    raise TrirlError(
                        f"training diverged at iteration {iteration + 1} ({problem}); the last "
                        f"good checkpoint is kept in {run_dir / 'checkpoints'} (lower the "
                        "learning rate or check the reward/demos)")
                state, iteration = new_state, iteration + 1
                env_steps = iteration * steps_per_iteration
                line = _summarise(metrics, iteration, env_steps, time.perf_counter() - wall0)
                log.write(json.dumps(line) + "\n")
                log.flush()
                # Steps/s excludes the first iteration of this invocation (compilation).
                now = time.perf_counter()
                if timed_from is None:
                    timed_from = now
                else:
                    timed_steps += steps_per_iteration
                sps = timed_steps / (now - timed_from) if timed_steps else float("nan")
                if line.get("episode_return") is not None:
                    last_return = line["episode_return"]
                progress.update(task, completed=iteration, steps=f"{env_steps:,}",
                                sps="-" if math.isnan(sps) else f"{sps:,.0f}",
                                ret="-" if math.isnan(last_return) else f"{last_return:.2f}")
                if iteration % checkpoint_every == 0 or iteration == num_iterations:
                    ckpt.save(iteration, state, {"iteration": iteration, "env_steps": env_steps})
    except KeyboardInterrupt:
        if iteration > start:
            ckpt.save(iteration, state, {"iteration": iteration,
                                         "env_steps": iteration * steps_per_iteration})
        ckpt.close()
        raise Interrupted(f"interrupted at iteration {iteration}; checkpoint saved, continue "
                         f"with --resume {run_dir}") from None
    ckpt.close()
    return state


def _last_known(lines: list[dict], name: str) -> tuple[Optional[float], list]:
    """Latest logged mean and per-seed values of a metric (``None`` where never logged)."""
    for line in reversed(lines):
        if line.get(name) is not None:
            return line[name], line.get(name + "_per_seed") or [line[name]]
    return None, []


def print_summary(run_dir: Path, columns: dict[str, str], title: str) -> None:
    """Final table of a run: the latest logged value of each metric per seed, the mean
    over seeds, and the run's budget and wall time. ``columns``: metric -> heading."""
    from rich.table import Table

    lines = read_metrics(run_dir)
    if not lines:
        return
    values = {name: _last_known(lines, name) for name in columns}
    seeds = max([len(per) for _, per in values.values()] + [1])
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    last = lines[-1]
    table = Table(title=title, caption=f"{last['env_steps']:,} env steps per seed, "
                                       f"{last['wall_s']:.0f} s wall ({run_dir})")
    table.add_column("seed")
    for heading in columns.values():
        table.add_column(heading, justify="right")
    for i in range(seeds):
        table.add_row(str(i), *[fmt(per[i] if i < len(per) else None)
                                for _, per in values.values()])
    if seeds > 1:
        table.add_row("mean", *[fmt(mean) for mean, _ in values.values()], style="bold")
    console.print(table)


def load_state(run_dir: Path, like: Any, step: Optional[int] = None) -> tuple[Any, dict]:
    """Latest (or ``step``) checkpointed state of a run, in the structure of ``like``."""
    ckpt = Checkpointer(run_dir / "checkpoints")
    if ckpt.latest_step() is None:
        raise TrirlError(f"{run_dir}: no checkpoint found in {run_dir / 'checkpoints'}; "
                         "train first (trirl expert / trirl learn)")
    out = ckpt.restore(like, step)
    ckpt.close()
    return out
