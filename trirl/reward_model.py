"""TRIRL's two reward models behind one interface (``TRIRLConfig.reward_model``).

* :class:`FittedModel` ("fitted", paper Sec. 4.2): discriminators on the transition,
  the circular buffer of the k latest with their step sizes, and R_fit absorbing the
  members that leave it (``trirl.reward_buffer``);
* :class:`FeaturesModel` ("features", paper Sec. 5.1): discriminators on the env's
  base features with a reward linear in their encoding, corrected exactly in the linear
  weights (``trirl.feature_reward``).

Both give, in the same units (the learner's reward, i.e. beta times PPO's):

* ``init(key, disc_params) -> (reward, fit_opt_state)``: an empty reward for the
  first discriminator ``disc_params``;
* ``policy_rewards(reward, disc_params, x, etas) -> (rewards, absorbing, cache)``: the
  intermediate reward of Alg. 2 line 24, ``(1 - eps) * corrected + eps * beta * D^(i)``,
  on rollout rows x (N, D) and in the absorbing state; ``cache`` holds what
  ``correct`` may reuse (the fitted model's member logits: the buffer's main cost);
* ``correct(reward, fit_opt_state, disc_params, eta, x, etas, cache, key) ->
  (reward, fit_opt_state, fit_mse, r_agent)``: the reward correction with step
  ``eps / (1 + eta)`` (Alg. 2 lines 19-23), and the corrected reward on x after it;
* ``corrected(reward, disc_params, x)``: the corrected reward of any rows.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp

from trirl import discriminator as disc
from trirl import feature_reward as fr
from trirl import reward_buffer as rb
from trirl.adversarial import DiscInputs
from trirl.config import TRIRLConfig

Params = Any


class FittedModel:
    """The buffer of k discriminators plus R_fit.

    Args:
      config: the run's config (its buffer, beta and eps).
      inputs: the discriminator's rows (the absorbing row for R_fit's regression set).
      batch_size: rollout rows per iteration; with ``episode_length`` it sets how many
        absorbing rows join R_fit's regression set: about one per episode.
    """

    def __init__(self, config: TRIRLConfig, inputs: DiscInputs, batch_size: int,
                 episode_length: int):
        self.cfg, self.inputs = config.buffer, inputs
        self.beta, self.eps = config.beta, config.eps
        self.num_fit_absorbing = max(1, batch_size // episode_length) \
            if inputs.cfg.use_absorbing else 0

    def init(self, key: jax.Array, disc_params: Params) -> tuple[rb.RewardBuffer, Any]:
        buffer = rb.init(self.cfg, key, self.inputs.input_dim)
        return buffer, rb.fit_init_opt_state(self.cfg.fit, buffer.fit_params)

    def corrected(self, buffer: rb.RewardBuffer, disc_params: Params, x: jax.Array) -> jax.Array:
        return rb.corrected_reward(buffer, x, self.beta, self.eps)

    def intermediate(self, buffer: rb.RewardBuffer, disc_params: Params, x: jax.Array,
                     etas: Optional[jax.Array] = None, evaluated=None) -> jax.Array:
        """Alg. 2 line 24 on rows x (N, D). ``evaluated``: the members' and the new
        discriminator's logits on x, ``((k, N), (N,))``, when the caller has them."""
        members, new = evaluated if evaluated is not None else \
            (None, disc.logits(self.cfg.disc, disc_params, x))
        return rb.intermediate_reward(buffer, x, self.beta, self.eps, new, etas, members)

    def absorbing(self, buffer: rb.RewardBuffer, disc_params: Params) -> jax.Array:
        """r(s_a) of the intermediate reward (0 without absorbing-state handling).
        Members keep their stored eta here: no policy acts in s_a."""
        if not self.inputs.cfg.use_absorbing:
            return jnp.zeros((), jnp.float32)
        return self.intermediate(buffer, disc_params, self.inputs.absorbing_row()[None])[0]

    def _fit_rows(self, buffer: rb.RewardBuffer, x: jax.Array, etas: Optional[jax.Array]):
        """R_fit's regression rows: the rollout's rows (N, D) plus about one absorbing row
        per episode, and (retrospective) the members' etas on those rows, (k, N')."""
        etas_fit = None if etas is None else etas.reshape(etas.shape[0], x.shape[0])
        if not self.num_fit_absorbing:
            return x, etas_fit
        n = self.num_fit_absorbing
        x_fit = jnp.concatenate([x, jnp.broadcast_to(self.inputs.absorbing_row(),
                                                     (n, self.inputs.input_dim))])
        if etas_fit is not None:
            etas_fit = jnp.concatenate(
                [etas_fit, jnp.broadcast_to(buffer.etas[:, None], (buffer.etas.shape[0], n))],
                axis=1)
        return x_fit, etas_fit

    def policy_rewards(self, buffer, disc_params, x, etas):
        # The k members are evaluated ONCE per iteration, on the rollout rows plus
        # R_fit's absorbing rows; the policy reward, R_fit's targets and the agent side
        # of reward_gap all reuse these logits (they are the buffer's main cost).
        n = x.shape[0]
        x_fit, etas_fit = self._fit_rows(buffer, x, etas)
        members = rb.member_logits(buffer, x_fit, rb.needed_members(buffer, self.eps, etas_fit)) \
            if self.cfg.capacity else None
        new_logits = disc.logits(self.cfg.disc, disc_params, x_fit)
        members_x = None if members is None else members[:, :n]
        etas_x = None if etas is None else etas.reshape(etas.shape[0], n)
        rewards = self.intermediate(buffer, disc_params, x, etas_x, (members_x, new_logits[:n]))
        cache = (x_fit, etas_fit, members, new_logits)
        return rewards, self.absorbing(buffer, disc_params), cache

    def correct(self, buffer, fit_opt_state, disc_params, eta, x, etas, cache, key):
        x_fit, etas_fit, members, new_logits = cache
        pushed, fit_opt_state, fm = rb.push_and_fit(
            buffer, fit_opt_state, disc_params, eta, x_fit, self.beta, self.eps, key, etas_fit,
            members, new_logits)
        n = x.shape[0]
        after = None if members is None else \
            rb.pushed_logits(buffer, members[:, :n], new_logits[:n])
        r_agent = rb.corrected_reward(pushed, x, self.beta, self.eps, logits=after)
        return pushed, fit_opt_state, fm["fit_mse"], r_agent

    @staticmethod
    def size(buffer: rb.RewardBuffer) -> jax.Array:
        return buffer.count

    @staticmethod
    def learned(buffer: rb.RewardBuffer) -> Params:
        """The parameters the finiteness check covers besides the networks."""
        return buffer.fit_params


class FeaturesModel:
    """A reward linear in the encoding of the env's base features, corrected exactly.

    Args:
      config: the run's config (beta, eps, the discriminator that encodes).
      inputs: the discriminator's rows (base features; the absorbing row).
    """

    def __init__(self, config: TRIRLConfig, inputs: DiscInputs):
        self.disc_cfg, self.inputs = config.discriminator, inputs
        self.beta, self.eps = config.beta, config.eps

    def init(self, key: jax.Array, disc_params: Params) -> tuple[fr.LinearReward, tuple]:
        return fr.init(fr.head(disc_params)[0].shape[0]), ()  # the encoding's width

    def corrected(self, reward: fr.LinearReward, disc_params: Params, x: jax.Array) -> jax.Array:
        return fr.corrected_reward(reward, fr.encode(self.disc_cfg, disc_params, x))

    def intermediate(self, reward: fr.LinearReward, disc_params: Params, x: jax.Array,
                     etas=None) -> jax.Array:
        z = fr.encode(self.disc_cfg, disc_params, x)
        return fr.intermediate_reward(reward, disc_params, z, self.beta, self.eps)

    def absorbing(self, reward: fr.LinearReward, disc_params: Params) -> jax.Array:
        if not self.inputs.cfg.use_absorbing:
            return jnp.zeros((), jnp.float32)
        return self.intermediate(reward, disc_params, self.inputs.absorbing_row()[None])[0]

    def policy_rewards(self, reward, disc_params, x, etas):
        return self.intermediate(reward, disc_params, x), self.absorbing(reward, disc_params), ()

    def correct(self, reward, fit_opt_state, disc_params, eta, x, etas, cache, key):
        reward = fr.update(reward, disc_params, eta, self.beta, self.eps)
        return reward, fit_opt_state, jnp.float32(0.0), self.corrected(reward, disc_params, x)

    @staticmethod
    def size(reward: fr.LinearReward) -> jax.Array:
        return jnp.int32(0)

    @staticmethod
    def learned(reward: fr.LinearReward) -> Params:
        return reward
