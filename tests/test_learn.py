"""Tests for trirl.learn and `trirl learn` (TRIRL, paper Algorithm 2).

The fast tests share one tiny run (4 iterations, buffer capacity 2, so the last
iteration sees a full buffer with an active R_fit) made through the CLI; the learner's
jitted functions are cached per config, so re-running its iterations in-process to get
their traces compiles nothing new. The references are independent float64 NumPy
recomputations: the reward recursion over the buffer members, and the TRPL multipliers
(closed-form mean multiplier, covariance multiplier by root finding).
"""

import json
import shutil

import jax
import numpy as np
import pytest
from click.testing import CliRunner
from scipy.optimize import brentq

from trirl import adversarial
from trirl import config as config_lib
from trirl import presets
from trirl import settings as settings_lib
from trirl import demos as demos_lib
from trirl import envs, learn
from trirl.cli.main import main
from trirl.errors import TrirlError
from trirl.runs import load_policy, open_run

from numpy_reference import np_mlp, np_scalar

STEPS = 64  # 4 iterations of 4 envs x 4 steps
K = 2
GOAL = (0.15, 0.0)
REFERENCE = {"expert_return_mean": -2.0, "random_return_mean": -9.0}
TINY_ENV = ("--env-set", "episode_length=6", "--env-set", "goal_radius=0.3")
TINY = (
    # Aggressive LR, tiny trust region: the projection is active, so eta > 0.
    "ppo.num_envs=4", "ppo.rollout_length=4", "ppo.minibatch_size=8", "ppo.num_epochs=1",
    "ppo.hidden=8", "ppo.learning_rate=3e-3", "trust_region.mean_bound=1e-5",
    "trust_region.cov_bound=1e-5", "disc.hidden=8", "disc.num_steps=2",
    "disc.minibatch_size=8", "fit.hidden=8", "fit.num_steps=2", "fit.minibatch_size=8",
    f"capacity={K}")


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _learn_args(demos, run_dir, *extra):
    sets = [x for s in TINY for x in ("--set", s)]
    return ("learn", "--env", "point_maze", "--demos", demos, "--steps", STEPS, "--run-dir",
            run_dir, "--checkpoint-every", 2, *TINY_ENV, *sets, *extra)


def _synthetic_demos(env, episodes=3, speed=0.01, seed=0):
    """Straight-line episodes through the gap: (-0.15, 0) -> (-0.15, 0.22) -> (0.15, 0.22)
    -> goal, ending (absorbing) within 0.1 of the goal. No physics: format only."""
    rng = np.random.default_rng(seed)
    goal = np.array(GOAL)
    rows = {k: [] for k in ("obs", "next_obs", "actions", "absorbing")}
    starts = []
    for _ in range(episodes):
        p = np.array([-0.15, 0.0]) + rng.uniform(-0.01, 0.01, 2)
        starts.append(len(rows["obs"]))
        for wp in (np.array([-0.15, 0.22]), np.array([0.15, 0.22]), goal):
            while np.linalg.norm(wp - p) > speed and np.linalg.norm(p - goal) > 0.1:
                d = (wp - p) / np.linalg.norm(wp - p)
                rows["obs"].append([*p, *goal])
                rows["next_obs"].append([*(p + speed * d), *goal])
                rows["actions"].append(d)
                rows["absorbing"].append(False)
                p = p + speed * d
        rows["absorbing"][-1] = True
    f32 = {k: np.asarray(rows[k], np.float32) for k in ("obs", "next_obs", "actions")}
    absorbing = np.asarray(rows["absorbing"])
    return demos_lib.Demos(**f32, absorbing=absorbing, truncated=np.zeros_like(absorbing),
                           episode_starts=np.asarray(starts, np.int64),
                           metadata=demos_lib.env_metadata(env, **REFERENCE))


# ----------------------------------------------------------------------------- NumPy


def np_normalize(mean, var, x):
    std = np.maximum(np.sqrt(np.maximum(np.asarray(var, np.float64), 1e-8)), 1e-4)
    return np.clip((np.asarray(x, np.float64) - mean) / std, -10.0, 10.0)


def np_cov_multiplier(std, old_std, bound):
    """eta >= 0 with KL(Sigma(eta) || Sigma_old) = bound, Lambda(eta) = (Lambda + eta
    Lambda_old) / (1 + eta); 0 when the raw covariance satisfies the bound."""
    var, old = np.float64(std) ** 2, np.float64(old_std) ** 2

    def kl(eta):
        ratio = (1 + eta) / (1 / var + eta / old) / old
        return 0.5 * np.sum(ratio - 1 - np.log(ratio))

    if kl(0.0) <= bound:
        return 0.0
    return brentq(lambda e: kl(e) - bound, 0.0, 1e12, xtol=1e-12, rtol=1e-12)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("learn")
    env = envs.make("point_maze")
    demos = _synthetic_demos(env)
    paths = {"root": root, "demos": root / "demos.npz", "bad": root / "bad.npz",
             "obs_only": root / "obs_only.npz"}
    demos_lib.save(paths["demos"], demos)
    demos_lib.save(paths["obs_only"], demos_lib.Demos(
        obs=demos.obs, next_obs=demos.next_obs, actions=None, absorbing=demos.absorbing,
        truncated=demos.truncated, episode_starts=demos.episode_starts,
        metadata={**demos.metadata, "action_size": None}))
    paths["bad"].write_text("not a demo file\n")
    return paths


@pytest.fixture(scope="module")
def cli_run(files):
    run_dir = files["root"] / "run"
    result = _cli(*_learn_args(files["demos"], run_dir))
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.fixture(scope="module")
def traced(cli_run):
    """The run's iterations again, in-process (same cached compilation), with traces."""
    session = learn.open_session(cli_run)
    state = session.init()
    steps = []
    for _ in range(session.run.config["num_iterations"]):
        new, metrics, trace = session.iterate(state)
        pick = lambda tree: jax.tree.map(lambda x: np.asarray(x)[0], tree)  # noqa: E731
        steps.append({"before": pick(state), "after": pick(new), "metrics": pick(metrics),
                      "trace": pick(trace)})
        state = new
    return {"config": session.config, "steps": steps}


def _disc_x(stats, obs, action):
    """[normalised s, absorbing indicator 0, a clipped to Point Maze's [-1, 1]] for "sa"
    inputs."""
    s = np_normalize(np.asarray(stats.mean), np.asarray(stats.var), obs)
    a = np.clip(np.float64(action), -1.0, 1.0)
    return np.concatenate([s, np.zeros(s.shape[:-1] + (1,)), a], axis=-1)


# ----------------------------------------------------------------------------- tests


def test_policy_reward_matches_numpy_recomputation(traced, files):
    """The reward PPO trains on = ((1 - eps) * recursion + eps * beta * D_new) / beta, the
    recursion r = (1 - s_j) r + s_j beta D_j from R_fit over the members oldest first."""
    cfg = traced["config"]
    beta, eps = cfg.beta, cfg.eps
    i = len(traced["steps"]) - 1  # pushes 0..i-1 were made before this iteration
    step = traced["steps"][i]
    before, trace = step["before"], step["trace"]
    buffer = before.buffer
    assert i > K and bool(buffer.fit_active) and int(buffer.count) == K

    # The discriminators' normaliser: the demo observations' own mean and variance.
    demo_obs = demos_lib.load(files["demos"]).obs.astype(np.float64)
    np.testing.assert_allclose(before.disc_stats.mean, demo_obs.mean(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(before.disc_stats.var, demo_obs.var(0), rtol=1e-4, atol=1e-9)

    rollout = trace.rollout
    x = _disc_x(before.disc_stats, rollout.obs, rollout.action).reshape(-1, 7)
    x_abs = np.array([[0, 0, 0, 0, 1, 0, 0]], np.float64)  # (s_a, a = 0)

    def expected(x):
        r = beta * np_scalar(buffer.fit_params, x)  # R_fit predicts r / beta
        for push in range(i - K, i):  # the window, oldest first; push n lives in slot n % K
            slot = push % K
            member = jax.tree.map(lambda p: p[slot], buffer.disc_params)
            s = eps / (1.0 + float(buffer.etas[slot]))
            r = (1.0 - s) * r + s * beta * np_scalar(member, x)
        d_new = np_scalar(step["after"].disc_params, x)
        return ((1.0 - eps) * r + eps * beta * d_new) / beta

    want = expected(x)
    assert np.ptp(want) > 1e-3  # not a degenerate constant
    np.testing.assert_allclose(trace.rewards.reshape(-1), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(trace.absorbing_reward, expected(x_abs)[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(step["metrics"]["reward_mean"], want.mean(), rtol=1e-4, atol=1e-5)


def test_reward_gap_is_corrected_reward_on_expert_minus_agent(traced, files):
    """reward_expert / reward_agent: mean corrected reward (after the iteration's push,
    / beta) on GAP_SAMPLES expert rows drawn with the iteration's key and on every
    rollout row (the learner reuses the members' logits of the policy update there);
    NumPy recursion."""
    cfg = traced["config"]
    beta, eps = cfg.beta, cfg.eps
    i = len(traced["steps"]) - 1
    step = traced["steps"][i]
    buffer = step["after"].buffer
    stats = step["before"].disc_stats

    def corrected(x):
        r = beta * np_scalar(buffer.fit_params, x)  # R_fit predicts r / beta
        for push in range(i - K + 1, i + 1):  # pushes 0..i made; the window, oldest first
            slot = push % K
            member = jax.tree.map(lambda p: p[slot], buffer.disc_params)
            s = eps / (1.0 + float(buffer.etas[slot]))
            r = (1.0 - s) * r + s * beta * np_scalar(member, x)
        return r / beta

    demos = demos_lib.load(files["demos"])
    x_e = _disc_x(stats, demos.obs, demos.actions)
    x_a = _disc_x(stats, step["trace"].rollout.obs, step["trace"].rollout.action).reshape(-1, 7)
    k_gap = jax.random.split(step["before"].key, 4)[3]
    k_e, _ = jax.random.split(k_gap)
    n = adversarial.GAP_SAMPLES
    r_e = corrected(x_e[np.asarray(jax.random.randint(k_e, (n,), 0, len(x_e)))]).mean()
    r_a = corrected(x_a).mean()
    m = step["metrics"]
    np.testing.assert_allclose(m["reward_expert"], r_e, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m["reward_agent"], r_a, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m["reward_gap"], r_e - r_a, rtol=1e-4, atol=1e-5)


def test_max_eta_is_largest_trpl_multiplier(traced):
    """eta stored with each pushed discriminator = max over the rollout states of the
    TRPL multipliers of the updated policy vs the behaviour policy."""
    cfg = traced["config"]
    tr = cfg.ppo.trust_region
    for i, step in enumerate(traced["steps"]):
        after, trace = step["after"], step["trace"]
        actor = after.ppo.actor["params"]
        obs = np_normalize(after.ppo.obs_stats.mean, after.ppo.obs_stats.var, trace.rollout.obs)
        mean = np_mlp(actor["MLP_0"], obs)
        std = np.exp(np.float64(actor["log_std"]))
        old_mean = np.float64(trace.rollout.mean)
        old_std = np.float64(trace.rollout.std).reshape(-1, 2)[0]

        d_mean = 0.5 * np.sum(((mean - old_mean) / old_std) ** 2, axis=-1)
        eta_mean = np.where(d_mean > tr.mean_bound, np.sqrt(d_mean / tr.mean_bound) - 1.0, 0.0)
        eta_cov = np_cov_multiplier(std, old_std, tr.cov_bound)
        want = max(eta_mean.max(), eta_cov)
        assert want > 0.1  # the trust region was active: a meaningful comparison
        var_ratio = (std / old_std) ** 2
        kl = d_mean + 0.5 * np.sum(var_ratio - 1.0 - np.log(var_ratio))
        np.testing.assert_allclose(step["metrics"]["policy_kl"], kl.mean(), rtol=1e-3)
        np.testing.assert_allclose(after.buffer.etas[i % K], want, rtol=2e-3)
        np.testing.assert_allclose(step["metrics"]["eta"], want, rtol=2e-3)
        np.testing.assert_allclose(step["metrics"]["eps_tr"], cfg.eps / (1 + want), rtol=2e-3)


def test_cli_run_evaluates_plots_and_resumes_bit_exactly(cli_run, traced):
    config = json.loads((cli_run / "config.json").read_text())
    assert config["kind"] == "trirl" and config["env"] == "point_maze"
    assert config["ppo"]["trust_region"]["mean_bound"] == 1e-5
    assert config["trirl"]["capacity"] == K and config["num_iterations"] == 4
    assert (cli_run / learn.DEMOS_FILE).is_file()
    lines = [json.loads(line) for line in (cli_run / "metrics.jsonl").read_text().splitlines()]
    assert [line["iteration"] for line in lines] == [1, 2, 3, 4]
    for name in ("disc_loss", "disc_accuracy", "disc_expert_acc", "disc_agent_acc", "eta",
                 "eps_tr", "policy_kl", "reward_gap", "reward_mean", "reward_std",
                 "policy_loss", "buffer_size", "finite"):
        assert lines[-1][name] is not None, name
    # Normalised score from the demos' reference returns, where an episode finished.
    scored = [line for line in lines if line["episode_return"] is not None]
    assert scored
    for line in scored:
        want = ((line["episode_return"] - REFERENCE["random_return_mean"])
                / (REFERENCE["expert_return_mean"] - REFERENCE["random_return_mean"]))
        assert line["normalized_score"] == pytest.approx(want, rel=1e-5)
    # The in-process iterations (with traces) are the CLI's iterations.
    for line, step in zip(lines, traced["steps"]):
        assert line["eta"] == pytest.approx(float(step["metrics"]["eta"]), rel=1e-6)
        assert line["disc_loss"] == pytest.approx(float(step["metrics"]["disc_loss"]), rel=1e-6)

    result = _cli("evaluate", cli_run, "--episodes", 2, "--json")
    assert result.exit_code == 0, result.output
    assert np.isfinite(json.loads(result.output)["return_mean"])
    result = _cli("plot", cli_run, "--metric", "disc_accuracy")
    assert result.exit_code == 0, result.output
    assert (cli_run / "learning_curve.png").is_file()

    # Resume: drop the last checkpoint (as if the run stopped after iteration 2) and
    # continue; metrics and the final policy must equal the uninterrupted run's.
    policy = load_policy(open_run(cli_run))
    shutil.rmtree(cli_run / "checkpoints" / "4")
    result = _cli("learn", "--resume", cli_run)
    assert result.exit_code == 0, result.output
    resumed = [json.loads(line) for line in (cli_run / "metrics.jsonl").read_text().splitlines()]
    strip = lambda line: {k: v for k, v in line.items() if k != "wall_s"}  # noqa: E731
    assert [strip(line) for line in resumed] == [strip(line) for line in lines]
    jax.tree.map(np.testing.assert_array_equal, load_policy(open_run(cli_run)), policy)


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_it_over(cli_run, files):
    """Its record is there, so `--resume` trains it from iteration 0 with its own
    settings, to the numbers of the run that was never stopped."""
    killed = files["root"] / "killed"
    shutil.copytree(cli_run, killed)
    shutil.rmtree(killed / "checkpoints")
    (killed / "metrics.jsonl").write_text("")  # whatever it logged is trimmed away
    result = _cli("learn", "--resume", killed)
    assert result.exit_code == 0, result.output
    assert "no checkpoint yet" in result.output
    strip = lambda path: [{k: v for k, v in json.loads(line).items() if k != "wall_s"}  # noqa
                          for line in (path / "metrics.jsonl").read_text().splitlines()]
    assert strip(killed) == strip(cli_run)


def test_resume_with_more_steps_extends_the_run_to_the_longer_runs_numbers(cli_run, files):
    """A run of half the budget, resumed with `--steps` of the whole, logs the same
    iterations as the run that had the whole budget from the start (max-eta: nothing
    depends on the run's length); shrinking a budget or extending a TR-loss run (its eta
    is scheduled over the length) is refused in one line, the record untouched."""
    half = files["root"] / "half"
    result = _cli(*_learn_args(files["demos"], half, "--steps", STEPS // 2))
    assert result.exit_code == 0, result.output
    assert json.loads((half / "config.json").read_text())["num_iterations"] == 2
    result = _cli("learn", "--resume", half, "--steps", STEPS)
    assert result.exit_code == 0, result.output
    assert "budget extended" in result.output
    record = json.loads((half / "config.json").read_text())
    assert record["num_iterations"] == 4 and record["extended_from_steps"] == [STEPS // 2]
    strip = lambda path: [{k: v for k, v in json.loads(line).items() if k != "wall_s"}  # noqa
                          for line in (path / "metrics.jsonl").read_text().splitlines()]
    assert strip(half) == strip(cli_run)
    jax.tree.map(np.testing.assert_array_equal, load_policy(open_run(half)),
                 load_policy(open_run(cli_run)))

    before = (half / "config.json").read_text()
    result = _cli("learn", "--resume", half, "--steps", STEPS // 2)
    assert result.exit_code == 2 and "can only be extended" in result.output
    tr = json.loads(before)
    tr["trirl"]["variant"] = "tr_loss"
    (half / "config.json").write_text(json.dumps(tr))
    result = _cli("learn", "--resume", half, "--steps", 2 * STEPS)
    assert result.exit_code == 2 and "TR-loss eta decays linearly" in result.output
    assert json.loads((half / "config.json").read_text()) == tr


def test_any_runs_policy_loads_from_the_leading_leaves_of_its_checkpoint(cli_run):
    """``load_policy`` restores only the PPOState a learner's state begins with; it must
    be the policy inside the whole restored learner state."""
    from trirl.export import load_run_reward

    actor, stats = load_policy(open_run(cli_run))
    whole = load_run_reward(cli_run).ppo_state
    jax.tree.map(np.testing.assert_array_equal, (actor, stats),
                 (whole.actor, whole.obs_stats))


@pytest.mark.parametrize("variant,k", [("tr_loss", K), ("retrospective_eta", K),
                                       ("no_fit", 0)])
def test_other_variants_train_and_log_their_eta(files, variant, k):
    """Each variant runs end to end (k = 0 included) with finite metrics; tr_loss's eta
    is eta_init decayed linearly to 0 over the run (the authors' schedule)."""
    run_dir = files["root"] / f"variant-{variant}"
    result = _cli(*_learn_args(files["demos"], run_dir, "--variant", variant, "--k", k))
    assert result.exit_code == 0, result.output
    config = json.loads((run_dir / "config.json").read_text())
    assert config["trirl"]["variant"] == variant and config["trirl"]["capacity"] == k
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["iteration"] for line in lines] == [1, 2, 3, 4]
    for i, line in enumerate(lines):
        assert line["finite"] == 1.0 and np.isfinite(line["reward_mean"])
        assert line["buffer_size"] == min(i + 1, k)
        if variant == "tr_loss":
            eta = 80.0 * (1.0 - i / 4)
            assert line["eta"] == pytest.approx(eta) and line["eps_tr"] == pytest.approx(
                0.6 / (1.0 + eta))
        else:
            assert line["eta"] > 0.1  # the tiny trust region is active


@pytest.mark.parametrize("variant", ["max_eta", "tr_loss", "retrospective_eta"])
def test_reward_eta_floor_lengthens_only_the_reward_memory(files, variant):
    """``reward_eta_floor``: the reward recursion's multipliers are max(eta, floor) (its
    steps become eps / (1 + floor)) whichever way the variant obtains eta, while eta,
    the policy's own multiplier, is logged as is. tr_loss by hand: its schedule 80, 60,
    40, 20 over the 4 iterations against a floor of 50 stores 80, 60, 50, 50."""
    floor = 50.0
    run_dir = files["root"] / f"eta-floor-{variant}"
    result = _cli(*_learn_args(files["demos"], run_dir, "--variant", variant,
                               "--set", f"reward_eta_floor={floor}"))
    assert result.exit_code == 0, result.output
    session = learn.open_session(run_dir)
    state = session.init()
    for i in range(session.run.config["num_iterations"]):
        state, metrics, _ = session.iterate(state)
        eta = float(np.asarray(metrics["eta"])[0])
        if variant == "tr_loss":
            assert eta == pytest.approx(80.0 * (1.0 - i / 4))
        else:
            assert 0.1 < eta < floor  # the policy's own TRPL multiplier, below the floor
        if variant == "retrospective_eta":
            # Every slot's per-state eta on a batch of states is the floor (the raw
            # multipliers of this tiny trust region are below it; empty slots are 0).
            policies = jax.tree.map(lambda x: x[0], state.policies)
            etas = session.learner.retrospective_etas(policies, session.expert.obs[:16])
            np.testing.assert_array_equal(np.asarray(etas), floor)
        else:
            stored = float(np.asarray(state.buffer.etas)[0, i % K])
            assert stored == pytest.approx(max(eta, floor))
            assert float(np.asarray(metrics["eps_tr"])[0]) == pytest.approx(
                0.6 / (1 + max(eta, floor)))
    bad = _cli(*_learn_args(files["demos"], files["root"] / "never-floor",
                            "--set", "reward_eta_floor=-5"))
    assert bad.exit_code == 2 and "reward_eta_floor" in bad.output


@pytest.mark.parametrize("case", ["bad_file", "obs_only_sa", "wrong_env", "features_reward",
                                  "bad_setting"])
def test_bad_input_exits_2_with_one_line(files, case):
    run_dir = files["root"] / f"never-{case}"
    extra = {
        "bad_file": ("--demos", files["bad"]),
        "obs_only_sa": ("--demos", files["obs_only"], "--inputs", "sa"),
        "wrong_env": ("--demos", files["demos"], "--env", "point_maze_flipped"),
        "features_reward": ("--demos", files["demos"], "--reward-model", "features",
                            "--variant", "retrospective_eta"),
        "bad_setting": ("--demos", files["demos"], "--set", "learning_rate=1e-4"),
    }[case]
    result = _cli("learn", "--run-dir", run_dir, "--steps", STEPS, *extra)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trirl: error: "), result.output
    expect = {"bad_file": "not a readable .npz", "obs_only_sa": "actions",
              "wrong_env": "point_maze_flipped", "features_reward": "max_eta",
              "bad_setting": "ppo.learning_rate"}[case]
    assert expect in lines[0]
    assert not run_dir.exists()  # nothing half-written


# ----------------------------------------------------------------------------- configs


def test_config_file_set_and_flags_layer_in_order(tmp_path):
    """paper defaults < --config TOML < --set < dedicated flags (--k, --eps, --beta)."""
    from trirl.cli.learn_cmd import flag_settings

    path = tmp_path / "run.toml"
    path.write_text('variant = "tr_loss"\neps = 0.5\ncapacity = 80\n'
                    "[ppo]\nlearning_rate = 5e-5\nhidden = [64, 64]\n"
                    "[trust_region]\nmean_bound = 0.002\n[disc]\nnum_steps = 30\n"
                    "[env]\nepisode_length = 50\n")
    file_settings, file_env = settings_lib.read_config_file(path)
    assert file_env == ("episode_length=50",)
    merged = settings_lib.merge_settings(file_settings, settings_lib.parse_settings(("eps=0.55",)),
                                  flag_settings(capacity=90, beta=500.0))
    config = settings_lib.build_config(merged)
    default = config_lib.TRIRLConfig()
    assert config.variant == "tr_loss" and config.capacity == 90 and config.eps == 0.55
    assert config.ppo.learning_rate == 5e-5 and config.ppo.hidden == (64, 64)
    assert config.ppo.entropy_coef == pytest.approx(1 / 500) and config.beta == pytest.approx(500)
    assert config.ppo.trust_region.mean_bound == 0.002
    assert config.ppo.trust_region.cov_bound == default.ppo.trust_region.cov_bound
    assert config.disc.num_steps == 30 and config.fit == default.fit
    # The settings a run records rebuild the same config.
    import dataclasses
    assert settings_lib.config_from_dict(json.loads(json.dumps(dataclasses.asdict(config))), "x") \
        == config
    # A run recorded before negligible_weight existed evaluated every member: it resumes so.
    old_record = {k: v for k, v in dataclasses.asdict(config).items() if k != "negligible_weight"}
    assert config.negligible_weight == 1e-7
    assert settings_lib.config_from_dict(old_record, "x").negligible_weight == 0.0


def test_feature_model_preset_applies_only_to_feature_runs_and_yields_to_the_user():
    fitted = settings_lib.build_config(presets.preset_settings("point_maze"))
    assert fitted.disc == config_lib.TRIRLConfig().disc
    features = settings_lib.build_config(presets.preset_settings(
        "point_maze", settings_lib.parse_settings(("reward_model=features",))))
    assert features.disc.hidden == () and features.disc.learning_rate == 1e-2
    assert features.reward_eta_floor == 80.0 and fitted.reward_eta_floor == 0.0
    assert features.variant == "tr_loss" and fitted.variant == "max_eta"
    assert features.feature_names == ("goal_distance",) and fitted.feature_names == ()
    max_eta = settings_lib.build_config(presets.preset_settings(
        "point_maze", settings_lib.parse_settings(("reward_model=features", "variant=max_eta"))))
    assert max_eta.variant == "max_eta" and max_eta.reward_eta_floor == 80.0
    assert max_eta.disc.hidden == ()
    # Budgets: the feature model's own, the env's, the global default.
    assert presets.preset_steps("point_maze", features) == 500_000
    assert presets.preset_steps("point_maze", fitted) == 300_000
    assert presets.preset_steps("halfcheetah", features) == presets.DEFAULT_STEPS
    mine = settings_lib.build_config(presets.preset_settings(
        "point_maze", settings_lib.parse_settings(("reward_model=features", "disc.hidden=32"))))
    assert mine.disc.hidden == (32,) and mine.disc.learning_rate == 1e-2
    # HalfCheetah's (and its variants') feature model is linear, with the paper's policy
    # steps; envs without a feature preset keep the paper defaults.
    for name in ("halfcheetah", "halfcheetah_wind", "halfcheetah_mars"):
        cheetah = settings_lib.build_config(presets.preset_settings(
            name, settings_lib.parse_settings(("reward_model=features",))))
        assert cheetah.disc.hidden == () and cheetah.disc.learning_rate == 1e-2
        assert cheetah.variant == "max_eta" and cheetah.reward_eta_floor == 0.0
        assert settings_lib.build_config(presets.preset_settings(name)).disc == config_lib.TRIRLConfig().disc
        # Every HalfCheetah learner, either reward model, starts at std 0.2; --set wins.
        assert cheetah.ppo.init_std == 0.2
        assert settings_lib.build_config(presets.preset_settings(name)).ppo.init_std == 0.2
        assert settings_lib.build_config(presets.preset_settings(
            name, settings_lib.parse_settings(("ppo.init_std=0.6",)))).ppo.init_std == 0.6
    other = settings_lib.build_config(presets.preset_settings(
        "hopper", settings_lib.parse_settings(("reward_model=features",))))
    assert other.disc == config_lib.TRIRLConfig().disc
    assert other.ppo.init_std == config_lib.TRIRLConfig().ppo.init_std == 0.6


def test_env_defaults_to_the_demos_env(tmp_path):
    path = tmp_path / "flipped.npz"
    demos_lib.save(path, _synthetic_demos(envs.make("point_maze_flipped")))
    assert learn.default_env(path) == "point_maze_flipped"
    assert learn.default_env(None) == "point_maze"


@pytest.mark.parametrize("case", ["not_toml", "unknown_table", "unknown_key", "bad_value",
                                  "bad_env_key", "missing", "bad_beta"])
def test_bad_config_exits_2_naming_the_file(files, case):
    path = files["root"] / f"{case}.toml"
    text = {"not_toml": "eps = = 1\n", "unknown_table": "[optimizer]\nlr = 1\n",
            "unknown_key": "[ppo]\nlearnin_rate = 1e-4\n", "bad_value": "capacity = 0.5\n",
            "bad_env_key": "[env]\nepisode_len = 5\n", "missing": None, "bad_beta": ""}[case]
    if text is not None:
        path.write_text(text)
    run_dir = files["root"] / f"never-config-{case}"
    extra = ("--beta", -1) if case == "bad_beta" else ()
    result = _cli("learn", "--demos", files["demos"], "--config", path, "--run-dir", run_dir,
                  "--steps", STEPS, *extra)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trirl: error: "), result.output
    expect = {"not_toml": "not valid TOML", "unknown_table": "[optimizer]",
              "unknown_key": "learnin_rate", "bad_value": "capacity",
              "bad_env_key": "episode_len", "missing": "cannot read", "bad_beta": "--beta"}[case]
    assert expect in lines[0]
    if case != "bad_beta":
        assert str(path) in lines[0]
    assert not run_dir.exists()


def test_readme_config_example_is_valid(tmp_path):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    path = tmp_path / "readme.toml"
    path.write_text(re.search(r"```toml\n(.*?)```", readme, re.S).group(1))
    settings, env_settings = settings_lib.read_config_file(path)
    config = settings_lib.build_config(settings)
    assert config.variant == "max_eta" and config.capacity == 100
    assert env_settings == ("episode_length=100",)


def test_optional_number_settings_come_through_set():
    """Settings whose default is None (the discriminator's fixed penalty alpha, its
    gradient clip) take a number from --set, or none to switch them off."""
    cfg = settings_lib.build_config(settings_lib.parse_settings(
        ("disc.gp_alpha=0.5", "disc.max_grad_norm=2")))
    assert (cfg.disc.gp_alpha, cfg.disc.max_grad_norm) == (0.5, 2.0)
    assert settings_lib.build_config(settings_lib.parse_settings(
        ("disc.max_grad_norm=none",))).disc.max_grad_norm is None
    with pytest.raises(TrirlError) as exc:
        settings_lib.parse_settings(("disc.gp_alpha=half",))
    assert "\n" not in str(exc.value) and "gp_alpha='half'" in str(exc.value)
