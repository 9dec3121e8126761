r"""Exact tabular TRIRL (paper Algorithm 1, Appendix B "TRIRL in Discrete Settings").

Everything is float64 NumPy and analytic: occupancies come from a linear solve of
the Bellman flow, the log density ratio ``D = log(rho_E / rho_pi)`` is exact, and
policies are exact soft (max-causal-entropy) optima, computed by soft value
iteration (the paper's solver) or by soft policy iteration (same fixed point,
Newton speed; the default).  The module is the ground truth the
function-approximation code can be checked against.

Conventions
-----------
* ``P[s, a, s']`` transitions, ``mu0[s]`` start distribution, discount ``gamma``.
* Occupancies are *discounted and unnormalised*, as in the paper's Section 2:
  ``rho(s, a) = pi(a|s) sum_t gamma^t mu_t(s)``, so ``rho.sum() == M := 1/(1-gamma)``.
  ``occupancy_kl`` reports the KL of the normalised distributions ``rho / M``; the
  KL in Eq. 1 between the unnormalised measures is ``M`` times that.
* Rewards are arrays ``r[s, a]``.  ``temperature`` (``alpha``) is the entropy weight
  of max-ent RL, ``pi ∝ exp(Q / alpha)``.  Eq. 1 uses ``alpha = 1`` (the default);
  any other value only rescales the problem (see "Scaling" below).

Problem and dual
----------------
Eq. 1 (with entropy weight ``alpha``) in occupancy space is

    f(rho) = alpha * H(rho) - beta * KL(rho || rho_E),
    H(rho) = -sum_{s,a} rho(s,a) log pi(a|s)      (discounted causal entropy)

maximised over the Bellman-flow polytope.  Writing the KL with its variational
(Donsker-Varadhan) form, ``-beta KL(rho||rho_E) = min_r sum rho r + beta M log
sum q_E exp(-r/beta)`` with ``q_E = rho_E / M``, and swapping max/min (strong
duality, Fact A.3) gives the Lagrangian dual, a convex function of the reward::

    G(r) = E_{mu0}[V*_r(s0)] + beta * M * log sum_{s,a} q_E(s,a) exp(-r(s,a)/beta)

where ``V*_r`` is the optimal soft value of ``r`` at temperature ``alpha``.  This is
the paper's Appendix-A expression (there written for normalised measures, i.e. the
factor ``M`` absorbed).  ``G`` is invariant to adding a constant to ``r``, is an upper
bound on ``f`` for every policy (weak duality), and its gradient is
``dG/dr = rho_r - rho_hat`` with ``rho_hat = M q_E exp(-r/beta) / sum(...)``.  The
function-space update of Eq. 2, ``r <- r + eps*beta*(log rho_E - log rho_r - r/beta)``,
equals ``eps*beta*(log rho_hat - log rho_r) + const`` and therefore has negative
inner product ``-eps*beta*(KL(rho_r||rho_hat) + KL(rho_hat||rho_r))`` with the
gradient: it is a descent direction on ``G``.  The paper calls this "dual ascent"
(sign convention); here ``G`` *decreases* towards ``max f`` as IRL proceeds.

Trust-region step and Theorem 3.2 (the identity must hold exactly)
----------------------------------------------------------------
The trust-region problem (Eq. 3) with penalty ``alpha*eta*E_rho(s)[KL(pi||pi_old)]``
is, by Lemma 3.1, max-ent RL at temperature ``alpha`` for

    r_eta = (r_tilde + eta * alpha * log pi_old) / (1 + eta).

If ``pi_old`` is *exactly* the soft-optimal policy of the current reward ``r`` at the
*same* temperature (and, for ``eta > 0``, generically only then), then
``alpha log pi_old(a|s) = Q_r(s,a) - V_r(s) = r(s,a) + gamma E[V_r(s')] - V_r(s)``, so

    r_eta = [(1-eps) r + eps beta D + eta r] / (1+eta) + eta/(1+eta) (gamma P V_r - V_r)
          = r_new + (potential-based shaping with Phi = eta/(1+eta) V_r),
    r_new = (1 - eps_tr) r + eps_tr beta D,      eps_tr = eps / (1 + eta).

Potential shaping leaves the soft-optimal policy unchanged (``Q' = Q - Phi``,
``V' = V - Phi``), hence ``pi_tr == pi_MCE(r_new)``: the corrected reward's optimal
soft policy *is* the trust-region policy.  What exactness requires, and what this
implementation guarantees:

1. ``pi_old`` is MCE-optimal for ``r^(i)``.  True at ``i = 0`` (uniform policy is
   soft-optimal for ``r = 0``) and kept by induction -- but only with the reward
   correction; ``correct_reward=False`` breaks it from the first step on.
2. The KL penalty is scaled by the *same* temperature as the entropy
   (``alpha * eta``), so ``log pi_old`` enters as ``alpha log pi_old = Q - V``.  Any
   mismatch (e.g. soft VI at temperature ``1/beta`` combined with a KL weight
   ``eta`` on ``log pi_old``) leaves a non-shaping residual and breaks the identity.
   ``beta`` itself plays no role in the identity (it only scales ``D``); it must
   merely be used identically in ``r_tilde`` and ``r_new``.
3. ``D`` is the log ratio of ``pi_old``'s occupancy (the same ``D`` in ``r_tilde``
   and in the correction), and the soft solves are converged (``tol = 1e-12``):
   an approximate TR policy violates (1) at the next step, and errors compound.

With these, ``max |pi_tr - pi_MCE(r^(i))|`` is ~1e-15 at every iteration.

Step size (issue 31): a real condition of the method, not arithmetic
--------------------------------------------------------------------
Eq. 2 is a descent *direction* for ``G``, not a guaranteed decrease.  With Theorem 3.2
exact, a TRIRL step is the map ``r -> (1 - eps_tr) r + eps_tr beta log(rho_E/rho_{pi_r})``
whose Jacobian is ``J = (1 - eps_tr) I - eps_tr beta diag(rho)^-1 H``, with ``H = d
rho_{pi_r} / d r`` (:func:`occupancy_sensitivity`; the Hessian of ``E_mu0 V*_r``, PSD,
scaling as ``1/alpha``).  ``J`` has the real eigenvalues ``1 - eps_tr (1 + beta mu_k)``,
``mu_k >= 0`` those of ``diag(rho)^-1 H`` (how strongly a reward at ``(s, a)`` moves
occupancies, relative to them).  The optimum is a stable fixed point, and the dual
decreases near it, iff

    eps / (1 + eta) * (1 + beta * mu*) < 2,        mu* = max_k mu_k at the optimum,

(:func:`step_size_bound`).  Above it the top mode flips sign and grows by
``|1 - eps_tr (1 + beta mu*)|`` per step, so the dual rises and the KL climbs once that
mode is large; the trust-region solve stays exact throughout.  ``mu*`` belongs to the MDP
and the expert: ``1/alpha`` exactly for ``gamma = 0`` (a bandit), growing with the
number of decisions a reward influences, so it saturates once ``1/(1-gamma)`` exceeds
the episode length.  Measured at the expert: 4.36 / 4.61 / 4.71 / 4.72 for the issue's
icy 5 x 5 grid at ``gamma`` 0.9 / 0.95 / 0.99 / 0.995; 3.9 (grid) and 1.6-2.1 (random
MDPs) for the instances of the tests.  The issue's run (icy grid, ``gamma = 0.99``,
``beta = 50, eps = 0.01, eta = 0.1``) has ``mu* = 4.716`` and
``eps_tr (1 + beta mu*) = 2.153``: the top mode grows by 1.1529 per step, measured
1.1529 (agreeing to 1e-9).  On that symmetric grid the mode is antisymmetric under
the diagonal mirror, so the exact iterates have none of it and float64 rounding
(~1e-16) seeds it; that is why the first increase comes late (iteration ~185) and
moves with the grid's exact slip model; a seed of 1e-8 along the mode brings it to
iteration 93 (1e-4: 32).  The instability is the map's; rounding only starts it.  The
arithmetic suspects are ruled out there: the smallest occupancy is 2.5e-3 before the
rise (the near-zero ones, 6e-9, and the reward's drift to +65 come after it), and the
dual's rounding is ~1e-13 against rises of up to 28.  ``(50, 0.005, 0.1)``, ``(20,
0.02, 0.1)`` and ``(50, 0.01, 1.0)`` give 1.08 / 1.74 / 1.18 < 2 and are monotone.
For ``beta = 50, eps = 0.01`` the bound asks ``eta > 0.184``: at 0.17 the dual first
rises at iteration 853, at 0.2 it stays monotone over 1500 iterations.

:func:`trirl` therefore backtracks by default: a step that raises ``G`` beyond its
rounding floor is redone with ``1 + eta`` doubled (a tighter trust region, re-solved,
so Theorem 3.2 stays exact), which guarantees a non-increasing dual for any
``(beta, eps, eta)``.  Outside the bound the run then backtracks once every ~18
iterations (on the issue's grid) while the unstable mode regrows from where the
halved step left it; choosing ``eta > eps / eps_tr_max - 1`` from
:func:`step_size_bound` at the expert avoids that.  ``backtrack=False`` runs the
schedule as given.  The deep learner's step, ``trirl learn``, maps to the same
``eps / (1 + eta)`` and ``beta = 1/entropy_coef``: see ``docs/tabular.md``.

Scaling: ``(alpha, beta, r)`` and ``(c*alpha, c*beta, c*r)`` give identical policies,
so ``alpha = 1`` loses no generality; the paper's "entropy coefficient 1/beta"
convention corresponds to ``alpha = 1/beta`` with the reward ``D`` instead of
``beta*D``.  The learned reward converges to ``r* = beta log(rho_E / rho*)`` which,
for an expert that is soft-optimal for a reward ``r_E`` at temperature ``alpha``, is
``r_E`` up to shaping and a constant, and ``KL(rho*||rho_E) = O(1/beta^2)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Sequence, Union

import numpy as np

from trirl.errors import TrirlError

__all__ = [
    "DiscreteMDP",
    "GridWorld",
    "SoftSolution",
    "TRIRLResult",
    "TRIRLStep",
    "make_gridworld",
    "random_mdp",
    "soft_value_iteration",
    "soft_policy_iteration",
    "soft_policy_value",
    "solve_soft",
    "soft_bellman_residual",
    "occupancy",
    "occupancy_kl",
    "causal_entropy",
    "primal_objective",
    "dual_objective",
    "dual_gradient",
    "log_density_ratio",
    "occupancy_sensitivity",
    "StepSizeBound",
    "step_size_bound",
    "fit_state_reward",
    "trust_region_reward",
    "exponential_eta",
    "trirl_step",
    "trirl",
]


# --------------------------------------------------------------------------- MDPs


@dataclass(frozen=True)
class DiscreteMDP:
    """A finite discounted MDP without reward (the reward is what IRL learns).

    Attributes:
      P: transition tensor ``P[s, a, s']``, rows summing to one.
      mu0: initial state distribution ``mu0[s]``.
      gamma: discount factor in ``[0, 1)``.
    """

    P: np.ndarray
    mu0: np.ndarray
    gamma: float

    def __post_init__(self) -> None:
        P = np.asarray(self.P, dtype=np.float64)
        mu0 = np.asarray(self.mu0, dtype=np.float64)
        S = P.shape[0]
        if P.ndim != 3 or P.shape[2] != S:
            raise ValueError(f"P must have shape (S, A, S), got {P.shape}")
        if mu0.shape != (S,):
            raise ValueError(f"mu0 must have shape ({S},), got {mu0.shape}")
        if np.any(P < 0) or not np.allclose(P.sum(-1), 1.0, atol=1e-12):
            raise ValueError("every P[s, a, :] must be a probability distribution")
        if np.any(mu0 < 0) or not np.isclose(mu0.sum(), 1.0, atol=1e-12):
            raise ValueError("mu0 must be a probability distribution")
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"gamma must lie in [0, 1), got {self.gamma}")
        # Frozen dataclass: normalise dtypes through object.__setattr__.
        object.__setattr__(self, "P", P)
        object.__setattr__(self, "mu0", mu0)

    @property
    def n_states(self) -> int:
        return self.P.shape[0]

    @property
    def n_actions(self) -> int:
        return self.P.shape[1]

    @property
    def horizon(self) -> float:
        """Total discounted occupancy mass ``M = 1 / (1 - gamma)``."""
        return 1.0 / (1.0 - self.gamma)

    def expected_next(self, v: np.ndarray) -> np.ndarray:
        """``E[v(s') | s, a]`` as an ``(S, A)`` array."""
        return self.P @ v


#: Grid moves as (d_row, d_col); "stay" keeps the agent in place.
GRID_ACTIONS: tuple[tuple[int, int], ...] = ((-1, 0), (0, 1), (1, 0), (0, -1), (0, 0))
GRID_ACTION_NAMES: tuple[str, ...] = ("up", "right", "down", "left", "stay")


@dataclass(frozen=True)
class GridWorld:
    """A gridworld MDP together with its known true reward.

    States are numbered row-major, ``s = row * n_cols + col`` (row 0 at the top).

    Attributes:
      mdp: the dynamics.
      reward: the true reward ``r_E[s, a]`` (state-based: equal across actions).
      shape: ``(n_rows, n_cols)``.
      actions: the ``(d_row, d_col)`` move of each action index.
      goal: cells with the goal reward.
      hazards: cells with the hazard reward.
    """

    mdp: DiscreteMDP
    reward: np.ndarray
    shape: tuple[int, int]
    actions: tuple[tuple[int, int], ...]
    goal: tuple[tuple[int, int], ...] = ()
    hazards: tuple[tuple[int, int], ...] = ()

    def cell(self, s: int) -> tuple[int, int]:
        """``(row, col)`` of state ``s``."""
        return divmod(int(s), self.shape[1])

    def state_grid(self, values: np.ndarray) -> np.ndarray:
        """Reshape a per-state vector ``values[s]`` to the ``(n_rows, n_cols)`` grid."""
        return np.asarray(values).reshape(self.shape)


def _grid_transitions(n_rows: int, n_cols: int, actions: Sequence[tuple[int, int]],
                      slip: float) -> np.ndarray:
    """``P[s, a, s']``: the intended move w.p. ``1 - slip``, else a uniform random action."""
    S, A = n_rows * n_cols, len(actions)
    rows, cols = np.divmod(np.arange(S), n_cols)
    moved = np.empty((S, A), dtype=np.int64)  # deterministic successor of (s, a)
    for a, (dr, dc) in enumerate(actions):
        r2, c2 = rows + dr, cols + dc
        inside = (0 <= r2) & (r2 < n_rows) & (0 <= c2) & (c2 < n_cols)
        moved[:, a] = np.where(inside, r2 * n_cols + c2, np.arange(S))  # walls: stay
    P = np.zeros((S, A, S))
    for a in range(A):
        P[np.arange(S), a, moved[:, a]] += 1.0 - slip
        for b in range(A):
            P[np.arange(S), a, moved[:, b]] += slip / A
    return P


def make_gridworld(
    n_rows: int = 5,
    n_cols: int = 5,
    *,
    slip: float = 0.1,
    gamma: float = 0.9,
    goal: Sequence[tuple[int, int]] | None = None,
    hazards: Sequence[tuple[int, int]] | None = None,
    goal_reward: float = 1.0,
    hazard_reward: float = -1.0,
    step_reward: float = 0.0,
    start: Sequence[tuple[int, int]] | None = None,
    with_stay: bool = True,
) -> GridWorld:
    """Figure-2-style gridworld: reach the goal region, avoid the hazards.

    Moving into a wall leaves the agent in place.  With probability ``slip`` the
    executed action is drawn uniformly from all actions instead of the intended one.
    The reward is state-based, ``r(s, a) = R(s)``: ``goal_reward`` on goal cells
    (default: the top-right corner), ``hazard_reward`` on hazards (default: row 1
    without its end cells, a wall of hazards below the top row), ``step_reward``
    elsewhere.  Start states are uniform over ``start`` (default: every cell, so
    every state is visited and ``log(rho_E / rho_pi)`` is finite everywhere).
    """
    if not 0.0 <= slip <= 1.0:
        raise ValueError(f"slip must lie in [0, 1], got {slip}")
    goal = ((0, n_cols - 1),) if goal is None else tuple(map(tuple, goal))
    hazards = tuple((1, c) for c in range(1, n_cols - 1)) if hazards is None else hazards
    hazards = tuple(map(tuple, hazards))
    for row, col in goal + hazards + tuple(start or ()):
        if not (0 <= row < n_rows and 0 <= col < n_cols):
            raise ValueError(f"cell {(row, col)} lies outside the {n_rows}x{n_cols} grid")
    actions = GRID_ACTIONS if with_stay else GRID_ACTIONS[:4]
    S, A = n_rows * n_cols, len(actions)
    P = _grid_transitions(n_rows, n_cols, actions, slip)
    R = np.full(S, float(step_reward))
    for row, col in hazards:
        R[row * n_cols + col] = hazard_reward
    for row, col in goal:
        R[row * n_cols + col] = goal_reward
    mu0 = np.zeros(S)
    cells = [(r, c) for r in range(n_rows) for c in range(n_cols)] if start is None else start
    for row, col in cells:
        mu0[row * n_cols + col] += 1.0 / len(cells)
    return GridWorld(
        mdp=DiscreteMDP(P, mu0, gamma),
        reward=np.repeat(R[:, None], A, axis=1),
        shape=(n_rows, n_cols),
        actions=tuple(actions),
        goal=goal,
        hazards=hazards,
    )


def random_mdp(n_states: int, n_actions: int, *, gamma: float = 0.9, branching: int = 3,
               seed: int = 0) -> tuple[DiscreteMDP, np.ndarray]:
    """A random MDP and a random reward ``r[s, a] ~ N(0, 1)``, for tests and benchmarks.

    Each ``(s, a)`` moves to ``branching`` distinct random successors with Dirichlet
    weights; ``mu0`` is uniform, so every policy with full support visits every state.
    """
    rng = np.random.default_rng(seed)
    P = np.zeros((n_states, n_actions, n_states))
    for s in range(n_states):
        for a in range(n_actions):
            succ = rng.choice(n_states, size=min(branching, n_states), replace=False)
            P[s, a, succ] = rng.dirichlet(np.ones(len(succ)))
    mdp = DiscreteMDP(P, np.full(n_states, 1.0 / n_states), gamma)
    return mdp, rng.normal(size=(n_states, n_actions))


# ------------------------------------------------------------------ soft max-ent RL


@dataclass(frozen=True)
class SoftSolution:
    """Optimal soft value functions of a reward at temperature ``alpha``.

    ``policy = exp((q - v[:, None]) / alpha)``, ``v = alpha * logsumexp(q / alpha)``.
    """

    q: np.ndarray
    v: np.ndarray
    policy: np.ndarray
    n_iter: int


def _soft_max(q: np.ndarray, temperature: float) -> np.ndarray:
    """``alpha * log sum_a exp(q / alpha)`` over the last axis, overflow-safe."""
    m = q.max(axis=-1)
    return m + temperature * np.log(np.exp((q - m[..., None]) / temperature).sum(axis=-1))


def _boltzmann(q: np.ndarray, v: np.ndarray, temperature: float) -> np.ndarray:
    pi = np.exp((q - v[..., None]) / temperature)
    # Renormalise: exp(q - lse) sums to 1 only up to rounding.
    return pi / pi.sum(axis=-1, keepdims=True)


def _converged(v_new: np.ndarray, v: np.ndarray, tol: float) -> bool:
    """Sup-norm change below ``tol``, or below the rounding floor for large ``|V|``."""
    floor = 64 * np.finfo(np.float64).eps * float(np.max(np.abs(v_new)))
    return bool(np.max(np.abs(v_new - v)) <= max(tol, floor))


def _solution(mdp: DiscreteMDP, reward: np.ndarray, v: np.ndarray, temperature: float,
              n_iter: int) -> SoftSolution:
    """Final greedy-soft backup from a converged ``v``."""
    q = reward + mdp.gamma * mdp.expected_next(v)
    v = _soft_max(q, temperature)
    return SoftSolution(q=q, v=v, policy=_boltzmann(q, v, temperature), n_iter=n_iter)


def soft_value_iteration(
    mdp: DiscreteMDP,
    reward: np.ndarray,
    *,
    temperature: float = 1.0,
    tol: float = 1e-12,
    max_iter: int = 100_000,
    v_init: np.ndarray | None = None,
) -> SoftSolution:
    """Soft value iteration ``V <- alpha log sum_a exp((r + gamma P V) / alpha)``.

    Stops when the sup-norm change of ``V`` falls below ``tol`` (or below the float64
    rounding floor ``~1e-14 |V|`` when that is larger, so huge rewards cannot stall);
    the Bellman operator is a ``gamma``-contraction, hence
    ``|V - V*| <= gamma tol / (1 - gamma)``.

    Raises:
      RuntimeError: if ``max_iter`` sweeps do not reach ``tol``.
    """
    reward = np.asarray(reward, dtype=np.float64)
    v = np.zeros(mdp.n_states) if v_init is None else np.array(v_init, dtype=np.float64)
    for it in range(1, max_iter + 1):
        v_new = _soft_max(reward + mdp.gamma * mdp.expected_next(v), temperature)
        converged = _converged(v_new, v, tol)
        v = v_new
        if converged:
            return _solution(mdp, reward, v, temperature, it)
    raise RuntimeError(f"soft value iteration did not reach tol={tol} in {max_iter} sweeps")


def soft_policy_iteration(
    mdp: DiscreteMDP,
    reward: np.ndarray,
    *,
    temperature: float = 1.0,
    tol: float = 1e-12,
    max_iter: int = 1_000,
    policy_init: np.ndarray | None = None,
) -> SoftSolution:
    """Soft policy iteration: exact evaluation by a linear solve, Boltzmann improvement.

    This is Newton's method on the soft Bellman equation (quadratic convergence, and
    monotone like classic policy iteration), so it reaches machine precision in a
    handful of linear solves.  It computes the same unique fixed point as
    :func:`soft_value_iteration`, with the same stopping rule.
    """
    reward = np.asarray(reward, dtype=np.float64)
    S, A = reward.shape
    pi = np.full((S, A), 1.0 / A) if policy_init is None else np.array(policy_init, float)
    v = None
    for it in range(1, max_iter + 1):
        v_new = soft_policy_value(mdp, reward, pi, temperature=temperature)
        q = reward + mdp.gamma * mdp.expected_next(v_new)
        pi = _boltzmann(q, _soft_max(q, temperature), temperature)
        if v is not None and _converged(v_new, v, tol):
            return _solution(mdp, reward, v_new, temperature, it)
        v = v_new
    raise RuntimeError(f"soft policy iteration did not reach tol={tol} in {max_iter} steps")


def soft_policy_value(mdp: DiscreteMDP, reward: np.ndarray, policy: np.ndarray, *,
                      temperature: float = 1.0) -> np.ndarray:
    """Soft value ``V_pi`` of a fixed policy: ``E_pi[sum_t gamma^t (r - alpha log pi)]``."""
    with np.errstate(divide="ignore"):
        log_pi = np.where(policy > 0, np.log(policy), 0.0)  # 0 log 0 = 0
    c = np.sum(policy * (reward - temperature * log_pi), axis=1)
    P_pi = np.einsum("sa,sat->st", policy, mdp.P)
    return np.linalg.solve(np.eye(mdp.n_states) - mdp.gamma * P_pi, c)


def soft_bellman_residual(mdp: DiscreteMDP, reward: np.ndarray, q: np.ndarray, *,
                          temperature: float = 1.0) -> float:
    """``max |Q - (r + gamma E[alpha logsumexp(Q(s', .) / alpha)])|``."""
    target = reward + mdp.gamma * mdp.expected_next(_soft_max(q, temperature))
    return float(np.max(np.abs(q - target)))


def solve_soft(mdp: DiscreteMDP, reward: np.ndarray, *, temperature: float = 1.0,
               tol: float = 1e-12, solver: str = "policy_iteration",
               v_init: np.ndarray | None = None,
               policy_init: np.ndarray | None = None) -> SoftSolution:
    """Optimal soft (MCE) solution of ``reward`` with the named solver.

    ``v_init`` (value iteration) and ``policy_init`` (policy iteration) only
    warm-start the solver: the soft Bellman fixed point is unique, so the result
    does not depend on them beyond ``tol``.
    """
    if solver == "value_iteration":
        return soft_value_iteration(mdp, reward, temperature=temperature, tol=tol,
                                    v_init=v_init)
    if solver == "policy_iteration":
        return soft_policy_iteration(mdp, reward, temperature=temperature, tol=tol,
                                     policy_init=policy_init)
    raise ValueError(f"solver must be 'value_iteration' or 'policy_iteration', got {solver!r}")


# ------------------------------------------------------------ occupancies and losses


def occupancy(mdp: DiscreteMDP, policy: np.ndarray) -> np.ndarray:
    """Discounted state-action occupancy ``rho_pi[s, a]`` (sums to ``1/(1-gamma)``).

    Solves the Bellman flow ``d = mu0 + gamma P_pi^T d`` for the state occupancy
    ``d`` exactly, then ``rho(s, a) = d(s) pi(a|s)`` (Fact A.1).
    """
    P_pi = np.einsum("sa,sat->st", policy, mdp.P)
    d = np.linalg.solve(np.eye(mdp.n_states) - mdp.gamma * P_pi.T, mdp.mu0)
    return d[:, None] * policy


def occupancy_kl(rho_p: np.ndarray, rho_q: np.ndarray) -> float:
    """``KL(p || q)`` between the *normalised* occupancies ``rho / sum(rho)``.

    With ``rho_p = rho_pi`` and ``rho_q = rho_E`` this is the reverse KL that TRIRL
    decreases; multiply by ``1/(1-gamma)`` for the unnormalised KL of Eq. 1.
    """
    p = rho_p / rho_p.sum()
    q = rho_q / rho_q.sum()
    mask = p > 0
    return float(np.sum(p[mask] * (np.log(p[mask]) - np.log(q[mask]))))


def causal_entropy(rho: np.ndarray) -> float:
    """Discounted causal entropy ``-sum rho(s,a) log pi(a|s)`` of an occupancy."""
    d = rho.sum(axis=1, keepdims=True)
    mask = rho > 0
    pi = np.divide(rho, d, out=np.zeros_like(rho), where=d > 0)
    return float(-np.sum(rho[mask] * np.log(pi[mask])))


def primal_objective(rho: np.ndarray, rho_expert: np.ndarray, *, beta: float,
                     temperature: float = 1.0) -> float:
    """Eq. 1 in occupancy form: ``alpha H(rho) - beta KL(rho || rho_E)`` (unnormalised)."""
    return temperature * causal_entropy(rho) - beta * rho.sum() * occupancy_kl(rho, rho_expert)


def _tilted_expert(reward: np.ndarray, rho_expert: np.ndarray, beta: float) -> tuple[float, np.ndarray]:
    """``log sum q_E exp(-r/beta)`` and ``rho_hat`` (mass M), overflow-safe."""
    M = rho_expert.sum()
    with np.errstate(divide="ignore"):  # q_E = 0 drops out of the sum
        logits = np.log(rho_expert / M) - reward / beta
    m = logits.max()
    w = np.exp(logits - m)
    return m + np.log(w.sum()), M * w / w.sum()


def dual_objective(mdp: DiscreteMDP, reward: np.ndarray, rho_expert: np.ndarray, *,
                   beta: float, temperature: float = 1.0,
                   solution: SoftSolution | None = None) -> float:
    """Lagrangian dual of Eq. 1 at ``reward`` (see module docstring); lower is better.

    ``G(r) = E_mu0[V*_r] + beta/(1-gamma) log sum q_E exp(-r/beta)``.  Pass the
    soft-optimal ``solution`` of ``reward`` to skip the inner solve.
    """
    return sum(_dual_terms(mdp, reward, rho_expert, beta=beta, temperature=temperature,
                           solution=solution))


def _dual_terms(mdp: DiscreteMDP, reward: np.ndarray, rho_expert: np.ndarray, *, beta: float,
                temperature: float, solution: SoftSolution | None) -> tuple[float, float]:
    """The two summands of ``G``; their sizes set the rounding floor of ``G``."""
    if solution is None:
        solution = solve_soft(mdp, reward, temperature=temperature)
    log_z, _ = _tilted_expert(reward, rho_expert, beta)
    return float(mdp.mu0 @ solution.v), float(beta * mdp.horizon * log_z)


def dual_gradient(mdp: DiscreteMDP, reward: np.ndarray, rho_expert: np.ndarray, *,
                  beta: float, temperature: float = 1.0,
                  solution: SoftSolution | None = None) -> np.ndarray:
    """``dG/dr = rho_{pi_r} - rho_hat`` with ``rho_hat ∝ rho_E exp(-r/beta)`` of mass M."""
    if solution is None:
        solution = solve_soft(mdp, reward, temperature=temperature)
    _, rho_hat = _tilted_expert(reward, rho_expert, beta)
    return occupancy(mdp, solution.policy) - rho_hat


def log_density_ratio(rho_expert: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """Exact ``D = log(rho_E / rho_pi)``.

    Pairs unreachable under every full-support policy (``0 / 0``) get ``D = 0``; a zero
    on one side only means the supports differ and ``D`` is infinite, which is refused.
    """
    both_zero = (rho_expert == 0) & (rho == 0)
    if np.any((rho_expert <= 0) ^ (rho <= 0)) or np.any(rho_expert < 0) or np.any(rho < 0):
        raise ValueError("log density ratio needs occupancies with the same support")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(both_zero, 0.0, np.log(rho_expert) - np.log(rho))


def occupancy_sensitivity(mdp: DiscreteMDP, policy: np.ndarray, *,
                          temperature: float = 1.0) -> np.ndarray:
    """``H = d rho_{pi_r} / d r``, Hessian of ``E_mu0[V*_r]``, for the MCE pair of ``policy``.

    Every full-support policy is MCE-optimal for ``r = alpha log pi``, so ``H`` is a
    function of the policy alone.  Differentiating ``V = alpha logsumexp(Q / alpha)``
    twice gives, with ``N(s, a)`` the expected discounted ``(s', a')``-counts after taking
    ``a`` in ``s`` and ``d`` the state occupancy from ``mu0``,

        H = (1 / alpha) sum_s d(s) Cov_{a ~ pi(.|s)}[N(s, a)].

    Returns:
      ``(S*A, S*A)`` symmetric positive semi-definite matrix, row-major ``(s, a)``.
    """
    S, A = policy.shape
    P_pi = np.einsum("sa,sat->st", policy, mdp.P)
    # from_s[s, s']: discounted visits to s' starting in s (rows of (I - gamma P_pi)^-1).
    from_s = np.linalg.inv(np.eye(S) - mdp.gamma * P_pi)
    occ_from_s = (from_s[:, :, None] * policy[None]).reshape(S, S * A)
    counts = (np.eye(S * A).reshape(S, A, S * A)
              + mdp.gamma * np.einsum("sat,tx->sax", mdp.P, occ_from_s))
    dev = counts - np.einsum("sa,sax->sx", policy, counts)[:, None]
    d = mdp.mu0 @ from_s
    return np.einsum("s,sa,sax,say->xy", d, policy, dev, dev) / temperature


class StepSizeBound(NamedTuple):
    """Stability bound of the exact TRIRL reward map at a policy (:func:`step_size_bound`)."""

    mu: float  # largest eigenvalue of diag(rho)^-1 H: relative occupancy sensitivity
    eps_tr_max: float  # the map is stable there iff eps_tr < eps_tr_max = 2 / (1 + beta mu)


def step_size_bound(mdp: DiscreteMDP, policy: np.ndarray, *, beta: float,
                    temperature: float = 1.0) -> StepSizeBound:
    """Largest stable corrected step ``eps_tr = eps / (1 + eta)`` at ``policy``.

    With Theorem 3.2 exact, one TRIRL step is the map
    ``r -> (1 - eps_tr) r + eps_tr beta log(rho_E / rho_{pi_r})`` whose Jacobian is
    ``(1 - eps_tr) I - eps_tr beta diag(rho)^-1 H`` (``H``: :func:`occupancy_sensitivity`),
    with real eigenvalues ``1 - eps_tr (1 + beta mu_k)``.  At the optimum, the iterates
    converge iff all of them lie in ``(-1, 1)``, i.e. ``eps_tr (1 + beta mu) < 2`` with
    ``mu`` the largest ``mu_k``; above it the mode with that ``mu`` flips sign and grows
    by ``|1 - eps_tr (1 + beta mu)|`` per step and the dual rises (module docstring,
    "Step size").  Evaluate at the optimum (or the expert, close to it for large
    ``beta``) for the asymptotic bound; the smallest safe multiplier for a given
    ``epsilon`` is ``eta > epsilon / eps_tr_max - 1``.
    """
    rho = occupancy(mdp, policy).ravel()
    if np.any(rho <= 0):
        raise TrirlError("step_size_bound needs a policy that visits every state-action "
                         "pair (full support and every state reachable)")
    w = 1.0 / np.sqrt(rho)  # diag(rho)^-1 H is similar to this symmetric matrix
    H = occupancy_sensitivity(mdp, policy, temperature=temperature)
    mu = float(np.linalg.eigvalsh(w[:, None] * H * w[None, :])[-1])
    return StepSizeBound(mu=mu, eps_tr_max=2.0 / (1.0 + beta * mu))


def fit_state_reward(mdp: DiscreteMDP, reward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split ``reward`` into a state-only part and potential shaping, by least squares.

    Fits ``r(s, a) ~ g(s) + gamma E[Phi(s') | s, a] - Phi(s)``.  IRL recovers rewards
    only up to such shaping (Ng et al., 1999); when the true reward is state-only,
    ``g`` is the comparable part.  ``g`` is defined up to a constant (a constant
    ``Phi`` shifts it by ``(1 - gamma) Phi``), so it is returned with mean zero.

    Returns:
      ``(g, phi)``, each of shape ``(S,)``.
    """
    S, A = mdp.n_states, mdp.n_actions
    design = np.zeros((S, A, 2 * S))
    design[np.arange(S), :, np.arange(S)] = 1.0  # g(s)
    design[:, :, S:] = mdp.gamma * mdp.P  # gamma E[Phi(s')]
    design[np.arange(S), :, S + np.arange(S)] -= 1.0  # -Phi(s)
    coef = np.linalg.lstsq(design.reshape(S * A, 2 * S), reward.ravel(), rcond=None)[0]
    g, phi = coef[:S], coef[S:]
    return g - g.mean(), phi


# ---------------------------------------------------------------------------- TRIRL


def trust_region_reward(r_tilde: np.ndarray, policy_old: np.ndarray, eta: float, *,
                        temperature: float = 1.0) -> np.ndarray:
    """Lemma 3.1: the reward whose MCE policy is trust-region optimal for ``r_tilde``.

    The trust-region problem ``max E[r~] + alpha H - alpha eta E_rho(s)[KL(pi||pi_old)]``
    equals max-ent RL (temperature ``alpha``) on
    ``r_eta = (r~ + eta alpha log pi_old) / (1 + eta)``.
    """
    return (r_tilde + eta * temperature * np.log(policy_old)) / (1.0 + eta)


def exponential_eta(eta_init: float, eta_final: float = 0.0,
                    decay: float = 0.9) -> Callable[[int], float]:
    """Schedule ``eta_i = eta_final + (eta_init - eta_final) * decay**i``."""
    return lambda i: eta_final + (eta_init - eta_final) * decay**i


EtaSchedule = Union[float, Sequence[float], Callable[[int], float]]


def _eta_at(schedule: EtaSchedule, i: int) -> float:
    if callable(schedule):
        eta = float(schedule(i))
    elif np.ndim(schedule) == 0:
        eta = float(schedule)
    else:
        eta = float(schedule[i])
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta} at iteration {i}")
    return eta


@dataclass
class TRIRLResult:
    """Per-iteration record of a tabular TRIRL run (index ``i`` = after ``i`` steps).

    Arrays indexed ``0..n_iter`` describe the pair ``(pi^(i), r^(i))``; arrays of
    length ``n_iter`` describe step ``i -> i+1``.

    Attributes:
      policies: agent policies ``pi^(i)`` (the trust-region policies), ``(n+1, S, A)``.
      rewards: learned rewards ``r^(i)`` (corrected, or ``r~`` without correction).
      intermediate_rewards: ``r~^(i+1) = (1-eps) r^(i) + eps beta D^(i)``, ``(n, S, A)``.
      reverse_kl: ``KL(rho_pi^(i) || rho_E)`` of normalised occupancies, ``(n+1,)``.
      dual: ``G(r^(i))``, the Lagrangian dual at the current reward, ``(n+1,)``.
      primal: Eq. 1 objective of ``pi^(i)``, ``(n+1,)``; always ``<= dual``.
      mce_gap: ``max |pi^(i) - pi_MCE(r^(i))|``: Theorem 3.2 says 0 with correction.
      eta: trust-region multipliers ``eta^(i+1)`` actually used, ``(n,)``: the
        schedule's, or larger where backtracking tightened the trust region.
      eps_tr: step sizes of the reward update actually applied, ``(n,)``.
      backtracks: how many times each step's ``eps_tr`` was halved, ``(n,)``.
    """

    policies: np.ndarray
    rewards: np.ndarray
    intermediate_rewards: np.ndarray
    reverse_kl: np.ndarray
    dual: np.ndarray
    primal: np.ndarray
    mce_gap: np.ndarray
    eta: np.ndarray
    eps_tr: np.ndarray
    backtracks: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    config: dict = field(default_factory=dict)

    @property
    def policy(self) -> np.ndarray:
        """Final policy."""
        return self.policies[-1]

    @property
    def reward(self) -> np.ndarray:
        """Final learned reward."""
        return self.rewards[-1]


class TRIRLStep(NamedTuple):
    """One iteration of Algorithm 1 (see :func:`trirl_step`)."""

    r_tilde: np.ndarray  # intermediate reward (Eq. 2, step eps)
    trust_region: SoftSolution  # MCE solution of r_eta; .policy is pi^(i+1)
    reward: np.ndarray  # r^(i+1): corrected (step eps_tr), or r_tilde without correction
    eps_tr: float


def trirl_step(
    mdp: DiscreteMDP,
    rho_expert: np.ndarray,
    reward: np.ndarray,
    policy: np.ndarray,
    *,
    beta: float,
    epsilon: float,
    eta: float,
    correct_reward: bool = True,
    temperature: float = 1.0,
    tol: float = 1e-12,
    solver: str = "policy_iteration",
    v_reward: np.ndarray | None = None,
) -> TRIRLStep:
    """Lines 4-8 of Algorithm 1 from the pair ``(r^(i), pi^(i))``.

    ``D = log(rho_E / rho_pi)``, ``r~ = (1-eps) r + eps beta D``, the trust-region
    policy is the MCE policy of ``r_eta`` (Lemma 3.1), and the corrected reward is
    ``(1-eps_tr) r + eps_tr beta D`` with ``eps_tr = eps / (1 + eta)``.  Theorem 3.2
    (``pi^(i+1) == pi_MCE(r^(i+1))``) holds exactly iff ``policy`` is MCE-optimal for
    ``reward`` at ``temperature``.  ``v_reward`` (soft value of ``reward``) is only
    a warm start.  Repeated steps converge only if ``eps_tr (1 + beta mu*) < 2``
    (:func:`step_size_bound`); :func:`trirl` enforces it by backtracking.
    """
    D = log_density_ratio(rho_expert, occupancy(mdp, policy))
    r_tilde = (1.0 - epsilon) * reward + epsilon * beta * D
    r_eta = trust_region_reward(r_tilde, policy, eta, temperature=temperature)
    # r_eta is r^(i+1) shaped by Phi = eta/(1+eta) V*_r, and r^(i+1) is close to r,
    # so V*_{r_eta} = V*_{r^(i+1)} - Phi ~ V*_r / (1 + eta).
    v_init = None if v_reward is None else v_reward / (1.0 + eta)
    tr = solve_soft(mdp, r_eta, temperature=temperature, tol=tol, solver=solver,
                    v_init=v_init, policy_init=policy)
    eps_tr = epsilon / (1.0 + eta) if correct_reward else epsilon
    return TRIRLStep(r_tilde, tr, (1.0 - eps_tr) * reward + eps_tr * beta * D, eps_tr)


def trirl(
    mdp: DiscreteMDP,
    rho_expert: np.ndarray,
    *,
    n_iter: int,
    beta: float,
    epsilon: float,
    eta: EtaSchedule,
    correct_reward: bool = True,
    temperature: float = 1.0,
    tol: float = 1e-12,
    solver: str = "policy_iteration",
    backtrack: bool | None = None,
    max_backtracks: int = 40,
) -> TRIRLResult:
    """Run exact tabular TRIRL (Algorithm 1) for ``n_iter`` iterations.

    Starts from ``r^(0) = 0`` and the uniform ``pi^(0)`` (soft-optimal for it) and
    applies :func:`trirl_step` with ``eta_i`` from the schedule.  The dual decreases
    only while ``eps_tr (1 + beta mu) < 2`` (module docstring, "Step size"), so by
    default a step that would raise it is retried with a tighter trust region.

    Args:
      mdp: dynamics.
      rho_expert: expert occupancy (e.g. ``occupancy(mdp, expert_policy)``), with the
        same support as the agent's (everywhere, if every state is reachable).
      n_iter: number of TRIRL iterations.
      beta: KL weight of Eq. 1 (the reward is ``beta log(rho_E/rho)`` at the optimum).
      epsilon: step size of the intermediate reward update, in ``(0, 1]``.
      eta: trust-region multiplier schedule: a constant, a sequence or ``i -> eta_i``.
        With backtracking it is the *smallest* multiplier of step ``i``.
      correct_reward: ``False`` is the ablation ``r^(i+1) = r~^(i+1)`` (step ``eps``)
        while the policy still takes the trust-region step; ``eta`` then no longer
        enters the reward and Theorem 3.2 / monotonicity are lost.
      temperature: entropy weight ``alpha`` of max-ent RL (Eq. 1 uses 1).
      tol: soft solver tolerance; Theorem 3.2 holds to about this level.
      solver: ``"policy_iteration"`` (default: Newton, ~10x faster) or
        ``"value_iteration"`` (the paper's Appendix B); both return the unique soft
        Bellman fixed point to ``tol``, so the runs agree to about ``tol``.
      backtrack: if a step raises the dual by more than its rounding floor, redo it
        with ``1 + eta`` doubled (half the corrected step ``eps_tr``; the trust-region
        policy is re-solved, so Theorem 3.2 stays exact) until it does not.  The
        default, ``None``, backtracks exactly when ``correct_reward`` is on (without
        the correction there is no monotone dual to enforce).  ``False`` runs the
        schedule as given, e.g. to observe the instability.
      max_backtracks: halvings allowed per step; Eq. 2 is a descent direction, so a
        step that still raises the dual after them means a broken invariant.

    Raises:
      TrirlError: ``backtrack=True`` with ``correct_reward=False``, or
        ``max_backtracks < 0``.
      RuntimeError: a step raised the dual after ``max_backtracks`` halvings.
    """
    if not 0.0 < epsilon <= 1.0:
        raise ValueError(f"epsilon must lie in (0, 1], got {epsilon}")
    if backtrack is None:
        backtrack = correct_reward
    if backtrack and not correct_reward:
        raise TrirlError("backtrack=True needs correct_reward=True: without the reward "
                         "correction the dual is not meant to decrease")
    if max_backtracks < 0:
        raise TrirlError(f"max_backtracks must be >= 0, got {max_backtracks}")
    rho_expert = np.asarray(rho_expert, dtype=np.float64)
    S, A = mdp.n_states, mdp.n_actions
    solve_kw = dict(temperature=temperature, tol=tol, solver=solver)
    hist: dict[str, list] = {k: [] for k in ("policies", "rewards", "r_tilde", "kl", "dual",
                                             "primal", "gap", "eta", "eps_tr", "back")}

    def dual_and_floor(reward: np.ndarray, mce: SoftSolution) -> tuple[float, float]:
        # G is a sum of two terms of size up to ~beta*M; its rounding error is a few
        # ulps of each, plus the solver's bound gamma*tol/(1-gamma) on |V - V*|.
        # Increases below this floor are noise, not a failed step.
        a, b = _dual_terms(mdp, reward, rho_expert, beta=beta, temperature=temperature,
                           solution=mce)
        rounding = 64 * np.finfo(np.float64).eps * (abs(a) + abs(b))
        floor = rounding + mdp.gamma * tol * mdp.horizon
        return a + b, floor

    def record(policy: np.ndarray, reward: np.ndarray, mce: SoftSolution, dual: float) -> None:
        rho = occupancy(mdp, policy)
        hist["policies"].append(policy)
        hist["rewards"].append(reward)
        hist["kl"].append(occupancy_kl(rho, rho_expert))
        hist["dual"].append(dual)
        hist["primal"].append(primal_objective(rho, rho_expert, beta=beta,
                                               temperature=temperature))
        hist["gap"].append(float(np.max(np.abs(policy - mce.policy))))

    reward = np.zeros((S, A))
    policy = np.full((S, A), 1.0 / A)
    # ``mce`` is the soft-optimal solution of the current reward r^(i), solved on its
    # own: the dual needs V*_r, and comparing its policy with ``policy`` checks Thm 3.2.
    mce = solve_soft(mdp, reward, **solve_kw)
    dual, _ = dual_and_floor(reward, mce)
    record(policy, reward, mce, dual)
    for i in range(n_iter):
        eta_i = _eta_at(eta, i)
        for n_back in range(max_backtracks + 1):
            step = trirl_step(mdp, rho_expert, reward, policy, beta=beta, epsilon=epsilon,
                              eta=eta_i, correct_reward=correct_reward, v_reward=mce.v,
                              **solve_kw)
            # Warm start, exact when Thm 3.2 holds: V*_{r^(i+1)} = V*_{r_eta} + Phi.
            v_init = step.trust_region.v + eta_i / (1.0 + eta_i) * mce.v
            new_mce = solve_soft(mdp, step.reward, v_init=v_init,
                                 policy_init=step.trust_region.policy, **solve_kw)
            new_dual, floor = dual_and_floor(step.reward, new_mce)
            if not backtrack or new_dual <= dual + floor:
                break
            # Tighter trust region: (1 + eta) doubles, so eps_tr = eps / (1 + eta) halves.
            eta_i = 2.0 * eta_i + 1.0
        else:
            raise RuntimeError(f"TRIRL step {i} raised the dual by {new_dual - dual:.3g} even "
                               f"at eps_tr = {step.eps_tr:.3g} ({max_backtracks} halvings)")
        policy, reward, mce, dual = step.trust_region.policy, step.reward, new_mce, new_dual
        hist["r_tilde"].append(step.r_tilde)
        hist["eta"].append(eta_i)
        hist["eps_tr"].append(step.eps_tr)
        hist["back"].append(n_back)
        record(policy, reward, mce, dual)

    return TRIRLResult(
        policies=np.array(hist["policies"]),
        rewards=np.array(hist["rewards"]),
        intermediate_rewards=np.array(hist["r_tilde"]).reshape(n_iter, S, A),
        reverse_kl=np.array(hist["kl"]),
        dual=np.array(hist["dual"]),
        primal=np.array(hist["primal"]),
        mce_gap=np.array(hist["gap"]),
        eta=np.array(hist["eta"]),
        eps_tr=np.array(hist["eps_tr"]),
        backtracks=np.array(hist["back"], dtype=np.int64),
        config=dict(n_iter=n_iter, beta=beta, epsilon=epsilon, correct_reward=correct_reward,
                    temperature=temperature, tol=tol, solver=solver, backtrack=backtrack),
    )
