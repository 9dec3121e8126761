"""End-to-end tests of the ``trirl`` command line through click's CliRunner.

User errors must surface as exactly one line ``trirl: error: ...`` on stderr with exit
status 2, before any expensive work. The happy path trains a tiny expert once (module
fixture ``run_dir``: 8 iterations of 8 envs x 4 steps, 8-unit networks), then plots it,
records demos, evaluates it and checks the run-directory errors. The run uses the default
backend (``auto``: MuJoCo C on a CPU), on which ``demos`` and ``evaluate`` compile their
rollouts in seconds (MJX: about a minute each on a busy 2-core CPU, which is why they
used to be marked slow).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil

import jax
import numpy as np
import pytest
from click.testing import CliRunner

from trirl import demos as demos_lib
from trirl import envs
from trirl.cli.main import main

TINY = ["--set", "num_envs=8", "--set", "rollout_length=4", "--set", "minibatch_size=16",
        "--set", "hidden=8"]


def invoke(args):
    # A wide terminal so rich tables do not wrap the names we look for.
    return CliRunner().invoke(main, [str(a) for a in args], env={"COLUMNS": "200"})


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("trirl: error: "), lines[0]
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    result = invoke(["expert", "--env", "point_maze", "--steps", "256", *TINY, "--run-dir", run])
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"run: {run}" in result.stdout
    return run


# ----------------------------------------------------------------------------- cheap


def test_envs_lists_the_point_maze_pair():
    result = invoke(["envs"])
    assert result.exit_code == 0, result.output
    assert re.search(r"\bpoint_maze\b(?!_)", result.stdout), result.stdout
    assert re.search(r"\bpoint_maze_flipped\b", result.stdout), result.stdout
    assert "goal_distance" in result.stdout  # base features, by their --set feature_names


def test_unknown_env_is_one_line_error(tmp_path):
    result = invoke(["expert", "--env", "nope", "--run-dir", tmp_path / "r"])
    assert_one_line_error(result, "'nope'", "point_maze")
    assert result.stdout == ""
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("override, fragment", [
    ("foo=1", "'foo'"),
    ("learning_rate=abc", "learning_rate='abc'"),
    ("learning_rate", "KEY=VALUE"),
    ("num_envs=2.5", "num_envs"),
])
def test_bad_set_is_one_line_error(tmp_path, override, fragment):
    result = invoke(["expert", "--env", "point_maze", "--set", override,
                     "--run-dir", tmp_path / "r"])
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("override, fragment", [
    ("disc.absorbing_mass=bogus", "absorbing_mass must be one of ('one', 'horizon')"),
    ("disc.loss=bogus", "loss must be one of"),
])
def test_bad_discriminator_choice_is_one_line_error(tmp_path, override, fragment):
    result = invoke(["learn", "--env", "point_maze", "--set", override,
                     "--run-dir", tmp_path / "r"])
    assert_one_line_error(result, fragment, "bogus")
    assert not (tmp_path / "r").exists()


def test_bad_env_set_and_indivisible_batch_are_one_line_errors(tmp_path):
    result = invoke(["expert", "--env-set", "gravity=1", "--run-dir", tmp_path / "a"])
    assert_one_line_error(result, "'gravity'")
    result = invoke(["expert", "--set", "num_envs=3", "--set", "rollout_length=5",
                     "--set", "minibatch_size=4",
                     "--run-dir", tmp_path / "b"])
    assert_one_line_error(result, "minibatch_size=4")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_resume_of_a_non_run_directory_is_one_line_error(tmp_path):
    assert_one_line_error(invoke(["expert", "--resume", tmp_path]), "not a trirl run directory")
    assert_one_line_error(invoke(["expert", "--resume", tmp_path / "missing"]),
                          "not a trirl run directory")


@pytest.mark.parametrize("command", [
    ["demos", "{dir}", "-o", "{dir}/d.npz"],
    ["evaluate", "{dir}"],
    ["plot", "{dir}"],
    ["render", "{dir}"],
])
def test_commands_on_a_non_run_directory_are_one_line_errors(tmp_path, command):
    assert_one_line_error(invoke([c.format(dir=tmp_path) for c in command]))


# ----------------------------------------------------------------------------- a tiny run


def test_expert_writes_config_metrics_and_checkpoint(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    assert config["kind"] == "expert" and config["env"] == "point_maze"
    assert config["seeds"] == 1 and config["num_iterations"] == 8
    assert config["total_steps"] == 256
    ppo = config["ppo"]
    assert (ppo["num_envs"], ppo["rollout_length"], ppo["minibatch_size"]) == (8, 4, 16)
    assert ppo["hidden"] == [8]
    assert ppo["entropy_coef"] == 0.01  # the env preset, not overridden
    lines = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [ln["iteration"] for ln in lines] == list(range(1, 9))
    assert lines[-1]["env_steps"] == 256
    assert all(np.isfinite(ln["loss"]) for ln in lines)
    steps = sorted(p.name for p in (run_dir / "checkpoints").iterdir()
                   if not p.name.startswith("."))
    assert steps == ["8"]


def test_expert_records_its_backend_and_resume_keeps_it(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    assert config["backend"] == envs.resolve_backend("auto")   # the default is auto
    other = "mjx" if config["backend"] == "c" else "c"
    result = invoke(["expert", "--resume", run_dir, "--backend", other])
    assert_one_line_error(result, f"'{config['backend']}' backend",
                          f"--backend {config['backend']}")


def test_unknown_backend_is_rejected_before_any_work(tmp_path):
    result = invoke(["expert", "--backend", "gpu", "--run-dir", tmp_path / "r"])
    assert result.exit_code == 2 and "'gpu'" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "r").exists()


def test_a_run_policy_loads_for_either_backend(run_dir):
    # Checkpoints hold the trained-on backend's physics state; demos/evaluate on the
    # other backend still restore the policy (in the recorded layout).
    from trirl.runs import load_policy, open_run

    config = json.loads((run_dir / "config.json").read_text())
    other = "mjx" if config["backend"] == "c" else "c"
    own = load_policy(open_run(run_dir))
    run = open_run(run_dir, backend=other)
    assert run.env.backend_name == other
    for a, b in zip(jax.tree.leaves(own), jax.tree.leaves(load_policy(run)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_expert_refuses_to_overwrite_a_run(run_dir):
    result = invoke(["expert", "--steps", "256", *TINY, "--run-dir", run_dir])
    assert_one_line_error(result, "already holds a run", "--resume")


def test_resume_without_checkpoint_starts_the_run_from_its_record(run_dir, tmp_path):
    """A run killed before its first checkpoint has its config.json: resuming trains it
    from iteration 0 with those settings, to the same numbers as the original run."""
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copy(run_dir / "config.json", fresh / "config.json")
    result = invoke(["expert", "--resume", fresh])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "no checkpoint yet" in result.output
    strip = lambda path: [{k: v for k, v in json.loads(line).items() if k != "wall_s"}  # noqa
                          for line in (path / "metrics.jsonl").read_text().splitlines()]
    assert strip(fresh) == strip(run_dir)


def test_resume_of_another_kind_names_its_command(run_dir):
    result = invoke(["learn", "--resume", run_dir])
    assert_one_line_error(result, "is a 'expert' run", f"trirl expert --resume {run_dir}")


def test_demos_writes_a_loadable_file(run_dir, tmp_path):
    out = tmp_path / "d.npz"
    result = invoke(["demos", run_dir, "--episodes", "3", "-o", out])
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"wrote {out}: 3 episodes" in result.stdout
    env = envs.make("point_maze")
    demos = demos_lib.load(out, env=env, require_actions=True)
    assert demos.num_episodes == 3
    assert demos.metadata["env"] == "point_maze"
    assert demos.metadata["deterministic"] is True
    assert np.isfinite(demos.metadata["expert_return_mean"])
    assert np.isfinite(demos.metadata["random_return_mean"])
    assert str(run_dir) in demos.metadata["source"]
    assert demos.actions.shape == (demos.num_transitions, env.action_size)


def _falls_in(episodes_that_fall):
    """demos.record as it is, but the listed episodes end in a terminal state."""
    real = demos_lib.record

    def record(env, act_fn, key, episodes, *, params=None):
        demos, returns = real(env, act_fn, key, episodes, params=params)
        absorbing, truncated = demos.absorbing.copy(), demos.truncated.copy()
        last = demos.episode_ends[list(episodes_that_fall)] - 1
        absorbing[last], truncated[last] = True, False
        returns = returns + np.arange(episodes)   # distinct, to see which are kept
        record.calls.append(returns)              # the policy's, then the random returns
        return dataclasses.replace(demos, absorbing=absorbing, truncated=truncated), returns

    record.calls = []
    return record


def test_demos_drop_terminated_keeps_the_episodes_that_ran_out(run_dir, tmp_path, monkeypatch):
    """--drop-terminated: episodes 0 and 2 of the recording fall, so the file holds
    episodes 1, 3, 4 of the same recording (same rows, their returns) and says 2 dropped."""
    record = _falls_in([0, 2])
    monkeypatch.setattr(demos_lib, "record", record)
    every, kept = tmp_path / "every.npz", tmp_path / "kept.npz"
    assert invoke(["demos", run_dir, "--episodes", "9", "-o", every]).exit_code == 0
    returns = record.calls[0]
    result = invoke(["demos", run_dir, "--episodes", "3", "--drop-terminated", "-o", kept])
    assert result.exit_code == 0, result.output
    assert "2 terminated episodes dropped" in result.stdout
    all_eps, got = demos_lib.load(every), demos_lib.load(kept)
    assert got.num_episodes == 3 and not got.absorbing.any()
    slices = [slice(all_eps.episode_starts[i], all_eps.episode_ends[i]) for i in (1, 3, 4)]
    for field in ("obs", "next_obs", "actions", "truncated"):
        want = np.concatenate([getattr(all_eps, field)[sl] for sl in slices])
        np.testing.assert_array_equal(getattr(got, field), want)
    lengths = [sl.stop - sl.start for sl in slices]
    np.testing.assert_array_equal(got.episode_starts, [0, lengths[0], lengths[0] + lengths[1]])
    assert got.metadata["dropped_terminated_episodes"] == 2
    assert got.metadata["expert_return_mean"] == pytest.approx(returns[[1, 3, 4]].mean())
    assert got.metadata["expert_return_std"] == pytest.approx(returns[[1, 3, 4]].std())


def test_demos_drop_terminated_refuses_when_too_few_ran_out(run_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(demos_lib, "record", _falls_in(range(7)))   # 2 of 3 x 3 run out
    out = tmp_path / "d.npz"
    result = invoke(["demos", run_dir, "--episodes", "3", "--drop-terminated", "-o", out])
    assert_one_line_error(result, "only 2 of 9 episodes", "--drop-terminated")
    assert not out.exists()


def test_evaluate_prints_json(run_dir):
    result = invoke(["evaluate", run_dir, "--episodes", "3", "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    report = json.loads(result.stdout)
    assert report["env"] == "point_maze" and report["episodes"] == 3
    assert report["backend"] == json.loads((run_dir / "config.json").read_text())["backend"]
    assert report["deterministic"] is True
    assert len(report["per_seed"]) == 1
    seed = report["per_seed"][0]
    assert np.isfinite(seed["return_mean"]) and seed["return_std"] >= 0
    assert 0.0 <= seed["terminated_fraction"] <= 1.0
    assert report["return_mean"] == seed["return_mean"]
    ref = report["reference"]
    if ref is not None:  # the bundled point_maze demos give the score's reference returns
        expected = ((seed["return_mean"] - ref["random_return_mean"])
                    / (ref["expert_return_mean"] - ref["random_return_mean"]))
        assert seed["normalized_score"] == pytest.approx(expected)
        assert report["normalized_score_mean"] == pytest.approx(expected)


def test_plot_writes_a_png(run_dir, tmp_path):
    result = invoke(["plot", run_dir])
    assert result.exit_code == 0, (result.output, result.exception)
    png = run_dir / "learning_curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = tmp_path / "loss.png"
    result = invoke(["plot", run_dir, "--metric", "loss", "-o", out])
    assert result.exit_code == 0, (result.output, result.exception)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_one_line_error(invoke(["plot", run_dir, "--metric", "nope"]), "'nope'", "loss")


def test_step_ticks_are_short():
    from trirl.plots import step_label

    assert [step_label(x) for x in (0, 500, 25_000, 250_000, 1_000_000, 2_500_000, -50_000)] \
        == ["0", "500", "25k", "250k", "1M", "2.5M", "-50k"]


def test_curves_hold_each_seeds_latest_episode_value():
    from trirl.plots import latest_per_seed

    n = np.nan
    got = latest_per_seed([[n, 1.0, n], [2.0, n, n], [n, n, 5.0], [3.0, 4.0, n]])
    want = np.array([[n, 1, n], [2, 1, n], [2, 1, 5], [3, 4, 5]], float)
    np.testing.assert_array_equal(got, want)


def test_interrupt_exits_130_without_error_prefix(capsys):
    from trirl.cli.main import _friendly
    from trirl.errors import Interrupted

    @_friendly
    def stopped():
        raise Interrupted("interrupted at iteration 3; checkpoint saved, continue with --resume r")

    with pytest.raises(SystemExit) as exc:
        stopped()
    assert exc.value.code == 130
    assert capsys.readouterr().err == ("trirl: interrupted at iteration 3; checkpoint saved, "
                                       "continue with --resume r\n")
