"""Ant (Gymnasium ``Ant-v5``) and ``ant_disabled`` (paper Sec. 5.1, after Fu et al. 2018).

- ``ant``: a quadruped on a free joint runs forward. Reward ``x_velocity + 1 (healthy)
  - 0.5 |a|^2 - 5e-4 |clip(cfrc_ext, -1, 1)|^2``; the episode ends (absorbing) when the
  torso leaves 0.2 m <= z <= 1 m or the state is not finite. The observation includes
  the clipped contact wrenches of the 13 bodies (``cfrc_ext``), computed with MJX's
  ``rne_postconstraint`` as v5 computes them with ``mj_rnePostConstraint``.
- ``ant_disabled``: the two front legs (``front_left_leg``, ``front_right_leg``) are
  shortened (hip links 0.2 -> 0.18, ankle links 0.4 -> 0.35) and their four actuators
  disabled (gear 0: actions on them have no effect, and cost nothing). Everything else
  is ``ant``.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

import jax.numpy as jnp
import mujoco
import numpy as np

from trirl.envs.mujoco_v5 import (LocomotionConfig, LocomotionEnv, body_names, flat_names,
                                  joint_coordinate_names, read_asset)

WRENCH = ("tx", "ty", "tz", "fx", "fy", "fz")   # cfrc_ext rows: torque first


@dataclasses.dataclass(frozen=True)
class AntConfig(LocomotionConfig):
    """``Ant-v5`` defaults (dt = 5 x 0.01 s). The z range is closed, as in v5."""

    frame_skip: int = 5
    reset_noise_scale: float = 0.1
    forward_reward_weight: float = 1.0
    ctrl_cost_weight: float = 0.5
    contact_cost_weight: float = 5e-4
    healthy_reward: float = 1.0
    terminate_when_unhealthy: bool = True
    healthy_z_range: tuple[float, float] = (0.2, 1.0)
    contact_force_range: tuple[float, float] = (-1.0, 1.0)


class Ant(LocomotionEnv):
    name = "ant"
    description = "quadruped runs forward (Gymnasium Ant-v5)"
    config_class = AntConfig
    asset = "ant.xml"
    qvel_noise = "normal"
    uses_contact_forces = True
    obs_from_states = False   # the observation holds contact forces
    # obs = qpos[2:] (13) + qvel (14) + clipped cfrc_ext[1:] (78): obs[0] torso height,
    # obs[13] forward velocity. Base features (paper App. B; the authors' release):
    # velocity, action cost, torso height.
    feature_terms = (("x_velocity", "next_obs", 13), ("action_sq_sum", "action_sq_sum"),
                     ("torso_height", "next_obs", 0))
    main_body = 1   # the torso: v5 tracks its xpos for the forward velocity

    def _observation_names(self):
        return (tuple(joint_coordinate_names(self.mj_model, "qpos")[2:])
                + tuple(joint_coordinate_names(self.mj_model, "qvel"))
                + flat_names("cfrc_ext", body_names(self.mj_model)[1:], WRENCH))

    def _contact_forces(self, arrays):
        return jnp.clip(arrays.cfrc_ext, *self.config.contact_force_range)

    def _observe(self, arrays):
        return jnp.concatenate([arrays.qpos[2:], arrays.qvel,
                                self._contact_forces(arrays)[1:].reshape(-1)])

    def _forward_velocity(self, before, after):
        b = self.main_body
        return (after.xpos[b, 0] - before.xpos[b, 0]) / self.dt

    def _is_healthy(self, arrays):
        lo, hi = self.config.healthy_z_range
        finite = jnp.all(jnp.isfinite(arrays.qpos)) & jnp.all(jnp.isfinite(arrays.qvel))
        return finite & (arrays.qpos[2] >= lo) & (arrays.qpos[2] <= hi)

    def _costs(self, after, action):
        contact = self.config.contact_cost_weight * jnp.sum(
            jnp.square(self._contact_forces(after)))
        return {"contact": contact}


# ------------------------------------------------------------------------ Ant Disabled

DISABLED_LEGS = ("aux_1", "aux_2")            # front_left_leg, front_right_leg
DISABLED_JOINTS = ("hip_1", "ankle_1", "hip_2", "ankle_2")


@dataclasses.dataclass(frozen=True)
class AntDisabledConfig(AntConfig):
    """Attributes: hip_length, ankle_length: the disabled legs' link lengths (m; the
    intact legs have 0.2 and 0.4, measured along each link's diagonal axis)."""

    hip_length: float = 0.18
    ankle_length: float = 0.35


def _scale(text: str, factor: float) -> str:
    return " ".join(repr(float(v) * factor) for v in text.split())


def shorten_front_legs(xml: str, hip: float, ankle: float) -> str:
    """The Ant MJCF with both hip segments of the disabled legs scaled to ``hip`` and
    their ankle segment to ``ankle`` (geoms and the child bodies' offsets)."""
    root = ET.fromstring(xml)
    for aux_name in DISABLED_LEGS:
        aux = root.find(f".//body[@name='{aux_name}']")
        leg = next(b for b in root.iter("body") if aux in list(b))   # the leg's root body
        foot = aux.find("body")
        # hip segment 1 (leg body -> aux), hip segment 2 (aux -> foot), ankle (foot geom)
        for geom, body, factor in ((leg.find("geom"), aux, hip / 0.2),
                                   (aux.find("geom"), foot, hip / 0.2),
                                   (foot.find("geom"), None, ankle / 0.4)):
            geom.set("fromto", _scale(geom.get("fromto"), factor))
            if body is not None:
                body.set("pos", _scale(body.get("pos"), factor))
    return ET.tostring(root, encoding="unicode")


class AntDisabled(Ant):
    name = "ant_disabled"
    description = "ant with shortened, unactuated front legs (transfer task)"
    config_class = AntDisabledConfig

    def _mjcf(self) -> str:
        return shorten_front_legs(read_asset(self.asset), self.config.hip_length,
                                  self.config.ankle_length)

    def _finish_model(self, mj_model):
        mj_model = super()._finish_model(mj_model)
        mj_model.actuator_gear[self.disabled_actuators(mj_model), 0] = 0.0
        return mj_model

    @staticmethod
    def disabled_actuators(mj_model) -> np.ndarray:
        """Indices of the actuators driving ``DISABLED_JOINTS``."""
        joint_ids = [mujoco.mj_name2id(mj_model, mujoco.mjtObj.mjOBJ_JOINT, j)
                     for j in DISABLED_JOINTS]
        return np.flatnonzero(np.isin(mj_model.actuator_trnid[:, 0], joint_ids))

    def _ctrl_cost(self, action):
        # Disabled actuators do nothing, so commanding them costs nothing either.
        mask = np.ones(self.action_size, np.float32)
        mask[self.disabled_actuators(self.mj_model)] = 0.0
        return super()._ctrl_cost(action * mask)
