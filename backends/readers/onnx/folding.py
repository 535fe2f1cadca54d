"""Constant folding with NumPy: the ONNX operators evaluated when all their inputs are
constants, for shape computations (``Shape -> Gather -> Unsqueeze -> Concat`` feeding a
``Reshape``) and reshaped initializers.

Each folding ``fold(t, n, c)`` takes the translator ``t``, the node ``n`` (a
:class:`~lrp_core.backends.readers.onnx.nodes.NodeView`) and its constant inputs ``c`` (``None``
for an absent optional input) and returns one array per node output. A ``Shape`` of an
activation holds :data:`~lrp_core.backends.readers.onnx.nodes.BATCH` where the batch size stands;
the translator makes it, not a folding.
"""

from __future__ import annotations

import math

import numpy as np

from .loading import MAX_ELEMENTS, too_large
from .nodes import BATCH, axis_in, ints, np_dtype, read_axes, shape_slice, show

__all__ = ["FOLDINGS"]


def _check_size(t, n, shape):
    """``shape`` as ints; refused when it depends on the batch size or holds more than
    :data:`~lrp_core.backends.readers.onnx.loading.MAX_ELEMENTS` elements. Called before the
    result is allocated."""
    shape = ints(shape)
    if any(s == BATCH for s in shape) or any(s < 0 for s in shape):
        raise t.unsupported(n, f"it builds a tensor of shape {show(shape)}, which depends on the "
                               "batch size")
    if math.prod(shape) > MAX_ELEMENTS:
        raise too_large(t.label, f"the result of node {n.label} ({n.op_type}, shape "
                                 f"{show(shape)})", math.prod(shape))
    return shape


def _fold_constant(t, n, c):
    for key in ("value", "sparse_value"):
        value = n.attr(key)
        if value is not None:  # decoded by the loader's one function for tensors
            return [np.array(value)]
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in n.attrs:
            return [np.asarray(n.attrs[key], dtype=dtype)]
    raise t.unsupported(n, f"a Constant with attributes {sorted(n.attrs)} (only tensors and "
                           "numbers are supported)")


def _fold_shape(t, n, c):
    shape = np.asarray(c[0].shape, dtype=np.int64)
    return [shape_slice(n, shape)]


def _fold_concat(t, n, c):
    parts = [x for x in c if x is not None]
    axis = axis_in(t, n, n.attr("axis"), parts[0].ndim)
    _check_size(t, n, [sum(x.shape[axis] if x.ndim > axis else 0 for x in parts)]
                + [s for i, s in enumerate(parts[0].shape) if i != axis])
    return [np.concatenate(parts, axis=axis)]


def _fold_gather(t, n, c):
    data, indices = c[0], c[1].astype(np.int64)
    axis = axis_in(t, n, n.attr("axis", 0), data.ndim)
    _check_size(t, n, list(data.shape[:axis]) + list(indices.shape) + list(data.shape[axis + 1:]))
    if np.any(indices < -data.shape[axis]) or np.any(indices >= data.shape[axis]):
        raise t.unsupported(n, f"an index lies outside the axis of length {data.shape[axis]}")
    return [np.take(data, indices, axis=axis)]


def _fold_slice(t, n, c):
    data = c[0]
    if t.opset < 10:
        starts, ends = n.attr("starts"), n.attr("ends")
        axes, steps = n.attr("axes"), None
    else:
        starts, ends = ints(c[1]), ints(c[2])
        axes = None if len(c) < 4 or c[3] is None else ints(c[3])
        steps = None if len(c) < 5 or c[4] is None else ints(c[4])
    axes = list(range(len(starts))) if axes is None else list(axes)
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        if int(step) == 0:
            raise t.unsupported(n, "a step of 0")
        index[axis_in(t, n, axis, data.ndim, "axis")] = slice(int(start), int(end), int(step))
    return [data[tuple(index)]]


def _fold_reshape(t, n, c):
    data = c[0]
    target = ints(c[1])
    if not n.attr("allowzero", 0):
        target = [data.shape[i] if s == 0 else s for i, s in enumerate(target)]
    return [np.reshape(data, target)]


def _fold_unsqueeze(t, n, c):
    axes = read_axes(t, n, 1, 13)
    rank = c[0].ndim + len(axes)
    axes = {axis_in(t, n, a, rank) for a in axes}
    if len(axes) != rank - c[0].ndim:
        raise t.unsupported(n, "it repeats an axis")
    return [np.expand_dims(c[0], tuple(sorted(axes)))]


def _fold_squeeze(t, n, c):
    axes = read_axes(t, n, 1, 13)
    if axes is None:
        return [np.squeeze(c[0])]
    return [np.squeeze(c[0], axis=tuple(axis_in(t, n, a, c[0].ndim) for a in axes))]


def _fold_flatten(t, n, c):
    axis = int(n.attr("axis", 1))  # in [-rank, rank]
    axis = c[0].ndim if axis == c[0].ndim else axis_in(t, n, axis, c[0].ndim)
    return [c[0].reshape(math.prod(c[0].shape[:axis]), math.prod(c[0].shape[axis:]))]


def _fold_div(t, n, c):
    _broadcast(t, n, c)
    a, b = c
    if np.issubdtype(a.dtype, np.integer):
        return [(np.sign(a) * np.sign(b) * (np.abs(a) // np.abs(b))).astype(a.dtype)]
    return [np.asarray(a / b, dtype=a.dtype)]


def _fold_constant_of_shape(t, n, c):
    shape = _check_size(t, n, c[0])
    value = n.attr("value")
    fill = np.asarray(value).reshape(-1)[0] if value is not None else np.float32(0)
    return [np.full(shape, fill, dtype=np.asarray(fill).dtype)]


def _fold_expand(t, n, c):
    target = ints(c[1])
    if target and target[0] == BATCH and BATCH not in target[1:]:
        # c.expand(N, ...): one sample, marked, for a Concat before activations (a class token)
        value = c[0].reshape((1,) * (len(target) - c[0].ndim) + c[0].shape)
        if value.shape[0] != 1:
            raise t.unsupported(n, f"it expands a constant of shape {c[0].shape} over the batch")
        per_sample = _check_size(t, n, [1] + target[1:])
        out = np.broadcast_shapes(value.shape, tuple(per_sample))
        _check_size(t, n, out)
        t.batch_expanded.add(n.outputs[0])
        return [np.broadcast_to(value, out).copy()]
    shape = _check_size(t, n, c[1])
    out = np.broadcast_shapes(c[0].shape, tuple(shape))
    _check_size(t, n, out)
    return [np.broadcast_to(c[0], out).copy()]


def _fold_range(t, n, c):
    start, limit, delta = (np.asarray(x).reshape(-1) for x in c[:3])
    if start.size != 1 or limit.size != 1 or delta.size != 1:
        raise t.unsupported(n, "its start, limit and delta are not scalars")
    start, limit, delta = start[0], limit[0], delta[0]
    if delta == 0:
        raise t.unsupported(n, "a delta of 0")
    if any(s in (BATCH, -BATCH) for s in (start, limit)):
        raise t.unsupported(n, "its bounds depend on the batch size")
    count = max(math.ceil((float(limit) - float(start)) / float(delta)), 0)
    _check_size(t, n, [count])
    return [np.arange(start, limit, delta, dtype=c[0].dtype)]


def _fold_tile(t, n, c):
    repeats = ints(c[1])
    if len(repeats) != c[0].ndim or any(r < 0 for r in repeats):
        raise t.unsupported(n, f"repeats {repeats} for a tensor of rank {c[0].ndim}")
    _check_size(t, n, [s * r for s, r in zip(c[0].shape, repeats)])
    return [np.tile(c[0], repeats)]


def _reduce(fn, axes_input_since):
    def fold(t, n, c):
        axes = read_axes(t, n, 1, axes_input_since)
        keepdims = bool(n.attr("keepdims", 1))
        if axes is None or not axes:
            if axes is not None and n.attr("noop_with_empty_axes", 0):
                return [c[0]]
            return [np.asarray(fn(c[0], axis=None, keepdims=keepdims))]
        axes = tuple(axis_in(t, n, a, c[0].ndim) for a in axes)
        return [np.asarray(fn(c[0], axis=axes, keepdims=keepdims))]
    return fold


def _broadcast(t, n, c):
    """Check the size of the broadcast of the inputs ``c`` before it is computed."""
    _check_size(t, n, np.broadcast_shapes(*(np.shape(x) for x in c if x is not None)))


def _elementwise(fn):
    def fold(t, n, c):
        _broadcast(t, n, c)
        return [np.asarray(fn(*c))]
    return fold


def _same_type(fn):
    def fold(t, n, c):
        _broadcast(t, n, c)
        return [np.asarray(fn(*c)).astype(c[0].dtype)]
    return fold


def _variadic(fn):
    def fold(t, n, c):
        _broadcast(t, n, c)
        out = c[0]
        for x in c[1:]:
            out = fn(out, x)
        return [np.asarray(out)]
    return fold


def _fold_mod(t, n, c):
    """``Mod``: the sign of the divisor (``fmod=0``, integers only) or of the dividend (``fmod=1``,
    C's ``fmod``), as the spec says; exporters use it on shape entries (``-1 % rank``)."""
    _broadcast(t, n, c)
    if any(np.any(np.asarray(x) == 0) for x in c[1:]):
        raise t.unsupported(n, "a modulo by zero")
    fn = np.fmod if n.attr("fmod", 0) else np.mod
    return [np.asarray(fn(c[0], c[1])).astype(c[0].dtype)]


def _perm(t, n, rank: int):
    perm = n.attr("perm")
    if perm is None:
        return None
    perm = ints(perm)
    if sorted(perm) != list(range(rank)):
        raise t.unsupported(n, f"perm {perm} is not a permutation of the {rank} axes")
    return perm


FOLDINGS = {
    "Constant": _fold_constant,
    "Identity": lambda t, n, c: [c[0]],
    "Cast": lambda t, n, c: [c[0].astype(np_dtype(n.attr("to")))],
    "Shape": _fold_shape,
    "Size": lambda t, n, c: [np.asarray(c[0].size, dtype=np.int64)],
    "Gather": _fold_gather,
    "Unsqueeze": _fold_unsqueeze,
    "Squeeze": _fold_squeeze,
    "Concat": _fold_concat,
    "Slice": _fold_slice,
    "Reshape": _fold_reshape,
    "Flatten": _fold_flatten,
    "Transpose": lambda t, n, c: [np.transpose(c[0], _perm(t, n, c[0].ndim))],
    "Add": _same_type(np.add),
    "Sub": _same_type(np.subtract),
    "Mul": _same_type(np.multiply),
    "Div": _fold_div,
    "Pow": _same_type(np.power),
    "Mod": _fold_mod,
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
