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


def select_episodes(demos: demos_lib.Demos, keep) -> demos_lib.Demos:
    """The episodes ``keep`` (indices into ``demos``' episodes, in that order) as new
    demos; metadata is kept as it is (the caller states what it selected)."""
    starts, ends = demos.episode_starts[keep], demos.episode_ends[keep]
    rows = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends)])
    take = lambda a: None if a is None else a[rows]  # noqa: E731
    return dataclasses.replace(
        demos, obs=demos.obs[rows], next_obs=demos.next_obs[rows], actions=take(demos.actions),
        absorbing=demos.absorbing[rows], truncated=demos.truncated[rows],
        episode_starts=np.concatenate([[0], np.cumsum(ends - starts)[:-1]]).astype(np.int64),
        qpos=take(demos.qpos), qvel=take(demos.qvel))


# ``drop_terminated`` records this many times the episodes asked for and keeps the first
# that did not terminate: enough for an expert that falls in up to ~2 of 3 episodes.
DROP_TERMINATED_FACTOR = 3


def record_demos(run_dir: Path, output: Path, *, episodes: int = 30, stochastic: bool = False,
                 seed_index: int = 0, seed: int = 0, backend: Optional[str] = None,
                 drop_terminated: bool = False) -> dict:
    """Record ``episodes`` episodes of a run's policy into a demo file, stepping the
    physics ``backend`` (default: the one the run trained on).

    ``drop_terminated``: keep only episodes that ran to the time limit. Where the
    terminal state is a failure (a locomotion expert's falls), a demonstration that
    enters it teaches the discriminator that the absorbing state is the expert's, and a
    learner then profits from falling (docs/benchmarks.md, "Ant"). Where it is the goal
    (Point Maze), keep them. The file's metadata says how many were dropped.
    """
    if episodes < 1:
        raise TrirlError(f"--episodes must be >= 1 (got {episodes})")
    run = open_run(run_dir, backend=backend)
    policy = load_policy(run, seed_index)
    key_demo, key_random = jax.random.split(jax.random.PRNGKey(seed))
    recorded = episodes * DROP_TERMINATED_FACTOR if drop_terminated else episodes
    demos, returns = demos_lib.record(run.env, _act_fn(run, stochastic), key_demo, recorded,
                                      params=policy)
    extra = {}
    if drop_terminated:
        ended = demos.absorbing[demos.episode_ends - 1]   # flags sit on an episode's last step
        keep = np.flatnonzero(~ended)[:episodes]
        if keep.size < episodes:
            raise TrirlError(f"{run_dir}: only {keep.size} of {recorded} episodes ran to the "
                             f"time limit, fewer than --episodes {episodes}; lower --episodes "
                             "or drop --drop-terminated")
        dropped = int(ended[:keep[-1] + 1].sum())
        demos, returns = select_episodes(demos, keep), returns[keep]
        extra = {"dropped_terminated_episodes": dropped}
    random = demos_lib.random_returns(run.env, key_random, max(episodes, 100))
    info = dict(expert_return_mean=float(returns.mean()), expert_return_std=float(returns.std()),
                random_return_mean=float(random.mean()), random_return_std=float(random.std()))
    metadata = {**demos.metadata, **info, "source": f"trirl demos {run_dir}",
                "seed": seed, "deterministic": not stochastic,
                "env_overrides": run.config.get("env_overrides", {}),
                "backend": run.env.backend_name, **extra}
    demos_lib.save(output, dataclasses.replace(demos, metadata=metadata))
    return {**info, **extra, "transitions": demos.num_transitions}


def forward_distances(env, demos: demos_lib.Demos) -> Optional[np.ndarray]:
    """Metres each episode of ``demos`` travelled forward, float64 ``(E,)``: the
    integral of the env's forward velocity (its ``x_velocity`` base feature, read from
    the reached observations) over the episode's steps. ``None`` for an env that has no
    such feature (Point Maze): a score alone cannot tell a walk from a lunge, so the
    locomotion envs report both (issue 30)."""
    term = next((t for t in env.feature_terms if t[0] == "x_velocity"), None)
    if term is None or term[1] != "next_obs":
        return None
    speed = np.asarray(demos.next_obs[:, term[2]], np.float64)
    return np.add.reduceat(speed, demos.episode_starts) * env.dt


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
        distances = forward_distances(run.env, demos)
        if distances is not None:
            entry.update(forward_distance_mean=float(distances.mean()),
                         forward_distance_std=float(distances.std()),
                         forward_distances=[round(float(d), 3) for d in distances])
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
