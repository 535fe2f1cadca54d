"""The per-operator part of the ONNX reader: one translation per ONNX operator, the NumPy
constant folding of shape computations.

Each translation ``_op(t, n)`` reads the node ``n`` (a :class:`NodeView`) through the
translator ``t`` (:class:`lrp_core.backends.readers.onnx.reader.Translator`) and returns one entry per node
output: a value index of the lrp_core graph under construction (an activation), a NumPy array
(a constant) or ``None`` (an output nothing reads). Attributes are read the way the node's opset
defines them (``axes`` as an attribute before opset 13 and an input from 13 on, and so on).

Conventions: arrays are batch first; a *per-sample shape* is an activation's shape without the
batch axis. Folded shape tensors hold :data:`BATCH` where the batch size stands, so that a
``Reshape`` fed by ``Shape -> Gather -> Unsqueeze -> Concat`` knows which entry is the batch.
"""

from __future__ import annotations

import math

import numpy as np
from onnx import helper, numpy_helper

import lrp_core as lrp
from lrp_core.arrays import namespace_of
from lrp_core.kernels.shapes import normalize_padding
from lrp_core.layers import Affine, ZeroPad

__all__ = ["BATCH", "NodeView", "TRANSLATIONS", "FOLDINGS", "fold_affine", "absorb_pad"]

#: Stands for the batch size inside folded shape tensors (``Shape`` of an activation).
BATCH = 2 ** 33 + 17

_MAX_FOLDED_ELEMENTS = 1 << 26  # a folded constant larger than this is not a shape computation


# ---------------------------------------------------------------------------------------------
# node access
# ---------------------------------------------------------------------------------------------
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


def _ints(values) -> list[int]:
    return [int(v) for v in np.asarray(values).reshape(-1)]


def _axes(t, n, input_index: int, since: int):
    """The ``axes`` of Squeeze/Unsqueeze/Reduce*: an attribute before opset ``since``, then an
    optional input."""
    if t.opset < since:
        axes = n.attr("axes")
        return None if axes is None else [int(a) for a in axes]
    axes = t.const(n, input_index, "axes", optional=True)
    return None if axes is None else _ints(axes)


# ---------------------------------------------------------------------------------------------
# constant folding (NumPy), for shape computations and reshaped initializers
# ---------------------------------------------------------------------------------------------
def _np_dtype(onnx_type: int):
    return helper.tensor_dtype_to_np_dtype(onnx_type)


def _check_size(t, n, shape):
    shape = _ints(shape)
    if any(s == BATCH for s in shape) or any(s < 0 for s in shape):
        raise t.unsupported(n, f"it builds a tensor of shape {_show(shape)}, which depends on the batch size")
    if math.prod(shape) > _MAX_FOLDED_ELEMENTS:
        raise t.unsupported(n, f"it builds a constant of {math.prod(shape)} elements; constant folding is "
                               "meant for shape computations")
    return shape


def _show(values) -> str:
    return "[" + ", ".join("N" if int(v) == BATCH else str(int(v)) for v in values) + "]"


def _fold_constant(t, n, c):
    value = n.attr("value")
    if value is not None:
        return [numpy_helper.to_array(value).copy()]
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in n.attrs:
            return [np.asarray(n.attrs[key], dtype=dtype)]
    raise t.unsupported(n, f"a Constant with attributes {sorted(n.attrs)} (only tensors and numbers are supported)")


def _fold_shape(t, n, c):
    shape = np.asarray(c[0].shape, dtype=np.int64)
    return [_slice_shape(n, shape)]


def _slice_shape(n, shape):
    start, end = n.attr("start", 0), n.attr("end")
    return shape[start:end] if end is not None else shape[start:]


def _fold_slice(t, n, c):
    data = c[0]
    if t.opset < 10:
        starts, ends = n.attr("starts"), n.attr("ends")
        axes, steps = n.attr("axes"), None
    else:
        starts, ends = _ints(c[1]), _ints(c[2])
        axes = None if len(c) < 4 or c[3] is None else _ints(c[3])
        steps = None if len(c) < 5 or c[4] is None else _ints(c[4])
    axes = list(range(len(starts))) if axes is None else list(axes)
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        index[axis % data.ndim] = slice(int(start), int(end), int(step))
    return [data[tuple(index)]]


def _fold_reshape(t, n, c):
    data = c[0]
    target = _ints(c[1])
    if not n.attr("allowzero", 0):
        target = [data.shape[i] if s == 0 else s for i, s in enumerate(target)]
    return [np.reshape(data, target)]


def _fold_unsqueeze(t, n, c):
    axes = _axes(t, n, 1, 13)
    rank = c[0].ndim + len(axes)
    return [np.expand_dims(c[0], tuple(sorted(a % rank for a in axes)))]


def _fold_squeeze(t, n, c):
    axes = _axes(t, n, 1, 13)
    if axes is None:
        return [np.squeeze(c[0])]
    return [np.squeeze(c[0], axis=tuple(a % c[0].ndim for a in axes))]


def _fold_flatten(t, n, c):
    axis = int(n.attr("axis", 1))
    axis = axis + c[0].ndim if axis < 0 else axis
    return [c[0].reshape(math.prod(c[0].shape[:axis]), math.prod(c[0].shape[axis:]))]


def _fold_div(t, n, c):
    a, b = c
    if np.issubdtype(a.dtype, np.integer):
        return [(np.sign(a) * np.sign(b) * (np.abs(a) // np.abs(b))).astype(a.dtype)]
    return [np.asarray(a / b, dtype=a.dtype)]


def _fold_constant_of_shape(t, n, c):
    shape = _check_size(t, n, c[0])
    value = n.attr("value")
    fill = numpy_helper.to_array(value).reshape(-1)[0] if value is not None else np.float32(0)
    return [np.full(shape, fill, dtype=np.asarray(fill).dtype)]


def _fold_expand(t, n, c):
    shape = _check_size(t, n, c[1])
    out = np.broadcast_shapes(c[0].shape, tuple(shape))
    _check_size(t, n, out)
    return [np.broadcast_to(c[0], out).copy()]


def _fold_range(t, n, c):
    out = np.arange(c[0].item(), c[1].item(), c[2].item(), dtype=c[0].dtype)
    _check_size(t, n, out.shape)
    return [out]


def _fold_tile(t, n, c):
    _check_size(t, n, np.asarray(c[0].shape) * np.asarray(_ints(c[1])))
    return [np.tile(c[0], _ints(c[1]))]


def _reduce(fn, axes_input_since):
    def fold(t, n, c):
        axes = _axes(t, n, 1, axes_input_since)
        keepdims = bool(n.attr("keepdims", 1))
        if axes is None or not axes:
            if axes is not None and n.attr("noop_with_empty_axes", 0):
                return [c[0]]
            return [np.asarray(fn(c[0], axis=None, keepdims=keepdims))]
        return [np.asarray(fn(c[0], axis=tuple(a % c[0].ndim for a in axes), keepdims=keepdims))]
    return fold


def _elementwise(fn):
    return lambda t, n, c: [np.asarray(fn(*c))]


def _same_type(fn):
    return lambda t, n, c: [np.asarray(fn(*c)).astype(c[0].dtype)]


def _variadic(fn):
    def fold(t, n, c):
        out = c[0]
        for x in c[1:]:
            out = fn(out, x)
        return [np.asarray(out)]
    return fold


FOLDINGS = {
    "Constant": _fold_constant,
    "Identity": lambda t, n, c: [c[0]],
    "Cast": lambda t, n, c: [c[0].astype(_np_dtype(n.attr("to")))],
    "Shape": _fold_shape,
    "Size": lambda t, n, c: [np.asarray(c[0].size, dtype=np.int64)],
    "Gather": lambda t, n, c: [np.take(c[0], c[1].astype(np.int64), axis=n.attr("axis", 0))],
    "Unsqueeze": _fold_unsqueeze,
    "Squeeze": _fold_squeeze,
    "Concat": lambda t, n, c: [np.concatenate([x for x in c if x is not None], axis=n.attr("axis"))],
    "Slice": _fold_slice,
    "Reshape": _fold_reshape,
    "Flatten": _fold_flatten,
    "Transpose": lambda t, n, c: [np.transpose(c[0], n.attr("perm"))],
    "Add": _same_type(np.add),
    "Sub": _same_type(np.subtract),
    "Mul": _same_type(np.multiply),
    "Div": _fold_div,
    "Pow": _same_type(np.power),
    "Neg": _elementwise(np.negative),
    "Abs": _elementwise(np.abs),
    "Sqrt": _elementwise(np.sqrt),
    "Reciprocal": _same_type(np.reciprocal),
    "Floor": _elementwise(np.floor),
    "Ceil": _elementwise(np.ceil),
    "Exp": _elementwise(np.exp),
    "Log": _elementwise(np.log),
    "Min": _variadic(np.minimum),
    "Max": _variadic(np.maximum),
    "Sum": _variadic(np.add),
    "Equal": _elementwise(np.equal),
    "Less": _elementwise(np.less),
    "Greater": _elementwise(np.greater),
    "Not": _elementwise(np.logical_not),
    "And": _elementwise(np.logical_and),
    "Or": _elementwise(np.logical_or),
    "Where": _elementwise(np.where),
    "ConstantOfShape": _fold_constant_of_shape,
    "Expand": _fold_expand,
    "Range": _fold_range,
    "Tile": _fold_tile,
    "ReduceProd": _reduce(np.prod, 18),
    "ReduceSum": _reduce(np.sum, 13),
    "ReduceMax": _reduce(np.max, 18),
    "ReduceMin": _reduce(np.min, 18),
    "ReduceMean": _reduce(np.mean, 18),
}


# ---------------------------------------------------------------------------------------------
# translations to lrp_core layers
# ---------------------------------------------------------------------------------------------
def _spatial_attrs(t, n, d: int):
    strides = n.attr("strides", [1] * d)
    dilations = n.attr("dilations", [1] * d)
    if len(strides) != d or len(dilations) != d:
        raise t.unsupported(n, f"strides {strides} / dilations {dilations} do not have {d} entries")
    return [int(s) for s in strides], [int(v) for v in dilations]


def _padding(t, n, x, kernel, strides, dilations):
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
        raise t.unsupported(n, f"auto_pad={auto!r} is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID")
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


def _conv_operands(t, n):
    """``(x, W, B, d, kernel)`` of a Conv or ConvTranspose node (1-, 2- or 3-d)."""
    x = t.value(n, 0)
    w = t.const(n, 1, "the weight W")
    b = t.const(n, 2, "the bias B", optional=True)
    d = w.ndim - 2
    if d not in (1, 2, 3):
        raise t.unsupported(n, f"a weight of shape {w.shape} (1-, 2- or 3-d convolutions only)")
    return x, w, b, d, [int(k) for k in w.shape[2:]]


def _conv(t, n):
    x, w, b, d, kernel = _conv_operands(t, n)
    if n.attr("kernel_shape") is not None and [int(k) for k in n.attr("kernel_shape")] != kernel:
        raise t.unsupported(n, f"kernel_shape {n.attr('kernel_shape')} does not match the weight {w.shape}")
    strides, dilations = _spatial_attrs(t, n, d)
    padding = _padding(t, n, x, kernel, strides, dilations)
    layer = lrp.Conv(w, b, stride=strides, padding=padding, dilation=dilations, groups=int(n.attr("group", 1)))
    return [t.add(layer, [x], n)]


def _conv_transpose(t, n):
    x, w, b, d, kernel = _conv_operands(t, n)
    strides, dilations = _spatial_attrs(t, n, d)
    output_padding = [int(p) for p in n.attr("output_padding", [0] * d)]
    auto = n.attr("auto_pad", "NOTSET") or "NOTSET"
    output_shape = n.attr("output_shape")
    if output_shape is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
        lengths = t.shape(n, x, "output_shape or auto_pad=SAME")[1:]
        if output_shape is not None:
            targets = [int(v) for v in output_shape][-d:]
        else:
            targets = [length * s for length, s in zip(lengths, strides)]
        padding = []
        for length, k, s, dl, op, target in zip(lengths, kernel, strides, dilations, output_padding, targets):
            total = (length - 1) * s + op + (k - 1) * dl + 1 - target
            if total < 0:
                raise t.unsupported(n, f"output_shape {output_shape} is larger than the transposed "
                                       "convolution produces")
            # the spec (and onnxruntime): SAME_UPPER puts the odd cell at the end, SAME_LOWER
            # and an output_shape without auto_pad at the start
            half = total // 2
            padding.append((half, total - half) if auto == "SAME_UPPER" else (total - half, half))
        padding = tuple(padding)
    else:
        padding = _padding(t, n, x, kernel, strides, dilations)
    layer = lrp.ConvTranspose(w, b, stride=strides, padding=padding, output_padding=output_padding,
                              dilation=dilations, groups=int(n.attr("group", 1)))
    return [t.add(layer, [x], n)]


def _compact(padding):
    """``0`` for no padding (for a shorter description), else the ``(low, high)`` pairs."""
    return 0 if all(p == (0, 0) for p in padding) else padding


def _max_pool(t, n):
    x = t.value(n, 0)
    if len(n.outputs) > 1 and t.is_used(n.outputs[1]):
        raise t.unsupported(n, "its Indices output is used")
    kernel = [int(k) for k in n.attr("kernel_shape")]
    strides, dilations = _spatial_attrs(t, n, len(kernel))
    padding = _padding(t, n, x, kernel, strides, dilations)
    layer = lrp.MaxPool(tuple(kernel), stride=tuple(strides), padding=_compact(padding), dilation=tuple(dilations),
                        ceil_mode=bool(n.attr("ceil_mode", 0)))
    return [t.add(layer, [x], n), None]


def _average_pool(t, n):
    x = t.value(n, 0)
    kernel = [int(k) for k in n.attr("kernel_shape")]
    strides, dilations = _spatial_attrs(t, n, len(kernel))
    if any(dl != 1 for dl in dilations):
        raise t.unsupported(n, f"dilations {dilations} (average pooling has no dilation in lrp_core)")
    padding = _padding(t, n, x, kernel, strides, dilations)
    layer = lrp.AvgPool(tuple(kernel), stride=tuple(strides), padding=_compact(padding),
                        ceil_mode=bool(n.attr("ceil_mode", 0)),
                        count_include_pad=bool(n.attr("count_include_pad", 0)))
    return [t.add(layer, [x], n)]


def _gemm(t, n):
    if t.is_const(n.input(0)) or not t.is_const(n.input(1)):
        raise t.unsupported(n, "only Gemm(activation, constant B[, constant C]) is supported")
    x = t.value(n, 0)
    if n.attr("transA", 0):
        raise t.unsupported(n, "transA=1 puts the batch on the second axis")
    shape = t.shapes[x]
    if shape is not None and len(shape) != 1:
        raise t.unsupported(n, f"its input has per-sample shape {shape}; Gemm takes (batch, features)")
    b = t.const(n, 1, "B")
    c = t.const(n, 2, "C", optional=True)
    alpha, beta = float(n.attr("alpha", 1.0)), float(n.attr("beta", 1.0))
    weight = b if n.attr("transB", 0) else b.T
    if alpha != 1.0:
        weight = weight * np.asarray(alpha, dtype=b.dtype)
    weight = np.ascontiguousarray(weight)
    bias = None
    if c is not None:
        out = weight.shape[0]
        if c.ndim == 2:
            if c.shape[0] != 1:
                raise t.unsupported(n, f"C of shape {c.shape} differs between samples of the batch")
            c = c[0]
        bias = np.broadcast_to(c, (out,)).astype(b.dtype)
        if beta != 1.0:
            bias = bias * np.asarray(beta, dtype=b.dtype)
    return [t.add(lrp.Dense(weight, bias), [x], n)]


def _matmul(t, n):
    if t.is_const(n.input(0)) or not t.is_const(n.input(1)):
        raise t.unsupported(n, "only MatMul(activation, constant matrix) is supported "
                               "(a product with a constant on the left, or of two activations, is not)")
    x = t.value(n, 0)
    w = t.const(n, 1, "the matrix")
    if w.ndim != 2:
        raise t.unsupported(n, f"the constant operand has shape {w.shape}; only a matrix (K, M) is supported")
    shape = t.shapes[x]
    if shape is not None and (len(shape) < 1 or shape[-1] != w.shape[0]):
        raise t.unsupported(n, f"its input has per-sample shape {shape}, the matrix {w.shape}")
    return [t.add(lrp.Dense(np.ascontiguousarray(w.T)), [x], n)]


def _per_sample_constant(t, n, c, x):
    """``c`` as an array that broadcasts against one sample of ``x`` without changing its shape."""
    if not np.issubdtype(c.dtype, np.floating):
        raise t.unsupported(n, f"its constant operand has dtype {c.dtype}")
    if c.ndim == 0:
        return c
    shape = t.shape(n, x, "a constant operand that is not a scalar")
    rank = len(shape) + 1
    if c.ndim > rank:
        raise t.unsupported(n, f"the constant of shape {c.shape} has more axes than the activation {('N',) + shape}")
    full = c.reshape((1,) * (rank - c.ndim) + c.shape)
    if full.shape[0] != 1:
        raise t.unsupported(n, f"the constant of shape {c.shape} differs between samples of the batch")
    per = full[0]
    if np.broadcast_shapes(per.shape, shape) != shape:
        raise t.unsupported(n, f"the constant of shape {c.shape} would broadcast the activation "
                               f"{('N',) + shape} to a larger shape")
    return per


def _arithmetic(t, n):
    op = n.op_type
    a_const, b_const = t.is_const(n.input(0)), t.is_const(n.input(1))
    if not a_const and not b_const:
        a, b = t.value(n, 0), t.value(n, 1)
        if op == "Add":
            return [t.add(lrp.Add(), [a, b], n)]
        if op == "Sub":
            negated = t.add(Affine(scale=np.asarray(-1.0, dtype=np.float32)), [b], n, suffix="negate")
            return [t.add(lrp.Add(), [a, negated], n)]
        raise t.unsupported(n, f"{op} of two activations is not linear; LRP has no rule for it")
    x_index = 1 if a_const else 0
    x = t.value(n, x_index)
    c = _per_sample_constant(t, n, t.const(n, 1 - x_index, "the constant operand"), x)
    one = np.asarray(1.0, dtype=c.dtype)
    if op == "Add":
        layer = Affine(shift=c)
    elif op == "Sub":
        layer = Affine(shift=-c) if x_index == 0 else Affine(scale=-one, shift=c)
    elif op == "Mul":
        layer = Affine(scale=c)
    elif x_index == 0:  # Div
        layer = Affine(scale=(one / c).astype(c.dtype))
    else:
        raise t.unsupported(n, "a constant divided by an activation is not linear")
    return [t.add(layer, [x], n)]


def _sum(t, n):
    if any(t.is_const(name) for name in n.inputs):
        raise t.unsupported(n, "Sum with a constant operand (use Add)")
    values = [t.value(n, i) for i in range(len(n.inputs))]
    if len(values) == 1:
        return [values[0]]
    return [t.add(lrp.Add(), values, n)]


def _flatten(t, n):
    x = t.value(n, 0)
    axis = int(n.attr("axis", 1))
    if axis != 1:
        shape = t.shape(n, x, f"Flatten(axis={axis})")
        axis = axis % (len(shape) + 1) if axis < 0 else axis
        if axis == 0 or math.prod(shape[:axis - 1]) != 1:
            raise t.unsupported(n, f"Flatten(axis={n.attr('axis')}) of {('N',) + shape} merges the batch axis "
                                   "with others")
    return [t.add(lrp.Flatten(), [x], n)]


def _reshape_layer(t, n, x, per_sample):
    shape = t.shapes[x]
    per_sample = [int(v) for v in per_sample]
    if shape is not None and -1 in per_sample:
        known = math.prod(v for v in per_sample if v != -1)
        if known == 0 or math.prod(shape) % known:
            raise t.unsupported(n, f"cannot reshape a sample of shape {shape} to {per_sample}")
        per_sample = [math.prod(shape) // known if v == -1 else v for v in per_sample]
    if shape is not None and math.prod(per_sample) != math.prod(shape):
        raise t.unsupported(n, f"cannot reshape a sample of shape {shape} to {per_sample}")
    return t.add(lrp.Reshape(per_sample, input_shape=shape), [x], n)


def _reshape(t, n):
    x = t.value(n, 0)
    target = _ints(t.const(n, 1, "the target shape (it could not be folded to a constant)"))
    allowzero = bool(n.attr("allowzero", 0))
    shape = t.shapes[x]
    if not target:
        raise t.unsupported(n, "a reshape to a scalar")
    lead, rest = target[0], target[1:]
    if lead == BATCH or (lead == 0 and not allowzero) or (t.static_batch is not None and lead == t.static_batch):
        pass
    elif lead == -1 and -1 not in rest and 0 not in rest:
        if shape is not None and math.prod(rest) != math.prod(shape):
            raise t.unsupported(n, f"the reshape to {_show(target)} of {('N',) + shape} moves values between "
                                   "samples of the batch")
    else:
        raise t.unsupported(n, f"the reshape to {_show(target)} changes the leading (batch) axis")
    if not allowzero and 0 in rest:
        if shape is None:
            shape = t.shape(n, x, f"a reshape to {_show(target)}")
        rest = [shape[i] if v == 0 else v for i, v in enumerate(rest)]
    if BATCH in rest:
        raise t.unsupported(n, f"the reshape to {_show(target)} moves the batch axis")
    return [_reshape_layer(t, n, x, rest)]


def _squeeze(t, n):
    x = t.value(n, 0)
    shape = t.shape(n, x, "Squeeze")
    axes = _axes(t, n, 1, 13)
    rank = len(shape) + 1
    if axes is None:
        axes = [i + 1 for i, s in enumerate(shape) if s == 1]
    axes = {a % rank for a in axes}
    if 0 in axes:
        raise t.unsupported(n, "it squeezes the batch axis")
    if any(shape[a - 1] != 1 for a in axes):
        raise t.unsupported(n, f"it squeezes axes {sorted(axes)} of {('N',) + shape}, not all of size 1")
    return [_reshape_layer(t, n, x, [s for i, s in enumerate(shape) if i + 1 not in axes])]


def _unsqueeze(t, n):
    x = t.value(n, 0)
    shape = t.shape(n, x, "Unsqueeze")
    axes = _axes(t, n, 1, 13)
    rank = len(shape) + 1 + len(axes)
    axes = {a % rank for a in axes}
    if 0 in axes:
        raise t.unsupported(n, "it inserts an axis before the batch axis")
    remaining = iter(shape)
    new = [1 if i in axes else next(remaining) for i in range(1, rank)]
    return [_reshape_layer(t, n, x, new)]


def _transpose(t, n):
    x = t.value(n, 0)
    shape = t.shape(n, x, "Transpose")
    full = (None,) + shape
    perm = n.attr("perm")
    perm = list(range(len(full)))[::-1] if perm is None else [int(p) for p in perm]
    moved = [p for p in perm[1:] if full[p] != 1]
    if perm[0] != 0 or moved != sorted(moved):
        raise t.unsupported(n, f"Transpose(perm={perm}) of {('N',) + shape} reorders the data; only a "
                               "transpose that moves size-1 axes (a reshape, a no-op for LRP) is supported")
    return [_reshape_layer(t, n, x, [full[p] for p in perm[1:]])]


def _concat(t, n):
    names = [name for name in n.inputs if name]
    if any(t.is_const(name) for name in names):
        raise t.unsupported(n, "it concatenates a constant with activations")
    values = [t.value(n, i) for i, name in enumerate(n.inputs) if name]
    axis = int(n.attr("axis"))
    if axis < 0:
        axis %= len(t.shape(n, values[0], "Concat with a negative axis")) + 1
    if axis == 0:
        raise t.unsupported(n, "it concatenates along the batch axis")
    if len(values) == 1:
        return [values[0]]
    return [t.add(lrp.Concat(axis), values, n)]


def _activation(factory):
    def translate(t, n):
        return [t.add(factory(n), [t.value(n, 0)], n)]
    return translate


def _clip(t, n):
    x = t.value(n, 0)
    if t.opset < 11:
        low, high = n.attr("min", -np.inf), n.attr("max", np.inf)
    else:
        low = t.const(n, 1, "min", optional=True)
        high = t.const(n, 2, "max", optional=True)
        low = -np.inf if low is None else float(low)
        high = np.inf if high is None else float(high)
    if low == 0.0 and high == 6.0:
        return [t.add(lrp.ReLU6(), [x], n)]
    if low == 0.0 and high == np.inf:
        return [t.add(lrp.ReLU(), [x], n)]
    raise t.unsupported(n, f"Clip(min={low}, max={high}); only Clip(0, 6) (ReLU6) and Clip(0) (ReLU) are supported")


def _softmax(t, n):
    x = t.value(n, 0)
    axis = int(n.attr("axis", 1 if t.opset < 13 else -1))
    if t.opset >= 13 and axis == -1:
        return [t.add(lrp.Softmax(dim=-1), [x], n)]
    shape = t.shape(n, x, "Softmax")
    full = (None,) + shape
    axis %= len(full)
    if t.opset < 13:  # the input is coerced to 2-d: softmax over the flattened axes axis..end
        long_axes = [i for i in range(axis, len(full)) if full[i] != 1]
        if axis == 0 or len(long_axes) > 1:
            raise t.unsupported(n, f"Softmax(axis={axis}) at opset {t.opset} of {('N',) + shape} spans several axes")
        axis = long_axes[0] if long_axes else len(full) - 1
    if axis == 0:
        raise t.unsupported(n, "a softmax over the batch axis")
    return [t.add(lrp.Softmax(dim=axis), [x], n)]


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
    axis = int(n.attr("axis", -1)) % (len(shape) + 1)
    if axis == 0:
        raise t.unsupported(n, "it normalises over the batch axis")
    normalized = tuple(shape[axis - 1:])
    scale = t.const(n, 1, "Scale")
    bias = t.const(n, 2, "B", optional=True)
    weight = np.ascontiguousarray(np.broadcast_to(scale, normalized))
    bias = None if bias is None else np.ascontiguousarray(np.broadcast_to(bias, normalized))
    layer = lrp.LayerNorm(normalized, weight, bias, eps=float(n.attr("epsilon", 1e-5)))
    return [t.add(layer, [x], n)] + [None] * (len(n.outputs) - 1)


def _dropout(t, n):
    if len(n.outputs) > 1 and t.is_used(n.outputs[1]):
        raise t.unsupported(n, "its mask output is used")
    if t.opset >= 12:
        training = t.const(n, 2, "training_mode", optional=True)
        if training is not None and bool(training):
            raise t.unsupported(n, "training_mode=True")
    return [t.value(n, 0), None]


def _identity(t, n):
    return [t.value(n, 0)]


def _cast(t, n):
    if not np.issubdtype(_np_dtype(n.attr("to")), np.floating):
        raise t.unsupported(n, "a cast of an activation to a non-floating type")
    return [t.value(n, 0)]  # the analyzer computes in the input's dtype


def _pad(t, n):
    x = t.value(n, 0)
    if t.opset < 11:
        mode, pads, value = n.attr("mode", "constant"), _ints(n.attr("pads")), float(n.attr("value", 0.0))
        axes = None
    else:
        mode = n.attr("mode", "constant")
        pads = _ints(t.const(n, 1, "pads"))
        value = t.const(n, 2, "constant_value", optional=True)
        value = 0.0 if value is None else float(value)
        axes = t.const(n, 3, "axes", optional=True)
        axes = None if axes is None else _ints(axes)
    if mode != "constant" or value != 0.0:
        raise t.unsupported(n, f"Pad(mode={mode!r}, value={value}); only padding with zeros is supported")
    if axes is None:
        rank = len(pads) // 2
        axes = list(range(rank))
    else:
        rank = len(t.shape(n, x, "Pad with axes")) + 1
        axes = [a % rank for a in axes]
    pairs = [(0, 0)] * rank
    for i, axis in enumerate(axes):
        pairs[axis] = (pads[i], pads[i + len(axes)])
    if any(lo < 0 or hi < 0 for lo, hi in pairs):
        raise t.unsupported(n, f"negative pads {pads} (cropping)")
    if pairs[0] != (0, 0):
        raise t.unsupported(n, "it pads the batch axis")
    if all(p == (0, 0) for p in pairs):
        return [x]
    return [t.add(ZeroPad(pairs[1:]), [x], n)]


def _global_pool(layer_type):
    def translate(t, n):
        return [t.add(layer_type(keepdims=True), [t.value(n, 0)], n)]
    return translate


TRANSLATIONS = {
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Add": _arithmetic,
    "Sub": _arithmetic,
    "Mul": _arithmetic,
    "Div": _arithmetic,
    "Sum": _sum,
    "MaxPool": _max_pool,
    "AveragePool": _average_pool,
    "GlobalAveragePool": _global_pool(lrp.GlobalAvgPool),
    "GlobalMaxPool": _global_pool(lrp.GlobalMaxPool),
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Transpose": _transpose,
    "Concat": _concat,
    "Relu": _activation(lambda n: lrp.ReLU()),
    "LeakyRelu": _activation(lambda n: lrp.LeakyReLU(float(n.attr("alpha", 0.01)))),
    "Elu": _activation(lambda n: lrp.ELU(float(n.attr("alpha", 1.0)))),
    "Clip": _clip,
    "Sigmoid": _activation(lambda n: lrp.Sigmoid()),
    "Tanh": _activation(lambda n: lrp.Tanh()),
    "Gelu": _activation(lambda n: lrp.GELU(n.attr("approximate", "none"))),
    "Softmax": _softmax,
    "BatchNormalization": _batch_norm,
    "LayerNormalization": _layer_norm,
    "Dropout": _dropout,
    "Identity": _identity,
    "Cast": _cast,
    "Pad": _pad,
}


# ---------------------------------------------------------------------------------------------
# folding after translation (called by the reader on the finished node list)
# ---------------------------------------------------------------------------------------------
def _channel_vector(c, out_shape, axis: int, channels: int):
    """A per-sample constant as a vector over the output channels (``axis`` of one sample), or
    ``None`` if it varies along another axis."""
    if c.ndim == 0:
        return np.full(channels, c, dtype=c.dtype)
    if out_shape is None or c.ndim > len(out_shape):
        return None
    full = c.reshape((1,) * (len(out_shape) - c.ndim) + c.shape)
    axis %= full.ndim
    if any(size != 1 for i, size in enumerate(full.shape) if i != axis):
        return None
    vector = full.reshape(-1)
    if vector.size == 1:
        return np.full(channels, vector[0], dtype=c.dtype)
    return vector if vector.size == channels else None


def fold_affine(producer, affine: Affine, out_shape):
    """``producer`` followed by the constant scale-and-shift ``affine`` as one layer, or ``None``."""
    if isinstance(producer, Affine):
        s1, t1, s2, t2 = producer.scale, producer.shift, affine.scale, affine.shift
        scale = s1 if s2 is None else (s2 if s1 is None else s1 * s2)
        shift = t1 if t1 is None or s2 is None else t1 * s2
        shift = t2 if shift is None else (shift if t2 is None else shift + t2)
        return Affine(scale, shift)
    if not isinstance(producer, (lrp.Dense, lrp.Conv, lrp.ConvTranspose)) or producer.activation is not None:
        return None
    w = producer.weight
    if isinstance(producer, lrp.ConvTranspose):
        channels, axis = w.shape[1] * producer.groups, 0
    else:
        channels, axis = w.shape[0], (-1 if isinstance(producer, lrp.Dense) else 0)
    scale = None if affine.scale is None else _channel_vector(affine.scale, out_shape, axis, channels)
    shift = None if affine.shift is None else _channel_vector(affine.shift, out_shape, axis, channels)
    if (affine.scale is not None and scale is None) or (affine.shift is not None and shift is None):
        return None
    weight, bias = w, producer.bias
    if scale is not None:
        if isinstance(producer, lrp.ConvTranspose):
            groups = producer.groups
            grouped = w.reshape(groups, w.shape[0] // groups, w.shape[1], *w.shape[2:])
            weight = (grouped * scale.reshape(groups, 1, w.shape[1], *([1] * (w.ndim - 2)))).reshape(w.shape)
        else:
            weight = w * scale.reshape(-1, *([1] * (w.ndim - 1)))
        bias = None if bias is None else bias * scale
    if shift is not None:
        bias = shift if bias is None else bias + shift
    return producer.replace(weight=np.asarray(weight, dtype=w.dtype),
                            bias=None if bias is None else np.asarray(bias, dtype=w.dtype))


def absorb_pad(pad: ZeroPad, layer):
    """A Conv or average pooling that takes the zero padding ``pad`` of its input as its own, or
    ``None`` (max pooling never: its padding cells never win, zeros can)."""
    if pad.pads[0] != (0, 0):
        return None
    spatial = pad.pads[1:]
    if isinstance(layer, lrp.Conv) and not isinstance(layer.padding, str):
        if len(spatial) != len(layer.padding):
            return None
        return layer.replace(padding=tuple((lo + a, hi + b) for (lo, hi), (a, b) in zip(layer.padding, spatial)))
    if isinstance(layer, lrp.AvgPool):
        own = normalize_padding(layer.padding, len(spatial))
        if not layer.count_include_pad and any(p != (0, 0) for p in own):
            return None
        return lrp.AvgPool(layer.kernel_size, stride=layer.stride,
                           padding=tuple((lo + a, hi + b) for (lo, hi), (a, b) in zip(own, spatial)),
                           ceil_mode=layer.ceil_mode, count_include_pad=True)
    return None
