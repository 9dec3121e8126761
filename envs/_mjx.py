"""Quiet import of MuJoCo MJX.

``mujoco.mjx`` (MuJoCo >= 3.3) tries to import the optional NVIDIA Warp backend and
prints "Failed to import warp" to *stdout* when it is absent, which would pollute the
CLI's output and any JSON a user pipes from it. We only use the JAX implementation,
so that message is swallowed here, once, and every module imports ``mjx`` from here.
"""

import contextlib
import io

import mujoco

with contextlib.redirect_stdout(io.StringIO()):
    from mujoco import mjx  # noqa: E402

__all__ = ["mujoco", "mjx"]
