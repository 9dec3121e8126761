"""Float64 NumPy forward passes of trirl's networks, the independent references the tests
compare JAX outputs with (imported by test modules; pytest puts tests/ on sys.path)."""

import numpy as np


def np_mlp(layers, x):
    """Float64 forward pass of ``trirl.networks.MLP`` (tanh hidden layers) from its
    ``{"Dense_i": {"kernel", "bias"}}`` parameters."""
    names = sorted(layers, key=lambda name: int(name.split("_")[1]))
    h = np.asarray(x, np.float64)
    for i, name in enumerate(names):
        h = h @ np.asarray(layers[name]["kernel"], np.float64) + np.asarray(
            layers[name]["bias"], np.float64)
        if i < len(names) - 1:
            h = np.tanh(h)
    return h


def np_scalar(params, x):
    """Float64 forward pass of ``trirl.networks.ScalarMLP`` from flax params."""
    return np_mlp(params["params"]["MLP_0"], x)[..., 0]
