"""Walker2d (Gymnasium ``Walker2d-v5``): a two-legged planar walker.

Reward ``x_velocity + 1 (while healthy) - 1e-3 |a|^2``; the episode ends (absorbing)
when the torso leaves 0.8 m < z < 2 m or tilts beyond 1 rad. Uses v5's model
(``walker2d_v5.xml``: both feet with friction 0.9).
"""

from __future__ import annotations

import dataclasses

from trirl.envs.mujoco_v5 import LocomotionConfig, PlanarLocomotionEnv, open_interval


@dataclasses.dataclass(frozen=True)
class Walker2dConfig(LocomotionConfig):
    """``Walker2d-v5`` defaults (dt = 4 x 0.002 s). Ranges are open intervals."""

    frame_skip: int = 4
    reset_noise_scale: float = 5e-3
    forward_reward_weight: float = 1.0
    ctrl_cost_weight: float = 1e-3
    healthy_reward: float = 1.0
    terminate_when_unhealthy: bool = True
    healthy_z_range: tuple[float, float] = (0.8, 2.0)
    healthy_angle_range: tuple[float, float] = (-1.0, 1.0)


class Walker2d(PlanarLocomotionEnv):
    name = "walker2d"
    description = "two-legged planar walker (Gymnasium Walker2d-v5)"
    config_class = Walker2dConfig
    asset = "walker2d.xml"
    # obs = qpos[1:] (8) + clip(qvel, -10, 10) (9): obs[0] torso height, obs[8] forward
    # velocity. Base features (paper App. B): velocity, torso height, action cost.
    qvel_clip = 10.0
    feature_terms = (("x_velocity", "next_obs", 8), ("torso_height", "next_obs", 0),
                     ("action_sq_sum", "action_sq_sum"))


    def _is_healthy(self, arrays):
        cfg = self.config
        return (open_interval(arrays.qpos[1], cfg.healthy_z_range)
                & open_interval(arrays.qpos[2], cfg.healthy_angle_range))
