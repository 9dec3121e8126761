"""Evaluating a ``.reward`` file: one program, run by NumPy or by JAX.

The reward program is written once against an array module ``xp`` (``numpy`` or
``jax.numpy``), so the NumPy reader and ``Reward.as_jax()`` cannot drift apart; the
ONNX export (``trirl.rewards.onnx_export``) builds the same operations as graph nodes.

Units: values are the learner's reward divided by ``beta`` (the units the policy was
trained in: PPO with entropy coefficient ``1 / beta`` maximises the same objective as
the paper's ``E[r] + H(pi)`` with ``r`` in units of beta).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from trirl.rewards import _file, features


def _activation(xp, name: str) -> Callable:
    if name == "tanh":
        return xp.tanh
    if name == "relu":
        return lambda h: xp.maximum(h, 0.0)
    if name == "elu":  # expm1 of a clipped argument: no overflow warning on the unused side
        return lambda h: xp.where(h > 0, h, xp.expm1(xp.minimum(h, 0.0)))
    if name == "silu":
        return lambda h: h / (1.0 + xp.exp(-h))
    raise ValueError(f"unknown activation {name!r}")


def output_transform(xp, name: str, y):
    """The adversarial form's reward of its network output y (docs/reward-format.md):
    GAIL's log D = log sigmoid(y) or -log(1 - D) = softplus(y), AMP's clipped quadratic,
    or y itself (GAIL's logit, AIRL's g). logaddexp keeps both sides overflow-free."""
    if name == "log_sigmoid":
        return -xp.logaddexp(0.0, -y)
    if name == "softplus":
        return xp.logaddexp(0.0, y)
    if name == "amp":
        return xp.maximum(0.0, 1.0 - 0.25 * xp.square(y - 1.0))
    if name == "identity":
        return y
    raise ValueError(f"unknown output transform {name!r}")


def mlp(xp, tensors: dict, name: str, depth: int, activation: str, x):
    """Forward pass of the MLP ``{name}/layer{i}/kernel|bias``: x (N, D) -> (N,), or for
    stacked members (m, D, H) kernels -> (m, N) with one batched matmul per layer."""
    act = _activation(xp, activation)
    h = x
    for i in range(depth):
        kernel, bias = tensors[f"{name}/layer{i}/kernel"], tensors[f"{name}/layer{i}/bias"]
        h = h @ kernel + (bias if bias.ndim == 1 else bias[:, None, :])
        if i < depth - 1:
            h = act(h)
    return h[..., 0]


def _state_slot(xp, header: dict, tensors: dict, s, is_abs):
    """Normalised state and, with absorbing handling, its indicator (zero state in s_a)."""
    inputs = header["inputs"]
    if inputs["normalize"]:
        clip = inputs["clip"]
        s = xp.clip((s - tensors["normalizer/mean"]) / tensors["normalizer/std"], -clip, clip)
    if not inputs["absorbing_indicator"]:
        return [s]
    return [xp.where(is_abs[:, None], 0.0, s), is_abs[:, None].astype(s.dtype)]


def build_input(xp, header: dict, tensors: dict, obs, action, next_obs, next_absorbing,
                obs_absorbing):
    """The network input of a batch of transitions (rows of ``trirl.discriminator``'s
    ``disc_input``: "sa" [s, i, a], "ss" [s, i, s', i'], "sas" [s, i, a, s', i']; or of
    the feature-based learner: "features" [f, i], f zeroed in s_a; state-only "s"
    [s, i])."""
    kind = header["inputs"]["kind"]
    if "action_low" in header["env"]:
        # The reward judges the executed action: the env clips to these bounds.
        action = xp.clip(action, xp.asarray(header["env"]["action_low"], xp.float32),
                         xp.asarray(header["env"]["action_high"], xp.float32))
    if kind == "features":
        f = features.evaluate(xp, header["features"], obs, action, next_obs)
        return xp.concatenate(_state_slot(xp, header, tensors, f, obs_absorbing), axis=-1)
    parts = _state_slot(xp, header, tensors, obs, obs_absorbing)
    if kind == "s":
        return parts[0] if len(parts) == 1 else xp.concatenate(parts, axis=-1)
    if kind in ("sa", "sas"):
        if header["inputs"]["absorbing_indicator"]:
            action = xp.where(obs_absorbing[:, None], 0.0, action)
        parts.append(action)
    if kind in ("ss", "sas"):
        parts += _state_slot(xp, header, tensors, next_obs, obs_absorbing | next_absorbing)
    return xp.concatenate(parts, axis=-1)


def program(xp, header: dict, tensors: dict, x):
    """Reward of network inputs x (N, D) -> (N,), in units of r / beta."""
    nets = header["networks"]
    if header["form"] == "adversarial":
        net = nets["reward"]
        y = mlp(xp, tensors, "reward", len(net["layers"]) - 1, net["activation"], x)
        return output_transform(xp, header["adversarial"]["output"], y)
    if header["form"] in ("fitted", "features"):
        # features: the encoder's layers, then the linear reward weights (already / beta).
        name = "fit" if header["form"] == "fitted" else "reward"
        net = nets[name]
        return mlp(xp, tensors, name, len(net["layers"]) - 1, net["activation"], x)
    beta = xp.asarray(header["beta"], xp.float32)
    comp = header["composite"]
    if comp["base"] == "fit":
        fit = nets["fit"]
        # R_fit's network predicts r / fit_scale (trirl: r / beta, see reward_buffer._base).
        r = xp.asarray(comp.get("fit_scale", 1.0), xp.float32) * mlp(
            xp, tensors, "fit", len(fit["layers"]) - 1, fit["activation"], x)
    else:
        r = xp.zeros(x.shape[:1], xp.float32)
    if comp["members"]:
        members = nets["members"]
        logits = mlp(xp, tensors, "members", len(members["layers"]) - 1,
                     members["activation"], x)
        steps = tensors["members/step"]
        # Alg. 2 lines 19-23, oldest member first, in the learner's order of operations.
        for j in range(comp["members"]):
            r = (1.0 - steps[j]) * r + steps[j] * beta * logits[j]
    return r / beta


class Reward:
    """A learned reward loaded from a ``.reward`` file (use :func:`trirl.rewards.load`).

    Attributes:
      header: the file's JSON header (see ``docs/reward-format.md``).
      tensors: the float32 arrays, by name.
      path: where it was loaded from.
    """

    def __init__(self, header: dict[str, Any], tensors: dict[str, np.ndarray],
                 path: Optional[Path] = None):
        self.header = header
        self.tensors = tensors
        self.path = path

    # -- description ------------------------------------------------------------------

    @property
    def env_name(self) -> str:
        return self.header["env"]["name"]

    @property
    def observation_size(self) -> int:
        return self.header["env"]["observation_size"]

    @property
    def action_size(self) -> int:
        return self.header["env"]["action_size"]

    @property
    def observation_names(self) -> list[str]:
        return list(self.header["env"]["observation_names"])

    @property
    def inputs(self) -> str:
        """"s", "sa", "ss", "sas" or "features": what the reward's network reads."""
        return self.header["inputs"]["kind"]

    @property
    def reads_action(self) -> bool:
        if self.inputs == "features":
            return features.reads(self.header["features"], "action")
        return self.inputs in ("sa", "sas")

    @property
    def reads_next_obs(self) -> bool:
        if self.inputs == "features":
            return features.reads(self.header["features"], "next_obs")
        return self.inputs in ("ss", "sas")

    @property
    def form(self) -> str:
        return self.header["form"]

    @property
    def absorbing_reward(self) -> float:
        """r(s_a), the reward of the absorbing state every terminal transition enters
        (paper App. C.4): an agent that stops at termination should add
        ``gamma / (1 - gamma) * absorbing_reward`` to the terminal step's reward."""
        return float(self._evaluate(np.zeros((1, self.observation_size), np.float32),
                                    np.zeros((1, self.action_size), np.float32),
                                    np.zeros((1, self.observation_size), np.float32),
                                    np.zeros(1, bool), np.ones(1, bool))[0])

    def __repr__(self) -> str:
        where = f" from {self.path}" if self.path else ""
        return (f"Reward({self.form}, env={self.env_name!r}, inputs={self.inputs!r}, "
                f"obs={self.observation_size}, act={self.action_size}{where})")

    # -- evaluation ---------------------------------------------------------------------

    def _where(self) -> str:
        return str(self.path) if self.path else "reward"

    def _batch(self, name: str, value, size: int, lead: tuple[int, ...]) -> np.ndarray:
        array = np.asarray(value, np.float32)
        if array.ndim == 0 or array.shape[-1] != size:
            raise ValueError(f"{self._where()}: {name} has shape {list(array.shape)} but the "
                             f"reward expects {size} values per row ({self.env_name})")
        if lead is not None and array.shape[:-1] != lead:
            raise ValueError(f"{self._where()}: {name} has batch shape {list(array.shape[:-1])}"
                             f", obs has {list(lead)}")
        return array

    def _arguments(self, obs, action, next_obs, absorbing):
        obs = self._batch("obs", obs, self.observation_size, None)
        lead = obs.shape[:-1]
        if self.reads_action:
            if action is None:
                raise ValueError(f"{self._where()}: this reward reads actions "
                                 f"(inputs {self.inputs!r}); pass action=")
            action = self._batch("action", action, self.action_size, lead)
        else:
            action = np.zeros(lead + (self.action_size,), np.float32)
        if self.reads_next_obs:
            if next_obs is None:
                raise ValueError(f"{self._where()}: this reward reads next observations "
                                 f"(inputs {self.inputs!r}); pass next_obs=")
            next_obs = self._batch("next_obs", next_obs, self.observation_size, lead)
        else:
            next_obs = obs
        absorbing = np.zeros(lead, bool) if absorbing is None else np.broadcast_to(
            np.asarray(absorbing, bool), lead)
        return obs, action, next_obs, absorbing, lead

    def _evaluate(self, obs, action, next_obs, next_absorbing, obs_absorbing) -> np.ndarray:
        x = build_input(np, self.header, self.tensors, obs, action, next_obs, next_absorbing,
                        obs_absorbing)
        return program(np, self.header, self.tensors, x)

    def __call__(self, obs, action=None, next_obs=None, absorbing=None) -> np.ndarray:
        """Rewards of a batch of transitions, in pure NumPy (float32).

        Args:
          obs: raw observations (..., observation_size), as the env returns them.
          action: actions (..., action_size); required for inputs "sa" and "sas".
          next_obs: next observations; required for inputs "ss" and "sas".
          absorbing: (...) bool, the transition entered a terminal state (its next state
            is the absorbing state s_a). Only "ss"/"sas" rewards read it.

        Returns:
          rewards of shape (...), float32.
        """
        obs, action, next_obs, absorbing, lead = self._arguments(obs, action, next_obs,
                                                                 absorbing)
        flat = lambda a: a.reshape((-1,) + a.shape[len(lead):])  # noqa: E731
        n = int(np.prod(lead, dtype=np.int64))
        r = self._evaluate(flat(obs), flat(action), flat(next_obs), flat(absorbing),
                           np.zeros(n, bool))
        return r.reshape(lead)

    # -- JAX ----------------------------------------------------------------------------

    def jax_params(self) -> dict:
        """The tensors as JAX arrays: the ``params`` of :meth:`jax_apply`."""
        import jax.numpy as jnp

        return {name: jnp.asarray(t) for name, t in self.tensors.items()}

    def jax_apply(self, params: dict, obs, action=None, next_obs=None, absorbing=None,
                  obs_absorbing=None):
        """Jittable ``reward(params, obs, action, next_obs, absorbing) -> (...)``.

        Passing the tensors as ``params`` (rather than closing over them) keeps a large
        composite reward out of the compiled program's constants. ``obs_absorbing``
        marks rows whose state *is* s_a (for r(s_a)).
        """
        import jax.numpy as jnp

        obs = jnp.asarray(obs, jnp.float32)
        lead = obs.shape[:-1]
        if action is None:
            action = jnp.zeros(lead + (self.action_size,), jnp.float32)
        if next_obs is None:
            next_obs = obs
        flat = lambda a: jnp.reshape(a, (-1,) + a.shape[len(lead):])  # noqa: E731
        absorbing = jnp.zeros(lead, bool) if absorbing is None else jnp.broadcast_to(
            jnp.asarray(absorbing, bool), lead)
        obs_absorbing = jnp.zeros(lead, bool) if obs_absorbing is None else jnp.broadcast_to(
            jnp.asarray(obs_absorbing, bool), lead)
        x = build_input(jnp, self.header, params, flat(obs), flat(jnp.asarray(action, jnp.float32)),
                        flat(jnp.asarray(next_obs, jnp.float32)), flat(absorbing),
                        flat(obs_absorbing))
        return program(jnp, self.header, params, x).reshape(lead)

    def jax_absorbing_reward(self, params: dict):
        """r(s_a) as a traced scalar (see :attr:`absorbing_reward`)."""
        import jax.numpy as jnp

        zeros = jnp.zeros((1, self.observation_size), jnp.float32)
        return self.jax_apply(params, zeros, jnp.zeros((1, self.action_size)), zeros,
                              obs_absorbing=jnp.ones(1, bool))[0]

    def as_jax(self) -> Callable:
        """A jittable ``fn(obs, action=None, next_obs=None, absorbing=None)`` with the same
        values as calling the reward in NumPy (to float32 rounding)."""
        params = self.jax_params()
        return lambda obs, action=None, next_obs=None, absorbing=None: self.jax_apply(
            params, obs, action, next_obs, absorbing)

    # -- compatibility ------------------------------------------------------------------

    def check_observations(self, observation_size: int, observation_names=None,
                           where: str = "env") -> None:
        """Raise a one-line ``RewardFileError`` unless an env's observations have this
        reward's size and (when both sides name them) the same field names in order."""
        if observation_size != self.observation_size:
            raise _file.RewardFileError(
                f"{self._where()}: the reward reads {self.observation_size} observation values "
                f"({self.env_name}) but {where} has {observation_size}; use an env with the "
                "same observation layout")
        names = list(observation_names or [])
        if names and self.observation_names and names != self.observation_names:
            raise _file.RewardFileError(
                f"{self._where()}: observation layout differs: the reward reads "
                f"{self.observation_names}, {where} gives {names}")


def load(path: str | Path) -> Reward:
    """Load and validate a ``.reward`` file; raises ``RewardFileError`` (one line) on a bad
    file and never returns a partly loaded reward."""
    header, tensors = _file.read(path)
    return Reward(header, tensors, Path(path))
