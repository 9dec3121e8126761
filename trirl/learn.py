"""TRIRL on MJX: Trust Region Inverse RL for continuous control (paper Algorithm 2).

One iteration is one jitted, pure function of an explicit :class:`TRIRLState` pytree
(PPO state, discriminator parameters and optimiser state, the reward buffer of
``trirl.reward_buffer`` with its R_fit optimiser state, the fixed expert-data
normaliser of the discriminator inputs, the past policies for retrospective etas, and
a PRNG key); several seeds train together by ``vmap``-ing it, as experts do:

1. ``collect`` a rollout of the current policy pi^(i) (``PPO.collect``);
2. train the discriminator D^(i) (warm-started from D^(i-1)) to separate expert
   transitions from the rollout, so that its logits estimate log rho_E / rho_pi
   (``trirl.discriminator``; expert minibatches are drawn from the demo arrays with
   ``jax.random`` inside the jit). Absorbing states follow the discriminator's
   convention (paper App. C.4, DAC): every transition that entered a terminal state
   adds one absorbing sample ``(s_a, ., s_a)`` to its set, expert or agent;
3. policy update (PPO, with the TRPL projection layer) on the intermediate reward of
   Alg. 2 line 24, ``(1 - eps) * corrected + eps * beta * D^(i)``, plugged into PPO as a
   :class:`trirl.ppo.LearnedReward` whose parameters are the buffer and D^(i);
4. the multiplier eta^(i+1) of that update (see *Variants*);
5. ``push_and_fit``: D^(i) joins the buffer with its eta (the oldest member, when the
   buffer is full, is folded into R_fit) -- the order documented in
   ``trirl.reward_buffer``.

Reward units. The paper's objective is ``E[r] + H(pi)`` with ``r`` in units of
``beta = 1 / entropy_coef``; PPO maximises ``E[r'] + entropy_coef * H``. The two have the
same maximiser for ``r' = r / beta``, so the policy is trained on the intermediate
reward divided by beta (the authors' code does the same "to reduce critic loss"). The
metrics' ``reward_*`` are in these PPO units.

Variants (``TRIRLConfig.variant``; paper Sec. 4.3 and the ablations of Sec. 5)
---------------------------------------------------------------------------
* ``max_eta`` (default): TRPL policy update; after it, the updated (raw) policy is
  projected onto the trust region around the behaviour policy on every rollout state,
  and ``eta = max over states of max(eta_mean(s), eta_cov)`` (paper Sec. 4.3).
* ``retrospective_eta``: as ``max_eta``, but every iteration the step sizes of all
  buffer members are recomputed per state on the current rollout, from the stored
  policy pair (before, after) of the update each member was made with:
  ``eta_j(s) = max(eta_mean_j(s), eta_cov_j)`` (Alg. 2 lines 11-12). The absorbing
  state, where no policy acts, keeps each member's stored max-eta.
* ``no_fit``: ``retrospective_eta`` without reward fitting -- members leaving the
  buffer are dropped instead of folded into R_fit (paper ablation iv).
* ``tr_loss``: no projection; PPO's loss gets ``eta * KL(pi || pi_behaviour)`` with
  ``eta = eta_init`` decayed linearly to 0 over the run (``eta_schedule="linear"``, as
  in the authors' code) or held (``"constant"``); that eta is the correction.

Reward models: ``"fitted"`` (the R_fit tail of the buffer) and ``"features"`` (the
feature-based reward of ``trirl.feature_reward``).

Baselines (``TRIRLConfig.algo``; paper App. C.1): ``gail``, ``airl`` and ``amp`` run on
the same machinery -- the same PPO (without the TRPL projection, which is part of
TRIRL), discriminator network and inputs, environments and absorbing-state handling
(App. C.4) -- but reward the policy with the latest discriminator only: no buffer, no
correction, no R_fit. See ``trirl.baselines``.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
from pathlib import Path
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

import trirl
from trirl import demos as demos_lib
from trirl import discriminator as disc
from trirl import envs, normalizer, sharding, trpl
from trirl import feature_reward as fr
from trirl import reward_buffer as rb
from trirl.errors import TrirlError
from trirl.ppo import (PPO, LearnedReward, PPOConfig, PPOState, Rollout, TrustRegionConfig,
                       all_finite, linear_decay)
from trirl.rewards import features as features_lib

Params = Any

ALGOS = ("trirl", "gail", "airl", "amp")
VARIANTS = ("max_eta", "tr_loss", "retrospective_eta", "no_fit")
# GAIL's policy reward from the discriminator logit z, D = sigmoid(z) (App. C.1):
# log D (the paper's), -log(1 - D), or log D - log(1 - D) = z.
GAIL_REWARDS = ("log_d", "neg_log_one_minus_d", "logit")
INPUTS = ("sa", "ss", "sas")
REWARD_MODELS = ("fitted", "features")
ETA_SCHEDULES = ("linear", "constant")
DEMOS_FILE = "demos.npz"  # the run's own copy of its demonstrations
GAP_SAMPLES = 256  # expert rows per iteration for the reward-gap metric


def _default_ppo() -> PPOConfig:
    # Paper App. C.5: rollout horizon 10, minibatch 512, policy LR 4e-5..1e-4, entropy
    # coefficient 8e-5..5e-3 (= 1/beta); TRPL bounds in Table 7's ranges.
    return PPOConfig(num_envs=256, rollout_length=10, num_epochs=20, minibatch_size=512,
                     learning_rate=1e-4, entropy_coef=1e-3, trust_region=TrustRegionConfig())


def _default_disc() -> disc.DiscriminatorConfig:
    # Paper: disc LR 8e-5..3e-4, 20-30 gradient steps per iteration, grad penalty 0.005.
    return disc.DiscriminatorConfig(learning_rate=2e-4, num_steps=25)


@dataclasses.dataclass(frozen=True)
class TRIRLConfig:
    """TRIRL settings (paper Table 7 and App. C.5 ranges in brackets).

    Attributes:
      algo: one of :data:`ALGOS`: "trirl" or a baseline on the same machinery ("gail",
        "airl", "amp"; module docstring and ``trirl.baselines``). Settings that only
        TRIRL has (variant, reward_model, eps, capacity, eta_*, fit, the TRPL bounds)
        do not apply to the baselines.
      gail_reward: GAIL's policy reward from the logit z, one of :data:`GAIL_REWARDS`:
        "log_d" = log sigmoid(z) (paper App. C.1, default), "neg_log_one_minus_d" =
        -log(1 - sigmoid(z)) = softplus(z), "logit" = z.
      variant: one of :data:`VARIANTS` (see the module docstring).
      inputs: discriminator inputs: "sa" = D(s, a) (needs demo actions), "ss" = D(s, s')
        for observation-only demos (paper Sec. 4.4), "sas" = D(s, a, s'). The
        discriminator config's ``inputs`` always follows this field.
      reward_model: "fitted" -- discriminators on the transition (``inputs``), the
        buffer of k of them and R_fit (paper Sec. 4.2); "features" -- discriminators on
        the env's named base features with a reward linear in their encoding, corrected
        exactly in the linear weights (``trirl.feature_reward``; paper Sec. 5.1). The
        features model has no buffer, so ``capacity`` and ``fit`` do not apply.
      feature_names: features model only: which of the env's base features the reward
        reads, by name (``trirl envs`` lists them); empty, the default: all of them.
        E.g. a state-only reward that does not judge the action's size.
      eps: reward step size epsilon [0.45, 0.75].
      capacity: discriminator buffer capacity k [80, 120].
      eta_init: penalty weight of the ``tr_loss`` variant [60, 100].
      eta_schedule: ``tr_loss`` only: "linear" (eta_init -> 0 over the run) or "constant".
      reward_eta_floor: not in the paper (0, the default, is the paper): the reward
        recursion uses ``max(eta, floor)`` whichever way the variant obtains eta (TRPL's
        multipliers, the TR-loss schedule, the retrospective per-state etas), i.e. steps
        of at most ``eps / (1 + floor)``, while the policy keeps its own step. A long
        reward memory: with the max-eta multipliers alone (0.1-6) the reward averages
        only the last few discriminators (docs/benchmarks.md, Point Maze feature
        rewards); the linear TR-loss schedule falls to 0 at the end of the run.
      normalize_disc_inputs: standardise the discriminator's states with the demo
        observations' mean/std (fixed for the run, so old buffer members stay valid).
      ppo: policy optimisation; ``entropy_coef`` is 1/beta [8e-5, 5e-3];
        ``trust_region`` holds the TRPL bounds (mean [2e-4, 5e-3], cov [1e-4, 4e-3],
        regression loss coefficient [0.4, 0.6]).
      disc: the discriminator (LR [8e-5, 3e-4], 20-30 steps, gradient penalty 0.005).
      fit: the R_fit regression.
    """

    algo: str = "trirl"
    gail_reward: str = "log_d"
    variant: str = "max_eta"
    inputs: str = "sa"
    reward_model: str = "fitted"
    feature_names: tuple[str, ...] = ()
    eps: float = 0.6
    capacity: int = 100
    eta_init: float = 80.0
    eta_schedule: str = "linear"
    reward_eta_floor: float = 0.0
    normalize_disc_inputs: bool = True
    ppo: PPOConfig = dataclasses.field(default_factory=_default_ppo)
    disc: disc.DiscriminatorConfig = dataclasses.field(default_factory=_default_disc)
    fit: rb.RewardFitConfig = dataclasses.field(default_factory=rb.RewardFitConfig)

    def __post_init__(self):
        def choose(name, value, options):
            if value not in options:
                raise TrirlError(f"TRIRL {name} {value!r} is not one of {', '.join(options)}")

        choose("algo", self.algo, ALGOS)
        choose("gail_reward", self.gail_reward, GAIL_REWARDS)
        choose("variant", self.variant, VARIANTS)
        choose("inputs", self.inputs, INPUTS)
        choose("eta_schedule", self.eta_schedule, ETA_SCHEDULES)
        choose("reward_model", self.reward_model, REWARD_MODELS)
        if self.feature_names and self.reward_model != "features":
            raise TrirlError("TRIRL feature_names selects the base features of --reward-model "
                             "features; drop it or add --reward-model features")
        if self.reward_model == "features" and self.variant not in ("max_eta", "tr_loss"):
            raise TrirlError(f"TRIRL variant {self.variant!r} keeps per-member step sizes, which "
                             "the features reward model does not have; use variant max_eta or "
                             "tr_loss with --reward-model features")
        if not 0.0 < self.eps <= 1.0:
            raise TrirlError(f"TRIRL eps={self.eps} must be in (0, 1] (paper: 0.45 - 0.75)")
        if self.capacity < 0:
            raise TrirlError(f"TRIRL capacity={self.capacity} must be >= 0 (paper: 80 - 120)")
        if self.eta_init < 0:
            raise TrirlError(f"TRIRL eta_init={self.eta_init} must be >= 0 (paper: 60 - 100)")
        if self.reward_eta_floor < 0:
            raise TrirlError(f"TRIRL reward_eta_floor={self.reward_eta_floor} must be >= 0 "
                             "(0: the paper's steps)")
        if not self.ppo.entropy_coef > 0:
            raise TrirlError(f"TRIRL needs ppo.entropy_coef > 0 (it is 1/beta; paper: 8e-5 - "
                             f"5e-3), got {self.ppo.entropy_coef}")
        if self.algo != "trirl":
            # Fail loudly rather than silently ignore a TRIRL-only choice on a baseline.
            if self.variant != "max_eta" or self.reward_model != "fitted":
                raise TrirlError(f"TRIRL algo {self.algo!r} has no variant or reward model "
                                 "(they are TRIRL's reward correction); drop --variant / "
                                 "--reward-model or use --algo trirl")
            if self.algo == "airl" and self.inputs != "sa":
                raise TrirlError(f"TRIRL algo 'airl' learns g(s) and h(s) from (s, a, s') "
                                 f"transitions with actions, so inputs={self.inputs!r} does not "
                                 "apply; drop --inputs (AIRL needs demos with actions)")
        elif self.variant != "tr_loss" and self.ppo.trust_region is None:
            raise TrirlError(f"TRIRL variant {self.variant!r} needs ppo.trust_region (the TRPL "
                             "bounds); use variant tr_loss for an update without projection")
        if self.disc.inputs != self.inputs:
            object.__setattr__(self, "disc", dataclasses.replace(self.disc, inputs=self.inputs))
        # The loss follows the algorithm (like inputs): TRIRL's reward update needs logits
        # that estimate log rho_E / rho_pi, which only the logistic loss gives.
        loss = "least_squares" if self.algo == "amp" else "logistic"
        if self.disc.loss != loss:
            object.__setattr__(self, "disc", dataclasses.replace(self.disc, loss=loss))

    @property
    def beta(self) -> float:
        """Inverse temperature of the IRL objective, ``1 / ppo.entropy_coef``."""
        return 1.0 / self.ppo.entropy_coef

    @property
    def features(self) -> bool:
        return self.reward_model == "features"

    @property
    def retrospective(self) -> bool:
        return self.variant in ("retrospective_eta", "no_fit")

    @property
    def baseline(self) -> bool:
        return self.algo != "trirl"

    @property
    def policy_ppo(self) -> PPOConfig:
        """The PPO config the policy trains with: without projection for ``tr_loss`` and
        for the baselines (their papers and App. C.5: plain clipped PPO; the projection
        is part of TRIRL)."""
        if self.variant == "tr_loss" or self.baseline:
            return dataclasses.replace(self.ppo, trust_region=None)
        return self.ppo

    @property
    def buffer(self) -> rb.RewardBufferConfig:
        return rb.RewardBufferConfig(capacity=self.capacity, use_fit=self.variant != "no_fit",
                                     use_eta=True, disc=self.disc, fit=self.fit)


# ----------------------------------------------------------------------------- state


@struct.dataclass
class ExpertData:
    """Demonstrations as device arrays (``actions`` zeros for observation-only demos)."""

    obs: jax.Array
    actions: jax.Array
    next_obs: jax.Array
    absorbing: jax.Array


def expert_data(demos: demos_lib.Demos, action_size: int) -> ExpertData:
    actions = demos.actions if demos.has_actions else np.zeros(
        (demos.num_transitions, action_size), np.float32)
    return ExpertData(obs=jnp.asarray(demos.obs), actions=jnp.asarray(actions),
                      next_obs=jnp.asarray(demos.next_obs), absorbing=jnp.asarray(demos.absorbing))


@struct.dataclass
class TRIRLState:
    """Everything a TRIRL run needs to continue exactly (``ppo`` first: its leaves lead)."""

    ppo: PPOState
    disc_params: Params
    disc_opt_state: optax.OptState
    buffer: rb.RewardBuffer | fr.LinearReward  # by reward model: fitted | features
    fit_opt_state: optax.OptState  # () for the features model
    disc_stats: normalizer.RunningStats  # of observations, or of base features
    policies: Optional[Params]  # retrospective eta: per slot ((actor, obs_stats) before, after)
    key: jax.Array


@struct.dataclass
class RewardParams:
    """Parameters of the learned reward one policy update optimises."""

    buffer: rb.RewardBuffer | fr.LinearReward
    disc_params: Params  # the newest discriminator D^(i), not yet in the buffer
    disc_stats: normalizer.RunningStats
    etas: Optional[jax.Array]  # retrospective: per slot and rollout state, (k, T, num_envs)


@struct.dataclass
class Trace:
    """What an iteration trained on: its rollout and the rewards the policy update used
    (PPO units, see the module docstring). Already computed, so returning it is free."""

    rollout: Rollout
    rewards: jax.Array
    absorbing_reward: jax.Array


# ----------------------------------------------------------------------------- learner


class TRIRL:
    """TRIRL for one environment and config: pure functions over :class:`TRIRLState`.

    Args:
      env: the environment.
      config: :class:`TRIRLConfig`.
      num_iterations: length of the run (only the ``tr_loss`` eta schedule uses it).
    """

    def __init__(self, env: envs.Env, config: TRIRLConfig, num_iterations: int = 1):
        self.env = env
        self.config = config
        self.num_iterations = max(int(num_iterations), 1)
        self.buffer_cfg = config.buffer
        self.disc_cfg = self.buffer_cfg.disc
        self.beta = config.beta
        self.features = config.features
        if self.features:
            # feature_spec fails here, before any compile, for an env without features.
            self.feature_spec = feature_spec(env, config)
            self.feature_size = len(self.feature_spec)
            self.input_dim = self.feature_size + int(self.disc_cfg.use_absorbing)
        else:
            self.input_dim = disc.input_dim(self.disc_cfg, env.observation_size,
                                            env.action_size)
        self.reward = LearnedReward(self.reward_fn, self.absorbing_reward)
        self.ppo = PPO(env, config.policy_ppo, reward=self.reward)
        # Absorbing-state rows added to R_fit's regression set: about one per episode.
        batch = self.ppo.config.batch_size
        self.num_fit_absorbing = max(1, batch // env.episode_length) \
            if self.disc_cfg.use_absorbing else 0

    # -- discriminator inputs ---------------------------------------------------------

    def disc_x(self, stats: normalizer.RunningStats, obs, action, next_obs,
               next_absorbing) -> jax.Array:
        """Discriminator inputs of transitions (raw observations) -> ``(..., input_dim)``.

        Actions are clipped to the env's bounds first: the reward judges the action the
        env executed, not the policy's raw sample. Otherwise a policy optimising a frozen
        reward can chase the discriminators' extrapolation to out-of-range actions that
        have no effect on the env (demo actions are in range)."""
        action = self._executed(action)
        if self.features:
            return self._feature_x(stats, obs, action, next_obs)
        if self.config.normalize_disc_inputs:
            obs, next_obs = normalizer.normalize(stats, obs), normalizer.normalize(stats, next_obs)
        return disc.disc_input(self.disc_cfg, obs, action, next_obs,
                               next_absorbing=next_absorbing)

    def _executed(self, action: jax.Array) -> jax.Array:
        """The action the env executes: clipped to its bounds."""
        return jnp.clip(action, self.env.action_low, self.env.action_high)

    def _feature_x(self, stats, obs, action, next_obs) -> jax.Array:
        """Features model: ``[normalised base features, 0]`` (the indicator is 1 only in
        the absorbing state, whose features are zeroed: ``_absorbing_x``)."""
        f = self._features(obs, action, next_obs)
        if self.config.normalize_disc_inputs:
            f = normalizer.normalize(stats, f)
        if not self.disc_cfg.use_absorbing:
            return f
        return jnp.concatenate([f, jnp.zeros(f.shape[:-1] + (1,), f.dtype)], axis=-1)

    def _absorbing_x(self) -> jax.Array:
        if self.features:
            return jnp.zeros((self.input_dim,), jnp.float32).at[-1].set(1.0)
        return disc.absorbing_input(self.disc_cfg, self.env.observation_size, self.env.action_size)

    def corrected_reward(self, buffer, disc_params: Params, x: jax.Array) -> jax.Array:
        """The corrected reward (Alg. 2 lines 19-23; learner units) of inputs x (N, D)."""
        if self.features:
            return fr.corrected_reward(buffer, fr.encode(self.disc_cfg, disc_params, x))
        return rb.corrected_reward(buffer, x, self.beta, self.config.eps)

    def _intermediate(self, params: RewardParams, x: jax.Array, etas=None,
                      evaluated: Optional[tuple[jax.Array, jax.Array]] = None) -> jax.Array:
        """Alg. 2 line 24 (learner units) of inputs x (N, D). ``evaluated``: the buffer
        members' and the new discriminator's logits on x, ``((k, N), (N,))``, when the
        caller has them (fitted model)."""
        if self.features:
            z = fr.encode(self.disc_cfg, params.disc_params, x)
            return fr.intermediate_reward(params.buffer, params.disc_params, z, self.beta,
                                          self.config.eps)
        members, new = evaluated if evaluated is not None else \
            (None, disc.logits(self.disc_cfg, params.disc_params, x))
        return rb.intermediate_reward(params.buffer, x, self.beta, self.config.eps, new, etas,
                                      members)

    def _with_absorbing(self, x: jax.Array, absorbing: jax.Array) -> tuple[jax.Array, jax.Array]:
        """A sampling pool: rows ``x`` (N, D), then one absorbing sample per terminal
        transition (DAC). Returns ``(pool (2N, D), count)``; rows ``>= count`` are unused."""
        if not self.disc_cfg.use_absorbing:
            return x, jnp.asarray(x.shape[0], jnp.int32)
        pool = jnp.concatenate([x, jnp.broadcast_to(self._absorbing_x(), x.shape)])
        return pool, x.shape[0] + jnp.sum(absorbing.astype(jnp.int32))

    # -- reward -----------------------------------------------------------------------

    def reward_fn(self, params: RewardParams, obs, action, next_obs, absorbing) -> jax.Array:
        """The intermediate reward (Alg. 2 line 24) / beta; ``LearnedReward.fn``."""
        x = self.disc_x(params.disc_stats, obs, action, next_obs, absorbing)
        shape = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])
        # Explicit sizes, not -1: with k = 0 the etas are empty and -1 is ambiguous.
        etas = None if params.etas is None else params.etas.reshape(params.etas.shape[0],
                                                                     x.shape[0])
        return (self._intermediate(params, x, etas) / self.beta).reshape(shape)

    def absorbing_reward(self, params: RewardParams) -> jax.Array:
        """r(s_a) of the intermediate reward / beta (0 without absorbing-state handling).
        Members keep their stored eta here: no policy acts in s_a."""
        if not self.disc_cfg.use_absorbing:
            return jnp.zeros((), jnp.float32)
        return self._intermediate(params, self._absorbing_x()[None])[0] / self.beta

    # -- trust-region multipliers -----------------------------------------------------

    @staticmethod
    def _max_multiplier(proj: trpl.Projection) -> jax.Array:
        """Per-state scalar multiplier ``max(eta_mean(s), eta_cov)`` (paper Sec. 4.3)."""
        return jnp.maximum(proj.eta_mean, proj.eta_cov)

    def retrospective_etas(self, policies: Params, obs: jax.Array) -> jax.Array:
        """Per slot and state ``max(eta_mean_j(s), eta_cov_j)`` of the stored update
        before_j -> after_j, re-evaluated on ``obs`` (..., obs_dim) -> ``(k, ...)``."""
        tr = self.config.ppo.trust_region

        def member(pair):
            (actor_b, stats_b), (actor_a, stats_a) = pair
            old_mean, old_std = self.ppo.policy(actor_b, stats_b, obs)
            mean, std = self.ppo.policy(actor_a, stats_a, obs)
            proj = trpl.project(mean, std, old_mean, old_std, tr.mean_bound, tr.cov_bound)
            return self._max_multiplier(proj)

        # They are the reward recursion's multipliers, so the floor applies to them too.
        return jnp.maximum(jax.vmap(member)(policies), self.config.reward_eta_floor)

    def tr_loss_eta(self, iteration: jax.Array) -> jax.Array:
        """Penalty weight of the ``tr_loss`` variant at a (0-based) iteration."""
        if self.config.eta_schedule == "linear":
            return linear_decay(self.config.eta_init, iteration, self.num_iterations)
        return jnp.asarray(self.config.eta_init, jnp.float32)

    # -- progress metrics -------------------------------------------------------------

    def progress_metrics(self, ppo_state: PPOState, rollout: Rollout, buffer, disc_params: Params,
                         r_agent: jax.Array, x_expert: jax.Array, key: jax.Array) -> dict:
        """How far the iteration moved, for ``metrics.jsonl``:

        * ``policy_kl``: mean over the rollout states of KL(pi^(i+1) || pi^(i)), the
          policy the next rollout uses against the one that collected this one;
        * ``reward_expert`` / ``reward_agent``: mean corrected reward (Alg. 2 lines 19-23,
          after this iteration's push; PPO units) on expert and on agent transitions, and
          ``reward_gap`` their difference: a Monte-Carlo estimate of the reward part of
          the IRL dual, E_E[r] - E_pi[r] (it shrinks as pi approaches the expert while
          r keeps separating them). ``r_agent`` is the corrected reward on every rollout
          row (the caller reuses the members' logits it evaluated for the policy update);
          on the expert side, where the k buffered discriminators are evaluated anew,
          ``GAP_SAMPLES`` random rows keep it cheap.
        """
        mean, std = self.ppo.policy(ppo_state.actor, ppo_state.obs_stats, rollout.obs)
        old_std = rollout.std.reshape(-1, rollout.std.shape[-1])[0]
        kl = trpl.gaussian_kl(mean, std, rollout.mean, old_std)
        k_e, _ = jax.random.split(key)
        rows = jax.random.randint(k_e, (GAP_SAMPLES,), 0, x_expert.shape[0])
        r_e = jnp.mean(self.corrected_reward(buffer, disc_params, x_expert[rows])) / self.beta
        r_a = jnp.mean(r_agent) / self.beta
        return {"policy_kl": jnp.mean(kl), "reward_expert": r_e, "reward_agent": r_a,
                "reward_gap": r_e - r_a}

    # -- discriminator training -------------------------------------------------------

    def train_discriminator(self, params, opt_state, expert_pool, agent_pool, key):
        """``discriminator.train`` on ``(pool, count)`` pairs: rows are drawn from the
        first ``count`` rows of each pool (the number of absorbing samples, one per
        terminal transition, changes from rollout to rollout; the array shapes cannot)."""
        (x_e, n_e), (x_a, n_a) = expert_pool, agent_pool
        return disc.train(self.disc_cfg, params, opt_state, x_e, x_a, key, n_e, n_a)

    # -- state ------------------------------------------------------------------------

    def _features(self, obs, action, next_obs) -> jax.Array:
        """The base features the run's reward reads, ``(..., feature_size)``."""
        return features_lib.evaluate(jnp, self.feature_spec, obs, action, next_obs)

    def init(self, key: jax.Array, expert: ExpertData) -> TRIRLState:
        k_ppo, k_disc, k_buf, key = jax.random.split(key, 4)
        ppo_state = self.ppo.init(k_ppo)
        disc_params = disc.init(self.disc_cfg, k_disc, self.input_dim)
        if self.features:
            buffer = fr.init(fr.head(disc_params)[0].shape[0])  # the encoding's width
            fit_opt_state = ()
            stats = normalizer.update(normalizer.init(self.feature_size), self._features(
                expert.obs, self._executed(expert.actions), expert.next_obs))
        else:
            buffer = rb.init(self.buffer_cfg, k_buf, self.input_dim)
            fit_opt_state = rb.fit_init_opt_state(self.buffer_cfg.fit, buffer.fit_params)
            stats = normalizer.update(normalizer.init(self.env.observation_size), expert.obs)
        policies = None
        if self.config.retrospective:
            k = self.buffer_cfg.capacity
            policy = (ppo_state.actor, ppo_state.obs_stats)
            policies = jax.tree.map(lambda x: jnp.zeros((k,) + x.shape, x.dtype), (policy, policy))
        return TRIRLState(
            ppo=ppo_state, disc_params=disc_params,
            disc_opt_state=disc.init_opt_state(self.disc_cfg, disc_params),
            buffer=buffer, fit_opt_state=fit_opt_state, disc_stats=stats,
            policies=policies, key=key)

    def _fit_rows(self, buffer: rb.RewardBuffer, x: jax.Array, etas: Optional[jax.Array]):
        """R_fit's regression rows: the rollout's inputs (N, D) plus about one absorbing
        row per episode, and (retrospective) the members' etas on those rows, (k, N')."""
        etas_fit = None if etas is None else etas.reshape(etas.shape[0], x.shape[0])
        if not self.num_fit_absorbing:
            return x, etas_fit
        n = self.num_fit_absorbing
        x_fit = jnp.concatenate([x, jnp.broadcast_to(self._absorbing_x(), (n, self.input_dim))])
        if etas_fit is not None:
            etas_fit = jnp.concatenate(
                [etas_fit, jnp.broadcast_to(buffer.etas[:, None], (buffer.etas.shape[0], n))],
                axis=1)
        return x_fit, etas_fit

    # -- one iteration ----------------------------------------------------------------

    def iteration(self, state: TRIRLState, expert: ExpertData
                  ) -> tuple[TRIRLState, dict, Trace]:
        """One pass of Algorithm 2; returns the new state, per-iteration metrics (the
        true episode return of the agent included, evaluation only) and the
        :class:`Trace` of what the policy was trained on."""
        cfg = self.config
        key, k_disc, k_fit, k_gap = jax.random.split(state.key, 4)
        ppo_before = state.ppo
        ppo_state, rollout, ep_stats = self.ppo.collect(state.ppo)

        # Density-ratio estimate D^(i) on the rollout of pi^(i).
        x = self.disc_x(state.disc_stats, rollout.obs, rollout.action, rollout.next_obs,
                        rollout.absorbing)
        x = x.reshape(-1, self.input_dim)
        x_e = self.disc_x(state.disc_stats, expert.obs, expert.actions, expert.next_obs,
                          expert.absorbing)
        disc_params, disc_opt_state, dm = self.train_discriminator(
            state.disc_params, state.disc_opt_state, self._with_absorbing(x_e, expert.absorbing),
            self._with_absorbing(x, rollout.absorbing), k_disc)

        # Policy update on the intermediate reward.
        etas = self.retrospective_etas(state.policies, rollout.obs) if cfg.retrospective else None
        params = RewardParams(buffer=state.buffer, disc_params=disc_params,
                              disc_stats=state.disc_stats, etas=etas)
        if self.features:
            rewards, r_abs = self.ppo.rewards(rollout, params)
        else:
            # The k members are evaluated ONCE per iteration, on the rollout rows plus
            # R_fit's absorbing rows; the policy reward, R_fit's targets and the agent
            # side of reward_gap all reuse these logits (they are the buffer's main cost).
            x_fit, etas_fit = self._fit_rows(state.buffer, x, etas)
            n = x.shape[0]
            members = rb.member_logits(state.buffer, x_fit) if self.buffer_cfg.capacity else None
            new_logits = disc.logits(self.disc_cfg, disc_params, x_fit)
            members_x = None if members is None else members[:, :n]
            etas_x = None if etas is None else etas.reshape(etas.shape[0], n)
            rewards = self._intermediate(params, x, etas_x, (members_x, new_logits[:n]))
            rewards = (rewards / self.beta).reshape(rollout.absorbing.shape)
            r_abs = self.absorbing_reward(params)
        kl_coef = self.tr_loss_eta(state.ppo.iteration) if cfg.variant == "tr_loss" else None
        ppo_state, metrics = self.ppo.update_with_rewards(ppo_state, rollout, rewards, r_abs,
                                                          kl_coef=kl_coef)

        # The multiplier of that update.
        if cfg.variant == "tr_loss":
            eta = kl_coef
            metrics.update(update_eta_mean_max=jnp.float32(jnp.nan),
                           update_eta_cov=jnp.float32(jnp.nan))
        else:
            proj = self.ppo.trust_region_projection(ppo_state, rollout)
            eta = jnp.max(self._max_multiplier(proj))
            # (PPO's own eta_*_max metrics are the projections' during the epochs.)
            metrics.update(update_eta_mean_max=jnp.max(proj.eta_mean),
                           update_eta_cov=proj.eta_cov)

        # Store the update's policy pair (retrospective etas) and push D^(i) with eta.
        policies = state.policies
        buffer = state.buffer
        if cfg.retrospective and self.buffer_cfg.capacity > 0:
            pair = ((ppo_before.actor, ppo_before.obs_stats), (ppo_state.actor, ppo_state.obs_stats))
            policies = jax.tree.map(lambda stack, p: stack.at[buffer.head].set(p), policies, pair)
        # The reward recursion's multiplier (>= eta: reward_eta_floor lengthens its memory).
        eta_reward = jnp.maximum(eta, cfg.reward_eta_floor)
        if self.features:
            buffer = fr.update(buffer, disc_params, eta_reward, self.beta, cfg.eps)
            fit_opt_state, fm = state.fit_opt_state, {"fit_mse": jnp.float32(0.0)}
            size, reward_params = jnp.int32(0), buffer
            r_agent = self.corrected_reward(buffer, disc_params, x)
        else:
            buffer, fit_opt_state, fm = rb.push_and_fit(
                buffer, state.fit_opt_state, disc_params, eta_reward, x_fit, self.beta,
                cfg.eps, k_fit, etas_fit, members, new_logits)
            size, reward_params = buffer.count, buffer.fit_params
            after = None if members_x is None else \
                rb.pushed_logits(state.buffer, members_x, new_logits[:n])
            r_agent = rb.corrected_reward(buffer, x, self.beta, cfg.eps, logits=after)
        metrics.update(self.progress_metrics(ppo_state, rollout, buffer, disc_params, r_agent, x_e,
                                             k_gap))

        metrics.update(ep_stats)
        metrics.update(
            disc_loss=dm["loss"], disc_bce=dm["bce"], disc_gp=dm["gp"],
            disc_expert_acc=dm["expert_acc"], disc_agent_acc=dm["agent_acc"],
            disc_accuracy=0.5 * (dm["expert_acc"] + dm["agent_acc"]),
            eta=eta, eps_tr=cfg.eps / (1.0 + eta_reward), reward_std=jnp.std(rewards),
            reward_absorbing=r_abs, fit_mse=fm["fit_mse"], buffer_size=size,
            finite=all_finite((ppo_state.actor, ppo_state.critic, disc_params, reward_params)))
        state = TRIRLState(ppo=ppo_state, disc_params=disc_params, disc_opt_state=disc_opt_state,
                           buffer=buffer, fit_opt_state=fit_opt_state,
                           disc_stats=state.disc_stats, policies=policies, key=key)
        return state, metrics, Trace(rollout=rollout, rewards=rewards, absorbing_reward=r_abs)


def compiled(env: envs.Env, config: TRIRLConfig, num_iterations: int,
             placement: Optional[sharding.Placement] = None):
    """``(learner, init, iterate)`` with ``init(keys, expert)`` and ``iterate(state, expert)``
    jitted and vmapped over seeds (leading axis of ``keys``/``state``; ``expert`` shared).
    ``placement``: the devices ``iterate`` shards the env batch over (``trirl.sharding``;
    default one device); ``init`` builds the state on one device (``placement.place`` it).

    Cached per (env, config, num_iterations, placement), so runs and tests in one process
    share the (slow) compilation.
    """
    return _compiled(env, config, num_iterations, placement or sharding.Placement())


@functools.lru_cache(maxsize=8)
def _compiled(env: envs.Env, config: TRIRLConfig, num_iterations: int,
              placement: sharding.Placement):
    if config.baseline:
        from trirl.baselines import Adversarial

        learner = Adversarial(env, config, num_iterations)
    else:
        learner = TRIRL(env, config, num_iterations)
    init = jax.jit(jax.vmap(learner.init, in_axes=(0, None)))
    iterate = placement.jit(jax.vmap(learner.iteration, in_axes=(0, None)))
    return learner, init, iterate


# ----------------------------------------------------------------------------- configs

# Per-environment TRIRL settings ("section": {field: value}) and a step budget.
# The paper's robotics networks (App. C.5): 3 layers of 512, 256, 128 for the policy and
# the discriminator, 1024, 512 for the critic; R_fit as the discriminators.
ROBOT_NETWORKS = {"ppo": {"hidden": (512, 256, 128), "critic_hidden": (1024, 512)},
                  "disc": {"hidden": (512, 256, 128)}, "fit": {"hidden": (512, 256, 128)}}
# "features_settings" apply on top of "settings" when the run uses the feature-based
# reward model. A reward linear in the base features (no encoder, as the authors' for
# Point Maze) needs a larger discriminator step than the MLP's 2e-4 to train at all
# (docs/benchmarks.md: agent accuracy 0.0 at 2e-4).
_LINEAR_FEATURES = {"hidden": (), "learning_rate": 1e-2}
# Point Maze's (docs/benchmarks.md, "Point Maze with the authors' dynamics"): linear in
# the distance to the goal; a long reward memory (reward_eta_floor 80, the TR-loss eta:
# with max-eta's steps only 3 of 6 seeds' rewards re-optimised); the TR-loss variant's
# policy steps (eta_init 80 -> 0; TRPL's max-eta steps left 2 of 3 training policies at
# the wall below the gap) for 500k steps; and no action-cost feature: the expert moves at
# full thrust, so the reward learned to pay for thrust and fresh policies hovered near
# the goal instead of arriving.
_MAZE = {"steps": 300_000, "features_steps": 500_000,
         "features_settings": {"": {"variant": "tr_loss", "reward_eta_floor": 80.0,
                                    "feature_names": ("goal_distance",)},
                               "disc": _LINEAR_FEATURES}}
# HalfCheetah's feature model (docs/benchmarks.md, "HalfCheetah: Training / Retraining /
# Transfer"): linear in forward velocity and sum a^2, no encoder. With the paper's
# 256-256 encoder one of 3 seeds' rewards had a second optimum running backwards (the
# tanh encoder's extrapolation to velocities no one visits) and re-optimised scores were
# -0.13 +- 0.37; linear rewards all rise with velocity and every fresh policy runs
# forward (retraining 0.40 +- 0.05, wind 0.54 +- 0.13, Mars 0.53 +- 0.03 over 3 seeds).
# Every learner starts at action std 0.2 (the expert preset's) instead of 0.6: under the
# trust region the std takes ~1M steps to shrink, and over 5 seeds x 1M steps
# (docs/benchmarks.md, "HalfCheetah grid at initial std 0.2") the narrower start lifted
# AIRL 0.06 -> 0.62 and TRIRL's feature model 0.28 -> 0.46; GAIL, AMP and the fitted
# model (0.56 at 0.6, 0.45 at 0.2) stayed within their seeds' spread.
_CHEETAH = {"settings": {"ppo": {"init_std": 0.2}},
            "features_settings": {"disc": _LINEAR_FEATURES}}
LEARN_PRESETS: dict[str, dict[str, Any]] = {
    "point_maze": _MAZE,
    "point_maze_flipped": _MAZE,
    **dict.fromkeys(("halfcheetah", "halfcheetah_wind", "halfcheetah_mars"), _CHEETAH),
    **{name: {"settings": ROBOT_NETWORKS} for name in ("g1_walk", "g1_run", "go2")},
}
DEFAULT_STEPS = 5_000_000

_SECTIONS = {"ppo": PPOConfig, "trust_region": TrustRegionConfig,
             "disc": disc.DiscriminatorConfig, "fit": rb.RewardFitConfig}


def _section_of(name: str) -> tuple[str, str]:
    section, dot, field = name.partition(".")
    return (section.strip(), field.strip()) if dot else ("", name.strip())


def parse_settings(pairs: tuple[str, ...], source: str = "--set") -> dict[str, dict[str, Any]]:
    """``("eps=0.5", "ppo.learning_rate=3e-4", "disc.hidden=64,64")`` -> typed values per
    section ("" for :class:`TRIRLConfig`'s own fields). ``source`` names where the pairs
    came from in error messages (a flag or a file)."""
    from trirl.expert import parse_overrides

    grouped: dict[str, list[str]] = {}
    own = {f.name for f in dataclasses.fields(TRIRLConfig)}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        section, field = _section_of(name)
        if section and section not in _SECTIONS:
            raise TrirlError(f"{source} {pair!r}: unknown section {section!r}; use one of "
                             f"{', '.join(_SECTIONS)} (e.g. ppo.learning_rate=1e-4) or a TRIRL "
                             "setting without a section (e.g. eps=0.5)")
        if not section and sep and field.replace("-", "_") not in own:
            hits = [f"{s}.{field}" for s, cls in _SECTIONS.items()
                    if field.replace("-", "_") in {f.name for f in dataclasses.fields(cls)}]
            if hits:
                raise TrirlError(f"{source} {pair!r}: {field!r} is not a TRIRL setting; did you "
                                 f"mean {' or '.join(hits)}?")
        grouped.setdefault(section, []).append(f"{field}{sep}{value}")
    try:
        return {section: parse_overrides(tuple(items), _SECTIONS.get(section, TRIRLConfig),
                                         section or "TRIRL")
                for section, items in grouped.items()}
    except TrirlError as exc:
        if source == "--set":
            raise
        raise TrirlError(f"{source}: {exc}") from None


def _toml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def read_config_file(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """A ``--config`` TOML file -> (settings as :func:`parse_settings` returns them,
    environment settings as KEY=VALUE strings).

    Top-level keys are TRIRL settings (``eps``, ``capacity``, ``variant``, ...); tables
    ``[ppo]``, ``[trust_region]``, ``[disc]``, ``[fit]`` hold their sections and ``[env]``
    the environment's settings -- the same names ``--set`` and ``--env-set`` take.
    """
    import tomllib

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise TrirlError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TrirlError(f"{path}: not valid TOML ({exc})") from None
    pairs, env_pairs = [], []
    for key, value in data.items():
        if not isinstance(value, dict):
            pairs.append(f"{key}={_toml_text(value)}")
            continue
        if key != "env" and key not in _SECTIONS:
            raise TrirlError(f"{path}: unknown table [{key}]; use [{'], ['.join(_SECTIONS)}] "
                             "or [env]")
        for name, item in value.items():
            if isinstance(item, dict):
                raise TrirlError(f"{path}: [{key}] {name} is a table; settings are plain "
                                 "values (numbers, booleans, strings, lists)")
            (env_pairs if key == "env" else pairs).append(
                f"{'' if key == 'env' else key + '.'}{name}={_toml_text(item)}")
    return parse_settings(tuple(pairs), source=str(path)), tuple(env_pairs)


def build_config(settings: Optional[dict[str, dict[str, Any]]] = None) -> TRIRLConfig:
    """A :class:`TRIRLConfig` from the paper defaults and per-section settings (e.g. from
    :func:`parse_settings`, a preset or a config file; ``""`` holds TRIRL's own fields,
    variant, inputs and reward model included)."""
    settings = settings or {}
    base = TRIRLConfig()
    ppo = dataclasses.replace(base.ppo, **settings.get("ppo", {}))
    if settings.get("trust_region"):
        ppo = dataclasses.replace(ppo, trust_region=dataclasses.replace(
            ppo.trust_region or TrustRegionConfig(), **settings["trust_region"]))
    return TRIRLConfig(**settings.get("", {}), ppo=ppo,
                       disc=dataclasses.replace(base.disc, **settings.get("disc", {})),
                       fit=dataclasses.replace(base.fit, **settings.get("fit", {})))


def preset_settings(env_name: str, settings: Optional[dict] = None) -> dict:
    """``settings`` over ``env_name``'s preset: its "settings", then its
    "features_settings" when the run uses the feature-based reward model."""
    preset = LEARN_PRESETS.get(env_name, {})
    base, user = preset.get("settings", {}), settings or {}
    model = merge_settings(base, user).get("", {}).get("reward_model", "fitted")
    extra = preset.get("features_settings", {}) if model == "features" else {}
    return merge_settings(base, extra, user)


def preset_steps(env_name: str, config: TRIRLConfig) -> int:
    """The env preset's step budget: its "features_steps" for a feature-model run when
    it has one, else its "steps", else :data:`DEFAULT_STEPS`."""
    preset = LEARN_PRESETS.get(env_name, {})
    if config.features and "features_steps" in preset:
        return int(preset["features_steps"])
    return int(preset.get("steps", DEFAULT_STEPS))


def merge_settings(*settings: dict) -> dict:
    """Later settings win, field by field."""
    out: dict[str, dict] = {}
    for s in settings:
        for section, values in s.items():
            out.setdefault(section, {}).update(values)
    return out


def _flat_from_dict(cls, values: dict, source: str):
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise TrirlError(f"{source}: unknown {cls.__name__} setting {unknown[0]!r}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def config_from_dict(values: dict, source: str) -> TRIRLConfig:
    """Rebuild a :class:`TRIRLConfig` from ``dataclasses.asdict`` JSON."""
    from trirl.expert import ppo_config_from_dict

    values = dict(values)
    try:
        ppo = ppo_config_from_dict(values.pop("ppo"), source)
        sub = {"disc": _flat_from_dict(disc.DiscriminatorConfig, values.pop("disc"), source),
               "fit": _flat_from_dict(rb.RewardFitConfig, values.pop("fit"), source)}
        return _flat_from_dict(TRIRLConfig, {**values, "ppo": ppo, **sub}, source)
    except (KeyError, TypeError) as exc:
        raise TrirlError(f"{source}: invalid TRIRL config ({exc}); start a new run") from None


# ----------------------------------------------------------------------------- runs


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


def load_demos(path, env: envs.Env, config: TRIRLConfig) -> demos_lib.Demos:
    """Demos checked against ``env``; actions required when the discriminator reads them:
    inputs "sa"/"sas", or base features with action terms for the features model."""
    if config.features:
        needs = features_lib.reads(feature_spec(env, config), "action")
    else:
        needs = config.inputs != "ss"
    return demos_lib.load(path, env=env, require_actions=needs)


def default_env(demos: Optional[Path]) -> str:
    """The environment a run uses when none is named: the one the demos were recorded
    on, else Point Maze (whose demos are bundled)."""
    if demos is None:
        return "point_maze"
    return demos_lib.load(demos).metadata["env"]


def train(env_name: Optional[str] = None, *, demos: Optional[Path] = None,
          run_dir: Optional[Path] = None, steps: Optional[int] = None, seeds: int = 1,
          seed: int = 0, settings: Optional[dict[str, dict[str, Any]]] = None,
          env_overrides: Optional[dict] = None, checkpoint_every: int = 50,
          show_progress: bool = True, backend: Optional[str] = None) -> Path:
    """Start a TRIRL run; returns its directory. Everything is validated before the
    directory is created.

    Args:
      env_name: environment [default: the demos' own, else "point_maze"].
      demos: demonstration file [default: the env's bundled demos].
      backend: physics backend "mjx", "c" or "auto" [default: auto: MJX on a GPU, MuJoCo
        C on a CPU]; the concrete one is recorded in ``config.json`` for ``resume``.
      settings: per-section settings over the env's preset and the paper defaults
        (see :func:`build_config`); ``settings[""]`` may set variant/inputs/reward_model.
    """
    from trirl.evaluation import bundled_demos
    from trirl.expert import claim_run_dir
    from trirl.runner import write_json_atomic

    env_name = env_name or default_env(demos)
    env = envs.make(env_name, backend=backend, **(env_overrides or {}))
    if seeds < 1:
        raise TrirlError(f"--seeds must be >= 1 (got {seeds})")
    if checkpoint_every < 1:
        raise TrirlError(f"--checkpoint-every must be >= 1 (got {checkpoint_every})")
    if demos is None:
        demos = bundled_demos(env_name)
        if demos is None:
            raise TrirlError(f"no bundled demonstrations for {env_name!r}; pass --demos FILE "
                             "(record one with `trirl demos RUN -o FILE`)")
    merged = preset_settings(env_name, settings)
    if "inputs" not in merged.get("", {}) and demos_lib.load(demos).actions is None:
        # Observation-only demos (motion capture) can only train D(s, s'): the default
        # for them, so `trirl learn --demos g1_walk.npz` needs no flag.
        merged = merge_settings(merged, {"": {"inputs": "ss"}})
    config = build_config(merged)
    load_demos(demos, env, config)
    batch = config.ppo.batch_size
    steps = int(steps or preset_steps(env_name, config))
    if steps < 1:
        raise TrirlError(f"--steps must be >= 1 (got {steps})")
    num_iterations = max(1, -(-steps // batch))
    devices = sharding.for_training(env.backend_name, config.ppo.num_envs).devices  # checks it
    run_dir = claim_run_dir(run_dir, config.algo, env_name)
    shutil.copyfile(demos, run_dir / DEMOS_FILE)
    record = {"kind": "trirl", "env": env_name, "env_overrides": env_overrides or {},
              "backend": env.backend_name, "ppo": dataclasses.asdict(config.policy_ppo),
              "trirl": dataclasses.asdict(config),
              "demos": DEMOS_FILE, "demos_source": str(demos), "seeds": seeds, "seed": seed,
              "devices": devices,
              "total_steps": num_iterations * batch, "num_iterations": num_iterations,
              "checkpoint_every": checkpoint_every, "trirl_version": trirl.__version__}
    write_json_atomic(run_dir / "config.json", record)  # written last: it marks a run
    _train(run_dir, resume=False, show_progress=show_progress)
    return run_dir


def resume(run_dir: Path, show_progress: bool = True, backend: Optional[str] = None) -> Path:
    from trirl.expert import _read_config, check_resume_backend

    check_resume_backend(Path(run_dir), _read_config(Path(run_dir)), backend)
    _train(Path(run_dir), resume=True, show_progress=show_progress)
    return Path(run_dir)


@dataclasses.dataclass(frozen=True)
class Session:
    """An existing TRIRL run, ready to train: its seed-stacked ``init()`` and
    ``iterate(state) -> (state, metrics, trace)`` (jitted, vmapped, cached per config)."""

    run: Any  # trirl.expert.Run
    config: TRIRLConfig
    learner: TRIRL
    expert: ExpertData
    keys: jax.Array
    reference: Optional[tuple[float, float]]  # (expert, random) mean return of the demos
    _init: Any
    _iterate: Any

    def init(self) -> TRIRLState:
        return self._init(self.keys, self.expert)

    def iterate(self, state: TRIRLState) -> tuple[TRIRLState, dict, Trace]:
        state, metrics, trace = self._iterate(state, self.expert)
        if self.reference is not None:
            from trirl.evaluation import normalized_score

            # NaN (logged as null) for a seed that finished no episode this iteration.
            metrics["normalized_score"] = normalized_score(metrics["episode_return"],
                                                           *self.reference)
        return state, metrics, trace


def open_session(run_dir: Path, placement: Optional[sharding.Placement] = None) -> Session:
    """The :class:`Session` of the TRIRL run in ``run_dir`` (demos from its own copy);
    its ``iterate`` shards the env batch by ``placement`` (default: one device)."""
    from trirl.expert import open_run

    run_dir = Path(run_dir)
    run = open_run(run_dir)
    if run.config.get("kind") != "trirl":
        raise TrirlError(f"{run_dir} is a {run.config.get('kind')!r} run, not a TRIRL run; "
                         "resume it with the command that started it")
    config = config_from_dict(run.config["trirl"], str(run_dir / "config.json"))
    demos = load_demos(run_dir / run.config.get("demos", DEMOS_FILE), run.env, config)
    learner, init, iterate = compiled(run.env, config, int(run.config["num_iterations"]),
                                      placement)
    keys = jax.random.split(jax.random.PRNGKey(run.config["seed"]), run.num_seeds)
    meta = demos.metadata
    reference = None
    if meta.get("expert_return_mean") is not None and meta.get("random_return_mean") is not None:
        reference = (float(meta["expert_return_mean"]), float(meta["random_return_mean"]))
    return Session(run=run, config=config, learner=learner,
                   expert=(placement or sharding.Placement()).replicate(
                       expert_data(demos, run.env.action_size)), keys=keys,
                   reference=reference, _init=init, _iterate=iterate)


# metrics.jsonl name -> heading of the final summary table
SUMMARY_COLUMNS = {"episode_return": "return", "normalized_score": "normalized score",
                   "disc_expert_acc": "D acc expert", "disc_agent_acc": "D acc agent",
                   "eta": "eta", "eps_tr": "eps_tr", "policy_kl": "policy KL",
                   "reward_gap": "E_E[r] - E_pi[r]"}


def _train(run_dir: Path, *, resume: bool, show_progress: bool) -> None:
    from trirl.expert import _read_config, recorded_backend
    from trirl.runner import console, print_summary, train_loop

    # Env batch sharded over the local devices (trirl.sharding; no-op on one device). A
    # resumed state is restored on one device and moved onto the mesh by the first call.
    record = _read_config(Path(run_dir))
    placement = sharding.for_training(recorded_backend(record), record["ppo"]["num_envs"],
                                      say=console.print)
    session = open_session(run_dir, placement)
    cfg = session.run.config
    label = f"{describe(session.config)} {cfg['env']}"
    train_loop(run_dir, lambda: placement.place(session.init()), lambda s: session.iterate(s)[:2],
               num_iterations=cfg["num_iterations"],
               steps_per_iteration=session.config.ppo.batch_size,
               checkpoint_every=cfg.get("checkpoint_every", 50), resume=resume,
               label=label, show_progress=show_progress)
    if show_progress:
        columns = SUMMARY_COLUMNS
        if session.config.baseline:  # no eta / step size: they are TRIRL's correction
            columns = {k: v for k, v in columns.items() if k not in ("eta", "eps_tr")}
        print_summary(run_dir, columns, f"{label}: last logged values")


def describe(config: TRIRLConfig) -> str:
    """``"trirl (max_eta)"``, ``"gail (log_d)"``, ``"airl"``, ``"amp"``: run labels."""
    if config.algo == "trirl":
        return f"trirl ({config.variant})"
    return f"gail ({config.gail_reward})" if config.algo == "gail" else config.algo


def checkpoint_like(run) -> Any:
    """Shapes of a TRIRL run's checkpointed (seed-stacked) state, for restoring it
    (``trirl.expert.load_policy``). Traces the cached ``init``, so in a process that
    trained the run nothing is traced again."""
    config = config_from_dict(run.config["trirl"], str(run.run_dir / "config.json"))
    _, init, _ = compiled(run.env, config, int(run.config["num_iterations"]))
    demos = load_demos(run.run_dir / run.config.get("demos", DEMOS_FILE), run.env, config)
    keys = jax.random.split(jax.random.PRNGKey(run.config["seed"]), run.num_seeds)
    return jax.eval_shape(init, keys, expert_data(demos, run.env.action_size))
