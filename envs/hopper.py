"""Hopper (Gymnasium ``Hopper-v5``): a one-legged planar robot hops forward.

Reward ``x_velocity + 1 (while healthy) - 1e-3 |a|^2``; the episode ends (absorbing)
when the torso falls below 0.7 m, tilts beyond 0.2 rad, or any state entry but the
root x, z leaves (-100, 100).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from trirl.envs.mujoco_v5 import LocomotionConfig, PlanarLocomotionEnv, open_interval


@dataclasses.dataclass(frozen=True)
class HopperConfig(LocomotionConfig):
    """``Hopper-v5`` defaults (dt = 4 x 0.002 s). Ranges are open intervals."""

    frame_skip: int = 4
    reset_noise_scale: float = 5e-3
    forward_reward_weight: float = 1.0
    ctrl_cost_weight: float = 1e-3
    healthy_reward: float = 1.0
    terminate_when_unhealthy: bool = True
    healthy_state_range: tuple[float, float] = (-100.0, 100.0)
    healthy_z_range: tuple[float, float] = (0.7, float("inf"))
    healthy_angle_range: tuple[float, float] = (-0.2, 0.2)


class Hopper(PlanarLocomotionEnv):
    name = "hopper"
    description = "one-legged planar hopper (Gymnasium Hopper-v5)"
    config_class = HopperConfig
    asset = "hopper.xml"
    # obs = qpos[1:] (5) + clip(qvel, -10, 10) (6): obs[0] torso height, obs[5] forward
    # velocity. Base features (paper App. B): velocity, torso height, action cost.
    qvel_clip = 10.0
    feature_terms = (("x_velocity", "next_obs", 5), ("torso_height", "next_obs", 0),
                     ("action_sq_sum", "action_sq_sum"))


    def _is_healthy(self, arrays):
        cfg = self.config
        state = jnp.concatenate([arrays.qpos, arrays.qvel])[2:]
        return (jnp.all(open_interval(state, cfg.healthy_state_range))
                & open_interval(arrays.qpos[1], cfg.healthy_z_range)
                & open_interval(arrays.qpos[2], cfg.healthy_angle_range))
