"""``trirl expert`` runs: PPO on the environment's true task reward (kind ``"expert"``).

Several seeds train together (``vmap`` over the stacked state); the per-env settings
and budgets are :mod:`trirl.presets`'. Loading a trained policy from any run is
:func:`trirl.runs.load_policy`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import jax

from trirl import envs, runs, sharding
from trirl.ppo import PPOConfig
from trirl.presets import expert_ppo_settings, expert_steps
from trirl.references import with_normalized_score
from trirl.settings import ppo_config_from_dict

KIND = "expert"


def train_expert(env_name: str, *, run_dir: Optional[Path] = None, steps: Optional[int] = None,
                 seeds: int = 1, seed: int = 0, ppo_overrides: Optional[dict] = None,
                 env_overrides: Optional[dict] = None, checkpoint_every: int = 50,
                 show_progress: bool = True, backend: Optional[str] = None,
                 ppo: Optional[PPOConfig] = None, reference: Optional[dict] = None) -> Path:
    """Train PPO expert(s) on the true reward; returns the run directory.

    Args:
      ppo_overrides: PPO settings over the env's expert preset.
      ppo: the whole PPO config instead of the preset's (``ppo_overrides`` on top), e.g.
        a learner's, for the oracle of `trirl compare`.
      reference: expert/random mean returns (``trirl.references.demo_reference``): the
        run then logs the normalised score of its training episodes.
      backend: physics backend, "mjx", "c" or "auto" (default: auto, i.e. MJX on a
        GPU and MuJoCo C on a CPU); the concrete one is recorded in ``config.json``.
    """
    env = envs.make(env_name, backend=backend, **(env_overrides or {}))
    base = expert_ppo_settings(env_name) if ppo is None else dataclasses.asdict(ppo)
    cfg = ppo_config_from_dict({**base, **(ppo_overrides or {})}, "PPO settings")
    record = runs.new_record(KIND, env, cfg, steps=int(steps or expert_steps(env_name)),
                             seeds=seeds, seed=seed, checkpoint_every=checkpoint_every,
                             env_overrides=env_overrides,
                             **({"reference": reference} if reference else {}))
    return runs.start(record, run_dir, show_progress=show_progress)


def resume_expert(run_dir: Path, show_progress: bool = True,
                  backend: Optional[str] = None, steps: Optional[int] = None) -> Path:
    return runs.resume(run_dir, kinds=(KIND,), backend=backend, show_progress=show_progress,
                       steps=steps)


def _training(run: runs.Run, placement: sharding.Placement) -> runs.Training:
    iterate = placement.jit(jax.vmap(run.ppo.iteration))
    reference = run.config.get("reference")
    if reference:
        iterate = with_normalized_score(iterate, reference)
    return runs.Training(init=lambda: runs.init_policies(run), iterate=iterate,
                         steps_per_iteration=run.ppo.config.batch_size,
                         label=f"expert {run.config['env']}",
                         summary={"episode_return": "return",
                                  "terminated_fraction": "terminated"})


runs.register(KIND, _training)
