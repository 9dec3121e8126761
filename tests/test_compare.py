"""Tests for `trirl compare` (trirl.compare, trirl.compare_report) and trirl.stats.

Statistics are checked against independent float64 references: hand-computed IQMs,
``scipy.stats.trim_mean`` (what rliable calls), and a plain loop over bootstrap
resamples with a hand-written percentile. The grid tests share one tiny in-process
grid (Point Maze, trirl and gail, 2 seeds, 2 iterations of the test_learn.py
settings) made through the CLI; rerunning it must skip both cells, and removing the
trirl cell's final checkpoint must make the next run resume it from the one before,
reproducing the original iteration exactly.
"""

import dataclasses
import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from trirl import presets
from trirl import settings as settings_lib
from trirl import compare, compare_report, envs, stats
from trirl import demos as demos_lib
from trirl.errors import Interrupted, TrirlError

from test_learn import TINY, TINY_ENV, _cli, _synthetic_demos

SEEDS, STEPS, REPS = 2, 32, 2000  # 2 iterations of 16 steps per seed
ALGOS = ("trirl", "gail")


# ----------------------------------------------------------------------------- statistics


def test_iqm_of_known_data():
    assert stats.iqm([1, 2, 3, 4, 5, 6, 7, 8]) == 4.5  # drops 1, 2 and 7, 8
    assert stats.iqm([0, 0, 0, 100]) == 0.0  # n = 4: one dropped at each end
    assert stats.iqm([100, 1, 4, 2, 3]) == 3.0  # unsorted; n = 5: floor(5/4) = 1
    assert stats.iqm([1, 2, 9]) == 4.0  # n < 4: nothing dropped
    assert stats.iqm([[1, 8], [2, 7], [3, 6], [4, 5]]) == 4.5  # pooled
    rng = np.random.default_rng(0)
    for n in range(1, 30):
        x = rng.normal(size=n) ** 3
        assert stats.iqm(x) == pytest.approx(scipy_stats.trim_mean(x, 0.25), abs=1e-12)
    rows = rng.normal(size=(7, 11))
    np.testing.assert_allclose(stats.iqm(rows, axis=1),
                               [scipy_stats.trim_mean(r, 0.25) for r in rows], atol=1e-12)


def _np_percentile(values, q):
    """numpy's default ('linear') percentile, by hand: position q/100 * (n - 1)."""
    v = sorted(values)
    pos = q / 100.0 * (len(v) - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (pos - lo) * (v[hi] - v[lo])


def _loop_iqm(values):
    v = sorted(values)
    cut = len(v) // 4
    kept = v[cut:len(v) - cut]
    return sum(kept) / len(kept)


def test_stratified_bootstrap_matches_a_plain_loop():
    """Same draws (the documented order), resamples evaluated one at a time."""
    rng = np.random.default_rng(1)
    tasks = [rng.normal(0.5, 0.3, 5), rng.normal(0.8, 0.1, 3), rng.uniform(0, 1, 4)]
    reps, seed = 500, 7
    point, low, high = stats.stratified_bootstrap_ci(tasks, reps=reps, seed=seed)

    draws = np.random.default_rng(seed)
    idx = [draws.integers(0, len(t), size=(reps, len(t))) for t in tasks]
    estimates = []
    for r in range(reps):
        pooled = [float(t[i]) for t, ix in zip(tasks, idx) for i in ix[r]]
        estimates.append(_loop_iqm(pooled))
    assert point == pytest.approx(_loop_iqm([float(x) for t in tasks for x in t]), abs=1e-12)
    assert low == pytest.approx(_np_percentile(estimates, 2.5), abs=1e-12)
    assert high == pytest.approx(_np_percentile(estimates, 97.5), abs=1e-12)
    assert low <= point <= high and low < high


def test_bootstrap_resamples_within_tasks_only():
    """Independent draws (per resample, per task, with rng.choice) agree within Monte
    Carlo error; pooling tasks before resampling gives a visibly different interval."""
    tasks = [np.array([0.0, 0.1, 0.2, 0.3]), np.array([1.0, 1.1, 1.2, 1.3])]
    _, low, high = stats.stratified_bootstrap_ci(tasks, reps=20_000, seed=0)
    rng = np.random.default_rng(123)
    loop = [_loop_iqm([float(x) for t in tasks for x in rng.choice(t, len(t))])
            for _ in range(20_000)]
    assert low == pytest.approx(_np_percentile(loop, 2.5), abs=0.02)
    assert high == pytest.approx(_np_percentile(loop, 97.5), abs=0.02)
    # Every stratified resample keeps 4 runs of each task, so the IQM never leaves
    # [0.0, 1.3] by much; an unstratified one can draw all 8 from one task.
    _, plow, phigh = stats.stratified_bootstrap_ci([np.concatenate(tasks)], reps=20_000,
                                                   seed=0)
    assert phigh - plow > 1.5 * (high - low)


def test_bootstrap_is_seeded_and_degenerate_scores_give_a_point():
    tasks = [np.array([0.2, 0.9, 0.4, 0.7, 0.5])]
    assert stats.stratified_bootstrap_ci(tasks, reps=300, seed=4) == \
        stats.stratified_bootstrap_ci(tasks, reps=300, seed=4)
    assert stats.stratified_bootstrap_ci(tasks, reps=300, seed=4) != \
        stats.stratified_bootstrap_ci(tasks, reps=300, seed=5)
    point, low, high = stats.stratified_bootstrap_ci([np.full(5, 0.75), np.full(3, 0.75)],
                                                     reps=300)
    assert point == low == high == 0.75
    with pytest.raises(TrirlError, match="at least one score"):
        stats.stratified_bootstrap_ci([np.array([1.0]), np.array([])])
    with pytest.raises(TrirlError, match="finite"):
        stats.stratified_bootstrap_ci([np.array([1.0, np.nan])])


# ----------------------------------------------------------------------------- grid


def _grid_args(demos, out, *extra):
    sets = [x for s in TINY for x in ("--set", s)]
    return ("compare", "--envs", "point_maze", "--algos", ",".join(ALGOS), "--seeds", SEEDS,
            "--steps", STEPS, "--out", out, "--demos", f"point_maze={demos}",
            "--checkpoint-every", 1, "--bootstrap-reps", REPS, "--in-process", *TINY_ENV,
            *sets, *extra)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    demos = root / "demos.npz"
    demos_lib.save(demos, _synthetic_demos(envs.make("point_maze")))
    out = root / "grid"
    result = _cli(*_grid_args(demos, out))
    assert result.exit_code == 0, result.output
    return {"root": root, "demos": demos, "out": out, "output": result.output}


def _cell(grid, algo):
    return compare.cell_dir(grid["out"], "point_maze", algo)


def _snapshot(cell):
    learn = cell / compare.LEARN_DIR
    return {"metrics": (learn / "metrics.jsonl").read_bytes(),
            "mtime": (learn / "metrics.jsonl").stat().st_mtime_ns,
            "checkpoints": sorted(p.name for p in (learn / "checkpoints").iterdir()),
            "cell": json.loads((cell / compare.CELL_FILE).read_text())}


def test_grid_trains_each_cell_with_its_seeds_vmapped(grid):
    for algo in ALGOS:
        assert f"cell point_maze/{algo}: training ({SEEDS} seeds)" in grid["output"]
        cell = _cell(grid, algo)
        config = json.loads((cell / "learn" / "config.json").read_text())
        assert config["trirl"]["algo"] == algo and config["seeds"] == SEEDS
        assert config["num_iterations"] == 2
        lines = (cell / "learn" / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(x)["iteration"] for x in lines] == [1, 2]
        assert len(json.loads(lines[-1])["disc_loss_per_seed"]) == SEEDS  # one program
        (record,) = json.loads((cell / compare.CELL_FILE).read_text())["invocations"]
        assert record["stage"] == "train" and record["iterations"] == [0, 2]
        assert record["env_steps"] == STEPS * SEEDS
        assert record["rss_scope"] == "grid process" and record["pid"] == os.getpid()
        assert record["peak_rss_mb"] > 100 and record["wall_s"] > 0


def test_report_numbers_are_the_cells_evaluations(grid):
    report = grid["out"] / compare_report.REPORT_DIR
    summary = json.loads((report / "summary.json").read_text())
    md = (report / "summary.md").read_text()
    assert (report / "learning_curves.png").stat().st_size > 1000
    for algo in ALGOS:
        cell = _cell(grid, algo)
        evaluation = json.loads((cell / "learn" / compare.EVALUATION_FILE).read_text())
        scores = [s["normalized_score"] for s in evaluation["per_seed"]]
        assert len(scores) == SEEDS and evaluation["episodes"] == 100
        got = summary["per_env"]["point_maze"][algo]["training"]
        assert got["scores"] == [scores]
        assert got["iqm"] == pytest.approx(float(np.mean(sorted(scores))))  # n=2: no trim
        point, low, high = stats.stratified_bootstrap_ci([scores], reps=REPS, seed=0)
        assert (got["iqm"], got["ci_low"], got["ci_high"]) == (point, low, high)
        agg = summary["aggregate"][algo]
        assert agg["training"]["iqm"] == point and agg["training"]["tasks"] == 1
        (record,) = json.loads((cell / compare.CELL_FILE).read_text())["invocations"]
        res = agg["resources"]
        assert res["wall_s_per_million_steps"] == pytest.approx(
            record["wall_s"] / record["env_steps"] * 1e6)
        assert res["peak_rss_mb"] == record["peak_rss_mb"]
        assert f"| {algo} | {point:.2f} [{low:.2f}, {high:.2f}] |" in md
        # Table 1 layout: a row per env and learner (no re-optimisation in this grid).
        assert f"| point_maze | {algo} | {np.mean(scores):.2f} ± {np.std(scores):.2f} |\n" in md
    assert [c["status"] for c in summary["cells"]] == ["finished", "finished"]


def test_a_cell_without_reoptimisation_runs_is_training_only(grid, tmp_path):
    """Once a grid re-optimises some columns, the others' cells are 'training only',
    not 'unfinished'; a cell whose re-optimisation has started and not ended is."""
    config = compare.CompareConfig(envs=("point_maze",), algos=ALGOS, seeds=SEEDS,
                                   steps=STEPS, retrain=True)
    out = tmp_path / "grid"
    shutil.copytree(grid["out"], out)
    assert compare_report.collect_cell(config, out, "point_maze", "gail")["status"] == \
        "training only"
    (compare.cell_dir(out, "point_maze", "gail") / "retrain" / "seed0").mkdir(parents=True)
    assert compare_report.collect_cell(config, out, "point_maze", "gail")["status"] == \
        "unfinished"


def test_report_only_rerenders_the_same_report(grid):
    report = grid["out"] / compare_report.REPORT_DIR
    before = (report / "summary.json").read_text()
    shutil.rmtree(report)
    result = _cli("compare", "--report-only", grid["out"])
    assert result.exit_code == 0, result.output
    assert (report / "summary.json").read_text() == before
    assert (report / "summary.md").is_file() and (report / "learning_curves.png").is_file()
    result = _cli("compare", "--report-only", grid["root"])
    assert result.exit_code == 2 and "not a trirl compare directory" in result.output


def test_rerun_skips_finished_cells(grid):
    before = {algo: _snapshot(_cell(grid, algo)) for algo in ALGOS}
    result = _cli(*_grid_args(grid["demos"], grid["out"]))
    assert result.exit_code == 0, result.output
    for algo in ALGOS:
        assert f"cell point_maze/{algo}: finished, skipped" in result.output
        assert _snapshot(_cell(grid, algo)) == before[algo]  # nothing trained or recorded


@pytest.mark.parametrize("args,expect", [
    (("--envs", "point_maze,nope"), "--envs: unknown env 'nope'"),
    (("--algos", "trirl,ppo"), "--algos: unknown algo 'ppo'"),
    (("--seeds", "0"), "--seeds must be >= 1"),
    (("--transfer", "point_maze"), "--transfer 'point_maze' is not ENV=VALUE"),
    (("--transfer", "point_maze=hopper"), "observes or acts differently"),
    (("--transfer", "hopper=point_maze_flipped"), "'hopper' is not in --envs"),
    (("--envs", "humanoid"), "--demos humanoid=FILE"),  # no bundled Humanoid demos
    (("--demos", "point_maze"), "--demos 'point_maze' is not ENV=VALUE"),
    (("--set", "ppo.nope=1"), "--set"),
    (("--set", "algo=gail"), "--algos"),
    (("--set", "reward_model=features"), "trirl_features"),
    (("--retrain-set", "nope=1"), "--retrain-set: PPO has no setting 'nope'"),
    (("--retrain-steps", "0"), "--retrain-steps must be >= 1"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, expect):
    result = _cli("compare", "--out", tmp_path / "never", *args)
    assert result.exit_code == 2, result.output
    assert expect in result.output and result.output.count("\n") == 1
    assert not (tmp_path / "never").exists()


def test_trirl_features_column_is_trirl_with_the_feature_model_and_its_preset():
    cfg = settings_lib.build_config(presets.preset_settings(
        "point_maze", settings_lib.merge_settings(settings_lib.parse_settings(("eps=0.5",)),
                                           compare.algo_settings("trirl_features"))))
    assert (cfg.algo, cfg.reward_model, cfg.eps) == ("trirl", "features", 0.5)
    assert cfg.disc.hidden == ()  # Point Maze's feature-model preset
    assert settings_lib.build_config(presets.preset_settings(
        "point_maze", compare.algo_settings("gail"))).reward_model == "fitted"
    # An env preset's PPO settings reach every column (HalfCheetah's initial std 0.2).
    for algo in ("trirl", "trirl_features", "gail", "airl", "amp"):
        assert settings_lib.build_config(presets.preset_settings(
            "halfcheetah", compare.algo_settings(algo))).ppo.init_std == 0.2


def test_oracle_column_is_ppo_on_the_true_reward_with_trirls_policy_settings(grid, tmp_path):
    """The oracle cell is an expert run (true task reward) with the PPO the TRIRL column's
    policy trains with and the same steps; it logs the normalised score against the
    demos' reference returns, is evaluated like any cell, and has no reward to retrain."""
    from test_learn import REFERENCE

    out = tmp_path / "oracle"
    args = [a if a != ",".join(ALGOS) else "trirl,oracle"
            for a in _grid_args(grid["demos"], out, "--retrain")]
    result = _cli(*args)
    assert result.exit_code == 0, result.output
    oracle = json.loads((_cell({"out": out}, "oracle") / "learn" / "config.json").read_text())
    trirl = json.loads((_cell({"out": out}, "trirl") / "learn" / "config.json").read_text())
    assert oracle["kind"] == "expert" and oracle["ppo"] == trirl["ppo"]
    assert oracle["ppo"]["trust_region"]["mean_bound"] == 1e-5  # TINY's, not a preset's
    assert (oracle["total_steps"], oracle["seeds"]) == (trirl["total_steps"], SEEDS)
    assert oracle["reference"]["expert_return_mean"] == REFERENCE["expert_return_mean"]
    lines = [json.loads(x) for x in (_cell({"out": out}, "oracle") / "learn" / "metrics.jsonl")
             .read_text().splitlines()]
    for line in (x for x in lines if x["episode_return"] is not None):
        want = ((line["episode_return"] - REFERENCE["random_return_mean"])
                / (REFERENCE["expert_return_mean"] - REFERENCE["random_return_mean"]))
        assert line["normalized_score"] == pytest.approx(want, rel=1e-5)
    assert not (_cell({"out": out}, "oracle") / "retrain").exists()
    summary = json.loads((out / "report" / "summary.json").read_text())
    cell = next(c for c in summary["cells"] if c["algo"] == "oracle")
    assert len(cell["training"]) == SEEDS and cell["retraining"] is None
    assert "| point_maze | oracle |" in (out / "report" / "summary.md").read_text()


def test_rerun_with_other_settings_is_refused(grid):
    before = (grid["out"] / compare.GRID_FILE).read_text()
    args = list(_grid_args(grid["demos"], grid["out"]))
    args[args.index("--seeds") + 1] = 3
    result = _cli(*args)
    assert result.exit_code == 2 and "seeds=2" in result.output and "--out" in result.output
    assert (grid["out"] / compare.GRID_FILE).read_text() == before


def test_retrain_settings_are_checked_between_reoptimising_invocations(grid, tmp_path):
    """--retrain-steps/--retrain-set define the retrain/transfer runs: a rerun that
    re-optimises must repeat them, a training-only rerun need not and keeps them on
    record; grids written before the options existed ran with their defaults."""
    out = tmp_path / "old"
    out.mkdir()
    old = json.loads((grid["out"] / compare.GRID_FILE).read_text())
    del old["retrain_steps"], old["retrain_settings"]     # written before the options
    (out / compare.GRID_FILE).write_text(json.dumps(old))
    config = compare.CompareConfig.from_json(old)
    assert compare._check_out(config, out) == old
    retraining = dataclasses.replace(config, retrain=True, retrain_settings=("init_std=0.2",))
    compare._check_out(retraining, out)         # the first invocation that re-optimises
    recorded = compare._merged(old, retraining).to_json()
    (out / compare.GRID_FILE).write_text(json.dumps(recorded))
    with pytest.raises(TrirlError, match="retrain_settings=.*init_std=0.2"):
        compare._check_out(dataclasses.replace(retraining, retrain_settings=()), out)
    training_only = dataclasses.replace(config, algos=("amp",))
    assert compare._check_out(training_only, out) == recorded
    merged = compare._merged(recorded, training_only)
    assert merged.retrain_settings == ("init_std=0.2",) and merged.retrain
    assert merged.algos == (*config.algos, "amp")


def test_retrain_steps_and_settings_reach_every_reoptimisation(grid, tmp_path, monkeypatch):
    """Each seed's reward is re-optimised with --retrain-steps and --retrain-set's PPO
    overrides (a stand-in for retrain.train records the calls)."""
    from trirl import retrain

    cell = tmp_path / "cell"
    shutil.copytree(_cell(grid, "trirl"), cell)
    calls = []
    monkeypatch.setattr(retrain, "train", lambda reward, **kw: calls.append((reward, kw)))
    config = compare.CompareConfig(envs=("point_maze",), seeds=SEEDS, steps=STEPS,
                                   retrain=True, transfer=(("point_maze", "point_maze_flipped"),),
                                   retrain_steps=48, retrain_settings=("init_std=0.2",))
    compare._reoptimise_stage(config, cell, "point_maze", show_progress=False)
    assert [(Path(r).name, kw["env_name"], kw["transfer"]) for r, kw in calls] == [
        (f"seed{i}.reward", env, env != "point_maze")
        for env in ("point_maze", "point_maze_flipped") for i in range(SEEDS)]
    assert {(kw["steps"], kw["seeds"], str(kw["ppo_overrides"])) for _, kw in calls} == {
        (48, 1, str({"init_std": 0.2}))}
    # Without them: the grid's --steps and the reward's own PPO settings.
    calls.clear()
    compare._reoptimise_stage(dataclasses.replace(config, retrain_steps=None, retrain_settings=()),
                              cell, "point_maze", show_progress=False)
    assert {(kw["steps"], str(kw["ppo_overrides"])) for _, kw in calls} == {(STEPS, "{}")}


def test_a_failing_cell_does_not_stop_the_grid(grid, monkeypatch):
    """The trirl cell fails (as a diverged run would); the grid goes on to the gail
    cell, writes the report, and then exits with one error naming the cell."""
    def fail(config, out, env_name, algo, show_progress=True):
        raise TrirlError("training diverged at iteration 1 (test)")

    monkeypatch.setattr(compare, "cell_complete", lambda config, out, e, a: a != "trirl")
    monkeypatch.setattr(compare, "run_cell", fail)
    report = grid["out"] / "report" / "summary.json"
    report.unlink()
    result = _cli(*_grid_args(grid["demos"], grid["out"]))
    assert result.exit_code == 2
    failed = result.output.index("cell point_maze/trirl failed: training diverged")
    assert result.output.index("cell point_maze/gail: finished, skipped") > failed
    assert "cell(s) point_maze/trirl failed" in result.output and report.is_file()


def test_interrupted_cell_resumes_from_its_checkpoint(grid):
    """Without its final checkpoint the trirl cell is an interrupted run: the next
    invocation resumes it from iteration 1 (the gail cell is skipped) and reproduces
    iteration 2 exactly; the report then has the new evaluation."""
    cell = _cell(grid, "trirl")
    learn = cell / "learn"
    lines = (learn / "metrics.jsonl").read_text().splitlines()
    shutil.rmtree(learn / "checkpoints" / "2")
    gail_before = _snapshot(_cell(grid, "gail"))
    assert not compare.cell_complete(compare.CompareConfig(), grid["out"], "point_maze",
                                     "trirl")
    result = _cli(*_grid_args(grid["demos"], grid["out"]))
    assert result.exit_code == 0, result.output
    assert "resumed" in result.output and "point_maze/gail: finished, skipped" in result.output
    assert _snapshot(_cell(grid, "gail")) == gail_before
    new = (learn / "metrics.jsonl").read_text().splitlines()
    assert new[0] == lines[0]  # kept, not retrained
    old2, new2 = json.loads(lines[1]), json.loads(new[1])
    assert old2.pop("wall_s") is not None and new2.pop("wall_s") is not None
    assert new2 == old2  # bit-for-bit resume
    records = json.loads((cell / compare.CELL_FILE).read_text())["invocations"]
    assert [r["stage"] for r in records] == ["train", "resume"]
    assert records[1]["iterations"] == [1, 2] and records[1]["env_steps"] == STEPS // 2 * SEEDS
    summary = json.loads((grid["out"] / "report" / "summary.json").read_text())
    res = summary["aggregate"]["trirl"]["resources"]
    assert res["wall_s_per_million_steps"] == pytest.approx(
        sum(r["wall_s"] for r in records) / sum(r["env_steps"] for r in records) * 1e6)
    evaluation = json.loads((learn / compare.EVALUATION_FILE).read_text())
    assert summary["per_env"]["point_maze"]["trirl"]["training"]["scores"] == [
        [s["normalized_score"] for s in evaluation["per_seed"]]]


# ----------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_retrain_and_transfer_fill_table_1(grid):
    """--retrain and --transfer on the finished grid: only the new stages run, one
    fresh policy per training seed's exported reward; the report's Retraining and
    Transfer columns are those runs' evaluations."""
    result = _cli(*_grid_args(grid["demos"], grid["out"], "--retrain", "--transfer",
                              "point_maze=point_maze_flipped"))
    assert result.exit_code == 0, result.output
    summary = json.loads((grid["out"] / "report" / "summary.json").read_text())
    for algo in ALGOS:
        assert f"cell point_maze/{algo}: re-optimising ({SEEDS} seeds)" in result.output
        cell = _cell(grid, algo)
        for column, name in (("retraining", "retrain"), ("transfer", "transfer-point_maze_flipped")):
            scores = []
            for i in range(SEEDS):
                run = cell / name / f"seed{i}"
                config = json.loads((run / "config.json").read_text())
                assert config["seeds"] == 1 and config["seed"] == 10_000 + i
                assert config["reward_source"].endswith(f"seed{i}.reward")
                ev = json.loads((run / compare.EVALUATION_FILE).read_text())
                scores += [s["normalized_score"] for s in ev["per_seed"]]
            got = summary["per_env"]["point_maze"][algo][column]
            got = got["point_maze_flipped"] if column == "transfer" else got
            assert got["scores"] == [scores]
        assert summary["aggregate"][algo]["retraining"]["tasks"] == 1
        row = [summary["per_env"]["point_maze"][algo][c]["scores"][0] for c in ("training",
                                                                                "retraining")]
        row.append(summary["per_env"]["point_maze"][algo]["transfer"]["point_maze_flipped"]
                   ["scores"][0])
        md = (grid["out"] / "report" / "summary.md").read_text()
        assert f"| point_maze | {algo} | " + " | ".join(
            f"{np.mean(x):.2f} ± {np.std(x):.2f}" for x in row) + " |\n" in md


@pytest.mark.slow
def test_isolated_cells_record_their_own_process(tmp_path):
    demos = tmp_path / "demos.npz"
    demos_lib.save(demos, _synthetic_demos(envs.make("point_maze")))
    args = [a for a in _grid_args(demos, tmp_path / "g") if a != "--in-process"]
    args[args.index("--algos") + 1] = "gail"
    result = _cli(*args)
    assert result.exit_code == 0, result.output
    cell = compare.cell_dir(tmp_path / "g", "point_maze", "gail")
    (record,) = json.loads((cell / compare.CELL_FILE).read_text())["invocations"]
    assert record["rss_scope"] == "cell process" and record["pid"] != os.getpid()


class _ChildKilledByTerm:
    """Stands in for a cell's child process that is still starting up (no SIGTERM handler
    yet) when the grid is sent SIGTERM: the grid's handler forwards the signal, the child
    dies of it (status -15)."""

    def __init__(self, *args, **kwargs):
        self.signals = []

    def wait(self):
        os.kill(os.getpid(), signal.SIGTERM)   # the grid process gets `kill PID`
        return -signal.SIGTERM if self.signals else 0

    def send_signal(self, sig):
        self.signals.append(sig)


def test_sigterm_stops_the_grid_even_if_the_child_dies_of_it(monkeypatch, tmp_path):
    # Before: a child killed by the forwarded SIGTERM counted as a failed cell and the
    # grid went on to the next one, so `kill` could not stop a grid.
    children = []
    monkeypatch.setattr(compare.subprocess, "Popen",
                        lambda *a, **k: children.append(_ChildKilledByTerm()) or children[-1])
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted, match="point_maze/gail was interrupted"):
        compare._spawn_cell(compare.CompareConfig(envs=("point_maze",)), tmp_path,
                            "point_maze", "gail")
    assert children[0].signals == [signal.SIGTERM]          # forwarded to the child
    assert signal.getsignal(signal.SIGTERM) is before        # handler restored


def test_config_round_trips_through_json():
    config = compare.CompareConfig(envs=("point_maze",), demos=(("point_maze", "d.npz"),),
                                   transfer=(("point_maze", "point_maze_flipped"),),
                                   settings=("eps=0.5",), retrain_steps=10,
                                   retrain_settings=("init_std=0.2",))
    assert compare.CompareConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
