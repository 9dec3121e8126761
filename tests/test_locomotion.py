"""The locomotion suite against Gymnasium's MuJoCo v5 envs (the independent reference).

Two levels, because MJX compiles cost 20-40 s per model on a 2-core CPU:

- Definitions (every env, cheap): Gymnasium steps its C MuJoCo env; trirl's
  ``_observe``/``_reward``/``_terminated`` evaluated on the same ``MjData`` (copied into
  :class:`PhysicsArrays`) must give Gymnasium's observation, reward and termination, over
  episodes long enough to terminate. This checks layouts, reward terms, healthy ranges
  and the quantities read (stale ``xpos``, ``cfrc_ext`` after ``mj_rnePostConstraint``).
- Physics (each backend vs Gymnasium): the same initial state and actions through
  trirl's jitted ``step`` and through Gymnasium. MJX: float32 against float64 C over a
  short horizon; tolerances are relative to ``1 + |x|``; contacts make differences grow
  with time, so the horizon is 5 control steps. HalfCheetah runs by default, the rest are
  ``slow``. The C backend runs the same float64 ``mj_step`` as Gymnasium, so it must
  agree to float32 rounding of the outputs over 40 steps (falls and contacts included),
  for every robot, in the default suite (no XLA physics to compile).

The transfer variants are checked against independently built references: Ant Disabled
against a hand-edited copy of the Ant MJCF, the HalfCheetah variants field by field.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from trirl import envs
from trirl.envs.base import PhysicsArrays

gym = pytest.importorskip("gymnasium")
pytest.importorskip("imageio")  # gymnasium's MuJoCo envs import it (gymnasium[mujoco])

V5 = {"halfcheetah": "HalfCheetah-v5", "hopper": "Hopper-v5", "walker2d": "Walker2d-v5",
      "ant": "Ant-v5", "humanoid": "Humanoid-v5"}


def gym_env(name: str):
    """The unwrapped Gymnasium v5 env whose model matches trirl's ``name``."""
    base = {"halfcheetah_wind": "halfcheetah", "halfcheetah_mars": "halfcheetah",
            "ant_disabled": "ant"}.get(name, name)
    g = gym.make(V5[base]).unwrapped
    ours = envs.make(name).mj_model
    g.model.opt.wind[:] = ours.opt.wind
    g.model.opt.density, g.model.opt.viscosity = ours.opt.density, ours.opt.viscosity
    g.model.opt.gravity[:] = ours.opt.gravity
    return g


def evaluate(env, before, after, action):
    """trirl's definitions on C physics arrays: (obs, reward, terminated)."""
    obs = env._observe(after)
    reward, _ = env._reward(before, after, jnp.asarray(action, jnp.float32))
    return np.asarray(obs), float(reward), bool(env._terminated(after))


# ------------------------------------------------------------------- definitions (cheap)


@pytest.mark.parametrize("name", sorted(V5))
def test_definitions_match_gymnasium_v5_on_c_physics(name):
    env, g = envs.make(name), gym_env(name)
    rng = np.random.default_rng(0)
    terminations = steps = 0
    for episode in range(3):
        obs, _ = g.reset(seed=episode)
        np.testing.assert_allclose(env._observe(PhysicsArrays.from_mjdata(g.data)), obs,
                                   rtol=1e-5, atol=1e-5)
        for _ in range(60 if name != "humanoid" else 30):
            before = PhysicsArrays.from_mjdata(g.data)
            # Actions in bounds: trirl clips, Gymnasium leaves clipping to MuJoCo but
            # charges the control cost on the unclipped action.
            action = rng.uniform(env.action_low, env.action_high)
            obs, reward, terminated, _, _ = g.step(action)
            ours, our_reward, our_terminated = evaluate(
                env, before, PhysicsArrays.from_mjdata(g.data), action)
            assert ours.shape == obs.shape == (env.observation_size,)
            np.testing.assert_allclose(ours, obs, rtol=1e-5, atol=1e-5)
            assert our_reward == pytest.approx(reward, rel=1e-5, abs=1e-5)
            assert our_terminated == terminated
            steps += 1
            if terminated:
                terminations += 1
                break
    assert steps > 30
    if name in ("hopper", "walker2d", "humanoid"):
        assert terminations > 0, "random actions should make the robot fall at least once"


def test_contact_forces_are_read_and_clipped_like_v5():
    # Ant's contact cost and the cfrc_ext part of its observation must be non-trivial on
    # a step with ground contact, or the definition test above would not test them.
    env, g = envs.make("ant"), gym_env("ant")
    g.reset(seed=0)
    for _ in range(20):
        g.step(np.zeros(env.action_size))
    cfrc = PhysicsArrays.from_mjdata(g.data).cfrc_ext
    assert np.abs(cfrc).max() > 1.0           # clipping to (-1, 1) is exercised
    obs = np.asarray(env._observe(PhysicsArrays.from_mjdata(g.data)))
    np.testing.assert_allclose(obs[27:], np.clip(cfrc[1:], -1, 1).reshape(-1), rtol=1e-6)


@pytest.mark.parametrize("name", [n for n, cls in envs.registry().items() if not cls.robot_model])
def test_layout_names_and_base_features(name):
    env = envs.make(name)
    assert len(env.obs_names) == len(set(env.obs_names)) == env.observation_size
    if name.startswith("point_maze"):
        return
    by_name = {term[0]: env.obs_names[term[2]] for term in env.feature_terms if len(term) == 3}
    # Forward velocity of the root (planar "rootx:vel", free joint "root:vx") and torso
    # height (the root's z) where declared; every env also prices its actions.
    assert by_name["x_velocity"] in ("rootx:vel", "root:vx")
    assert by_name.get("torso_height", "rootz") in ("rootz", "root:z")
    assert "action_sq_sum" in env.feature_names


@pytest.mark.parametrize("name", ["halfcheetah", "hopper", "ant", "humanoid"])
def test_reset_noise_follows_v5(name):
    env, g = envs.make(name), gym_env(name)
    keys = jax.random.split(jax.random.key(0), 4000)
    qpos, qvel = (np.asarray(x, np.float64) for x in jax.vmap(env._initial_qpos_qvel)(keys))
    n = env.config.reset_noise_scale
    assert n == g._reset_noise_scale
    dq = qpos - g.init_qpos
    assert np.abs(dq).max() <= n * (1 + 1e-6)
    np.testing.assert_allclose(dq.std(0), n / np.sqrt(3), rtol=0.06)      # U(-n, n)
    if name in ("halfcheetah", "ant"):                                     # n * N(0, 1)
        np.testing.assert_allclose(qvel.std(0), n, rtol=0.06)
        assert np.abs(qvel).max() > 2.5 * n
    else:
        assert np.abs(qvel).max() <= n * (1 + 1e-6)


# --------------------------------------------------------------------- transfer variants


def model_arrays(m) -> dict:
    return {k: np.array(getattr(m, k)) for k in dir(m)
            if not k.startswith("_") and isinstance(getattr(m, k), np.ndarray)}


def assert_models_equal(a, b, skip=()):
    ma, mb = model_arrays(a), model_arrays(b)
    assert ma.keys() == mb.keys()
    for key in ma:
        if key not in skip:
            np.testing.assert_array_equal(ma[key], mb[key], err_msg=key)


def opt_fields(m) -> dict:
    return {k: np.array(getattr(m.opt, k)) for k in dir(m.opt)
            if not k.startswith("_") and not callable(getattr(m.opt, k))}


def test_halfcheetah_variants_change_only_wind_or_gravity():
    base = envs.make("halfcheetah").mj_model
    gym_model = gym.make("HalfCheetah-v5").unwrapped.model
    assert_models_equal(base, gym_model)       # same model as v5, bit for bit
    expected = {"halfcheetah_wind": {"wind": [-5.0, 0.0, 0.0], "density": 1.2,
                                     "viscosity": 1.8e-5},
                "halfcheetah_mars": {"gravity": [0.0, 0.0, -3.73]}}
    for name, changes in expected.items():
        variant = envs.make(name).mj_model
        assert_models_equal(base, variant)
        before, after = opt_fields(base), opt_fields(variant)
        changed = {k for k in before if not np.array_equal(before[k], after[k])}
        assert changed == set(changes), name
        for field, value in changes.items():
            np.testing.assert_allclose(after[field], value)


def hand_edited_disabled_ant() -> mujoco.MjModel:
    """Reference Ant Disabled: the v5 asset with the six link lines rewritten by hand."""
    xml = (envs.mujoco_v5.ASSETS / "ant.xml").read_text()
    edits = {
        '0.2 0.2 0.0" name="aux_1_geom"': '0.18 0.18 0.0" name="aux_1_geom"',
        '<body name="aux_1" pos="0.2 0.2 0">': '<body name="aux_1" pos="0.18 0.18 0">',
        '0.2 0.2 0.0" name="left_leg_geom"': '0.18 0.18 0.0" name="left_leg_geom"',
        '0.4 0.4 0.0" name="left_ankle_geom"': '0.35 0.35 0.0" name="left_ankle_geom"',
        '-0.2 0.2 0.0" name="aux_2_geom"': '-0.18 0.18 0.0" name="aux_2_geom"',
        '<body name="aux_2" pos="-0.2 0.2 0">': '<body name="aux_2" pos="-0.18 0.18 0">',
        '-0.2 0.2 0.0" name="right_leg_geom"': '-0.18 0.18 0.0" name="right_leg_geom"',
        '-0.4 0.4 0.0" name="right_ankle_geom"': '-0.35 0.35 0.0" name="right_ankle_geom"',
    }
    for old, new in edits.items():
        assert xml.count(old) == 1, old
        xml = xml.replace(old, new)
    # The foot bodies of legs 1 and 2 sit at the end of the second hip link.
    for old in ('<body pos="0.2 0.2 0">', '<body pos="-0.2 0.2 0">'):
        assert xml.count(old) == 1
        xml = xml.replace(old, old.replace("0.2 0.2", "0.18 0.18"))
    m = mujoco.MjModel.from_xml_string(xml)
    for joint in ("hip_1", "ankle_1", "hip_2", "ankle_2"):
        m.actuator_gear[actuated_joints(m).index(joint), 0] = 0.0
    return m


def actuated_joints(m) -> list[str]:
    """The joint each actuator drives (Ant's actuators are unnamed)."""
    return [m.joint(int(j)).name for j in m.actuator_trnid[:, 0]]


def test_ant_disabled_is_ant_with_short_unactuated_front_legs():
    disabled, ant = envs.make("ant_disabled"), envs.make("ant")
    reference = hand_edited_disabled_ant()
    # ElementTree rewrites numbers as repr(float) (0.18000000000000002 style products);
    # compile both and compare to float precision.
    ma, mb = model_arrays(disabled.mj_model), model_arrays(reference)
    for key in ma:
        if ma[key].dtype.kind == "f":
            np.testing.assert_allclose(ma[key], mb[key], rtol=1e-12, atol=1e-12, err_msg=key)
        else:
            np.testing.assert_array_equal(ma[key], mb[key], err_msg=key)
    gear = disabled.mj_model.actuator_gear[:, 0]
    names = actuated_joints(disabled.mj_model)
    assert {n for n, g_ in zip(names, gear) if g_ == 0} == {"hip_1", "ankle_1", "hip_2", "ankle_2"}
    np.testing.assert_array_equal(gear[gear != 0], ant.mj_model.actuator_gear[gear != 0, 0])
    # The intact legs are untouched; the disabled ones lost 10% / 12.5% of their links.
    for leg, factor in (("aux_3", 1.0), ("aux_1", 0.9)):
        np.testing.assert_allclose(disabled.mj_model.body(leg).pos,
                                   ant.mj_model.body(leg).pos * factor, rtol=1e-12)
    # Commanding a disabled actuator costs nothing; an intact one costs as in ant.
    a = np.zeros(8, np.float32)
    a[names.index("hip_1")] = 1.0
    assert float(disabled._ctrl_cost(a)) == 0.0
    a[names.index("hip_3")] = 1.0
    assert float(disabled._ctrl_cost(a)) == pytest.approx(float(ant._ctrl_cost(a)) / 2)


# ------------------------------------------------------------------ physics: MJX vs C


def mjx_vs_c(name: str, horizon: int = 5, batch: int = 3, backend: str = "mjx",
             tol: float = 2e-3):
    """trirl's jitted ``step`` on ``backend`` vs Gymnasium from the same states and actions:
    observations and rewards within ``tol`` relative to ``1 + |x|``, same termination."""
    env, g = envs.make(name, backend=backend), gym_env(name)
    if name == "humanoid":
        g.model.opt.solver = mujoco.mjtSolver.mjSOL_NEWTON   # what trirl runs (no PGS in MJX)
    if backend == "c":
        # The same model: trirl caps the solver (envs/mujoco_v5.py) on both backends.
        g.model.opt.iterations = env.mj_model.opt.iterations
        g.model.opt.ls_iterations = env.mj_model.opt.ls_iterations
    if name == "ant" and backend == "mjx":
        # MJX and C orient the tangent frames of capsule-plane contacts differently, so
        # with pyramidal friction cones (v5's default) the Ant's first ground contact
        # already differs by ~30% in angular velocity, in float64 too (docs/envs.md).
        # Elliptic cones do not depend on that frame: compare the rest of the step
        # wiring with them, over the 2 steps before contact chaos takes over.
        env.mj_model.opt.cone = g.model.opt.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
        env.backend = envs.MjxBackend(env.mj_model, env.config.frame_skip, contact_forces=True)
        horizon = 2
    rng = np.random.default_rng(1)

    @jax.jit
    def rollout(qpos, qvel, actions):
        state = env.reset(jax.random.key(0))
        data = env.backend.init(qpos, qvel)
        state = state.replace(data=data, obs=env._observe(env.backend.arrays(data)))

        def body(s, a):
            s = env.step(s, a)
            return s, (s.obs, s.reward, s.absorbing)
        return jax.lax.scan(body, state, actions)[1]

    for b in range(batch):
        g.reset(seed=b)
        # trirl's states start in float32 (its reset noise is float32): give Gymnasium the
        # same rounded start, so that only the engines differ.
        qpos, qvel = (x.astype(np.float32) for x in (g.data.qpos, g.data.qvel))
        g.set_state(qpos.astype(np.float64), qvel.astype(np.float64))
        actions = rng.uniform(env.action_low, env.action_high,
                              (horizon, env.action_size)).astype(np.float32)
        obs, rew, term = (np.asarray(x) for x in rollout(qpos, qvel, actions))
        for t in range(horizon):
            o, r, te, _, _ = g.step(actions[t].astype(np.float64))
            scale = 1.0 + np.abs(o)
            # MJX: float32 physics vs float64, ~1e-6 per step, amplified by contacts.
            # C: the same float64 physics; only the float32 outputs are rounded.
            assert np.max(np.abs(obs[t] - o) / scale) < tol, (name, b, t)
            assert abs(rew[t] - r) / (1 + abs(r)) < tol, (name, b, t)
            assert bool(term[t]) == te
            if te:
                break


def test_mjx_physics_matches_gymnasium_halfcheetah():
    mjx_vs_c("halfcheetah")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hopper", "walker2d", "ant", "humanoid", "ant_disabled",
                                  "halfcheetah_wind", "halfcheetah_mars"])
def test_mjx_physics_matches_gymnasium(name):
    if name == "ant_disabled":
        pytest.skip("Gymnasium has no Ant Disabled; its model is checked against a "
                    "hand-edited reference and its physics is Ant's MJX code path")
    mjx_vs_c(name)


@pytest.mark.parametrize("name", ["halfcheetah", "hopper", "walker2d", "ant", "humanoid",
                                  "halfcheetah_wind", "halfcheetah_mars"])
def test_c_backend_physics_matches_gymnasium(name):
    # 2e-6: float32 rounding of observations (6e-8 relative) and XLA's float32 reward
    # arithmetic; the physics itself is Gymnasium's float64 mj_step, bit for bit
    # (tests/test_backends.py compares the state rows exactly), so nothing grows.
    mjx_vs_c(name, horizon=40, batch=2, backend="c", tol=2e-6)


def test_env_configs_are_gymnasium_defaults():
    # Spot checks of the weights most often gotten wrong, against v5's own attributes.
    for name, fields in {"ant": ("_ctrl_cost_weight", "_contact_cost_weight", "_healthy_z_range"),
                         "humanoid": ("_forward_reward_weight", "_contact_cost_weight",
                                      "_healthy_reward"),
                         "hopper": ("_healthy_angle_range", "_healthy_state_range"),
                         "walker2d": ("_healthy_z_range", "_healthy_angle_range")}.items():
        g, cfg = gym_env(name), dataclasses.asdict(envs.make(name).config)
        for field in fields:
            assert cfg[field.lstrip("_")] == pytest.approx(getattr(g, field)), (name, field)
        assert g.frame_skip == envs.make(name).config.frame_skip


def test_solver_caps_are_tuned_for_mjx_and_configurable():
    for name in ("halfcheetah_wind", "humanoid", "ant_disabled"):   # variants keep them
        opt = envs.make(name).mj_model.opt
        assert (opt.iterations, opt.ls_iterations) == (4, 8)
    opt = envs.make("hopper", solver_iterations=100, solver_ls_iterations=50).mj_model.opt
    assert (opt.iterations, opt.ls_iterations) == (100, 50)
