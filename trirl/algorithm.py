"""TRIRL: Trust Region Inverse RL for continuous control (paper Algorithm 2).

One iteration is one pure function of an explicit :class:`~trirl.adversarial.LearnerState`
(PPO state, discriminator parameters and optimiser state, the reward of
:mod:`trirl.reward_model`, the fixed expert-data normaliser of the discriminator
inputs, the past policies for retrospective etas, and a PRNG key); several seeds train
together by ``vmap``-ing it. It reads as four steps (:meth:`TRIRL.iteration`):

1. **collect** a rollout of the current policy pi^(i);
2. **update the discriminator** D^(i) (warm-started from D^(i-1)) to separate expert
   transitions from the rollout, so that its logits estimate log rho_E / rho_pi;
3. **policy step**: PPO (with the TRPL projection layer) on the intermediate reward of
   Alg. 2 line 24, ``(1 - eps) * corrected + eps * beta * D^(i)``, and the multiplier
   eta^(i+1) of that update (:mod:`trirl.eta`);
4. **correct the reward** with step ``eps / (1 + eta)``: D^(i) joins the reward
   (the fitted model's buffer, folding its oldest member into R_fit when full; the
   features model's linear weights).

Reward units. The paper's objective is ``E[r] + H(pi)`` with ``r`` in units of
``beta = 1 / entropy_coef``; PPO maximises ``E[r'] + entropy_coef * H``. The two have the
same maximiser for ``r' = r / beta``, so the policy is trained on the intermediate
reward divided by beta (the authors' code does the same "to reduce critic loss"). The
metrics' ``reward_*`` are in these PPO units.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import jax
import jax.numpy as jnp

from trirl import discriminator as disc
from trirl import envs
from trirl import eta as eta_lib
from trirl.adversarial import (DiscInputs, ExpertData, LearnerState, Trace, disc_metrics,
                               policy_kl, reward_gap, sample_rows, train_discriminator)
from trirl.config import TRIRLConfig
from trirl.errors import TrirlError
from trirl.ppo import PPO, PPOState, Rollout, all_finite
from trirl.reward_model import FeaturesModel, FittedModel

Params = Any


def feature_spec(env: envs.Env, config: TRIRLConfig) -> list[dict]:
    """The base-feature spec a features-model run reads: the env's, or the subset
    ``config.feature_names`` names (in the env's order); one-line error for a name the
    env does not declare."""
    spec = env.feature_spec
    if not config.feature_names:
        return spec
    unknown = [n for n in config.feature_names if n not in env.feature_names]
    if unknown:
        raise TrirlError(f"TRIRL feature_names: {env.name!r} has no base feature "
                         f"{unknown[0]!r}; it has {', '.join(env.feature_names)}")
    return [term for term in spec if term["name"] in config.feature_names]


@dataclasses.dataclass(frozen=True)
class _Update:
    """What the policy step hands to the reward correction."""

    ppo: PPOState
    metrics: dict
    eta: jax.Array  # the update's multiplier


class TRIRL:
    """TRIRL for one environment and config: pure functions over ``LearnerState``.

    Args:
      env: the environment.
      config: :class:`~trirl.config.TRIRLConfig`.
      num_iterations: length of the run (only the ``tr_loss`` eta schedule uses it).
    """

    def __init__(self, env: envs.Env, config: TRIRLConfig, num_iterations: int = 1):
        self.env, self.config = env, config
        self.num_iterations = max(int(num_iterations), 1)
        self.beta = config.beta
        self.disc_cfg = config.discriminator
        # feature_spec fails here, before any compile, for an env without features.
        self.feature_spec = feature_spec(env, config) if config.features else None
        self.inputs = DiscInputs(env, self.disc_cfg, config.normalize_disc_inputs,
                                 self.feature_spec)
        self.input_dim = self.inputs.input_dim
        self.ppo = PPO(env, config.policy_ppo)
        self.model = FeaturesModel(config, self.inputs) if config.features else \
            FittedModel(config, self.inputs, self.ppo.config.batch_size, env.episode_length)

    # -- what other modules read of a learner (export, tests) -------------------------

    def disc_x(self, stats, obs, action, next_obs, next_absorbing) -> jax.Array:
        return self.inputs.rows(stats, obs, action, next_obs, next_absorbing)

    def absorbing_x(self) -> jax.Array:
        return self.inputs.absorbing_row()

    def corrected_reward(self, reward, disc_params: Params, x: jax.Array) -> jax.Array:
        """The corrected reward (Alg. 2 lines 19-23; learner units) of inputs x (N, D)."""
        return self.model.corrected(reward, disc_params, x)

    def retrospective_etas(self, policies: Params, obs: jax.Array) -> jax.Array:
        return eta_lib.retrospective(self.ppo, self.config, policies, obs)

    # -- state ------------------------------------------------------------------------

    def init(self, key: jax.Array, expert: ExpertData) -> LearnerState:
        k_ppo, k_disc, k_buf, key = jax.random.split(key, 4)
        ppo_state = self.ppo.init(k_ppo)
        disc_params = disc.init(self.disc_cfg, k_disc, self.input_dim)
        reward, fit_opt_state = self.model.init(k_buf, disc_params)
        policies = eta_lib.empty_policy_pairs(ppo_state, self.config.capacity) \
            if self.config.retrospective else None
        return LearnerState(ppo=ppo_state, disc_params=disc_params,
                            disc_opt_state=disc.init_opt_state(self.disc_cfg, disc_params),
                            buffer=reward, fit_opt_state=fit_opt_state,
                            disc_stats=self.inputs.demo_stats(expert), policies=policies,
                            key=key)

    # -- the four steps ---------------------------------------------------------------

    def iteration(self, state: LearnerState, expert: ExpertData
                  ) -> tuple[LearnerState, dict, Trace]:
        """One pass of Algorithm 2; returns the new state, per-iteration metrics (the
        true episode return of the agent included, evaluation only) and the
        :class:`~trirl.adversarial.Trace` of what the policy was trained on."""
        key, k_disc, k_fit, k_gap = jax.random.split(state.key, 4)
        ppo_state, rollout, ep_stats = self.ppo.collect(state.ppo)
        x = self.disc_x(state.disc_stats, rollout.obs, rollout.action, rollout.next_obs,
                        rollout.absorbing).reshape(-1, self.input_dim)
        x_e = self.disc_x(state.disc_stats, expert.obs, expert.actions, expert.next_obs,
                          expert.absorbing)
        disc_params, disc_opt_state, dm = self.update_discriminator(state, x, x_e, rollout,
                                                                    expert, k_disc)
        etas = self.retrospective_etas(state.policies, rollout.obs) \
            if self.config.retrospective else None
        rewards, r_abs, cache = self.model.policy_rewards(state.buffer, disc_params, x, etas)
        rewards = (rewards / self.beta).reshape(rollout.absorbing.shape)
        update = self.policy_step(state.ppo, ppo_state, rollout, rewards, r_abs / self.beta)
        eta_reward = jnp.maximum(update.eta, self.config.reward_eta_floor)
        reward, fit_opt_state, fit_mse, r_agent = self.model.correct(
            state.buffer, state.fit_opt_state, disc_params, eta_reward, x, etas, cache, k_fit)

        metrics = {**update.metrics,
                   **self.progress(update.ppo, rollout, reward, disc_params, r_agent, x_e, k_gap),
                   **ep_stats, **disc_metrics(dm),
                   "eta": update.eta, "eps_tr": self.config.eps / (1.0 + eta_reward),
                   "reward_std": jnp.std(rewards), "reward_absorbing": r_abs / self.beta,
                   "fit_mse": fit_mse, "buffer_size": self.model.size(reward),
                   "finite": all_finite((update.ppo.actor, update.ppo.critic, disc_params,
                                         self.model.learned(reward)))}
        state = LearnerState(ppo=update.ppo, disc_params=disc_params,
                             disc_opt_state=disc_opt_state, buffer=reward,
                             fit_opt_state=fit_opt_state, disc_stats=state.disc_stats,
                             policies=self.remember_update(state, update.ppo), key=key)
        return state, metrics, Trace(rollout=rollout, rewards=rewards,
                                     absorbing_reward=r_abs / self.beta)

    def progress(self, updated: PPOState, rollout: Rollout, reward, disc_params: Params,
                 r_agent: jax.Array, x_e: jax.Array, key: jax.Array) -> dict:
        """How far the iteration moved: KL(pi^(i+1) || pi^(i)) on the rollout, and the
        corrected reward (after this iteration's correction; PPO units) on expert and on
        agent rows and their gap, E_E[r] - E_pi[r]: a Monte-Carlo estimate of the reward
        part of the IRL dual. ``r_agent`` is the corrected reward on every rollout row
        (the model reuses what it evaluated); on the expert side ``GAP_SAMPLES`` random
        rows keep the k members' evaluation cheap."""
        r_expert = self.corrected_reward(reward, disc_params,
                                         sample_rows(jax.random.split(key)[0], x_e))
        return {"policy_kl": policy_kl(self.ppo, updated, rollout),
                **reward_gap(jnp.mean(r_expert) / self.beta, jnp.mean(r_agent) / self.beta)}

    def update_discriminator(self, state: LearnerState, x: jax.Array, x_e: jax.Array,
                             rollout: Rollout, expert: ExpertData, key: jax.Array):
        """D^(i) on expert vs. rollout rows, each pool with its absorbing samples."""
        return train_discriminator(self.disc_cfg, self.inputs, state.disc_params,
                                   state.disc_opt_state, x, x_e, rollout, expert, key)

    def policy_step(self, before: PPOState, collected: PPOState, rollout: Rollout,
                    rewards: jax.Array, r_abs: jax.Array) -> _Update:
        """PPO on the intermediate reward (PPO units), and the update's eta."""
        if self.config.variant == "tr_loss":
            kl_coef = eta_lib.tr_loss(self.config, before.iteration, self.num_iterations)
            updated, metrics = self.ppo.update_with_rewards(collected, rollout, rewards, r_abs,
                                                            kl_coef=kl_coef)
            nan = jnp.float32(jnp.nan)  # no projection: no multipliers to report
            return _Update(updated, {**metrics, "update_eta_mean_max": nan,
                                     "update_eta_cov": nan}, kl_coef)
        updated, metrics = self.ppo.update_with_rewards(collected, rollout, rewards, r_abs)
        eta, eta_metrics = eta_lib.max_eta(self.ppo, updated, rollout)
        return _Update(updated, {**metrics, **eta_metrics}, eta)

    def remember_update(self, state: LearnerState, updated: PPOState) -> Optional[Params]:
        """Retrospective etas: store the update's policy pair in the slot D^(i) took."""
        if not (self.config.retrospective and self.config.capacity > 0):
            return state.policies
        return eta_lib.store_policy_pair(state.policies, state.buffer.head, state.ppo, updated)
