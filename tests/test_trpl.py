"""Tests for trirl.trpl (KL trust-region projection layer) against float64 references.

The references are independent of the module's solver: KLs from full-matrix NumPy
formulas (slogdet / inv / trace), the projections from scipy SLSQP on the constrained
primal problems, the covariance multiplier from a bounded scalar minimisation of Otto
et al.'s dual g(eta) as written in their C++ solver, and gradients from central finite
differences of the forward pass.

Every JAX function is jitted once at module level and called with a handful of fixed
shapes (B = 6, d = 3 unless stated), so the file compiles ~10 XLA programs in total.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from scipy import optimize

from trirl import trpl

B, D = 6, 3


@pytest.fixture(scope="module", autouse=True)
def _x64():
    # Scoped to this module so other test modules keep JAX's float32 default.
    with jax.enable_x64(True):
        yield


# ----------------------------------------------------------------------------- references


def np_mean_kl(mean, old_mean, old_std):
    """1/2 (mu - mu_old)^T Sigma_old^-1 (mu - mu_old) with an explicit matrix inverse."""
    out = []
    for m, mo, so in zip(*np.broadcast_arrays(mean, old_mean, old_std)):
        diff = m - mo
        out.append(0.5 * diff @ np.linalg.inv(np.diag(so ** 2)) @ diff)
    return np.array(out)


def np_cov_kl(std, old_std):
    """KL(N(0, diag std^2) || N(0, diag old_std^2)) via slogdet and trace, per row."""
    std, old_std = np.broadcast_arrays(np.atleast_2d(std), np.atleast_2d(old_std))
    out = []
    for s, so in zip(std, old_std):
        cov, cov_old = np.diag(s ** 2), np.diag(so ** 2)
        logdet_old, logdet = np.linalg.slogdet(cov_old)[1], np.linalg.slogdet(cov)[1]
        out.append(0.5 * (logdet_old - logdet + np.trace(np.linalg.inv(cov_old) @ cov) - len(s)))
    return np.array(out)


def _slsqp(obj, x0, cons):
    res = optimize.minimize(obj, x0, jac=True, method="SLSQP", constraints=[cons],
                            options={"ftol": 1e-12, "maxiter": 1000})
    # status 8 ("positive directional derivative in line search") is SLSQP running out of
    # float64 precision at the optimum; the comparisons in the tests judge the point.
    assert res.status in (0, 8), res.message
    # Feasible up to SLSQP's own precision: the constraint is scaled by the bound (O(1)),
    # and SLSQP stopping with status 8 lands up to ~1.4e-8 outside it on one of this
    # file's problems (with NumPy 2.4 and SciPy 1.15 or 1.17 alike; the last bits of the
    # arithmetic decide), far below the 1e-5 the tests compare the points with.
    assert cons["fun"](res.x) > -1e-7
    return res.x


def slsqp_mean(mean, old_mean, old_std, bound):
    """argmin_m 1/2 (m-mean)^T S_old^-1 (m-mean)  s.t.  1/2 (m-old)^T S_old^-1 (m-old) <= bound."""
    prec = 1.0 / old_std ** 2
    obj = lambda m: (0.5 * np.sum(prec * (m - mean) ** 2) / bound, prec * (m - mean) / bound)
    cons = {"type": "ineq",
            "fun": lambda m: 1.0 - 0.5 * np.sum(prec * (m - old_mean) ** 2) / bound,
            "jac": lambda m: -prec * (m - old_mean) / bound}
    return _slsqp(obj, old_mean.copy(), cons)


def slsqp_cov(std, old_std, bound):
    """argmin_S KL(N(0,S) || N(0,Sigma)) s.t. KL(N(0,S) || N(0,Sigma_old)) <= bound, S diagonal.

    Optimised over y = log diag(S), started at the old covariance (feasible).
    """
    lv, lvo = 2 * np.log(std), 2 * np.log(old_std)

    def kl(y, ref):
        z = y - ref
        return 0.5 * np.sum(np.exp(z) - 1.0 - z), 0.5 * (np.exp(z) - 1.0)

    obj = lambda y: tuple(np.asarray(a) / bound for a in kl(y, lv))
    cons = {"type": "ineq", "fun": lambda y: 1.0 - kl(y, lvo)[0] / bound,
            "jac": lambda y: -kl(y, lvo)[1] / bound}
    return np.exp(0.5 * _slsqp(obj, lvo.copy(), cons))


def otto_dual(eta, std, old_std, bound):
    """Otto et al.'s KL covariance dual (their C++ DiagCovOnlyKLProjection::dual), minimised."""
    old_prec, prec = 1.0 / old_std ** 2, 1.0 / std ** 2
    new_prec = (eta * old_prec + prec) / (eta + 1.0)
    old_logdet, new_logdet = -np.sum(np.log(old_prec)), -np.sum(np.log(new_prec))
    return eta * bound - 0.5 * eta * old_logdet + 0.5 * (eta + 1.0) * new_logdet


def random_problem(rng, d, active_mean, active_cov, state_dependent=True):
    """Raw/old Gaussians whose KL parts are 1.5-30x (active) or <= 0.5x (inactive) the bound.

    ``active_mean``: bool per state; ``active_cov``: bool per state (state-dependent std)
    or a scalar bool (state-independent std of shape (d,)).
    """
    active_mean = np.asarray(active_mean)
    batch = len(active_mean)
    mean_bound, cov_bound = 10 ** rng.uniform(-3.5, -2), 10 ** rng.uniform(-3.5, -2)
    old_mean = rng.normal(size=(batch, d))
    std_shape = (batch, d) if state_dependent else (d,)
    old_std = np.exp(rng.normal(scale=0.5, size=std_shape))
    dm = rng.normal(size=(batch, d))
    dm *= np.sqrt(mean_bound / np_mean_kl(dm, 0.0 * dm, old_std))[:, None]  # d_mean == bound
    scale = np.where(active_mean, rng.uniform(1.3, 5.0, batch), rng.uniform(0.0, 0.7, batch))
    mean = old_mean + dm * scale[:, None]
    # step along a random log-std direction until the cov KL is `factor` x the bound
    cov_rows = np.atleast_1d(active_cov)
    factors = np.where(cov_rows, rng.uniform(1.5, 30.0, cov_rows.shape), rng.uniform(0.05, 0.5, cov_rows.shape))
    old_rows = np.atleast_2d(old_std)
    std_rows = np.empty_like(old_rows)
    for i, f in enumerate(factors):
        u = rng.normal(size=d)
        u /= np.linalg.norm(u)
        g = lambda a: np_cov_kl(old_rows[i] * np.exp(a * u), old_rows[i])[0] - f * cov_bound
        std_rows[i] = old_rows[i] * np.exp(optimize.brentq(g, 0.0, 50.0, xtol=1e-14) * u)
    return dict(mean=mean, std=std_rows.reshape(std_shape), old_mean=old_mean, old_std=old_std,
                mean_bound=mean_bound, cov_bound=cov_bound)


# ----------------------------------------------------------------------------- jitted code
#
# Compiling the layer dominates the runtime, so one jitted function returns everything the
# tests look at (outputs, a scalar objective, its gradients, the trust-region loss and its
# gradients) and finite differences re-call it instead of compiling a batched variant.

ARGS = ("mean", "std", "old_mean", "old_std", "mean_bound", "cov_bound")


def _objective(mean, std, old_mean, old_std, mean_bound, cov_bound, weights):
    """A scalar that depends on every output of the layer (incl. both multipliers)."""
    w_mean, w_std, w_eta = weights
    out = trpl.project(mean, std, old_mean, old_std, mean_bound, cov_bound)
    return (jnp.sum(w_mean * out.mean) + jnp.sum(w_std * jnp.log(out.std)) + jnp.sum(out.std ** 2)
            + jnp.sum(w_eta * out.eta_cov) + 0.1 * jnp.sum(out.eta_mean))


def _tr_loss(mean, std, old_mean, old_std, mean_bound, cov_bound):
    out = trpl.project(mean, std, old_mean, old_std, mean_bound, cov_bound)
    return trpl.trust_region_loss(out, mean, std)


def _layer(mean, std, old_mean, old_std, mean_bound, cov_bound, weights):
    args = (mean, std, old_mean, old_std, mean_bound, cov_bound)
    obj, obj_grads = jax.value_and_grad(_objective, argnums=(0, 1, 2, 3))(*args, weights)
    tr, tr_grads = jax.value_and_grad(_tr_loss, argnums=(0, 1, 2, 3))(*args)
    return dict(out=trpl.project(*args), obj=obj, obj_grads=obj_grads, tr=tr, tr_grads=tr_grads)


_layer_jit = jax.jit(_layer)
_project = jax.jit(trpl.project)


def run(p, weights=None):
    if weights is None:
        n_cov = np.shape(p["std"])[:-1]
        weights = (np.ones(np.shape(p["mean"])), np.ones(np.shape(p["std"])), np.ones(n_cov))
    return _layer_jit(*(p[k] for k in ARGS), weights)


def fd_gradient(fun, mean, std, h=1e-6):
    """Central differences of the scalar fun(mean, std) in every coordinate."""
    flat, unravel = ravel_pytree((np.asarray(mean), np.asarray(std)))
    flat = np.asarray(flat)
    out = np.empty(flat.size)
    for i in range(flat.size):
        step = np.zeros_like(flat)
        step[i] = h
        out[i] = (float(fun(*unravel(flat + step))) - float(fun(*unravel(flat - step)))) / (2 * h)
    return out


# ----------------------------------------------------------------------------- KL pieces


def test_kl_pieces_match_matrix_formulas():
    rng = np.random.default_rng(0)
    mean, old_mean = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    std, old_std = np.exp(rng.normal(size=(5, 3))), np.exp(rng.normal(size=(5, 3)))
    np.testing.assert_allclose(trpl.mean_kl(mean, old_mean, old_std), np_mean_kl(mean, old_mean, old_std), rtol=1e-12)
    np.testing.assert_allclose(trpl.cov_kl(std, old_std), np_cov_kl(std, old_std), rtol=1e-12)
    np.testing.assert_allclose(trpl.gaussian_kl(mean, std, old_mean, old_std),
                               np_mean_kl(mean, old_mean, old_std) + np_cov_kl(std, old_std), rtol=1e-12)
    # state-independent std: one covariance term shared by all states
    assert trpl.cov_kl(std[0], old_std[0]).shape == ()
    np.testing.assert_allclose(trpl.gaussian_kl(mean, std[0], old_mean, old_std[0]),
                               np_mean_kl(mean, old_mean, old_std[0]) + np_cov_kl(std[0], old_std[0])[0],
                               rtol=1e-12)
    # relative accuracy for small differences (log1p/expm1 form); the naive log-det +
    # trace formula has ~1e-16 absolute error, i.e. ~1e-4 relative at this size.
    close = std * (1 + 1e-6)
    v = 2 * np.log1p((close - std) / std)
    np.testing.assert_allclose(trpl.cov_kl(close, std), np.sum(v ** 2 / 4 * (1 + v / 3 + v ** 2 / 12), -1),
                               rtol=1e-8)


# ----------------------------------------------------------------------------- trust region


def _check_bounds(p, out, act_mean, act_cov):
    d_mean = np_mean_kl(np.asarray(out.mean), p["old_mean"], p["old_std"])
    assert np.all(d_mean <= p["mean_bound"] + 1e-6)
    np.testing.assert_allclose(d_mean[act_mean], p["mean_bound"], rtol=1e-9)
    np.testing.assert_array_equal(np.asarray(out.mean)[~act_mean], p["mean"][~act_mean])
    eta_mean = np.asarray(out.eta_mean)
    assert np.all(eta_mean[act_mean] > 0) and np.all(eta_mean[~act_mean] == 0)

    d_cov = np_cov_kl(np.asarray(out.std), p["old_std"])
    act_cov = np.atleast_1d(act_cov)
    assert np.all(d_cov <= p["cov_bound"] + 1e-6)
    np.testing.assert_allclose(d_cov[act_cov], p["cov_bound"], rtol=1e-9)
    np.testing.assert_array_equal(np.atleast_2d(out.std)[~act_cov], np.atleast_2d(p["std"])[~act_cov])
    eta_cov = np.atleast_1d(np.asarray(out.eta_cov))
    assert np.all(eta_cov[act_cov] > 0) and np.all(eta_cov[~act_cov] == 0)

    # the closed forms of paper C.3, evaluated with the returned multipliers
    eta_m = eta_mean[:, None]
    np.testing.assert_allclose(out.mean, (p["mean"] + eta_m * p["old_mean"]) / (1 + eta_m), rtol=1e-12, atol=1e-12)
    eta_c = np.asarray(out.eta_cov)[..., None]
    prec = (p["std"] ** -2.0 + eta_c * p["old_std"] ** -2.0) / (1 + eta_c)
    np.testing.assert_allclose(out.std, prec ** -0.5, rtol=1e-12)


def test_state_dependent_projection_satisfies_bounds_and_keeps_feasible():
    rng = np.random.default_rng(1)
    act_mean = np.array([1, 0, 1, 1, 0, 0], bool)
    act_cov = np.array([1, 1, 0, 1, 0, 1], bool)
    p = random_problem(rng, D, act_mean, act_cov)
    out = run(p)["out"]
    assert out.mean.shape == (B, D) and out.std.shape == (B, D)
    assert out.eta_mean.shape == (B,) and out.eta_cov.shape == (B,)
    _check_bounds(p, out, act_mean, act_cov)


@pytest.mark.parametrize("act_cov", [True, False])
def test_state_independent_projection_satisfies_bounds_and_keeps_feasible(act_cov):
    rng = np.random.default_rng(2 + act_cov)
    act_mean = np.array([0, 1, 1, 0, 1, 1], bool)
    p = random_problem(rng, D, act_mean, np.array(act_cov), state_dependent=False)
    out = run(p)["out"]
    assert out.std.shape == (D,) and out.eta_cov.shape == ()
    _check_bounds(p, out, act_mean, act_cov)


def test_projection_is_the_constrained_minimiser():
    """SLSQP on the mean and covariance problems, d = 1..6, three instances each.

    All 18 instances go through one jitted call with d = 6: dimensions beyond an
    instance's own d are padded with mean = old mean and std = old std, which add 0 to
    every KL and must come back unchanged (checked).
    """
    rng = np.random.default_rng(4)
    dmax, per_d = 6, 3
    probs = [(d, random_problem(rng, d, np.ones(1, bool), np.ones(1, bool))) for d in range(1, dmax + 1)
             for _ in range(per_d)]
    pad = lambda a, fill: np.concatenate([a[0], fill[: dmax - a.shape[1]]])
    fill_mean, fill_std = rng.normal(size=dmax), np.exp(rng.normal(size=dmax))
    mean = np.stack([pad(q["mean"], fill_mean) for _, q in probs])
    old_mean = np.stack([pad(q["old_mean"], fill_mean) for _, q in probs])
    std = np.stack([pad(q["std"], fill_std) for _, q in probs])
    old_std = np.stack([pad(q["old_std"], fill_std) for _, q in probs])
    mean_bound = np.array([q["mean_bound"] for _, q in probs])
    cov_bound = np.array([q["cov_bound"] for _, q in probs])
    out = _project(mean, std, old_mean, old_std, mean_bound, cov_bound)

    for i, (d, q) in enumerate(probs):
        np.testing.assert_array_equal(out.mean[i, d:], mean[i, d:])
        np.testing.assert_array_equal(out.std[i, d:], std[i, d:])
        args = (q["old_std"][0], q["mean_bound"])
        ref_mean = slsqp_mean(q["mean"][0], q["old_mean"][0], *args)
        np.testing.assert_allclose(out.mean[i, :d], ref_mean, rtol=1e-5, atol=1e-6)
        ref_std = slsqp_cov(q["std"][0], q["old_std"][0], q["cov_bound"])
        np.testing.assert_allclose(out.std[i, :d], ref_std, rtol=1e-5)
        # the multiplier minimises Otto et al.'s dual g(eta) (bounded Brent on g itself)
        eta = float(out.eta_cov[i])
        dual_args = (q["std"][0], q["old_std"][0], q["cov_bound"])
        ref = optimize.minimize_scalar(otto_dual, bounds=(0.0, 10 * eta + 10), args=dual_args,
                                       method="bounded", options={"xatol": 1e-12})
        assert otto_dual(eta, *dual_args) <= ref.fun + 1e-12
        np.testing.assert_allclose(eta, ref.x, rtol=1e-4)


def test_state_independent_std_matches_slsqp():
    rng = np.random.default_rng(5)
    p = random_problem(rng, D, np.ones(B, bool), np.array(True), state_dependent=False)
    out = run(p)["out"]
    np.testing.assert_allclose(out.std, slsqp_cov(p["std"], p["old_std"], p["cov_bound"]), rtol=1e-5)
    for i in range(B):
        ref = slsqp_mean(p["mean"][i], p["old_mean"][i], p["old_std"], p["mean_bound"])
        np.testing.assert_allclose(out.mean[i], ref, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("state_dependent,act_cov", [(True, None), (False, True), (False, False)])
def test_gradients_match_finite_differences(state_dependent, act_cov):
    """jax.grad through the layer vs central differences, active and inactive constraints.

    The state-dependent batch mixes active and inactive states for both parts; inactive
    states must get the plain (unprojected) gradient.
    """
    rng = np.random.default_rng(6 + 2 * state_dependent + bool(act_cov))
    act_mean = np.array([1, 1, 0, 1, 0, 0], bool)
    if state_dependent:
        act_cov = np.array([1, 0, 1, 0, 1, 0], bool)
    p = random_problem(rng, D, act_mean, np.asarray(act_cov), state_dependent)
    weights = (rng.normal(size=(B, D)), rng.normal(size=p["std"].shape), rng.normal(size=np.shape(act_cov)))
    res = run(p, weights)
    g_mean, g_std, g_old_mean, g_old_std = res["obj_grads"]
    grad = np.concatenate([np.ravel(g_mean), np.ravel(g_std)])
    assert np.all(np.isfinite(grad))
    fd = fd_gradient(lambda m, s: run(dict(p, mean=m, std=s), weights)["obj"], p["mean"], p["std"])
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-7)
    # the old policy is a constant
    assert np.all(np.asarray(g_old_mean) == 0) and np.all(np.asarray(g_old_std) == 0)
    # where nothing is projected the layer is the identity
    np.testing.assert_allclose(np.asarray(g_mean)[~act_mean], weights[0][~act_mean], rtol=1e-12)
    inactive_std = np.broadcast_to(~np.asarray(act_cov), np.shape(p["std"])[:-1])
    plain = weights[1] / p["std"] + 2 * p["std"]
    np.testing.assert_allclose(np.asarray(g_std)[inactive_std], plain[inactive_std], rtol=1e-12)


@pytest.mark.parametrize("state_dependent", [True, False])
def test_trust_region_loss(state_dependent):
    rng = np.random.default_rng(9 + state_dependent)
    act_cov = np.array([1, 0, 1, 1, 0, 1], bool) if state_dependent else np.array(True)
    p = random_problem(rng, D, np.array([1, 1, 0, 1, 1, 0], bool), act_cov, state_dependent)
    res = run(p)
    mean, std = p["mean"], p["std"]
    t_mean, t_std = np.asarray(res["out"].mean), np.asarray(res["out"].std)
    kl = np_mean_kl(mean, t_mean, t_std) + np_cov_kl(std, t_std)
    np.testing.assert_allclose(res["tr"], np.mean(kl), rtol=1e-10)
    assert res["tr"] > 0
    # The projected side is a frozen target: the gradient through the whole layer is the
    # analytic gradient of mean_s KL(raw || fixed target) (a state-independent cov term
    # is a single term, not averaged), and the old policy gets none.
    g_mean, g_std, g_old_mean, g_old_std = res["tr_grads"]
    np.testing.assert_allclose(g_mean, (mean - t_mean) / t_std ** 2 / B, rtol=1e-10, atol=1e-14)
    n_cov = B if state_dependent else 1
    np.testing.assert_allclose(g_std, (std / t_std ** 2 - 1 / std) / n_cov, rtol=1e-10, atol=1e-14)
    assert np.all(np.asarray(g_old_mean) == 0) and np.all(np.asarray(g_old_std) == 0)
    # nothing to regress when nothing was projected
    q = dict(p, mean_bound=np.float64(1e3), cov_bound=np.float64(1e3))
    assert run(q)["tr"] == 0.0


# ----------------------------------------------------------------------------- robustness


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_inputs_are_finite(dtype):
    """Stds at 1e-4 / 1 / 1e2 against old stds at 1e-4 / 1 / 1e2, means equal to the old
    mean, a std equal to the old std and one a hair off it: outputs and gradients finite,
    bounds hold. Run as two (6, 3) batches so float64 reuses the other tests' program."""
    pairs = [(s, so) for s in (1e-4, 1.0, 1e2) for so in (1e-4, 1.0, 1e2)]
    std = np.array([[1.5 * s, s, s] for s, _ in pairs] + [[0.3] * 3, [0.3 * (1 + 1e-7)] * 3, [7.0, 0.2, 1.0]])
    old_std = np.array([[so] * 3 for _, so in pairs] + [[0.3] * 3, [0.3] * 3, [1.0] * 3])
    old_mean = np.zeros_like(std)
    mean = old_mean + np.where(np.arange(len(std))[:, None] % 2 == 0, 3.0 * old_std, 0.0)
    bound = np.asarray(1e-3, dtype)
    cast = lambda a: np.asarray(a, dtype)
    for rows in (slice(0, B), slice(B, 2 * B)):
        p = dict(mean=cast(mean[rows]), std=cast(std[rows]), old_mean=cast(old_mean[rows]),
                 old_std=cast(old_std[rows]), mean_bound=bound, cov_bound=bound)
        res = run(p)
        out = res["out"]
        for leaf in (*out, *res["obj_grads"], *res["tr_grads"], res["tr"]):
            assert leaf.dtype == dtype
            assert np.all(np.isfinite(np.asarray(leaf))), leaf
        assert np.all(np.asarray(out.eta_cov) >= 0) and np.all(np.asarray(out.eta_mean) >= 0)
        tol = 1e-6 if dtype == np.float64 else 2e-5  # relative; float64 reference on the outputs
        d_cov = np_cov_kl(np.asarray(out.std, np.float64), np.asarray(old_std[rows]))
        d_mean = np_mean_kl(np.asarray(out.mean, np.float64), old_mean[rows], old_std[rows])
        assert np.all(d_cov <= 1e-3 * (1 + tol)) and np.all(d_mean <= 1e-3 * (1 + tol)), (d_cov, d_mean)
        active = np_cov_kl(std[rows], old_std[rows]) > 1e-3
        np.testing.assert_allclose(d_cov[active], 1e-3, rtol=tol)


def test_exactly_active_bound_is_a_fixed_point():
    rng = np.random.default_rng(12)
    p = random_problem(rng, D, np.ones(B, bool), np.ones(B, bool))
    out = run(p)["out"]
    q = dict(p, mean=np.asarray(out.mean), std=np.asarray(out.std))  # KL == bound up to round-off
    res = run(q)
    again = res["out"]
    np.testing.assert_allclose(again.mean, out.mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(again.std, out.std, rtol=1e-12)
    assert np.all(np.asarray(again.eta_mean) < 1e-9) and np.all(np.asarray(again.eta_cov) < 1e-9)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in (*res["obj_grads"], *res["tr_grads"]))


def test_vmap_over_independent_problems():
    rng = np.random.default_rng(13)
    probs = [random_problem(rng, D, rng.uniform(size=B) < 0.5, rng.uniform(size=B) < 0.5) for _ in range(3)]
    weights = (rng.normal(size=(B, D)), rng.normal(size=(B, D)), rng.normal(size=B))
    stacked = [np.stack([q[k] for q in probs]) for k in ARGS]  # bounds differ per problem
    batched = jax.jit(jax.vmap(_layer, in_axes=(0,) * 6 + (None,)))(*stacked, weights)
    for i, q in enumerate(probs):
        single = run(q, weights)
        jax.tree.map(lambda b, a: np.testing.assert_allclose(b[i], a, rtol=1e-10, atol=1e-15), batched, single)
