"""Aggregate statistics of normalised scores, as rliable computes them (Agarwal et al.,
"Deep RL at the Edge of the Statistical Precipice", NeurIPS 2021), in plain NumPy.

* :func:`iqm`: interquartile mean of the *pooled* scores (all runs of all tasks in one
  set): sort, drop ``floor(n / 4)`` values at each end, average the rest. This is
  ``scipy.stats.trim_mean(x, 0.25, axis=None)``, which rliable's ``aggregate_iqm`` calls.
  It is robust to the one diverged seed that drags a mean down, and far less noisy
  than the median with few runs.
* :func:`stratified_bootstrap_ci`: percentile confidence interval of a statistic of
  the pooled scores, resampling runs *within each task* (the tasks are fixed; only the
  seeds are random), rliable's ``StratifiedBootstrap`` with ``task_bootstrap=False``.
  Tasks may have different numbers of runs.

Everything is float64 and seeded: the same scores and seed give the same interval.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from trirl.errors import TrirlError

# rliable's defaults (get_interval_estimates): 50,000 resamples, 95 % interval.
DEFAULT_REPS = 50_000
DEFAULT_CONFIDENCE = 0.95


def iqm(scores, axis=None) -> np.ndarray | float:
    """Interquartile mean: the mean of the scores left after dropping ``floor(n/4)`` of
    the lowest and of the highest (``axis=None``: of all values pooled; an int: along
    that axis, for many resamples at once)."""
    x = np.asarray(scores, np.float64)
    if axis is None:
        x, axis = x.reshape(-1), 0
    n = x.shape[axis]
    if n == 0:
        raise TrirlError("the interquartile mean of no scores is undefined")
    cut = n // 4  # int(0.25 * n) as in scipy.stats.trim_mean
    x = np.sort(x, axis=axis)
    kept = np.take(x, np.arange(cut, n - cut), axis=axis)
    return kept.mean(axis=axis)


def _strata(scores_per_task: Sequence) -> list[np.ndarray]:
    strata = [np.asarray(s, np.float64).reshape(-1) for s in scores_per_task]
    if not strata or any(s.size == 0 for s in strata):
        raise TrirlError("a bootstrap interval needs at least one score in every task")
    if not all(np.isfinite(s).all() for s in strata):
        raise TrirlError("scores must be finite for a bootstrap interval (a run without a "
                         "normalised score?)")
    return strata


def bootstrap_indices(sizes: Sequence[int], reps: int, seed: int) -> list[np.ndarray]:
    """The resampled run indices, one ``(reps, n_task)`` integer array per task.

    The draw order is part of the contract (the tests rebuild intervals from it): one
    ``numpy.random.default_rng(seed)``, and for each task in order one block
    ``rng.integers(0, n_task, size=(reps, n_task))``.
    """
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n, size=(reps, n)) for n in sizes]


def stratified_bootstrap_ci(scores_per_task: Sequence, *, statistic=iqm,
                            reps: int = DEFAULT_REPS, confidence: float = DEFAULT_CONFIDENCE,
                            seed: int = 0) -> tuple[float, float, float]:
    """``(point estimate, low, high)`` of ``statistic`` over the pooled scores.

    Args:
      scores_per_task: one 1-D array of run scores per task (e.g. per env: the
        per-seed normalised scores).
      statistic: ``statistic(x, axis=1)`` of an ``(reps, n_pooled)`` array, one value
        per row; ``statistic(x)`` of the pooled 1-D scores gives the point estimate.
      reps: bootstrap resamples.
      confidence: interval mass; the interval is the ``(1 - c)/2`` and ``(1 + c)/2``
        percentiles of the resampled statistics (the percentile method, rliable's
        default).
      seed: seed of the resampling (see :func:`bootstrap_indices`).
    """
    if reps < 1:
        raise TrirlError(f"bootstrap reps must be >= 1 (got {reps})")
    if not 0.0 < confidence < 1.0:
        raise TrirlError(f"confidence must be in (0, 1) (got {confidence})")
    strata = _strata(scores_per_task)
    point = float(statistic(np.concatenate(strata)))
    # Resample each task's runs with replacement, then pool the tasks: the same
    # (reps, n_pooled) layout rliable's StratifiedBootstrap produces, evaluated at once.
    idx = bootstrap_indices([s.size for s in strata], reps, seed)
    pooled = np.concatenate([s[i] for s, i in zip(strata, idx)], axis=1)
    estimates = np.asarray(statistic(pooled, axis=1), np.float64)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(estimates, [tail, 100.0 - tail])
    return point, float(low), float(high)


def summarize(scores_per_task: Sequence, *, reps: int = DEFAULT_REPS,
              confidence: float = DEFAULT_CONFIDENCE, seed: int = 0) -> dict:
    """IQM with its stratified bootstrap interval and the plain mean/std of the pooled
    scores, as a JSON-able dict."""
    point, low, high = stratified_bootstrap_ci(scores_per_task, reps=reps,
                                               confidence=confidence, seed=seed)
    pooled = np.concatenate(_strata(scores_per_task))
    return {"iqm": point, "ci_low": low, "ci_high": high, "mean": float(pooled.mean()),
            "std": float(pooled.std()), "runs": int(pooled.size),
            "tasks": len(scores_per_task)}
