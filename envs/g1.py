"""Unitree G1 humanoid: ``g1_walk`` and ``g1_run`` (paper Sec. 5, App. C.2).

The robot is MuJoCo Menagerie's ``unitree_g1/g1_mjx.xml`` (29 actuated joints) from the
asset cache (``trirl assets fetch g1``), prepared as :mod:`trirl.envs.legged` describes.
The paper's G1 has 23 actuated joints: the six wrist joints (roll, pitch, yaw of each
hand) are locked (removed from the model, so each hand is welded to its forearm) and
their actuators dropped. Control: PD position servos (kp, kv from the model), 0.004 s
physics, 5 substeps: 50 Hz; action = target offset from the home pose.

Observation (``history + 1`` frames of 54 proprioceptive values, newest first): pelvis
linear velocity (3) and angular velocity (3) in the pelvis frame, roll and pitch (2),
joint positions relative to home (23) and joint velocities (23). Two deviations from the
paper's 256-dim observation, on purpose: (i) no previous action, so that motion-capture
states (which have no actions) give the same observations as the env -- the history
stack carries the same information about motion; (ii) the pelvis linear velocity (what a
state estimator provides) is observed, so a state-only discriminator can see speed.
Observations follow from states alone: ``Env.observations_of`` replays motion capture.

Task reward (for evaluation only; TRIRL learns from demonstrations): the paper's Table 8
footnote, per step ``exp(-|v - v_E|^2)`` with ``v`` the torso's horizontal velocity and
``v_E = (target_speed, 0)`` the demonstrations' upper-body velocity, so perfect
imitation scores 1 per step (1000 per episode). ``g1_walk`` and ``g1_run`` are the same
robot; the tasks differ by demonstrations and by the default ``target_speed``.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

import jax.numpy as jnp
import numpy as np

from trirl.envs import legged
from trirl.envs._mjx import mujoco
from trirl.envs.base import PhysicsArrays
from trirl.envs.robot_assets import robot_dir

WRISTS = tuple(f"{side}_wrist_{axis}_joint" for side in ("left", "right")
               for axis in ("roll", "pitch", "yaw"))
FEET = tuple(f"{side}_foot{i}_collision" for side in ("left", "right") for i in (1, 2, 3))
PROPRIO = 54


@dataclasses.dataclass(frozen=True)
class G1Config(legged.LeggedConfig):
    """Attributes: history: past proprioceptive frames stacked after the current one."""

    target_speed: float = 1.0
    history: int = 3
    min_base_height: float = 0.5


@dataclasses.dataclass(frozen=True)
class G1RunConfig(G1Config):
    target_speed: float = 2.5


def g1_mjcf() -> str:
    """The prepared G1 model (wrists locked, feet-floor contacts, no meshes) as MJCF."""
    folder = robot_dir("unitree_g1")
    root = ET.fromstring((folder / "g1_mjx.xml").read_text())
    all_joints = legged.hinge_names(root)
    home = _home_keyframe((folder / "scene_mjx.xml").read_text())
    for parent in root.iter():
        for joint in [j for j in parent if j.tag == "joint" and j.get("name") in WRISTS]:
            parent.remove(joint)
    actuator = root.find("actuator")
    for act in [a for a in actuator if a.get("joint") in WRISTS]:
        actuator.remove(act)
    root.remove(root.find("sensor"))
    legged.strip_visuals(root)
    legged.feet_floor_contacts(root, list(FEET))
    kept = [i for i, name in enumerate(all_joints) if name not in WRISTS]
    qpos = np.concatenate([home[:7], home[7:][kept]])
    keyframe = ET.SubElement(root, "keyframe")
    ET.SubElement(keyframe, "key", name="home", qpos=" ".join(repr(float(v)) for v in qpos))
    return ET.tostring(root, encoding="unicode")


def g1_full_mjcf() -> str:
    """The unprepared 29-joint G1 (wrists included, visuals stripped) as MJCF: the model
    motion capture of the G1 is recorded on (mjlab / BeyondMimic motion files list its
    29 joints and 30 bodies in this model's order)."""
    root = ET.fromstring((robot_dir("unitree_g1") / "g1_mjx.xml").read_text())
    root.remove(root.find("sensor"))
    legged.strip_visuals(root)
    return ET.tostring(root, encoding="unicode")


def _home_keyframe(scene_xml: str) -> np.ndarray:
    """The ``home`` keyframe's qpos of the full (29-joint) model in the scene file."""
    key = ET.fromstring(scene_xml).find(".//keyframe/key[@name='home']")
    return np.array(key.get("qpos").split(), np.float64)


class G1Walk(legged.LeggedEnv):
    name = "g1_walk"
    description = "Unitree G1 humanoid, 23 joints, imitate walking (motion capture, obs only)"
    config_class = G1Config
    robot_model = "unitree_g1"
    # Base features: forward speed, lateral speed, roll, pitch (paper App. B style).
    feature_terms = (("x_velocity", "next_obs", 0), ("y_velocity", "next_obs", 1),
                     ("roll", "next_obs", 6), ("pitch", "next_obs", 7))

    def _mjcf(self) -> str:
        return g1_mjcf()

    @property
    def perfect_imitation_return(self) -> float:
        """The normalised score's expert reference: 1 per step (paper Table 8)."""
        return float(self.episode_length)

    def __init__(self, config=None, backend: str = "auto"):
        super().__init__(config, backend)
        self._torso = mujoco.mj_name2id(self.mj_model, mujoco.mjtObj.mjOBJ_BODY, "torso_link")

    def motion_model(self):
        """The 29-joint G1 that motion files describe (``trirl.mjlab.read_mjlab``); the
        env's own model locks the six wrists of it."""
        if getattr(self, "_motion_model", None) is None:
            self._motion_model = mujoco.MjModel.from_xml_string(g1_full_mjcf())
        return self._motion_model

    def _observation_names(self):
        joints = [n.removesuffix("_joint") for n in self.joint_names()]
        frame = (["vx", "vy", "vz", "wx", "wy", "wz", "roll", "pitch"]
                 + [f"q_{j}" for j in joints] + [f"dq_{j}" for j in joints])
        return tuple(f"{n}@t-{k}" if k else n
                     for k in range(self.config.history + 1) for n in frame)

    def _proprio(self, arrays: PhysicsArrays):
        lin, ang = self._base_velocities(arrays)
        q, dq = self._joints(arrays)
        return jnp.concatenate([lin, ang, legged.roll_pitch(arrays.qpos[3:7]), q, dq])

    def _observe(self, arrays):
        # A fresh episode has no past: every history slot holds the first frame.
        return jnp.tile(self._proprio(arrays), self.config.history + 1)

    def _observe_step(self, arrays, prev_obs, action):
        return jnp.concatenate([self._proprio(arrays), prev_obs[:PROPRIO * self.config.history]])

    def _reward(self, before, after, action):
        velocity = (after.xpos[self._torso, :2] - before.xpos[self._torso, :2]) / self.dt
        target = jnp.array([self.config.target_speed, 0.0])
        score = jnp.exp(-jnp.sum(jnp.square(velocity - target)))
        return score, {"x_velocity": velocity[0], "imitation_score": score}


class G1Run(G1Walk):
    name = "g1_run"
    description = "Unitree G1 humanoid, 23 joints, imitate running (motion capture, obs only)"
    config_class = G1RunConfig
