"""Tests for trirl.gae (advantages with termination/truncation kept apart) and
trirl.normalizer (exact running mean/variance), against float64 NumPy references.

Both modules are pure array code without physics, so every test here compiles in well
under a second; ``gae`` is jitted once (per input shape) at module level.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trirl import normalizer
from trirl.gae import gae

GAMMA, LAM = 0.97, 0.9

_gae = jax.jit(gae, static_argnames=("gamma", "lam"))


# ----------------------------------------------------------------------------- reference


def np_gae(rewards, values, next_values, absorbing, done, gamma, lam, absorbing_value=0.0):
    """The textbook backward recursion, written out step by step in float64."""
    r = np.asarray(rewards, np.float64)
    v = np.asarray(values, np.float64)
    nv = np.asarray(next_values, np.float64)
    absorbing = np.asarray(absorbing, bool)
    done = np.asarray(done, bool)
    v_abs = np.broadcast_to(np.asarray(absorbing_value, np.float64), r.shape[1:])
    adv = np.zeros_like(r)
    next_adv = np.zeros(r.shape[1:])
    for t in reversed(range(r.shape[0])):
        for i in np.ndindex(r.shape[1:]):
            if absorbing[t][i]:
                bootstrap = v_abs[i]          # successor is the absorbing state s_a
            else:
                bootstrap = nv[t][i]          # ordinary or truncated: V(s'_t)
            delta = r[t][i] + gamma * bootstrap - v[t][i]
            carry = 0.0 if done[t][i] else next_adv[i]
            adv[t][i] = delta + gamma * lam * carry
        next_adv = adv[t]
    return adv, adv + v


def random_case(rng, shape, p_absorbing=0.15, p_truncated=0.15):
    rewards = rng.normal(size=shape).astype(np.float32)
    values = rng.normal(size=shape).astype(np.float32)
    next_values = rng.normal(size=shape).astype(np.float32)
    u = rng.uniform(size=shape)
    absorbing = u < p_absorbing
    truncated = (u >= p_absorbing) & (u < p_absorbing + p_truncated)  # never both
    return rewards, values, next_values, absorbing, truncated, absorbing | truncated


def run_gae(rewards, values, next_values, absorbing, done, absorbing_value=0.0,
            gamma=GAMMA, lam=LAM):
    adv, ret = _gae(jnp.asarray(rewards), jnp.asarray(values), jnp.asarray(next_values),
                    jnp.asarray(absorbing), jnp.asarray(done), gamma=gamma, lam=lam,
                    absorbing_value=jnp.asarray(absorbing_value, jnp.float32))
    return np.asarray(adv, np.float64), np.asarray(ret, np.float64)


# ----------------------------------------------------------------------------------- gae


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("absorbing_value", [0.0, -3.5, "per_env"])
def test_gae_matches_numpy_reference(seed, absorbing_value):
    rng = np.random.default_rng(seed)
    T, N = 23, 6
    r, v, nv, ab, tr, done = random_case(rng, (T, N))
    assert ab.any() and tr.any() and (~done).any()
    if absorbing_value == "per_env":  # broadcastable array: one value per env
        absorbing_value = rng.normal(size=(N,)).astype(np.float32)
    adv, ret = run_gae(r, v, nv, ab, done, absorbing_value)
    ref_adv, ref_ret = np_gae(r, v, nv, ab, done, GAMMA, LAM, absorbing_value)
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret, ref_ret, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret, adv + v, rtol=1e-6, atol=1e-6)


def test_gae_without_any_done_is_plain_discounted_sum():
    rng = np.random.default_rng(5)
    T = 12
    r, v, nv = (rng.normal(size=(T, 2)).astype(np.float32) for _ in range(3))
    no = np.zeros((T, 2), bool)
    adv, _ = run_gae(r, v, nv, no, no)
    deltas = r + GAMMA * nv.astype(np.float64) - v
    expected = [sum((GAMMA * LAM) ** (k - t) * deltas[k] for k in range(t, T)) for t in range(T)]
    np.testing.assert_allclose(adv, np.array(expected), rtol=1e-5, atol=1e-5)


def test_truncation_bootstraps_from_next_values():
    # One truncated step: A = r + gamma * V(s') - V(s), whatever the absorbing value.
    r, v, nv = np.float32([[1.0]]), np.float32([[0.25]]), np.float32([[2.0]])
    trunc, no = np.ones((1, 1), bool), np.zeros((1, 1), bool)
    for v_abs in (0.0, 100.0):
        adv, ret = run_gae(r, v, nv, no, trunc, v_abs)
        np.testing.assert_allclose(adv, [[1.0 + GAMMA * 2.0 - 0.25]], rtol=1e-6)
        np.testing.assert_allclose(ret, [[1.0 + GAMMA * 2.0]], rtol=1e-6)
    # ...and it does move with next_values.
    adv2, _ = run_gae(r, v, nv + 1.0, no, trunc)
    np.testing.assert_allclose(adv2 - adv, [[GAMMA]], rtol=1e-5)


def test_absorbing_uses_absorbing_value_not_next_values():
    r, v = np.float32([[1.0]]), np.float32([[0.25]])
    ab = np.ones((1, 1), bool)
    for nv in (np.float32([[2.0]]), np.float32([[-50.0]])):
        adv, ret = run_gae(r, v, nv, ab, ab, absorbing_value=-4.0)
        np.testing.assert_allclose(adv, [[1.0 + GAMMA * -4.0 - 0.25]], rtol=1e-6)
        np.testing.assert_allclose(ret, [[1.0 + GAMMA * -4.0]], rtol=1e-6)
    adv0, _ = run_gae(r, v, np.float32([[2.0]]), ab, ab, absorbing_value=0.0)
    np.testing.assert_allclose(adv0, [[1.0 - 0.25]], rtol=1e-6)


@pytest.mark.parametrize("kind", ["absorbing", "truncated"])
def test_done_stops_the_recursion(kind):
    """Nothing after a done step (the next episode) reaches the advantages up to and
    including it; the steps after it do see the perturbation."""
    rng = np.random.default_rng(3)
    T, N, t_done = 10, 3, 4
    r, v, nv = (rng.normal(size=(T, N)).astype(np.float32) for _ in range(3))
    flag = np.zeros((T, N), bool)
    flag[t_done, :] = True
    ab = flag if kind == "absorbing" else np.zeros_like(flag)
    adv, _ = run_gae(r, v, nv, ab, flag, absorbing_value=1.5)
    r2, v2, nv2 = r.copy(), v.copy(), nv.copy()
    r2[t_done + 1:] += 10.0
    v2[t_done + 1:] -= 7.0
    nv2[t_done + 1:] += 3.0
    adv2, _ = run_gae(r2, v2, nv2, ab, flag, absorbing_value=1.5)
    np.testing.assert_array_equal(adv2[:t_done + 1], adv[:t_done + 1])
    assert np.all(np.abs(adv2[t_done + 1:] - adv[t_done + 1:]) > 1e-3)
    # Without the done flag the earlier steps would have changed.
    no = np.zeros_like(flag)
    a, _ = run_gae(r, v, nv, no, no)
    b, _ = run_gae(r2, v2, nv2, no, no)
    assert np.all(np.abs(a[:t_done + 1] - b[:t_done + 1]) > 1e-4)


def test_hand_computed_three_step_example():
    """gamma = lam = 0.5; step 0 ordinary, step 1 truncated, step 2 absorbing (V_abs = 4).

    deltas: d0 = 1 + .5 * 1   - .5  = 1.0
            d1 = 2 + .5 * 1.5 - 1   = 1.75   (bootstrap from V(s'_1) = 1.5)
            d2 = 3 + .5 * 4   - 1.5 = 3.5    (bootstrap from V_abs = 4, not 2)
    A2 = 3.5;  A1 = 1.75 (done: no carry);  A0 = 1.0 + .25 * 1.75 = 1.4375
    returns = A + V = [1.9375, 2.75, 5.0]
    """
    r = np.float32([1.0, 2.0, 3.0])
    v = np.float32([0.5, 1.0, 1.5])
    nv = np.float32([1.0, 1.5, 2.0])
    ab = np.array([False, False, True])
    done = np.array([False, True, True])
    adv, ret = run_gae(r, v, nv, ab, done, absorbing_value=4.0, gamma=0.5, lam=0.5)
    np.testing.assert_allclose(adv, [1.4375, 1.75, 3.5], rtol=1e-6)
    np.testing.assert_allclose(ret, [1.9375, 2.75, 5.0], rtol=1e-6)
    # The same three steps with no done at all: A2 = 3 + 1 - 1.5 = 2.5,
    # A1 = 1.75 + .25 * 2.5 = 2.375, A0 = 1 + .25 * 2.375 = 1.59375.
    no = np.zeros(3, bool)
    adv, _ = run_gae(r, v, nv, no, no, gamma=0.5, lam=0.5)
    np.testing.assert_allclose(adv, [1.59375, 2.375, 2.5], rtol=1e-6)


# ---------------------------------------------------------------------------- normalizer

_update = jax.jit(normalizer.update)
_normalize = jax.jit(normalizer.normalize, static_argnames=("clip",))


@pytest.mark.parametrize("seed", [0, 1])
def test_running_stats_merge_equals_one_pass(seed):
    rng = np.random.default_rng(seed)
    F = 5
    loc = rng.uniform(-3, 3, size=F)
    scale = rng.uniform(0.1, 5, size=F)
    sizes = [1, 7, 64, 3, 250, 2]
    stats = normalizer.init(F)
    batches = []
    for i, n in enumerate(sizes):
        # Each batch from a shifted distribution, so batch means differ from the running one.
        x = (loc + 0.5 * i + scale * rng.normal(size=(n, F))).astype(np.float32)
        batches.append(x)
        stats = _update(stats, jnp.asarray(x))
        seen = np.concatenate(batches).astype(np.float64)
        np.testing.assert_allclose(np.asarray(stats.mean), seen.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(stats.var), seen.var(0), rtol=1e-5, atol=1e-6)
        assert float(stats.count) == seen.shape[0]


def test_running_stats_accept_leading_axes():
    """A (T, N, F) rollout batch is merged as T*N rows."""
    rng = np.random.default_rng(7)
    a = rng.normal(2.0, 3.0, size=(4, 6, 3)).astype(np.float32)
    b = rng.normal(-1.0, 0.5, size=(11, 3)).astype(np.float32)
    stats = _update(_update(normalizer.init(3), jnp.asarray(a)), jnp.asarray(b))
    ref = np.concatenate([a.reshape(-1, 3), b]).astype(np.float64)
    np.testing.assert_allclose(np.asarray(stats.mean), ref.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(stats.var), ref.var(0), rtol=1e-5, atol=1e-6)
    assert float(stats.count) == 35


def test_normalize_standardises_and_clips():
    rng = np.random.default_rng(1)
    x = rng.normal(1.0, 2.0, size=(500, 2)).astype(np.float32)
    stats = _update(normalizer.init(2), jnp.asarray(x))
    z = np.asarray(_normalize(stats, jnp.asarray(x)))
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1.0, rtol=1e-4)
    far = jnp.asarray([[1e6, -1e6]], jnp.float32)
    np.testing.assert_array_equal(np.asarray(_normalize(stats, far)), [[10.0, -10.0]])
    np.testing.assert_array_equal(np.asarray(_normalize(stats, far, clip=3.0)), [[3.0, -3.0]])
    # Within the clip range the value is (x - mean) / std exactly.
    probe = np.float32([[2.5, -0.5]])
    expected = (probe - np.asarray(stats.mean)) / np.sqrt(np.asarray(stats.var))
    np.testing.assert_allclose(np.asarray(_normalize(stats, jnp.asarray(probe))), expected,
                               rtol=1e-5)


def test_normalize_constant_feature_maps_to_zero():
    rng = np.random.default_rng(2)
    x = np.stack([rng.normal(size=200), np.full(200, 0.7)], axis=1).astype(np.float32)
    stats = normalizer.init(2)
    for chunk in np.array_split(x, 3):  # several merges of the same constant
        stats = _update(stats, jnp.asarray(chunk))
    assert float(stats.var[1]) < 1e-10
    z = np.asarray(_normalize(stats, jnp.asarray(x)))
    assert np.all(np.isfinite(z))
    np.testing.assert_allclose(z[:, 1], 0.0, atol=1e-2)
    # A different value of the constant feature saturates at the clip, never inf/nan.
    off = np.asarray(_normalize(stats, jnp.asarray([[0.0, 1.7], [0.0, -0.3]], jnp.float32)))
    np.testing.assert_array_equal(off[:, 1], [10.0, -10.0])


def test_fresh_stats_are_identity_like_and_first_merge_ignores_placeholder_var():
    stats = normalizer.init(3)
    x = jnp.asarray([[1.0, -2.0, 30.0]])
    np.testing.assert_array_equal(np.asarray(_normalize(stats, x)), [[1.0, -2.0, 10.0]])
    batch = np.float32([[1.0, 2.0, 3.0], [3.0, 2.0, 5.0]])
    s1 = _update(stats, jnp.asarray(batch))
    np.testing.assert_allclose(np.asarray(s1.mean), [2.0, 2.0, 4.0])
    np.testing.assert_allclose(np.asarray(s1.var), [1.0, 0.0, 1.0])
