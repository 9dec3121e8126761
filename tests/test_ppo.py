"""Tests for trirl.ppo (rollout, losses, learned rewards, trust region), trirl.policy's
densities, and the host-side training loop / checkpoints (trirl.runner, trirl.checkpoint).

Compiling MJX dominates the cost (tens of seconds per program on a busy 2-core CPU), so
one tiny PPO on one Point Maze variant is built once in the module fixture ``pm`` and
the default tests share three compiled programs: ``init``, ``collect`` and ``update``.
``PPO.iteration`` runs its own code over the last two (``pm.fast``), which is also what
the training-loop tests drive. Only the slow test compiles ``vmap(iteration)`` over two
seeds. The learned-reward / trust-region PPO is only ever *updated* (no physics),
eagerly, once, in the fixture ``irl``.

The Point Maze variant is a trivial task: the goal (radius 0.04) sits 5 cm from the
start, with no wall in between, and episodes last 30 steps. Rollouts whose truncated and
absorbing steps are known in advance are produced by ``collect`` from a crafted state
(fixture ``crafted``): half of the envs sit on the goal (their next step is absorbing),
half sit far away at the last step before the time limit (their next step is truncated).
"""

from __future__ import annotations

import dataclasses
import shutil
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from trirl import envs, normalizer, trpl
from trirl import ppo as ppo_lib
from trirl.checkpoint import Checkpointer
from trirl.errors import TrirlError
from trirl.policy import entropy, log_prob
from trirl.ppo import LearnedReward, PPO, PPOConfig, TrustRegionConfig
from trirl.runner import read_metrics, train_loop

EPISODE_LENGTH = 30
START = np.array([-0.15, 0.0])
GOAL = np.array([-0.10, 0.0])
GOAL_RADIUS = 0.04
RESET_NOISE = 0.01  # point_maze default
FAR = np.array([0.2, 0.2])  # right of the maze wall, well inside the arena
ENV_KW = dict(episode_length=EPISODE_LENGTH, goal=tuple(GOAL), goal_radius=GOAL_RADIUS)
CFG = PPOConfig(num_envs=16, rollout_length=4, num_epochs=4, minibatch_size=32, hidden=(8,),
                learning_rate=1e-3)
T, N = CFG.rollout_length, CFG.num_envs
HALF = N // 2


# ----------------------------------------------------------------------------- helpers


def stack(trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def index(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


def assert_trees_close(a, b, rtol=1e-5, atol=1e-6, exact=False):
    """Same structure, dtypes and shapes; floating leaves close (bitwise equal with
    ``exact``, NaN == NaN), all other leaves (keys, counters, flags) equal."""
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        if np.issubdtype(x.dtype, np.floating) and not exact:
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)
        else:
            np.testing.assert_array_equal(x, y)


def assert_trees_equal(a, b):
    assert_trees_close(a, b, exact=True)


def np_mlp(params, x):
    """NumPy float64 forward pass of trirl.networks.MLP (Dense_0 .. Dense_k, tanh)."""
    layers = [params[f"Dense_{i}"] for i in range(len(params))]
    h = np.asarray(x, np.float64)
    for i, layer in enumerate(layers):
        h = h @ np.asarray(layer["kernel"], np.float64) + np.asarray(layer["bias"], np.float64)
        if i < len(layers) - 1:
            h = np.tanh(h)
    return h


def np_normalize(stats_, x, clip=10.0):
    std = np.maximum(np.sqrt(np.maximum(np.asarray(stats_.var, np.float64), 1e-8)), 1e-4)
    return np.clip((np.asarray(x, np.float64) - np.asarray(stats_.mean, np.float64)) / std,
                   -clip, clip)


def np_policy(actor, obs_stats, obs):
    z = np_normalize(obs_stats, obs)
    mean = np_mlp(actor["params"]["MLP_0"], z)
    std = np.exp(np.asarray(actor["params"]["log_std"], np.float64))
    return mean, std


def np_value(critic, obs_stats, obs):
    return np_mlp(critic["params"]["ScalarMLP_0"]["MLP_0"], np_normalize(obs_stats, obs))[..., 0]


def np_log_prob(mean, std, action):
    return stats.norm.logpdf(np.asarray(action, np.float64), mean, std).sum(-1)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pm():
    """The shared PPO: initial states of seeds 0 and 1, the jitted ``collect`` and
    ``update``, and ``fast``, a PPO whose ``iteration`` (its own, unchanged code) calls
    those two compiled halves, so no test has to compile a whole iteration."""
    env = envs.make("point_maze", **ENV_KW)
    ppo = PPO(env, CFG)
    init = jax.jit(ppo.init)
    seeds = [init(jax.random.PRNGKey(s)) for s in (0, 1)]
    fast = PPO(env, CFG)
    fast.collect, fast.update = jax.jit(fast.collect), jax.jit(fast.update)
    return SimpleNamespace(env=env, ppo=ppo, seeds=seeds, fast=fast, collect=fast.collect,
                           update=fast.update)


@pytest.fixture(scope="module")
def crafted(pm):
    """collect() from a state whose next step is absorbing for envs [0, HALF) (they sit
    on the goal) and truncated for envs [HALF, N) (far away, at the time limit)."""
    state = pm.seeds[0]
    es = state.env_state
    first = (np.arange(N) < HALF)[:, None]
    qpos = jnp.asarray(np.where(first, GOAL, FAR), jnp.float32)
    # The physics state at those positions, at rest (either backend's own init).
    data = jax.jit(jax.vmap(pm.env.backend.init))(qpos, jnp.zeros_like(qpos))
    obs = jnp.concatenate([qpos, jnp.broadcast_to(jnp.asarray(GOAL), (N, 2))], -1).astype(
        jnp.float32)
    steps = jnp.asarray(np.where(first[:, 0], 5, EPISODE_LENGTH - 1), jnp.int32)
    ep_ret = -jnp.arange(1, N + 1, dtype=jnp.float32)  # returns so far, to check the stats
    state = state.replace(env_state=es.replace(data=data, obs=obs, next_obs=obs, steps=steps),
                          episode_return=ep_ret)
    new_state, rollout, ep_stats = pm.collect(state)
    return SimpleNamespace(state=state, new_state=new_state, rollout=rollout,
                           ep_stats=jax.device_get(ep_stats), obs=np.asarray(obs))


C_REWARD, R_ABS = 0.375, -0.25  # exact in binary
TR = TrustRegionConfig(mean_bound=1e-3, cov_bound=5e-4, loss_coef=0.5)


@pytest.fixture(scope="module")
def irl(pm, crafted):
    """One eager ``update`` of a PPO with a constant LearnedReward and a trust region on
    the crafted rollout; records what the reward fn and ``gae`` received and returned."""
    seen = {}

    def reward_fn(params, obs, action, next_obs, absorbing):
        seen["reward_args"] = (obs, action, next_obs, absorbing)
        return jnp.full(obs.shape[:-1], params["c"], jnp.float32)

    reward = LearnedReward(fn=reward_fn, absorbing_reward=lambda p: p["abs"])
    cfg = dataclasses.replace(CFG, trust_region=TR, learning_rate=3e-2)
    ppo = PPO(pm.env, cfg, reward)
    real_gae = ppo_lib.gae

    def spy_gae(rewards, values, next_values, absorbing, done, gamma, lam, absorbing_value):
        adv, ret = real_gae(rewards, values, next_values, absorbing, done, gamma, lam,
                            absorbing_value)
        seen["gae"] = dict(rewards=rewards, values=values, next_values=next_values,
                           absorbing_value=absorbing_value, advantages=adv, returns=ret)
        return adv, ret

    params = {"c": jnp.float32(C_REWARD), "abs": jnp.float32(R_ABS)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ppo_lib, "gae", spy_gae)
        new_state, metrics = ppo.update(crafted.new_state, crafted.rollout, params)
    return SimpleNamespace(ppo=ppo, cfg=cfg, state=crafted.new_state, new_state=new_state,
                           metrics=jax.device_get(metrics), seen=jax.device_get(seen))


# ----------------------------------------------------------------------------- policy


def test_log_prob_and_entropy_match_scipy():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(7, 3))
    std = rng.uniform(0.05, 3.0, size=3)
    action = mean + std * rng.normal(size=(7, 3)) * 2
    lp = np.asarray(log_prob(jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32),
                             jnp.asarray(action, jnp.float32)))
    ref = np.array([stats.multivariate_normal(m, np.diag(std ** 2)).logpdf(a)
                    for m, a in zip(mean, action)])
    np.testing.assert_allclose(lp, ref, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(float(entropy(jnp.asarray(std, jnp.float32))),
                               stats.multivariate_normal(np.zeros(3), np.diag(std ** 2)).entropy(),
                               rtol=1e-5)
    # Per-state std (B, d) gives one entropy per state.
    std_b = rng.uniform(0.1, 2.0, size=(4, 2))
    np.testing.assert_allclose(np.asarray(entropy(jnp.asarray(std_b, jnp.float32))),
                               stats.norm(scale=std_b).entropy().sum(-1), rtol=1e-5)


def test_config_rejects_batch_not_divisible_by_minibatch():
    with pytest.raises(TrirlError) as exc:
        PPOConfig(num_envs=3, rollout_length=5, minibatch_size=4)
    msg = str(exc.value)
    assert "\n" not in msg and "minibatch_size=4" in msg and "15" in msg
    cfg = PPOConfig(num_envs=6, rollout_length=4, minibatch_size=8)
    assert (cfg.batch_size, cfg.num_minibatches) == (24, 3)


def test_critic_hidden_sizes_the_critic_alone_and_survives_flags_and_json(pm):
    """The robotics presets' separate critic (paper App. C.5: 1024, 512): the critic's
    layers take ``critic_hidden``, the policy keeps ``hidden``, and the setting comes
    through ``--set critic_hidden=...`` and a run's config.json unchanged."""
    import json

    from trirl.settings import parse_overrides, ppo_config_from_dict

    cfg = dataclasses.replace(CFG, **parse_overrides(("critic_hidden=6,5",), PPOConfig, "PPO"))
    assert cfg.critic_hidden == (6, 5) and cfg.hidden == CFG.hidden
    state = PPO(pm.env, cfg).init(jax.random.PRNGKey(0))
    obs_dim = pm.env.observation_size
    critic = state.critic["params"]["ScalarMLP_0"]["MLP_0"]
    assert [critic[f"Dense_{i}"]["kernel"].shape for i in range(3)] == [(obs_dim, 6), (6, 5),
                                                                        (5, 1)]
    default = pm.seeds[0]
    assert jax.tree.map(jnp.shape, state.actor) == jax.tree.map(jnp.shape, default.actor)
    obs = jax.random.normal(jax.random.PRNGKey(1), (7, obs_dim))
    np.testing.assert_allclose(PPO(pm.env, cfg).critic.apply(state.critic, obs),
                               np_mlp(critic, np.asarray(obs, np.float64))[..., 0], rtol=1e-5,
                               atol=1e-6)
    assert ppo_config_from_dict(json.loads(json.dumps(dataclasses.asdict(cfg))), "x") == cfg
    assert ppo_config_from_dict(json.loads(json.dumps(dataclasses.asdict(CFG))), "x") == CFG
    with pytest.raises(TrirlError) as exc:
        parse_overrides(("critic_hidden=a,b",), PPOConfig, "PPO")
    msg = str(exc.value)
    assert "\n" not in msg and "critic_hidden='a,b'" in msg and "integers (e.g. 64,64)" in msg


# ----------------------------------------------------------------------------- iteration


METRICS = ("loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
           "grad_norm", "reward_mean", "value_mean", "advantage_std", "episodes",
           "episode_return", "terminated_fraction", "finite")


def test_iteration_is_deterministic(pm):
    state_a, metrics_a = pm.fast.iteration(pm.seeds[0])
    state_b, metrics_b = pm.fast.iteration(pm.seeds[0])
    assert_trees_equal((state_a, metrics_a), (state_b, metrics_b))
    metrics_a = jax.device_get(metrics_a)
    assert set(METRICS) <= set(metrics_a)
    assert bool(metrics_a["finite"]) and int(state_a.iteration) == 1
    assert all(np.isfinite(metrics_a[k]) for k in METRICS[:-3])
    # Another seed gives another iteration.
    state_c, _ = pm.fast.iteration(pm.seeds[1])
    assert not np.array_equal(np.asarray(state_a.actor["params"]["log_std"]),
                              np.asarray(state_c.actor["params"]["log_std"]))


@pytest.mark.slow  # compiles vmap(iteration): about a minute on a busy 2-core CPU
def test_vmapped_iteration_equals_single_seed_runs(pm):
    iterate = jax.jit(jax.vmap(pm.ppo.iteration))
    stacked = stack(pm.seeds)
    state_a, metrics_a = iterate(stacked)
    state_b, metrics_b = iterate(stacked)
    assert_trees_equal((state_a, metrics_a), (state_b, metrics_b))
    metrics_a = jax.device_get(metrics_a)
    for name in METRICS:
        assert metrics_a[name].shape == (2,), name
    for i, single in enumerate(pm.seeds):
        s, m = pm.fast.iteration(single)
        assert_trees_close(s, index(state_a, i))
        for name, value in jax.device_get(m).items():
            np.testing.assert_allclose(value, metrics_a[name][i], rtol=1e-5, atol=1e-6,
                                       err_msg=name)


def test_rollout_is_consistent_with_the_policy(pm):
    state = pm.seeds[1]
    new_state, ro, _ = pm.collect(state)
    ro = jax.device_get(ro)
    mean, std = np_policy(state.actor, state.obs_stats, ro.obs)
    np.testing.assert_allclose(ro.mean, mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ro.std, np.broadcast_to(std, ro.std.shape), rtol=1e-6)
    np.testing.assert_allclose(ro.log_prob, np_log_prob(ro.mean, ro.std, ro.action),
                               rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(ro.done, ro.absorbing | ro.truncated)
    assert not np.any(ro.absorbing & ro.truncated)
    # Within an episode the next step starts where this one ended.
    cont = ~ro.done[:-1]
    np.testing.assert_array_equal(ro.next_obs[:-1][cont], ro.obs[1:][cont])
    np.testing.assert_array_equal(np.asarray(new_state.env_state.obs)[~ro.done[-1]],
                                  ro.next_obs[-1][~ro.done[-1]])
    # The key advances, so the next rollout differs.
    assert not np.array_equal(np.asarray(new_state.key), np.asarray(state.key))


def test_rollout_next_obs_is_pre_reset_and_next_obs_is_a_fresh_reset(pm, crafted):
    ro = jax.device_get(crafted.rollout)
    # The crafted first step: absorbing for the first half, truncated for the rest.
    np.testing.assert_array_equal(ro.absorbing[0], np.arange(N) < HALF)
    np.testing.assert_array_equal(ro.truncated[0], np.arange(N) >= HALF)
    np.testing.assert_array_equal(ro.obs[0], crafted.obs)
    # next_obs is where the step ended, before the auto-reset: on the goal / far away.
    # One step from rest (two semi-implicit Euler substeps of h = 5 ms) moves the particle
    # at most 3 (gear / mass) h^2 = 3.3 mm.
    pos = ro.next_obs[0, :, :2]
    np.testing.assert_allclose(pos[:HALF], np.broadcast_to(GOAL, (HALF, 2)), atol=4e-3)
    assert np.all(np.linalg.norm(pos[:HALF] - GOAL, axis=1) <= GOAL_RADIUS)
    np.testing.assert_allclose(pos[HALF:], np.broadcast_to(FAR, (N - HALF, 2)), atol=4e-3)
    # The true reward of the terminal/truncated step is that of the pre-reset state.
    weight = envs.PointMazeConfig().ctrl_cost_weight
    ctrl = weight * np.sum(np.clip(ro.action[0], -1, 1) ** 2, -1)
    np.testing.assert_allclose(ro.env_reward[0], -np.linalg.norm(pos - GOAL, axis=1) - ctrl,
                               rtol=1e-5, atol=1e-6)
    # obs of the next step is a fresh initial state: near the start, distinct per env.
    fresh = ro.obs[1, :, :2]
    assert np.all(np.abs(fresh - START) <= RESET_NOISE + 1e-6)
    assert len({tuple(p) for p in fresh}) == N
    np.testing.assert_array_equal(ro.obs[1, :, 2:], np.broadcast_to(GOAL, (N, 2)).astype(
        np.float32))
    # ...and the new episodes run on from there (a fresh start lies just outside the goal
    # radius, so an occasional one ends again within the rollout).
    assert ro.done[1:].mean() < 0.25
    cont = ~ro.done[1:-1]
    np.testing.assert_array_equal(ro.next_obs[1:-1][cont], ro.obs[2:][cont])
    clean = ~ro.done[1:].any(0)
    np.testing.assert_array_equal(np.asarray(crafted.new_state.env_state.steps)[clean], T - 1)
    # Episode statistics and the running returns, replayed from the rollout: every env
    # finished at the first step, half of them by termination.
    running = -np.arange(1, N + 1, dtype=np.float64)
    finished, n_absorbing = [], 0
    for t in range(T):
        running = running + ro.env_reward[t]
        finished += list(running[ro.done[t]])
        n_absorbing += int(ro.absorbing[t].sum())
        running[ro.done[t]] = 0.0
    ep = crafted.ep_stats
    assert float(ep["episodes"]) == len(finished) >= N
    assert float(ep["terminated_fraction"]) == pytest.approx(n_absorbing / len(finished))
    assert float(ep["episode_return"]) == pytest.approx(np.mean(finished), rel=1e-5)
    np.testing.assert_allclose(np.asarray(crafted.new_state.episode_return), running,
                               rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- losses


def _minibatch(ppo_, crafted, perturb_actor: bool, seed=0):
    rng = np.random.default_rng(seed)
    flat = jax.tree.map(lambda x: np.asarray(x).reshape((-1,) + x.shape[2:]), crafted.rollout)
    idx = rng.permutation(CFG.batch_size)[:CFG.minibatch_size]
    mb = jax.tree.map(lambda x: x[idx], flat)
    # Behaviour log-probs shifted so that ratios spread on both sides of the clip range.
    mb = mb.replace(log_prob=(mb.log_prob + rng.uniform(-0.4, 0.4, mb.log_prob.shape)).astype(
        np.float32))
    adv = rng.normal(size=CFG.minibatch_size).astype(np.float32)
    ret = rng.normal(size=CFG.minibatch_size).astype(np.float32)
    state = crafted.state
    actor = state.actor
    if perturb_actor:  # move the raw policy well outside the trust region
        actor = jax.tree.map(lambda x: x + jnp.asarray(0.3 * rng.normal(size=x.shape), x.dtype),
                             actor)
    obs_stats = normalizer.update(state.obs_stats, crafted.rollout.obs)
    return (actor, state.critic), obs_stats, mb, adv, ret


@pytest.mark.parametrize("normalize_advantages", [True, False])
def test_loss_matches_numpy(pm, crafted, normalize_advantages):
    cfg = dataclasses.replace(CFG, normalize_advantages=normalize_advantages, entropy_coef=0.03)
    ppo = PPO(pm.env, cfg)
    params, obs_stats, mb, adv, ret = _minibatch(ppo, crafted, perturb_actor=True)
    total, aux = jax.jit(ppo._loss)(params, obs_stats, mb, adv, ret)
    aux = jax.device_get(aux)

    mean, std = np_policy(params[0], obs_stats, mb.obs)
    logp = np_log_prob(mean, std, mb.action)
    ratio = np.exp(logp - mb.log_prob)
    a = adv.astype(np.float64)
    if normalize_advantages:
        a = (a - a.mean()) / (a.std() + 1e-8)
    eps = cfg.clip_eps
    assert np.any(ratio > 1 + eps) and np.any(ratio < 1 - eps) and np.any(abs(ratio - 1) < eps)
    policy_loss = -np.mean(np.minimum(ratio * a, np.clip(ratio, 1 - eps, 1 + eps) * a))
    value = np_value(params[1], obs_stats, mb.obs)
    value_loss = 0.5 * np.mean((value - ret) ** 2)
    ent = np.sum(np.log(std) + 0.5 * np.log(2 * np.pi * np.e))
    expected_total = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * ent
    np.testing.assert_allclose(aux["policy_loss"], policy_loss, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(aux["value_loss"], value_loss, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(aux["entropy"], ent, rtol=1e-5)
    np.testing.assert_allclose(float(total), expected_total, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(aux["loss"], float(total))
    np.testing.assert_allclose(aux["clip_fraction"], np.mean(np.abs(ratio - 1) > eps))
    np.testing.assert_allclose(aux["approx_kl"], np.mean(mb.log_prob - logp), rtol=1e-4,
                               atol=1e-6)


def test_kl_penalty_adds_the_closed_form_kl(pm, crafted):
    """``kl_coef`` (TR-loss steps: the learner's tr_loss variant, ``trirl retrain
    --kl-penalty``) adds ``kl_coef * mean KL(pi || pi_behaviour)``; the KL of diagonal
    Gaussians in float64 by hand."""
    ppo = PPO(pm.env, CFG)
    params, obs_stats, mb, adv, ret = _minibatch(ppo, crafted, perturb_actor=True)
    loss = jax.jit(ppo._loss)
    base, _ = loss(params, obs_stats, mb, adv, ret)
    total, aux = loss(params, obs_stats, mb, adv, ret, kl_coef=jnp.float32(7.0))
    mean, std = np_policy(params[0], obs_stats, mb.obs)
    old_mean, old_std = np.asarray(mb.mean, np.float64), np.asarray(mb.std, np.float64)[0]
    kl = np.sum(np.log(old_std / std) + (std ** 2 + (mean - old_mean) ** 2)
                / (2 * old_std ** 2) - 0.5, axis=-1)
    assert np.mean(kl) > 1e-4  # the perturbed actor is away from the behaviour policy
    np.testing.assert_allclose(aux["kl_penalty"], np.mean(kl), rtol=1e-4)
    np.testing.assert_allclose(float(total) - float(base), 7.0 * np.mean(kl), rtol=1e-3)


def test_trust_region_loss_uses_the_projected_policy(pm, crafted):
    cfg = dataclasses.replace(CFG, trust_region=TR)
    ppo = PPO(pm.env, cfg)
    params, obs_stats, mb, adv, ret = _minibatch(ppo, crafted, perturb_actor=True, seed=1)
    total, aux = jax.jit(ppo._loss)(params, obs_stats, mb, adv, ret)
    aux = jax.device_get(aux)

    raw_mean, raw_std = np_policy(params[0], obs_stats, mb.obs)
    old_std = mb.std[0]
    assert np.all(mb.std == old_std)  # state-independent std
    proj = trpl.project(jnp.asarray(raw_mean, jnp.float32), jnp.asarray(raw_std, jnp.float32),
                        jnp.asarray(mb.mean), jnp.asarray(old_std), TR.mean_bound, TR.cov_bound)
    # The raw policy is outside the trust region; the projected one is on/inside it.
    assert np.max(np.asarray(trpl.mean_kl(jnp.asarray(raw_mean, jnp.float32),
                                          jnp.asarray(mb.mean), jnp.asarray(old_std)))) \
        > 10 * TR.mean_bound
    assert float(trpl.cov_kl(jnp.asarray(raw_std, jnp.float32), jnp.asarray(old_std))) \
        > 10 * TR.cov_bound
    assert np.all(np.asarray(trpl.mean_kl(proj.mean, jnp.asarray(mb.mean),
                                          jnp.asarray(old_std))) <= TR.mean_bound * 1.001)
    assert float(trpl.cov_kl(proj.std, jnp.asarray(old_std))) <= TR.cov_bound * 1.001
    assert aux["eta_mean_max"] > 0 and aux["eta_cov_max"] > 0

    mean, std = np.asarray(proj.mean, np.float64), np.asarray(proj.std, np.float64)
    logp = np_log_prob(mean, std, mb.action)
    ratio = np.exp(logp - mb.log_prob)
    a = (adv - adv.mean()) / (adv.std() + 1e-8)
    eps = cfg.clip_eps
    policy_loss = -np.mean(np.minimum(ratio * a, np.clip(ratio, 1 - eps, 1 + eps) * a))
    value_loss = 0.5 * np.mean((np_value(params[1], obs_stats, mb.obs) - ret) ** 2)
    np.testing.assert_allclose(aux["policy_loss"], policy_loss, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(aux["entropy"], np.sum(np.log(std) + 0.5 * np.log(
        2 * np.pi * np.e)), rtol=1e-5)
    tr_loss = float(trpl.trust_region_loss(proj, jnp.asarray(raw_mean, jnp.float32),
                                           jnp.asarray(raw_std, jnp.float32)))
    assert tr_loss > 0
    np.testing.assert_allclose(aux["tr_loss"], tr_loss, rtol=1e-4)
    np.testing.assert_allclose(float(total),
                               policy_loss + cfg.value_coef * value_loss + TR.loss_coef * tr_loss,
                               rtol=1e-4, atol=1e-6)


def test_trust_region_update_keeps_the_projected_policy_inside_the_bounds(irl, crafted):
    """After a large-step update, the network's raw policy has left the trust region, but
    its projection (what the surrogate is computed on) respects both KL bounds."""
    ro = crafted.rollout
    m = irl.metrics
    assert m["eta_mean_max"] > 0 or m["eta_cov_max"] > 0
    new = irl.new_state
    raw_mean, raw_std = irl.ppo.policy(new.actor, new.obs_stats, ro.obs)
    old_std = ro.std[0, 0]
    raw_kl = trpl.mean_kl(raw_mean, ro.mean, old_std)
    raw_cov_kl = trpl.cov_kl(raw_std, old_std)
    assert float(jnp.max(raw_kl)) > TR.mean_bound or float(raw_cov_kl) > TR.cov_bound
    proj = irl.ppo.trust_region_projection(new, ro)
    assert float(jnp.max(trpl.mean_kl(proj.mean, ro.mean, old_std))) <= TR.mean_bound * 1.001
    assert float(trpl.cov_kl(proj.std, old_std)) <= TR.cov_bound * 1.001
    # Where the raw mean is inside its bound the projection leaves it alone.
    inside = np.asarray(raw_kl) <= TR.mean_bound
    np.testing.assert_allclose(np.asarray(proj.mean)[inside], np.asarray(raw_mean)[inside],
                               rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(proj.eta_mean)[inside] == 0)


# ----------------------------------------------------------------------------- rewards


def test_learned_reward_replaces_the_env_reward(pm, crafted, irl):
    ro = crafted.rollout
    # The reward fn saw raw obs, actions, pre-reset next_obs and the absorbing flags.
    for got, want in zip(irl.seen["reward_args"], (ro.obs, ro.action, ro.next_obs, ro.absorbing)):
        np.testing.assert_array_equal(got, np.asarray(want))
    assert irl.metrics["reward_mean"] == C_REWARD
    np.testing.assert_array_equal(irl.seen["gae"]["rewards"], np.full((T, N), C_REWARD))
    assert np.all(np.isfinite(jax.tree.leaves(jax.device_get(irl.new_state.actor))[0]))
    # Without a learned reward the same rollout trains on the env reward.
    _, m = pm.update(crafted.new_state, ro)
    np.testing.assert_allclose(float(m["reward_mean"]), float(np.mean(np.asarray(ro.env_reward))),
                               rtol=1e-6)


def test_absorbing_reward_and_truncation_enter_the_value_targets(crafted, irl):
    g = irl.seen["gae"]
    gamma = irl.cfg.gamma
    v_abs = R_ABS / (1 - gamma)
    np.testing.assert_allclose(g["absorbing_value"], v_abs, rtol=1e-6)
    ro = jax.device_get(crafted.rollout)
    # The critic was evaluated on the pre-reset next observations under the updated stats.
    stats_ = normalizer.update(irl.state.obs_stats, crafted.rollout.obs)
    np.testing.assert_allclose(g["next_values"], np_value(irl.state.critic, stats_, ro.next_obs),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g["values"], np_value(irl.state.critic, stats_, ro.obs),
                               rtol=1e-4, atol=1e-5)
    ret = g["returns"]
    # Absorbing steps: r + gamma * r_abs / (1 - gamma), whatever the critic says.
    np.testing.assert_allclose(ret[0, :HALF], C_REWARD + gamma * v_abs, rtol=1e-5)
    # Truncated steps: r + gamma * V(pre-reset s').
    np.testing.assert_allclose(ret[0, HALF:], C_REWARD + gamma * g["next_values"][0, HALF:],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ret, g["advantages"] + g["values"], rtol=1e-6, atol=1e-6)
    # value_mean is reported on the rollout's states.
    np.testing.assert_allclose(irl.metrics["value_mean"], np.mean(g["values"]), rtol=1e-5)


# ----------------------------------------------------------------------------- learning


def test_ppo_improves_the_true_return_on_a_trivial_task(pm):
    """150 iterations (9.6k steps, a second or two) per seed: both seeds learn to reach
    the nearby goal quickly (return about -1.0 at first, about -0.23 after 100
    iterations on each of the 6 seeds we tried)."""
    for seed, state in enumerate(pm.seeds):
        returns, terminated = [], []
        for _ in range(150):
            state, m = pm.fast.iteration(state)
            returns.append(float(m["episode_return"]))
            terminated.append(float(m["terminated_fraction"]))
        assert bool(m["finite"])
        first, last = np.nanmean(returns[:15]), np.nanmean(returns[-30:])
        assert last > first + 0.5 * abs(first), (seed, first, last)
        assert np.nanmean(terminated[-30:]) > 0.9, (seed, terminated[-30:])


# ----------------------------------------------------------------------------- runner


def _train(pm, run_dir, n, resume=False, checkpoint_every=2):
    run_dir.mkdir(exist_ok=True)
    return train_loop(run_dir, lambda: pm.seeds[0], pm.fast.iteration, num_iterations=n,
                      steps_per_iteration=CFG.batch_size, checkpoint_every=checkpoint_every,
                      resume=resume, label="test", show_progress=False)


def _lines_without_wall(run_dir):
    lines = read_metrics(run_dir)
    for line in lines:
        line.pop("wall_s")
    return lines


def test_train_loop_resume_is_exact(pm, tmp_path):
    # The state holds what the backend carries: MJX zero-size physics arrays, C the
    # float64 state rows as uint32 bits. Checkpoints must carry either through exactly.
    leaves = jax.tree.leaves(pm.seeds[0])
    if pm.env.backend_name == "mjx":
        assert any(x.size == 0 for x in leaves)
    else:
        assert any(x.dtype == jnp.uint32 for x in leaves)
    full = _train(pm, tmp_path / "full", 6)
    ref_lines = _lines_without_wall(tmp_path / "full")
    assert [ln["iteration"] for ln in ref_lines] == [1, 2, 3, 4, 5, 6]
    assert ref_lines[-1]["env_steps"] == 6 * CFG.batch_size

    # Stopped after 3 (checkpoints 2 and 3), resumed to 6.
    part = tmp_path / "part"
    _train(pm, part, 3)
    assert Checkpointer(part / "checkpoints").all_steps() == [2, 3]
    resumed = _train(pm, part, 6, resume=True)
    assert_trees_equal(resumed, full)
    assert _lines_without_wall(part) == ref_lines

    # Crashed after logging iteration 3 but before checkpointing it: the resume restarts
    # from checkpoint 2 and trims the log back to it.
    crash = tmp_path / "crash"
    _train(pm, crash, 3)
    shutil.rmtree(crash / "checkpoints" / "3")
    assert len(read_metrics(crash)) == 3
    resumed = _train(pm, crash, 6, resume=True)
    assert_trees_equal(resumed, full)
    assert _lines_without_wall(crash) == ref_lines


@jax.jit
def _toy_iterate(state):
    w = state["w"] + 1.0
    bad = w[0] >= 3.0
    return {"w": jnp.where(bad & state["nan_params"], jnp.nan, w),
            "nan_params": state["nan_params"]}, \
        {"loss": jnp.where(bad & ~state["nan_params"], jnp.nan, w[0]),
         "finite": jnp.all(jnp.isfinite(w)) & ~(bad & state["nan_params"])}


@pytest.mark.parametrize("nan_params", [False, True], ids=["nan-loss", "nan-params"])
def test_train_loop_stops_on_divergence_and_keeps_last_good_checkpoint(tmp_path, nan_params):
    init = {"w": jnp.zeros(3), "nan_params": jnp.asarray(nan_params)}
    with pytest.raises(TrirlError) as exc:
        train_loop(tmp_path, lambda: init, _toy_iterate, num_iterations=10,
                   steps_per_iteration=5, checkpoint_every=1, resume=False, label="toy",
                   show_progress=False)
    msg = str(exc.value)
    assert "\n" not in msg and "diverged" in msg and "iteration 3" in msg
    assert ("non-finite parameters" if nan_params else "non-finite loss") in msg
    ckpt = Checkpointer(tmp_path / "checkpoints")
    assert ckpt.latest_step() == 2
    state, record = ckpt.restore(init)
    np.testing.assert_array_equal(np.asarray(state["w"]), [2.0, 2.0, 2.0])
    assert record == {"iteration": 2, "env_steps": 10}
    ckpt.close()
    assert [ln["iteration"] for ln in read_metrics(tmp_path)] == [1, 2]


def test_ctrl_c_saves_the_last_completed_iteration_and_resume_finishes(tmp_path):
    """Ctrl-C in iteration 4 (checkpoints every 10): iteration 3 is saved, the run stops
    with Interrupted (exit 130 in the CLI, not an input error), and the resume ends
    where an uninterrupted run ends."""
    from trirl.errors import Interrupted

    step = jax.jit(lambda s: ({"w": s["w"] + 1.0}, {"loss": s["w"][0], "finite": True}))
    calls = []

    def interrupted_once(state):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return step(state)

    run = dict(init=lambda: {"w": jnp.zeros(3)}, num_iterations=5, steps_per_iteration=1,
               checkpoint_every=10, label="toy", show_progress=False)
    with pytest.raises(Interrupted, match="interrupted at iteration 3; checkpoint saved"):
        train_loop(tmp_path, iterate=interrupted_once, resume=False, **run)
    ckpt = Checkpointer(tmp_path / "checkpoints")
    assert ckpt.latest_step() == 3
    ckpt.close()
    final = train_loop(tmp_path, iterate=step, resume=True, **run)
    np.testing.assert_array_equal(np.asarray(final["w"]), [5.0, 5.0, 5.0])
    assert [ln["iteration"] for ln in read_metrics(tmp_path)] == [1, 2, 3, 4, 5]


def test_sigterm_checkpoints_like_ctrl_c(tmp_path):
    """A scheduler's SIGTERM during iteration 3 stops the run like Ctrl-C: iteration 2
    is saved, and the previous SIGTERM handler is back afterwards."""
    import os
    import signal

    from trirl.errors import Interrupted

    step = jax.jit(lambda s: ({"w": s["w"] + 1.0}, {"loss": s["w"][0], "finite": True}))
    calls = []

    def terminated_once(state):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return step(state)

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted, match="interrupted at iteration 2; checkpoint saved"):
        train_loop(tmp_path, lambda: {"w": jnp.zeros(3)}, terminated_once, num_iterations=5,
                   steps_per_iteration=1, checkpoint_every=10, resume=False, label="toy",
                   show_progress=False)
    assert signal.getsignal(signal.SIGTERM) is before
    ckpt = Checkpointer(tmp_path / "checkpoints")
    assert ckpt.latest_step() == 2
    ckpt.close()


def test_resume_without_checkpoint_fails_before_building_the_state(tmp_path):
    def init():
        raise AssertionError("init must not run")

    with pytest.raises(TrirlError, match="no checkpoint to resume from"):
        train_loop(tmp_path, init, _toy_iterate, num_iterations=2, steps_per_iteration=1,
                   checkpoint_every=1, resume=True, label="toy", show_progress=False)


def test_checkpointer_keeps_only_max_to_keep(tmp_path):
    ckpt = Checkpointer(tmp_path, max_to_keep=2)
    for step in range(1, 6):
        ckpt.save(step, {"a": jnp.full(3, float(step)), "n": jnp.int32(step)},
                  {"iteration": step})
    assert ckpt.all_steps() == [4, 5]
    assert ckpt.latest_step() == 5
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["4", "5"]
    like = {"a": jnp.zeros(3), "n": jnp.int32(0)}
    state, record = ckpt.restore(like)
    np.testing.assert_array_equal(np.asarray(state["a"]), [5.0, 5.0, 5.0])
    assert int(state["n"]) == 5 and record == {"iteration": 5}
    state, record = ckpt.restore(like, step=4)
    np.testing.assert_array_equal(np.asarray(state["a"]), [4.0, 4.0, 4.0])
    ckpt.close()


def test_checkpoint_roundtrips_zero_size_leaves(tmp_path):
    key = jax.random.PRNGKey(3)
    state = {"empty": jnp.zeros((2, 0, 3)), "x": jnp.arange(4.0), "key": key,
             "nested": (jnp.zeros((0,), jnp.int32), jnp.asarray([1.5, -2.0], jnp.float32)),
             "flag": jnp.asarray(True)}
    ckpt = Checkpointer(tmp_path)
    ckpt.save(7, state, {"iteration": 7})
    like = jax.tree.map(jnp.zeros_like, state)
    restored, record = ckpt.restore(like)
    assert record == {"iteration": 7}
    assert_trees_equal(restored, state)
    ckpt.close()


def test_restored_state_shares_compiled_programs_with_a_fresh_one(tmp_path):
    """Regression: restored arrays were committed to the device while the zero-size
    template leaves were not, so a resumed run compiled its step twice (the mixed state,
    then its all-committed outputs). A restored state now matches a fresh one."""
    step = jax.jit(lambda s: jax.tree.map(lambda x: x + 1.0, s))
    fresh = step({"w": jnp.zeros(3), "empty": jnp.zeros((2, 0))})
    ckpt = Checkpointer(tmp_path)
    ckpt.save(1, fresh)
    restored, _ = ckpt.restore(fresh)
    ckpt.close()
    out = step(step(restored))
    np.testing.assert_array_equal(np.asarray(out["w"]), [3.0, 3.0, 3.0])
    assert step._cache_size() == 1


def test_sigterm_swallowed_where_it_landed_still_stops_the_run(tmp_path):
    """The handler's KeyboardInterrupt can be raised inside a garbage-collection
    callback, where Python prints "Exception ignored" and goes on (seen under `trirl
    compare`): the run must still stop at the next iteration boundary, checkpointed."""
    import os
    import signal

    from trirl.errors import Interrupted

    step = jax.jit(lambda s: ({"w": s["w"] + 1.0}, {"loss": s["w"][0], "finite": True}))
    calls = []

    def swallowed_once(state):
        calls.append(1)
        if len(calls) == 3:
            try:
                os.kill(os.getpid(), signal.SIGTERM)
            except KeyboardInterrupt:
                pass                       # what an "Exception ignored" callback does
        return step(state)

    with pytest.raises(Interrupted, match="interrupted at iteration 3; checkpoint saved"):
        train_loop(tmp_path, lambda: {"w": jnp.zeros(3)}, swallowed_once, num_iterations=6,
                   steps_per_iteration=1, checkpoint_every=10, resume=False, label="toy",
                   show_progress=False)
    assert len(calls) == 3                 # iteration 4 was never started
    ckpt = Checkpointer(tmp_path / "checkpoints")
    assert ckpt.latest_step() == 3
    ckpt.close()
