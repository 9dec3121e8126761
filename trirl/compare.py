"""The evaluation grid: one learner run per (environment, algorithm), resumable.

``run_grid`` trains every cell of ``envs x algos`` with ``trirl.learn.train`` (all seeds
of a cell vmapped in one program), evaluates it (``trirl.evaluation.evaluate_run``,
cached in the run's ``evaluation.json`` as ``trirl report`` does), and optionally
exports each seed's reward and re-optimises it from scratch (``--retrain``) and on a
changed environment (``--transfer ENV=TARGET``): the Training / Retraining / Transfer
columns of the paper's Table 1. Then ``trirl.compare_report`` writes the report.

Layout of the output directory::

    OUT/compare.json                       the grid's settings (checked on every rerun)
    OUT/cells/ENV/ALGO/learn/              the `trirl learn` run (config, metrics, checkpoints)
    OUT/cells/ENV/ALGO/cell.json           one record per invocation: wall time, env steps,
                                           peak RSS (see below)
    OUT/cells/ENV/ALGO/rewards/seedI.reward    seed I's exported reward
    OUT/cells/ENV/ALGO/retrain/seedI/      retraining on that reward (1 fresh policy)
    OUT/cells/ENV/ALGO/transfer-TARGET/seedI/  the same on TARGET
    OUT/report/                            summary.md, summary.json, learning_curves.png

Resuming is stage by stage from what is on disk, so rerunning the same command is
always safe: a learn run whose final checkpoint exists is not trained again; one with
an earlier checkpoint continues from it (``trirl.learn.resume``: bit-for-bit); one
without any checkpoint (killed before its first) starts over. Retrain/transfer runs
are finished when their ``evaluation.json`` exists, and resume the same way.

Resources. Each cell runs in its own child process (``isolate``, the default), so its
peak resident set size -- ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` read in that
process right after training, before evaluation -- is the cell's own, and one cell's
memory is returned to the system before the next starts. With ``isolate=False``
(``--in-process``) cells share the grid's process, which is faster for tiny grids
(one import of JAX, shared compilations) but makes the recorded peak the process's
high-water mark so far, an upper bound; each record says which (``rss_scope``).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

from trirl import compare_report
from trirl.errors import Interrupted, TrirlError
from trirl.grid import (CELL_FILE, GRID_ALGOS, GRID_FILE, LEARN_DIR, ORACLE, REOPTIMISE_DEFINING,
                        RUN_DEFINING, CompareConfig, cell_dir, reoptimise_dirs)
from trirl.report import EVALUATION_FILE, cached_evaluation

def parse_pairs(items, flag: str, example: str) -> tuple[tuple[str, str], ...]:
    """``("point_maze=a.npz",)`` -> ``(("point_maze", "a.npz"),)``; one-line error naming
    ``flag`` for an item that is not ``ENV=VALUE``."""
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise TrirlError(f"{flag} {item!r} is not ENV=VALUE; write e.g. {flag} {example}")
        out.append((key.strip(), value.strip()))
    return tuple(out)


def parse_list(text: str, flag: str) -> tuple[str, ...]:
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    if not items:
        raise TrirlError(f"{flag} is empty; give a comma-separated list")
    return items


# ----------------------------------------------------------------------------- checks


def _env_overrides(config: CompareConfig, env_name: str) -> dict:
    from trirl import envs
    from trirl.settings import parse_overrides

    try:
        return parse_overrides(config.env_settings, envs.registry()[env_name].config_class,
                               env_name)
    except TrirlError as exc:
        raise TrirlError(f"--env-set applies to every env of the grid: {exc}") from None


def _retrain_overrides(config: CompareConfig) -> dict:
    from trirl.ppo import PPOConfig
    from trirl.settings import parse_overrides

    try:
        return parse_overrides(config.retrain_settings, PPOConfig, "PPO")
    except TrirlError as exc:
        raise TrirlError(f"--retrain-set: {exc}") from None


def _demos_for(config: CompareConfig, env_name: str) -> Optional[Path]:
    from trirl.references import bundled_demos

    return config.demo_files.get(env_name) or bundled_demos(env_name)


def check(config: CompareConfig) -> None:
    """Every input error of a grid as one line naming the flag, before anything is
    written or trained."""
    from trirl import envs, learn
    from trirl.presets import learn_config
    from trirl.references import demo_reference
    from trirl.settings import merge_settings, parse_settings

    known = envs.names()
    for flag, values, options in (("--envs", config.envs, known),
                                  ("--algos", config.algos, tuple(GRID_ALGOS))):
        for value in values:
            if value not in options:
                raise TrirlError(f"{flag}: unknown {flag[2:-1]} {value!r}; choose from "
                                 f"{', '.join(options)}")
        if len(set(values)) != len(values):
            raise TrirlError(f"{flag} names an entry twice; list each once")
    if config.seeds < 1:
        raise TrirlError(f"--seeds must be >= 1 (got {config.seeds}); e.g. --seeds 5")
    if config.steps is not None and config.steps < 1:
        raise TrirlError(f"--steps must be >= 1 (got {config.steps}); or omit it for the "
                         "env's preset")
    if config.retrain_steps is not None and config.retrain_steps < 1:
        raise TrirlError(f"--retrain-steps must be >= 1 (got {config.retrain_steps}); or omit "
                         "it for --steps")
    _retrain_overrides(config)
    if config.checkpoint_every < 1:
        raise TrirlError(f"--checkpoint-every must be >= 1 (got {config.checkpoint_every})")
    if config.bootstrap_reps < 1:
        raise TrirlError(f"--bootstrap-reps must be >= 1 (got {config.bootstrap_reps})")
    for env_name, target in config.transfer:
        if env_name not in config.envs:
            raise TrirlError(f"--transfer {env_name}={target}: {env_name!r} is not in --envs; "
                             "add it there or drop the pair")
        if target not in known:
            raise TrirlError(f"--transfer {env_name}={target}: unknown environment {target!r}; "
                             f"choose from {', '.join(known)}")
        a, b = envs.make(env_name), envs.make(target)
        if (a.observation_size, list(a.obs_names)) != (b.observation_size, list(b.obs_names)) \
                or a.action_size != b.action_size:
            raise TrirlError(f"--transfer {env_name}={target}: {target} observes or acts "
                             f"differently from {env_name}, so its reward cannot be "
                             "transferred; pick a variant of the same robot")
    if len(set(config.transfer)) != len(config.transfer):
        raise TrirlError("--transfer names a pair twice; list each once")
    targets = {t for _, t in config.transfer}
    for env_name, path in config.demos:
        if env_name not in config.envs and env_name not in targets:
            raise TrirlError(f"--demos {env_name}={path}: {env_name!r} is neither in --envs nor "
                             "a --transfer target")
        if not Path(path).is_file():
            raise TrirlError(f"--demos {env_name}={path}: no such file")
    if len({e for e, _ in config.demos}) != len(config.demos):
        raise TrirlError("--demos names an env twice; give one file per env")
    try:
        settings = parse_settings(config.settings)
    except TrirlError as exc:
        raise TrirlError(f"--set: {exc}") from None
    for name in ("algo", "reward_model"):
        if name in settings.get("", {}):
            raise TrirlError(f"--set {name}=... does not apply to a grid; choose the columns "
                             f"with --algos ({', '.join(GRID_ALGOS)})")
    for env_name in (*config.envs, *sorted(targets)):
        overrides = _env_overrides(config, env_name)
        path = _demos_for(config, env_name)
        if path is None:
            raise TrirlError(f"--demos: {env_name} has no bundled demonstrations; pass "
                             f"--demos {env_name}=FILE (record one with `trirl demos RUN -o "
                             "FILE`)")
        try:
            reference = demo_reference(path, env_name)
        except TrirlError as exc:
            raise TrirlError(f"--demos {env_name}={path}: {exc}") from None
        if reference is None:
            raise TrirlError(f"--demos {env_name}={path}: no expert/random reference returns "
                             "in its metadata, which the normalised score needs; record it "
                             "with `trirl demos RUN -o FILE`")
        if env_name in config.envs:
            env = envs.make(env_name, backend=config.backend, **overrides)
            for algo in config.algos:
                try:
                    cfg = learn_config(env_name, merge_settings(settings, algo_settings(algo)))
                    learn.load_demos(path, env, cfg)
                except TrirlError as exc:
                    raise TrirlError(f"--set / --algos {algo} on {env_name}: {exc}") from None


def _check_out(config: CompareConfig, out: Path) -> Optional[dict]:
    """The settings already in ``out`` (None for a new grid); refuse a rerun whose
    run-defining settings differ."""
    path = out / GRID_FILE
    if not path.is_file():
        if out.is_dir() and any(out.iterdir()):
            raise TrirlError(f"--out {out} exists and is not a trirl compare directory; pick "
                             "a new --out")
        return None
    old = json.loads(path.read_text())
    new = config.to_json()
    # A grid written before a setting existed ran with its default.
    defaults = CompareConfig().to_json()
    both_reoptimise = _reoptimises(old) and _reoptimises(new)
    for name in RUN_DEFINING + (REOPTIMISE_DEFINING if both_reoptimise else ()):
        recorded = old.get(name, defaults[name])
        if recorded != new[name]:
            raise TrirlError(f"--out {out} holds a grid with {name}={recorded!r}, not "
                             f"{new[name]!r}; rerun with the same setting to resume it, "
                             "or pick another --out")
    old_demos, new_demos = dict(map(tuple, old.get("demos", []))), dict(config.demos)
    for env_name in set(old_demos) & set(new_demos):
        if Path(old_demos[env_name]).resolve() != Path(new_demos[env_name]).resolve():
            raise TrirlError(f"--out {out} trained {env_name} on {old_demos[env_name]}, not "
                             f"{new_demos[env_name]}; use the same --demos or another --out")
    return old


def _reoptimises(grid: dict) -> bool:
    return bool(grid.get("retrain") or grid.get("transfer"))


def _merged(old: Optional[dict], config: CompareConfig) -> CompareConfig:
    """What ``compare.json`` records: this invocation's settings over the cells of
    earlier ones (the report covers every cell the directory holds)."""
    if old is None:
        return config
    prev = CompareConfig.from_json(old)

    def union(a, b):
        return tuple(dict.fromkeys((*a, *b)))

    if not _reoptimises(config.to_json()):   # the runs on disk used the recorded ones
        config = dataclasses.replace(config, retrain_steps=prev.retrain_steps,
                                     retrain_settings=prev.retrain_settings)
    return dataclasses.replace(config, envs=union(prev.envs, config.envs),
                               algos=union(prev.algos, config.algos),
                               demos=tuple(dict((*prev.demos, *config.demos)).items()),
                               transfer=union(prev.transfer, config.transfer),
                               retrain=prev.retrain or config.retrain)


# ----------------------------------------------------------------------------- cells


def algo_settings(algo: str) -> dict:
    """The ``trirl learn`` settings section of grid column ``algo``."""
    return {"": dict(GRID_ALGOS[algo])}


def _final_checkpoint(run_dir: Path) -> bool:
    """Whether the run's last iteration is checkpointed (a committed Orbax step is a
    directory named by its step; uncommitted ones carry a temporary suffix)."""
    try:
        n = json.loads((run_dir / "config.json").read_text())["num_iterations"]
    except (OSError, ValueError, KeyError):
        return False
    return (run_dir / "checkpoints" / str(n)).is_dir()


def cell_complete(config: CompareConfig, out: Path, env_name: str, algo: str) -> bool:
    """Everything this grid asks of the cell is on disk (checked without JAX)."""
    cell = cell_dir(out, env_name, algo)
    learn_dir = cell / LEARN_DIR
    if not (_final_checkpoint(learn_dir) and (learn_dir / EVALUATION_FILE).is_file()):
        return False
    return all((d / EVALUATION_FILE).is_file() for _, _, d in reoptimise_dirs(config, cell,
                                                                            env_name))


def _peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0)


def _latest_step(run_dir: Path) -> Optional[int]:
    from trirl.runs import latest_step

    return latest_step(run_dir)


def _record(cell: Path, entry: dict) -> None:
    from trirl.runner import write_json_atomic

    path = cell / CELL_FILE
    data = json.loads(path.read_text()) if path.is_file() else {"invocations": []}
    data["invocations"].append(entry)
    write_json_atomic(path, data)


def _stale(run_dir: Path) -> bool:
    """A run directory claimed but never checkpointed (killed before its first save):
    nothing in it to keep, so it is started over."""
    return (run_dir / "config.json").is_file() and _latest_step(run_dir) is None


def _train_stage(config: CompareConfig, cell: Path, env_name: str, algo: str,
                 show_progress: bool) -> None:
    """Train (or resume) the cell's learn run and record the invocation."""
    from trirl import learn
    from trirl.settings import merge_settings, parse_settings

    run_dir = cell / LEARN_DIR
    if _stale(run_dir):
        shutil.rmtree(run_dir)
    # Training changes the policy: an evaluation on disk (of an earlier final checkpoint
    # that was since removed) no longer describes it.
    (run_dir / EVALUATION_FILE).unlink(missing_ok=True)
    resumed = (run_dir / "config.json").is_file()
    start = _latest_step(run_dir) if resumed else 0
    started, t0 = _dt.datetime.now(_dt.timezone.utc), time.perf_counter()
    interrupted = None
    try:
        if algo == ORACLE:
            _train_oracle(config, run_dir, env_name, resumed, show_progress)
        elif resumed:
            learn.resume(run_dir, show_progress=show_progress)
        else:
            learn.train(env_name, demos=config.demo_files.get(env_name), run_dir=run_dir,
                        steps=config.steps, seeds=config.seeds, seed=config.seed,
                        settings=merge_settings(parse_settings(config.settings),
                                                algo_settings(algo)),
                        env_overrides=_env_overrides(config, env_name),
                        checkpoint_every=config.checkpoint_every,
                        show_progress=show_progress, backend=config.backend)
    except Interrupted as exc:
        interrupted = exc
    wall = time.perf_counter() - t0
    run = json.loads((run_dir / "config.json").read_text())
    end = _latest_step(run_dir) or 0
    steps_per_iteration = run["total_steps"] // run["num_iterations"]
    # Read before evaluation: the peak is training's (plus the imports before it).
    _record(cell, {"stage": "resume" if resumed else "train", "started": started.isoformat(),
                   "wall_s": wall, "iterations": [start, end],
                   "env_steps": (end - start) * steps_per_iteration * run["seeds"],
                   "peak_rss_mb": _peak_rss_mb(), "pid": os.getpid(),
                   "rss_scope": "cell process" if config.isolate else "grid process",
                   "interrupted": interrupted is not None})
    if interrupted is not None:
        raise interrupted


def _train_oracle(config: CompareConfig, run_dir: Path, env_name: str, resumed: bool,
                  show_progress: bool) -> None:
    """The oracle cell: an expert run on the true reward with the TRIRL column's policy
    PPO and budget, scored against the same demos' reference returns."""
    from trirl import expert
    from trirl.presets import learn_config, preset_steps
    from trirl.references import demo_reference
    from trirl.settings import merge_settings, parse_settings

    if resumed:
        expert.resume_expert(run_dir, show_progress=show_progress)
        return
    trirl = learn_config(env_name, merge_settings(parse_settings(config.settings),
                                                  algo_settings(ORACLE)))
    expert.train_expert(env_name, run_dir=run_dir, ppo=trirl.policy_ppo,
                        steps=config.steps or preset_steps(env_name, trirl),
                        seeds=config.seeds, seed=config.seed,
                        env_overrides=_env_overrides(config, env_name),
                        checkpoint_every=config.checkpoint_every, show_progress=show_progress,
                        backend=config.backend,
                        reference=demo_reference(_demos_for(config, env_name), env_name))


def _reoptimise_stage(config: CompareConfig, cell: Path, env_name: str,
                      show_progress: bool) -> None:
    from trirl import export, retrain

    learn_dir = cell / LEARN_DIR
    ppo_overrides = _retrain_overrides(config)
    for kind, target, run_dir in reoptimise_dirs(config, cell, env_name):
        if (run_dir / EVALUATION_FILE).is_file():
            continue
        i = int(run_dir.name.removeprefix("seed"))
        reward = cell / "rewards" / f"seed{i}.reward"
        if not reward.is_file():
            reward.parent.mkdir(parents=True, exist_ok=True)
            export.export(learn_dir, reward, seed_index=i)   # written atomically
        if _stale(run_dir):
            shutil.rmtree(run_dir)
        started, t0 = _dt.datetime.now(_dt.timezone.utc), time.perf_counter()
        if (run_dir / "config.json").is_file():
            retrain.resume(run_dir, show_progress=show_progress)
        else:
            overrides = None if target == env_name else _env_overrides(config, target)
            # Seed i's reward gets its own fresh policy, seeded apart from training
            # (retrain.fresh_seed: --seed + SEED_OFFSET + i, from the reward's header).
            retrain.train(reward, env_name=target, transfer=kind == "transfer", run_dir=run_dir,
                          steps=config.reoptimise_steps, seeds=1,
                          ppo_overrides=ppo_overrides,
                          env_overrides=overrides, demos=config.demo_files.get(target),
                          checkpoint_every=config.checkpoint_every,
                          show_progress=show_progress, backend=config.backend)
        _record(cell, {"stage": f"{kind}:{target}:seed{i}", "started": started.isoformat(),
                       "wall_s": time.perf_counter() - t0, "peak_rss_mb": _peak_rss_mb(),
                       "pid": os.getpid(),
                       "rss_scope": "cell process" if config.isolate else "grid process"})


def run_cell(config: CompareConfig, out: Path, env_name: str, algo: str,
             show_progress: bool = True) -> Path:
    """Bring one cell up to date in this process: train/resume, evaluate, retrain and
    transfer, skipping every stage already on disk. Returns the cell directory."""
    cell = cell_dir(out, env_name, algo)
    cell.mkdir(parents=True, exist_ok=True)
    learn_dir = cell / LEARN_DIR
    if not _final_checkpoint(learn_dir):
        _train_stage(config, cell, env_name, algo, show_progress)
    cached_evaluation(learn_dir)
    _reoptimise_stage(config, cell, env_name, show_progress)
    return cell


def _child_main(argv: list[str]) -> None:
    """Entry point of a cell's child process: ``CONFIG_JSON OUT ENV ALGO``."""
    config = CompareConfig.from_json(json.loads(argv[0]))
    out, env_name, algo = Path(argv[1]), argv[2], argv[3]
    try:
        run_cell(config, out, env_name, algo)
    except Interrupted as exc:
        print(f"trirl: {exc}", file=sys.stderr)
        sys.exit(130)
    except TrirlError as exc:
        print(f"trirl: error: {exc}", file=sys.stderr)
        sys.exit(2)


def _spawn_cell(config: CompareConfig, out: Path, env_name: str, algo: str) -> None:
    """Run a cell in a child process (same interpreter, this invocation's settings)."""
    code = "import sys; from trirl.compare import _child_main; _child_main(sys.argv[1:])"
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(config.to_json()),
                             str(out), env_name, algo])
    # SIGTERM (kill, timeout, batch schedulers) reaches only this process: pass it on,
    # so the child checkpoints as on Ctrl-C (trirl.runner) instead of being orphaned, and
    # remember it: the grid must stop, however the child ended (one still starting up has
    # no handler yet and dies of the signal, which is not a failed cell to skip past).
    terminated = []

    def forward_term(*_):
        terminated.append(True)
        proc.send_signal(signal.SIGTERM)

    forward = (threading.current_thread() is threading.main_thread())
    previous = signal.signal(signal.SIGTERM, forward_term) if forward else None
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        # Ctrl-C reached the child too (same process group): let it checkpoint.
        proc.wait()
        raise Interrupted(f"interrupted in cell {env_name}/{algo}; its checkpoint is saved, "
                          "rerun the same command to resume") from None
    finally:
        if forward:
            signal.signal(signal.SIGTERM, previous)
    if rc == 130 or terminated or rc == -signal.SIGTERM:
        raise Interrupted(f"cell {env_name}/{algo} was interrupted; its last checkpoint is "
                          "kept, rerun the same command to resume")
    if rc != 0:
        raise TrirlError(f"its process exited with status {rc}; its error is above")


def run_grid(config: CompareConfig, out: Path, *, show_progress: bool = True,
             log=print) -> dict:
    """Validate, train every unfinished cell, then write the report; returns the
    report's summary (``trirl.compare_report.write``)."""
    from trirl.runner import write_json_atomic

    out = Path(out)
    check(config)
    old = _check_out(config, out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / GRID_FILE, _merged(old, config).to_json())
    failed = []
    for env_name in config.envs:
        for algo in config.algos:
            if cell_complete(config, out, env_name, algo):
                log(f"cell {env_name}/{algo}: finished, skipped")
                continue
            trained = _final_checkpoint(cell_dir(out, env_name, algo) / LEARN_DIR)
            log(f"cell {env_name}/{algo}: {'re-optimising' if trained else 'training'} "
                f"({config.seeds} seeds)")
            try:
                if config.isolate:
                    _spawn_cell(config, out, env_name, algo)
                else:
                    run_cell(config, out, env_name, algo, show_progress=show_progress)
            except Interrupted:
                raise
            except TrirlError as exc:
                # One diverged cell should not cost an overnight grid its other cells.
                log(f"cell {env_name}/{algo} failed: {exc}")
                failed.append(f"{env_name}/{algo}")
    summary = compare_report.write(out)
    if failed:
        raise TrirlError(f"cell(s) {', '.join(failed)} failed (errors above); the report in "
                         f"{out / 'report'} covers the others; fix and rerun the same command "
                         "to resume")
    return summary
