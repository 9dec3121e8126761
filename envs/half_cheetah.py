"""HalfCheetah (Gymnasium ``HalfCheetah-v5``) and its transfer variants (paper Sec. 5.1).

- ``halfcheetah``: run forward; reward ``x_velocity - 0.1 |a|^2``; never terminates.
- ``halfcheetah_wind``: a constant 5 m/s wind against the direction of travel, through
  MuJoCo's inertia-box fluid model (air density 1.2 kg/m^3, viscosity 1.8e-5 Pa s,
  ``opt.wind = (-5, 0, 0)``), which MJX implements. The fluid model adds drag at any
  relative velocity, so even standing still the cheetah is pushed backwards.
- ``halfcheetah_mars``: gravity 3.73 m/s^2.

The variants change only the compiled model's ``opt`` fields named above
(``tests/test_locomotion.py`` checks every other model array is identical).
"""

from __future__ import annotations

import dataclasses

import mujoco

from trirl.envs.mujoco_v5 import LocomotionConfig, PlanarLocomotionEnv, read_asset


@dataclasses.dataclass(frozen=True)
class HalfCheetahConfig(LocomotionConfig):
    """``HalfCheetah-v5`` defaults (dt = 5 x 0.01 s)."""

    frame_skip: int = 5
    reset_noise_scale: float = 0.1
    forward_reward_weight: float = 1.0
    ctrl_cost_weight: float = 0.1
    healthy_reward: float = 0.0
    terminate_when_unhealthy: bool = False


class HalfCheetah(PlanarLocomotionEnv):
    name = "halfcheetah"
    description = "planar cheetah runs forward (Gymnasium HalfCheetah-v5)"
    config_class = HalfCheetahConfig
    asset = "half_cheetah.xml"
    qvel_noise = "normal"
    # obs = qpos[1:] (8) + qvel (9); obs[8] is the root's forward velocity. The paper's
    # base features (App. B; the authors' release): forward velocity and action cost.
    feature_terms = (("x_velocity", "next_obs", 8), ("action_sq_sum", "action_sq_sum"))

    def _mjcf(self) -> str:
        # ``settotalmass`` is deprecated and prints a compiler warning on every load;
        # _finish_model applies the same scaling (bit-identical model, see the tests).
        return read_asset(self.asset).replace(' settotalmass="14"', "")

    def _finish_model(self, mj_model):
        mj_model = super()._finish_model(mj_model)
        mujoco.mj_setTotalmass(mj_model, 14.0)
        mujoco.mj_setConst(mj_model, mujoco.MjData(mj_model))
        return mj_model



@dataclasses.dataclass(frozen=True)
class HalfCheetahWindConfig(HalfCheetahConfig):
    """Attributes: wind_speed: m/s, blowing towards -x; air_density, air_viscosity: SI."""

    wind_speed: float = 5.0
    air_density: float = 1.2
    air_viscosity: float = 1.8e-5


class HalfCheetahWind(HalfCheetah):
    name = "halfcheetah_wind"
    description = "halfcheetah against a constant 5 m/s head wind (transfer task)"
    config_class = HalfCheetahWindConfig

    def _finish_model(self, mj_model):
        mj_model = super()._finish_model(mj_model)
        mj_model.opt.wind[:] = (-self.config.wind_speed, 0.0, 0.0)
        mj_model.opt.density = self.config.air_density
        mj_model.opt.viscosity = self.config.air_viscosity
        return mj_model


@dataclasses.dataclass(frozen=True)
class HalfCheetahMarsConfig(HalfCheetahConfig):
    """Attributes: gravity: m/s^2 (Mars: 3.73)."""

    gravity: float = 3.73


class HalfCheetahMars(HalfCheetah):
    name = "halfcheetah_mars"
    description = "halfcheetah under Mars gravity, 3.73 m/s^2 (transfer task)"
    config_class = HalfCheetahMarsConfig

    def _finish_model(self, mj_model):
        mj_model = super()._finish_model(mj_model)
        mj_model.opt.gravity[:] = (0.0, 0.0, -self.config.gravity)
        return mj_model
