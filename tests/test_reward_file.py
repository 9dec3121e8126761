"""Tests for `.reward` files: `trirl export`, `trirl inspect`, `trirl.rewards`, `trirl
retrain` and `trirl transfer`.

One tiny TRIRL run (the settings of test_learn.py, so the compiled learner is shared
in one pytest process: 4 iterations, k = 2, R_fit active) is exported. References:
the learner's own ``corrected_reward / beta`` (what `composite` must reproduce) and an
independent float64 NumPy recursion over the buffer's networks (Alg. 2 lines 19-23).
"""

import json
import os
import stat
from pathlib import Path

import jax
import numpy as np
import pytest
from safetensors.numpy import save_file

from trirl import export, retrain, rewards
from trirl import reward_buffer as rb
from trirl.rewards import _file

from numpy_reference import np_scalar
from reader_check import assert_reader_runs_without_jax
from test_learn import REFERENCE, _cli, _learn_args, _synthetic_demos

TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from trirl import demos as demos_lib
    from trirl import envs

    root = tmp_path_factory.mktemp("reward")
    demos_lib.save(root / "demos.npz", _synthetic_demos(envs.make("point_maze")))
    result = _cli(*_learn_args(root / "demos.npz", root / "run"))
    assert result.exit_code == 0, result.output
    result = _cli("export", root / "run", "-o", root / "composite.reward")
    assert result.exit_code == 0, result.output
    return {"root": root, "run": root / "run", "file": root / "composite.reward",
            "rr": export.load_run_reward(root / "run")}


def _inputs(reward, n=64, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-0.4, 0.4, (n, reward.observation_size)).astype(np.float32)
    act = rng.uniform(-1.0, 1.0, (n, reward.action_size)).astype(np.float32)
    return obs, act


def _learner_x(rr, obs, act, absorbing=None):
    absorbing = np.zeros(len(obs), bool) if absorbing is None else absorbing
    return rr.session.learner.disc_x(rr.disc_stats, obs, act, obs, absorbing)


def _np64_composite(rr, x):
    """Float64 Alg. 2 recursion over the buffer's members, oldest first, from R_fit."""
    buf, cfg = rr.buffer, rr.session.config
    x = np.asarray(x, np.float64)
    r = cfg.beta * np_scalar(jax.tree.map(np.asarray, buf.fit_params), x) if bool(buf.fit_active) \
        else np.zeros(len(x))
    count, head, k = int(buf.count), int(buf.head), cfg.capacity
    for j in range(count):
        slot = (head - count + j) % k
        member = jax.tree.map(lambda p: np.asarray(p)[slot], buf.disc_params)
        step = cfg.eps / (1.0 + max(float(buf.etas[slot]), 0.0))
        r = (1 - step) * r + step * cfg.beta * np_scalar(member, x)
    return r / cfg.beta


# ----------------------------------------------------------------------------- values


def test_composite_reproduces_the_learner_reward(run):
    reward, rr = rewards.load(run["file"]), run["rr"]
    assert reward.form == "composite" and reward.header["composite"]["members"] == 2
    assert reward.header["composite"]["base"] == "fit"  # 4 iterations, k = 2: R_fit is on
    obs, act = _inputs(reward)
    got = reward(obs, act)
    learner = np.asarray(rr.corrected(_learner_x(rr, obs, act)))
    np.testing.assert_allclose(got, learner, **TOL)
    np.testing.assert_allclose(got, _np64_composite(rr, _learner_x(rr, obs, act)), **TOL)
    # Batch shape is kept; a single transition works.
    assert reward(obs.reshape(8, 8, -1), act.reshape(8, 8, -1)).shape == (8, 8)
    np.testing.assert_allclose(reward(obs[0], act[0]), got[0], **TOL)
    # r(s_a): the header's value (the learner's), the reader's, and the recursion's.
    x_abs = rr.session.learner.absorbing_x()[None]
    assert reward.absorbing_reward == pytest.approx(reward.header["absorbing_reward"], abs=1e-6)
    assert reward.absorbing_reward == pytest.approx(float(_np64_composite(rr, x_abs)[0]),
                                                    abs=1e-5)


def test_jax_matches_numpy(run):
    reward = rewards.load(run["file"])
    obs, act = _inputs(reward, seed=1)
    fn = jax.jit(reward.as_jax())
    np.testing.assert_allclose(np.asarray(fn(obs, act)), reward(obs, act), **TOL)
    params = reward.jax_params()
    assert float(jax.jit(reward.jax_absorbing_reward)(params)) == pytest.approx(
        reward.absorbing_reward, abs=1e-6)


def test_missing_inputs_and_wrong_widths_are_clear(run):
    reward = rewards.load(run["file"])
    obs, act = _inputs(reward)
    with pytest.raises(ValueError, match="pass action="):
        reward(obs)
    with pytest.raises(ValueError, match="expects 4 values per row"):
        reward(obs[:, :3], act)
    with pytest.raises(ValueError, match="batch shape"):
        reward(obs, act[:5])


def test_reader_imports_without_jax_or_mujoco(run):
    assert_reader_runs_without_jax(
        run["file"], "r(np.zeros((3, 4), np.float32), np.zeros((3, 2), np.float32))")


def test_fitted_form_is_one_network_with_its_fit_error(run):
    path = run["root"] / "fitted.reward"
    result = _cli("export", run["run"], "-o", path, "--form", "fitted", "--fit-steps", 20)
    assert result.exit_code == 0, result.output
    reward = rewards.load(path)
    assert reward.form == "fitted"
    errors = reward.header["fit_error"]["held_out"]
    assert set(errors) == {"expert", "agent", "fresh_policy", "absorbing"}
    assert all(np.isfinite(e["rmse"]) and e["rows"] > 0 for e in errors.values())
    # Independent evaluation of the stored network on the learner's inputs.
    rr = run["rr"]
    obs, act = _inputs(reward)
    layers = {f"Dense_{i}": {"kernel": reward.tensors[f"fit/layer{i}/kernel"],
                             "bias": reward.tensors[f"fit/layer{i}/bias"]} for i in range(2)}
    want = np_scalar({"params": {"MLP_0": layers}}, np.asarray(_learner_x(rr, obs, act)))
    np.testing.assert_allclose(reward(obs, act), want, **TOL)


# ----------------------------------------------------------------------------- files


def test_inspect_prints_the_header(run):
    result = _cli("inspect", run["file"], "--json")
    assert result.exit_code == 0, result.output
    header = json.loads(result.output)
    assert header["format_version"] == rewards.FORMAT_VERSION
    assert header["env"]["observation_names"] == ["particle_x", "particle_y", "goal_x", "goal_y"]
    prov = header["provenance"]
    assert (prov["variant"], prov["k"], prov["eps"], prov["iterations"]) == ("max_eta", 2, 0.6, 4)
    assert prov["expert_return_mean"] == REFERENCE["expert_return_mean"]
    assert len(prov["demos_sha256"]) == 64
    result = _cli("inspect", run["file"])
    assert result.exit_code == 0 and "checksum OK" in result.output


def test_write_read_round_trip(run, tmp_path):
    header, tensors = _file.read(run["file"])
    path = _file.write(tmp_path / "copy.reward", header, tensors)
    header2, tensors2 = _file.read(path)
    assert header2 == header
    assert sorted(tensors2) == sorted(tensors)
    for name in tensors:
        np.testing.assert_array_equal(tensors2[name], tensors[name])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    # A file to share: a new file's usual permissions, not safetensors' private 0o600.
    old_mask = os.umask(0o022)
    try:
        assert stat.S_IMODE(_file.write(tmp_path / "m.reward", header, tensors).stat().st_mode) \
            == 0o644
    finally:
        os.umask(old_mask)


def _rewrite(src, dst, edit_header=None, drop=None):
    """A copy of ``src`` with its header or tensors changed; the checksum is recomputed
    so that only the intended defect remains."""
    header, tensors = _file.read(src)
    if drop:
        tensors = {k: v for k, v in tensors.items() if k != drop}
    header = {**header, "tensors_sha256": _file.tensors_sha256(tensors)}
    if edit_header:
        edit_header(header)
    save_file(tensors, str(dst), metadata={_file.METADATA_KEY: json.dumps(header)})
    return dst


CORRUPTIONS = {
    "future_version": ("format_version", lambda src, dst: _rewrite(
        src, dst, lambda h: h.update(format_version=99))),
    "checksum": ("checksum mismatch", lambda src, dst: dst.write_bytes(
        (lambda b: b[:-5] + bytes([b[-5] ^ 0xFF]) + b[-4:])(src.read_bytes()))),
    "truncated": ("not a readable .reward file", lambda src, dst: dst.write_bytes(
        src.read_bytes()[:-100])),
    "missing_tensor": ("'members/layer1/kernel' is missing", lambda src, dst: _rewrite(
        src, dst, drop="members/layer1/kernel")),
    "missing_field": ("'beta' is missing", lambda src, dst: _rewrite(
        src, dst, lambda h: h.pop("beta"))),
    "not_safetensors": ("not a readable .reward file", lambda src, dst: dst.write_text(
        "hello\n")),
    "no_header": ("without a trirl reward header", lambda src, dst: save_file(
        {"x": np.zeros(2, np.float32)}, str(dst))),
    "absent": ("no such reward file", lambda src, dst: None),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_bad_files_give_one_clear_line(run, tmp_path, case):
    expect, make = CORRUPTIONS[case]
    bad = tmp_path / f"{case}.reward"
    make(run["file"], bad)
    with pytest.raises(rewards.RewardFileError, match=expect) as info:
        rewards.load(bad)
    assert str(bad) in str(info.value) and "\n" not in str(info.value)
    result = _cli("inspect", bad)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trirl: error: ") and expect in lines[0]


def test_observation_layout_mismatch_is_refused(run, tmp_path):
    from trirl import envs

    bad = _rewrite(run["file"], tmp_path / "renamed.reward", lambda h: h["env"].update(
        observation_names=["a", "b", "c", "d"]))
    reward = rewards.load(bad)
    with pytest.raises(rewards.RewardFileError, match="observation layout differs"):
        retrain.check_compatible(reward, envs.make("point_maze_flipped"))
    with pytest.raises(rewards.RewardFileError, match="reads 4 observation values"):
        reward.check_observations(5)
    result = _cli("transfer", "--reward", bad, "--env", "point_maze_flipped", "--run-dir",
                  tmp_path / "never")
    assert result.exit_code == 2 and "observation layout differs" in result.output
    assert not (tmp_path / "never").exists()


# ----------------------------------------------------------------------------- re-optimise


def test_retrain_trains_fresh_policies_on_the_frozen_reward(run, tmp_path):
    out = tmp_path / "retrain"
    result = _cli("retrain", "--reward", run["file"], "--steps", 32, "--seeds", 2, "--run-dir",
                  out, "--checkpoint-every", 1)
    assert result.exit_code == 0, result.output
    assert "normalized score" in result.output
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "retrain" and config["seed"] == 0 + retrain.SEED_OFFSET
    assert config["kl_penalty"] == 0.0  # a max-eta reward: its learner's TRPL steps
    # Seed i of a multi-seed run gets its own fresh initialisation (the slow compare test
    # checks the exported headers end to end).
    assert [retrain.fresh_seed({"seed": 3, "seed_index": i}) for i in range(3)] == \
        [3 + retrain.SEED_OFFSET + i for i in range(3)]
    assert config["env_overrides"] == {"episode_length": 6, "goal_radius": 0.3}
    assert config["ppo"]["num_envs"] == 4 and config["ppo"]["hidden"] == [8]
    assert config["reference"]["expert_return_mean"] == REFERENCE["expert_return_mean"]
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert len(evaluation["per_seed"]) == 2
    for seed in evaluation["per_seed"]:
        want = ((seed["return_mean"] - REFERENCE["random_return_mean"])
                / (REFERENCE["expert_return_mean"] - REFERENCE["random_return_mean"]))
        assert seed["normalized_score"] == pytest.approx(want)
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["iteration"] for x in lines] == [1, 2]
    # PPO optimised the file's reward: its reward function equals the NumPy reader.
    reward = rewards.load(out / retrain.REWARD_FILE)
    obs, act = _inputs(reward, seed=2)
    fn = retrain.learned_reward(reward).fn
    np.testing.assert_allclose(np.asarray(fn(reward.jax_params(), obs, act, obs,
                                             np.zeros(len(obs), bool))), reward(obs, act), **TOL)


def test_retrain_kl_penalty_takes_tr_loss_steps(run, tmp_path):
    """--kl-penalty: no projection, and the penalty weight decays linearly to 0 over the
    run (3 iterations: 80, 80 * 2/3, 80 * 1/3, by hand)."""
    out = tmp_path / "kl"
    result = _cli("retrain", "--reward", run["file"], "--steps", 48, "--seeds", 1,
                  "--kl-penalty", 80, "--run-dir", out)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["kl_penalty"] == 80.0 and config["ppo"]["trust_region"] is None
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    np.testing.assert_allclose([x["kl_coef"] for x in lines], [80.0, 160 / 3, 80 / 3],
                               rtol=1e-6)
    assert all(np.isfinite(x["kl_penalty"]) and "tr_loss" not in x for x in lines)
    result = _cli("retrain", "--reward", run["file"], "--kl-penalty", -1,
                  "--run-dir", tmp_path / "never")
    assert result.exit_code != 0 and "--kl-penalty must be >= 0" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "never").exists()


def test_transfer_needs_an_env_and_uses_its_reference(run, tmp_path):
    result = _cli("transfer", "--reward", run["file"], "--run-dir", tmp_path / "never")
    assert result.exit_code == 2 and "needs --env" in result.output
    ref = retrain._reference(rewards.load(run["file"]), "point_maze_flipped", None)
    from trirl import demos as demos_lib
    from trirl.evaluation import bundled_demos

    meta = demos_lib.load(bundled_demos("point_maze_flipped")).metadata
    assert ref["expert_return_mean"] == meta["expert_return_mean"]
    assert ref["random_return_mean"] == meta["random_return_mean"]


def test_exported_steps_are_the_corrected_step_sizes(run):
    """members/step holds eps / (1 + eta) in chronological order (oldest first)."""
    reward, rr = rewards.load(run["file"]), run["rr"]
    slots, valid = rb.slot_order(rr.buffer)
    etas = np.asarray(rr.buffer.etas)[np.asarray(slots)[np.asarray(valid)]]
    np.testing.assert_allclose(reward.tensors["members/step"],
                               0.6 / (1.0 + np.maximum(etas, 0.0)), rtol=1e-6)


def test_onnx_matches_numpy(run, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    reward = rewards.load(run["file"])
    obs, act = _inputs(reward, seed=3)
    act = act * 3.0  # partly out of range: the graph clips like the reader
    # Straight from the run, and converted from the .reward file: the same graph values.
    for source in (run["run"], run["file"]):
        path = tmp_path / "r.onnx"
        result = _cli("export", source, "-o", path, "--format", "onnx")
        assert result.exit_code == 0, result.output
        model = onnx.load(str(path))
        props = {p.key: p.value for p in model.metadata_props}
        assert json.loads(props["trirl_reward"])["form"] == "composite"
        out = ReferenceEvaluator(model).run(None, {"obs": obs, "action": act})[0]
        np.testing.assert_allclose(out, reward(obs, act), **TOL)
    try:
        import onnxruntime
    except ModuleNotFoundError:
        return
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"obs": obs, "action": act})[0],
                               reward(obs, act), **TOL)


def test_actions_are_judged_as_the_env_executes_them(run):
    """Out-of-range actions are clipped to the env's bounds (Point Maze: [-1, 1]) before
    the reward sees them, in NumPy, JAX and the learner alike."""
    reward, rr = rewards.load(run["file"]), run["rr"]
    assert reward.header["env"]["action_low"] == [-1.0, -1.0]
    obs, act = _inputs(reward, seed=4)
    wild = act * 5.0
    np.testing.assert_allclose(reward(obs, wild), reward(obs, np.clip(wild, -1, 1)), **TOL)
    np.testing.assert_allclose(reward(obs, wild), np.asarray(rr.corrected(
        _learner_x(rr, obs, wild))), **TOL)
    np.testing.assert_allclose(np.asarray(jax.jit(reward.as_jax())(obs, wild)),
                               reward(obs, wild), **TOL)


def test_gymnasium_wrapper_replaces_the_reward_and_values_termination(run):
    gymnasium = pytest.importorskip("gymnasium")
    from trirl.rewards.gymnasium import LearnedReward

    class Line(gymnasium.Env):
        """Deterministic 4-d observations; terminates at step 3 (or truncates, if asked)."""

        observation_space = gymnasium.spaces.Box(-1, 1, (4,), np.float32)
        action_space = gymnasium.spaces.Box(-1, 1, (2,), np.float32)

        def __init__(self, truncate=False):
            self.truncate = truncate

        def reset(self, *, seed=None, options=None):
            self.t = 0
            return self._obs(), {}

        def _obs(self):
            return np.array([0.05 * self.t - 0.15, 0.02 * self.t, 0.15, 0.0], np.float32)

        def step(self, action):
            self.t += 1
            end = self.t == 3
            return self._obs(), -1.0, end and not self.truncate, end and self.truncate, {}

    reward = rewards.load(run["file"])
    gamma = reward.header["gamma"]
    for truncate in (False, True):
        env = LearnedReward(Line(truncate), run["file"])
        obs, _ = env.reset()
        action = np.array([0.5, -0.25], np.float32)
        for t in range(3):
            nxt, r, terminated, truncated, info = env.step(action)
            want = float(reward(obs[None], action[None])[0])
            if terminated:
                want += gamma / (1 - gamma) * reward.absorbing_reward
            assert r == pytest.approx(want, abs=1e-6) and info["env_reward"] == -1.0
            obs = nxt
        assert (terminated, truncated) == (not truncate, truncate)
    with pytest.raises(rewards.RewardFileError, match="reads 4 observation values"):
        class Wide(Line):
            observation_space = gymnasium.spaces.Box(-1, 1, (5,), np.float32)
        LearnedReward(Wide(), run["file"])


def test_gymnasium_example_runs(run):
    pytest.importorskip("gymnasium")
    from trirl.examples import gymnasium_reward

    results = gymnasium_reward.main([str(run["file"]), "--episodes", "1"])
    assert len(results) == 1 and all(np.isfinite(results[0]))


def test_report_tabulates_training_retraining_transfer(run, tmp_path):
    """Scores come from each run's evaluation; the table's cells are their mean ± std."""
    retrain_dir = tmp_path / "re"
    result = _cli("retrain", "--reward", run["file"], "--steps", 16, "--seeds", 2, "--run-dir",
                  retrain_dir)
    assert result.exit_code == 0, result.output
    result = _cli("report", run["run"], retrain_dir, "-o", tmp_path / "rep")
    assert result.exit_code == 0, result.output
    table = json.loads((tmp_path / "rep" / "report.json").read_text())
    re_scores = [s["normalized_score"] for s in json.loads(
        (retrain_dir / "evaluation.json").read_text())["per_seed"]]
    assert table["point_maze"]["Retraining"] == pytest.approx(re_scores)
    assert len(table["point_maze"]["Training"]) == 1
    md = (tmp_path / "rep" / "report.md").read_text()
    assert f"{np.mean(re_scores):.2f} ± {np.std(re_scores):.2f} (2 seeds)" in md
    assert (tmp_path / "rep" / "report.png").stat().st_size > 1000


def test_report_gives_each_transfer_target_its_own_column():
    """One reward transferred to two changed dynamics: two columns, never pooled."""
    from trirl import report

    table = {"halfcheetah": {"Training": [0.8, 0.9], "Transfer (halfcheetah_wind)": [0.5],
                             "Transfer (halfcheetah_mars)": [0.2, 0.4]},
             "point_maze": {"Retraining": [1.0]}}
    assert report.columns(table) == ["Training", "Retraining", "Transfer (halfcheetah_mars)",
                                     "Transfer (halfcheetah_wind)"]
    rows = report.markdown(table).splitlines()
    assert rows[0] == ("| env | Training | Retraining | Transfer (halfcheetah_mars) | "
                       "Transfer (halfcheetah_wind) |")
    assert rows[2] == ("| halfcheetah | 0.85 ± 0.05 (2 seeds) | - | 0.30 ± 0.10 (2 seeds) | "
                       "0.50 ± 0.00 (1 seed) |")
    assert rows[3] == "| point_maze | - | 1.00 ± 0.00 (1 seed) | - | - |"


def test_file_sha256_streams_the_whole_file(tmp_path):
    """``file_sha256`` (provenance hashes, robot-model cache) reads in 1 MiB chunks: it
    must equal hashlib over the whole bytes, for a file spanning several chunks and for
    an empty one."""
    import hashlib

    for name, data in (("blob.bin", np.random.default_rng(0).bytes((5 << 19) + 7)),
                       ("empty.bin", b"")):
        path = tmp_path / name
        path.write_bytes(data)
        assert _file.file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_bundled_point_maze_reward_is_the_transferable_features_reward():
    """examples/point_maze.reward (docs/benchmarks.md, `benchmarks/make_point_maze_reward.sh`):
    learned from the bundled demos, and it reads only what the flipped maze also has, so
    `trirl transfer --reward examples/point_maze.reward --env point_maze_flipped` runs."""
    import importlib.resources

    from trirl import envs
    from trirl import demos as demos_lib
    from trirl.evaluation import bundled_demos

    path = Path(str(importlib.resources.files("trirl.examples") / "point_maze.reward"))
    reward = rewards.load(path)
    assert reward.header["form"] == "features" and reward.env_name == "point_maze"
    prov = reward.header["provenance"]
    assert prov["demos_sha256"] == _file.file_sha256(bundled_demos("point_maze")), \
        "examples/point_maze.npz changed: rerun benchmarks/make_point_maze_reward.sh"
    retrain.check_compatible(reward, envs.make("point_maze_flipped"))
    # What makes it a goal: nearer is better, arriving (the absorbing state) best of all.
    # Hand check on the reached position (next_obs), action fixed; float64 reference of
    # a linear reward: r(d2) - r(d1) = w * (d2 - d1) / std with the stored weights.
    goal = np.array([0.15, 0.0], np.float32)
    pos = np.array([[-0.15, 0.0], [0.0, 0.25], [0.15, 0.15]], np.float32)
    obs = np.concatenate([pos, np.broadcast_to(goal, pos.shape)], 1)
    act = np.zeros((3, 2), np.float32)
    r = reward(obs, act, next_obs=obs)
    d = np.linalg.norm(pos.astype(np.float64) - goal, axis=1)
    assert d[0] > d[1] > d[2] and r[0] < r[1] < r[2]
    w = reward.tensors["reward/layer0/kernel"].astype(np.float64).ravel()[0]
    std = reward.tensors["normalizer/std"].astype(np.float64)[0]
    np.testing.assert_allclose(np.diff(r.astype(np.float64)), w * np.diff(d) / std, rtol=1e-4)
    assert reward.absorbing_reward > r.max()
    meta = demos_lib.load(bundled_demos("point_maze")).metadata
    assert prov["expert_return_mean"] == meta["expert_return_mean"]
