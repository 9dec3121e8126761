"""Tests for trirl.demos: the .npz demonstration format, its validation, and recording.

Bad files are written by hand with plain ``np.savez`` (never through ``demos.save``),
so each validation check is exercised exactly as a user's own file would hit it.
``record`` is checked against a plain Python loop of ``env.step`` calls and against
rewards recomputed from the recorded observations and actions.

JAX compiles dominate the runtime (two MJX compiles by default), so the environment,
the recordings and the reference are module-scoped fixtures.
"""

import dataclasses
import json
import os
import types
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trirl import demos as D
from trirl import envs
from trirl.errors import TrirlError

OBS_NAMES = ["px", "py", "vx"]
AUTO = object()  # placeholder: metadata entry = json.dumps of the metadata dict


def good_metadata() -> dict:
    return {
        "format_version": 1, "env": "toy", "obs_size": 3, "action_size": 2,
        "obs_names": list(OBS_NAMES), "control_timestep": 0.01, "episode_length": 5,
        "expert_return_mean": -1.5, "expert_return_std": 0.25, "random_return_mean": -9.0,
        "random_return_std": 1.0, "source": "unit test", "trirl_version": "0.1.0",
        "created": "2025-01-31T12:00:00+00:00", "seed": 7, "deterministic": True,
    }


def good_arrays() -> dict:
    """Two episodes, 4 + 3 transitions: the first truncated, the second absorbing."""
    rng = np.random.default_rng(0)
    obs, next_obs = [], []
    for length in (4, 3):
        states = rng.normal(size=(length + 1, 3)).astype(np.float32)
        obs.append(states[:-1])
        next_obs.append(states[1:])
    absorbing = np.zeros(7, bool)
    truncated = np.zeros(7, bool)
    truncated[3] = True
    absorbing[6] = True
    return {
        "obs": np.concatenate(obs), "next_obs": np.concatenate(next_obs),
        "actions": rng.uniform(-1, 1, size=(7, 2)).astype(np.float32),
        "absorbing": absorbing, "truncated": truncated,
        "episode_starts": np.array([0, 4], np.int64), "metadata": AUTO,
    }


def write_raw(path, mutate=None):
    """Write a demo file with plain numpy after ``mutate(arrays, metadata)``."""
    arrays, metadata = good_arrays(), good_metadata()
    if mutate is not None:
        mutate(arrays, metadata)
    if arrays.get("metadata") is AUTO:
        arrays["metadata"] = np.array(json.dumps(metadata))
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def good_demos() -> D.Demos:
    a = good_arrays()
    return D.Demos(obs=a["obs"], next_obs=a["next_obs"], actions=a["actions"],
                   absorbing=a["absorbing"], truncated=a["truncated"],
                   episode_starts=a["episode_starts"], metadata=good_metadata())


def assert_error(excinfo, path, field):
    message = str(excinfo.value)
    assert "\n" not in message
    assert os.fspath(path) in message
    if field is not None:
        assert field in message, message
    assert "fix:" in message


# ------------------------------------------------------------------------- round trip


def test_round_trip_is_exact(tmp_path):
    demos = good_demos()
    path = tmp_path / "demos.npz"
    D.save(path, demos)
    loaded = D.load(path)
    for key in ("obs", "next_obs", "actions", "absorbing", "truncated", "episode_starts"):
        original, got = getattr(demos, key), getattr(loaded, key)
        assert got.dtype == (np.int64 if key == "episode_starts" else original.dtype)
        np.testing.assert_array_equal(got, original)
    assert loaded.metadata == demos.metadata
    assert loaded.num_transitions == 7 and loaded.num_episodes == 2 and loaded.has_actions
    np.testing.assert_array_equal(loaded.episode_ends, [4, 7])
    np.testing.assert_array_equal(loaded.episode_lengths, [4, 3])
    # The metadata entry is a 0-d unicode string, readable without trirl or pickle.
    with np.load(path, allow_pickle=False) as raw:
        assert raw["metadata"].dtype.kind == "U" and raw["metadata"].ndim == 0
        assert json.loads(str(raw["metadata"]))["env"] == "toy"


def test_observation_only_round_trip(tmp_path):
    demos = dataclasses.replace(good_demos(), actions=None,
                                metadata={**good_metadata(), "action_size": None})
    path = tmp_path / "mocap.npz"
    D.save(path, demos)
    loaded = D.load(path)
    assert loaded.actions is None and not loaded.has_actions
    with np.load(path) as raw:
        assert "actions" not in raw.files
    with pytest.raises(TrirlError) as excinfo:
        D.load(path, require_actions=True)
    assert_error(excinfo, path, "actions")


def test_optional_metadata_defaults_and_extras_kept(tmp_path):
    def mutate(a, m):
        for name in D.OPTIONAL_METADATA:
            del m[name]
        m["notes"] = "extra fields survive"

    loaded = D.load(write_raw(tmp_path / "d.npz", mutate))
    assert all(loaded.metadata[name] is None for name in D.OPTIONAL_METADATA)
    assert loaded.metadata["notes"] == "extra fields survive"


def test_save_converts_numpy_scalars_and_sets_version(tmp_path):
    metadata = {**good_metadata(), "expert_return_mean": np.float32(-2.0),
                "seed": np.int64(3), "format_version": 0}
    D.save(tmp_path / "d.npz", dataclasses.replace(good_demos(), metadata=metadata))
    loaded = D.load(tmp_path / "d.npz")
    assert loaded.metadata["expert_return_mean"] == -2.0 and loaded.metadata["seed"] == 3
    assert loaded.metadata["format_version"] == D.FORMAT_VERSION


def test_save_refuses_invalid_demos(tmp_path):
    obs = good_demos().obs.copy()
    obs[2, 1] = np.nan
    path = tmp_path / "bad.npz"
    with pytest.raises(TrirlError) as excinfo:
        D.save(path, dataclasses.replace(good_demos(), obs=obs))
    assert_error(excinfo, path, "obs")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------- validation


def _set(key, value):
    def mutate(a, m):
        a[key] = value(a) if callable(value) else value
    return mutate


def _meta(**fields):
    def mutate(a, m):
        m.update(fields)
    return mutate


def _pop(key):
    return lambda a, m: a.pop(key)


def _drop_meta(name):
    return lambda a, m: m.pop(name)


def _cell(key, index, value):
    def mutate(a, m):
        a[key] = a[key].copy()
        a[key][index] = value
    return mutate


def _obs_size_4(a, m):
    m.update(obs_size=4, obs_names=OBS_NAMES + ["extra"])


def _empty(a, m):
    for key in ("obs", "next_obs"):
        a[key] = np.zeros((0, 3), np.float32)
    a["actions"] = np.zeros((0, 2), np.float32)
    a["absorbing"] = a["truncated"] = np.zeros(0, bool)


def _metadata_with_nan(a, m):
    m["expert_return_mean"] = float("nan")  # json.dumps writes the non-JSON token NaN


CASES = [
    # missing / unknown entries
    *[(f"missing-{key}", _pop(key), key) for key in
      ("obs", "next_obs", "absorbing", "truncated", "episode_starts", "metadata")],
    ("unknown-key", lambda a, m: a.update(action=a.pop("actions")), "action"),
    # metadata entry
    ("metadata-not-json", _set("metadata", np.array("{format_version: 1")), "metadata"),
    ("metadata-nan", _metadata_with_nan, "metadata"),
    ("metadata-bytes", _set("metadata", np.array(b'{"format_version": 1}')), "metadata"),
    ("metadata-1d", _set("metadata", lambda a: np.array([json.dumps(good_metadata())])),
     "metadata"),
    ("metadata-list", _set("metadata", np.array("[1, 2]")), "metadata"),
    *[(f"metadata-missing-{name}", _drop_meta(name), f"metadata.{name}")
      for name in D.REQUIRED_METADATA],
    ("version-newer", _meta(format_version=D.FORMAT_VERSION + 1), "metadata.format_version"),
    ("version-zero", _meta(format_version=0), "metadata.format_version"),
    ("version-string", _meta(format_version="1"), "metadata.format_version"),
    ("env-empty", _meta(env=""), "metadata.env"),
    ("obs-size-string", _meta(obs_size="3"), "metadata.obs_size"),
    ("action-size-zero", _meta(action_size=0), "metadata.action_size"),
    ("action-size-null-with-actions", _meta(action_size=None), "metadata.action_size"),
    ("obs-names-length", _meta(obs_names=["px", "py"]), "metadata.obs_names"),
    ("obs-names-type", _meta(obs_names="px,py,vx"), "metadata.obs_names"),
    ("timestep-zero", _meta(control_timestep=0), "metadata.control_timestep"),
    ("episode-length-float", _meta(episode_length=2.5), "metadata.episode_length"),
    ("expert-std-negative", _meta(expert_return_std=-1.0), "metadata.expert_return_std"),
    ("random-mean-string", _meta(random_return_mean="-9"), "metadata.random_return_mean"),
    ("created-not-iso", _meta(created="last tuesday"), "metadata.created"),
    ("seed-float", _meta(seed=1.5), "metadata.seed"),
    ("deterministic-string", _meta(deterministic="yes"), "metadata.deterministic"),
    ("source-number", _meta(source=3), "metadata.source"),
    # dtypes and shapes
    ("obs-float64", _set("obs", lambda a: a["obs"].astype(np.float64)), "obs"),
    ("next-obs-int", _set("next_obs", lambda a: a["next_obs"].astype(np.int32)), "next_obs"),
    ("actions-float64", _set("actions", lambda a: a["actions"].astype(np.float64)), "actions"),
    ("absorbing-int", _set("absorbing", lambda a: a["absorbing"].astype(np.int8)), "absorbing"),
    ("truncated-float", _set("truncated", lambda a: a["truncated"].astype(np.float32)),
     "truncated"),
    ("starts-float", _set("episode_starts", np.array([0.0, 4.0])), "episode_starts"),
    ("obs-1d", _set("obs", lambda a: a["obs"].ravel()), "obs"),
    ("actions-3d", _set("actions", lambda a: a["actions"][:, :, None]), "actions"),
    ("absorbing-2d", _set("absorbing", lambda a: a["absorbing"][:, None]), "absorbing"),
    # lengths and sizes
    ("next-obs-short", _set("next_obs", lambda a: a["next_obs"][:-1]), "next_obs"),
    ("actions-short", _set("actions", lambda a: a["actions"][:-1]), "actions"),
    ("absorbing-short", _set("absorbing", lambda a: a["absorbing"][:-1]), "absorbing"),
    ("truncated-long", _set("truncated", lambda a: np.append(a["truncated"], False)),
     "truncated"),
    ("obs-size-mismatch", _obs_size_4, "obs_size"),
    ("action-size-mismatch", _meta(action_size=3), "action_size"),
    ("no-transitions", _empty, "obs"),
    # non-finite values
    ("obs-nan", _cell("obs", (1, 2), np.nan), "obs"),
    ("next-obs-inf", _cell("next_obs", (6, 0), np.inf), "next_obs"),
    ("actions-nan", _cell("actions", (0, 1), -np.inf), "actions"),
    # episode structure
    ("starts-not-zero", _set("episode_starts", np.array([1, 4])), "episode_starts"),
    ("starts-repeated", _set("episode_starts", np.array([0, 0, 4])), "episode_starts"),
    ("starts-decreasing", _set("episode_starts", np.array([0, 4, 2])), "episode_starts"),
    ("starts-out-of-range", _set("episode_starts", np.array([0, 4, 7])), "episode_starts"),
    ("starts-empty", _set("episode_starts", np.zeros(0, np.int64)), "episode_starts"),
    ("starts-2d", _set("episode_starts", np.array([[0, 4]])), "episode_starts"),
    ("absorbing-mid-episode", _cell("absorbing", 1, True), "absorbing"),
    ("truncated-mid-episode", _cell("truncated", 5, True), "truncated"),
    ("absorbing-and-truncated", _cell("truncated", 6, True), "truncated"),
    ("episodes-glued", lambda a, m: a.update(episode_starts=np.array([0]),
                                             truncated=np.zeros(7, bool)), "next_obs"),
    ("next-obs-jump", _cell("next_obs", (1, 0), 5.0), "next_obs"),
]


@pytest.mark.parametrize("mutate,field", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_file_is_rejected(tmp_path, mutate, field):
    path = write_raw(tmp_path / "bad_demos.npz", mutate)
    with pytest.raises(TrirlError) as excinfo:
        D.load(path)
    assert_error(excinfo, path, field)


def test_newer_version_says_upgrade(tmp_path):
    # The version check comes first: a newer file may have renamed any other field.
    path = write_raw(tmp_path / "future.npz",
                     lambda a, m: (m.update(format_version=D.FORMAT_VERSION + 1), m.pop("env")))
    with pytest.raises(TrirlError, match="upgrade trirl"):
        D.load(path)


def test_pickled_object_array_is_rejected(tmp_path):
    def mutate(a, m):
        a["obs"] = np.array([list(row) for row in a["obs"]] + [{"evil": 1}], dtype=object)

    path = write_raw(tmp_path / "pickled.npz", mutate)
    with pytest.raises(TrirlError) as excinfo:
        D.load(path)
    assert_error(excinfo, path, "obs")
    assert "object array" in str(excinfo.value)


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt_member(path, member="obs.npy"):
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    data = bytearray(path.read_bytes())
    # Local header: 30 bytes + name + extra field; the member's bytes follow.
    name_len = int.from_bytes(data[info.header_offset + 26: info.header_offset + 28], "little")
    extra_len = int.from_bytes(data[info.header_offset + 28: info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    middle = start + info.compress_size // 2
    for i in range(middle, middle + 8):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("make_bad,field", [
    (lambda p: None, "file"),                                        # missing
    (lambda p: p.mkdir(), "file"),                                   # a directory
    (lambda p: p.write_text("obs,next_obs\n1,2\n"), "file"),         # not an archive
    (lambda p: p.write_bytes(b""), "file"),                          # empty
    (lambda p: np.save(open(p, "wb"), np.zeros((3, 3), np.float32)), "file"),  # a .npy
    (lambda p: (write_raw(p), _truncate(p)), "file"),                # cut short
    (lambda p: (write_raw(p), _corrupt_member(p)), "obs"),           # bad member bytes
], ids=["missing", "directory", "text", "empty", "npy", "truncated", "corrupted"])
def test_unreadable_file_is_rejected(tmp_path, make_bad, field):
    path = tmp_path / "demos.npz"
    make_bad(path)
    with pytest.raises(TrirlError) as excinfo:
        D.load(path)
    assert_error(excinfo, path, field)


def _fake_env(**overrides):
    env = dict(name="toy", observation_size=3, action_size=2, obs_names=tuple(OBS_NAMES),
               dt=0.01)
    env.update(overrides)
    return types.SimpleNamespace(**env)


@pytest.mark.parametrize("overrides,field", [
    ({"name": "other"}, "metadata.env"),
    ({"observation_size": 4, "obs_names": ("px", "py", "vx", "vy")}, "metadata.obs_size"),
    ({"action_size": 3}, "metadata.action_size"),
    ({"obs_names": ("x", "y", "z")}, "metadata.obs_names"),
    ({"dt": 0.02}, "metadata.control_timestep"),
], ids=["name", "obs-size", "action-size", "obs-names", "timestep"])
def test_env_mismatch_is_rejected(tmp_path, overrides, field):
    path = write_raw(tmp_path / "demos.npz")
    D.load(path, env=_fake_env(), require_actions=True)  # the matching env passes
    with pytest.raises(TrirlError) as excinfo:
        D.load(path, env=_fake_env(**overrides))
    assert_error(excinfo, path, field)


# ------------------------------------------------------------------------ atomic save


def test_save_leaves_only_the_file(tmp_path):
    D.save(tmp_path / "demos.npz", good_demos())
    assert os.listdir(tmp_path) == ["demos.npz"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(tmp_path / "demos.npz").st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("error,expected", [(OSError(28, "No space left on device"), TrirlError),
                                            (KeyboardInterrupt(), KeyboardInterrupt)],
                         ids=["disk-full", "interrupted"])
def test_failed_save_leaves_no_partial_file(tmp_path, monkeypatch, error, expected):
    def broken(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")  # something was written already
        raise error

    path = tmp_path / "demos.npz"
    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(expected):
        D.save(path, good_demos())
    assert os.listdir(tmp_path) == []

    # An existing file survives a failed overwrite untouched.
    monkeypatch.undo()
    D.save(path, good_demos())
    before = path.read_bytes()
    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(expected):
        D.save(path, dataclasses.replace(good_demos(), metadata={**good_metadata(), "seed": 99}))
    assert os.listdir(tmp_path) == ["demos.npz"]
    assert path.read_bytes() == before


def test_save_into_missing_directory(tmp_path):
    path = tmp_path / "nowhere" / "demos.npz"
    with pytest.raises(TrirlError) as excinfo:
        D.save(path, good_demos())
    assert_error(excinfo, path, "file")


# -------------------------------------------------------------------------- recording
#
# An MJX compile costs 10-20 s on a CPU, so the file compiles just two programs: one
# rollout (one environment and one policy function serve every recording; the policy's
# params are traced) and the reference's reset+step. The end-to-end random_returns run,
# a third compile, is marked slow.

EPISODES = 3
GAIN = 20.0


def waypoint_policy(params, obs, key):
    """Below the wall tip and left of the wall head for ``gap``, then ``over``, then
    ``goal`` (a P-controller on position), plus ``noise`` times Gaussian noise."""
    x, y = obs[0], obs[1]
    target = jnp.where((x < 0.03) & (y < 0.18), params["gap"],
                       jnp.where(x < 0.1, params["over"], params["goal"]))
    return (jnp.clip(GAIN * (target - obs[:2]), -1.0, 1.0)
            + params["noise"] * jax.random.normal(key, (2,)))


# Through the gap at the top (x = 0, y in 0.13..0.3) to the goal.
REACH = {"gap": jnp.array([-0.1, 0.22]), "over": jnp.array([0.2, 0.22]),
         "goal": jnp.array([0.15, 0.0]), "noise": jnp.array(0.0)}
# Pushes into the bottom-left corner with noise that saturates the bounds: never arrives.
STUCK = {"gap": jnp.array([-0.3, -0.3]), "over": jnp.array([-0.3, -0.3]),
         "goal": jnp.array([-0.3, -0.3]), "noise": jnp.array(0.7)}


def uniform_policy(bounds, obs, key):
    return jax.random.uniform(key, (2,), minval=bounds[0], maxval=bounds[1])


@pytest.fixture(scope="module")
def env():
    return envs.make("point_maze", episode_length=100)


def _blank(spec):
    if jax.dtypes.issubdtype(spec.dtype, jax.dtypes.prng_key):
        return jax.random.key(0)
    return jnp.zeros(spec.shape, spec.dtype)


@pytest.fixture(scope="module")
def reference(env):
    """Plain Python loop of ``env.reset``/``env.step`` calls for episode ``i`` of a
    recording, with the key derivation ``record`` documents; stops at the first done."""
    # Reset and step in one jitted program, one compile instead of two; each call
    # computes both and the loop keeps the one it needs (the other is a few ms).
    # (Nested jits: the reset traced for the blank state's shapes is reused, not retraced.)
    reset, step = jax.jit(env.reset), jax.jit(env.step)
    both = jax.jit(lambda key, state, action: (reset(key), step(state, action)))
    blank = jax.tree.map(_blank, reset.eval_shape(jax.random.key(0)))
    no_action = jnp.zeros(env.action_size, jnp.float32)

    def run(policy, params, key, episode):
        k_reset, k_act = jax.random.split(key)
        reset_key = jax.random.split(k_reset, EPISODES)[episode]
        state = both(reset_key, blank, no_action)[0]
        step_keys = jax.random.split(jax.random.split(k_act, EPISODES)[episode],
                                     env.episode_length)
        rows = {k: [] for k in ("obs", "actions", "next_obs", "reward", "absorbing",
                                "truncated")}
        for t in range(env.episode_length):
            action = np.clip(np.asarray(policy(params, state.obs, step_keys[t])),
                             env.action_low, env.action_high).astype(np.float32)
            rows["obs"].append(np.asarray(state.obs))
            state = both(reset_key, state, jnp.asarray(action))[1]
            rows["actions"].append(action)
            for k in ("next_obs", "reward", "absorbing", "truncated"):
                rows[k].append(np.asarray(getattr(state, k)))
            if bool(state.done):
                break
        return {k: np.stack(v) for k, v in rows.items()}

    return run


def assert_episode_matches(demos, returns, episode, ref):
    lo, hi = demos.episode_starts[episode], demos.episode_ends[episode]
    assert hi - lo == len(ref["obs"])
    for key in ("obs", "actions", "next_obs"):
        np.testing.assert_allclose(getattr(demos, key)[lo:hi], ref[key], atol=1e-5)
    for key in ("absorbing", "truncated"):
        np.testing.assert_array_equal(getattr(demos, key)[lo:hi], ref[key])
    np.testing.assert_allclose(returns[episode], ref["reward"].sum(dtype=np.float64),
                               rtol=1e-4)


def point_maze_reward(env, next_obs, actions):
    """The task reward recomputed from recorded data (float64)."""
    cfg = env.config
    dist = np.linalg.norm(next_obs[:, :2].astype(np.float64) - np.asarray(cfg.goal), axis=1)
    return -dist - cfg.ctrl_cost_weight * np.sum(np.square(actions.astype(np.float64)), axis=1)


@pytest.fixture(scope="module")
def stuck(env):
    return D.record(env, waypoint_policy, jax.random.key(3), EPISODES, params=STUCK)


@pytest.fixture(scope="module")
def reach(env, stuck):  # after `stuck`: reuses its compiled rollout (params are traced)
    return D.record(env, waypoint_policy, jax.random.key(4), EPISODES, params=REACH)


def test_record_truncates_at_episode_length(env, stuck, tmp_path):
    demos, returns = stuck
    n = env.episode_length
    assert demos.num_episodes == EPISODES and demos.num_transitions == EPISODES * n
    np.testing.assert_array_equal(demos.episode_starts, [0, n, 2 * n])
    expected = np.zeros(EPISODES * n, bool)
    expected[[n - 1, 2 * n - 1, 3 * n - 1]] = True
    np.testing.assert_array_equal(demos.truncated, expected)
    assert not demos.absorbing.any()
    assert demos.obs.dtype == demos.next_obs.dtype == demos.actions.dtype == np.float32
    # Recorded actions are the clipped ones the environment applied.
    assert np.abs(demos.actions).max() == 1.0
    rewards = point_maze_reward(env, demos.next_obs, demos.actions)
    np.testing.assert_allclose(returns, np.add.reduceat(rewards, demos.episode_starts),
                               rtol=1e-5)
    meta = demos.metadata
    assert (meta["env"], meta["obs_size"], meta["action_size"]) == ("point_maze", 4, 2)
    assert meta["obs_names"] == list(env.obs_names) and meta["episode_length"] == n
    assert meta["control_timestep"] == env.dt and meta["expert_return_mean"] is None
    # A recording is a valid file for its own environment.
    D.save(tmp_path / "rec.npz", demos)
    D.load(tmp_path / "rec.npz", env=env, require_actions=True)


def test_record_matches_python_loop(stuck, reference):
    demos, returns = stuck
    # Episode 1, not 0: checks the per-episode key derivation and the flattening order.
    assert_episode_matches(demos, returns, 1, reference(waypoint_policy, STUCK,
                                                        jax.random.key(3), 1))


def test_record_cuts_episodes_at_the_absorbing_step(env, reach, reference):
    demos, returns = reach
    lengths = demos.episode_lengths
    assert (lengths < env.episode_length).all(), lengths
    assert demos.absorbing[demos.episode_ends - 1].all() and demos.absorbing.sum() == EPISODES
    assert not demos.truncated.any()
    # The goal is first reached at the last recorded transition, never before it.
    goal, radius = np.asarray(env.config.goal), env.config.goal_radius
    inside = np.linalg.norm(demos.next_obs[:, :2] - goal, axis=1) <= radius
    np.testing.assert_array_equal(inside, demos.absorbing)
    # It went through the gap at the top, above the wall's tip.
    crossing = np.abs(demos.obs[:, 0]) < 0.02
    assert crossing.any() and (demos.obs[crossing, 1] > env.config.wall_end).all()
    rewards = point_maze_reward(env, demos.next_obs, demos.actions)
    np.testing.assert_allclose(returns, np.add.reduceat(rewards, demos.episode_starts),
                               rtol=1e-5)
    assert_episode_matches(demos, returns, 2, reference(waypoint_policy, REACH,
                                                        jax.random.key(4), 2))


def test_random_returns_records_uniform_actions(env, monkeypatch):
    calls = []

    def fake_record(env_, act_fn, key, episodes, *, params=None):
        calls.append((env_, act_fn, key, episodes, params))
        return None, np.array([-1.0, -2.0, -3.0])

    monkeypatch.setattr(D, "record", fake_record)
    key = jax.random.key(5)
    np.testing.assert_array_equal(D.random_returns(env, key, 3), [-1.0, -2.0, -3.0])
    (env_, act_fn, key_, episodes, params), = calls
    assert env_ is env and key_ is key and episodes == 3
    obs = jnp.zeros(env.observation_size)
    actions = np.asarray(jax.vmap(lambda k: act_fn(params, obs, k))(
        jax.random.split(jax.random.key(0), 4000)))
    assert actions.shape == (4000, env.action_size)
    assert (actions >= env.action_low).all() and (actions <= env.action_high).all()
    for column, low, high in zip(actions.T, env.action_low, env.action_high):
        # Uniform on [low, high]: mean in the middle, quartiles at a quarter and 3/4.
        np.testing.assert_allclose(np.quantile(column, [0.25, 0.5, 0.75]),
                                   low + (high - low) * np.array([0.25, 0.5, 0.75]),
                                   atol=0.05 * (high - low))


@pytest.mark.slow
def test_random_returns_end_to_end(env, reference):
    first = D.random_returns(env, jax.random.key(5), EPISODES)
    again = D.random_returns(env, jax.random.key(5), EPISODES)
    assert first.shape == (EPISODES,) and first.dtype == np.float64
    np.testing.assert_array_equal(first, again)
    assert len(set(first.tolist())) == EPISODES
    bounds = (env.action_low, env.action_high)
    ref = reference(uniform_policy, bounds, jax.random.key(5), 0)
    assert len(ref["obs"]) == env.episode_length  # random actions never reach the goal
    np.testing.assert_allclose(first[0], ref["reward"].sum(dtype=np.float64), rtol=1e-4)


def test_record_rejects_wrong_action_shape(env):
    with pytest.raises(ValueError, match="shape"):
        D.record(env, lambda p, obs, k: obs, jax.random.key(0), 1)
