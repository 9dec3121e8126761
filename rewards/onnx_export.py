"""A ``Reward`` as an ONNX graph, for C++, PyTorch or any ONNX runtime (no JAX needed).

The graph performs the reward program of ``trirl.rewards.reward`` node by node (same
normalisation, input layout, networks and Alg. 2 recursion, oldest member first), so
it agrees with the NumPy reader to float32 rounding. Inputs (float32 unless noted,
batch axis ``N``): ``obs`` [N, obs]; ``action`` [N, act] for inputs "sa"/"sas";
``next_obs`` [N, obs] and ``absorbing`` [N] bool (the transition entered a terminal
state) for "ss"/"sas". Output ``reward`` [N]. The header travels as the model's
metadata (``trirl_reward``), so ``trirl inspect``-level information is not lost.

Needs the ``onnx`` package (``pip install "trirl[onnx]"``); imported only when used.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trirl.rewards import _file, features
from trirl.rewards.reward import Reward

OPSET = 17


class _Graph:
    """Collects nodes and initializers with unique names."""

    def __init__(self, onnx):
        self.onnx, self.nodes, self.inits, self._n = onnx, [], [], 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, value, hint: str = "c") -> str:
        name = self.name(hint)
        self.inits.append(self.onnx.numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, *inputs: str, hint: str = "t", **attrs) -> str:
        out = self.name(hint)
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [out], **attrs))
        return out


def _activation(g: _Graph, name: str, h: str) -> str:
    if name == "tanh":
        return g.op("Tanh", h)
    if name == "relu":
        return g.op("Relu", h)
    if name == "elu":
        return g.op("Elu", h, alpha=1.0)
    if name == "silu":
        return g.op("Mul", h, g.op("Sigmoid", h))
    raise ValueError(f"unknown activation {name!r}")


def _mlp(g: _Graph, reward: Reward, prefix: str, x: str) -> str:
    net = reward.header["networks"][prefix]
    depth = len(net["layers"]) - 1
    h = x
    for i in range(depth):
        kernel = reward.tensors[f"{prefix}/layer{i}/kernel"]
        bias = reward.tensors[f"{prefix}/layer{i}/bias"]
        if bias.ndim == 2:  # stacked members: (m, H) -> (m, 1, H) broadcasts over rows
            bias = bias[:, None, :]
        h = g.op("Add", g.op("MatMul", h, g.const(kernel, f"{prefix}_w{i}")),
                 g.const(bias, f"{prefix}_b{i}"))
        if i < depth - 1:
            h = _activation(g, net["activation"], h)
    return g.op("Squeeze", h, g.const(np.array([-1], np.int64)))


def _output_transform(g: _Graph, name: str, y: str) -> str:
    """``trirl.rewards.reward.output_transform`` as nodes."""
    if name == "log_sigmoid":  # log sigmoid(y) = -softplus(-y)
        return g.op("Neg", g.op("Softplus", g.op("Neg", y)))
    if name == "softplus":
        return g.op("Softplus", y)
    if name == "amp":  # max(0, 1 - 0.25 (y - 1)^2)
        d = g.op("Sub", y, g.const(np.float32(1.0)))
        q = g.op("Sub", g.const(np.float32(1.0)),
                 g.op("Mul", g.const(np.float32(0.25)), g.op("Mul", d, d)))
        return g.op("Max", q, g.const(np.float32(0.0)))
    return y


def _state_slot(g: _Graph, reward: Reward, s: str, flag: str | None) -> list[str]:
    inputs = reward.header["inputs"]
    if inputs["normalize"]:
        s = g.op("Div", g.op("Sub", s, g.const(reward.tensors["normalizer/mean"])),
                 g.const(reward.tensors["normalizer/std"]))
        clip = np.float32(inputs["clip"])
        s = g.op("Clip", s, g.const(-clip), g.const(clip))
    if not inputs["absorbing_indicator"]:
        return [s]
    if flag is None:  # the state is never s_a here: indicator 0
        rows = g.op("Shape", s, start=0, end=1)
        shape = g.op("Concat", rows, g.const(np.array([1], np.int64)), axis=0)
        zero = g.op("ConstantOfShape", shape,
                    value=g.onnx.numpy_helper.from_array(np.zeros(1, np.float32)))
        return [s, zero]
    col = g.op("Unsqueeze", flag, g.const(np.array([1], np.int64)))
    s = g.op("Where", col, g.const(np.float32(0.0)), s)
    return [s, g.op("Cast", col, to=g.onnx.TensorProto.FLOAT)]


def _features(g: _Graph, spec: list, action: str | None) -> str:
    """The base features [N, F] of ``trirl.rewards.features.evaluate``, column by column."""
    inputs = {"obs": "obs", "next_obs": "next_obs", "action": action}
    columns = []
    for term in spec:
        kind = term["term"]
        source = inputs[features.SOURCES[kind]]
        if kind == "action_sq_sum":
            columns.append(g.op("ReduceSum", g.op("Mul", source, source),
                                g.const(np.array([1], np.int64)), keepdims=1))
        elif kind in features.DISTANCES:
            d = g.op("Sub", g.op("Gather", source, g.const(np.array(term["index"], np.int64)),
                                 axis=1),
                     g.op("Gather", source, g.const(np.array(term["to"], np.int64)), axis=1))
            columns.append(g.op("Sqrt", g.op("ReduceSum", g.op("Mul", d, d),
                                             g.const(np.array([1], np.int64)), keepdims=1)))
        else:
            columns.append(g.op("Gather", source, g.const(np.array([term["index"]], np.int64)),
                                axis=1))
    return g.op("Concat", *columns, axis=1, hint="features")


def to_onnx(reward: Reward):
    """The ``onnx.ModelProto`` of ``reward``."""
    import onnx
    from onnx import TensorProto, helper

    g = _Graph(onnx)
    kind = reward.inputs
    obs_n, act_n = reward.observation_size, reward.action_size
    graph_inputs = [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["N", obs_n])]
    action = None
    if reward.reads_action:
        graph_inputs.append(helper.make_tensor_value_info("action", TensorProto.FLOAT,
                                                          ["N", act_n]))
        action = "action"
        env = reward.header["env"]
        if "action_low" in env:  # the executed action, as the env clips it
            action = g.op("Min", g.op("Max", action, g.const(np.float32(env["action_low"]))),
                          g.const(np.float32(env["action_high"])))
    if reward.reads_next_obs:
        graph_inputs.append(helper.make_tensor_value_info("next_obs", TensorProto.FLOAT,
                                                          ["N", obs_n]))
    if kind == "features":
        parts = _state_slot(g, reward, _features(g, reward.header["features"], action), None)
    else:
        parts = _state_slot(g, reward, "obs", None)  # kind "s": nothing else
        if kind in ("sa", "sas"):
            parts.append(action)
        if kind in ("ss", "sas"):
            graph_inputs.append(helper.make_tensor_value_info("absorbing", TensorProto.BOOL,
                                                              ["N"]))
            parts += _state_slot(g, reward, "next_obs", "absorbing")
    x = g.op("Concat", *parts, axis=1, hint="x")
    header = reward.header
    if header["form"] == "adversarial":
        r = _output_transform(g, header["adversarial"]["output"],
                              _mlp(g, reward, "reward", x))
    elif header["form"] in ("fitted", "features"):
        r = _mlp(g, reward, "fit" if header["form"] == "fitted" else "reward", x)
    else:
        comp = header["composite"]
        beta = np.float32(header["beta"])
        if comp["base"] == "fit":
            r = g.op("Mul", g.const(np.float32(comp.get("fit_scale", 1.0))),
                     _mlp(g, reward, "fit", x))
        else:  # zeros of shape [N]: 0 * a finite function of x would not be safe for NaN
            rows = g.op("Shape", x, start=0, end=1)
            r = g.op("ConstantOfShape", rows,
                     value=onnx.numpy_helper.from_array(np.zeros(1, np.float32)))
        if comp["members"]:
            logits = _mlp(g, reward, "members", x)
            for j, step in enumerate(reward.tensors["members/step"]):
                # (1 - s) * r + (s * beta) * logit, each factor rounded to float32 as in NumPy.
                logit = g.op("Gather", logits, g.const(np.array(j, np.int64)), axis=0)
                r = g.op("Add", g.op("Mul", g.const(np.float32(1.0) - step), r),
                         g.op("Mul", g.const(np.float32(step * beta)), logit))
        r = g.op("Div", r, g.const(beta))
    g.nodes.append(helper.make_node("Identity", [r], ["reward"]))
    graph = helper.make_graph(
        g.nodes, f"trirl_reward_{reward.env_name}", graph_inputs,
        [helper.make_tensor_value_info("reward", TensorProto.FLOAT, ["N"])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="trirl")
    model.ir_version = 8  # readable by onnxruntime >= 1.14
    helper.set_model_props(model, {_file.METADATA_KEY: json.dumps(header, sort_keys=True)})
    onnx.checker.check_model(model)
    return model


def save(reward: Reward, path: str | Path) -> Path:
    """Write ``reward`` as an ONNX file atomically."""
    import os

    try:
        import onnx
    except ModuleNotFoundError:
        raise _file.RewardFileError("ONNX export needs the onnx package: pip install "
                                    "'trirl[onnx]' (or pip install onnx)") from None
    path = Path(path)
    model = to_onnx(reward)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        onnx.save(model, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
