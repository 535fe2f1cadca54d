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
from .nodes import axis_in, read_axes

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


def _decomposed_layer_norm(t, n):
    """``ReduceMean`` of an activation: only as the start of LayerNorm as exported before opset
    17, ``d = x - mean(x); d / sqrt(mean(d ** 2) + eps)`` over the last axes, with the following
    ``* weight`` and ``+ bias`` (constants) when there are; the whole pattern is one
    ``LayerNorm``, as the ``LayerNormalization`` node and the torch reader give."""
    pattern = _match_layer_norm(t, n)
    if pattern is None:
        raise t.unsupported(n, "ReduceMean of an activation is read only as the start of a "
                               "LayerNorm exported as arithmetic, (x - mean(x)) / sqrt(mean((x - "
                               "mean(x)) ** 2) + eps) [* weight + bias] over the last axes")
    x, axes, eps, weight, bias, nodes, last = pattern
    value = t.value(n, 0)
    shape = t.shape(n, value, "a LayerNorm exported as arithmetic")
    rank = len(shape) + 1
    axes = sorted(axis_in(t, n, a, rank) for a in axes)
    if axes != list(range(rank - len(axes), rank)) or 0 in axes:
        raise t.unsupported(n, f"a mean over axes {axes} of {('N',) + tuple(shape)}: only the last "
                               "axes (not the batch) are a LayerNorm")
    normalized = tuple(shape[axes[0] - 1:])
    try:
        weight = np.ones(normalized, np.float32) if weight is None else np.ascontiguousarray(
            np.broadcast_to(weight, normalized))
        bias = None if bias is None else np.ascontiguousarray(np.broadcast_to(bias, normalized))
    except ValueError as error:
        raise t.unsupported(n, "the weight or bias after a LayerNorm exported as arithmetic does "
                               "not broadcast over the normalised axes") from error
    layer = lrp.LayerNorm(normalized, weight, bias, eps=eps)
    claim_pattern(t, n, t.add(layer, [value], n), nodes, last)
    return [None]


def claim_pattern(t, n, out, nodes, last: int) -> None:
    """A pattern of nodes read as one layer starting at ``n``: the layer's value ``out`` stands
    for the output of node ``last``; the other nodes of the pattern (``nodes``: ``(index,
    node)``) and ``n`` itself produce nothing of their own (their outputs are internal)."""
    for index, node in nodes:
        t.claimed[index] = [out] if index == last else None
        if index != last:
            t.internal.update(name for name in node.output if name)
    t.internal.update(name for name in n.outputs if name)


def graph_index(t):
    """``(readers, makers, outputs)`` of the graph, for matching a pattern of nodes: the
    ``(index, node)`` pairs reading each value, the one making it, and the graph's output
    names."""
    readers: dict[str, list] = {}
    makers: dict[str, tuple] = {}
    for index, node in enumerate(t.graph.node):
        for name in node.input:
            readers.setdefault(name, []).append((index, node))
        for name in node.output:
            makers[name] = (index, node)
    return readers, makers, {v.name for v in t.graph.output}


def _match_layer_norm(t, n):
    """``(x, axes, eps, weight, bias, nodes, last)`` of the LayerNorm pattern starting at the
    ``ReduceMean`` node ``n`` (``nodes``: ``(index, node)`` of the pattern after ``n``; ``last``
    the index whose output is the LayerNorm's), or ``None`` if the graph does not hold it."""
    readers, makers, outputs = graph_index(t)

    def only_reader(name, op_type):
        found = readers.get(name, [])
        if len(found) != 1 or name in outputs or found[0][1].op_type != op_type:
            return None
        return found[0]

    def constant(name):
        if t.is_const(name):
            return t.consts[name]
        made = makers.get(name)
        if made is None or made[1].op_type != "Constant":
            return None
        from .ops_elementwise import _constant_value

        try:
            return np.asarray(_constant_value(made[1]))
        except (ValueError, TypeError, KeyError):
            return None

    def scalar(name, expected=None):
        c = constant(name)
        if c is None or c.size != 1:
            return None
        value = float(np.asarray(c).reshape(()))
        return value if expected is None or value == expected else None

    x, mean = n.input(0), n.outputs[0]
    axes = read_axes(t, n, 1, 18)
    if not axes or not n.attr("keepdims", 1) or mean in outputs:
        return None
    subs = readers.get(mean, [])
    if len(subs) != 1 or subs[0][1].op_type != "Sub" or list(subs[0][1].input) != [x, mean]:
        return None
    sub = subs[0]
    d = sub[1].output[0]
    after_d = readers.get(d, [])
    if d in outputs or len(after_d) != 2 or {m.op_type for _, m in after_d} != {"Pow", "Div"}:
        return None
    power = next(item for item in after_d if item[1].op_type == "Pow")
    div = next(item for item in after_d if item[1].op_type == "Div")
    if list(power[1].input)[0] != d or scalar(power[1].input[1], 2.0) is None:
        return None
    if list(div[1].input)[0] != d:
        return None
    variance = only_reader(power[1].output[0], "ReduceMean")
    if variance is None or _reduce_axes(t, variance[1]) != list(axes):
        return None
    add = only_reader(variance[1].output[0], "Add")
    if add is None:
        return None
    other = [name for name in add[1].input if name != variance[1].output[0]]
    eps = scalar(other[0]) if len(other) == 1 else None
    if eps is None:
        return None
    sqrt = only_reader(add[1].output[0], "Sqrt")
    if sqrt is None or only_reader(sqrt[1].output[0], "Div") != div:
        return None
    pattern = [sub, power, variance, add, sqrt, div]
    last, weight, bias = div, None, None
    mul = only_reader(div[1].output[0], "Mul")
    if mul is not None:
        w = [name for name in mul[1].input if name != div[1].output[0]]
        weight = constant(w[0]) if len(w) == 1 else None
        if weight is not None:
            pattern.append(mul)
            last = mul
            shift = only_reader(mul[1].output[0], "Add")
            if shift is not None:
                b = [name for name in shift[1].input if name != mul[1].output[0]]
                bias = constant(b[0]) if len(b) == 1 else None
                if bias is not None:
                    pattern.append(shift)
                    last = shift
    return x, axes, eps, weight, bias, pattern, last[0]


def _reduce_axes(t, node):
    """The ``axes`` of a ``ReduceMean`` node (attribute before opset 18, else a constant input),
    ``None`` if they are not known now."""
    from onnx import helper

    if t.opset < 18:
        for a in node.attribute:
            if a.name == "axes":
                return [int(v) for v in helper.get_attribute_value(a)]
        return None
    if len(node.input) > 1 and t.is_const(node.input[1]):
        return [int(v) for v in np.asarray(t.consts[node.input[1]]).reshape(-1)]
    return None


NORMALIZATION = {
    "BatchNormalization": _batch_norm,
    "LayerNormalization": _layer_norm,
    "ReduceMean": _decomposed_layer_norm,
}
