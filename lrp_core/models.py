"""Small models built by hand, for the demo, the examples and the tests (NumPy weights).

``lenet5_digits()`` is the LeNet-5 that ``lrp demo`` explains, trained on scikit-learn's
handwritten digits by ``scripts/train_demo_lenet5.py``; ``random_lenet5(seed)`` has the same
layout with seeded random weights.
"""

from __future__ import annotations

import numpy as np

from .data import load_npz, read_npz
from .graph import Chain, Graph
from .layers import Conv, Dense, Flatten, MaxPool, ReLU

__all__ = ["lenet5", "lenet5_digits", "random_lenet5"]


def lenet5(params: dict, dtype=None) -> Graph:
    """LeNet-5 from torch-named weights: conv 5x5 (1→6, relu) → max pool 2 → conv 5x5 (6→16,
    relu) → max pool 2 → flatten → dense 256→120 (relu) → dense 120→84 (relu) → dense 84→10, on
    28x28 inputs; 8 layers. ``params`` maps ``conv1.weight``, ``conv1.bias``, ``conv2.*``,
    ``fc1.*``, ``fc2.*``, ``fc3.*`` to arrays in torch's layouts."""
    def p(name):
        value = params[name]
        return value if dtype is None else np.asarray(value, dtype=dtype)

    return Chain(
        Conv(p("conv1.weight"), p("conv1.bias"), activation=ReLU()),
        MaxPool(2),
        Conv(p("conv2.weight"), p("conv2.bias"), activation=ReLU()),
        MaxPool(2),
        Flatten(),
        Dense(p("fc1.weight"), p("fc1.bias"), activation=ReLU()),
        Dense(p("fc2.weight"), p("fc2.bias"), activation=ReLU()),
        Dense(p("fc3.weight"), p("fc3.bias")),
    )


def lenet5_digits(dtype=np.float32, *, path=None) -> Graph:
    """The demo's trained LeNet-5 (see :func:`lenet5`), weights read from the shipped
    ``lrp_core/data/lenet5_digits.npz`` (or ``path``) without unpickling. Inputs: ``(N, 1, 28,
    28)`` white-on-black digits in [0, 1]; outputs: 10 logits."""
    return lenet5(read_npz(path) if path is not None else load_npz("lenet5_digits.npz"), dtype)


def random_lenet5(seed: int = 0, dtype=np.float64) -> Graph:
    """LeNet-5 (see :func:`lenet5`) with seeded random weights (He-scaled), for examples and
    tests."""
    rng = np.random.default_rng(seed)

    def he(*shape):
        fan_in = int(np.prod(shape[1:]))
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)

    def small(n):
        return (0.01 * rng.standard_normal(n)).astype(dtype)

    names = [("conv1", (6, 1, 5, 5)), ("conv2", (16, 6, 5, 5)), ("fc1", (120, 256)),
             ("fc2", (84, 120)), ("fc3", (10, 84))]
    params = {}
    for name, shape in names:  # the same draw order as before: weight, then bias, layer by layer
        params[f"{name}.weight"] = he(*shape)
        params[f"{name}.bias"] = small(shape[0])
    return lenet5(params)
