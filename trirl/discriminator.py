"""Density-ratio discriminator: logits D(x) ~= log(rho_E(x) / rho_pi(x)) (paper Sec. 4.1).

A binary classifier trained with logistic loss (expert label 1, agent label 0) on
balanced batches has, at its optimum, logits equal to the log density ratio
(Menon & Ong, 2016). TRIRL uses the raw logits in its function-space reward update
(Algorithm 1 line 5), so nothing here squashes them.

Input convention (absorbing states, paper App. C.4 following Kostrikov et al. 2019, DAC)
------------------------------------------------------------------------------------
Every state slot of the input is ``[state, indicator]``:

* an ordinary state ``s`` is written as ``[s, 0]``;
* the absorbing state ``s_a`` is written as ``[0, ..., 0, 1]``.

``disc_input`` takes two flags, both about *states*:

* ``absorbing``: the current state ``obs`` is ``s_a``. Its action is irrelevant (every
  action in ``s_a`` leads back to ``s_a``), so the action part is zeroed too, and
  ``s_a`` only transitions to itself, so the next state is ``s_a`` as well.
* ``next_absorbing``: the transition ``(s, a, s')`` entered a terminal state, so its
  successor is ``s_a`` -- the ``s'`` slot is ``[0, ..., 0, 1]`` whatever ``next_obs``
  holds (for "ss"/"sas" inputs; "sa" has no ``s'`` slot). Pass the environment's
  ``terminated`` flag here (not ``truncated``: time-outs are not absorbing).

The absorbing transition ``(s_a, ., s_a)`` is therefore the same vector for every
input kind (``absorbing_input``), and r(s_a) is the model evaluated there. Callers
add such samples to both the expert and agent sets (one per terminal transition, as in
DAC) so the classifier learns r(s_a). Observations must already be normalised: zero is
then the mean observation, and the indicator alone tells it apart from ``s_a``.

With ``use_absorbing=False`` inputs are plain concatenations and the flags are ignored.

Gradient penalty
----------------
Paper App. C.5 gives only the coefficient (0.005). The authors' code
(santhosh-gnse/trust-region-irl, ``trirl_trpl.py``) adds to ``BCE_E + BCE_pi`` the
two-sided penalty ``lambda * (||grad D(x_hat)||_2 - 1)^2`` at ``x_hat = alpha x_E +
(1 - alpha) x_pi`` with one *fixed* ``alpha`` (their ``gp_alpha``). We keep the same
loss scale and penalty form (so 0.005 means the same thing) but draw ``alpha ~ U(0, 1)``
per sample as in WGAN-GP (Gulrajani et al. 2017) and DAC, which regularises the whole
segment between the paired samples instead of one point on it; set ``gp_alpha`` to
reproduce the fixed interpolation. The gradient is taken w.r.t. the full input vector
``x`` (indicator included), because the loss only sees ``x`` and the indicator is a
genuine network input.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import optax

from trirl.networks import ScalarMLP

Params = Any

INPUT_KINDS = ("sa", "ss", "sas")
LOSSES = ("logistic", "least_squares")
ABSORBING_MASSES = ("one", "horizon")


@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig:
    """Hyperparameters of the discriminator (defaults: paper App. C.5).

    Attributes:
      hidden: hidden layer widths (paper: three layers of 256, tanh).
      activation: hidden activation, a key of ``trirl.networks.ACTIVATIONS``.
      inputs: "sa" = (s, a); "ss" = (s, s') for observation-only demonstrations
        (paper Sec. 4.4); "sas" = (s, a, s').
      learning_rate: Adam step size (paper range 8e-5 .. 3e-4).
      grad_penalty: coefficient of the gradient penalty (paper: 0.005).
      gp_alpha: fixed interpolation weight for the penalty's samples; ``None`` draws
        ``alpha ~ U(0, 1)`` per sample (see module docstring).
      num_steps: Adam steps per call of ``train`` (paper: 20 - 30 per iteration).
      minibatch_size: samples drawn from *each* of the expert and agent sets per step.
      use_absorbing: add the absorbing-state indicator to each state slot (App. C.4).
      absorbing_mass: how much of each pool a terminal transition's absorbing state
        takes, one of :data:`ABSORBING_MASSES`. "one" (DAC, the paper's App. C.4): one
        sample. "horizon": the steps left to the episode's time limit, so each pool is
        the occupancy of whole episodes of ``episode_length`` steps, the time after a
        fall spent in s_a. With "one" a policy that falls at step 50 of 1000 shows
        the discriminator 1 absorbing sample against 50 living ones where its
        occupancy is 95 % absorbing, so the absorbing state's reward is learned slowly
        (docs/benchmarks.md, "Ant -> Ant Disabled": Ant's preset uses "horizon").
      max_grad_norm: optional global-norm gradient clipping (``None``: off).
      loss: "logistic" (balanced BCE: logits estimate log rho_E / rho_pi; TRIRL, GAIL,
        AIRL) or "least_squares" (LSGAN targets +1 expert / -1 agent; AMP, Peng et al.
        2021, paper App. C.1).
    """

    hidden: tuple[int, ...] = (256, 256, 256)
    activation: str = "tanh"
    inputs: str = "sa"
    learning_rate: float = 3e-4
    grad_penalty: float = 0.005
    gp_alpha: Optional[float] = None
    num_steps: int = 20
    minibatch_size: int = 512
    use_absorbing: bool = True
    max_grad_norm: Optional[float] = None
    loss: str = "logistic"
    absorbing_mass: str = "one"

    def __post_init__(self):
        if self.absorbing_mass not in ABSORBING_MASSES:
            raise ValueError(f"absorbing_mass must be one of {ABSORBING_MASSES}, got "
                             f"{self.absorbing_mass!r}")
        if self.inputs not in INPUT_KINDS:
            raise ValueError(f"inputs must be one of {INPUT_KINDS}, got {self.inputs!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        # A list would make the config unhashable, and it is a jit static argument.
        object.__setattr__(self, "hidden", tuple(self.hidden))


# ----------------------------------------------------------------------------- inputs


def input_dim(cfg: DiscriminatorConfig, obs_dim: int, act_dim: int) -> int:
    """Width of the vector built by ``disc_input``."""
    state = obs_dim + int(cfg.use_absorbing)
    return {"sa": state + act_dim, "ss": 2 * state, "sas": 2 * state + act_dim}[cfg.inputs]


def _flag(flag, like: jax.Array) -> jax.Array:
    """A state flag as a boolean array of ``like``'s batch shape (``None``: all False)."""
    if flag is None:
        return jnp.zeros(like.shape[:-1], bool)
    return jnp.broadcast_to(jnp.asarray(flag).astype(bool), like.shape[:-1])


def _state_slot(cfg: DiscriminatorConfig, s: jax.Array, is_abs: jax.Array) -> list[jax.Array]:
    if not cfg.use_absorbing:
        return [s]
    # where, not multiplication: a terminal observation may hold inf/NaN garbage.
    return [jnp.where(is_abs[..., None], 0.0, s), is_abs[..., None].astype(s.dtype)]


def disc_input(cfg: DiscriminatorConfig, obs: jax.Array, action: Optional[jax.Array],
               next_obs: Optional[jax.Array], absorbing=None, next_absorbing=None) -> jax.Array:
    """Build the discriminator input for a batch of transitions.

    Args:
      cfg: discriminator config (``inputs`` picks the parts).
      obs: normalised states, shape (..., obs_dim).
      action: actions (..., act_dim); unused (may be None) for "ss".
      next_obs: normalised next states (..., obs_dim); unused (may be None) for "sa".
      absorbing: (...) bool, ``obs`` is the absorbing state s_a (None: no).
      next_absorbing: (...) bool, the transition entered a terminal state so its next
        state is s_a (None: no). Implied when ``absorbing`` is set.

    Returns:
      (..., input_dim(cfg, obs_dim, act_dim)) array; layout "sa": [s, i, a],
      "ss": [s, i, s', i'], "sas": [s, i, a, s', i'] (no ``i``/``i'`` without
      ``use_absorbing``).
    """
    is_abs = _flag(absorbing, obs)
    parts = _state_slot(cfg, obs, is_abs)
    if cfg.inputs in ("sa", "sas"):
        if cfg.use_absorbing:
            # s_a's action has no effect on anything; zero it so r(s_a) is one number.
            action = jnp.where(is_abs[..., None], 0.0, action)
        parts.append(action)
    if cfg.inputs in ("ss", "sas"):
        next_abs = is_abs | _flag(next_absorbing, next_obs)
        parts += _state_slot(cfg, next_obs, next_abs)
    return jnp.concatenate(parts, axis=-1)


def absorbing_input(cfg: DiscriminatorConfig, obs_dim: int, act_dim: int) -> jax.Array:
    """The input of the absorbing transition (s_a, 0, s_a), shape (input_dim,).

    Evaluating a discriminator (or a reward buffer) here gives r(s_a), used for the
    absorbing-state value V(s_a) = gamma / (1 - gamma) * r(s_a) (paper App. C.4).
    """
    if not cfg.use_absorbing:
        raise ValueError("absorbing_input needs use_absorbing=True")
    return disc_input(cfg, jnp.zeros(obs_dim), jnp.zeros(act_dim), jnp.zeros(obs_dim),
                      absorbing=True)


# ----------------------------------------------------------------------------- model


def _module(cfg: DiscriminatorConfig) -> ScalarMLP:
    return ScalarMLP(cfg.hidden, cfg.activation)


@functools.partial(jax.jit, static_argnums=(0, 2))  # eager orthogonal init is slow
def init(cfg: DiscriminatorConfig, key: jax.Array, input_dim: int) -> Params:
    """Fresh discriminator parameters for inputs of width ``input_dim``."""
    return _module(cfg).init(key, jnp.zeros((1, input_dim)))


def logits(cfg: DiscriminatorConfig, params: Params, x: jax.Array) -> jax.Array:
    """Logits (estimated log rho_E / rho_pi) for inputs ``x`` (..., D) -> (...)."""
    return _module(cfg).apply(params, x)


def optimizer(cfg: DiscriminatorConfig) -> optax.GradientTransformation:
    """Adam, optionally behind global-norm clipping."""
    adam = optax.adam(cfg.learning_rate)
    if cfg.max_grad_norm is None:
        return adam
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), adam)


def init_opt_state(cfg: DiscriminatorConfig, params: Params) -> optax.OptState:
    return optimizer(cfg).init(params)


# ----------------------------------------------------------------------------- loss


def gradient_penalty(cfg: DiscriminatorConfig, params: Params, expert_x: jax.Array,
                     agent_x: jax.Array, key: jax.Array, penalty_fn: Optional[Callable] = None
                     ) -> jax.Array:
    """Mean over pairs of (||grad_x D(x_hat)||_2 - 1)^2, x_hat between paired samples.

    ``penalty_fn(params, x)`` is the function whose input gradient is penalised
    [default: the logits]; AIRL passes its learned f only, so the policy log-density
    column of its inputs (not a function of the parameters) does not enter the norm."""
    n = expert_x.shape[0]
    if cfg.gp_alpha is None:
        alpha = jax.random.uniform(key, (n, 1), expert_x.dtype)
    else:
        alpha = jnp.full((n, 1), cfg.gp_alpha, expert_x.dtype)
    x_hat = alpha * expert_x + (1.0 - alpha) * agent_x
    # Rows do not interact, so the gradient of the sum is the per-sample gradient.
    fn = penalty_fn or functools.partial(logits, cfg)
    grads = jax.grad(lambda z: jnp.sum(fn(params, z)))(x_hat)
    # The tiny offset keeps d||g||/dg finite where g = 0.
    norms = jnp.sqrt(jnp.sum(jnp.square(grads), axis=-1) + 1e-12)
    return jnp.mean(jnp.square(norms - 1.0))


def data_loss(cfg: DiscriminatorConfig, l_e: jax.Array, l_a: jax.Array) -> jax.Array:
    """The classification term on expert outputs ``l_e`` and agent outputs ``l_a``.

    * logistic: ``E_E[softplus(-D)] + E_pi[softplus(D)]``, the binary cross-entropies of
      expert (label 1) and agent (label 0) samples;
    * least_squares: ``E_E[(D - 1)^2] + E_pi[(D + 1)^2]`` (AMP's LSGAN targets).
    """
    if cfg.loss == "least_squares":
        return jnp.mean(jnp.square(l_e - 1.0)) + jnp.mean(jnp.square(l_a + 1.0))
    return jnp.mean(jax.nn.softplus(-l_e)) + jnp.mean(jax.nn.softplus(l_a))


def loss(cfg: DiscriminatorConfig, params: Params, expert_x: jax.Array, agent_x: jax.Array,
         key: jax.Array, logit_fn: Optional[Callable] = None,
         penalty_fn: Optional[Callable] = None) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Balanced classification loss (``data_loss``) plus gradient penalty.

    With the default logistic loss ``L = E_E[softplus(-D)] + E_pi[softplus(D)] +
    grad_penalty * GP``. Both batches must have the same size (balanced classes: the
    optimal logit is then exactly log rho_E / rho_pi).

    ``logit_fn(params, x)`` replaces the network's logits (AIRL's structured
    discriminator); ``penalty_fn`` is what the gradient penalty differentiates
    [default: ``logit_fn``].

    Returns:
      (loss, aux) with aux keys ``data`` (the classification term), ``bce`` (the same,
      logistic loss only), ``gp``, ``expert_acc``, ``agent_acc``. The accuracies
      threshold at 0, the decision boundary of both losses.
    """
    if expert_x.shape != agent_x.shape:
        raise ValueError(f"unbalanced batches {expert_x.shape} vs {agent_x.shape}")
    logit_fn = logit_fn or functools.partial(logits, cfg)
    l_e = logit_fn(params, expert_x)
    l_a = logit_fn(params, agent_x)
    data = data_loss(cfg, l_e, l_a)
    gp = gradient_penalty(cfg, params, expert_x, agent_x, key, penalty_fn or logit_fn)
    aux = {
        "data": data,
        "gp": gp,
        "expert_acc": jnp.mean((l_e > 0).astype(jnp.float32)),
        "agent_acc": jnp.mean((l_a < 0).astype(jnp.float32)),
    }
    if cfg.loss == "logistic":
        aux["bce"] = data
    return data + cfg.grad_penalty * gp, aux


@functools.partial(jax.jit, static_argnums=0, static_argnames=("logit_fn", "penalty_fn"))
def train(cfg: DiscriminatorConfig, params: Params, opt_state: optax.OptState,
          expert_x: jax.Array, agent_x: jax.Array, key: jax.Array,
          expert_count: Optional[jax.Array] = None, agent_count: Optional[jax.Array] = None,
          logit_fn: Optional[Callable] = None, penalty_fn: Optional[Callable] = None
          ) -> tuple[Params, optax.OptState, dict[str, jax.Array]]:
    """``cfg.num_steps`` Adam steps on minibatches drawn with replacement.

    Each step draws ``cfg.minibatch_size`` random rows from each of ``expert_x`` (N_E, D)
    and ``agent_x`` (N_A, D); the sets may differ in size. ``expert_count`` /
    ``agent_count`` (traced ints, default all rows) restrict the draws to the first rows:
    a learner whose number of valid rows changes between calls (e.g. one absorbing
    sample per terminal transition) keeps fixed array shapes that way. A count may
    exceed the rows: draws past the last row take the last row (a pool ending in copies
    of one row, the absorbing state, so weighs it by the count).

    ``logit_fn`` / ``penalty_fn``: passed to :func:`loss` (static: hashable callables).

    Returns:
      (params, opt_state, metrics) with metrics = ``loss`` and the aux of ``loss``,
      averaged over the steps.
    """
    tx = optimizer(cfg)
    mb = cfg.minibatch_size
    n_e = expert_x.shape[0] if expert_count is None else expert_count
    n_a = agent_x.shape[0] if agent_count is None else agent_count

    def step(carry, step_key):
        params, opt_state = carry
        k_e, k_a, k_gp = jax.random.split(step_key, 3)
        xe = expert_x[jnp.minimum(jax.random.randint(k_e, (mb,), 0, n_e), expert_x.shape[0] - 1)]
        xa = agent_x[jnp.minimum(jax.random.randint(k_a, (mb,), 0, n_a), agent_x.shape[0] - 1)]
        (value, aux), grads = jax.value_and_grad(loss, argnums=1, has_aux=True)(
            cfg, params, xe, xa, k_gp, logit_fn, penalty_fn)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), {"loss": value, **aux}

    (params, opt_state), metrics = jax.lax.scan(
        step, (params, opt_state), jax.random.split(key, cfg.num_steps))
    return params, opt_state, jax.tree.map(jnp.mean, metrics)
