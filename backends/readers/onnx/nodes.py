"""ONNX nodes as the reader sees them: :class:`NodeView` (attributes decoded, a label for
messages) and the helpers that read attributes the way the node's opset defines them.

Conventions: a *per-sample shape* is an activation's shape without the batch axis. Folded shape
tensors hold :data:`BATCH` where the batch size stands, so that a ``Reshape`` fed by
``Shape -> Gather -> Unsqueeze -> Concat`` knows which entry is the batch.

The helpers that take a translator ``t`` use only its ``opset``, ``const``, ``shape`` and
``unsupported`` (see :mod:`lrp_core.backends.readers.onnx.translator`).
"""

from __future__ import annotations

import numpy as np
from onnx import helper

__all__ = ["BATCH", "NodeView", "ints", "read_axes", "np_dtype", "shape_slice", "show",
           "spatial_attrs", "explicit_padding"]

#: Stands for the batch size inside folded shape tensors (``Shape`` of an activation).
BATCH = 2 ** 33 + 17


class NodeView:
    """An ONNX node with its attributes decoded, its position and a label for messages."""

    def __init__(self, node, index: int):
        self.node = node
        self.index = index
        self.op_type = node.op_type
        self.inputs = list(node.input)
        self.outputs = list(node.output)
        self.attrs = {}
        for a in node.attribute:
            value = helper.get_attribute_value(a)
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            self.attrs[a.name] = value
        if node.name:
            self.label = repr(node.name)
            self.layer_name = node.name
        else:
            first = self.outputs[0] if self.outputs else "?"
            self.label = f"#{index} (unnamed, output {first!r})"
            self.layer_name = f"{node.op_type}:{first}"

    def attr(self, name, default=None):
        return self.attrs.get(name, default)

    def input(self, i: int) -> str:
        """The name of input ``i``, ``""`` when it is absent (optional inputs)."""
        return self.inputs[i] if i < len(self.inputs) else ""


def ints(values) -> list[int]:
    """``values`` (an array, a list or a number) as a flat list of Python ints."""
    return [int(v) for v in np.asarray(values).reshape(-1)]


def read_axes(t, n, input_index: int, since: int):
    """The ``axes`` of Squeeze/Unsqueeze/Reduce*: an attribute before opset ``since``, then an
    optional input."""
    if t.opset < since:
        axes = n.attr("axes")
        return None if axes is None else [int(a) for a in axes]
    axes = t.const(n, input_index, "axes", optional=True)
    return None if axes is None else ints(axes)


def np_dtype(onnx_type: int):
    """The NumPy dtype of an ONNX tensor element type (the ``to`` of a ``Cast``)."""
    return helper.tensor_dtype_to_np_dtype(onnx_type)


def shape_slice(n, shape):
    """The part of ``shape`` a ``Shape`` node returns (its ``start`` and ``end`` attributes)."""
    start, end = n.attr("start", 0), n.attr("end")
    return shape[start:end] if end is not None else shape[start:]


def show(values) -> str:
    """A folded shape tensor for messages, with ``N`` where the batch size stands."""
    return "[" + ", ".join("N" if int(v) == BATCH else str(int(v)) for v in values) + "]"


def spatial_attrs(t, n, d: int):
    """The ``strides`` and ``dilations`` of a ``d``-dimensional convolution or pooling."""
    strides = n.attr("strides", [1] * d)
    dilations = n.attr("dilations", [1] * d)
    if len(strides) != d or len(dilations) != d:
        raise t.unsupported(n, f"strides {strides} / dilations {dilations} do not have {d} entries")
    return [int(s) for s in strides], [int(v) for v in dilations]


def explicit_padding(t, n, x, kernel, strides, dilations):
    """Explicit ``(low, high)`` pairs from ``pads`` or ``auto_pad`` (SAME_UPPER puts the odd
    extra cell at the end, SAME_LOWER at the start; VALID is none)."""
    d = len(kernel)
    auto = n.attr("auto_pad", "NOTSET") or "NOTSET"
    if auto == "NOTSET":
        pads = [int(p) for p in n.attr("pads", [0] * (2 * d))]
        if len(pads) != 2 * d:
            raise t.unsupported(n, f"pads {pads} does not have 2 x {d} entries")
        if any(p < 0 for p in pads):
            raise t.unsupported(n, f"negative pads {pads} (cropping) are not supported")
        return tuple(zip(pads[:d], pads[d:]))
    if auto == "VALID":
        return ((0, 0),) * d
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise t.unsupported(n, f"auto_pad={auto!r} is not one of NOTSET, SAME_UPPER, SAME_LOWER, "
                               "VALID")
    if all(s == 1 for s in strides):
        totals = [dl * (k - 1) for k, dl in zip(kernel, dilations)]
    else:
        lengths = t.shape(n, x, f"auto_pad={auto} with strides {strides}")[1:]
        totals = []
        for length, k, s, dl in zip(lengths, kernel, strides, dilations):
            out = -(-length // s)
            totals.append(max((out - 1) * s + dl * (k - 1) + 1 - length, 0))
    if auto == "SAME_UPPER":
        return tuple((total // 2, total - total // 2) for total in totals)
    return tuple((total - total // 2, total // 2) for total in totals)
