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
import onnx
from onnx import AttributeProto, helper

__all__ = ["BATCH", "NodeView", "ints", "axis_in", "read_axes", "np_dtype", "shape_slice", "show",
           "spatial_attrs", "explicit_padding"]

_TENSOR = (AttributeProto.TENSOR, AttributeProto.SPARSE_TENSOR)
_TENSORS = (AttributeProto.TENSORS, AttributeProto.SPARSE_TENSORS)

#: Stands for the batch size inside folded shape tensors (``Shape`` of an activation).
BATCH = 2 ** 33 + 17


class NodeView:
    """An ONNX node with its attributes decoded, its position and a label for messages.

    ``read_tensor(proto, what)`` turns the tensor attributes into arrays (the translator passes
    the loader's one function for tensors, which confines external data to the model's folder);
    without it they are left undecoded. With ``opset``, :meth:`attr` checks each attribute it
    returns against the type the operator's schema declares."""

    def __init__(self, node, index: int, *, opset: int | None = None, read_tensor=None):
        self.node = node
        self.index = index
        self.op_type = node.op_type
        self.inputs = list(node.input)
        self.outputs = list(node.output)
        self.attrs = {}
        self.types = {}
        self.opset = opset
        for a in node.attribute:
            self.types[a.name] = a.type
            if a.type in _TENSOR + _TENSORS:
                if read_tensor is None:
                    value = None
                elif a.type in _TENSOR:
                    what = f"the attribute {a.name!r} of node {_label(node, index)}"
                    value = read_tensor(a.t if a.type == AttributeProto.TENSOR else a.sparse_tensor,
                                        what)
                else:
                    what = f"the attribute {a.name!r} of node {_label(node, index)}"
                    protos = list(a.tensors) + list(a.sparse_tensors)
                    value = [read_tensor(proto, what) for proto in protos]
            else:
                value = helper.get_attribute_value(a)
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            self.attrs[a.name] = value
        self.label = _label(node, index)
        first = self.outputs[0] if self.outputs else "?"
        self.layer_name = node.name if node.name else f"{node.op_type}:{first}"

    def attr(self, name, default=None):
        """The attribute ``name`` (``default`` when absent), checked against the type the
        operator's schema declares: ``ValueError`` naming it when the file stores another type
        (``strides`` as the string ``"22"``, ...)."""
        if name not in self.attrs:
            return default
        expected = self._schema_type(name)
        if expected is not None and self.types[name] != expected:
            raise ValueError(f"its attribute {name!r} is stored as "
                             f"{AttributeProto.AttributeType.Name(self.types[name])}, its "
                             f"operator declares {AttributeProto.AttributeType.Name(expected)}")
        return self.attrs[name]

    def check_attributes(self) -> str | None:
        """Why the node's attributes do not fit its operator's schema at its opset (an attribute
        the operator does not declare, or stored with another type), ``None`` if they do or the
        schema is unknown. The translator refuses such a node before reading any attribute."""
        schema = self._schema()
        if schema is None:
            return None
        for name, stored in self.types.items():
            declared = schema.attributes.get(name)
            if declared is None:
                return (f"it has the attribute {name!r}, which {self.op_type} does not declare at "
                        f"opset {self.opset}")
            if int(declared.type) != stored:
                return (f"its attribute {name!r} is stored as "
                        f"{AttributeProto.AttributeType.Name(stored)}, {self.op_type} declares "
                        f"{AttributeProto.AttributeType.Name(int(declared.type))}")
        return None

    def _schema(self):
        if self.opset is None or self.node.domain not in ("", "ai.onnx"):
            return None
        try:
            return onnx.defs.get_schema(self.op_type, self.opset, "")
        except onnx.defs.SchemaError:
            return None

    def _schema_type(self, name):
        schema = self._schema()
        declared = None if schema is None else schema.attributes.get(name)
        return None if declared is None else int(declared.type)

    def input(self, i: int) -> str:
        """The name of input ``i``, ``""`` when it is absent (optional inputs)."""
        return self.inputs[i] if i < len(self.inputs) else ""


def _label(node, index: int) -> str:
    if node.name:
        return repr(node.name)
    first = node.output[0] if node.output else "?"
    return f"#{index} (unnamed, output {first!r})"


def axis_in(t, n, axis, rank: int, what: str = "axis") -> int:
    """``axis`` of a tensor of rank ``rank`` in ``[0, rank)``: ONNX allows ``[-rank, rank)``;
    anything else is refused (never taken modulo)."""
    axis = int(axis)
    if not -rank <= axis < rank:
        raise t.unsupported(n, f"{what} {axis} is out of range for a tensor of rank {rank}")
    return axis + rank if axis < 0 else axis


def ints(values) -> list[int]:
    """``values`` (an array, a list or a number) as a flat list of Python ints."""
    return [int(v) for v in np.asarray(values).reshape(-1)]


def read_axes(t, n, input_index: int, since: int):
    """The ``axes`` of Squeeze/Unsqueeze/Reduce*: an attribute before opset ``since``, then an
    optional input."""
    if t.opset < since:
        axes = n.attr("axes")
        return None if axes is None else ints(axes)
    axes = t.const(n, input_index, "axes", optional=True)
    return None if axes is None else ints(axes)


def np_dtype(onnx_type: int):
    """The NumPy dtype of an ONNX tensor element type (the ``to`` of a ``Cast``)."""
    return helper.tensor_dtype_to_np_dtype(onnx_type)


def shape_slice(n, shape):
    """The part of ``shape`` a ``Shape`` node returns (its ``start`` and ``end`` attributes)."""
    start, end = int(n.attr("start", 0)), n.attr("end")
    return shape[start:int(end)] if end is not None else shape[start:]


def show(values) -> str:
    """A folded shape tensor for messages, with ``N`` where the batch size stands."""
    return "[" + ", ".join("N" if int(v) == BATCH else str(int(v)) for v in values) + "]"


def spatial_attrs(t, n, d: int):
    """The ``strides`` and ``dilations`` of a ``d``-dimensional convolution or pooling."""
    strides = n.attr("strides", [1] * d)
    dilations = n.attr("dilations", [1] * d)
    if len(strides) != d or len(dilations) != d:
        raise t.unsupported(n, f"strides {strides} / dilations {dilations} do not have {d} entries")
    strides, dilations = ints(strides), ints(dilations)
    if any(s < 1 for s in strides + dilations):
        raise t.unsupported(n, f"strides {strides} / dilations {dilations} must be at least 1")
    return strides, dilations


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
