"""Tests for trirl.sharding: the env batch sharded over several local devices.

JAX fixes its device count when it initialises, and this pytest process has already
imported it, so every test runs a worker script in a subprocess: one with
``XLA_FLAGS=--xla_force_host_platform_device_count=2`` (two CPU devices) and one without
(one device, where sharding is a no-op: exactly what single-device users run). The two
train the same tiny Point Maze expert (MJX: the C backend is never sharded, see
``trirl.sharding``) with the same seed through ``trirl.expert.train_expert``, side by
side, and must agree: same metrics and final parameters.

Tolerance: both draw identical random numbers (partitionable threefry) and step
identical per-env physics; only reductions over the env batch (observation statistics,
loss and metric means) may sum their two per-device halves in another order, i.e.
differ in the last float32 bit, and two iterations cannot grow that beyond ~1e-6
relative. So float32 ``allclose(rtol=1e-5, atol=1e-6)``, not bit equality.

Cost: MJX compilation (init ~20 s, iteration ~35 s each on a busy 2-core CPU) in two
workers at once; the TRIRL ``learn`` counterpart compiles a larger program and is
``slow``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

DEVICE_FLAG = "--xla_force_host_platform_device_count"
FAST_COMPILE = ["--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true"]
PPO_TINY = dict(num_envs=4, rollout_length=4, minibatch_size=8, num_epochs=1, hidden=(8,))
ENV_TINY = dict(episode_length=6)
STEPS = 2 * 4 * 4  # 2 iterations

# The worker: trains a tiny run in OUT/run on two devices through the real entry point
# (train_expert / learn.train), capturing the initial state, each iteration's metrics,
# the final state and the iterate function that train_loop received; then replays the
# same two iterations from the same initial state on ONE device (plain jax.jit, what a
# single-device user runs) and checks resume (restore checkpoint 1, iterate once).
# Writes sharded.npz / reference.npz and prints one REPORT line of JSON.
WORKER = textwrap.dedent("""
    import json, sys
    from pathlib import Path

    import jax
    import numpy as np

    from trirl import expert, learn, runner, runs, sharding
    from trirl.errors import TrirlError

    out, kind = Path(sys.argv[1]), sys.argv[2]
    ppo_tiny, env_tiny, steps = json.loads(sys.argv[3]), json.loads(sys.argv[4]), int(sys.argv[5])
    run_dir = out / "run"
    got = {"metrics": []}
    real_loop = runner.train_loop

    def spy(run_dir, init, iterate, **kwargs):
        def init_spy():
            got["init"] = init()
            return got["init"]

        def iterate_spy(state):
            state, metrics = iterate(state)
            got["metrics"].append(jax.device_get(metrics))
            return state, metrics

        got["iterate"] = iterate
        got["final"] = real_loop(run_dir, init_spy, iterate_spy, **kwargs)
        return got["final"]

    runs.train_loop = runner.train_loop = spy
    common = dict(run_dir=run_dir, steps=steps, seeds=2, seed=3, env_overrides=env_tiny,
                  checkpoint_every=1, show_progress=False, backend="mjx")
    if kind == "expert":
        expert.train_expert("point_maze", ppo_overrides=ppo_tiny, **common)
        reference = jax.jit(jax.vmap(runs.open_run(run_dir).ppo.iteration))
        ppo_of = lambda state: state
    else:
        sets = {"ppo": ppo_tiny, "disc": {"hidden": (8,), "num_steps": 2, "minibatch_size": 8},
                "fit": {"hidden": (8,), "num_steps": 2, "minibatch_size": 8},
                "": {"capacity": 2}}
        learn.train("point_maze", settings=sets, **common)
        session = learn.open_session(run_dir)  # default placement: one device
        reference = lambda state: session.iterate(state)[:2]
        ppo_of = lambda state: state.ppo

    def save(name, state, metrics):
        arrays = {f"leaf{i:04d}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(state))}
        for i, m in enumerate(metrics):
            arrays.update({f"it{i + 1}_{k}": np.asarray(v) for k, v in m.items()})
        np.savez(out / name, **arrays)

    # One device, same initial state, same two iterations.
    device0 = jax.local_devices()[0]
    state = jax.device_put(jax.device_get(got["init"]), device0)
    ref_metrics = []
    for _ in range(2):
        state, metrics = reference(state)
        ref_metrics.append(jax.device_get(metrics))
    save("sharded.npz", got["final"], got["metrics"])
    save("reference.npz", state, ref_metrics)

    final = ppo_of(got["final"])
    obs = final.env_state.obs
    report = {
        "local_devices": jax.local_device_count(),
        "config_devices": json.loads((run_dir / "config.json").read_text())["devices"],
        "obs_shape": list(obs.shape), "obs_spec": str(obs.sharding.spec),
        "obs_devices": len(obs.sharding.device_set),
        "obs_shard_shapes": sorted({tuple(s.data.shape) for s in obs.addressable_shards}),
        "env_leaves_sharded": all(not x.sharding.is_fully_replicated
                                  for x in jax.tree.leaves(final.env_state) if x.size),
        "replicated_elsewhere": all(
            x.sharding.is_fully_replicated for x in jax.tree.leaves(
                (final.actor, final.critic, final.opt_state, final.obs_stats, final.key)))
        and all(x.sharding.is_fully_replicated for x in jax.tree.leaves(got["final"])
                if x.ndim < 2 or x.shape[1] != obs.shape[1]),
        "reference_devices": len(jax.tree.leaves(state)[0].sharding.device_set),
    }
    # Resume: checkpoint 1 is restored on one device (uncommitted), the first call of
    # the same iterate moves it onto the mesh; the result is iteration 2, bit for bit.
    restored, _ = runner.load_state(run_dir, got["init"], step=1)
    resumed = got["iterate"](restored)[0]
    report["resume_restored_devices"] = len(jax.tree.leaves(restored)[0].sharding.device_set)
    report["resume_sharded"] = str(ppo_of(resumed).env_state.obs.sharding.spec)
    report["resume_equal"] = all(
        np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
        for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(got["final"])))
    if kind == "expert":
        try:  # num_envs not divisible by 2: one-line error before a run directory exists
            expert.train_expert("point_maze", run_dir=out / "odd", steps=12,
                                show_progress=False, backend="mjx", env_overrides=env_tiny,
                                ppo_overrides={**ppo_tiny, "num_envs": 3, "minibatch_size": 4})
        except TrirlError as exc:
            report["odd_error"] = str(exc)
        report["odd_dir_exists"] = (out / "odd").exists()
        c = sharding.for_training("c", 4)
        report["c_devices"], report["c_note"] = c.devices, c.note
    print("REPORT " + json.dumps(report))
""")


def _worker(tmp_path, kind: str, devices: int = 2, timeout: float = 900) -> tuple[dict, object]:
    """Run the worker in a fresh process that sees ``devices`` CPU devices."""
    out = tmp_path / kind
    out.mkdir()
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(DEVICE_FLAG)]
    # Both programs are compiled with the same flags; LLVM's optimisation level 0 only
    # makes compiling the MJX programs cheaper (about a third less here).
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": " ".join(flags + [f"{DEVICE_FLAG}={devices}"] + FAST_COMPILE)}
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, str(out), kind, json.dumps(PPO_TINY), json.dumps(ENV_TINY),
         str(STEPS)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-4000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT ")]
    assert lines, text[-4000:]
    return json.loads(lines[-1][len("REPORT "):]), out


def _assert_same_training(out):
    """Two devices vs one: every state leaf and every metric of both iterations."""
    sharded, reference = np.load(out / "sharded.npz"), np.load(out / "reference.npz")
    assert sorted(sharded.files) == sorted(reference.files)
    assert any(name.startswith("it2_") for name in sharded.files)
    exact = 0
    for name in sharded.files:
        x, y = sharded[name], reference[name]
        assert x.shape == y.shape and x.dtype == y.dtype, name
        if np.issubdtype(x.dtype, np.floating):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=name)
        else:  # integer/bool leaves (PRNG keys, counters, C state bits, flags): identical
            np.testing.assert_array_equal(x, y, err_msg=name)
        exact += bool(np.array_equal(x, y, equal_nan=True))
    return exact, len(sharded.files)


def test_expert_two_devices_matches_one(tmp_path):
    report, out = _worker(tmp_path, "expert")
    assert report["local_devices"] == 2 and report["config_devices"] == 2
    # The env batch (axis 1, after the 2 seeds) is split over the two devices; parameters,
    # optimiser state, normaliser and keys are replicated.
    assert report["obs_shape"] == [2, 4, 4]
    assert report["obs_spec"] == "P(None, 'batch')"
    assert report["obs_devices"] == 2 and report["obs_shard_shapes"] == [[2, 2, 4]]
    assert report["env_leaves_sharded"] and report["replicated_elsewhere"]
    assert report["reference_devices"] == 1
    exact, total = _assert_same_training(out)
    print(f"two devices vs one: {exact}/{total} arrays bit-identical, the rest allclose")
    # Resume: a checkpoint restored on one device continues on the mesh, exactly.
    assert report["resume_restored_devices"] == 1
    assert report["resume_sharded"] == "P(None, 'batch')" and report["resume_equal"]
    # num_envs must divide by the device count: a one-line error with the fix, no run dir.
    assert "ppo.num_envs=3 is not divisible by the 2 local devices" in report["odd_error"]
    assert "--set ppo.num_envs=4" in report["odd_error"] and "\n" not in report["odd_error"]
    assert not report["odd_dir_exists"]
    # The C backend is not sharded, and says so.
    assert report["c_devices"] == 1 and "stays on one device" in report["c_note"]


@pytest.mark.slow  # compiles TRIRL's iteration twice (sharded and not): minutes
def test_learn_two_devices_matches_one(tmp_path):
    report, out = _worker(tmp_path, "learn")
    assert report["config_devices"] == 2
    assert report["obs_spec"] == "P(None, 'batch')" and report["obs_shard_shapes"] == [[2, 2, 4]]
    assert report["env_leaves_sharded"] and report["replicated_elsewhere"]
    exact, total = _assert_same_training(out)
    print(f"two devices vs one: {exact}/{total} arrays bit-identical, the rest allclose")
    assert report["resume_restored_devices"] == 1 and report["resume_equal"]
