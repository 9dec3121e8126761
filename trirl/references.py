"""Reference returns for normalised scores: the bundled demo files and their metadata.

The normalised score is ``(R - R_random) / (R_expert - R_random)`` (expert = 1,
random = 0), with the reference returns taken from a demo file's metadata -- the same
numbers the demos were published with, so scores are comparable across tools.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Optional

from trirl import demos as demos_lib
from trirl.errors import TrirlError


def bundled_demos(env_name: str) -> Optional[Path]:
    """Path of the demo file shipped in ``trirl.examples`` for ``env_name``, if any."""
    path = importlib.resources.files("trirl.examples") / f"{env_name}.npz"
    return Path(str(path)) if path.is_file() else None


def normalized_score(ret, expert: float, random: float):
    """``(ret - random) / (expert - random)``: expert = 1, random = 0 (works on arrays)."""
    return (ret - random) / (expert - random)


def demo_reference(path: Path, env_name: str) -> Optional[dict]:
    """The expert/random mean returns in a demo file's metadata (None when it has none),
    for normalised scores on ``env_name``; demos of another env are refused."""
    meta = demos_lib.load(path).metadata
    if meta["env"] != env_name:
        raise TrirlError(f"{path}: demos are for env {meta['env']!r}, not {env_name!r}; pass "
                         f"--demos recorded on {env_name}")
    if meta.get("expert_return_mean") is None or meta.get("random_return_mean") is None:
        return None
    return {"expert_return_mean": meta["expert_return_mean"],
            "random_return_mean": meta["random_return_mean"], "source": str(path)}


def with_normalized_score(iterate, reference: dict):
    """``iterate(state) -> (state, metrics)`` that adds the normalised score of the
    iteration's finished episodes (NaN, logged as null, where a seed finished none)."""
    def step(*args):
        state, metrics = iterate(*args)
        metrics["normalized_score"] = normalized_score(
            metrics["episode_return"], reference["expert_return_mean"],
            reference["random_return_mean"])
        return state, metrics

    return step
