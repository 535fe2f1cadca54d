"""L2 normalisation (torch's ``F.normalize(x, p=2, dim)``, Swin V2's cosine attention) to
:class:`lrp_core.L2Normalize`:

* ``LpNormalization(p=2, axis)``, one node (no epsilon in ONNX: the layer gets a negligible one);
* ``F.normalize`` as torch exports it, ``x / expand(clip(ReduceL2(x, [axis], keepdims=1),
  min=eps), shape(x))``: the ``ReduceL2`` of an activation is read only as the start of this
  pattern (``Clip(min=eps)`` or ``Max(·, eps)``, an optional ``Expand``, then ``Div`` of the same
  activation by it), which becomes one layer.

Each translation ``translate(t, n)`` reads the node ``n`` through the translator ``t`` and returns
one entry per node output (see :mod:`lrp_core.backends.readers.onnx.translations`).
"""

from __future__ import annotations

import numpy as np

import lrp_core as lrp

from .nodes import axis_in, read_axes
from .ops_normalization import claim_pattern, graph_index

__all__ = ["NORMALIZE"]

#: ONNX's LpNormalization has no epsilon: the norm is clamped at the smallest normal float32
_NO_EPS = float(np.finfo(np.float32).tiny)


def _lp_normalization(t, n):
    if int(n.attr("p", 2)) != 2:
        raise t.unsupported(n, f"LpNormalization with p={n.attr('p', 2)}: only the Euclidean "
                               "norm (p=2) has an lrp-core layer (lrp.L2Normalize)")
    value = t.value(n, 0)
    rank = len(t.shape(n, value, "LpNormalization")) + 1
    axis = axis_in(t, n, n.attr("axis", -1), rank)
    if axis == 0:
        raise t.unsupported(n, "LpNormalization over the batch axis mixes the samples")
    return [t.add(lrp.L2Normalize(axis, _NO_EPS), [value], n)]


def _reduce_l2(t, n):
    """``ReduceL2`` of an activation: only as the start of an exported ``F.normalize``."""
    pattern = _match_normalize(t, n)
    if pattern is None:
        raise t.unsupported(n, "ReduceL2 of an activation is read only as the start of an L2 "
                               "normalisation, x / Expand(Clip(ReduceL2(x, [axis], keepdims=1), "
                               "min=eps)) (torch's F.normalize)")
    axis, eps, claimed, div = pattern
    value = t.value(n, 0)
    rank = len(t.shape(n, value, "an L2 normalisation")) + 1
    axis = axis_in(t, n, axis, rank)
    if axis == 0:
        raise t.unsupported(n, "an L2 normalisation over the batch axis mixes the samples")
    claim_pattern(t, n, t.add(lrp.L2Normalize(axis, eps), [value], n), claimed, div)
    return [None]


def _match_normalize(t, n):
    """``(axis, eps, claimed, div)`` of the pattern starting at the ``ReduceL2`` node ``n``
    (``claimed``: ``(index, node)`` of the nodes after it that it replaces; ``div``: the index of
    the ``Div`` whose output is the normalised tensor), or ``None``."""
    readers, makers, outputs = graph_index(t)

    def only_reader(name):
        found = readers.get(name, [])
        return found[0] if len(found) == 1 and name not in outputs else None

    def scalar(name):
        if t.is_const(name):
            c = np.asarray(t.consts[name])
        else:
            made = makers.get(name)
            if made is None or made[1].op_type != "Constant":
                return None
            from .ops_elementwise import _constant_value

            try:
                c = np.asarray(_constant_value(made[1]))
            except (ValueError, TypeError, KeyError):
                return None
        return float(c.reshape(())) if c.size == 1 else None

    x = n.input(0)
    axes = read_axes(t, n, 1, 18)
    if axes is None or len(axes) != 1 or not n.attr("keepdims", 1) or n.outputs[0] in outputs:
        return None
    claimed, current = [], only_reader(n.outputs[0])
    if current is None:
        return None
    eps = None
    if current[1].op_type == "Clip":
        inputs = list(current[1].input)
        if len(inputs) < 2 or (len(inputs) > 2 and inputs[2]):
            return None  # no min, or a max
        eps = scalar(inputs[1])
    elif current[1].op_type == "Max" and len(current[1].input) == 2:
        eps = scalar(current[1].input[1])
    if eps is None or not eps > 0:
        return None
    claimed.append(current)
    current = only_reader(current[1].output[0])
    if current is not None and current[1].op_type == "Expand":
        claimed.append(current)
        current = only_reader(current[1].output[0])
    if current is None or current[1].op_type != "Div" or list(current[1].input)[0] != x:
        return None
    claimed.append(current)
    return axes[0], eps, claimed, current[0]


NORMALIZE = {
    "LpNormalization": _lp_normalization,
    "ReduceL2": _reduce_l2,
}
