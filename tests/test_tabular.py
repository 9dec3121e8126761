"""Tests for ``trirl.tabular``: exact tabular TRIRL (Algorithm 1, Lemma 3.1, Theorem 3.2).

The building blocks (occupancies, soft value iteration, the dual) are checked
against independent computations first; the TRIRL claims are then checked on a
small fixed set of instances: monotone reverse KL and dual with reward correction,
expert recovery, the exact Theorem-3.2 identity, and a monotonicity violation
without correction.  Issue 31's step-size bound is checked on the icy gridworld of
the issue (built here from its description) and by property tests on random MDPs.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trirl import tabular as tb
from trirl.errors import TrirlError

BETA = 20.0
EPSILON = 0.5
N_ITER = 80
# Conservative trust regions: beta * eps_tr = 20 * 0.5 / 31 ~ 0.3 at the loosest.
SCHEDULES = {
    "constant-30": 30.0,
    "decay-100-to-30": tb.exponential_eta(100.0, 30.0, 0.95),
}
KL_TOL = 1e-12  # float64 rounding of a KL of size ~1e-4 .. 1
DUAL_TOL = 1e-10  # the dual is ~10-100 in size


def _grid() -> tuple[tb.DiscreteMDP, np.ndarray]:
    gw = tb.make_gridworld(5, 5, slip=0.1, gamma=0.9)
    return gw.mdp, gw.reward


INSTANCES = {
    "grid5x5": _grid,
    "random-s0": lambda: tb.random_mdp(10, 3, gamma=0.9, seed=0),
    "random-s1": lambda: tb.random_mdp(10, 3, gamma=0.9, seed=1),
}


def _expert(mdp: tb.DiscreteMDP, reward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expert = soft-optimal policy of the known reward, and its occupancy."""
    policy = tb.solve_soft(mdp, reward).policy
    return policy, tb.occupancy(mdp, policy)


def _run(name: str, schedule: str, correct_reward: bool) -> tb.TRIRLResult:
    mdp, reward = INSTANCES[name]()
    _, rho_e = _expert(mdp, reward)
    return tb.trirl(mdp, rho_e, n_iter=N_ITER, beta=BETA, epsilon=EPSILON,
                    eta=SCHEDULES[schedule], correct_reward=correct_reward)


@pytest.fixture(scope="module")
def corrected_runs() -> dict[tuple[str, str], tb.TRIRLResult]:
    return {(n, s): _run(n, s, True) for n in INSTANCES for s in SCHEDULES}


def _random_policy(rng: np.random.Generator, S: int, A: int) -> np.ndarray:
    return rng.dirichlet(np.ones(A), size=S)


def _power_iteration_occupancy(mdp: tb.DiscreteMDP, policy: np.ndarray) -> np.ndarray:
    """Occupancy by summing ``gamma^t mu_t`` forward in time (no linear solve)."""
    mu, d = mdp.mu0.copy(), np.zeros(mdp.n_states)
    for _ in range(100_000):
        d += mu
        mu = mdp.gamma * np.einsum("s,sa,sat->t", mu, policy, mdp.P)
        if mu.sum() < 1e-16:
            break
    return d[:, None] * policy


# ------------------------------------------------------------------ building blocks


@pytest.mark.parametrize("name", INSTANCES)
def test_occupancy_linear_solve_matches_power_iteration(name):
    mdp, _ = INSTANCES[name]()
    rng = np.random.default_rng(0)
    policy = _random_policy(rng, mdp.n_states, mdp.n_actions)
    rho = tb.occupancy(mdp, policy)
    assert rho.sum() == pytest.approx(1.0 / (1.0 - mdp.gamma), rel=1e-12)
    np.testing.assert_allclose(rho, _power_iteration_occupancy(mdp, policy), rtol=0, atol=1e-12)
    # Bellman flow: d(s') = mu0(s') + gamma sum_{s,a} P(s'|s,a) rho(s,a).
    flow = mdp.mu0 + mdp.gamma * np.einsum("sa,sat->t", rho, mdp.P)
    np.testing.assert_allclose(rho.sum(1), flow, rtol=0, atol=1e-12)
    # Occupancy/value duality: sum rho r = E_mu0[V_pi] for an arbitrary reward.
    r = rng.normal(size=rho.shape)
    value = tb.soft_policy_value(mdp, r, policy, temperature=0.0)
    assert np.sum(rho * r) == pytest.approx(mdp.mu0 @ value, abs=1e-10)


@pytest.mark.parametrize("temperature", [1.0, 0.3])
@pytest.mark.parametrize("name", INSTANCES)
def test_soft_value_iteration_solves_soft_bellman(name, temperature):
    mdp, reward = INSTANCES[name]()
    vi = tb.soft_value_iteration(mdp, reward, temperature=temperature)
    pi = tb.soft_policy_iteration(mdp, reward, temperature=temperature)
    for sol in (vi, pi):
        assert tb.soft_bellman_residual(mdp, reward, sol.q, temperature=temperature) < 1e-10
        lse = temperature * np.log(np.exp(sol.q / temperature).sum(1))
        np.testing.assert_allclose(sol.v, lse, rtol=0, atol=1e-12)
        np.testing.assert_allclose(sol.policy.sum(1), 1.0, rtol=0, atol=1e-14)
        np.testing.assert_allclose(sol.policy, np.exp((sol.q - sol.v[:, None]) / temperature),
                                   rtol=0, atol=1e-12)
    np.testing.assert_allclose(vi.q, pi.q, rtol=0, atol=1e-10)
    # The Boltzmann policy's own soft value is V*, and it beats other policies.
    v_own = tb.soft_policy_value(mdp, reward, vi.policy, temperature=temperature)
    np.testing.assert_allclose(v_own, vi.v, rtol=0, atol=1e-10)
    rng = np.random.default_rng(1)
    for _ in range(5):
        other = _random_policy(rng, mdp.n_states, mdp.n_actions)
        v_other = tb.soft_policy_value(mdp, reward, other, temperature=temperature)
        assert np.all(v_other <= vi.v + 1e-10)


def test_dual_gradient_matches_finite_differences():
    mdp, reward = tb.random_mdp(6, 2, gamma=0.8, seed=3)
    _, rho_e = _expert(mdp, reward)
    r = np.random.default_rng(2).normal(size=reward.shape)
    grad = tb.dual_gradient(mdp, r, rho_e, beta=3.0)
    h = 1e-5
    fd = np.zeros_like(r)
    for idx in np.ndindex(*r.shape):
        e = np.zeros_like(r)
        e[idx] = h
        fd[idx] = (tb.dual_objective(mdp, r + e, rho_e, beta=3.0)
                   - tb.dual_objective(mdp, r - e, rho_e, beta=3.0)) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=0, atol=1e-7)
    assert np.abs(grad.sum()) < 1e-10  # G is invariant to constant reward shifts


@pytest.mark.parametrize("name", INSTANCES)
def test_dual_gap_identity_and_descent_direction(name):
    """G(r) - f(rho_r) = beta * KL(rho_r || rho_hat) >= 0, and Eq. 2 descends on G."""
    mdp, reward = INSTANCES[name]()
    _, rho_e = _expert(mdp, reward)
    rng = np.random.default_rng(4)
    beta, M = 5.0, 1.0 / (1.0 - mdp.gamma)
    for _ in range(3):
        r = rng.normal(size=reward.shape)
        sol = tb.solve_soft(mdp, r)
        rho = tb.occupancy(mdp, sol.policy)
        G = tb.dual_objective(mdp, r, rho_e, beta=beta, solution=sol)
        rho_hat = rho - tb.dual_gradient(mdp, r, rho_e, beta=beta, solution=sol)
        gap = beta * M * tb.occupancy_kl(rho, rho_hat)
        assert G - tb.primal_objective(rho, rho_e, beta=beta) == pytest.approx(gap, abs=1e-9)
        # Weak duality against an arbitrary (non-optimal) policy too.
        other = tb.occupancy(mdp, _random_policy(rng, mdp.n_states, mdp.n_actions))
        assert tb.primal_objective(other, rho_e, beta=beta) <= G
        assert tb.dual_objective(mdp, r + 3.7, rho_e, beta=beta) == pytest.approx(G, abs=1e-9)
        # <delta r, grad G> = -eps beta (KL(rho||rho_hat) + KL(rho_hat||rho)) (unnormalised).
        step = (beta * tb.log_density_ratio(rho_e, rho) - r)
        inner = np.sum(step * (rho - rho_hat))
        sym_kl = M * (tb.occupancy_kl(rho, rho_hat) + tb.occupancy_kl(rho_hat, rho))
        assert inner == pytest.approx(-beta * sym_kl, rel=1e-8)
        assert inner < 0


def test_trust_region_policy_maximises_penalised_objective():
    """Lemma 3.1: MCE policy of r_eta maximises E[r~ + H - eta KL(pi || pi_old)]."""
    mdp, _ = tb.random_mdp(8, 3, gamma=0.9, seed=5)
    rng = np.random.default_rng(6)
    r_tilde = rng.normal(size=(8, 3))
    pi_old = _random_policy(rng, 8, 3)

    def objective(pi: np.ndarray, eta: float) -> float:
        rho = tb.occupancy(mdp, pi)
        return float(np.sum(rho * (r_tilde - np.log(pi) - eta * (np.log(pi) - np.log(pi_old)))))

    kl_to_old = []
    for eta in (0.0, 1.0, 10.0, 100.0):
        pi_tr = tb.solve_soft(mdp, tb.trust_region_reward(r_tilde, pi_old, eta)).policy
        best = objective(pi_tr, eta)
        for scale in (1e-3, 1e-1, 1.0):
            other = pi_tr * np.exp(scale * rng.normal(size=pi_tr.shape))
            assert objective(other / other.sum(1, keepdims=True), eta) < best
        rho = tb.occupancy(mdp, pi_tr)
        kl_to_old.append(np.sum(rho * (np.log(pi_tr) - np.log(pi_old))))
    assert np.all(np.diff(kl_to_old) < 0)  # larger eta = tighter trust region


# ----------------------------------------------------------------------------- TRIRL


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("name", INSTANCES)
def test_corrected_trirl_is_monotone(corrected_runs, name, schedule):
    res = corrected_runs[(name, schedule)]
    # The schedule itself is monotone here: no step needed backtracking (otherwise the
    # dual check below would only test the backtracking).
    assert res.backtracks.sum() == 0
    assert np.all(np.diff(res.reverse_kl) <= KL_TOL), np.diff(res.reverse_kl).max()
    assert np.all(np.diff(res.dual) <= DUAL_TOL), np.diff(res.dual).max()
    assert np.all(res.primal <= res.dual + DUAL_TOL)  # weak duality along the run
    np.testing.assert_allclose(res.eps_tr, EPSILON / (1.0 + res.eta), rtol=1e-15)


@pytest.mark.parametrize("name", INSTANCES)
def test_trirl_recovers_expert(corrected_runs, name):
    res = corrected_runs[(name, "decay-100-to-30")]
    mdp, reward = INSTANCES[name]()
    expert, rho_e = _expert(mdp, reward)
    assert res.reverse_kl[0] > 0.1  # starts far from the expert (uniform policy)
    assert res.reverse_kl[-1] < 1e-3
    # Policy-level check: expected per-state KL(pi || pi_E) under the agent's states.
    rho = tb.occupancy(mdp, res.policy)
    policy_kl = np.sum(rho * np.log(res.policy / expert)) * (1 - mdp.gamma)
    assert policy_kl < 1e-3
    # The learned reward is global: re-solving it from scratch gives the same policy.
    fresh = tb.soft_value_iteration(mdp, res.reward).policy
    assert tb.occupancy_kl(tb.occupancy(mdp, fresh), rho_e) < 1e-3
    if name == "grid5x5":  # state-only true reward: equal to it up to shaping
        state_part, _ = tb.fit_state_reward(mdp, res.reward)
        assert np.corrcoef(state_part, reward[:, 0])[0, 1] > 0.99


def test_fit_state_reward_removes_potential_shaping():
    mdp, _ = tb.random_mdp(7, 3, gamma=0.9, seed=9)
    rng = np.random.default_rng(10)
    R, phi = rng.normal(size=7), rng.normal(size=7)
    shaped = R[:, None] + mdp.gamma * mdp.expected_next(phi) - phi[:, None] + 2.0
    g, _ = tb.fit_state_reward(mdp, shaped)
    np.testing.assert_allclose(g, R - R.mean(), rtol=0, atol=1e-10)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("name", INSTANCES)
def test_theorem_3_2_corrected_reward_is_mce_for_tr_policy(corrected_runs, name, schedule):
    """pi_tr^(i) == pi_MCE(r^(i)) at every iteration, re-solved from scratch."""
    res = corrected_runs[(name, schedule)]
    mdp, _ = INSTANCES[name]()
    gaps = [np.max(np.abs(tb.soft_policy_iteration(mdp, r).policy - pi))
            for r, pi in zip(res.rewards, res.policies)]
    assert max(gaps) < 1e-8, max(gaps)
    assert res.mce_gap.max() < 1e-8


def test_theorem_3_2_with_value_iteration_and_temperature():
    """Same identity with the paper's soft VI and a non-unit entropy weight."""
    mdp, reward = tb.random_mdp(8, 3, gamma=0.9, seed=7)
    for temperature in (1.0, 0.5):
        expert = tb.solve_soft(mdp, reward, temperature=temperature).policy
        rho_e = tb.occupancy(mdp, expert)
        kw = dict(n_iter=8, beta=10.0, epsilon=0.5, eta=20.0, temperature=temperature)
        vi = tb.trirl(mdp, rho_e, solver="value_iteration", **kw)
        pi = tb.trirl(mdp, rho_e, solver="policy_iteration", **kw)
        np.testing.assert_allclose(vi.policies, pi.policies, rtol=0, atol=1e-9)
        for r, policy in zip(vi.rewards, vi.policies):
            mce = tb.soft_value_iteration(mdp, r, temperature=temperature).policy
            assert np.max(np.abs(mce - policy)) < 1e-8


def test_theorem_3_2_needs_kl_penalty_at_entropy_temperature():
    """Negative control for the derivation: weighting log pi_old by eta instead of
    alpha * eta (mismatched temperature) leaves a non-shaping residual."""
    mdp, reward = tb.random_mdp(8, 3, gamma=0.9, seed=7)
    alpha, beta, eps, eta = 0.5, 10.0, 0.5, 20.0
    rho_e = tb.occupancy(mdp, tb.solve_soft(mdp, reward, temperature=alpha).policy)
    r = np.random.default_rng(8).normal(size=reward.shape)
    pi_old = tb.solve_soft(mdp, r, temperature=alpha).policy  # MCE-optimal for r
    D = tb.log_density_ratio(rho_e, tb.occupancy(mdp, pi_old))
    r_tilde = (1 - eps) * r + eps * beta * D
    eps_tr = eps / (1 + eta)
    target = tb.solve_soft(mdp, (1 - eps_tr) * r + eps_tr * beta * D, temperature=alpha).policy
    for wrong_scale, expect_equal in ((alpha, True), (1.0, False)):
        r_eta = tb.trust_region_reward(r_tilde, pi_old, eta, temperature=wrong_scale)
        pi_tr = tb.solve_soft(mdp, r_eta, temperature=alpha).policy
        assert (np.max(np.abs(pi_tr - target)) < 1e-10) == expect_equal


def test_uncorrected_trirl_violates_monotonicity():
    """Ablation (eta ignored in the reward): search a fixed set of instances and eta
    schedules; at least one run must lose monotonicity of the reverse KL and of the
    dual, clearly above rounding, and Theorem 3.2 must fail."""
    kl_jumps, dual_jumps = {}, {}
    for name in INSTANCES:
        for schedule in SCHEDULES:
            res = _run(name, schedule, correct_reward=False)
            kl_jumps[(name, schedule)] = np.diff(res.reverse_kl).max()
            dual_jumps[(name, schedule)] = np.diff(res.dual).max()
            assert res.mce_gap[1:].max() > 1e-2
    assert max(kl_jumps.values()) > 1e-6, kl_jumps
    assert max(dual_jumps.values()) > 1e-3, dual_jumps


def test_gridworld_layout():
    gw = tb.make_gridworld(4, 6, slip=0.2, goal=((0, 5),), hazards=((2, 2),), with_stay=False)
    assert gw.mdp.P.shape == (24, 4, 24) and gw.shape == (4, 6)
    s = 0  # top-left corner: "up" bumps into the wall and stays put w.p. 1 - slip + slip/4
    assert gw.mdp.P[s, 0, s] == pytest.approx(0.8 + 0.2 * 2 / 4)  # up and left both bump
    assert gw.mdp.P[s, 1, 1] == pytest.approx(0.8 + 0.2 / 4)  # right
    assert gw.reward[5].tolist() == [1.0] * 4 and gw.reward[2 * 6 + 2, 0] == -1.0
    assert gw.cell(13) == (2, 1)


def test_gridworld_example_writes_figure(tmp_path, capsys):
    """examples/gridworld.py (the Figure-2-style picture) runs end to end and reports
    a monotone run and the Theorem 3.2 identity."""
    from trirl.examples import gridworld

    out = tmp_path / "gw.png"
    gridworld.main(["-o", str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "monotone: True" in printed


# ------------------------------------------- step-size bound (issue 31): icy gridworld

ICY_N, ICY_SLIP, ICY_GAMMA = 5, 0.2, 0.99
ICY_MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))  # up, right, down, left


def _icy_gridworld() -> tuple[tb.DiscreteMDP, np.ndarray]:
    """The issue's grid, built from its description: 5 x 5, 4 moves; with probability
    0.2 the executed move is drawn uniformly from all 4 (the intended one included);
    moving into a wall stays put; start in the top-left corner; the bottom-right corner
    is an absorbing goal (every action stays there) with reward 0; -1 per step elsewhere."""
    n, S, A = ICY_N, ICY_N * ICY_N, len(ICY_MOVES)
    goal = S - 1

    def successor(s: int, move: tuple[int, int]) -> int:
        row, col = divmod(s, n)
        row, col = row + move[0], col + move[1]
        return row * n + col if 0 <= row < n and 0 <= col < n else s

    P = np.zeros((S, A, S))
    for s in range(S):
        for a in range(A):
            if s == goal:
                P[s, a, s] = 1.0
                continue
            P[s, a, successor(s, ICY_MOVES[a])] += 1.0 - ICY_SLIP
            for b in range(A):
                P[s, a, successor(s, ICY_MOVES[b])] += ICY_SLIP / A
    mu0 = np.zeros(S)
    mu0[0] = 1.0
    reward = np.full((S, A), -1.0)
    reward[goal] = 0.0
    return tb.DiscreteMDP(P, mu0, ICY_GAMMA), reward


@pytest.fixture(scope="module")
def icy() -> dict:
    mdp, reward = _icy_gridworld()
    expert, rho_e = _expert(mdp, reward)
    return dict(mdp=mdp, reward=reward, expert=expert, rho_e=rho_e)


def test_icy_gridworld_layout(icy):
    """Hand-computed rows of P, the absorbing goal, and the expert's support."""
    P = icy["mdp"].P
    # Top-left corner, "up": up and left bump the walls (0.8 + 2 * 0.05); right, down 0.05.
    assert P[0, 0, 0] == pytest.approx(0.9) and P[0, 0, 1] == pytest.approx(0.05)
    assert P[0, 0, 5] == pytest.approx(0.05)
    # Centre (2, 2) = state 12, "right": 0.85 to (2, 3), 0.05 to each other neighbour.
    assert P[12, 1, 13] == pytest.approx(0.85)
    assert [P[12, 1, t] for t in (7, 17, 11)] == pytest.approx([0.05] * 3)
    assert np.all(P[24, :, 24] == 1.0) and icy["reward"][24].tolist() == [0.0] * 4
    # Every state-action pair is visited (log-ratios are finite), by a margin.
    assert icy["rho_e"].min() > 1e-3
    assert icy["rho_e"][24].sum() > 0.8 / (1 - ICY_GAMMA)  # mostly time in the goal


def test_occupancy_sensitivity_matches_finite_differences():
    """H = d rho_{pi_r} / d r (analytic) against central differences of the exact
    occupancy of the re-solved soft-optimal policy, at a non-unit temperature."""
    mdp, _ = tb.random_mdp(5, 3, gamma=0.9, seed=11)
    alpha = 0.5
    r = np.random.default_rng(12).normal(size=(5, 3))
    H = tb.occupancy_sensitivity(mdp, tb.solve_soft(mdp, r, temperature=alpha).policy,
                                 temperature=alpha)

    def rho_of(reward):
        return tb.occupancy(mdp, tb.solve_soft(mdp, reward, temperature=alpha).policy).ravel()

    h, fd = 1e-5, np.zeros_like(H)
    for k in range(r.size):
        e = np.zeros(r.size)
        e[k] = h
        fd[:, k] = (rho_of(r + e.reshape(r.shape)) - rho_of(r - e.reshape(r.shape))) / (2 * h)
    np.testing.assert_allclose(H, fd, rtol=0, atol=1e-8)
    np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-12)


def test_step_size_bound_of_a_bandit_is_one_over_temperature():
    """gamma = 0: rho = mu0 pi, H = mu0 (diag pi - pi pi^T) / alpha per state, so
    diag(rho)^-1 H has eigenvalues 1/alpha and 0: mu = 1/alpha whatever the policy."""
    rng = np.random.default_rng(13)
    P = rng.dirichlet(np.ones(4), size=(4, 3))
    mdp = tb.DiscreteMDP(P, rng.dirichlet(np.ones(4)), 0.0)
    policy = _random_policy(rng, 4, 3)
    for alpha in (1.0, 0.25):
        bound = tb.step_size_bound(mdp, policy, beta=7.0, temperature=alpha)
        assert bound.mu == pytest.approx(1.0 / alpha, rel=1e-12)
        assert bound.eps_tr_max == pytest.approx(2.0 / (1.0 + 7.0 / alpha), rel=1e-12)


ICY_CONFIGS = [(50.0, 0.01, 0.1), (50.0, 0.005, 0.1), (20.0, 0.02, 0.1), (50.0, 0.01, 1.0)]


@pytest.mark.parametrize("beta,epsilon,eta", ICY_CONFIGS)
def test_icy_gridworld_dual_monotone_and_converges(icy, beta, epsilon, eta):
    """The issue's grid of settings, 400 iterations: the dual never rises, the reverse KL
    ends below 1e-4, Theorem 3.2 stays exact at every step, and only the setting that
    violates eps_tr (1 + beta mu) < 2 at the optimum needed a tighter trust region."""
    mdp, rho_e = icy["mdp"], icy["rho_e"]
    res = tb.trirl(mdp, rho_e, n_iter=400, beta=beta, epsilon=epsilon, eta=eta)
    assert np.diff(res.dual).max() <= 1e-9, np.diff(res.dual).max()
    assert res.reverse_kl[-1] < 1e-4
    assert res.mce_gap.max() < 1e-11
    np.testing.assert_allclose(res.eps_tr, epsilon / (1.0 + res.eta), rtol=1e-15)
    assert np.all(res.eta >= eta)
    bound = tb.step_size_bound(mdp, res.policy, beta=beta)
    outside = epsilon / (1.0 + eta) > bound.eps_tr_max
    assert outside == ((beta, epsilon, eta) == (50.0, 0.01, 0.1))
    assert (res.backtracks.sum() > 0) == outside
    # Backtracked steps use (1 + eta) 2^k, exactly.
    np.testing.assert_allclose(1.0 + res.eta, (1.0 + eta) * 2.0**res.backtracks, rtol=1e-15)


def test_icy_gridworld_instability_is_the_predicted_mode(icy):
    """Without backtracking the authors' setting (beta 50, eps 0.01, eta 0.1) is the
    issue's failure, and it is the exact map's unstable mode, not rounding: the reward's
    component along the top left eigenvector of diag(rho*)^-1 H flips sign and grows by
    exactly |1 - eps_tr (1 + beta mu)| per step.  That eigenvector is antisymmetric under
    the grid's diagonal mirror while the exact iterates are symmetric, so the component
    starts at 0 and only rounding seeds it."""
    mdp, rho_e = icy["mdp"], icy["rho_e"]
    beta, epsilon, eta = 50.0, 0.01, 0.1
    eps_tr = epsilon / (1 + eta)
    stable = tb.trirl(mdp, rho_e, n_iter=400, beta=beta, epsilon=epsilon, eta=1.0)
    rho = tb.occupancy(mdp, stable.policy).ravel()  # the optimum, to ~1e-12
    w = np.sqrt(rho)
    sym = tb.occupancy_sensitivity(mdp, stable.policy) / np.outer(w, w)
    mus, vecs = np.linalg.eigh(sym)
    left = w * vecs[:, -1]  # left eigenvector of diag(rho)^-1 H for mu = mus[-1]
    assert mus[-1] == pytest.approx(tb.step_size_bound(mdp, stable.policy, beta=beta).mu)
    factor = 1.0 - eps_tr * (1.0 + beta * mus[-1])
    assert factor < -1.0  # outside the bound: 2.15 > 2

    res = tb.trirl(mdp, rho_e, n_iter=400, beta=beta, epsilon=epsilon, eta=eta,
                   backtrack=False)
    assert np.diff(res.dual).max() > 1.0  # the issue: the dual rises ...
    assert res.reverse_kl[-1] > 1e-2  # ... and the reverse KL climbs
    assert res.mce_gap.max() < 1e-11  # while every step stays exact
    proj = res.rewards.reshape(len(res.rewards), -1) @ left
    # The linear regime: amplitudes 1e-7 .. 1e-3, past the rounding that seeds the mode
    # and before the nonlinearity. Chosen by amplitude, not by iteration: when rounding
    # seeds it depends on the machine's BLAS (iterations 100-170 on one, 150-210 on another).
    linear = np.flatnonzero((np.abs(proj[:-1]) >= 1e-7) & (np.abs(proj[:-1]) <= 1e-3))
    assert len(linear) >= 30 and np.all(np.diff(linear) == 1)
    ratios = proj[linear + 1] / proj[linear]
    np.testing.assert_allclose(ratios, factor, rtol=1e-6)
    assert abs(proj[1]) < 1e-12  # seeded by rounding only (~1e-14; machine-dependent)
    # The mirror (row, col) -> (col, row) swaps up/left and right/down.
    mirror_s = [(s % ICY_N) * ICY_N + s // ICY_N for s in range(ICY_N**2)]
    L = left.reshape(ICY_N**2, 4)
    np.testing.assert_allclose(L[mirror_s][:, [3, 2, 1, 0]], -L, rtol=0, atol=1e-12)


def test_trirl_rejects_inconsistent_backtracking_options(icy):
    kw = dict(n_iter=1, beta=5.0, epsilon=0.5, eta=1.0)
    with pytest.raises(TrirlError, match="needs correct_reward=True") as info:
        tb.trirl(icy["mdp"], icy["rho_e"], correct_reward=False, backtrack=True, **kw)
    assert "\n" not in str(info.value)
    with pytest.raises(TrirlError, match="max_backtracks must be >= 0"):
        tb.trirl(icy["mdp"], icy["rho_e"], max_backtracks=-1, **kw)
    never_visited = np.zeros((25, 4))
    never_visited[:, 0] = 1.0  # "up" only: most states are never reached
    with pytest.raises(TrirlError, match="visits every state-action pair"):
        tb.step_size_bound(icy["mdp"], never_visited, beta=5.0)


# --------------------------------------------------- property tests: random small MDPs

_MDPS = st.tuples(st.integers(2, 6), st.integers(2, 3), st.floats(0.3, 0.95),
                  st.integers(0, 2**31 - 1))


@settings(max_examples=25, deadline=None)
@given(mdp_args=_MDPS, beta=st.floats(0.5, 60.0), epsilon=st.floats(0.05, 1.0),
       eta=st.floats(0.0, 3.0))
def test_property_backtracked_trirl_is_monotone_and_exact(mdp_args, beta, epsilon, eta):
    """Any small MDP and any step sizes (many far outside the bound): the dual never
    rises beyond rounding, Theorem 3.2 holds at every step, and the steps are the
    schedule's or exact halvings of it."""
    S, A, gamma, seed = mdp_args
    mdp, reward = tb.random_mdp(S, A, gamma=gamma, seed=seed)
    _, rho_e = _expert(mdp, reward)
    res = tb.trirl(mdp, rho_e, n_iter=30, beta=beta, epsilon=epsilon, eta=eta)
    assert np.diff(res.dual).max() <= 1e-9
    assert res.mce_gap.max() < 1e-9
    assert np.all(res.primal <= res.dual + 1e-9)  # weak duality
    np.testing.assert_allclose(1.0 + res.eta, (1.0 + eta) * 2.0**res.backtracks, rtol=1e-14)


@settings(max_examples=15, deadline=None)
@given(mdp_args=_MDPS, beta=st.floats(0.5, 60.0), eps_tr=st.floats(0.01, 1.0))
def test_property_step_jacobian_is_the_bound_s_matrix(mdp_args, beta, eps_tr):
    """The bound's derivation on random MDPs: the Jacobian of one exact TRIRL step
    r -> r^(i+1) (finite differences through trirl_step, with pi = pi_MCE(r)) is
    (1 - eps_tr) I - eps_tr beta diag(rho)^-1 H."""
    S, A, gamma, seed = mdp_args
    mdp, reward = tb.random_mdp(S, A, gamma=gamma, seed=seed)
    _, rho_e = _expert(mdp, reward)
    r0 = np.random.default_rng(seed).normal(scale=0.5, size=(S, A))
    eta = 1.0 / eps_tr - 1.0  # epsilon = 1, so that eps / (1 + eta) = eps_tr

    def step(r):
        policy = tb.solve_soft(mdp, r).policy
        out = tb.trirl_step(mdp, rho_e, r, policy, beta=beta, epsilon=1.0, eta=eta)
        return out.reward.ravel()

    h, n = 1e-6, S * A
    jac = np.zeros((n, n))
    for k in range(n):
        e = np.zeros(n)
        e[k] = h
        jac[:, k] = (step(r0 + e.reshape(S, A)) - step(r0 - e.reshape(S, A))) / (2 * h)
    policy = tb.solve_soft(mdp, r0).policy
    rho = tb.occupancy(mdp, policy).ravel()
    H = tb.occupancy_sensitivity(mdp, policy)
    expected = (1.0 - eps_tr) * np.eye(n) - eps_tr * beta * H / rho[:, None]
    scale = 1.0 + eps_tr * beta * np.abs(H / rho[:, None]).max()
    np.testing.assert_allclose(jac, expected, rtol=0, atol=1e-6 * scale)
