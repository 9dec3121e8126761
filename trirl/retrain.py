"""Re-optimising a frozen ``.reward`` with PPO from scratch (paper Sec. 5.1, Table 1).

``retrain``: a fresh policy on the environment the reward was learned on; ``transfer``:
the same on an environment with changed dynamics (e.g. ``point_maze_flipped``), which
must have the reward's observation layout. The run directory is like a learner's
(``config.json``, ``metrics.jsonl``, ``checkpoints/``) plus its own copy of the reward
file; at the end the policies are evaluated on the true task reward and the result is
written to ``evaluation.json`` (normalised score: expert = 1, random = 0).

Seeds differ from training by construction: ``seed`` defaults to :func:`fresh_seed`
(the training seed plus :data:`SEED_OFFSET` plus the reward's seed index), so no
retrained policy shares an initialisation with the learner's, and the rewards of a
multi-seed run's seeds are not all re-optimised from one and the same initialisation.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Optional

import jax

from trirl import envs, rewards, runs, sharding
from trirl.errors import TrirlError
from trirl.evaluation import evaluate_run
from trirl.ppo import PPO, LearnedReward, PPOConfig, linear_decay
from trirl.references import bundled_demos, demo_reference, with_normalized_score
from trirl.report import EVALUATION_FILE
from trirl.rewards._file import file_sha256
from trirl.runner import write_json_atomic
from trirl.settings import ppo_config_from_dict

KINDS = ("retrain", "transfer")
REWARD_FILE = "reward.reward"  # the run's own copy of the reward it optimises
SEED_OFFSET = 10_000
FALLBACK_STEPS = 5_000_000  # for a header without the learner's budget


def fresh_seed(provenance: dict) -> int:
    """Default seed of the fresh policies for a reward with this header provenance.

    Offset by the seed index too: without it every seed of a ``--seeds N`` run would be
    re-optimised from the same initialisation, so one unlucky start (e.g. a policy that
    stops at a wall) would hit all N rewards at once and look like a reward property."""
    return int(provenance.get("seed", 0)) + SEED_OFFSET + int(provenance.get("seed_index", 0))


def learner_kl_penalty(provenance: dict) -> float:
    """Default ``kl_penalty``: the learner's own policy steps. A ``tr_loss`` reward was
    learned by a policy under a decaying KL penalty, not TRPL (its recorded PPO config has
    no trust region), so a fresh policy on it takes the same steps: eta_init -> 0. Any
    other reward: 0 (its recorded PPO config, TRPL or plain clipping)."""
    if provenance.get("variant") != "tr_loss":
        return 0.0
    return float(provenance.get("eta_init", 80.0))  # 80: TRIRLConfig's, before it was recorded


def learned_reward(reward: rewards.Reward) -> LearnedReward:
    """The file's reward as PPO's pluggable reward (its tensors are the parameters)."""
    return LearnedReward(fn=reward.jax_apply, absorbing_reward=reward.jax_absorbing_reward)


def check_compatible(reward: rewards.Reward, env: envs.Env) -> None:
    """One-line error unless ``env`` produces what the reward reads."""
    reward.check_observations(env.observation_size, env.obs_names, where=f"env {env.name!r}")
    if reward.reads_action and reward.action_size != env.action_size:
        raise rewards.RewardFileError(
            f"{reward.path}: the reward reads {reward.action_size} action values but env "
            f"{env.name!r} has {env.action_size}")


def _reference(reward: rewards.Reward, env_name: str, demos: Optional[Path]) -> Optional[dict]:
    """Expert/random returns for the normalised score on ``env_name``: a given demo file,
    the reward's own (when it is the env it was learned on), or the bundled demos."""
    prov = reward.header.get("provenance", {})
    if demos is None and env_name == reward.env_name and prov.get("expert_return_mean") is not None:
        return {"expert_return_mean": prov["expert_return_mean"],
                "random_return_mean": prov["random_return_mean"],
                "source": f"{reward.path} (training demos)"}
    path = demos or bundled_demos(env_name)
    return None if path is None else demo_reference(path, env_name)


def train(reward_path: Path, *, env_name: Optional[str] = None, transfer: bool = False,
          run_dir: Optional[Path] = None, steps: Optional[int] = None, seeds: int = 3,
          seed: Optional[int] = None, ppo_overrides: Optional[dict] = None,
          env_overrides: Optional[dict] = None, demos: Optional[Path] = None,
          checkpoint_every: int = 50, show_progress: bool = True,
          backend: Optional[str] = None, kl_penalty: Optional[float] = None) -> Path:
    """Train fresh PPO policies on a frozen reward; returns the run directory.

    Args:
      env_name: target environment [retrain: the reward's own; transfer: required].
      transfer: label the run a transfer (Table 1's third column).
      steps: env steps per seed [default: the learner's budget, from the header].
      ppo_overrides: over the PPO config the reward was learned with (its header).
      demos: demo file with the target env's expert/random returns [default: see
        :func:`_reference`].
      backend: physics backend "mjx", "c" or "auto" [default: auto: MJX on a GPU, MuJoCo
        C on a CPU]; recorded in ``config.json`` for ``resume``.
      kl_penalty: > 0: the TR-loss learner's policy steps (``variant="tr_loss"``) instead
        of TRPL's: no projection, ``eta * KL(pi || pi_behaviour)`` in the loss with eta
        decaying linearly from ``kl_penalty`` to 0 over the run. Small steps while the
        value function is still wrong keep a fresh policy from committing early to a local
        optimum of the frozen reward (on Point Maze: pushing into the wall nearest the
        goal); 0 keeps the reward's own PPO settings [default:
        :func:`learner_kl_penalty`, the steps the reward was learned with].
    """
    reward = rewards.load(reward_path)
    if env_name is None:
        if transfer:
            raise TrirlError("trirl transfer needs --env (the changed environment, e.g. "
                             "point_maze_flipped)")
        env_name = reward.env_name
    if env_overrides is None:
        env_overrides = reward.header["env"].get("overrides", {}) \
            if env_name == reward.env_name else {}
    env = envs.make(env_name, backend=backend, **env_overrides)
    check_compatible(reward, env)
    prov = reward.header.get("provenance", {})
    base = ppo_config_from_dict(prov["ppo"], str(reward_path)) if "ppo" in prov else PPOConfig()
    try:
        cfg = dataclasses.replace(base, **(ppo_overrides or {}))
    except (TypeError, ValueError) as exc:
        raise TrirlError(f"invalid PPO setting: {exc}") from None
    if kl_penalty is None:
        kl_penalty = learner_kl_penalty(prov)
    if not kl_penalty >= 0:  # NaN included
        raise TrirlError(f"--kl-penalty must be >= 0 (got {kl_penalty}); e.g. 80, the "
                         "TR-loss learner's eta_init")
    if kl_penalty:
        cfg = dataclasses.replace(cfg, trust_region=None)  # the penalty replaces TRPL
    record = runs.new_record(
        "transfer" if transfer else "retrain", env, cfg,
        steps=int(steps or prov.get("env_steps") or FALLBACK_STEPS), seeds=seeds,
        seed=fresh_seed(prov) if seed is None else seed, checkpoint_every=checkpoint_every,
        env_overrides=env_overrides, reward=REWARD_FILE, reward_source=str(reward_path),
        reward_sha256=file_sha256(reward_path), reward_env=reward.env_name,
        reference=_reference(reward, env_name, demos), kl_penalty=float(kl_penalty))
    return runs.start(record, run_dir, show_progress=show_progress,
                      prepare=lambda d: shutil.copyfile(reward_path, d / REWARD_FILE))


def resume(run_dir: Path, show_progress: bool = True, backend: Optional[str] = None,
           steps: Optional[int] = None) -> Path:
    return runs.resume(run_dir, kinds=KINDS, backend=backend, show_progress=show_progress,
                       steps=steps)


def _iterate_fn(run: runs.Run, reward: rewards.Reward, placement: sharding.Placement):
    ppo = PPO(run.env, run.ppo.config, reward=learned_reward(reward))
    params = reward.jax_params()
    kl_penalty, num_iterations = run.config.get("kl_penalty", 0.0), run.config["num_iterations"]

    def iteration(state, reward_params):
        if not kl_penalty:
            return ppo.iteration(state, reward_params)
        kl_coef = linear_decay(kl_penalty, state.iteration, num_iterations)
        state, metrics = ppo.iteration(state, reward_params, kl_coef=kl_coef)
        return state, {**metrics, "kl_coef": kl_coef}

    iterate = placement.jit(jax.vmap(iteration, in_axes=(0, None)))
    reference = run.config.get("reference")
    step = with_normalized_score(iterate, reference) if reference else iterate
    return lambda state: step(state, params)


def _training(run: runs.Run, placement: sharding.Placement) -> runs.Training:
    cfg = run.config
    reward = rewards.load(run.run_dir / cfg["reward"])

    def finish():  # the fresh policies on the true task reward: Table 1's number
        write_json_atomic(run.run_dir / EVALUATION_FILE, evaluate_run(run.run_dir))

    return runs.Training(init=lambda: runs.init_policies(run),
                         iterate=_iterate_fn(run, reward, placement),
                         steps_per_iteration=run.ppo.config.batch_size,
                         label=f"{cfg['kind']} {cfg['env']} (reward from {cfg['reward_env']})",
                         summary={"episode_return": "true return",
                                  "normalized_score": "normalized score"},
                         finish=finish)


for _kind in KINDS:
    runs.register(_kind, _training)
