"""Tests for trirl.discriminator: input layout, loss in closed form, density ratios."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trirl import discriminator as D

# ----------------------------------------------------------------------------- inputs


def test_disc_input_layout_and_absorbing_convention():
    obs = np.array([[1.0, 2.0], [np.nan, np.inf], [5.0, 6.0]], np.float32)
    act = np.array([[7.0], [8.0], [9.0]], np.float32)
    nxt = np.array([[10.0, 11.0], [12.0, 13.0], [np.nan, 14.0]], np.float32)
    absorbing = np.array([False, True, False])  # row 1 *is* s_a (garbage obs)
    terminated = np.array([False, False, True])  # row 2 enters s_a

    sa = D.DiscriminatorConfig(inputs="sa")
    np.testing.assert_array_equal(
        D.disc_input(sa, obs, act, nxt, absorbing, terminated),
        [[1, 2, 0, 7], [0, 0, 1, 0], [5, 6, 0, 9]])

    ss = D.DiscriminatorConfig(inputs="ss")
    np.testing.assert_array_equal(
        D.disc_input(ss, obs, None, nxt, absorbing, terminated),
        [[1, 2, 0, 10, 11, 0], [0, 0, 1, 0, 0, 1], [5, 6, 0, 0, 0, 1]])

    sas = D.DiscriminatorConfig(inputs="sas")
    x = D.disc_input(sas, obs, act, nxt, absorbing, terminated)
    np.testing.assert_array_equal(
        x, [[1, 2, 0, 7, 10, 11, 0], [0, 0, 1, 0, 0, 0, 1], [5, 6, 0, 9, 0, 0, 1]])

    for cfg in (sa, ss, sas):
        a_in = D.absorbing_input(cfg, 2, 1)
        assert a_in.shape == (D.input_dim(cfg, 2, 1),)
        # The absorbing transition is the same vector whatever the input rows held.
        np.testing.assert_array_equal(
            a_in, D.disc_input(cfg, obs[1], act[1], nxt[1], absorbing=True))
        assert float(a_in.sum()) == (1.0 if cfg.inputs == "sa" else 2.0)

    plain = D.DiscriminatorConfig(inputs="sas", use_absorbing=False)
    np.testing.assert_array_equal(
        D.disc_input(plain, obs[:1], act[:1], nxt[:1], absorbing=[True]), [[1, 2, 7, 10, 11]])
    assert D.input_dim(plain, 2, 1) == 5
    with pytest.raises(ValueError):
        D.DiscriminatorConfig(inputs="as")


# ----------------------------------------------------------------------------- loss


def _np_bce(l_e, l_a):
    return np.mean(np.logaddexp(0.0, -l_e)) + np.mean(np.logaddexp(0.0, l_a))


@pytest.mark.parametrize("gp_alpha", [None, 0.3])
def test_loss_closed_form_linear(gp_alpha):
    """A linear D(x) = w.x + b has grad_x D = w everywhere: GP = (||w|| - 1)^2."""
    cfg = D.DiscriminatorConfig(hidden=(), grad_penalty=0.005, gp_alpha=gp_alpha)
    w = np.array([0.5, -2.0, 1.0])
    b = 0.25
    params = {"params": {"MLP_0": {"Dense_0": {"kernel": jnp.asarray(w[:, None], jnp.float32),
                                               "bias": jnp.asarray([b], jnp.float32)}}}}
    xe = np.array([[1.0, 0.0, 0.5], [0.2, -0.3, 1.0], [2.0, 1.0, -1.0]], np.float32)
    xa = np.array([[0.0, 1.0, 0.0], [-1.0, 0.5, 0.5], [0.3, 0.3, 0.3]], np.float32)
    l_e, l_a = xe @ w + b, xa @ w + b

    value, aux = jax.jit(D.loss, static_argnums=0)(cfg, params, xe, xa, jax.random.PRNGKey(0))
    gp = (np.linalg.norm(w) - 1.0) ** 2
    np.testing.assert_allclose(aux["gp"], gp, rtol=1e-5)
    np.testing.assert_allclose(aux["bce"], _np_bce(l_e, l_a), rtol=1e-5)
    np.testing.assert_allclose(value, _np_bce(l_e, l_a) + 0.005 * gp, rtol=1e-5)
    np.testing.assert_allclose(aux["expert_acc"], np.mean(l_e > 0))
    np.testing.assert_allclose(aux["agent_acc"], np.mean(l_a < 0))


def test_gradient_penalty_closed_form_tanh_layer():
    """D(x) = w2.tanh(W1 x + b1) + b2: grad_x D = W1 (w2 * (1 - h^2)) at x_hat."""
    cfg = D.DiscriminatorConfig(hidden=(4,), gp_alpha=0.3)
    params = D.init(cfg, jax.random.PRNGKey(1), 3)
    layers = params["params"]["MLP_0"]
    W1, b1 = (np.asarray(layers["Dense_0"][k], np.float64) for k in ("kernel", "bias"))
    w2 = np.asarray(layers["Dense_1"]["kernel"], np.float64)[:, 0]
    rng = np.random.default_rng(0)
    xe = rng.normal(size=(6, 3)).astype(np.float32)
    xa = rng.normal(size=(6, 3)).astype(np.float32)

    x_hat = 0.3 * xe.astype(np.float64) + 0.7 * xa
    h = np.tanh(x_hat @ W1 + b1)
    grads = ((1.0 - h**2) * w2) @ W1.T
    expected = np.mean((np.linalg.norm(grads, axis=1) - 1.0) ** 2)
    got = jax.jit(D.gradient_penalty, static_argnums=0)(cfg, params, xe, xa,
                                                        jax.random.PRNGKey(0))
    np.testing.assert_allclose(got, expected, rtol=1e-4)


# ----------------------------------------------------------------------------- training

# One config and one data shape for both training tests: `train` compiles once.
TRAIN_CFG = D.DiscriminatorConfig(hidden=(16, 16), learning_rate=3e-3, num_steps=1500,
                                  minibatch_size=256)
N = 4096
_logits = jax.jit(lambda params, x: D.logits(TRAIN_CFG, params, x))


def _log_normal(x, mean, std):
    return -0.5 * ((x - mean) / std) ** 2 - np.log(std)


def _train_1d(mean_e, std_e, mean_a, std_a, seed):
    rng = np.random.default_rng(seed)
    xe = (mean_e + std_e * rng.standard_normal((N, 1))).astype(np.float32)
    xa = (mean_a + std_a * rng.standard_normal((N, 1))).astype(np.float32)
    key = jax.random.PRNGKey(seed)
    params = D.init(TRAIN_CFG, key, 1)
    params, _, metrics = D.train(TRAIN_CFG, params, D.init_opt_state(TRAIN_CFG, params),
                                 xe, xa, key)
    return params, xe, xa, metrics


def test_train_separable_gaussians_high_accuracy():
    params, xe, xa, metrics = _train_1d(3.0, 1.0, -3.0, 1.0, seed=0)
    # Bayes accuracy is Phi(3) = 0.9987.
    assert np.mean(np.asarray(_logits(params, xe)) > 0) > 0.98
    assert np.mean(np.asarray(_logits(params, xa)) < 0) > 0.98
    assert np.isfinite(float(metrics["loss"]))


def test_logits_match_true_log_density_ratio():
    mean_e, std_e, mean_a, std_a = 0.5, 1.0, -0.5, 1.5
    params, *_ = _train_1d(mean_e, std_e, mean_a, std_a, seed=1)
    grid = np.linspace(-2.0, 2.5, 46, dtype=np.float32)[:, None]  # where both have mass
    true = (_log_normal(grid, mean_e, std_e) - _log_normal(grid, mean_a, std_a))[:, 0]
    est = np.asarray(_logits(params, grid))
    # The ratio is a quadratic spanning ~3 nats on the grid; a constant or linear fit
    # misses it by > 0.5 somewhere.
    assert np.max(np.abs(est - true)) < 0.25, np.c_[grid[:, 0], true, est]
    assert np.mean(np.abs(est - true)) < 0.1


# ------------------------------------------------------------------ absorbing mass


def _pool_inputs(mass):
    from trirl import envs
    from trirl.adversarial import DiscInputs

    env = envs.make("point_maze", episode_length=100)
    cfg = D.DiscriminatorConfig(hidden=(), absorbing_mass=mass)
    return env, DiscInputs(env, cfg, normalize=False)


@pytest.mark.parametrize("mass,want", [("one", 6 + 2), ("horizon", 6 + (100 - 3 - 1) + 1)])
def test_absorbing_mass_counts_one_sample_or_the_steps_left(mass, want):
    """Terminal transitions at time 3 and at the last step (time 99) of a 100-step
    limit: one absorbing sample each, or the 96 steps left after the first and at
    least one for the second."""
    env, inputs = _pool_inputs(mass)
    x = jnp.zeros((6, inputs.input_dim))
    absorbing = jnp.array([False, False, False, True, False, True])
    time = jnp.array([0, 1, 2, 3, 98, 99])
    pool, count = inputs.pool(x, absorbing, time)
    assert pool.shape == (12, inputs.input_dim) and int(count) == want
    np.testing.assert_array_equal(pool[6:], np.broadcast_to(inputs.absorbing_row(), (6, inputs.input_dim)))


def test_draws_past_the_last_row_take_the_last_row():
    """A count beyond the rows weighs the pool's last row (an absorbing copy) by it:
    agent pool [0 row, 1 row] with count 100 -> ~99 % of draws are the second row, so a
    linear discriminator's agent logit there falls far below the first row's."""
    cfg = D.DiscriminatorConfig(hidden=(), learning_rate=1e-1, num_steps=50,
                                   minibatch_size=256, grad_penalty=0.0)
    expert = jnp.array([[0.0], [1.0]])
    agent = jnp.array([[0.0], [1.0]])
    params = D.init(cfg, jax.random.PRNGKey(0), 1)
    opt = D.optimizer(cfg).init(params)
    out, _, _ = D.train(cfg, params, opt, expert, agent, jax.random.PRNGKey(1),
                           expert_count=jnp.asarray(2), agent_count=jnp.asarray(100))
    logits = D.logits(cfg, out, jnp.array([[0.0], [1.0]]))
    # Expert draws are 50/50, agent draws ~1/100 on row 0: row 1 reads as the agent's.
    assert float(logits[1]) < float(logits[0]) - 1.0
