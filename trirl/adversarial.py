"""The parts every learner from demonstrations here is composed of: TRIRL
(:mod:`trirl.algorithm`) and the GAIL / AIRL / AMP baselines (:mod:`trirl.baselines`)
alike, so a comparison between them isolates the reward update.

* :class:`ExpertData`: the demonstrations as device arrays;
* :class:`LearnerState`: the explicit state one iteration maps to the next;
* :class:`DiscInputs`: what the discriminator reads of a transition (the executed
  action, normalised with the demos' statistics, or the env's base features) and the
  absorbing-state convention of App. C.4 (DAC): every transition that entered a
  terminal state adds one absorbing sample ``(s_a, ., s_a)`` to its set, expert or
  agent, so the reward of s_a is learned like any other;
* metrics with one vocabulary (:func:`disc_metrics`, :func:`policy_kl`,
  :func:`reward_gap`).
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from trirl import demos as demos_lib
from trirl import discriminator as disc
from trirl import normalizer, trpl
from trirl.envs import Env
from trirl.ppo import PPO, PPOState, Rollout
from trirl.rewards import features as features_lib

Params = Any
GAP_SAMPLES = 256  # expert rows per iteration for the reward-gap metric


@struct.dataclass
class ExpertData:
    """Demonstrations as device arrays (``actions`` zeros for observation-only demos)."""

    obs: jax.Array
    actions: jax.Array
    next_obs: jax.Array
    absorbing: jax.Array
    time: jax.Array  # int32: steps the episode had taken before each transition


def expert_data(demos: demos_lib.Demos, action_size: int) -> ExpertData:
    actions = demos.actions if demos.has_actions else np.zeros(
        (demos.num_transitions, action_size), np.float32)
    time = np.arange(demos.num_transitions) - np.repeat(demos.episode_starts,
                                                        demos.episode_lengths)
    return ExpertData(obs=jnp.asarray(demos.obs), actions=jnp.asarray(actions),
                      next_obs=jnp.asarray(demos.next_obs), absorbing=jnp.asarray(demos.absorbing),
                      time=jnp.asarray(time, jnp.int32))


@struct.dataclass
class LearnerState:
    """Everything a learner's run needs to continue exactly. ``ppo`` first: its leaves
    lead, so any run's policy loads without the rest (``trirl.runs.load_policy``).
    The baselines leave ``buffer`` and ``fit_opt_state`` empty and ``policies`` None."""

    ppo: PPOState
    disc_params: Params
    disc_opt_state: optax.OptState
    buffer: Any  # TRIRL: reward_buffer.RewardBuffer | feature_reward.LinearReward
    fit_opt_state: optax.OptState  # () unless the fitted model
    disc_stats: normalizer.RunningStats  # of observations, or of base features
    policies: Optional[Params]  # retrospective eta: per slot ((actor, obs_stats) before, after)
    key: jax.Array


@struct.dataclass
class Trace:
    """What an iteration trained on: its rollout and the rewards the policy update used
    (PPO units). Already computed, so returning it is free."""

    rollout: Rollout
    rewards: jax.Array
    absorbing_reward: jax.Array


class DiscInputs:
    """The discriminator's rows of one env: from transitions, for the absorbing state,
    and the sampling pools of both.

    Args:
      env: the environment.
      cfg: the discriminator the run trains (its ``inputs`` and ``use_absorbing``).
      normalize: standardise states (or base features) with the demos' statistics, fixed
        for the run so old buffer members stay valid.
      feature_spec: the base features the reward reads (the features model), or None
        for transition inputs.
    """

    def __init__(self, env: Env, cfg: disc.DiscriminatorConfig, normalize: bool,
                 feature_spec: Optional[list[dict]] = None):
        self.env, self.cfg, self.normalize, self.feature_spec = env, cfg, normalize, feature_spec
        if feature_spec is not None:
            self.input_dim = len(feature_spec) + int(cfg.use_absorbing)
        else:
            self.input_dim = disc.input_dim(cfg, env.observation_size, env.action_size)

    def executed(self, action: jax.Array) -> jax.Array:
        """The action the env executes: clipped to its bounds. The reward judges that,
        not the policy's raw sample; otherwise a policy optimising a frozen reward can
        chase the discriminators' extrapolation to out-of-range actions that have no
        effect on the env (demo actions are in range)."""
        return jnp.clip(action, self.env.action_low, self.env.action_high)

    def features(self, obs, action, next_obs) -> jax.Array:
        """The base features the run's reward reads, ``(..., len(feature_spec))``."""
        return features_lib.evaluate(jnp, self.feature_spec, obs, action, next_obs)

    def demo_stats(self, expert: ExpertData) -> normalizer.RunningStats:
        """The fixed normaliser of the inputs: the demos' observations (or features)."""
        if self.feature_spec is not None:
            f = self.features(expert.obs, self.executed(expert.actions), expert.next_obs)
            return normalizer.update(normalizer.init(f.shape[-1]), f)
        return normalizer.update(normalizer.init(self.env.observation_size), expert.obs)

    def rows(self, stats: normalizer.RunningStats, obs, action, next_obs,
             next_absorbing) -> jax.Array:
        """Discriminator inputs of transitions (raw observations) -> ``(..., input_dim)``."""
        action = self.executed(action)
        if self.feature_spec is not None:
            return self._feature_rows(stats, obs, action, next_obs)
        if self.normalize:
            obs, next_obs = normalizer.normalize(stats, obs), normalizer.normalize(stats, next_obs)
        return disc.disc_input(self.cfg, obs, action, next_obs, next_absorbing=next_absorbing)

    def _feature_rows(self, stats, obs, action, next_obs) -> jax.Array:
        """``[normalised base features, 0]``: the indicator is 1 only in the absorbing
        state, whose features are zeroed (:meth:`absorbing_row`)."""
        f = self.features(obs, action, next_obs)
        if self.normalize:
            f = normalizer.normalize(stats, f)
        if not self.cfg.use_absorbing:
            return f
        return jnp.concatenate([f, jnp.zeros(f.shape[:-1] + (1,), f.dtype)], axis=-1)

    def absorbing_row(self) -> jax.Array:
        """The input of the absorbing transition ``(s_a, ., s_a)``, ``(input_dim,)``."""
        if self.feature_spec is not None:
            return jnp.zeros((self.input_dim,), jnp.float32).at[-1].set(1.0)
        return disc.absorbing_input(self.cfg, self.env.observation_size, self.env.action_size)

    def pool(self, x: jax.Array, absorbing: jax.Array, time: jax.Array
             ) -> tuple[jax.Array, jax.Array]:
        """A sampling pool: rows ``x`` (N, D), then the absorbing samples of the terminal
        transitions (``absorbing``, at ``time`` steps into their episodes): one each, or
        with ``absorbing_mass="horizon"`` the steps left to the time limit. Returns
        ``(pool (2N, D), count)``: draws below ``count`` (the number of terminal
        transitions changes between rollouts, array shapes cannot; past the last row
        they take the last, an absorbing row: ``discriminator.train``)."""
        if not self.cfg.use_absorbing:
            return x, jnp.asarray(x.shape[0], jnp.int32)
        pool = jnp.concatenate([x, jnp.broadcast_to(self.absorbing_row(), x.shape)])
        mass = jnp.ones_like(time) if self.cfg.absorbing_mass == "one" else \
            jnp.maximum(self.env.episode_length - time - 1, 1)
        return pool, x.shape[0] + jnp.sum(jnp.where(absorbing, mass, 0).astype(jnp.int32))


def train_discriminator(cfg: disc.DiscriminatorConfig, inputs: DiscInputs, params: Params,
                        opt_state: optax.OptState, x: jax.Array, x_e: jax.Array,
                        rollout: Rollout, expert: ExpertData, key: jax.Array, **extra):
    """The discriminator's update on expert vs. rollout rows, each pool with its
    absorbing samples (``discriminator.train``; ``extra``: its logit/penalty functions)."""
    (pool_e, n_e), (pool_a, n_a) = inputs.pool(x_e, expert.absorbing, expert.time), inputs.pool(
        x, rollout.absorbing, rollout.time)
    return disc.train(cfg, params, opt_state, pool_e, pool_a, key, n_e, n_a, **extra)


# ----------------------------------------------------------------------------- metrics


def disc_metrics(dm: dict) -> dict:
    """``discriminator.train``'s metrics under the names every learner logs."""
    return {"disc_loss": dm["loss"], "disc_data_loss": dm["data"], "disc_gp": dm["gp"],
            "disc_expert_acc": dm["expert_acc"], "disc_agent_acc": dm["agent_acc"],
            "disc_accuracy": 0.5 * (dm["expert_acc"] + dm["agent_acc"])}


def policy_kl(ppo: PPO, ppo_state: PPOState, rollout: Rollout) -> jax.Array:
    """Mean over the rollout states of KL(pi^(i+1) || pi^(i)): the policy the next
    rollout uses against the one that collected this one."""
    mean, std = ppo.policy(ppo_state.actor, ppo_state.obs_stats, rollout.obs)
    old_std = rollout.std.reshape(-1, rollout.std.shape[-1])[0]
    return jnp.mean(trpl.gaussian_kl(mean, std, rollout.mean, old_std))


def sample_rows(key: jax.Array, x: jax.Array, n: int = GAP_SAMPLES) -> jax.Array:
    return x[jax.random.randint(key, (n,), 0, x.shape[0])]


def reward_gap(r_expert: jax.Array, r_agent: jax.Array) -> dict:
    """Mean reward on expert and on agent transitions (PPO units) and their difference:
    a Monte-Carlo estimate of the reward part of the IRL dual, E_E[r] - E_pi[r]."""
    return {"reward_expert": r_expert, "reward_agent": r_agent, "reward_gap": r_expert - r_agent}
