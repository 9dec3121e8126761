"""Functional environment API: ``reset(key) -> EnvState``, ``step(state, action) -> EnvState``.

In the style of brax and gymnax: an :class:`Env` object holds only constants (the
compiled model, sizes, bounds); everything that changes lives in the :class:`EnvState`
pytree, so ``reset``/``step`` are pure, ``jax.jit``-able and batch with ``jax.vmap``.

Engine independence
-------------------
An environment never reads physics-engine internals. The backend turns its state into
a :class:`PhysicsArrays` of a few named arrays (qpos, qvel, body poses and velocities,
actuator and contact forces), and the environment computes observations, rewards,
termination and base features from those alone, so one definition runs on both:

- ``"mjx"`` (:class:`MjxBackend`): MuJoCo MJX, float32 XLA; the backend for GPUs and for
  programs compiled end to end;
- ``"c"`` (:class:`trirl.envs.c_backend.CBackend`): MuJoCo C (float64) through a JAX
  host callback, a whole ``vmap`` batch per call on all CPU cores; several times faster
  than MJX on a CPU (docs/benchmarks.md);
- ``"auto"`` (the default): MJX when JAX's default device is not a CPU, C otherwise.

Termination vs truncation
-------------------------
``absorbing`` marks a step that *entered a terminal state* (its successor is the
absorbing state s_a of the IRL formulation: the value there is the absorbing reward
over 1 - gamma, zero for the true task reward). ``truncated`` marks a time-out: the
state is an ordinary state and returns must be bootstrapped from its value.
``done = absorbing | truncated``. A step never sets both.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from trirl.envs._mjx import mjx, mujoco
from trirl.envs.physics import PhysicsArrays
from trirl.errors import TrirlError
from trirl.rewards import features as features_lib

BACKENDS = ("mjx", "c", "auto")


def resolve_backend(backend: Optional[str]) -> str:
    """``"mjx"`` or ``"c"`` for a requested backend; ``"auto"`` (or None: not asked for)
    is MJX when JAX's default device is an accelerator (where MJX runs whole programs on
    it) and C on a CPU (where MuJoCo C is several times faster per step). One-line error
    otherwise."""
    backend = "auto" if backend is None else backend
    if backend not in BACKENDS:
        raise TrirlError(f"unknown physics backend {backend!r}; choose one of "
                         f"{', '.join(BACKENDS)} (auto: MJX on a GPU, MuJoCo C on a CPU)")
    if backend == "auto":
        return "mjx" if jax.default_backend() != "cpu" else "c"
    return backend


class MjxBackend:
    """MuJoCo MJX physics: ``init``/``step`` on ``mjx.Data`` and ``arrays`` to read it.

    Derived quantities (body poses, velocities, forces) are those MuJoCo leaves in
    ``mjData`` after ``mj_step``: computed at the start of the last physics step, before
    its integration, exactly as Gymnasium's MuJoCo envs read them. ``cfrc_ext`` is filled
    by ``rne_postconstraint`` after the last step, as Gymnasium v5 does, when
    ``contact_forces`` is set.
    """

    name = "mjx"

    def __init__(self, mj_model: mujoco.MjModel, frame_skip: int, contact_forces: bool = False):
        self.mj_model = mj_model
        self.model = mjx.put_model(mj_model)
        self.frame_skip = int(frame_skip)
        self.contact_forces = bool(contact_forces)
        # One template, built once: make_data inside every jitted reset would rebuild
        # the same constant arrays at trace time for no gain.
        self._template = mjx.make_data(self.model)
        # One function object for the loop body: fori_loop caches its trace by function
        # identity, so a fresh lambda per call would retrace every un-jitted step.
        self._physics_step = lambda _, d: mjx.step(self.model, d)

    def init(self, qpos: jax.Array, qvel: jax.Array) -> Any:
        """Physics state at (qpos, qvel) with all derived quantities computed; like
        Gymnasium's reset (``mj_forward`` only), ``cfrc_ext`` stays zero."""
        data = self._template.replace(qpos=qpos.astype(self._template.qpos.dtype),
                                      qvel=qvel.astype(self._template.qvel.dtype))
        return mjx.forward(self.model, data)

    def step(self, data: Any, ctrl: jax.Array) -> Any:
        """Advance ``frame_skip`` physics steps holding ``ctrl``."""
        data = data.replace(ctrl=ctrl.astype(data.ctrl.dtype))
        data = jax.lax.fori_loop(0, self.frame_skip, self._physics_step, data)
        return self._post(data)

    def _post(self, data: Any) -> Any:
        # mj_step never fills cfrc_ext (only force sensors trigger it); Gymnasium v5
        # calls mj_rnePostConstraint after stepping, and so do we, only when asked.
        return mjx.rne_postconstraint(self.model, data) if self.contact_forces else data

    def arrays(self, data: Any) -> PhysicsArrays:
        # cinert and cfrc_ext live in the JAX implementation's part of mjx.Data.
        impl = data._impl
        cfrc_ext = impl.cfrc_ext if self.contact_forces else jnp.zeros_like(impl.cfrc_ext)
        return PhysicsArrays(qpos=data.qpos, qvel=data.qvel, xpos=data.xpos, xquat=data.xquat,
                             xipos=data.xipos, cinert=impl.cinert, cvel=data.cvel,
                             qfrc_actuator=data.qfrc_actuator, cfrc_ext=cfrc_ext,
                             time=data.time)


@struct.dataclass
class EnvState:
    """Everything that changes during an episode; a pytree, batched by ``vmap``.

    Attributes:
      data: the backend's physics state (``mjx.Data`` for MJX, ``CData`` for C).
      obs: observation to act on. After an auto-reset it is the new episode's first
        observation.
      next_obs: the observation this step actually reached, before any auto-reset
        (equal to ``obs`` without auto-reset). Use it for transitions (s, a, s') and to
        bootstrap values on truncation.
      reward: true task reward of the last step (for evaluation and expert training
        only; learners plug in their own reward).
      done: ``absorbing | truncated``.
      truncated: the episode hit ``episode_length`` without terminating.
      absorbing: the step entered a terminal state; its successor is s_a.
      steps: steps taken in the current episode (int32).
      key: PRNG key for reset noise and any stochastic dynamics.
      metrics: per-step diagnostic scalars (same keys at reset and step).
    """

    data: Any
    obs: jax.Array
    next_obs: jax.Array
    reward: jax.Array
    done: jax.Array
    truncated: jax.Array
    absorbing: jax.Array
    steps: jax.Array
    key: jax.Array
    metrics: dict = struct.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """Settings shared by every environment; each env subclasses this with its own.

    Attributes:
      episode_length: steps before truncation (the horizon).
      frame_skip: physics steps per control step.
      reset_noise_scale: half-width of the uniform noise added at reset.
    """

    episode_length: int = 1000
    frame_skip: int = 5
    reset_noise_scale: float = 0.1


class Env:
    """Base class. Subclasses set ``name``, ``description``, ``config_class`` and implement
    ``_mjcf``, ``_initial_qpos_qvel``, ``_observe``, ``_reward``, ``_terminated`` and
    ``features``; everything else (sizes, bounds, reset/step, truncation) lives here.
    """

    name: str = ""
    description: str = ""
    config_class: type = EnvConfig
    obs_names: tuple[str, ...] = ()
    # Base features for the feature-based reward (paper App. B) as data, see
    # trirl.rewards.features: ((name, "obs" | "next_obs" | "action", index),
    # (name, "action_sq_sum") or (name, "obs_distance" | "next_obs_distance", (i, ...),
    # (j, ...))), so a .reward file can carry them without code.
    feature_terms: tuple[tuple, ...] = ()
    # Whether _observe/_reward read PhysicsArrays.cfrc_ext (costs a pass per step).
    uses_contact_forces: bool = False
    # Whether observations follow from a sequence of states alone (qpos, qvel), so that
    # motion capture can be replayed into observations (``observations_of``); False for
    # envs that observe the previous action or contact forces.
    obs_from_states: bool = True
    # The robot model this env loads from the asset cache (``trirl assets fetch``), or
    # None for models shipped with trirl.
    robot_model: Optional[str] = None

    def __init__(self, config: Optional[EnvConfig] = None, backend: str = "auto"):
        self.config = config if config is not None else self.config_class()
        self.backend_name = resolve_backend(backend)
        self.mj_model = self._finish_model(mujoco.MjModel.from_xml_string(self._mjcf()))
        if self.backend_name == "mjx":
            self.backend = MjxBackend(self.mj_model, self.config.frame_skip,
                                      contact_forces=self.uses_contact_forces)
        else:
            from trirl.envs.c_backend import CBackend

            self.backend = CBackend(self.mj_model, self.config.frame_skip,
                                    contact_forces=self.uses_contact_forces)
        ctrl_range = np.asarray(self.mj_model.actuator_ctrlrange, np.float32)
        self.action_low = ctrl_range[:, 0].copy()
        self.action_high = ctrl_range[:, 1].copy()
        self.action_size = int(self.mj_model.nu)
        self.episode_length = int(self.config.episode_length)
        self.dt = float(self.mj_model.opt.timestep * self.config.frame_skip)
        self.obs_names = tuple(self._observation_names())
        self.observation_size = len(self.obs_names)

    # -- to implement -----------------------------------------------------------------

    def _mjcf(self) -> str:
        raise NotImplementedError

    def _finish_model(self, mj_model: mujoco.MjModel) -> mujoco.MjModel:
        """Hook to change the compiled model (gravity, wind, solver) before a backend
        sees it (both backends run this same model)."""
        return mj_model

    def _initial_qpos_qvel(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        raise NotImplementedError

    def _observation_names(self) -> tuple[str, ...]:
        """One name per observation entry, in order (called once the model is built, so
        envs can name the layout from the model's own joints and bodies); default: the
        class attribute ``obs_names``."""
        return type(self).obs_names

    def _observe(self, arrays: PhysicsArrays) -> jax.Array:
        """The observation at a state reached by reset (or by a replay's first frame)."""
        raise NotImplementedError

    def _observe_step(self, arrays: PhysicsArrays, prev_obs: jax.Array,
                      action: jax.Array) -> jax.Array:
        """The observation after a step from ``prev_obs`` with ``action``. Envs whose
        observation carries memory (a history stack, the previous action) override
        this; the default is memoryless."""
        return self._observe(arrays)

    def _reward(self, before: PhysicsArrays, after: PhysicsArrays,
                action: jax.Array) -> tuple[jax.Array, dict]:
        """Return (true reward, metrics dict) for the step ``before -> after``."""
        raise NotImplementedError

    def _terminated(self, arrays: PhysicsArrays) -> jax.Array:
        raise NotImplementedError

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(term[0] for term in self.feature_terms)

    @property
    def feature_spec(self) -> list[dict]:
        """``feature_terms`` as the JSON spec of ``trirl.rewards.features``; a one-line
        error for an env that declares none."""
        if not self.feature_terms:
            raise TrirlError(f"env {self.name!r} declares no base features; the feature-based "
                             "reward needs them (use --reward-model fitted)")
        return features_lib.spec_of(self.feature_terms)

    def features(self, obs: jax.Array, action: jax.Array, next_obs: jax.Array) -> jax.Array:
        """Named base features (``feature_names``) of a transition ``(..., F)``, from
        observations and the executed action only, so a feature-based reward can be
        evaluated outside trirl (paper App. B)."""
        return features_lib.evaluate(jnp, self.feature_spec, jnp.asarray(obs),
                                     jnp.asarray(action), jnp.asarray(next_obs))

    def observations_of(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """Observations ``(T, obs_size)`` float32 of a state sequence ``(T, nq)``,
        ``(T, nv)`` sampled at the env's control rate, as the env would observe them had
        it visited those states (MuJoCo C ``mj_forward`` per frame; the first frame is
        observed as a reset). For replaying motion capture into demonstrations.

        Raises:
          TrirlError: the env observes more than states, or the shapes do not fit.
        """
        if not self.obs_from_states:
            raise TrirlError(f"env {self.name!r} observes more than its states (previous "
                             "actions or contact forces), so state sequences cannot be "
                             "replayed into its observations")
        qpos, qvel = np.asarray(qpos, np.float64), np.asarray(qvel, np.float64)
        if qpos.ndim != 2 or qpos.shape[1] != self.mj_model.nq or qvel.shape != (
                len(qpos), self.mj_model.nv):
            raise TrirlError(f"env {self.name!r} needs qpos (T, {self.mj_model.nq}) and qvel "
                             f"(T, {self.mj_model.nv}); got {qpos.shape} and {qvel.shape}")
        data = mujoco.MjData(self.mj_model)
        zero_action = np.zeros(self.action_size, np.float32)
        obs = []
        for t in range(len(qpos)):
            data.qpos[:], data.qvel[:] = qpos[t], qvel[t]
            mujoco.mj_forward(self.mj_model, data)
            arrays = PhysicsArrays.from_mjdata(data)
            o = (self._observe(arrays) if t == 0
                 else self._observe_step(arrays, obs[-1], zero_action))
            obs.append(np.asarray(o, np.float32))
        return np.stack(obs)

    def _ctrl(self, action: jax.Array) -> jax.Array:
        """Map a clipped action to actuator controls (identity: ctrl = action)."""
        return action

    # -- the API ------------------------------------------------------------------------

    def reset(self, key: jax.Array) -> EnvState:
        key, sub = jax.random.split(key)
        qpos, qvel = self._initial_qpos_qvel(sub)
        data = self.backend.init(qpos, qvel)
        arrays = self.backend.arrays(data)
        obs = self._observe(arrays).astype(jnp.float32)
        shapes = jax.eval_shape(self._reward, arrays, arrays, jnp.zeros(self.action_size))[1]
        metrics = {k: jnp.zeros(s.shape, jnp.float32) for k, s in shapes.items()}
        false = jnp.zeros((), bool)
        return EnvState(data=data, obs=obs, next_obs=obs, reward=jnp.zeros((), jnp.float32),
                        done=false, truncated=false, absorbing=false,
                        steps=jnp.zeros((), jnp.int32), key=key, metrics=metrics)

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        """One control step. Actions are clipped to the bounds. Stepping a finished
        episode continues the physics (use :class:`AutoReset` for training)."""
        action = jnp.clip(action, self.action_low, self.action_high)
        before = self.backend.arrays(state.data)
        data = self.backend.step(state.data, self._ctrl(action))
        after = self.backend.arrays(data)
        obs = self._observe_step(after, state.obs, action).astype(jnp.float32)
        reward, metrics = self._reward(before, after, action)
        absorbing = jnp.asarray(self._terminated(after), bool)
        steps = state.steps + 1
        truncated = (steps >= self.episode_length) & ~absorbing
        metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
        return state.replace(data=data, obs=obs, next_obs=obs,
                             reward=jnp.asarray(reward, jnp.float32),
                             done=absorbing | truncated, truncated=truncated,
                             absorbing=absorbing, steps=steps, metrics=metrics)

    # Equal configs on the same backend give equal envs, so two ``make`` calls share jit
    # caches when an env is a static argument (the backends' physics states differ, so
    # envs on different backends must not).
    def __eq__(self, other) -> bool:
        return (type(other) is type(self) and other.config == self.config
                and other.backend_name == self.backend_name)

    def __hash__(self) -> int:
        return hash((type(self), self.config, self.backend_name))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, obs={self.observation_size}, "
                f"act={self.action_size}, dt={self.dt}, episode_length={self.episode_length}, "
                f"backend={self.backend_name!r})")


class AutoReset:
    """Batched training view of an env: vmapped, and finished episodes restart.

    Resets come from a *pool* of fresh initial states that the caller draws once per
    rollout (``reset_pool``) instead of running a reset inside every step: a reset
    costs a full forward pass of the physics, and with hundreds of envs some env
    finishes at almost every step, so resetting in-step would nearly double the cost
    of short-episode tasks. Env ``i`` restarts from pool slot ``i``; an env that
    finishes twice within one rollout restarts from the same (still correctly
    distributed) initial state, which only matters for episodes shorter than a rollout.
    """

    def __init__(self, env: Env):
        self.env = env
        self._reset = jax.vmap(env.reset)
        self._step = jax.vmap(env.step)

    def reset(self, key: jax.Array, num_envs: int) -> EnvState:
        return self._reset(jax.random.split(key, num_envs))

    def reset_pool(self, key: jax.Array, num_envs: int) -> EnvState:
        return self.reset(key, num_envs)

    def step(self, state: EnvState, action: jax.Array, pool: EnvState) -> EnvState:
        nxt = self._step(state, action)

        def restart(new, fresh):
            mask = nxt.done.reshape(nxt.done.shape + (1,) * (new.ndim - 1))
            return jnp.where(mask, fresh, new)

        restarted = jax.tree.map(restart, (nxt.data, nxt.obs, nxt.steps),
                                 (pool.data, pool.obs, pool.steps))
        return nxt.replace(data=restarted[0], obs=restarted[1], steps=restarted[2])
