"""The layout of a `trirl compare` grid: its settings and where each cell's runs live.

Shared by the grid's runner (:mod:`trirl.compare`) and its report
(:mod:`trirl.compare_report`), which import it and not each other's internals.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

from trirl.choices import ALGOS

# Columns a grid may have: the learners above, plus TRIRL with the feature-based reward
# model (the paper's Table 1 model, whose rewards can transfer), each as the TRIRL
# settings that make it. Not in the default --algos.
GRID_ALGOS: dict[str, dict] = {**{a: {"algo": a} for a in ALGOS},
                               "trirl_features": {"algo": "trirl", "reward_model": "features"},
                               "oracle": {"algo": "trirl"}}
# The oracle column: PPO on the env's *true* task reward, with the PPO the TRIRL column's
# policy trains with (the env's learn preset and --set: networks, LR, epochs, initial
# std, TRPL bounds) and the same steps -- what the task reward itself teaches at this
# budget, the calibration every imitation score is read against. It learns no reward,
# so it has no retraining or transfer runs.
ORACLE = "oracle"
GRID_FILE = "compare.json"
CELL_FILE = "cell.json"
LEARN_DIR = "learn"
# Settings that decide what a cell's run is: a rerun that changes them would mix runs
# of different experiments under one report, so it is refused.
RUN_DEFINING = ("seeds", "seed", "steps", "settings", "env_settings", "checkpoint_every",
                "backend")
# Settings of the retrain/transfer runs: checked only between invocations that both
# re-optimise, so a training-only rerun (more algorithms, say) need not repeat them.
REOPTIMISE_DEFINING = ("retrain_steps", "retrain_settings")


@dataclasses.dataclass(frozen=True)
class CompareConfig:
    """One grid of `trirl compare`.

    Attributes:
      envs, algos: the grid's rows and columns.
      seeds: seeds per cell, trained together (vmap) in one run; ``seed`` is the first.
      steps: environment steps per seed [None: each env's preset, as `trirl learn`].
      demos: ``((env, file), ...)`` demonstrations [default: the env's bundled demos].
        A file also gives the expert/random returns of the normalised score, so one may
        be given for a transfer target too.
      retrain: export each seed's reward and retrain a fresh policy on it.
      transfer: ``((env, target), ...)``: the same on a changed environment.
      settings / env_settings: ``KEY=VALUE`` strings as `trirl learn --set` / `--env-set`
        take them, for every cell (kept as text: JSON-able, and compared on rerun).
      retrain_steps: env steps of each retrain/transfer run [None: ``steps``, else the
        learner's budget from the reward's header].
      retrain_settings: PPO ``KEY=VALUE`` strings for those runs, as `trirl retrain --set`
        takes them (e.g. ``init_std=0.2``: a fresh policy need not spend its budget
        shrinking the learner's initial std).
      isolate: a child process per cell (module docstring, *Resources*).
      bootstrap_reps / bootstrap_seed: the report's confidence intervals.
    """

    envs: tuple[str, ...] = ("point_maze",)
    algos: tuple[str, ...] = ALGOS
    seeds: int = 5
    seed: int = 0
    steps: Optional[int] = None
    demos: tuple[tuple[str, str], ...] = ()
    retrain: bool = False
    transfer: tuple[tuple[str, str], ...] = ()
    settings: tuple[str, ...] = ()
    env_settings: tuple[str, ...] = ()
    checkpoint_every: int = 50
    backend: Optional[str] = None
    retrain_steps: Optional[int] = None
    retrain_settings: tuple[str, ...] = ()
    isolate: bool = True
    bootstrap_reps: int = 50_000
    bootstrap_seed: int = 0

    @property
    def demo_files(self) -> dict[str, Path]:
        return {env: Path(path) for env, path in self.demos}

    @property
    def reoptimise_steps(self) -> Optional[int]:
        """Env steps of each retrain/transfer run (None: the reward's training budget)."""
        return self.retrain_steps or self.steps

    def targets(self, env: str) -> list[str]:
        return [t for e, t in self.transfer if e == env]

    def to_json(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_json(cls, values: dict) -> "CompareConfig":
        def tuples(v):
            return tuple(tuples(x) for x in v) if isinstance(v, list) else v

        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuples(v) for k, v in values.items() if k in fields})


def cell_dir(out: Path, env_name: str, algo: str) -> Path:
    return Path(out) / "cells" / env_name / algo


def reoptimise_dirs(config: CompareConfig, cell: Path, env_name: str) -> list[tuple[str, str, Path]]:
    """``(kind, env, run dir)`` of the cell's retrain/transfer runs, one per seed (none
    for the oracle, which learns no reward; a cell's folder is named for its column)."""
    if cell.name == ORACLE:
        return []
    stages = ([("retrain", env_name, "retrain")] if config.retrain else []) + [
        ("transfer", t, f"transfer-{t}") for t in config.targets(env_name)]
    return [(kind, target, cell / name / f"seed{i}")
            for kind, target, name in stages for i in range(config.seeds)]
