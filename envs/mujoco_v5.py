"""Shared machinery of the locomotion suite: Gymnasium MuJoCo v5 tasks on trirl's API.

Every locomotion env loads the same MJCF asset as its Gymnasium v5 counterpart (kept in
``envs/assets``, identical but for a licence comment) and reproduces v5's observation
layout, reward terms, termination and reset noise, so a reward or policy learned in
trirl means the same thing in ``gymnasium.make("HalfCheetah-v5")`` and friends.
``tests/test_locomotion.py`` checks this against Gymnasium's C MuJoCo envs on the same
states and actions; deviations MJX forces are listed in ``docs/envs.md``.

What v5 reads after a step, and so what these envs read:

- ``qpos``/``qvel`` after the last physics step;
- derived quantities (``xpos``, ``xipos``, ``cvel``, ``cinert``, ``qfrc_actuator``) as
  ``mj_step`` leaves them, i.e. computed before the last step's integration;
- ``cfrc_ext`` from ``mj_rnePostConstraint`` after the last step (zero right after a
  reset: v5's ``reset`` runs ``mj_forward`` only).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from trirl.envs.base import Env, EnvConfig, PhysicsArrays

ASSETS = Path(__file__).resolve().parent / "assets"


@dataclasses.dataclass(frozen=True)
class LocomotionConfig(EnvConfig):
    """Reward weights shared by the locomotion tasks (Gymnasium v5 argument names).

    Attributes:
      forward_reward_weight: weight of the forward velocity term.
      ctrl_cost_weight: weight of ``sum(a^2)``.
      healthy_reward: reward per step while healthy (0 for tasks without it).
      terminate_when_unhealthy: end the episode (absorbing) on leaving the healthy set.
      solver_iterations, solver_ls_iterations: caps on the constraint solver's
        iterations and line-search steps (v5's models: 100 and 50). MuJoCo C stops
        early at ``opt.tolerance`` (1e-8), which float32 MJX never reaches, so MJX ran
        all 100 x 50 and was 4x slower. Newton converges in a few iterations here: with
        4 and 8 (MuJoCo Playground's choice) the physics matches converged v5 to 1e-5
        over 5 steps (``tests/test_locomotion.py``). Set 100 and 50 for v5's caps.
    """

    forward_reward_weight: float = 1.0
    ctrl_cost_weight: float = 0.1
    healthy_reward: float = 0.0
    terminate_when_unhealthy: bool = True
    solver_iterations: int = 4
    solver_ls_iterations: int = 8


def read_asset(filename: str) -> str:
    """The text of an MJCF file shipped in ``envs/assets``."""
    return (ASSETS / filename).read_text()


class LocomotionEnv(Env):
    """Base of the v5 tasks: asset loading, reset noise and the healthy-reward pattern.

    Subclasses set ``asset``, ``qvel_noise`` ("uniform" or "normal", as their v5 env
    draws it) and implement ``_observation_names``, ``_observe``, ``_forward_velocity`` and
    ``_is_healthy`` (and ``_costs`` for costs beyond the control cost).
    """

    asset: str = ""
    qvel_noise: str = "uniform"

    def _observation_names(self) -> tuple[str, ...]:
        # Named from the model's own joints and bodies, so the layout cannot drift from
        # the asset; _observe must produce exactly these entries.
        raise NotImplementedError

    def _mjcf(self) -> str:
        return read_asset(self.asset)

    def _finish_model(self, mj_model):
        # Subclasses that edit the model call this first (see LocomotionConfig).
        mj_model.opt.iterations = self.config.solver_iterations
        mj_model.opt.ls_iterations = self.config.solver_ls_iterations
        return mj_model

    def _initial_qpos_qvel(self, key):
        # v5: qpos0 + U(-n, n); qvel 0 + U(-n, n) or n * N(0, 1) depending on the task.
        n = self.config.reset_noise_scale
        kq, kv = jax.random.split(key)
        qpos0 = jnp.asarray(self.mj_model.qpos0, jnp.float32)
        qpos = qpos0 + jax.random.uniform(kq, qpos0.shape, minval=-n, maxval=n)
        if self.qvel_noise == "normal":
            qvel = n * jax.random.normal(kv, (self.mj_model.nv,))
        else:
            qvel = jax.random.uniform(kv, (self.mj_model.nv,), minval=-n, maxval=n)
        return qpos, qvel

    def _forward_velocity(self, before: PhysicsArrays, after: PhysicsArrays) -> jax.Array:
        """x velocity of the tracked point, by finite difference over one control step."""
        raise NotImplementedError

    def _is_healthy(self, arrays: PhysicsArrays) -> jax.Array:
        return jnp.ones((), bool)

    def _costs(self, after: PhysicsArrays, action: jax.Array) -> dict:
        """Named costs subtracted from the reward (besides the control cost)."""
        return {}

    def _ctrl_cost(self, action: jax.Array) -> jax.Array:
        return self.config.ctrl_cost_weight * jnp.sum(jnp.square(action))

    def _reward(self, before, after, action):
        cfg = self.config
        x_velocity = self._forward_velocity(before, after)
        forward = cfg.forward_reward_weight * x_velocity
        healthy = cfg.healthy_reward * self._is_healthy(after).astype(jnp.float32)
        ctrl_cost = self._ctrl_cost(action)
        costs = self._costs(after, action)
        reward = forward + healthy - ctrl_cost - sum(costs.values())
        metrics = {"x_velocity": x_velocity, "reward_forward": forward,
                   "reward_survive": healthy, "reward_ctrl": -ctrl_cost,
                   **{f"reward_{name}": -value for name, value in costs.items()}}
        return reward, metrics

    def _terminated(self, arrays):
        if not self.config.terminate_when_unhealthy:
            return jnp.zeros((), bool)
        return ~self._is_healthy(arrays)


class PlanarLocomotionEnv(LocomotionEnv):
    """The planar robots (HalfCheetah, Hopper, Walker2d): root joints rootx, rootz,
    rooty; obs = qpos[1:] + qvel (clipped to +-``qvel_clip`` where v5 clips); forward
    velocity (qpos[0] after - qpos[0] before) / dt."""

    qvel_clip: float | None = None

    def _observation_names(self):
        return (tuple(joint_coordinate_names(self.mj_model, "qpos")[1:])
                + tuple(joint_coordinate_names(self.mj_model, "qvel")))

    def _observe(self, arrays):
        qvel = arrays.qvel
        if self.qvel_clip is not None:
            qvel = jnp.clip(qvel, -self.qvel_clip, self.qvel_clip)
        return jnp.concatenate([arrays.qpos[1:], qvel])

    def _forward_velocity(self, before, after):
        return (after.qpos[0] - before.qpos[0]) / self.dt


def open_interval(x: jax.Array, bounds: tuple[float, float]) -> jax.Array:
    """``lo < x < hi`` elementwise (v5's healthy ranges are open unless stated)."""
    return (x > bounds[0]) & (x < bounds[1])


def flat_names(prefix: str, bodies: list[str], fields: tuple[str, ...]) -> tuple[str, ...]:
    """``prefix:body:field`` for each body and field, in row-major (flatten) order."""
    return tuple(f"{prefix}:{body}:{field}" for body in bodies for field in fields)


def body_names(mj_model) -> list[str]:
    import mujoco
    return [mujoco.mj_id2name(mj_model, mujoco.mjtObj.mjOBJ_BODY, i) or f"body{i}"
            for i in range(mj_model.nbody)]


def joint_coordinate_names(mj_model, kind: str) -> list[str]:
    """Names of the qpos (``kind="qpos"``) or qvel (``"qvel"``) coordinates, joint by
    joint: a free joint gives x, y, z, qw, qx, qy, qz (qvel: vx, vy, vz, wx, wy, wz)."""
    import mujoco
    out: list[str] = []
    for j in range(mj_model.njnt):
        name = mujoco.mj_id2name(mj_model, mujoco.mjtObj.mjOBJ_JOINT, j) or f"joint{j}"
        if mj_model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE:
            parts = (("x", "y", "z", "qw", "qx", "qy", "qz") if kind == "qpos"
                     else ("vx", "vy", "vz", "wx", "wy", "wz"))
            out += [f"{name}:{p}" for p in parts]
        elif mj_model.jnt_type[j] == mujoco.mjtJoint.mjJNT_BALL:
            parts = ("qw", "qx", "qy", "qz") if kind == "qpos" else ("wx", "wy", "wz")
            out += [f"{name}:{p}" for p in parts]
        else:
            out.append(name if kind == "qpos" else f"{name}:vel")
    return out


def mass_weighted_com_x(body_mass: np.ndarray, arrays: PhysicsArrays) -> jax.Array:
    """x of the whole-body centre of mass (v5 Humanoid's ``mass_center``)."""
    mass = jnp.asarray(np.asarray(body_mass, np.float32))
    return jnp.sum(mass * arrays.xipos[:, 0]) / jnp.sum(mass)
