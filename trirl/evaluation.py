"""Evaluating trained policies of any run and recording demonstrations from them.

Scores are normalised against the reference returns of :mod:`trirl.references`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import jax
import numpy as np

from trirl import demos as demos_lib
from trirl.errors import TrirlError
from trirl.references import bundled_demos, demo_reference, normalized_score
from trirl.runs import Run, load_policy, open_run


def _act_fn(run: Run, stochastic: bool):
    return run.ppo.act_stochastic if stochastic else run.ppo.act_deterministic


def record_demos(run_dir: Path, output: Path, *, episodes: int = 30, stochastic: bool = False,
                 seed_index: int = 0, seed: int = 0, backend: Optional[str] = None) -> dict:
    """Record ``episodes`` episodes of a run's policy into a demo file, stepping the
    physics ``backend`` (default: the one the run trained on)."""
    if episodes < 1:
        raise TrirlError(f"--episodes must be >= 1 (got {episodes})")
    run = open_run(run_dir, backend=backend)
    policy = load_policy(run, seed_index)
    key_demo, key_random = jax.random.split(jax.random.PRNGKey(seed))
    demos, returns = demos_lib.record(run.env, _act_fn(run, stochastic), key_demo, episodes,
                                      params=policy)
    random = demos_lib.random_returns(run.env, key_random, max(episodes, 100))
    info = dict(expert_return_mean=float(returns.mean()), expert_return_std=float(returns.std()),
                random_return_mean=float(random.mean()), random_return_std=float(random.std()))
    metadata = {**demos.metadata, **info, "source": f"trirl demos {run_dir}",
                "seed": seed, "deterministic": not stochastic,
                "env_overrides": run.config.get("env_overrides", {}),
                "backend": run.env.backend_name}
    demos_lib.save(output, dataclasses.replace(demos, metadata=metadata))
    return {**info, "transitions": demos.num_transitions}


def evaluate_run(run_dir: Path, *, episodes: int = 100, demos_path: Optional[Path] = None,
                 stochastic: bool = False, seed: int = 1, backend: Optional[str] = None) -> dict:
    """Per-seed mean/std true return, terminated fraction and normalised score, stepping
    the physics ``backend`` (default: the one the run trained on)."""
    if episodes < 1:
        raise TrirlError(f"--episodes must be >= 1 (got {episodes})")
    run = open_run(run_dir, backend=backend)
    if demos_path is None and run.config.get("reference"):
        # A retrain/transfer run stores the reference it was started with.
        reference = dict(run.config["reference"])
    else:
        # The given demos, else those the run learned from (a TRIRL run keeps its own
        # copy), else the bundled ones.
        own = run.run_dir / run.config["demos"] if run.config.get("demos") else None
        path = demos_path or (own if own is not None and own.is_file() else None) \
            or bundled_demos(run.env.name)
        reference = None if path is None else demo_reference(path, run.env.name)
    per_seed = []
    for i in range(run.num_seeds):
        policy = load_policy(run, i)
        demos, returns = demos_lib.record(run.env, _act_fn(run, stochastic),
                                          jax.random.PRNGKey(seed), episodes, params=policy)
        entry = {"return_mean": float(returns.mean()), "return_std": float(returns.std()),
                 "terminated_fraction": float(demos.absorbing.sum() / episodes),
                 "normalized_score": None}
        if reference:
            entry["normalized_score"] = float(normalized_score(
                entry["return_mean"], reference["expert_return_mean"],
                reference["random_return_mean"]))
        per_seed.append(entry)
    scores = [e["normalized_score"] for e in per_seed if e["normalized_score"] is not None]
    return {"run": str(run_dir), "env": run.env.name, "backend": run.env.backend_name,
            "episodes": episodes,
            "deterministic": not stochastic, "per_seed": per_seed, "reference": reference,
            "return_mean": float(np.mean([e["return_mean"] for e in per_seed])),
            "normalized_score_mean": float(np.mean(scores)) if scores else None,
            "normalized_score_std": float(np.std(scores)) if scores else None}
