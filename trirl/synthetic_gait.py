"""A synthetic Unitree G1 walking gait in LocoMuJoCo's trajectory layout.

Real motion capture cannot be downloaded everywhere trirl runs (tests, the quick-start),
so this generates a kinematic stand-in: periodic joint trajectories of a walk, legs in
antiphase (hip pitch swing, knee flexion during swing, ankle pitch keeping the feet
level), arms swinging opposite to the legs, the pelvis moving forward at ``speed`` with
a little sway, roll and yaw. The pelvis height is set per frame (``mj_kinematics``) so
that the lowest point of the geoms that collide with the floor in Menagerie's
``scene_mjx.xml`` (the feet, in practice) is exactly on the floor ``z = 0``: nothing
penetrates. Velocities are central differences of the positions (``mj_differentiatePos``:
free joint linear velocity in the world frame, angular velocity in the body frame).
It is kinematics only: the stance foot slides a little and no dynamics are implied.

>>> path = write("g1_gait_locomujoco.npz", speed=1.0, seconds=20, segments=3)
>>> trirl demos convert --from loco-mujoco g1_gait_locomujoco.npz -o g1_walk.npz --env g1_walk
"""

from __future__ import annotations

import math

import numpy as np

from trirl import mocap, motion

FREE_JOINT = "root"  # what LocoMuJoCo calls the G1's free joint (Menagerie: floating_base_joint)


def g1_model():
    """Menagerie's G1 with its floor scene (``scene_mjx.xml``) from the asset cache."""
    import mujoco

    from trirl.envs.robot_assets import robot_dir

    return mujoco.MjModel.from_xml_path(str(robot_dir("unitree_g1") / "scene_mjx.xml"))


def floor_geoms(model) -> np.ndarray:
    """Geoms with a contact pair against the geom named ``floor``."""
    floor = model.geom("floor").id
    pairs = zip(model.pair_geom1, model.pair_geom2)
    return np.array(sorted({int(a if b == floor else b) for a, b in pairs if floor in (a, b)}))


def lowest_points(model, data, geoms) -> np.ndarray:
    """World z of the lowest point of each sphere, capsule or box geom in ``geoms``
    (after ``mj_kinematics``)."""
    z = data.geom_xpos[geoms, 2]
    axes_z = data.geom_xmat[geoms].reshape(-1, 3, 3)[:, 2, :]   # z components of the axes
    size = model.geom_size[geoms]
    kind = model.geom_type[geoms]
    low = np.where(kind == 2, z - size[:, 0],                                   # sphere
                   np.where(kind == 3, z - size[:, 0] - np.abs(axes_z[:, 2]) * size[:, 1],
                            z - np.sum(np.abs(axes_z) * size, axis=1)))        # capsule, box
    if not np.isin(kind, (2, 3, 6)).all():
        raise ValueError("floor geoms must be spheres, capsules or boxes")
    return low


def _quat_zyx(yaw, pitch, roll) -> np.ndarray:
    cy, sy = np.cos(yaw / 2), np.sin(yaw / 2)
    cp, sp = np.cos(pitch / 2), np.sin(pitch / 2)
    cr, sr = np.cos(roll / 2), np.sin(roll / 2)
    return np.stack([cr * cp * cy + sr * sp * sy, sr * cp * cy - cr * sp * sy,
                     cr * sp * cy + sr * cp * sy, cr * cp * sy - sr * sp * cy], axis=-1)


def _triangle(phi):
    """A triangle wave (peaks +-1 at phi = +-pi/2), smoothed: its first three Fourier
    terms, scaled back to peaks of +-1."""
    terms = [(-1) ** k * np.sin((2 * k + 1) * phi) / (2 * k + 1) ** 2 for k in range(3)]
    return sum(terms) / sum(1 / (2 * k + 1) ** 2 for k in range(3))


def _hip_amplitude(model, data, speed, stride_hz) -> float:
    """Hip pitch amplitude that moves a stance foot (knee at its stance angle) back by
    the distance the pelvis travels in half a stride."""
    import mujoco

    def foot_x(hip):
        data.qpos[:] = model.qpos0
        data.qpos[3] = 1.0
        for name, value in (("left_hip_pitch_joint", hip), ("left_knee_joint", 0.3),
                            ("left_ankle_pitch_joint", -hip - 0.3)):
            data.qpos[model.jnt_qposadr[model.joint(name).id]] = value
        mujoco.mj_kinematics(model, data)
        return data.site("left_foot").xpos[0]

    per_rad = (foot_x(-0.3) - foot_x(-0.1)) / 0.2  # foot travel per radian of hip flexion
    return min(speed / (2 * stride_hz) / (2 * per_rad), 0.6)


def _segment(model, data, geoms, t, speed, stride_hz, phase, scale) -> tuple:
    """qpos, qvel ``(T, nq)``, ``(T, nv)`` of one walking segment at times ``t``."""
    import mujoco

    amplitude = _hip_amplitude(model, data, speed, stride_hz)
    w = 2 * math.pi * stride_hz
    left = w * t + phase
    right = left + math.pi
    # The pelvis turns with the swinging leg, hikes the swing side, sways over the stance
    # foot and leans forward a little.
    yaw, roll, pitch = -0.04 * np.sin(left), 0.03 * np.cos(left), 0.05 + 0 * t
    joints = {}

    def leg(side, phi):
        # Hip flexion (negative pitch) follows a smoothed triangle wave: the leg swings
        # forward while cos(phi) > 0, the knee bending then, and moves back at a nearly
        # constant rate in stance, matching the pelvis speed so the stance foot slides
        # little (about 0.1 m/s at 1 m/s). The ankle keeps the foot level with the floor.
        hip = -0.2 - amplitude * scale * _triangle(phi)
        knee = 0.3 + 0.55 * scale * np.maximum(np.cos(phi + 0.2), 0.0) ** 2  # from toe-off
        joints[f"{side}_hip_pitch_joint"] = hip
        joints[f"{side}_knee_joint"] = knee
        joints[f"{side}_ankle_pitch_joint"] = -(hip + knee + pitch)
        joints[f"{side}_ankle_roll_joint"] = -roll

    leg("left", left)
    leg("right", right)
    joints["waist_yaw_joint"] = -yaw
    for side, phi, sign in (("left", left, 1.0), ("right", right, -1.0)):
        # Arm forward (negative shoulder pitch) with the opposite leg forward.
        joints[f"{side}_shoulder_pitch_joint"] = 0.2 + 0.35 * scale * np.sin(phi)
        joints[f"{side}_shoulder_roll_joint"] = sign * 0.22 + 0 * t
        joints[f"{side}_elbow_joint"] = 1.0 + 0.15 * scale * np.sin(phi) + 0 * t
    qpos = np.zeros((len(t), model.nq))
    qpos[:, 0] = speed * t
    qpos[:, 1] = -0.03 * np.cos(left)
    qpos[:, 3:7] = _quat_zyx(yaw, pitch, roll)
    for name, value in joints.items():
        qpos[:, model.jnt_qposadr[model.joint(name).id]] = value
    for i in range(len(t)):  # lowest floor-colliding point on the floor
        data.qpos[:] = qpos[i]
        mujoco.mj_kinematics(model, data)
        qpos[i, 2] = -lowest_points(model, data, geoms).min()
    qvel = np.zeros((len(t), model.nv))
    dt = t[1] - t[0]
    for i in range(len(t)):
        a, b = max(i - 1, 0), min(i + 1, len(t) - 1)
        mujoco.mj_differentiatePos(model, qvel[i], (b - a) * dt, qpos[a], qpos[b])
    return qpos, qvel


def generate(speed: float = 1.0, seconds: float = 20.0, segments: int = 3, fps: float = 60.0,
             step_frequency: float = 1.8, seed: int = 0) -> motion.Motion:
    """The gait as a :class:`trirl.motion.Motion` in LocoMuJoCo's layout (free joint
    ``root`` first, then Menagerie's 29 hinge joints, wrists held at 0): ``segments``
    clips of ``seconds / segments`` each at ``fps``, each with its own starting phase
    and a slightly different amplitude, deterministic given ``seed``.
    ``step_frequency``: steps per second (two per stride)."""
    import mujoco

    for name, value, ok in (("speed", speed, speed >= 0), ("seconds", seconds, seconds > 0),
                            ("segments", segments, segments >= 1), ("fps", fps, fps > 0),
                            ("step_frequency", step_frequency, step_frequency > 0)):
        if not ok:
            raise ValueError(f"synthetic gait: {name}={value} is out of range (speed >= 0, "
                             "the others > 0)")
    model = g1_model()
    data = mujoco.MjData(model)
    geoms = floor_geoms(model)
    rng = np.random.default_rng(seed)
    frames = max(int(round(seconds / segments * fps)), 4)
    t = np.arange(frames) / fps
    parts = [_segment(model, data, geoms, t, speed, step_frequency / 2,
                      rng.uniform(0, 2 * math.pi), rng.uniform(0.9, 1.1))
             for _ in range(segments)]
    names, types = motion.joint_layout(model)
    names = (FREE_JOINT,) + names[1:]
    return motion.Motion(names, types, np.concatenate([p[0] for p in parts]),
                        np.concatenate([p[1] for p in parts]), float(fps),
                        np.arange(segments + 1, dtype=np.int64) * frames,
                        source="<synthetic G1 gait>", format="loco-mujoco")


def write(path, **kwargs):
    """:func:`generate` (same arguments) saved with :func:`trirl.mocap.save_loco_mujoco`;
    returns the motion."""
    motion = generate(**kwargs)
    mocap.save_loco_mujoco(path, motion.joint_names, motion.qpos, motion.qvel,
                           motion.frequency, motion.split_points,
                           joint_types=motion.joint_types)
    return motion
