"""Circular buffer of discriminators with a fitted tail reward (paper Sec. 4.2, Alg. 2).

The TRIRL reward after ``m`` iterations is the recursion (Alg. 1 line 8)

    r^(j+1) = (1 - s_j) r^(j) + s_j * beta * D^(j),   s_j = eps / (1 + eta_j),   r^(0) = 0,

where ``eta_j`` is the trust-region multiplier of the policy update that was made on
the intermediate reward containing ``D^(j)``. The buffer keeps the ``k`` newest
discriminators as ONE parameter pytree with a leading axis ``k`` (evaluated with one
``jax.vmap``; on a CPU in pairs, see ``member_logits``) plus a parametric reward
``R_fit`` standing in for everything older:

    corrected reward = recursion started at R_fit, applied over the members
                       oldest -> newest                        (Alg. 2 lines 19-23)
    intermediate     = (1 - eps) * corrected + eps * beta * D_new     (line 24)

Order of operations per iteration (``D_new`` is *not* yet in the buffer):

  1. train ``D_new``; policy update on ``intermediate_reward(buffer, x, ..., D_new(x))``
     which yields ``eta_new``;
  2. ``push_and_fit(buffer, ..., D_new params, eta_new, x, ...)`` (or ``fit_targets`` +
     ``fit_reward`` + ``push``), so every member is stored together with its final eta.

R_fit / eviction convention
---------------------------
Invariant: with members ``D^(m-c) .. D^(m-1)`` in the buffer, R_fit ~= r^(m-c), the
reward *before* the oldest member was applied, so ``corrected_reward`` ~= r^(m). A push
into a full buffer evicts its oldest member ``D_old`` (step ``s_old``); to keep the
invariant, the new R_fit must regress

    target(x) = (1 - s_old) * R_fit_old(x) + s_old * beta * D_old(x)         (``fit_targets``)

i.e. the recursion truncated right after the evicted member -- NOT the full corrected
reward: the remaining members would then be applied on top of a reward that already
contains them, counting each twice. (R_fit here is the reward it stands for; its network
is trained on ``target / beta`` and scaled back by beta, see ``_base``.) Alg. 2 instead regresses the full corrected reward
every iteration (line 25) and keeps one R_fit per slot (line 2) to serve as the base k
iterations later; that is the same invariant provided each stored fit is paired with
the window starting right after the newest member it contains (the paper's indices are
loose on this). We keep a single R_fit and fit it at eviction time, which (a) stores one
model instead of k, (b) uses the evicted member's latest eta, which matters for
retrospective etas that are revised in hindsight, and (c) fits on the current rollout,
where the reward is evaluated now. The regression error is damped by prod(1 - s_j) over
the k newer members (paper Sec. 4.2). With ``k = 0`` the member that leaves is the new
one itself: the "project every iteration" variant. R_fit is only trained where ``x``
is, so include ``absorbing_input`` rows in ``x`` if r(s_a) is read from the buffer.

(The authors' code, santhosh-gnse/trust-region-irl, differs again: its recursion always
starts at 0 over the window, and with its reward approximator on it regresses R_fit on
that window-only reward and trains the policy on R_fit's prediction.)

Ablations (all from ``RewardBufferConfig``):
  * ``use_fit=False``: evicted members are dropped, the recursion starts at 0 (this is
    also what the authors' code does when its reward approximator is off);
  * ``capacity=0``: the corrected reward is R_fit alone (or 0 without fitting);
  * ``use_eta=False``: every step is ``eps`` (uncorrected rewards).

Negligible weights (``negligible_weight`` = tau)
------------------------------------------------
Unrolled, the corrected reward is ``w_fit * R_fit + sum_j w_j * beta * D_j`` with
``w_j = s_j * prod_{l newer than j} (1 - s_l)`` and ``w_fit = prod_{all l} (1 - s_l)``.
At the etas TRIRL meets (s ~ 0.2-0.3 on HalfCheetah), ``w_fit`` is ~1e-13 and the
oldest half of a k = 100 window together weighs < 1e-7, below float32's resolution of
the reward, yet evaluating them is half the buffer's cost. So, with tau > 0:

* the oldest members whose summed weight ``T_j = sum_{i <= j} w_i`` (``= prod_{l > j}
  (1 - s_l) - w_fit``, telescoped) is below tau get logit 0 instead of an evaluation:
  the reward moves by at most ``tau * max |beta D_j|`` over them. A member's weight only
  shrinks as newer ones arrive, so once skipped it stays negligible;
* R_fit's eviction regression is skipped while R_fit's weight after the push is below
  tau. R_fit then goes stale, but its error E enters the reward as ``w_fit * E``: below
  ``tau * 2 max |r|`` while skipped. Fitting resumes as soon as ``w_fit >= tau``, which a
  push can raise by at most ``1 / (1 - eps)``; from then on each fit multiplies E by
  ``(1 - s_old)`` (plus its own regression error) while ``w_fit`` changes by
  ``(1 - s_new) / (1 - s_old)``, so ``w_fit * E`` never exceeds ``tau / (1 - eps) * 2 max |r|``.

Both are skipped for real (``lax.while_loop``s, which stay loops under a vmap over
seeds), not masked: at these etas k = 100 then evaluates ~53 members and never fits
R_fit, and costs less than k = 25, whose R_fit still weighs ~1e-3 (docs/benchmarks.md).

Eta layout: ``buffer.etas`` (k,) and the optional ``etas`` override of the evaluation
functions ((k,) or per-sample (k, N), retrospective-eta mode) are indexed by *slot*,
like the leading axis of ``buffer.disc_params``; ``slot_order`` maps chronological
positions to slots. Negative etas are clipped to 0 (eta is a Lagrange multiplier).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Optional

import jax
import jax.numpy as jnp
import optax
from flax import struct

from trirl import discriminator as disc
from trirl.errors import TrirlError
from trirl.networks import ScalarMLP

Params = Any


@dataclasses.dataclass(frozen=True)
class RewardFitConfig:
    """R_fit regression (not specified in the paper; the authors' code uses Adam with
    lr ~6e-5 for 30 epochs of 512-sample minibatches per fit).

    Attributes:
      hidden, activation: the ``ScalarMLP`` of R_fit (same inputs as the discriminator).
      learning_rate: Adam step size.
      num_steps: Adam steps per call of ``fit_reward``.
      minibatch_size: rows drawn (with replacement) per step.
    """

    hidden: tuple[int, ...] = (256, 256, 256)
    activation: str = "tanh"
    learning_rate: float = 1e-4
    num_steps: int = 100
    minibatch_size: int = 512

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(self.hidden))


@dataclasses.dataclass(frozen=True)
class RewardBufferConfig:
    """Static structure of a ``RewardBuffer``.

    Attributes:
      capacity: k, number of discriminators kept (paper Table 7: 80 - 120).
      use_fit: represent evicted members by R_fit (False: drop them, R_fit = 0).
      use_eta: correct steps to eps / (1 + eta) (False: plain eps, uncorrected).
      disc: config of the member discriminators.
      fit: config of R_fit.
      negligible_weight: members whose weight in the corrected reward, summed with
        every older member's, is below this are not evaluated, and R_fit is not refitted
        while its own weight is below it (see "Negligible weights" in the module
        docstring); 0 evaluates and fits everything.
    """

    capacity: int = 100
    use_fit: bool = True
    use_eta: bool = True
    disc: disc.DiscriminatorConfig = dataclasses.field(default_factory=disc.DiscriminatorConfig)
    fit: RewardFitConfig = dataclasses.field(default_factory=RewardFitConfig)
    negligible_weight: float = 0.0

    def __post_init__(self):
        if self.capacity < 0:
            raise TrirlError(f"TRIRL capacity={self.capacity} must be >= 0 (paper: 80 - 120)")
        if not 0.0 <= self.negligible_weight < 1.0:
            raise TrirlError(f"TRIRL negligible_weight={self.negligible_weight} must be in "
                             "[0, 1) (0: evaluate every member; default 1e-7)")


@struct.dataclass
class RewardBuffer:
    """The state of Alg. 2's buffer; a pytree, so it passes through jit and scan.

    Attributes:
      disc_params: k discriminators stacked along a leading axis (slot order).
      etas: (k,) trust-region multiplier of each slot.
      count: () int32, number of valid members (<= k).
      head: () int32, slot the next push writes; when full it holds the oldest member.
      fit_params: R_fit parameters.
      fit_active: () bool, R_fit represents evicted members (False: base is 0).
      cfg: static ``RewardBufferConfig``.
    """

    disc_params: Params
    etas: jax.Array
    count: jax.Array
    head: jax.Array
    fit_params: Params
    fit_active: jax.Array
    cfg: RewardBufferConfig = struct.field(pytree_node=False)


# ----------------------------------------------------------------------------- R_fit


def _fit_module(cfg: RewardFitConfig) -> ScalarMLP:
    return ScalarMLP(cfg.hidden, cfg.activation)


@functools.partial(jax.jit, static_argnums=(0, 2))  # eager orthogonal init is slow
def fit_init(cfg: RewardFitConfig, key: jax.Array, input_dim: int) -> Params:
    """Fresh R_fit parameters for inputs of width ``input_dim``."""
    return _fit_module(cfg).init(key, jnp.zeros((1, input_dim)))


def fit_apply(cfg: RewardFitConfig, params: Params, x: jax.Array) -> jax.Array:
    """R_fit(x) for inputs (..., D) -> (...)."""
    return _fit_module(cfg).apply(params, x)


def fit_optimizer(cfg: RewardFitConfig) -> optax.GradientTransformation:
    return optax.adam(cfg.learning_rate)


def fit_init_opt_state(cfg: RewardFitConfig, params: Params) -> optax.OptState:
    return fit_optimizer(cfg).init(params)


@functools.partial(jax.jit, static_argnums=0)
def fit_reward(cfg: RewardFitConfig, fit_params: Params, opt_state: optax.OptState,
               x: jax.Array, targets: jax.Array, key: jax.Array, active=True
               ) -> tuple[Params, optax.OptState, dict[str, jax.Array]]:
    """Regress R_fit(x) onto ``targets`` (N,) by MSE: ``cfg.num_steps`` Adam steps.

    Warm-starts from ``fit_params``: consecutive targets differ by one damped member,
    so the previous fit is already close. ``active`` (a traced bool): False runs no step
    at all -- a ``while_loop``, not a ``cond``, because under a vmap over seeds a cond
    becomes a select that computes both branches.

    Returns:
      (params, opt_state, metrics) with ``fit_mse`` averaged over the steps (NaN if
      none ran).
    """
    tx = fit_optimizer(cfg)
    targets = jax.lax.stop_gradient(targets)

    def mse(params, xb, yb):
        return jnp.mean(jnp.square(fit_apply(cfg, params, xb) - yb))

    def step(carry, step_key):
        params, opt_state = carry
        idx = jax.random.randint(step_key, (cfg.minibatch_size,), 0, x.shape[0])
        value, grads = jax.value_and_grad(mse)(params, x[idx], targets[idx])
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), value

    def fit(carry):
        _, params, opt_state, _ = carry
        (params, opt_state), losses = jax.lax.scan(
            step, (params, opt_state), jax.random.split(key, cfg.num_steps))
        return jnp.int32(1), params, opt_state, jnp.mean(losses)

    # A loop run once or never: the scan of steps inside is the fit itself.
    _, fit_params, opt_state, mse_mean = jax.lax.while_loop(
        lambda carry: jnp.logical_and(active, carry[0] == 0), fit,
        (jnp.int32(0), fit_params, opt_state, jnp.float32(jnp.nan)))
    return fit_params, opt_state, {"fit_mse": mse_mean}


# ----------------------------------------------------------------------------- buffer


def init(cfg: RewardBufferConfig, key: jax.Array, input_dim: int) -> RewardBuffer:
    """An empty buffer for inputs of width ``input_dim``.

    Empty slots hold zeros; they are masked out, never evaluated into the reward.
    """
    # Only the shapes of a discriminator are needed: trace, don't run, its init.
    template = jax.eval_shape(lambda: disc.init(cfg.disc, key, input_dim))
    k = cfg.capacity
    return RewardBuffer(
        disc_params=jax.tree.map(lambda p: jnp.zeros((k,) + p.shape, p.dtype), template),
        etas=jnp.zeros((k,), jnp.float32),
        count=jnp.zeros((), jnp.int32),
        head=jnp.zeros((), jnp.int32),
        fit_params=fit_init(cfg.fit, key, input_dim),
        fit_active=jnp.zeros((), bool),
        cfg=cfg,
    )


def slot_order(buffer: RewardBuffer) -> tuple[jax.Array, jax.Array]:
    """Slots in chronological order and their validity, each (k,).

    Position j (0 = oldest) lives in slot ``(head - count + j) mod k`` and is valid
    iff ``j < count``; positions past ``count`` are empty slots.
    """
    k = buffer.cfg.capacity
    j = jnp.arange(k)
    return (buffer.head - buffer.count + j) % max(k, 1), j < buffer.count


def will_evict(buffer: RewardBuffer) -> jax.Array:
    """Whether the next push drops a member out of the window (buffer full)."""
    return buffer.count >= buffer.cfg.capacity


CPU_MEMBER_CHUNK = 2  # members evaluated together on a CPU (``member_logits``)


def _member_chunk() -> Optional[int]:
    """How many members ``member_logits`` vmaps at once: all of them on an accelerator;
    on a CPU, ``CPU_MEMBER_CHUNK`` at a time in a ``lax.map``. On a CPU the vmapped
    hidden activations of all k members ((k, N, 256) floats: 0.26 GB for k = 100 on a
    2,560-row rollout) stream through memory instead of staying in cache, and that costs
    more than the arithmetic: about 1.3x slower than pairs (``benchmarks/member_eval.py``)."""
    return CPU_MEMBER_CHUNK if jax.default_backend() == "cpu" else None


def _log_keeps(buffer: RewardBuffer, eps: float, etas=None) -> tuple[jax.Array, jax.Array]:
    """log(1 - s_j) of the members in chronological order ((k,) or (k, N) per sample;
    0 for empty positions) and their validity (k,)."""
    steps = _step(buffer.cfg, eps, buffer.etas if etas is None else etas)
    slots, valid = slot_order(buffer)
    steps = steps[slots]
    mask = valid.reshape(valid.shape + (1,) * (steps.ndim - 1))
    return jnp.where(mask, jnp.log1p(-steps), 0.0), valid


def needed_members(buffer: RewardBuffer, eps: float, etas=None) -> Optional[jax.Array]:
    """(k,) bool in slot order: the members whose summed weight with every older member,
    ``T_j = prod_{l > j} (1 - s_l) * (1 - prod_{i <= j} (1 - s_i))`` (module docstring),
    reaches ``negligible_weight`` -- a suffix of the newest; None when that is 0 (every
    member). Per-sample etas (k, N): a member is needed if it is on any row. Sums of
    logs (log1p / expm1) keep tiny steps exact, where 1 - prod would cancel; no sum is
    ever subtracted from another, so a step of 1 (log 0 = -inf) gives 0, not NaN."""
    tau = buffer.cfg.negligible_weight
    if tau == 0.0 or buffer.cfg.capacity == 0:
        return None
    log_keep, valid = _log_keeps(buffer, eps, etas)
    older_or_self = jnp.cumsum(log_keep, axis=0)
    self_or_newer = jnp.flip(jnp.cumsum(jnp.flip(log_keep, 0), axis=0), 0)
    newer = jnp.concatenate([self_or_newer[1:], jnp.zeros_like(self_or_newer[:1])])
    tail = jnp.exp(newer) * -jnp.expm1(older_or_self)
    if tail.ndim > 1:
        tail = jnp.max(tail, axis=tuple(range(1, tail.ndim)))
    needed = valid & (tail >= tau)
    slots, _ = slot_order(buffer)
    return jnp.zeros_like(needed).at[slots].set(needed)


def fit_weight_after_push(buffer: RewardBuffer, eps: float, new_eta, etas=None) -> jax.Array:
    """R_fit's weight ``prod (1 - s_l)`` over the window after pushing a member with
    ``new_eta`` (the oldest leaves a full buffer); the max over rows for per-sample
    etas. With k = 0 the pushed member leaves at once: the window is empty, weight 1."""
    if buffer.cfg.capacity == 0:
        return jnp.float32(1.0)
    log_keep, _ = _log_keeps(buffer, eps, etas)
    leaves = (jnp.arange(buffer.cfg.capacity) == 0) & will_evict(buffer)
    leaves = leaves.reshape(leaves.shape + (1,) * (log_keep.ndim - 1))
    total = jnp.sum(jnp.where(leaves, 0.0, log_keep), axis=0) \
        + jnp.log1p(-_step(buffer.cfg, eps, new_eta))
    return jnp.max(jnp.exp(total))


def member_logits(buffer: RewardBuffer, x: jax.Array, needed: Optional[jax.Array] = None
                  ) -> jax.Array:
    """Logits of every slot on inputs x (N, D) -> (k, N), slot order: one vmap over the
    stacked parameters (in chunks of ``_member_chunk()`` members on a CPU).

    ``needed`` ((k,) from :func:`needed_members`, a suffix of the newest members): on a
    CPU only those are evaluated, newest first in a ``while_loop`` (a loop under vmap
    too), and the others get logit 0; an accelerator, which runs all k at once,
    evaluates every member anyway."""
    def logits(params):
        return disc.logits(buffer.cfg.disc, params, x)

    chunk = _member_chunk()
    k = buffer.cfg.capacity
    if chunk is None or k <= chunk:
        return jax.vmap(logits)(buffer.disc_params)
    if needed is None:
        return jax.lax.map(logits, buffer.disc_params, batch_size=chunk)
    slots, _ = slot_order(buffer)
    num_needed = jnp.sum(needed)

    def evaluate(carry):
        i, out = carry
        # positions count-1-i .. count-chunk-i, newest first; one below 0 re-evaluates
        # position 0 (harmless) rather than reading an empty slot
        chosen = slots[jnp.maximum(buffer.count - 1 - i - jnp.arange(chunk), 0)]
        params = jax.tree.map(lambda p: p[chosen], buffer.disc_params)
        return i + chunk, out.at[chosen].set(jax.vmap(logits)(params))

    _, out = jax.lax.while_loop(lambda carry: carry[0] < num_needed, evaluate,
                                (jnp.int32(0), jnp.zeros((k, x.shape[0]), jnp.float32)))
    return out


def _base(buffer: RewardBuffer, x: jax.Array, beta: float) -> jax.Array:
    """Start of the recursion: beta * R_fit(x) if it represents evicted members, else 0.

    R_fit's network predicts the reward in units of r / beta, the scale of the logits
    (O(1)), not r itself (O(beta), ~1000): Adam moves an output by about its learning
    rate per step, so a network regressing r directly could not follow the targets
    (fit RMSE of 60-800 reward units was measured that way, i.e. R_fit was ~0).
    """
    zeros = jnp.zeros(x.shape[:-1], jnp.float32)
    if not buffer.cfg.use_fit:
        return zeros
    return jnp.where(buffer.fit_active,
                     beta * fit_apply(buffer.cfg.fit, buffer.fit_params, x), zeros)


def _step(cfg: RewardBufferConfig, eps: float, eta) -> jax.Array:
    """Corrected step size eps / (1 + eta) (Thm. 3.2); eps itself without correction."""
    if not cfg.use_eta:
        return jnp.asarray(eps, jnp.float32) * jnp.ones_like(eta, jnp.float32)
    return eps / (1.0 + jnp.maximum(eta, 0.0))


def pushed_logits(buffer: RewardBuffer, logits: jax.Array, new_logits: jax.Array) -> jax.Array:
    """The members' logits (k, N) after ``push`` of a discriminator with logits
    ``new_logits`` (N,), from the logits before it: the push writes slot ``head``.

    The k stacked evaluations are the buffer's main cost (k forward passes per row),
    so a learner that has them for the rollout reuses them after the push instead of
    evaluating all k members again."""
    if buffer.cfg.capacity == 0:
        return logits
    return logits.at[buffer.head].set(new_logits)


def corrected_reward(buffer: RewardBuffer, x: jax.Array, beta: float, eps: float,
                     etas: Optional[jax.Array] = None, logits: Optional[jax.Array] = None
                     ) -> jax.Array:
    """Corrected reward of Alg. 2 lines 19-23 on inputs x (N, D) -> (N,).

    ``r = base; for member j oldest -> newest: r = (1 - s_j) r + s_j beta D_j(x)`` with
    ``s_j = eps / (1 + eta_j)``; empty slots leave ``r`` unchanged.

    Args:
      etas: optional override of ``buffer.etas`` in slot order, (k,) or per-sample
        (k, N) (retrospective eta).
      logits: the members' logits on x, (k, N) in slot order, if the caller has them
        (``member_logits``, ``pushed_logits``); evaluated here otherwise.
    """
    r = _base(buffer, x, beta)
    k = buffer.cfg.capacity
    if k == 0:
        return r
    if logits is None:
        logits = member_logits(buffer, x, needed_members(buffer, eps, etas))
    steps = _step(buffer.cfg, eps, buffer.etas if etas is None else etas)
    steps = jnp.broadcast_to(steps.reshape(steps.shape + (1,) * (logits.ndim - steps.ndim)),
                             logits.shape)  # (k,) per member or (k, N) per sample
    slots, valid = slot_order(buffer)

    def apply_member(r, member):
        logit, step, ok = member
        # where, not a zero step: an empty slot's logits are never allowed to leak in.
        return jnp.where(ok, (1.0 - step) * r + step * beta * logit, r), None

    r, _ = jax.lax.scan(apply_member, r, (logits[slots], steps[slots], valid))
    return r


def intermediate_reward(buffer: RewardBuffer, x: jax.Array, beta: float, eps: float,
                        new_logits: jax.Array, etas: Optional[jax.Array] = None,
                        logits: Optional[jax.Array] = None) -> jax.Array:
    """Reward for the next policy update (Alg. 2 line 24, Alg. 1 line 5):
    ``(1 - eps) * corrected + eps * beta * new_logits``, with ``new_logits`` (N,) the
    newest discriminator's logits on x (it is not in the buffer yet); ``etas`` and
    ``logits`` as in :func:`corrected_reward`."""
    corrected = corrected_reward(buffer, x, beta, eps, etas, logits)
    return (1.0 - eps) * corrected + eps * beta * new_logits


def _oldest_logits(buffer: RewardBuffer, x: jax.Array) -> jax.Array:
    """Logits (N,) on x of the oldest slot (``head``): the member a push would evict."""
    oldest = jax.tree.map(lambda p: p[buffer.head], buffer.disc_params)
    return disc.logits(buffer.cfg.disc, oldest, x)


def fit_targets(buffer: RewardBuffer, x: jax.Array, beta: float, eps: float,
                new_logits: jax.Array, new_eta, etas: Optional[jax.Array] = None,
                oldest_logits: Optional[jax.Array] = None) -> jax.Array:
    """Regression targets for the R_fit that replaces the current one at the next push.

    ``(1 - s_old) * base(x) + s_old * beta * D_old(x)`` where ``D_old`` is the member the
    next push evicts: the oldest slot (``head``) of a full buffer, or, for ``k = 0``, the
    pushed member itself (``new_logits``, ``new_eta``). Only meaningful when
    ``will_evict(buffer)``; see the module docstring for why this is the right target.
    ``oldest_logits`` (N,): that member's logits on x, if the caller has them.
    """
    base = _base(buffer, x, beta)
    if buffer.cfg.capacity == 0:
        logit, eta = new_logits, new_eta
    else:
        logit = _oldest_logits(buffer, x) if oldest_logits is None else oldest_logits
        eta = (buffer.etas if etas is None else etas)[buffer.head]
    step = _step(buffer.cfg, eps, eta)
    return (1.0 - step) * base + step * beta * logit


def push(buffer: RewardBuffer, disc_params: Params, eta, fit_params: Optional[Params] = None
         ) -> RewardBuffer:
    """Append a discriminator and its scalar eta, overwriting the oldest slot when full.

    If the push evicts a member and ``fit_params`` is given (and ``use_fit``), R_fit
    becomes ``fit_params`` -- fitted to ``fit_targets / beta`` -- and is switched on. Without
    ``fit_params`` an evicted member is simply dropped. Otherwise R_fit is untouched.
    """
    cfg = buffer.cfg
    if cfg.use_fit and fit_params is not None:
        evict = will_evict(buffer)
        buffer = buffer.replace(
            fit_params=jax.tree.map(lambda new, old: jnp.where(evict, new, old),
                                    fit_params, buffer.fit_params),
            fit_active=buffer.fit_active | evict)
    k = cfg.capacity
    if k == 0:
        return buffer
    slot = buffer.head
    return buffer.replace(
        disc_params=jax.tree.map(lambda stack, p: stack.at[slot].set(p),
                                 buffer.disc_params, disc_params),
        etas=buffer.etas.at[slot].set(jnp.asarray(eta, buffer.etas.dtype)),
        head=(slot + 1) % k,
        count=jnp.minimum(buffer.count + 1, k),
    )


def push_and_fit(buffer: RewardBuffer, fit_opt_state: optax.OptState, disc_params: Params,
                 eta, x: jax.Array, beta: float, eps: float, key: jax.Array,
                 etas: Optional[jax.Array] = None, logits: Optional[jax.Array] = None,
                 new_logits: Optional[jax.Array] = None
                 ) -> tuple[RewardBuffer, optax.OptState, dict[str, jax.Array]]:
    """``push`` with the eviction fit: when the push evicts a member (and ``use_fit``),
    first regress R_fit onto ``fit_targets`` on the rollout inputs x (N, D).

    ``logits`` (k, N) / ``new_logits`` (N,): the members' and the pushed
    discriminator's logits on x, if the caller has them (evaluated here otherwise).

    Returns:
      (buffer, fit_opt_state, metrics); ``fit_mse`` is NaN when no fit ran.
    """
    cfg = buffer.cfg
    if not cfg.use_fit:
        return push(buffer, disc_params, eta), fit_opt_state, {"fit_mse": jnp.float32(jnp.nan)}
    if new_logits is None:
        new_logits = disc.logits(cfg.disc, disc_params, x)
    oldest = None if logits is None or cfg.capacity == 0 else logits[buffer.head]
    needed = needed_members(buffer, eps, etas)
    if oldest is not None and needed is not None:
        # the member that leaves is the oldest, the one most likely skipped (logit 0)
        oldest = jnp.where(needed[buffer.head], oldest, _oldest_logits(buffer, x))
    # R_fit regresses r / beta (see ``_base``); ``fit_mse`` is in those units.
    targets = fit_targets(buffer, x, beta, eps, new_logits, eta, etas, oldest) / beta
    # No fit while the buffer is filling, nor while R_fit's weight is negligible.
    active = will_evict(buffer)
    if cfg.negligible_weight > 0.0:
        active = active & (fit_weight_after_push(buffer, eps, eta, etas)
                           >= cfg.negligible_weight)
    fit_params, fit_opt_state, metrics = fit_reward(cfg.fit, buffer.fit_params, fit_opt_state,
                                                    x, targets, key, active)
    return push(buffer, disc_params, eta, fit_params), fit_opt_state, metrics
