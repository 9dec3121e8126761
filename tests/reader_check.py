"""The reader-without-JAX check shared by the reward-file tests (imported by test modules;
pytest puts tests/ on sys.path)."""

import os
import subprocess
import sys

HEAVY = ("jax", "jaxlib", "mujoco", "flax", "optax")


def assert_reader_runs_without_jax(path, call: str) -> None:
    """In a fresh interpreter, ``trirl.rewards.load(path)`` and ``call`` (an expression
    on the loaded reward ``r`` that must give 3 values) run, and none of the heavy
    packages was imported on the way: the reader needs numpy and safetensors alone."""
    code = ("import sys, numpy as np; from trirl import rewards; "
            f"r = rewards.load({str(path)!r}); v = {call}; assert v.shape == (3,); "
            f"bad = [m for m in sys.modules if m.split('.')[0] in {HEAVY!r}]; "
            "assert not bad, bad; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": ""})
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
