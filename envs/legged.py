"""Shared machinery of the robot envs (Unitree G1, Go2): MJCF preparation for MJX and
MuJoCo C, position control around a home pose, and base-frame proprioception.

Robot models come from the local asset cache (``trirl assets fetch``,
:mod:`trirl.envs.robot_assets`); they are prepared once per env construction:

- visual meshes are removed (they carry no mass here: every body has an explicit
  ``<inertial>``, and the meshes only slow loading and ``mjx.put_model``);
- every geom stops colliding (``contype = conaffinity = 0``) and contacts come only from
  explicit feet-floor ``<pair>`` s, the MJX-friendly setting MuJoCo Playground uses: a
  handful of sphere/capsule-plane pairs instead of all geom pairs;
- actuators are PD position servos (MuJoCo ``<position>``: the physics applies
  ``kp (target - q) - kv qdot`` at every physics step, not once per control step);
  the action is a target offset from the home pose, ``target = home + scale * a``.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

import jax
import jax.numpy as jnp
import numpy as np

from trirl.envs._mjx import mujoco
from trirl.envs.base import Env, EnvConfig, PhysicsArrays


@dataclasses.dataclass(frozen=True)
class LeggedConfig(EnvConfig):
    """Settings shared by the robot envs.

    Attributes:
      target_speed: forward speed (m/s) the task reward asks for.
      action_scale: radians of target offset per unit action.
      reset_noise_scale: half-width (rad) of the uniform noise on joint positions at reset.
      min_base_height: the episode ends (absorbing) when the floating base drops below.
      min_upright: ... or when the z component of its up axis drops below (cos of tilt).
      solver_iterations, solver_ls_iterations: constraint solver caps (MJX cost).
    """

    episode_length: int = 1000
    frame_skip: int = 5
    reset_noise_scale: float = 0.05
    target_speed: float = 1.0
    action_scale: float = 0.5
    min_base_height: float = 0.5
    min_upright: float = 0.5
    solver_iterations: int = 4
    solver_ls_iterations: int = 8


# -- MJCF preparation -------------------------------------------------------------------

def strip_visuals(root: ET.Element) -> None:
    """Remove mesh geoms and the mesh/texture/material assets (physics needs none)."""
    for parent in root.iter():
        for geom in [g for g in parent if g.tag == "geom" and _is_mesh(g, root)]:
            parent.remove(geom)
    for asset in root.findall("asset"):
        for child in [c for c in asset if c.tag in ("mesh", "texture", "material")]:
            asset.remove(child)
    for geom in root.iter("geom"):
        geom.attrib.pop("material", None)
        geom.attrib.pop("mesh", None)


def _is_mesh(geom: ET.Element, root: ET.Element) -> bool:
    if geom.get("type") == "mesh" or geom.get("mesh") is not None:
        return True
    cls = geom.get("class")
    if cls is None:
        return False
    for default in root.iter("default"):
        if default.get("class") == cls:
            inner = default.find("geom")
            return inner is not None and inner.get("type") == "mesh"
    return False


def feet_floor_contacts(root: ET.Element, feet: list[str], friction: str = "1 1",
                        solref: str = "0.008 1", condim: int = 3) -> None:
    """Make every geom non-colliding, add a floor plane and one contact pair per foot."""
    for geom in root.iter("geom"):
        geom.set("contype", "0")
        geom.set("conaffinity", "0")
    world = root.find("worldbody")
    world.insert(0, ET.Element("geom", name="floor", type="plane", size="0 0 0.01",
                               contype="0", conaffinity="0"))
    contact = root.find("contact")
    if contact is None:
        contact = ET.SubElement(root, "contact")
    for child in list(contact):
        contact.remove(child)
    for foot in feet:
        ET.SubElement(contact, "pair", name=f"{foot}_floor", geom1=foot, geom2="floor",
                      solref=solref, friction=friction, condim=str(condim))


def hinge_names(root: ET.Element) -> list[str]:
    """Hinge/slide joint names in document order (= qpos order after the free joint)."""
    names = []
    for joint in root.find("worldbody").iter("joint"):
        if joint.get("type", "hinge") in ("hinge", "slide"):
            names.append(joint.get("name"))
    return names


# -- base-frame quantities (jnp on JAX or NumPy inputs) ---------------------------------

def rotate_inverse(quat: jax.Array, vec: jax.Array) -> jax.Array:
    """``vec`` (world frame) expressed in the frame of unit quaternion ``quat`` (w first)."""
    w, u = quat[0], -quat[1:]                       # the conjugate rotates world -> body
    t = 2.0 * jnp.cross(u, vec)
    return vec + w * t + jnp.cross(u, t)


def roll_pitch(quat: jax.Array) -> jax.Array:
    """Roll and pitch (rad) of a unit quaternion (w first), ZYX Euler convention."""
    w, x, y, z = quat[0], quat[1], quat[2], quat[3]
    roll = jnp.arctan2(2.0 * (w * x + y * z), 1.0 - 2.0 * (x * x + y * y))
    pitch = jnp.arcsin(jnp.clip(2.0 * (w * y - z * x), -1.0, 1.0))
    return jnp.stack([roll, pitch])


def upright(quat: jax.Array) -> jax.Array:
    """z component of the body's up axis in the world frame (1 upright, -1 upside down)."""
    x, y = quat[1], quat[2]
    return 1.0 - 2.0 * (x * x + y * y)


# -- the env base -------------------------------------------------------------------------

class LeggedEnv(Env):
    """A floating-base robot on PD position servos around ``home`` (the model's first
    keyframe). Actions live in [-1, 1]. Subclasses name their observation layout with
    ``_observation_names``."""

    home_qpos: np.ndarray   # (nq,) the reset pose

    def __init__(self, config=None, backend: str = "auto"):
        super().__init__(config, backend)
        self.home_qpos = np.asarray(self.mj_model.key_qpos[0], np.float32)
        self.action_low = -np.ones(self.action_size, np.float32)
        self.action_high = np.ones(self.action_size, np.float32)
        # qpos address of the joint each actuator drives (targets are per actuator).
        joints = self.mj_model.actuator_trnid[:, 0]
        self._actuator_qpos = np.asarray(self.mj_model.jnt_qposadr[joints])
        self._actuator_qvel = np.asarray(self.mj_model.jnt_dofadr[joints])

    def _finish_model(self, mj_model):
        mj_model.opt.iterations = self.config.solver_iterations
        mj_model.opt.ls_iterations = self.config.solver_ls_iterations
        return mj_model

    def _ctrl(self, action):
        return self.home_qpos[self._actuator_qpos] + self.config.action_scale * action

    def _initial_qpos_qvel(self, key):
        n = self.config.reset_noise_scale
        noise = jax.random.uniform(key, (len(self._actuator_qpos),), minval=-n, maxval=n)
        qpos = jnp.asarray(self.home_qpos).at[self._actuator_qpos].add(noise)
        return qpos, jnp.zeros(self.mj_model.nv)

    def joint_names(self) -> list[str]:
        """Names of the actuated joints, in action order."""
        return [mujoco.mj_id2name(self.mj_model, mujoco.mjtObj.mjOBJ_JOINT, int(j))
                for j in self.mj_model.actuator_trnid[:, 0]]

    # proprioception shared by G1 and Go2
    def _base_velocities(self, arrays: PhysicsArrays) -> tuple[jax.Array, jax.Array]:
        """Linear and angular velocity of the floating base in its own frame (MuJoCo's
        free-joint qvel: linear part in the world frame, angular part in the body's)."""
        quat = arrays.qpos[3:7]
        return rotate_inverse(quat, arrays.qvel[0:3]), arrays.qvel[3:6]

    def _joints(self, arrays: PhysicsArrays) -> tuple[jax.Array, jax.Array]:
        """Actuated joint positions relative to home, and their velocities."""
        q = arrays.qpos[self._actuator_qpos] - self.home_qpos[self._actuator_qpos]
        return q, arrays.qvel[self._actuator_qvel]

    def _terminated(self, arrays):
        finite = jnp.all(jnp.isfinite(arrays.qpos)) & jnp.all(jnp.isfinite(arrays.qvel))
        fallen = ((arrays.qpos[2] < self.config.min_base_height)
                  | (upright(arrays.qpos[3:7]) < self.config.min_upright))
        return ~finite | fallen
