"""Tests for trirl.reward_buffer against an independent float64 NumPy Algorithm 2.

The reference keeps a plain Python list of every pushed (discriminator, eta) and the
R_fit handed over at each eviction; the window is ``history[-k:]`` and the recursion is
a for loop (Alg. 2 lines 19-24). Nothing in it uses the buffer's head/count arithmetic.
"""


import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trirl import discriminator as D
from trirl import reward_buffer as RB
from trirl.errors import TrirlError

from numpy_reference import np_scalar

K = 3
DIM = 4
N = 64
BETA = 1.7
EPS = 0.6

DISC = D.DiscriminatorConfig(hidden=(8, 8))
FIT = RB.RewardFitConfig(hidden=(16,), learning_rate=1e-2, num_steps=300, minibatch_size=64)


# ----------------------------------------------------------------------------- reference


def np_recursion(base, logits, etas, beta=BETA, eps=EPS):
    """Alg. 2 lines 19-23: a for loop over members oldest -> newest."""
    r = np.array(base, np.float64)
    for logit, eta in zip(logits, etas):
        step = eps / (1.0 + eta)
        r = (1.0 - step) * r + step * beta * logit
    return r


class Reference:
    """Every member ever pushed, and the R_fit installed at the latest eviction."""

    def __init__(self, k, use_fit=True):
        self.k, self.use_fit = k, use_fit
        self.history = []  # (disc params, eta, push index)
        self.fit = None

    def push(self, params, eta, fit_params):
        if len(self.history) >= self.k and self.use_fit:
            self.fit = fit_params
        self.history.append((params, eta, len(self.history)))

    def window(self):
        return self.history[max(len(self.history) - self.k, 0):]

    def corrected(self, x, etas_by_slot=None):
        base = np.zeros(len(x)) if self.fit is None else BETA * np_scalar(self.fit, x)
        members = self.window()
        logits = [np_scalar(p, x) for p, _, _ in members]
        if etas_by_slot is None:
            etas = [eta for _, eta, _ in members]
        else:  # the i-th push (from 0) lands in slot i mod k
            etas = [np.asarray(etas_by_slot[i % self.k], np.float64) for _, _, i in members]
        return np_recursion(base, logits, etas)


# ----------------------------------------------------------------------------- fixtures


def random_params(template, rng):
    """NumPy-drawn parameters shaped like ``template`` (no jax init to compile).

    Biases are non-zero on purpose, so a wrong layer order or a dropped bias shows up.
    """
    def draw(leaf):
        fan_in = leaf.shape[0] if len(leaf.shape) == 2 else 4
        return (rng.normal(size=leaf.shape) / np.sqrt(fan_in)).astype(np.float32)
    return jax.tree.map(draw, template)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    key = jax.random.PRNGKey(0)
    disc_shape = jax.eval_shape(lambda: D.init(DISC, key, DIM))
    fit_shape = jax.eval_shape(lambda: RB.fit_init(FIT, key, DIM))
    return {
        "x": rng.normal(size=(N, DIM)).astype(np.float32),
        "discs": [random_params(disc_shape, rng) for _ in range(8)],
        "fits": [random_params(fit_shape, rng) for _ in range(8)],
        "etas": rng.uniform(0.0, 3.0, size=8),
        "sample_etas": rng.uniform(0.0, 3.0, size=(K, N)),
    }


@pytest.fixture(scope="module")
def fns():
    """Jitted entry points, shared so each compiles once per static config."""
    return {
        "push": jax.jit(RB.push),
        "corrected": jax.jit(RB.corrected_reward),
        "intermediate": jax.jit(RB.intermediate_reward),
        "fit_targets": jax.jit(RB.fit_targets),
    }


def make_buffer(k=K, use_fit=True, use_eta=True):
    cfg = RB.RewardBufferConfig(capacity=k, use_fit=use_fit, use_eta=use_eta, disc=DISC, fit=FIT)
    return RB.init(cfg, jax.random.PRNGKey(42), DIM)


def fill(fns, data, buffer, ref, n):
    """Push members 0..n-1 (each with the fit handed over if it evicts) into both."""
    for i in range(n):
        fit = data["fits"][i % len(data["fits"])]
        buffer = fns["push"](buffer, data["discs"][i], data["etas"][i], fit)
        ref.push(data["discs"][i], data["etas"][i], fit)
    return buffer


# ----------------------------------------------------------------------------- recursion


@pytest.mark.parametrize("n_pushed", [0, 1, 2, 3, 4, 7])  # empty, partial, full, wrapped
def test_corrected_reward_matches_numpy_algorithm2(fns, data, n_pushed):
    buffer, ref = make_buffer(), Reference(K)
    buffer = fill(fns, data, buffer, ref, n_pushed)
    x = data["x"]
    assert int(buffer.count) == min(n_pushed, K)
    assert bool(buffer.fit_active) == (n_pushed > K)

    got = fns["corrected"](buffer, x, BETA, EPS)
    np.testing.assert_allclose(got, ref.corrected(x), rtol=2e-5, atol=2e-5)

    # Line 24: the newest, not yet pushed discriminator enters with the raw step eps.
    new = data["discs"][7]
    new_logits = np_scalar(new, x).astype(np.float32)
    expected = (1 - EPS) * ref.corrected(x) + EPS * BETA * np_scalar(new, x)
    np.testing.assert_allclose(fns["intermediate"](buffer, x, BETA, EPS, new_logits),
                               expected, rtol=2e-5, atol=2e-5)

    # Retrospective eta: per-sample etas (k, N) in slot order.
    etas = data["sample_etas"]
    np.testing.assert_allclose(fns["corrected"](buffer, x, BETA, EPS, etas),
                               ref.corrected(x, etas), rtol=2e-5, atol=2e-5)


def test_reference_is_sensitive_to_order_and_etas(data):
    """Guard against a vacuous comparison: reversing members or dropping etas changes
    the numbers by far more than the tolerance used above."""
    x = data["x"]
    logits = [np_scalar(p, x) for p in data["discs"][:K]]
    etas = data["etas"][:K]
    r = np_recursion(np.zeros(N), logits, etas)
    assert np.max(np.abs(r - np_recursion(np.zeros(N), logits[::-1], etas[::-1]))) > 1e-2
    assert np.max(np.abs(r - np_recursion(np.zeros(N), logits, np.zeros(K)))) > 1e-2


def test_empty_slots_have_no_effect(fns, data):
    buffer, ref = make_buffer(), Reference(K)
    buffer = fill(fns, data, buffer, ref, 2)
    poisoned = buffer.replace(
        disc_params=jax.tree.map(lambda p: p.at[2].set(jnp.nan), buffer.disc_params),
        etas=buffer.etas.at[2].set(jnp.nan))
    got = fns["corrected"](poisoned, data["x"], BETA, EPS)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, ref.corrected(data["x"]), rtol=2e-5, atol=2e-5)


# ----------------------------------------------------------------------------- eviction


@pytest.mark.parametrize("k", [K, 0])
def test_fit_targets_keep_the_recursion_consistent(fns, data, k):
    """If R_fit matched ``fit_targets`` exactly, the recursion over the k members left
    after the push would equal the untruncated one over all k + 1."""
    buffer, ref = make_buffer(k=k), Reference(k)
    buffer = fill(fns, data, buffer, ref, k + 2)  # full, R_fit already active
    assert bool(RB.will_evict(buffer))
    x = data["x"]
    new, new_eta = data["discs"][7], data["etas"][7]
    targets = np.asarray(fns["fit_targets"](buffer, x, BETA, EPS, np_scalar(new, x).astype(np.float32),
                                            new_eta), np.float64)

    window = ref.window() + [(new, new_eta, None)]
    logits = [np_scalar(p, x) for p, _, _ in window]
    etas = [eta for _, eta, _ in window]
    untruncated = np_recursion(BETA * np_scalar(ref.fit, x), logits, etas)
    truncated = np_recursion(targets, logits[1:], etas[1:])
    np.testing.assert_allclose(truncated, untruncated, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("n_pushed", [1, K, K + 2])  # partial, filling the last slot, wrapped
def test_reused_member_logits_give_the_pushed_buffers_reward(fns, data, n_pushed):
    """The learner evaluates the k members once per iteration and reuses the logits
    after the push (``pushed_logits``): that must be the NumPy recursion of the window
    after the push, which includes the new member and (full buffer) not the evicted one."""
    buffer, ref = make_buffer(), Reference(K)
    buffer = fill(fns, data, buffer, ref, n_pushed)
    x = data["x"]
    logits = RB.member_logits(buffer, x)
    new, new_eta, fit = data["discs"][7], data["etas"][7], data["fits"][6]
    new_logits = jnp.asarray(np_scalar(new, x), jnp.float32)
    after = RB.pushed_logits(buffer, logits, new_logits)
    pushed = fns["push"](buffer, new, new_eta, fit)
    ref.push(new, new_eta, fit)
    np.testing.assert_allclose(fns["corrected"](pushed, x, BETA, EPS, None, after),
                               ref.corrected(x), rtol=2e-5, atol=2e-5)


def test_ablations_fall_out_of_config(fns, data):
    x = data["x"]
    # No fitting: evicted members vanish, the recursion starts at 0.
    buffer, ref = make_buffer(use_fit=False), Reference(K, use_fit=False)
    buffer = fill(fns, data, buffer, ref, 5)
    assert not bool(buffer.fit_active)
    np.testing.assert_allclose(fns["corrected"](buffer, x, BETA, EPS), ref.corrected(x),
                               rtol=2e-5, atol=2e-5)

    # eta ignored: identical to pushing eta = 0 everywhere.
    buffer, ref = make_buffer(use_eta=False), Reference(K)
    buffer = fill(fns, data, buffer, ref, 5)
    for i, (p, _, idx) in enumerate(ref.history):
        ref.history[i] = (p, 0.0, idx)
    np.testing.assert_allclose(fns["corrected"](buffer, x, BETA, EPS), ref.corrected(x),
                               rtol=2e-5, atol=2e-5)

    # k = 0: the corrected reward is zero, then pure R_fit once a fit is handed over.
    buffer = make_buffer(k=0)
    np.testing.assert_array_equal(fns["corrected"](buffer, x, BETA, EPS), np.zeros(N))
    buffer = fns["push"](buffer, data["discs"][0], data["etas"][0], data["fits"][0])
    np.testing.assert_allclose(fns["corrected"](buffer, x, BETA, EPS),
                               BETA * np_scalar(data["fits"][0], x), rtol=2e-5, atol=2e-5)


# ----------------------------------------------------------------------------- R_fit


@pytest.mark.parametrize("beta", [BETA, 1000.0])
def test_push_and_fit_tracks_the_untruncated_recursion(fns, data, beta):
    """End to end: with eviction fits, a k = 3 window stays close to the recursion over
    all pushed members from r = 0; dropping evicted members (no fit) does not. At the
    paper's beta (~1000) too: R_fit regresses r / beta, so the fit does not depend on
    beta's scale (regressing r itself, R_fit could not follow targets of size ~beta)."""
    x = data["x"]
    push_and_fit = jax.jit(RB.push_and_fit)
    fitted = make_buffer()
    opt_state = RB.fit_init_opt_state(FIT, fitted.fit_params)
    dropped = make_buffer(use_fit=False)
    for i in range(8):
        disc, eta = data["discs"][i], data["etas"][i]
        fitted, opt_state, metrics = push_and_fit(fitted, opt_state, disc, eta, x, beta, EPS,
                                                  jax.random.PRNGKey(i))
        assert np.isnan(metrics["fit_mse"]) == (i < K)  # no fit while filling
        dropped = fns["push"](dropped, disc, eta, data["fits"][0])
    full = np_recursion(np.zeros(N), [np_scalar(p, x) for p in data["discs"]], data["etas"], beta)
    err_fit = np.mean(np.abs(np.asarray(fns["corrected"](fitted, x, beta, EPS)) - full))
    err_drop = np.mean(np.abs(np.asarray(fns["corrected"](dropped, x, beta, EPS)) - full))
    assert err_fit < 0.2 * err_drop, (err_fit, err_drop)


def test_fit_reward_reduces_mse_on_known_target():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(512, 2)).astype(np.float32)
    y = (np.sin(2.0 * x[:, 0]) + 0.5 * x[:, 1] ** 2).astype(np.float32)
    params = RB.fit_init(FIT, jax.random.PRNGKey(0), 2)
    before = np.mean((np_scalar(params, x) - y) ** 2)
    params, _, metrics = RB.fit_reward(FIT, params, RB.fit_init_opt_state(FIT, params), x, y,
                                       jax.random.PRNGKey(1))
    after = np.mean((np_scalar(params, x) - y) ** 2)
    assert after < 0.2 * before, (before, after)
    assert np.isfinite(float(metrics["fit_mse"]))


# ----------------------------------------------------------------------------- negligible weights

K_LONG = 8  # long enough a window for the oldest members' weights to fall below tau


def long_buffer(tau, k=K_LONG):
    cfg = RB.RewardBufferConfig(capacity=k, disc=DISC, fit=FIT, negligible_weight=tau)
    return RB.init(cfg, jax.random.PRNGKey(42), DIM)


def np_tail_weights(etas, eps=EPS):
    """T_j = sum_{i <= j} w_i with w_i = s_i prod_{l > i} (1 - s_l), a plain float64 sum
    over explicit products (no telescoping, no logs), oldest first."""
    s = eps / (1.0 + np.asarray(etas, np.float64))
    w = [s[i] * np.prod(1.0 - s[i + 1:]) for i in range(len(s))]
    return np.cumsum(w)


@pytest.fixture(scope="module")
def skipping(data):
    """A full k = 8 buffer, wrapped, whose etas make the two or three oldest members
    negligible at tau = 0.01 (and nothing at tau = 0), and the same buffer at tau = 0."""
    etas = np.array([0.0, 0.1, 0.0, 0.3, 0.0, 0.2, 0.0, 0.0, 0.1, 0.0])  # 10 pushes
    out = {}
    for tau in (0.0, 0.01):
        buffer = long_buffer(tau)
        for i, eta in enumerate(etas):
            buffer = jax.jit(RB.push)(buffer, data["discs"][i % 8], eta, data["fits"][0])
        out[tau] = buffer
    out["window_etas"] = etas[-K_LONG:]
    out["window_discs"] = [data["discs"][i % 8] for i in range(2, 10)]
    return out


def test_needed_members_are_the_suffix_whose_tail_weight_reaches_tau(skipping):
    buffer = skipping[0.01]
    tail = np_tail_weights(skipping["window_etas"])
    expected = tail >= 0.01
    skipped = int((~expected).sum())
    assert 2 <= skipped <= 4 and not expected[:skipped].any()  # a suffix, not trivial
    needed = np.asarray(RB.needed_members(buffer, EPS))
    slots, _ = RB.slot_order(buffer)
    np.testing.assert_array_equal(needed[np.asarray(slots)], expected)
    assert RB.needed_members(skipping[0.0], EPS) is None


def test_skipped_members_move_the_reward_by_at_most_tau_times_their_logits(data, skipping):
    """Only the needed members are evaluated (the others read 0), each exactly as the
    full evaluation does; the corrected reward stays within tau * max |beta D| of the
    float64 recursion over every member -- and does move (the bound is not vacuous)."""
    x = data["x"]
    exact, skip = skipping[0.0], skipping[0.01]
    full = np.asarray(RB.member_logits(exact, x))
    needed = np.asarray(RB.needed_members(skip, EPS))
    part = np.asarray(jax.jit(RB.member_logits)(skip, x, jnp.asarray(needed)))
    np.testing.assert_array_equal(part[needed], full[needed])
    np.testing.assert_array_equal(part[~needed], 0.0)

    logits = [np_scalar(p, x) for p in skipping["window_discs"]]
    base = BETA * np_scalar(data["fits"][0], x)
    reference = np_recursion(base, logits, skipping["window_etas"])
    got = np.asarray(RB.corrected_reward(skip, x, BETA, EPS))
    bound = 0.01 * BETA * np.max(np.abs(np.array(logits)[:int((~needed).sum())])) + 1e-4
    error = np.max(np.abs(got - reference))
    assert 1e-4 < error <= bound, (error, bound)
    np.testing.assert_allclose(RB.corrected_reward(exact, x, BETA, EPS), reference,
                               rtol=2e-5, atol=2e-5)


def test_member_skipping_is_per_seed_under_vmap(data, skipping):
    """Two seeds whose windows need different members, vmapped as the learner runs
    seeds: each gets its own evaluation (a while_loop under vmap runs to the longer
    one and keeps each seed's result)."""
    x = data["x"]
    few = skipping[0.01]
    many = few.replace(etas=jnp.full_like(few.etas, 50.0))  # tiny steps: all needed
    stacked = jax.tree.map(lambda a, b: jnp.stack([a, b]), few, many)

    def logits(buffer):
        return RB.member_logits(buffer, x, RB.needed_members(buffer, EPS))

    got = np.asarray(jax.jit(jax.vmap(logits))(stacked))
    full = np.asarray(RB.member_logits(few, x))
    needed = np.asarray(RB.needed_members(few, EPS))
    np.testing.assert_array_equal(got[0][needed], full[needed])
    np.testing.assert_array_equal(got[0][~needed], 0.0)
    np.testing.assert_array_equal(got[1], full)


def test_r_fit_is_not_refitted_while_its_weight_is_negligible(data, skipping):
    """R_fit's weight after the push is prod (1 - s) over the new window (checked in
    float64); below tau the eviction fit runs no step (fit_mse NaN, parameters kept),
    at or above it the fit runs; with tau = 0 it always runs on eviction."""
    x = data["x"]
    buffer = skipping[0.01]
    window = list(skipping["window_etas"][1:]) + [0.0]
    weight = np.prod(1.0 - EPS / (1.0 + np.array(window)))
    np.testing.assert_allclose(RB.fit_weight_after_push(buffer, EPS, 0.0), weight, rtol=1e-5)
    assert weight < 0.01
    opt = RB.fit_init_opt_state(FIT, buffer.fit_params)
    push_and_fit = jax.jit(RB.push_and_fit)
    args = (data["discs"][5], 0.0, x, BETA, EPS, jax.random.PRNGKey(0))
    pushed, _, metrics = push_and_fit(buffer, opt, *args)
    assert np.isnan(metrics["fit_mse"])
    jax.tree.map(np.testing.assert_array_equal, pushed.fit_params, buffer.fit_params)
    assert bool(pushed.fit_active)
    for tau in (0.0, weight / 2):
        other = buffer.replace(cfg=dataclasses.replace(buffer.cfg, negligible_weight=tau))
        _, _, metrics = jax.jit(RB.push_and_fit)(other, opt, *args)
        assert np.isfinite(metrics["fit_mse"])


def test_negligible_weight_is_validated():
    with pytest.raises(TrirlError, match="negligible_weight"):
        RB.RewardBufferConfig(negligible_weight=1.0)
