"""Tests for trirl.envs: the functional env API, AutoReset and the Point Maze pair.

Every test runs on both physics backends (the module fixture is parametrised over
``mjx`` and ``c``): the env API must mean the same thing on each. Compiling MJX is the
expensive part (about 6-13 s of CPU per XLA program on a 2-core CPU; the C backend's
programs compile in about a second), so the file compiles four programs per backend,
once, in the module fixture ``fns``:
``point_maze``'s ``reset`` and ``step``, ``point_maze_flipped``'s ``step``, and one batched
program (N = 4) returning both ``jax.vmap(step)`` of ``point_maze`` and
``AutoReset(point_maze, episode_length=7).step``. Batches are stacks of single resets,
which is what ``AutoReset.reset`` (a ``vmap`` of ``reset``) returns.

Episodes are driven from Python with the compiled single steps (a few ms each), so a
test costs well under a second once the fixture is built. Expected values (reward,
distances, termination) are recomputed in NumPy from the returned observations.
"""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trirl import envs
from trirl.envs.point_maze import PARTICLE_RADIUS, WALL_HALF_THICKNESS
from trirl.errors import TrirlError

N = 4                 # batch for the vmap / AutoReset tests
SHORT = 7             # episode_length of the truncation / AutoReset env
HORIZON = 100         # point_maze's default episode_length
GOAL = np.array([0.15, 0.0])
ARENA = 0.3


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", params=["mjx", "c"])
def fns(request):
    """The compiled programs (see the module docstring), plus the envs."""
    backend = request.param
    pm = envs.make("point_maze", backend=backend)
    flipped = envs.make("point_maze_flipped", backend=backend)
    short = envs.make("point_maze", episode_length=SHORT, backend=backend)
    # Resets only place the particle (same start and noise in all three) and step re-runs
    # the full forward pass of its own model first, so point_maze's compiled reset
    # serves all three envs and a batch is a stack of single resets.
    for other in (flipped, short):
        assert (other.config.start, other.config.reset_noise_scale) == (
            pm.config.start, pm.config.reset_noise_scale)
    key = jax.random.key(0)
    state = jax.eval_shape(pm.reset, key)
    batch = jax.eval_shape(lambda k: stack([pm.reset(k)] * N), key)
    action, actions = jnp.zeros(2, jnp.float32), jnp.zeros((N, 2), jnp.float32)
    programs = {
        "reset": (pm.reset, key),
        "step": (pm.step, state, action),
        "flipped_step": (flipped.step, state, action),
        # One program for both batched steps: they run the same physics, which XLA
        # compiles once (saves a ~12 s compile).
        "batched": (lambda s, a, pool: (envs.AutoReset(short).step(s, a, pool),
                                        jax.vmap(pm.step)(s, a)), batch, actions, batch),
    }
    # Ahead-of-time compiled: a call with other shapes or dtypes fails instead of silently
    # compiling another program.
    compiled = {name: jax.jit(fn).lower(*args).compile() for name, (fn, *args) in programs.items()}
    batched = compiled.pop("batched")
    compiled["vstep"] = lambda s, a: batched(s, a, s)[1]
    compiled["short_autoreset_step"] = lambda s, a, pool: batched(s, a, pool)[0]
    compiled["flipped_reset"] = compiled["reset"]
    compiled["env"], compiled["flipped"], compiled["short"] = pm, flipped, short
    return compiled


def stack(states):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


def batch_reset(fns, key):
    """N independent initial states from ``split(key, N)``, stacked."""
    return stack([fns["reset"](k) for k in jax.random.split(key, N)])


def _np(x) -> np.ndarray:
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    return np.asarray(x)


def leaves_equal(a, b) -> bool:
    return all(np.array_equal(_np(x), _np(y))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def pos(state) -> np.ndarray:
    return np.asarray(state.obs)[..., :2]


def waypoint_action(p: np.ndarray, waypoint, gain: float = 20.0) -> np.ndarray:
    return np.clip(gain * (np.asarray(waypoint, np.float64) - p), -1.0, 1.0).astype(np.float32)


def run(reset, step, key, policy, n_steps=HORIZON):
    """Roll out ``policy(t, pos) -> action`` from ``reset(key)`` without auto-reset.

    Returns the initial state and a list of (action, state-after) pairs.
    """
    state = reset(key)
    first, traj = state, []
    for t in range(n_steps):
        action = np.asarray(policy(t, pos(state)), np.float32)
        state = step(state, action)
        traj.append((action, state))
    return first, traj


def waypoint_policy(waypoints, tol=0.02):
    """Head for each waypoint in turn, switching when within ``tol`` of it."""
    progress = {"i": 0}

    def policy(t, p):
        i = progress["i"]
        if i < len(waypoints) - 1 and np.linalg.norm(np.asarray(waypoints[i]) - p) < tol:
            progress["i"] = i = i + 1
        return waypoint_action(p, waypoints[i])

    return policy


TOP = [(-0.15, 0.22), (0.15, 0.22), (0.15, 0.0)]
BOTTOM = [(-0.15, -0.22), (0.15, -0.22), (0.15, 0.0)]


# ----------------------------------------------------------------------------- determinism


def test_same_key_same_trajectory_different_key_different_start(fns):
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (20, 2)).astype(np.float32)
    key = jax.random.key(42)
    a, b = fns["reset"](key), fns["reset"](key)
    assert leaves_equal(a, b)
    for act in actions:
        a, b = fns["step"](a, act), fns["step"](b, act)
        assert leaves_equal(a, b)
    assert int(a.steps) == 20

    starts = np.stack([pos(fns["reset"](jax.random.key(s))) for s in range(5)])
    assert len({tuple(p) for p in starts}) == 5
    noise = fns["env"].config.reset_noise_scale
    np.testing.assert_array_less(np.abs(starts - np.array([-0.15, 0.0])), noise + 1e-6)


# ----------------------------------------------------------------------------- vmap


def test_vmap_equals_single_env_runs(fns):
    singles = [fns["reset"](k) for k in jax.random.split(jax.random.key(7), N)]
    batch = stack(singles)
    actions = np.random.default_rng(1).uniform(-1.2, 1.2, (20, N, 2)).astype(np.float32)
    for act in actions:
        batch = fns["vstep"](batch, act)
        singles = [fns["step"](s, a) for s, a in zip(singles, act)]
        physics = fns["env"].backend.arrays
        for field in ("obs", "next_obs", "reward", "qpos", "qvel"):
            get = (operator.attrgetter(field) if field not in ("qpos", "qvel")
                   else lambda s, f=field: getattr(physics(s.data), f))
            np.testing.assert_allclose(np.asarray(get(batch)),
                                       np.stack([np.asarray(get(s)) for s in singles]),
                                       atol=1e-6, err_msg=field)
        for field in ("done", "truncated", "absorbing", "steps"):
            np.testing.assert_array_equal(np.asarray(getattr(batch, field)),
                                          np.stack([getattr(s, field) for s in singles]),
                                          err_msg=field)
    assert np.all(np.asarray(batch.steps) == 20)


# ----------------------------------------------------------------------------- walls


@pytest.mark.parametrize("name", ["point_maze", "point_maze_flipped"])
def test_wall_blocks_straight_line(fns, name):
    prefix = "" if name == "point_maze" else "flipped_"
    _, traj = run(fns[prefix + "reset"], fns[prefix + "step"], jax.random.key(3),
                  lambda t, p: (1.0, 0.0))
    xs = np.array([pos(s)[0] for _, s in traj])
    assert xs.max() < 0.0, f"{name}: particle crossed x = 0 (max x {xs.max():.4f})"
    # it did get pushed against the wall (touching when x = -(wall half-thickness + radius))
    assert xs.max() > -(WALL_HALF_THICKNESS + PARTICLE_RADIUS) - 0.01
    assert not any(bool(s.absorbing) for _, s in traj)


def test_particle_stays_in_arena(fns):
    rng = np.random.default_rng(2)
    for name in ("", "flipped_"):
        for episode in range(3):
            # random bang-bang actions held for 5-20 steps, so the particle hits the walls
            held = iter(np.repeat(rng.choice([-1.0, 1.0], (40, 2)),
                                  rng.integers(5, 20, 40), axis=0))
            _, traj = run(fns[name + "reset"], fns[name + "step"],
                          jax.random.key(100 + episode), lambda t, p: next(held))
            ps = np.stack([pos(s) for _, s in traj])
            assert np.all(np.abs(ps) <= ARENA), np.abs(ps).max()
        # pushing into each corner for a whole episode stays inside too
        for corner in ((-1, -1), (-1, 1), (1, 1), (1, -1)):
            _, traj = run(fns[name + "reset"], fns[name + "step"], jax.random.key(5),
                          lambda t, p: corner)
            ps = np.stack([pos(s) for _, s in traj])
            assert np.all(np.abs(ps) <= ARENA), (name, corner, np.abs(ps).max())
    # the corner pushes did reach the boundary (the arena check is not vacuous)
    assert np.abs(ps).max() > ARENA - 0.03


def test_free_motion_matches_the_damped_point_mass(fns):
    """Away from walls the particle is m x'' = gear a - damping x' (the authors' model:
    5 N motors, 1 N s/m, 0.113 kg). Reference: MuJoCo's Euler step, which integrates joint
    damping implicitly, v' = (m v + h F) / (m + h b), x' = x + h v', in float64 -- and
    the continuous solution to the discretisation error."""
    cfg = fns["env"].config
    m, b, h = cfg.mass, cfg.damping, 0.005
    force = cfg.gear * np.array([0.3, 1.0])
    first, traj = run(fns["reset"], fns["step"], jax.random.key(7),
                      lambda t, p: np.array([0.3, 1.0], np.float32), n_steps=8)
    x, v, ref = pos(first).astype(np.float64), np.zeros(2), []
    for _ in range(8):
        for _ in range(cfg.frame_skip):
            v = (m * v + h * force) / (m + h * b)
            x = x + h * v
        ref.append(x.copy())
    got = np.stack([pos(s) for _, s in traj])
    np.testing.assert_allclose(got, np.stack(ref), atol=2e-6)
    # After 0.08 s from rest: x(t) = (F / b) (t - tau (1 - exp(-t / tau))), tau = m / b,
    # up to the step's O(h / tau) = 4 % error.
    t, tau = 0.08, m / b
    exact = pos(first) + force / b * (t - tau * (1 - np.exp(-t / tau)))
    np.testing.assert_allclose(got[-1], exact, rtol=0,
                               atol=0.05 * np.abs(exact - pos(first)).max())
    assert got[-1, 1] - pos(first)[1] > 0.1  # top speed 5 m/s: 0.11 m in 8 steps


# ----------------------------------------------------------------------------- the gap


@pytest.mark.parametrize("name,open_route,blocked_route", [
    ("point_maze", TOP, BOTTOM), ("point_maze_flipped", BOTTOM, TOP)])
def test_gap_location(fns, name, open_route, blocked_route):
    prefix = "" if name == "point_maze" else "flipped_"
    reset, step = fns[prefix + "reset"], fns[prefix + "step"]
    _, traj = run(reset, step, jax.random.key(11), waypoint_policy(open_route))
    xs = np.array([pos(s)[0] for _, s in traj])
    assert xs.max() > 0.05, f"{name}: route via y={open_route[0][1]} did not cross x = 0"
    assert any(bool(s.absorbing) for _, s in traj), f"{name}: open route did not reach the goal"

    _, traj = run(reset, step, jax.random.key(11), waypoint_policy(blocked_route))
    ps = np.stack([pos(s) for _, s in traj])
    assert ps[:, 0].max() < 0.0, f"{name}: route via y={blocked_route[0][1]} passed the wall"
    # it reached the wall at the waypoint's height, i.e. really tried that route
    touching = -(WALL_HALF_THICKNESS + PARTICLE_RADIUS) - 0.01
    assert np.any((ps[:, 0] > touching) & (np.abs(ps[:, 1] - blocked_route[0][1]) < 0.03))


# ----------------------------------------------------------------------------- reward / flags


def check_transitions(env, first, traj):
    """Reward, termination and flag invariants of a no-auto-reset rollout, in NumPy."""
    prev = first
    for t, (action, s) in enumerate(traj, start=1):
        obs = np.asarray(s.obs, np.float64)
        assert np.array_equal(np.asarray(s.obs), np.asarray(s.next_obs))
        a = np.clip(action.astype(np.float64), -1.0, 1.0)
        dist = np.linalg.norm(obs[:2] - obs[2:4])
        ctrl = env.config.ctrl_cost_weight * np.sum(a ** 2)
        np.testing.assert_allclose(float(s.reward), -dist - ctrl, atol=1e-6)
        np.testing.assert_array_equal(obs[2:4], GOAL.astype(np.float32))
        if abs(dist - 0.1) > 1e-6:
            assert bool(s.absorbing) == (dist <= 0.1), (t, dist)
        assert not (bool(s.absorbing) and bool(s.truncated))
        assert bool(s.done) == (bool(s.absorbing) or bool(s.truncated))
        assert bool(s.truncated) == (t >= env.episode_length and not bool(s.absorbing))
        assert int(s.steps) == t == int(prev.steps) + 1
        assert set(s.metrics) == set(first.metrics)
        np.testing.assert_allclose(float(s.metrics["distance"]), dist, atol=1e-6)
        prev = s


def test_reward_termination_and_flags(fns):
    env = fns["env"]
    # reaches the goal: termination is exercised
    first, traj = run(fns["reset"], fns["step"], jax.random.key(11), waypoint_policy(TOP))
    check_transitions(env, first, traj)
    assert any(bool(s.absorbing) for _, s in traj)
    # blocked for the whole episode and beyond: truncation at exactly step 100
    first, traj = run(fns["reset"], fns["step"], jax.random.key(12), lambda t, p: (1.0, 0.3),
                      n_steps=HORIZON + 3)
    check_transitions(env, first, traj)
    truncated = [bool(s.truncated) for _, s in traj]
    assert truncated.index(True) == HORIZON - 1
    # out-of-bounds actions are clipped before both the dynamics and the control cost
    big = np.random.default_rng(4).uniform(-3, 3, (30, 2)).astype(np.float32)
    first, traj = run(fns["reset"], fns["step"], jax.random.key(13), lambda t, p: big[t],
                      n_steps=30)
    check_transitions(env, first, traj)
    s0 = fns["reset"](jax.random.key(13))
    clipped = fns["step"](s0, np.clip(big[0], -1, 1))
    assert leaves_equal(fns["step"](s0, big[0]).data, clipped.data)


def test_truncation_at_short_episode_length(fns):
    """episode_length=7: with no termination, truncated exactly at steps 7, 14, ... ."""
    ar_step = fns["short_autoreset_step"]
    state = batch_reset(fns, jax.random.key(20))
    pool = batch_reset(fns, jax.random.key(21))
    flags = []
    for _ in range(2 * SHORT):
        state = ar_step(state, np.zeros((N, 2), np.float32), pool)
        flags.append(np.asarray(state.truncated))
        assert not np.any(np.asarray(state.absorbing))
        np.testing.assert_array_equal(np.asarray(state.done), flags[-1])
    flags = np.stack(flags)
    expected = np.zeros_like(flags)
    expected[SHORT - 1::SHORT] = True
    np.testing.assert_array_equal(flags, expected)


# ----------------------------------------------------------------------------- AutoReset


def test_autoreset_restarts_only_finished_envs(fns):
    ar_step, vstep = fns["short_autoreset_step"], fns["vstep"]
    state = batch_reset(fns, jax.random.key(30))
    pool = batch_reset(fns, jax.random.key(31))
    # staggered episode clocks so envs finish at different steps
    state = state.replace(steps=jnp.array([0, 2, 4, 6], jnp.int32))
    actions = np.random.default_rng(5).uniform(-1, 1, (12, N, 2)).astype(np.float32)
    n_done = n_live = 0
    for act in actions:
        # ``vstep`` is the same physics without auto-reset (its horizon, 100, is never hit)
        ref = vstep(state, act)
        nxt = ar_step(state, act, pool)
        done = np.asarray(nxt.done)
        expected_trunc = (np.asarray(state.steps) + 1 >= SHORT) & ~np.asarray(ref.absorbing)
        np.testing.assert_array_equal(np.asarray(nxt.truncated), expected_trunc)
        np.testing.assert_array_equal(done, np.asarray(nxt.absorbing | nxt.truncated))
        assert not np.any(np.asarray(nxt.absorbing & nxt.truncated))
        # transition quantities are the pre-reset ones for every env
        for field in ("next_obs", "reward"):
            np.testing.assert_allclose(np.asarray(getattr(nxt, field)),
                                       np.asarray(getattr(ref, field if field != "next_obs"
                                                          else "obs")), atol=1e-6)
        np.testing.assert_array_equal(np.asarray(nxt.absorbing), np.asarray(ref.absorbing))
        for i in range(N):
            pick = lambda tree: jax.tree.map(lambda x: _np(x)[i], tree)
            if done[i]:
                n_done += 1
                np.testing.assert_array_equal(np.asarray(nxt.obs)[i], np.asarray(pool.obs)[i])
                assert int(nxt.steps[i]) == 0
                assert leaves_equal(pick(nxt.data), pick(pool.data))
                assert not np.array_equal(np.asarray(nxt.obs)[i], np.asarray(nxt.next_obs)[i])
            else:
                n_live += 1
                np.testing.assert_array_equal(np.asarray(nxt.obs)[i],
                                              np.asarray(nxt.next_obs)[i])
                assert int(nxt.steps[i]) == int(state.steps[i]) + 1
                for a, b in zip(jax.tree.leaves(pick(nxt.data)), jax.tree.leaves(pick(ref.data)),
                                strict=True):
                    np.testing.assert_allclose(a, b, atol=1e-6)
        state = nxt
    assert n_done >= N and n_live >= N


# ----------------------------------------------------------------------------- make / spec


def test_make_errors_are_one_line_trirl_errors():
    with pytest.raises(TrirlError) as err:
        envs.make("point_mazz")
    assert "point_mazz" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(TrirlError) as err:
        envs.make("point_maze", episode_lenght=5)
    assert "episode_lenght" in str(err.value) and "\n" not in str(err.value)


def test_make_spec_and_overrides():
    env = envs.make("point_maze")
    assert env.dt == pytest.approx(0.01)
    assert env.episode_length == HORIZON
    assert env.observation_size == 4 and env.action_size == 2
    np.testing.assert_array_equal(env.action_low, [-1, -1])
    np.testing.assert_array_equal(env.action_high, [1, 1])
    assert len(env.obs_names) == env.observation_size
    short = envs.make("point_maze", episode_length=SHORT, goal_radius=0.05)
    assert short.episode_length == SHORT == short.config.episode_length
    assert short.config.goal_radius == 0.05
    assert not envs.make("point_maze").config.flipped
    assert envs.make("point_maze_flipped").config.flipped
    assert {"point_maze", "point_maze_flipped"} <= set(envs.names())

    # Base features: distance of the reached position to the goal, sum of squared actions.
    obs = np.array([[-0.1, 0.2, 0.15, 0.0], [0.05, -0.07, 0.15, 0.0]], np.float32)
    act = np.array([[0.5, -1.0], [0.0, 0.0]], np.float32)
    feats = np.asarray(env.features(obs, act, obs[::-1]))
    assert env.feature_names == ("goal_distance", "action_sq_sum")
    want = [[np.hypot(0.05 - 0.15, -0.07), 1.25], [np.hypot(-0.1 - 0.15, 0.2), 0.0]]
    np.testing.assert_allclose(feats, want, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(env.features(obs[0], act[0], obs[1])), want[0],
                               rtol=1e-6)
