"""``trirl expert`` runs: PPO on the environment's true task reward (kind ``"expert"``).

Several seeds train together (``vmap`` over the stacked state); the per-env settings
and budgets are :mod:`trirl.presets`'. Loading a trained policy from any run is
:func:`trirl.runs.load_policy`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import jax

from trirl import envs, runs, sharding
from trirl.ppo import PPOConfig
from trirl.presets import expert_ppo_settings, expert_steps

KIND = "expert"


def train_expert(env_name: str, *, run_dir: Optional[Path] = None, steps: Optional[int] = None,
                 seeds: int = 1, seed: int = 0, ppo_overrides: Optional[dict] = None,
                 env_overrides: Optional[dict] = None, checkpoint_every: int = 50,
                 show_progress: bool = True, backend: Optional[str] = None) -> Path:
    """Train PPO expert(s) on the true reward; returns the run directory.

    ``backend``: physics backend, "mjx", "c" or "auto" (default: auto, i.e. MJX on a
    GPU and MuJoCo C on a CPU); the concrete one is recorded in ``config.json``.
    """
    env = envs.make(env_name, backend=backend, **(env_overrides or {}))
    cfg = PPOConfig(**{**expert_ppo_settings(env_name), **(ppo_overrides or {})})
    record = runs.new_record(KIND, env, cfg, steps=int(steps or expert_steps(env_name)),
                             seeds=seeds, seed=seed, checkpoint_every=checkpoint_every,
                             env_overrides=env_overrides)
    return runs.start(record, run_dir, show_progress=show_progress)


def resume_expert(run_dir: Path, show_progress: bool = True,
                  backend: Optional[str] = None) -> Path:
    return runs.resume(run_dir, kinds=(KIND,), backend=backend, show_progress=show_progress)


def _training(run: runs.Run, placement: sharding.Placement) -> runs.Training:
    return runs.Training(init=lambda: runs.init_policies(run),
                         iterate=placement.jit(jax.vmap(run.ppo.iteration)),
                         steps_per_iteration=run.ppo.config.batch_size,
                         label=f"expert {run.config['env']}",
                         summary={"episode_return": "return",
                                  "terminated_fraction": "terminated"})


runs.register(KIND, _training)
