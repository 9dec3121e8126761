"""Humanoid (Gymnasium ``Humanoid-v5``): a 3D biped on a free joint runs forward.

Reward ``1.25 x_com_velocity + 5 (healthy) - 0.1 |a|^2 - min(5e-7 |cfrc_ext|^2, 10)``;
the episode ends (absorbing) when the torso leaves 1 m < z < 2 m. The observation is
v5's 348 entries: qpos[2:], qvel, and per body (world excluded) ``cinert``, ``cvel``,
then ``qfrc_actuator[6:]`` and ``cfrc_ext``.

Deviation: v5's model uses MuJoCo's PGS solver, which MJX does not implement; trirl
uses the Newton solver (same constraint problem, different iterative method; see
``docs/envs.md`` for the measured per-step difference).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import mujoco

from trirl.envs.ant import WRENCH
from trirl.envs.mujoco_v5 import (LocomotionConfig, LocomotionEnv, body_names, flat_names,
                                  joint_coordinate_names, mass_weighted_com_x, open_interval)

CINERT = ("ixx", "iyy", "izz", "ixy", "ixz", "iyz", "mx", "my", "mz", "m")
CVEL = ("wx", "wy", "wz", "vx", "vy", "vz")


@dataclasses.dataclass(frozen=True)
class HumanoidConfig(LocomotionConfig):
    """``Humanoid-v5`` defaults (dt = 5 x 0.003 s). The z range is open."""

    frame_skip: int = 5
    reset_noise_scale: float = 1e-2
    forward_reward_weight: float = 1.25
    ctrl_cost_weight: float = 0.1
    contact_cost_weight: float = 5e-7
    contact_cost_max: float = 10.0
    healthy_reward: float = 5.0
    terminate_when_unhealthy: bool = True
    healthy_z_range: tuple[float, float] = (1.0, 2.0)


class Humanoid(LocomotionEnv):
    name = "humanoid"
    description = "3D humanoid runs forward (Gymnasium Humanoid-v5, Newton solver)"
    config_class = HumanoidConfig
    asset = "humanoid.xml"
    uses_contact_forces = True
    obs_from_states = False   # the observation holds contact forces
    # obs[0] torso height, obs[22] forward velocity of the root. Base features (paper
    # App. B): floating-base velocity, torso height, action cost.
    feature_terms = (("x_velocity", "next_obs", 22), ("torso_height", "next_obs", 0),
                     ("action_sq_sum", "action_sq_sum"))

    def _finish_model(self, mj_model):
        mj_model = super()._finish_model(mj_model)
        mj_model.opt.solver = mujoco.mjtSolver.mjSOL_NEWTON   # MJX has no PGS
        return mj_model

    def _observation_names(self):
        bodies = body_names(self.mj_model)[1:]
        dofs = joint_coordinate_names(self.mj_model, "qvel")[6:]
        return (tuple(joint_coordinate_names(self.mj_model, "qpos")[2:])
                + tuple(joint_coordinate_names(self.mj_model, "qvel"))
                + flat_names("cinert", bodies, CINERT) + flat_names("cvel", bodies, CVEL)
                + tuple(f"qfrc_actuator:{d}" for d in dofs)
                + flat_names("cfrc_ext", bodies, WRENCH))

    def _observe(self, arrays):
        return jnp.concatenate([arrays.qpos[2:], arrays.qvel, arrays.cinert[1:].reshape(-1),
                                arrays.cvel[1:].reshape(-1), arrays.qfrc_actuator[6:],
                                arrays.cfrc_ext[1:].reshape(-1)])

    def _forward_velocity(self, before, after):
        mass = self.mj_model.body_mass
        return (mass_weighted_com_x(mass, after) - mass_weighted_com_x(mass, before)) / self.dt

    def _is_healthy(self, arrays):
        return open_interval(arrays.qpos[2], self.config.healthy_z_range)

    def _costs(self, after, action):
        cfg = self.config
        contact = cfg.contact_cost_weight * jnp.sum(jnp.square(after.cfrc_ext))
        return {"contact": jnp.minimum(contact, cfg.contact_cost_max)}
