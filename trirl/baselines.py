"""Adversarial baselines on TRIRL's machinery: GAIL, AIRL and AMP (paper App. C.1).

Composed from the parts of :mod:`trirl.adversarial` that TRIRL is made of too; none of
it derives from TRIRL.

``trirl learn --algo gail|airl|amp`` trains them with everything a TRIRL run shares --
the PPO of ``trirl.ppo``, the discriminator network and inputs of
``trirl.discriminator`` (``TRIRLConfig.disc``/``inputs``), the demo-statistics input
normaliser, the environments and the absorbing-state handling of App. C.4 (absorbing
samples in both discriminator sets, r(s_a) learned and bootstrapped as
``gamma / (1 - gamma) r(s_a)``) -- so a comparison isolates the reward update. What
differs, per the paper:

* the policy is rewarded with the *latest* discriminator only: no buffer of
  discriminators, no eta correction, no R_fit (those are TRIRL's contribution);
* PPO runs without the TRPL projection (plain clipped PPO, as in the baselines' papers
  and App. C.5; ``TRIRLConfig.policy_ppo``).

Rewards (z is the discriminator output, D = sigmoid(z) for the logistic losses):

* ``gail`` (Ho & Ermon 2016): logistic loss; policy reward by ``gail_reward``:
  ``log_d`` = log D = -softplus(-z) (the paper's "log sigma(D(s, a))", default),
  ``neg_log_one_minus_d`` = -log(1 - D) = softplus(z), ``logit`` = z.
* ``airl`` (Fu et al. 2018): ``f(s, s') = g(s) + gamma h(s') - h(s)`` with state-only
  ``g`` and ``h`` (each the discriminator's MLP on one state slot ``[s, i]``), and the
  structured discriminator ``D = exp(f) / (exp(f) + pi(a|s))``, i.e. logit
  ``z = f - log pi(a|s)`` with the log-density of the policy that collected the
  rollout (for expert rows: that policy evaluated at the expert's action). Logistic
  loss; policy reward ``log D - log(1 - D) = f - log pi(a|s)`` (Fu et al.'s reward;
  PPO's entropy bonus comes on top, as for every algorithm here). The *exported*
  reward is the unshaped ``g(s)`` alone -- the part AIRL claims transfers (Table 1).
  In the absorbing state no policy acts, so its rows carry ``log pi = 0`` and
  ``r(s_a) = f(s_a, s_a) = g(s_a) + (gamma - 1) h(s_a)``.
* ``amp`` (Peng et al. 2021): least-squares loss, targets +1 expert / -1 agent;
  reward ``max(0, 1 - 0.25 (z - 1)^2)``.

The gradient penalty of ``DiscriminatorConfig`` applies to all three (for AIRL to f,
the learned part of its logit).

Units: the baselines' rewards go to PPO as they are (they are O(1) already), so the
reward PPO optimised -- and the exported one, except AIRL's unshaped g -- is that
value; ``beta = 1 / entropy_coef`` is recorded for the file format only.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from trirl import discriminator as disc
from trirl import envs, normalizer
from trirl.adversarial import (DiscInputs, ExpertData, LearnerState, Trace, disc_metrics,
                               policy_kl, reward_gap, sample_rows, train_discriminator)
from trirl.config import TRIRLConfig
from trirl.policy import log_prob
from trirl.ppo import PPO, PPOState, Rollout, all_finite
from trirl.rewards.reward import output_transform

# GAIL's reward choices as output transforms of the discriminator output z
# (trirl.rewards.reward.output_transform, docs/reward-format.md).
_GAIL_OUTPUTS = {"log_d": "log_sigmoid", "neg_log_one_minus_d": "softplus", "logit": "identity"}


def output_name(config: TRIRLConfig) -> str:
    """The transform turning the discriminator output z into the policy's reward: GAIL's
    ``gail_reward`` choice, AMP's ``max(0, 1 - 0.25 (z - 1)^2)`` (Peng et al. 2021, eq. 7),
    AIRL's z itself (= f - log pi). One definition for training and the exported file,
    so the file's reward is the trained one by construction."""
    if config.algo == "amp":
        return "amp"
    if config.algo == "gail":
        return _GAIL_OUTPUTS[config.gail_reward]
    return "identity"


class AIRLInputs(DiscInputs):
    """AIRL's rows ``[s, i, s', i', log pi(a|s)]``: f reads the (s, s') part, the last
    column holds the log-density of the policy that collected the rollout (0 in s_a,
    where no policy acts). :meth:`rows` gives the (s, s') part; :meth:`with_log_prob`
    appends the column."""

    def __init__(self, env: envs.Env, cfg: disc.DiscriminatorConfig, normalize: bool):
        super().__init__(env, dataclasses.replace(cfg, inputs="ss"), normalize)
        self.state_dim = env.observation_size + int(cfg.use_absorbing)
        self.input_dim = 2 * self.state_dim + 1

    def rows(self, stats, obs, action, next_obs, next_absorbing) -> jax.Array:
        if self.normalize:
            obs, next_obs = normalizer.normalize(stats, obs), normalizer.normalize(stats, next_obs)
        return disc.disc_input(self.cfg, obs, None, next_obs, next_absorbing=next_absorbing)

    def absorbing_row(self) -> jax.Array:
        pair = disc.absorbing_input(self.cfg, self.env.observation_size, self.env.action_size)
        return jnp.concatenate([pair, jnp.zeros((1,), pair.dtype)])

    @staticmethod
    def with_log_prob(x_pair: jax.Array, logp: jax.Array) -> jax.Array:
        return jnp.concatenate([x_pair, logp[..., None].astype(x_pair.dtype)], axis=-1)


class Adversarial:
    """GAIL / AIRL / AMP (``config.algo``): pure functions over ``LearnerState``
    (``buffer``/``fit_opt_state`` empty, ``policies`` None), so runs, checkpoints,
    sessions and exports are the learners' common machinery.

    Args:
      env: the environment.
      config: :class:`~trirl.config.TRIRLConfig` with ``algo`` a baseline.
      num_iterations: unused (the learners' common signature).
    """

    def __init__(self, env: envs.Env, config: TRIRLConfig, num_iterations: int = 1):
        self.env, self.config = env, config
        self.airl = config.algo == "airl"
        self.gamma, self.beta = config.ppo.gamma, config.beta
        self.output = output_name(config)
        self.disc_cfg = config.discriminator
        self.inputs = AIRLInputs(env, self.disc_cfg, config.normalize_disc_inputs) \
            if self.airl else DiscInputs(env, self.disc_cfg, config.normalize_disc_inputs)
        self.input_dim = self.inputs.input_dim
        self.feature_spec = None
        # Plain clipped PPO: the TRPL projection is part of TRIRL (config.policy_ppo).
        self.ppo = PPO(env, config.policy_ppo)

    @property
    def state_dim(self) -> int:
        return self.inputs.state_dim

    def disc_x(self, stats, obs, action, next_obs, next_absorbing) -> jax.Array:
        """The discriminator's rows (AIRL: the (s, s') part; append log pi with
        ``AIRLInputs.with_log_prob``)."""
        return self.inputs.rows(stats, obs, action, next_obs, next_absorbing)

    def absorbing_x(self) -> jax.Array:
        return self.inputs.absorbing_row()

    # -- the discriminator ------------------------------------------------------------

    def init_disc(self, key: jax.Array):
        if not self.airl:
            return disc.init(self.disc_cfg, key, self.input_dim)
        k_g, k_h = jax.random.split(key)
        return {"g": disc.init(self.disc_cfg, k_g, self.state_dim),
                "h": disc.init(self.disc_cfg, k_h, self.state_dim)}

    def airl_g(self, params, x: jax.Array) -> jax.Array:
        """The unshaped reward g(s) of AIRL rows (or of bare ``[s, i]`` state slots)."""
        return disc.logits(self.disc_cfg, params["g"], x[..., :self.state_dim])

    def airl_f(self, params, x: jax.Array) -> jax.Array:
        """f(s, s') = g(s) + gamma h(s') - h(s) of AIRL rows (the log pi column unused)."""
        d = self.state_dim
        h = lambda s: disc.logits(self.disc_cfg, params["h"], s)  # noqa: E731
        return self.airl_g(params, x) + self.gamma * h(x[..., d:2 * d]) - h(x[..., :d])

    def airl_logits(self, params, x: jax.Array) -> jax.Array:
        """AIRL's logit log D - log(1 - D) = f - log pi(a|s)."""
        return self.airl_f(params, x) - x[..., -1]

    def logits(self, params, x: jax.Array) -> jax.Array:
        """The discriminator output z the loss sees, on inputs x (..., input_dim)."""
        if self.airl:
            return self.airl_logits(params, x)
        return disc.logits(self.disc_cfg, params, x)

    # -- rewards ----------------------------------------------------------------------

    def policy_reward(self, params, x: jax.Array) -> jax.Array:
        """The reward PPO optimises, of inputs x (..., input_dim) (AIRL: with log pi)."""
        return output_transform(jnp, self.output, self.logits(params, x))

    def exported_reward(self, params, x: jax.Array) -> jax.Array:
        """The reward a ``.reward`` file holds: the policy reward, except AIRL's
        unshaped g(s) (the log pi and shaping terms depend on the policy and on h)."""
        if self.airl:
            return self.airl_g(params, x)
        return self.policy_reward(params, x)

    def absorbing_reward(self, disc_params) -> jax.Array:
        if not self.disc_cfg.use_absorbing:
            return jnp.zeros((), jnp.float32)
        return self.policy_reward(disc_params, self.absorbing_x()[None])[0]

    # -- state and iteration ----------------------------------------------------------

    def init(self, key: jax.Array, expert: ExpertData) -> LearnerState:
        k_ppo, k_disc, key = jax.random.split(key, 3)
        disc_params = self.init_disc(k_disc)
        return LearnerState(ppo=self.ppo.init(k_ppo), disc_params=disc_params,
                            disc_opt_state=disc.init_opt_state(self.disc_cfg, disc_params),
                            buffer=(), fit_opt_state=(), disc_stats=self.inputs.demo_stats(expert),
                            policies=None, key=key)

    def iteration(self, state: LearnerState, expert: ExpertData
                  ) -> tuple[LearnerState, dict, Trace]:
        """collect; update the discriminator on expert vs. rollout (+ absorbing samples);
        one PPO step on the latest discriminator's reward."""
        key, k_disc, k_gap = jax.random.split(state.key, 3)
        ppo_state, rollout, ep_stats = self.ppo.collect(state.ppo)
        x, x_e = self.transitions(state, ppo_state, rollout, expert)
        disc_params, disc_opt_state, dm = self.update_discriminator(state, x, x_e, rollout,
                                                                    expert, k_disc)
        rewards = self.policy_reward(disc_params, x).reshape(rollout.absorbing.shape)
        r_abs = self.absorbing_reward(disc_params)
        ppo_state, metrics = self.ppo.update_with_rewards(ppo_state, rollout, rewards, r_abs)

        k_e, k_a = jax.random.split(k_gap)
        metrics = {**metrics, **ep_stats, "policy_kl": policy_kl(self.ppo, ppo_state, rollout),
                   **reward_gap(jnp.mean(self.policy_reward(disc_params, sample_rows(k_e, x_e))),
                                jnp.mean(self.policy_reward(disc_params, sample_rows(k_a, x)))),
                   **disc_metrics(dm), "reward_std": jnp.std(rewards), "reward_absorbing": r_abs,
                   "finite": all_finite((ppo_state.actor, ppo_state.critic, disc_params))}
        state = LearnerState(ppo=ppo_state, disc_params=disc_params,
                             disc_opt_state=disc_opt_state, buffer=(), fit_opt_state=(),
                             disc_stats=state.disc_stats, policies=None, key=key)
        return state, metrics, Trace(rollout=rollout, rewards=rewards, absorbing_reward=r_abs)

    def transitions(self, state: LearnerState, collector: PPOState, rollout: Rollout,
                    expert: ExpertData) -> tuple[jax.Array, jax.Array]:
        """Rollout rows (N, D) and expert rows. AIRL: with log pi of the policy that
        collected the rollout, at the agent's (raw) and the expert's actions:
        D = exp(f) / (exp(f) + pi(a|s)) for both sets."""
        stats = state.disc_stats
        x = self.disc_x(stats, rollout.obs, rollout.action, rollout.next_obs, rollout.absorbing)
        x_e = self.disc_x(stats, expert.obs, expert.actions, expert.next_obs, expert.absorbing)
        if self.airl:
            mean, std = self.ppo.policy(collector.actor, collector.obs_stats, expert.obs)
            x = self.inputs.with_log_prob(x, rollout.log_prob)
            x_e = self.inputs.with_log_prob(x_e, log_prob(mean, std, expert.actions))
        return x.reshape(-1, self.input_dim), x_e

    def update_discriminator(self, state: LearnerState, x: jax.Array, x_e: jax.Array,
                             rollout: Rollout, expert: ExpertData, key: jax.Array):
        """The latest discriminator on expert vs. rollout rows (+ absorbing samples);
        AIRL's logit and gradient penalty go through f."""
        extra = {"logit_fn": self.airl_logits, "penalty_fn": self.airl_f} if self.airl else {}
        return train_discriminator(self.disc_cfg, self.inputs, state.disc_params,
                                   state.disc_opt_state, x, x_e, rollout, expert, key, **extra)
