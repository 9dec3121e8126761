"""A brax ``Env`` around a trirl env, so brax's PPO trains on the very same MJX model.

Only for the peer benchmark (``benchmarks/brax_peer.py``); needs brax, which lives in
its own virtualenv (see ``benchmarks/README.md``, section "Peer: brax").

What maps to what
-----------------
* ``pipeline_state`` is the whole trirl :class:`~trirl.envs.EnvState` (physics data,
  step counter, PRNG key, metrics). brax's ``AutoResetWrapper`` swaps it wholesale for
  the env's first state when an episode ends, so nothing trirl-side leaks across
  episodes.
* ``obs``, ``reward`` and ``metrics`` are trirl's (``metrics`` keys are the same at
  reset and step, as brax's ``EpisodeWrapper`` requires).
* ``done`` is trirl's ``absorbing`` flag **only** (goal reached = true termination).
  trirl's own ``truncated`` flag is ignored here on purpose: the time limit is applied
  once, by brax's ``EpisodeWrapper`` that ``ppo.train`` puts around this env
  (``envs.training.wrap(env, episode_length, action_repeat)``). That wrapper sets
  ``done = 1`` when ``steps >= episode_length`` and
  ``info['truncation'] = (steps >= episode_length) * (1 - absorbing)``; brax's PPO
  loss then uses ``termination = done * (1 - truncation)``. So:

    - goal reached at step t < 100: termination (no bootstrap), truncation 0;
    - step 100 without the goal: truncation (brax gives that last transition zero
      advantage before normalisation and its own value as target, and bootstraps the
      earlier steps from V(s_100); no termination is assumed);
    - goal reached exactly at step 100: termination only, the same precedence as
      trirl ("a step never sets both"; absorbing wins).

  Nothing is counted twice: if the adapter also reported ``truncated`` in ``done``,
  the step-100 transition would look like a termination to ``EpisodeWrapper``
  (``truncation = 1 - done = 0``) and be trained as one, a real bias.
  Pass ``episode_length = trirl_env.episode_length`` (``brax_peer.run_brax`` does) so
  the horizon equals trirl's.

Differences from trirl's own training loop that are brax's, not the adapter's:
brax's ``AutoResetWrapper`` restarts every env slot from *the same* first state it drew
at ``reset`` (trirl's ``AutoReset`` draws a fresh pool each rollout), so reset noise is
sampled once per slot. For point_maze (deterministic dynamics, 1 cm reset noise)
this only reduces start-state diversity to ``num_envs`` fixed starts.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from brax.envs.base import Env as BraxEnv
from brax.envs.base import State as BraxState

from trirl import envs as trirl_envs


class TrirlBraxEnv(BraxEnv):
    """brax ``Env`` view of ``trirl.envs.make(name, **overrides)`` (unbatched, like
    every brax env; ``ppo.train`` vmaps and wraps it)."""

    def __init__(self, name_or_env, **overrides):
        if isinstance(name_or_env, str):
            self.trirl_env = trirl_envs.make(name_or_env, **overrides)
        else:
            if overrides:
                raise ValueError("overrides only apply when an env name is given")
            self.trirl_env = name_or_env

    # -- brax Env API ---------------------------------------------------------------------

    def reset(self, rng: jax.Array) -> BraxState:
        s = self.trirl_env.reset(rng)
        return BraxState(pipeline_state=s, obs=s.obs, reward=jnp.zeros((), jnp.float32),
                         done=jnp.zeros((), jnp.float32), metrics=dict(s.metrics), info={})

    def step(self, state: BraxState, action: jax.Array) -> BraxState:
        s = self.trirl_env.step(state.pipeline_state, action)
        # Keep keys that wrappers added at reset (brax's EvalWrapper adds 'reward' and
        # needs the same dict structure back), overwrite trirl's own.
        metrics = {**state.metrics, **s.metrics}
        # done = termination only; the time limit is EpisodeWrapper's (see module doc).
        return state.replace(pipeline_state=s, obs=s.obs, reward=s.reward,
                             done=s.absorbing.astype(jnp.float32), metrics=metrics)

    @property
    def observation_size(self) -> int:
        return int(self.trirl_env.observation_size)

    @property
    def action_size(self) -> int:
        return int(self.trirl_env.action_size)

    @property
    def backend(self) -> str:
        return "mjx"

    @property
    def episode_length(self) -> int:
        """trirl's horizon; hand it to ``ppo.train(episode_length=...)``."""
        return int(self.trirl_env.episode_length)
