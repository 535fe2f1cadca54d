"""Translations of the normalization operators in inference mode: ``BatchNormalization`` to
:class:`lrp_core.BatchNorm` and ``LayerNormalization`` to :class:`lrp_core.LayerNorm`.

Each translation ``translate(t, n)`` reads the node ``n`` through the translator ``t`` and returns
one entry per node output (see :mod:`lrp_core.backends.readers.onnx.translations`).
"""

from __future__ import annotations

import math

import numpy as np

import lrp_core as lrp

from .loading import MAX_ELEMENTS, too_large
from .nodes import axis_in

__all__ = ["NORMALIZATION"]


def _batch_norm(t, n):
    x = t.value(n, 0)
    if any(t.is_used(name) for name in n.outputs[1:]):
        raise t.unsupported(n, "its running statistics outputs are used (training mode)")
    if n.attr("training_mode", 0):
        raise t.unsupported(n, "training_mode=1")
    if t.opset < 9 and not n.attr("spatial", 1):
        raise t.unsupported(n, "spatial=0 (statistics per element, not per channel)")
    scale, bias = t.const(n, 1, "scale"), t.const(n, 2, "B")
    mean, var = t.const(n, 3, "mean"), t.const(n, 4, "var")
    if any(a.ndim != 1 for a in (scale, bias, mean, var)):
        raise t.unsupported(n, "its parameters are not vectors over the channels")
    layer = lrp.BatchNorm(scale, bias, mean, var, eps=float(n.attr("epsilon", 1e-5)))
    return [t.add(layer, [x], n)] + [None] * (len(n.outputs) - 1)


def _layer_norm(t, n):
    x = t.value(n, 0)
    if any(t.is_used(name) for name in n.outputs[1:]):
        raise t.unsupported(n, "its Mean or InvStdDev output is used")
    shape = t.shape(n, x, "LayerNormalization")
    axis = axis_in(t, n, n.attr("axis", -1), len(shape) + 1)
    if axis == 0:
        raise t.unsupported(n, "it normalises over the batch axis")
    normalized = tuple(shape[axis - 1:])
    if math.prod(normalized) > MAX_ELEMENTS:
        raise too_large(t.label, f"the scale of node {n.label} ({n.op_type})",
                        math.prod(normalized))
    scale = t.const(n, 1, "Scale")
    bias = t.const(n, 2, "B", optional=True)
    weight = np.ascontiguousarray(np.broadcast_to(scale, normalized))
    bias = None if bias is None else np.ascontiguousarray(np.broadcast_to(bias, normalized))
    layer = lrp.LayerNorm(normalized, weight, bias, eps=float(n.attr("epsilon", 1e-5)))
    return [t.add(layer, [x], n)] + [None] * (len(n.outputs) - 1)


NORMALIZATION = {
    "BatchNormalization": _batch_norm,
    "LayerNormalization": _layer_norm,
}
