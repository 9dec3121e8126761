"""The feature-based reward model: `trirl learn --reward-model features` and the
`features` form of a `.reward` file.

References: a float64 NumPy forward pass of the discriminator network (for the
encoder/head split), the plain Alg. 2 recursion over function values in float64 (for
the reward correction done in the linear weights), the learner's own corrected reward
(for the exported file) and the env's feature definition (position only in Point Maze).
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import save_file

from trirl import discriminator as disc
from trirl import export, rewards
from trirl import feature_reward as fr
from trirl.rewards import _file, features

from numpy_reference import np_scalar
from test_learn import _cli, _learn_args, _synthetic_demos

TOL = dict(rtol=1e-5, atol=1e-5)
CFG = disc.DiscriminatorConfig(hidden=(8, 6), activation="tanh")


def test_encoder_and_head_are_the_discriminator_split():
    params = disc.init(CFG, jax.random.PRNGKey(0), 3)
    x = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    w, b = fr.head(params)
    z = fr.encode(CFG, params, x)
    assert z.shape == (16, 6)
    np.testing.assert_allclose(np.asarray(z @ w + b), np.asarray(disc.logits(CFG, params, x)),
                               **TOL)
    np.testing.assert_allclose(np.asarray(z @ w + b),
                               np_scalar(jax.tree.map(np.asarray, params), x), **TOL)


def test_linear_correction_equals_the_recursion_on_function_values():
    """theta-space updates == Alg. 2 lines 19-24 applied to the rewards themselves
    (float64), when every D^(j) shares the encoder; the step is eps / (1 + eta)."""
    rng = np.random.default_rng(1)
    beta, eps, n = 50.0, 0.6, 7
    params = disc.init(CFG, jax.random.PRNGKey(1), 3)
    z = np.asarray(fr.encode(CFG, params, rng.normal(size=(32, 3)).astype(np.float32)),
                   np.float64)
    reward, r_ref = fr.init(6), np.zeros(32)
    for j in range(n):
        w, b = rng.normal(size=6), rng.normal()
        eta = float(rng.choice([-0.5, 0.0, rng.uniform(0, 20)]))  # negative: clipped to 0
        member = jax.tree.map(lambda p: p, params)
        last = member["params"]["MLP_0"]["Dense_2"]
        member["params"]["MLP_0"]["Dense_2"] = {"kernel": jnp.asarray(w[:, None], jnp.float32),
                                                "bias": jnp.asarray([b], jnp.float32)}
        assert last["kernel"].shape == (6, 1)
        d = z @ np.float32(w) + np.float32(b)
        # Line 24 before the update, then the update with this member's eta.
        inter = fr.intermediate_reward(reward, member, jnp.asarray(z, jnp.float32), beta, eps)
        np.testing.assert_allclose(np.asarray(inter), (1 - eps) * r_ref + eps * beta * d,
                                   rtol=1e-5, atol=1e-3)
        reward = fr.update(reward, member, jnp.float32(eta), beta, eps)
        step = eps / (1.0 + max(eta, 0.0))
        r_ref = (1 - step) * r_ref + step * beta * d
        np.testing.assert_allclose(np.asarray(fr.corrected_reward(reward, jnp.asarray(
            z, jnp.float32))), r_ref, rtol=1e-5, atol=1e-3)


def test_feature_spec_problems_are_named():
    assert features.spec_problem([{"name": "x", "term": "obs", "index": 0}], 4, 2) is None
    assert "index" in features.spec_problem([{"name": "x", "term": "obs", "index": 4}], 4, 2)
    assert "term" in features.spec_problem([{"name": "x", "term": "qpos", "index": 0}], 4, 2)
    assert "non-empty" in features.spec_problem([], 4, 2)
    spec = features.spec_of((("px", "obs", 0), ("vy", "next_obs", 1), ("a1", "action", 1),
                             ("ctrl", "action_sq_sum")))
    obs, nxt, act = np.arange(8.).reshape(2, 4), -np.arange(8.).reshape(2, 4), np.ones((2, 2))
    np.testing.assert_array_equal(features.evaluate(np, spec, obs, act * [1, 3], nxt),
                                  [[0, -1, 3, 10], [4, -5, 3, 10]])


def test_distance_features_by_hand():
    """``obs_distance`` / ``next_obs_distance``: ||s[index] - s[to]|| (a 3-4-5 triangle),
    the same under NumPy and JAX; malformed index groups are named."""
    spec = features.spec_of((("d", "obs_distance", (0, 1), (2, 3)),
                             ("d_next", "next_obs_distance", (1,), (0,))))
    assert spec[0] == {"name": "d", "term": "obs_distance", "index": [0, 1], "to": [2, 3]}
    assert features.spec_problem(spec, 4, 2) is None
    obs = np.array([[1.0, 1.0, 4.0, 5.0], [0.0, 0.0, 0.0, 0.0]])
    nxt = np.array([[2.0, -1.0, 0.0, 0.0], [7.0, 7.0, 0.0, 0.0]])
    want = [[5.0, 3.0], [0.0, 0.0]]
    np.testing.assert_allclose(features.evaluate(np, spec, obs, np.zeros((2, 2)), nxt), want)
    np.testing.assert_allclose(features.evaluate(jnp, spec, jnp.asarray(obs, jnp.float32),
                                                 jnp.zeros((2, 2)), jnp.asarray(nxt, jnp.float32)),
                               want, rtol=1e-6)
    for bad in ({"index": [0, 1], "to": [2]}, {"index": [0], "to": [4]}, {"index": 0, "to": 1},
                {"index": [], "to": []}):
        problem = features.spec_problem([{"name": "d", "term": "obs_distance", **bad}], 4, 2)
        assert problem is not None and "'to'" in problem


# ----------------------------------------------------------------------------- a run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from trirl import demos as demos_lib
    from trirl import envs

    root = tmp_path_factory.mktemp("features")
    demos_lib.save(root / "demos.npz", _synthetic_demos(envs.make("point_maze")))
    # Both base features (the preset reads the distance alone): the file must read and
    # clip actions too.
    result = _cli(*_learn_args(root / "demos.npz", root / "run", "--reward-model", "features",
                               "--set", "feature_names=goal_distance,action_sq_sum"))
    assert result.exit_code == 0, result.output
    result = _cli("export", root / "run", "-o", root / "f.reward")
    assert result.exit_code == 0, result.output
    assert "features reward" in result.output
    return {"root": root, "run": root / "run", "file": root / "f.reward",
            "rr": export.load_run_reward(root / "run")}


def _inputs(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(-0.4, 0.4, (n, 4)).astype(np.float32),
            rng.uniform(-1.5, 1.5, (n, 2)).astype(np.float32),
            rng.uniform(-0.4, 0.4, (n, 4)).astype(np.float32))


def test_run_learns_in_the_linear_weights(run):
    rows = [json.loads(line) for line in (run["run"] / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["finite"] for r in rows)
    rr = run["rr"]
    assert isinstance(rr.buffer, fr.LinearReward) and rr.buffer.theta.shape == (8,)
    assert float(jnp.abs(rr.buffer.theta).sum()) > 0  # corrected at least once


def test_features_file_reproduces_the_learner_reward(run):
    reward, rr = rewards.load(run["file"]), run["rr"]
    assert reward.form == "features" and reward.inputs == "features"
    assert [t["name"] for t in reward.header["features"]] == ["goal_distance", "action_sq_sum"]
    assert reward.reads_action and reward.reads_next_obs
    obs, act, nxt = _inputs()
    no_abs = np.zeros(len(obs), bool)
    x = rr.session.learner.disc_x(rr.disc_stats, obs, act, nxt, no_abs)
    got = reward(obs, act, nxt)
    np.testing.assert_allclose(got, np.asarray(rr.corrected(x)), **TOL)
    # It reads ||next position - goal|| and sum a^2 only: the previous state, the sign
    # of the action and a shift of position and goal together do not matter.
    shifted = nxt + np.float32(0.05)
    for args in ((obs[::-1], act, nxt), (obs, -act, nxt), (obs, act, shifted)):
        np.testing.assert_allclose(reward(*args), got, **TOL)
        x = rr.session.learner.disc_x(rr.disc_stats, *args, no_abs)
        np.testing.assert_allclose(np.asarray(rr.corrected(x)), got, **TOL)
    assert np.ptp(got) > 1e-3  # and it does depend on what it reads
    # r(s_a): the header, the reader and the learner agree.
    x_abs = rr.session.learner.absorbing_x()[None]
    assert reward.absorbing_reward == pytest.approx(float(rr.corrected(x_abs)[0]), abs=1e-5)
    assert reward.absorbing_reward == pytest.approx(reward.header["absorbing_reward"], abs=1e-6)
    # JAX agrees with NumPy.
    np.testing.assert_allclose(np.asarray(jax.jit(reward.as_jax())(obs, act, nxt)), got, **TOL)
    assert (run["file"]).stat().st_size < 20_000  # tiny: an encoder and a weight vector


def test_features_onnx_matches_numpy(run, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    reward = rewards.load(run["file"])
    result = _cli("export", run["file"], "-o", tmp_path / "f.onnx", "--format", "onnx")
    assert result.exit_code == 0, result.output
    model = onnx.load(str(tmp_path / "f.onnx"))
    assert [i.name for i in model.graph.input] == ["obs", "action", "next_obs"]
    obs, act, nxt = _inputs(seed=2)
    act[0] = [3.0, -2.0]  # out of range: the file clips it like the env
    out = ReferenceEvaluator(model).run(None, {"obs": obs, "action": act, "next_obs": nxt})[0]
    np.testing.assert_allclose(out, reward(obs, act, nxt), **TOL)


def test_wrong_form_and_bad_spec_are_one_line_errors(run, tmp_path):
    result = _cli("export", run["run"], "-o", tmp_path / "c.reward", "--form", "composite")
    assert result.exit_code == 2 and "--form features or fitted" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "c.reward").exists()
    header, tensors = _file.read(run["file"])
    header["features"][0]["to"] = [2, 9]
    bad = tmp_path / "bad.reward"
    header["tensors_sha256"] = _file.tensors_sha256(tensors)
    save_file(tensors, str(bad), metadata={_file.METADATA_KEY: json.dumps(header)})
    result = _cli("inspect", bad)
    assert result.exit_code == 2
    assert "'features'" in result.output and "index" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_fitted_form_of_a_features_run(run, tmp_path):
    result = _cli("export", run["run"], "-o", tmp_path / "fit.reward", "--form", "fitted",
                  "--fit-steps", 20)
    assert result.exit_code == 0, result.output
    reward = rewards.load(tmp_path / "fit.reward")
    assert reward.form == "fitted" and reward.inputs == "features"
    obs, act, nxt = _inputs()
    assert np.all(np.isfinite(reward(obs, act, nxt)))


def test_retrain_takes_the_tr_loss_learners_steps_and_budget(run, tmp_path):
    """The preset's run is a tr_loss run: by default a fresh policy on its reward takes the
    same policy steps (no projection, KL penalty eta_init = 80 decaying to 0) for the
    learner's budget (4 iterations: 80, 60, 40, 20 by hand); --kl-penalty 0 opts out."""
    prov = rewards.load(run["file"]).header["provenance"]
    assert prov["variant"] == "tr_loss" and prov["eta_init"] == 80.0
    assert prov["eta_schedule"] == "linear" and prov["ppo"]["trust_region"] is None
    out = tmp_path / "re"
    result = _cli("retrain", "--reward", run["file"], "--seeds", 1, "--run-dir", out)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["kl_penalty"] == 80.0 and config["total_steps"] == prov["env_steps"] == 64
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    np.testing.assert_allclose([r["kl_coef"] for r in rows], [80.0, 60.0, 40.0, 20.0])
    out = tmp_path / "plain"
    result = _cli("retrain", "--reward", run["file"], "--seeds", 1, "--steps", 16,
                  "--kl-penalty", 0, "--run-dir", out)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["kl_penalty"] == 0.0
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and "kl_coef" not in rows[0]


def test_a_state_only_subset_learns_from_observation_only_demos(tmp_path):
    """``feature_names=goal_distance``: the reward reads that feature alone, so demos
    without actions suffice, the file does not read actions, and it still reproduces
    the learner's corrected reward (now blind to the action)."""
    import dataclasses

    from trirl import demos as demos_lib
    from trirl import envs

    demos = _synthetic_demos(envs.make("point_maze"))
    demos_lib.save(tmp_path / "obs.npz", dataclasses.replace(demos, actions=None))
    args = _learn_args(tmp_path / "obs.npz", tmp_path / "run", "--reward-model", "features",
                       "--set", "feature_names=goal_distance")
    result = _cli(*args)
    assert result.exit_code == 0, result.output
    result = _cli("export", tmp_path / "run", "-o", tmp_path / "d.reward")
    assert result.exit_code == 0, result.output
    reward, rr = rewards.load(tmp_path / "d.reward"), export.load_run_reward(tmp_path / "run")
    assert [t["name"] for t in reward.header["features"]] == ["goal_distance"]
    assert not reward.reads_action and reward.reads_next_obs
    obs, act, nxt = _inputs(seed=3)
    no_abs = np.zeros(len(obs), bool)
    got = reward(obs, None, nxt)
    for a in (act, -2 * act):
        x = rr.session.learner.disc_x(rr.disc_stats, obs, a, nxt, no_abs)
        np.testing.assert_allclose(np.asarray(rr.corrected(x)), got, **TOL)
    assert np.ptp(got) > 1e-3
    # A name the env does not declare, or a subset without the features model: one line,
    # nothing written.
    for extra, expect in ((("--reward-model", "features", "--set", "feature_names=speed"),
                           "has no base feature 'speed'; it has goal_distance, action_sq_sum"),
                          (("--set", "feature_names=goal_distance"), "--reward-model features")):
        bad = _cli(*_learn_args(tmp_path / "obs.npz", tmp_path / "never", "--inputs", "ss",
                                *extra))
        assert bad.exit_code == 2 and expect in bad.output, bad.output
        assert len(bad.output.strip().splitlines()) == 1 and not (tmp_path / "never").exists()
