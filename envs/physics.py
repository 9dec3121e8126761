"""The physics quantities environments read, whatever engine stepped them.

Its own module so that both backends (MJX in ``trirl.envs.base``, MuJoCo C in
``trirl.envs.c_backend``) build it without importing each other.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import jax
import numpy as np
from flax import struct

if TYPE_CHECKING:
    import mujoco


@struct.dataclass
class PhysicsArrays:
    """The named physics quantities environments may read (world frame, SI units).

    Attributes:
      qpos: generalized positions ``(nq,)``.
      qvel: generalized velocities ``(nv,)``.
      xpos: body positions ``(nbody, 3)``.
      xquat: body orientations as quaternions ``(nbody, 4)``, w first.
      xipos: body centre-of-mass positions ``(nbody, 3)``.
      cinert: body inertias in the centre-of-mass frame ``(nbody, 10)`` (MuJoCo's
        ``cinert`` layout).
      cvel: body velocities at the centre of mass, rotation first ``(nbody, 6)``.
      qfrc_actuator: actuator forces in joint space ``(nv,)``.
      cfrc_ext: external (contact) wrenches per body at the centre of mass, rotation
        first ``(nbody, 6)``, as ``mj_rnePostConstraint`` computes them. Computed only
        for envs that declare ``uses_contact_forces`` (it costs a pass over all
        bodies); zeros otherwise.
      time: simulation time ``()``.
    """

    qpos: jax.Array
    qvel: jax.Array
    xpos: jax.Array
    xquat: jax.Array
    xipos: jax.Array
    cinert: jax.Array
    cvel: jax.Array
    qfrc_actuator: jax.Array
    cfrc_ext: jax.Array
    time: jax.Array

    @classmethod
    def from_mjdata(cls, data: "mujoco.MjData") -> "PhysicsArrays":
        """Copies of the same quantities from a MuJoCo C ``MjData`` (float64 NumPy), so
        env definitions can be evaluated on C physics (tests, a C backend)."""
        return cls(**{f.name: np.array(getattr(data, f.name)) for f in dataclasses.fields(cls)})
