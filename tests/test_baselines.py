"""Tests for the adversarial baselines (`trirl learn --algo gail|airl|amp`, paper App. C.1).

Losses and rewards are checked on tiny batches against hand-written float64 NumPy
(linear networks, whose input gradient -- hence the gradient penalty -- is known in
closed form). One tiny Point Maze run per algorithm (the settings of test_learn.py,
4 iterations) is made through the CLI; its iterations are replayed in-process from the
cached compilation to compare the rewards PPO trained on with a NumPy recomputation
from the discriminator's parameters, and each run is exported and read back by the
pure-NumPy reader (AIRL: exactly the unshaped g(s)).
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trirl.errors import TrirlError
from trirl import config as config_lib
from trirl import baselines, envs, learn, rewards
from trirl import demos as demos_lib
from trirl import discriminator as disc

from numpy_reference import np_scalar
from reader_check import assert_reader_runs_without_jax
from test_learn import REFERENCE, _cli, _learn_args, _synthetic_demos

ALGOS = ("gail", "airl", "amp")
GAMMA = 0.99
TOL = dict(rtol=1e-5, atol=1e-5)


def np_log_sigmoid(z):
    return -np.logaddexp(0.0, -np.float64(z))


def np_gail(kind, z):
    z = np.float64(z)
    d = 1.0 / (1.0 + np.exp(-z))
    return {"log_d": np.log(d), "neg_log_one_minus_d": -np.log(1.0 - d), "logit": z}[kind]


def np_amp(z):
    return np.maximum(0.0, 1.0 - 0.25 * (np.float64(z) - 1.0) ** 2)


def np_normalize(stats, x):
    std = np.maximum(np.sqrt(np.maximum(np.float64(stats.var), 1e-8)), 1e-4)
    return np.clip((np.float64(x) - np.float64(stats.mean)) / std, -10.0, 10.0)


def _linear(w, b):
    """Flax params of a ``ScalarMLP`` without hidden layers: D(x) = w.x + b."""
    return {"params": {"MLP_0": {"Dense_0": {
        "kernel": jnp.asarray(np.asarray(w)[:, None], jnp.float32),
        "bias": jnp.asarray([b], jnp.float32)}}}}


def _learner(algo, **config):
    cfg = config_lib.TRIRLConfig(algo=algo, disc=disc.DiscriminatorConfig(
        hidden=(), grad_penalty=0.005, gp_alpha=0.3), **config)
    return baselines.Adversarial(envs.make("point_maze"), cfg)


# ----------------------------------------------------------------------------- losses


def test_gail_and_amp_losses_and_rewards_match_numpy():
    """GAIL: logistic loss; AMP: (D - 1)^2 on expert + (D + 1)^2 on agent; both + 0.005 *
    (||w|| - 1)^2 for a linear D. Rewards: the three GAIL variants and AMP's."""
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=7), 0.3
    xe = rng.normal(size=(6, 7)).astype(np.float32)
    xa = rng.normal(size=(6, 7)).astype(np.float32)
    l_e, l_a = xe @ w + b, xa @ w + b
    gp = (np.linalg.norm(w) - 1.0) ** 2
    want = {"gail": np.mean(np.logaddexp(0, -l_e)) + np.mean(np.logaddexp(0, l_a)),
            "amp": np.mean((l_e - 1.0) ** 2) + np.mean((l_a + 1.0) ** 2)}
    for algo in ("gail", "amp"):
        learner = _learner(algo)
        assert learner.disc_cfg.loss == ("least_squares" if algo == "amp" else "logistic")
        value, aux = disc.loss(learner.disc_cfg, _linear(w, b), xe, xa, jax.random.PRNGKey(0))
        np.testing.assert_allclose(aux["data"], want[algo], rtol=1e-5)
        np.testing.assert_allclose(aux["gp"], gp, rtol=1e-5)
        np.testing.assert_allclose(value, want[algo] + 0.005 * gp, rtol=1e-5)
        np.testing.assert_allclose(aux["expert_acc"], np.mean(l_e > 0))
        assert ("bce" in aux) == (algo == "gail")

    z = np.array([-30.0, -2.0, -0.1, 0.0, 0.7, 3.0, 25.0], np.float32)
    x = np.zeros((len(z), 7), np.float32)
    x[:, 0] = z  # D(x) = x_0 with w = e_0, b = 0
    params = _linear(np.eye(7)[0], 0.0)
    for kind in config_lib.GAIL_REWARDS:
        got = _learner("gail", gail_reward=kind).policy_reward(params, x)
        # -log(1 - D) at z = 25 loses every digit in float64 too: compare where it does not.
        ok = np.isfinite(np_gail(kind, z)) & (np.abs(z) < 20)
        np.testing.assert_allclose(np.asarray(got)[ok], np_gail(kind, z)[ok], rtol=1e-5,
                                   atol=1e-6)
        assert np.all(np.isfinite(np.asarray(got)))  # no overflow at |z| = 25, 30
    np.testing.assert_allclose(_learner("gail").policy_reward(params, x)[-1], -np.exp(-25.0),
                               rtol=1e-3)  # log sigmoid(25) = -softplus(-25), not log(1) = 0
    got = _learner("amp").policy_reward(params, x)
    np.testing.assert_allclose(got, np_amp(z), rtol=1e-6, atol=1e-7)
    assert float(got[0]) == 0.0 and float(got[4]) == pytest.approx(1 - 0.25 * 0.09)


def test_airl_discriminator_loss_and_rewards_match_numpy():
    """AIRL rows [s, i, s', i', log pi]: logit = g(s) + gamma h(s') - h(s) - log pi, the
    logistic loss on it, and the penalty on f alone: for linear g, h its input
    gradient is [w_g - w_h, gamma w_h] (nothing on the log pi column)."""
    learner = _learner("airl")
    assert learner.state_dim == 5 and learner.input_dim == 11
    rng = np.random.default_rng(1)
    w_g, w_h, b_g, b_h = rng.normal(size=5), rng.normal(size=5), 0.2, -0.4
    params = {"g": _linear(w_g, b_g), "h": _linear(w_h, b_h)}
    xe = rng.normal(size=(5, 11)).astype(np.float32)
    xa = rng.normal(size=(5, 11)).astype(np.float32)

    def np_f(x):
        x = np.float64(x)
        return (x[:, :5] @ w_g + b_g) + GAMMA * (x[:, 5:10] @ w_h + b_h) - (x[:, :5] @ w_h + b_h)

    l_e, l_a = np_f(xe) - xe[:, -1], np_f(xa) - xa[:, -1]
    np.testing.assert_allclose(learner.airl_logits(params, xa), l_a, rtol=1e-5, atol=1e-5)
    value, aux = disc.loss(learner.disc_cfg, params, xe, xa, jax.random.PRNGKey(0),
                           learner.airl_logits, learner.airl_f)
    bce = np.mean(np.logaddexp(0, -l_e)) + np.mean(np.logaddexp(0, l_a))
    gp = (np.linalg.norm(np.concatenate([w_g - w_h, GAMMA * w_h])) - 1.0) ** 2
    np.testing.assert_allclose(aux["bce"], bce, rtol=1e-5)
    np.testing.assert_allclose(aux["gp"], gp, rtol=1e-5)
    np.testing.assert_allclose(value, bce + 0.005 * gp, rtol=1e-5)
    # Policy reward log D - log(1 - D) = f - log pi; exported reward g(s) only.
    np.testing.assert_allclose(learner.policy_reward(params, xa), l_a, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(learner.exported_reward(params, xa),
                               np.float64(xa[:, :5]) @ w_g + b_g, rtol=1e-5, atol=1e-5)
    # Absorbing row (s_a -> s_a, log pi = 0): f = g(s_a) + (gamma - 1) h(s_a).
    x_abs = np.asarray(learner.absorbing_x())
    np.testing.assert_array_equal(x_abs, [0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0])
    want = (w_g[4] + b_g) + (GAMMA - 1.0) * (w_h[4] + b_h)
    np.testing.assert_allclose(learner.policy_reward(params, x_abs[None])[0], want, rtol=1e-5)


@pytest.mark.parametrize("settings,expect", [
    ({"algo": "gail", "variant": "tr_loss"}, "variant"),
    ({"algo": "amp", "reward_model": "features"}, "reward model"),
    ({"algo": "airl", "inputs": "ss"}, "inputs='ss'"),
    ({"algo": "sqil"}, "algo 'sqil'"),
    ({"algo": "gail", "gail_reward": "log"}, "gail_reward 'log'"),
])
def test_bad_settings_name_the_field(settings, expect):
    with pytest.raises(TrirlError, match=expect) as info:
        config_lib.TRIRLConfig(**settings)
    assert "\n" not in str(info.value)


def test_baselines_use_plain_ppo_and_follow_the_loss():
    cfg = config_lib.TRIRLConfig(algo="amp")
    assert cfg.policy_ppo.trust_region is None and cfg.ppo.trust_region is not None
    assert cfg.discriminator.loss == "least_squares"
    assert config_lib.TRIRLConfig().discriminator.loss == "logistic"
    assert config_lib.TRIRLConfig().policy_ppo.trust_region is not None


# ----------------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny run per algorithm through the CLI, each exported to a .reward file."""
    root = tmp_path_factory.mktemp("baselines")
    demos = root / "demos.npz"
    demos_lib.save(demos, _synthetic_demos(envs.make("point_maze")))
    out = {"root": root, "demos": demos}
    for algo in ALGOS:
        run_dir = root / algo
        result = _cli(*_learn_args(demos, run_dir, "--algo", algo))
        assert result.exit_code == 0, result.output
        path = root / f"{algo}.reward"
        result = _cli("export", run_dir, "-o", path)
        assert result.exit_code == 0, result.output
        out[algo] = {"run": run_dir, "file": path}
    return out


def _replay(run_dir):
    """The run's iterations again in-process (cached compilation), with their traces."""
    session = learn.open_session(run_dir)
    state, steps = session.init(), []
    pick = lambda tree: jax.tree.map(lambda x: np.asarray(x)[0], tree)  # noqa: E731
    for _ in range(session.run.config["num_iterations"]):
        new, metrics, trace = session.iterate(state)
        steps.append({"before": pick(state), "after": pick(new), "trace": pick(trace),
                      "metrics": pick(metrics)})
        state = new
    return session, steps


def _np_policy_reward(algo, params, stats, rollout, gamma):
    """Float64 recomputation of the reward PPO optimised, from the raw rollout."""
    s = np_normalize(stats, rollout.obs)
    zero = np.zeros(s.shape[:-1] + (1,))
    if algo == "airl":
        s2 = np.where(rollout.absorbing[..., None], 0.0, np_normalize(stats, rollout.next_obs))
        i2 = np.float64(rollout.absorbing)[..., None]
        slot, slot2 = np.concatenate([s, zero], -1), np.concatenate([s2, i2], -1)
        g = np_scalar(params["g"], slot)
        f = g + gamma * np_scalar(params["h"], slot2) - np_scalar(params["h"], slot)
        return f - np.float64(rollout.log_prob)
    x = np.concatenate([s, zero, np.clip(np.float64(rollout.action), -1, 1)], -1)
    z = np_scalar(params, x)
    return np_amp(z) if algo == "amp" else np_log_sigmoid(z)


@pytest.mark.parametrize("algo", ALGOS)
def test_training_is_finite_logs_metrics_and_rewards_the_latest_discriminator(runs, algo):
    run_dir = runs[algo]["run"]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["trirl"]["algo"] == algo and config["ppo"]["trust_region"] is None
    assert run_dir.name == algo
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["iteration"] for x in lines] == [1, 2, 3, 4]
    for line in lines:
        assert line["finite"] == 1.0
        for name in ("disc_loss", "disc_data_loss", "disc_gp", "disc_accuracy", "reward_mean",
                     "reward_std", "reward_absorbing", "reward_gap", "policy_kl", "policy_loss",
                     "value_loss"):
            assert np.isfinite(line[name]), name
        assert "eta" not in line and "buffer_size" not in line  # TRIRL's correction only
    assert any(x["normalized_score"] is not None for x in lines)

    session, steps = _replay(run_dir)
    for line, step in zip(lines, steps):  # the replay is the CLI run
        assert line["disc_loss"] == pytest.approx(float(step["metrics"]["disc_loss"]), rel=1e-6)
    step = steps[-1]
    params, trace = step["after"].disc_params, step["trace"]
    want = _np_policy_reward(algo, params, step["before"].disc_stats, trace.rollout, GAMMA)
    assert np.ptp(want) > 1e-4
    np.testing.assert_allclose(trace.rewards, want, rtol=1e-4, atol=1e-5)
    x_abs = np.asarray(session.learner.absorbing_x())[None]
    if algo == "airl":
        r_abs = np_scalar(params["g"], x_abs[:, :5]) + (GAMMA - 1) * np_scalar(params["h"],
                                                                                x_abs[:, :5])
    else:
        r_abs = _np_policy_reward_x(algo, params, x_abs)
    np.testing.assert_allclose(trace.absorbing_reward, r_abs[0], rtol=1e-4, atol=1e-5)


def _np_policy_reward_x(algo, params, x):
    z = np_scalar(params, x)
    return np_amp(z) if algo == "amp" else np_log_sigmoid(z)


# ----------------------------------------------------------------------------- export


def _inputs(n=64, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-0.4, 0.4, (n, 4)).astype(np.float32)
    nxt = obs + rng.normal(0, 0.02, obs.shape).astype(np.float32)
    act = rng.uniform(-1.5, 1.5, (n, 2)).astype(np.float32)
    return obs, act, nxt


@pytest.mark.parametrize("algo", ALGOS)
def test_export_round_trip_matches_the_learner_parameters(runs, algo):
    from trirl import export

    reward = rewards.load(runs[algo]["file"])
    rr = export.load_run_reward(runs[algo]["run"])
    assert reward.form == "adversarial" and reward.header["adversarial"]["algo"] == algo
    assert reward.header["provenance"]["algorithm"] == algo
    obs, act, nxt = _inputs()
    s = np_normalize(rr.disc_stats, obs)
    if algo == "airl":
        # Exactly the unshaped g(s): state-only, blind to the action and next state.
        assert reward.inputs == "s" and not reward.reads_action and not reward.reads_next_obs
        want = np_scalar(rr.disc_params["g"], np.concatenate([s, np.zeros((64, 1))], -1))
        got = reward(obs)
        np.testing.assert_allclose(reward(obs, act, nxt), got)
        r_abs = np_scalar(rr.disc_params["g"], np.eye(5)[4:])[0]
    else:
        x = np.concatenate([s, np.zeros((64, 1)), np.clip(np.float64(act), -1, 1)], -1)
        want = _np_policy_reward_x(algo, rr.disc_params, x)
        got = reward(obs, act)
        r_abs = _np_policy_reward_x(algo, rr.disc_params, np.eye(7)[4:5])[0]
    assert np.ptp(want) > 1e-4
    np.testing.assert_allclose(got, want, **TOL)
    assert reward.absorbing_reward == pytest.approx(r_abs, abs=1e-5)
    assert reward.header["absorbing_reward"] == pytest.approx(r_abs, abs=1e-5)
    # The JAX program of the file is the same.
    np.testing.assert_allclose(np.asarray(jax.jit(reward.as_jax())(obs, act, nxt)), got, **TOL)


def test_export_refuses_trirl_forms_for_a_baseline(runs, tmp_path):
    result = _cli("export", runs["gail"]["run"], "-o", tmp_path / "x.reward", "--form",
                  "fitted")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "--form fitted is for TRIRL runs" in lines[0]


def test_state_only_reward_reader_needs_only_numpy(runs):
    assert_reader_runs_without_jax(runs["airl"]["file"], "r(np.zeros((3, 4), np.float32))")


def test_onnx_matches_numpy_for_adversarial_forms(runs, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    obs, act, _ = _inputs(seed=4)
    for algo in ("airl", "amp"):
        reward = rewards.load(runs[algo]["file"])
        path = tmp_path / f"{algo}.onnx"
        result = _cli("export", runs[algo]["file"], "-o", path, "--format", "onnx")
        assert result.exit_code == 0, result.output
        feeds = {"obs": obs, **({"action": act} if reward.reads_action else {})}
        out = ReferenceEvaluator(onnx.load(str(path))).run(None, feeds)[0]
        np.testing.assert_allclose(out, reward(obs, act), **TOL)


def test_airl_reward_retrains_with_plain_ppo(runs, tmp_path):
    """`trirl retrain` on AIRL's g (Table 1's retraining column): fresh policies, the
    learner's PPO config (no projection), the file's reward."""
    from trirl import retrain

    out = tmp_path / "retrain"
    result = _cli("retrain", "--reward", runs["airl"]["file"], "--steps", 32, "--seeds", 1,
                  "--run-dir", out)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["ppo"]["trust_region"] is None and config["ppo"]["hidden"] == [8]
    evaluation = json.loads((out / "evaluation.json").read_text())
    seed = evaluation["per_seed"][0]
    assert seed["normalized_score"] == pytest.approx(
        (seed["return_mean"] - REFERENCE["random_return_mean"])
        / (REFERENCE["expert_return_mean"] - REFERENCE["random_return_mean"]))
    reward = rewards.load(out / retrain.REWARD_FILE)
    obs, act, nxt = _inputs(seed=5)
    fn = retrain.learned_reward(reward).fn
    np.testing.assert_allclose(np.asarray(fn(reward.jax_params(), obs, act, nxt,
                                             np.zeros(64, bool))), reward(obs), **TOL)
