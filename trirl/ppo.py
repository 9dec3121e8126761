"""Pure-JAX PPO on vmapped trirl environments, optionally with a trust-region layer.

One training iteration -- ``collect`` (a ``lax.scan`` rollout over ``num_envs``
vmapped environments) followed by ``update`` (GAE and ``num_epochs`` passes of
minibatch Adam steps, also ``lax.scan``) -- is a single pure function of an explicit
:class:`PPOState` pytree. Several seeds train in one process by ``vmap``-ing it over a
stacked state (``trirl.runner``); nothing touches the host inside an iteration.

The reward is pluggable: by default the environment's true reward (experts), or any
:class:`LearnedReward` ``fn(params, obs, action, next_obs, absorbing)`` whose
parameters are passed to every iteration, so a learner can change them between
iterations without recompiling (``trirl learn`` plugs the corrected TRIRL reward in).

With ``PPOConfig.trust_region`` set, the policy is the TRPL projection (Otto et al.
2021; paper App. C.3) of the network's raw output onto the KL trust region around the
behaviour policy; the clipped surrogate is taken on the projected policy and the
trust-region regression loss is added (paper Table 7).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax
from flax import struct

from trirl import normalizer, trpl
from trirl.envs.base import AutoReset, Env, EnvState
from trirl.errors import TrirlError
from trirl.gae import gae
from trirl.policy import Critic, GaussianActor, entropy, log_prob

Params = Any


@dataclasses.dataclass(frozen=True)
class TrustRegionConfig:
    """TRPL bounds (paper Table 7 ranges in brackets).

    Attributes:
      mean_bound: reverse-KL bound on the mean part [0.0002, 0.005].
      cov_bound: reverse-KL bound on the covariance part [0.0001, 0.004].
      loss_coef: trust-region regression loss coefficient [0.4, 0.6].
    """

    mean_bound: float = 0.003
    cov_bound: float = 0.001
    loss_coef: float = 0.5


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """PPO settings; defaults follow the paper (App. C.5) where it fixes them.

    Attributes:
      num_envs: parallel environments.
      rollout_length: steps per environment per iteration (paper: 10).
      num_epochs: passes over each rollout batch.
      minibatch_size: transitions per gradient step (paper: 512).
      learning_rate: Adam step size.
      max_grad_norm: global gradient-norm clip (paper: 1.0).
      clip_eps: PPO ratio clip (paper: 0.2).
      gamma: discount (paper: 0.99).
      gae_lambda: GAE lambda (paper: 0.95).
      entropy_coef: entropy bonus weight (1/beta in the paper's notation).
      value_coef: value-loss weight.
      hidden: hidden widths of the policy, and of the critic unless ``critic_hidden``
        is set (paper: 3 x 256; robotics tasks 512, 256, 128).
      critic_hidden: hidden widths of the critic; ``None``: ``hidden`` (paper: the
        policy's, except on the robotics tasks, whose critic is 1024, 512).
      activation: hidden activation (paper: tanh).
      init_std: initial policy standard deviation.
      normalize_obs: running observation normalisation.
      normalize_advantages: per-minibatch advantage standardisation.
      trust_region: TRPL settings, or None for plain clipped PPO.
    """

    num_envs: int = 256
    rollout_length: int = 16
    num_epochs: int = 4
    minibatch_size: int = 512
    learning_rate: float = 3e-4
    max_grad_norm: float = 1.0
    clip_eps: float = 0.2
    gamma: float = 0.99
    gae_lambda: float = 0.95
    entropy_coef: float = 0.0
    value_coef: float = 0.5
    hidden: tuple[int, ...] = (256, 256, 256)
    critic_hidden: Optional[tuple[int, ...]] = None
    activation: str = "tanh"
    init_std: float = 0.6
    normalize_obs: bool = True
    normalize_advantages: bool = True
    trust_region: Optional[TrustRegionConfig] = None

    def __post_init__(self):
        # Lists (from JSON) would make the config unhashable; it is a jit static argument.
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if self.critic_hidden is not None:
            object.__setattr__(self, "critic_hidden", tuple(self.critic_hidden))
        batch = self.num_envs * self.rollout_length
        if batch % self.minibatch_size:
            raise TrirlError(
                f"PPO batch num_envs*rollout_length = {self.num_envs}*{self.rollout_length} = "
                f"{batch} is not a multiple of minibatch_size={self.minibatch_size}; "
                "change one of them")

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.rollout_length

    @property
    def num_minibatches(self) -> int:
        return self.batch_size // self.minibatch_size


class LearnedReward(NamedTuple):
    """A reward to optimise instead of the environment's.

    Attributes:
      fn: ``fn(params, obs, action, next_obs, absorbing) -> reward`` on batches with
        shared leading axes; raw (unnormalised) observations; ``absorbing`` marks
        transitions that entered a terminal state.
      absorbing_reward: ``absorbing_reward(params) -> scalar`` reward of the absorbing
        state s_a; its value ``r_abs / (1 - gamma)`` bootstraps terminal steps.
    """

    fn: Callable[..., jax.Array]
    absorbing_reward: Callable[[Params], jax.Array]


@struct.dataclass
class PPOState:
    """Everything one PPO run needs to continue exactly."""

    actor: Params
    critic: Params
    opt_state: optax.OptState
    obs_stats: normalizer.RunningStats
    env_state: EnvState
    episode_return: jax.Array
    key: jax.Array
    iteration: jax.Array


@struct.dataclass
class Rollout:
    """Time-major ``(T, num_envs, ...)`` transitions. Observations are raw."""

    obs: jax.Array
    action: jax.Array
    next_obs: jax.Array
    env_reward: jax.Array
    absorbing: jax.Array
    truncated: jax.Array
    done: jax.Array
    log_prob: jax.Array
    mean: jax.Array
    std: jax.Array
    time: jax.Array  # int32: steps the episode had taken before this transition


class PPO:
    """PPO for one environment and config: pure functions over :class:`PPOState`."""

    def __init__(self, env: Env, config: PPOConfig, reward: Optional[LearnedReward] = None):
        self.env = env
        self.config = config
        self.reward = reward
        self.vec = AutoReset(env)
        self.actor = GaussianActor(env.action_size, config.hidden, config.activation,
                                   config.init_std)
        self.critic = Critic(config.hidden if config.critic_hidden is None
                             else config.critic_hidden, config.activation)
        self.optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                                     optax.adam(config.learning_rate))

    # -- state ------------------------------------------------------------------------

    def init(self, key: jax.Array) -> PPOState:
        k_actor, k_critic, k_env, key = jax.random.split(key, 4)
        dummy = jnp.zeros((self.env.observation_size,))
        actor = self.actor.init(k_actor, dummy)
        critic = self.critic.init(k_critic, dummy)
        env_state = self.vec.reset(k_env, self.config.num_envs)
        return PPOState(actor=actor, critic=critic,
                        opt_state=self.optimizer.init((actor, critic)),
                        obs_stats=normalizer.init(self.env.observation_size),
                        env_state=env_state,
                        episode_return=jnp.zeros(self.config.num_envs, jnp.float32),
                        key=key, iteration=jnp.zeros((), jnp.int32))

    def normalize(self, stats: normalizer.RunningStats, obs: jax.Array) -> jax.Array:
        return normalizer.normalize(stats, obs) if self.config.normalize_obs else obs

    def policy(self, actor: Params, stats: normalizer.RunningStats,
               obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Raw network ``(mean, std)`` for raw observations."""
        return self.actor.apply(actor, self.normalize(stats, obs))

    def act_deterministic(self, policy_params: tuple, obs: jax.Array, key=None) -> jax.Array:
        """Mean action; ``policy_params = (actor, obs_stats)``. For evaluation and demos."""
        actor, stats = policy_params
        return self.policy(actor, stats, obs)[0]

    def act_stochastic(self, policy_params: tuple, obs: jax.Array, key: jax.Array) -> jax.Array:
        actor, stats = policy_params
        mean, std = self.policy(actor, stats, obs)
        return mean + std * jax.random.normal(key, mean.shape)

    # -- rollout ----------------------------------------------------------------------

    def collect(self, state: PPOState) -> tuple[PPOState, Rollout, dict]:
        """Run ``rollout_length`` steps of every env; returns episode statistics of the
        episodes that finished during the rollout (true task reward)."""
        cfg = self.config
        key, k_pool, k_act = jax.random.split(state.key, 3)
        pool = self.vec.reset_pool(k_pool, cfg.num_envs)

        def step(carry, k):
            env_state, ep_ret, fin_ret, fin_n, fin_abs = carry
            mean, std = self.policy(state.actor, state.obs_stats, env_state.obs)
            action = mean + std * jax.random.normal(k, mean.shape)
            nxt = self.vec.step(env_state, action, pool)
            ep_ret = ep_ret + nxt.reward
            done = nxt.done.astype(jnp.float32)
            carry = (nxt, ep_ret * (1.0 - done), fin_ret + jnp.sum(ep_ret * done),
                     fin_n + jnp.sum(done), fin_abs + jnp.sum(nxt.absorbing.astype(jnp.float32)))
            out = Rollout(obs=env_state.obs, action=action, next_obs=nxt.next_obs,
                          env_reward=nxt.reward, absorbing=nxt.absorbing,
                          truncated=nxt.truncated, done=nxt.done,
                          log_prob=log_prob(mean, std, action), mean=mean,
                          std=jnp.broadcast_to(std, mean.shape), time=env_state.steps)
            return carry, out

        zero = jnp.zeros((), jnp.float32)
        init = (state.env_state, state.episode_return, zero, zero, zero)
        (env_state, ep_ret, fin_ret, fin_n, fin_abs), rollout = jax.lax.scan(
            step, init, jax.random.split(k_act, cfg.rollout_length))
        stats = {"episodes": fin_n,
                 "episode_return": jnp.where(fin_n > 0, fin_ret / jnp.maximum(fin_n, 1), jnp.nan),
                 "terminated_fraction": jnp.where(fin_n > 0, fin_abs / jnp.maximum(fin_n, 1),
                                                  jnp.nan)}
        state = state.replace(env_state=env_state, episode_return=ep_ret, key=key)
        return state, rollout, stats

    # -- update -----------------------------------------------------------------------

    def rewards(self, rollout: Rollout, reward_params: Params) -> tuple[jax.Array, jax.Array]:
        """Rewards to optimise and the absorbing-state reward."""
        if self.reward is None:
            return rollout.env_reward, jnp.zeros((), jnp.float32)
        r = self.reward.fn(reward_params, rollout.obs, rollout.action, rollout.next_obs,
                           rollout.absorbing)
        return r, self.reward.absorbing_reward(reward_params)

    def update(self, state: PPOState, rollout: Rollout, reward_params: Params = None,
               kl_coef: Optional[jax.Array] = None) -> tuple[PPOState, dict]:
        rewards, r_abs = self.rewards(rollout, reward_params)
        return self.update_with_rewards(state, rollout, rewards, r_abs, kl_coef=kl_coef)

    def update_with_rewards(self, state: PPOState, rollout: Rollout, rewards: jax.Array,
                            absorbing_reward: jax.Array, kl_coef: Optional[jax.Array] = None
                            ) -> tuple[PPOState, dict]:
        """:meth:`update` on precomputed ``(T, num_envs)`` rewards and absorbing-state reward
        (e.g. from :meth:`rewards`, so a learner can log the rewards it trains on).

        ``kl_coef``: optional weight of a ``KL(pi || pi_behaviour)`` penalty added to the
        loss (mean over the minibatch) -- TRIRL's "TR loss" variant, which enforces the
        trust region in expectation instead of by projection (paper Sec. 4.3).
        """
        cfg = self.config
        obs_stats = normalizer.update(state.obs_stats, rollout.obs) if cfg.normalize_obs \
            else state.obs_stats
        values = self.critic.apply(state.critic, self.normalize(obs_stats, rollout.obs))
        next_values = self.critic.apply(state.critic, self.normalize(obs_stats, rollout.next_obs))
        advantages, returns = gae(rewards, values, next_values, rollout.absorbing, rollout.done,
                                  cfg.gamma, cfg.gae_lambda,
                                  absorbing_reward / (1.0 - cfg.gamma))

        flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]),
                            (rollout, advantages, returns))

        def minibatch_step(carry, idx):
            params, opt_state = carry
            mb = jax.tree.map(lambda x: x[idx], flat)
            (loss, aux), grads = jax.value_and_grad(self._loss, has_aux=True)(
                params, obs_stats, *mb, kl_coef=kl_coef)
            updates, opt_state = self.optimizer.update(grads, opt_state, params)
            aux["grad_norm"] = optax.global_norm(grads)
            return (optax.apply_updates(params, updates), opt_state), aux

        def epoch(carry, key):
            perm = jax.random.permutation(key, cfg.batch_size)
            return jax.lax.scan(minibatch_step, carry,
                                perm.reshape(cfg.num_minibatches, cfg.minibatch_size))

        key, k_epochs = jax.random.split(state.key)
        (params, opt_state), aux = jax.lax.scan(
            epoch, ((state.actor, state.critic), state.opt_state),
            jax.random.split(k_epochs, cfg.num_epochs))
        metrics = jax.tree.map(jnp.mean, aux)
        metrics.update(reward_mean=jnp.mean(rewards), value_mean=jnp.mean(values),
                       advantage_std=jnp.std(advantages))
        state = state.replace(actor=params[0], critic=params[1], opt_state=opt_state,
                              obs_stats=obs_stats, key=key, iteration=state.iteration + 1)
        return state, metrics

    def _loss(self, params, obs_stats, rollout: Rollout, advantages, returns, kl_coef=None):
        cfg = self.config
        actor, critic = params
        obs = self.normalize(obs_stats, rollout.obs)
        mean, std = self.actor.apply(actor, obs)
        aux = {}
        tr_loss = 0.0
        if cfg.trust_region is not None:
            tr = cfg.trust_region
            # The std is state-independent, so the behaviour std is one (d,) vector.
            proj = trpl.project(mean, std, rollout.mean, rollout.std[0], tr.mean_bound,
                                tr.cov_bound)
            tr_loss = trpl.trust_region_loss(proj, mean, std)
            aux.update(tr_loss=tr_loss, eta_mean_max=jnp.max(proj.eta_mean),
                       eta_cov_max=jnp.max(proj.eta_cov))
            mean, std = proj.mean, proj.std
        logp = log_prob(mean, std, rollout.action)
        ratio = jnp.exp(logp - rollout.log_prob)
        if cfg.normalize_advantages:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        surrogate = jnp.minimum(ratio * advantages,
                                jnp.clip(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps) * advantages)
        policy_loss = -jnp.mean(surrogate)
        value = self.critic.apply(critic, obs)
        value_loss = 0.5 * jnp.mean(jnp.square(value - returns))
        ent = jnp.mean(entropy(std))
        total = (policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * ent
                 + (cfg.trust_region.loss_coef * tr_loss if cfg.trust_region else 0.0))
        if kl_coef is not None:
            kl = jnp.mean(trpl.gaussian_kl(mean, std, rollout.mean, rollout.std[0]))
            total = total + kl_coef * kl
            aux["kl_penalty"] = kl
        aux.update(loss=total, policy_loss=policy_loss, value_loss=value_loss, entropy=ent,
                   approx_kl=jnp.mean(rollout.log_prob - logp),
                   clip_fraction=jnp.mean(jnp.abs(ratio - 1) > cfg.clip_eps))
        return total, aux

    def trust_region_projection(self, state: PPOState, rollout: Rollout) -> trpl.Projection:
        """TRPL projection of ``state``'s raw policy onto the trust region around the
        behaviour policy that collected ``rollout``, on every rollout state.

        After :meth:`update`, its multipliers (``eta_mean`` per state ``(T, num_envs)``,
        ``eta_cov`` a scalar for the state-independent std) are those of the update just
        made: the Lagrange multipliers of the trust region the new policy was kept in.
        Needs ``config.trust_region`` for the bounds.
        """
        tr = self.config.trust_region
        if tr is None:
            raise ValueError("trust_region_projection needs PPOConfig.trust_region")
        mean, std = self.policy(state.actor, state.obs_stats, rollout.obs)
        old_std = rollout.std.reshape(-1, rollout.std.shape[-1])[0]
        return trpl.project(mean, std, rollout.mean, old_std, tr.mean_bound, tr.cov_bound)

    # -- one iteration ----------------------------------------------------------------

    def iteration(self, state: PPOState, reward_params: Params = None,
                  kl_coef: Optional[jax.Array] = None) -> tuple[PPOState, dict]:
        """collect + update (``kl_coef``: as :meth:`update_with_rewards`); metrics include
        the finished episodes' true returns and a ``finite`` flag (all parameters finite)
        so the driver can stop on divergence."""
        state, rollout, ep_stats = self.collect(state)
        state, metrics = self.update(state, rollout, reward_params, kl_coef=kl_coef)
        metrics.update(ep_stats)
        metrics["finite"] = all_finite((state.actor, state.critic))
        return state, metrics


def linear_decay(value: float, iteration: jax.Array, num_iterations: int) -> jax.Array:
    """``value`` decayed linearly to 0 over ``num_iterations`` (0-based ``iteration``): the
    TR-loss penalty schedule (paper Sec. 4.3), large steps late, small ones early."""
    frac = 1.0 - jnp.asarray(iteration, jnp.float32) / num_iterations
    return jnp.float32(value) * jnp.maximum(0.0, frac)


def all_finite(tree) -> jax.Array:
    """True iff every floating leaf of ``tree`` is finite."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)
