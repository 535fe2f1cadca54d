"""Translations of the operators that move data without computing: ``Flatten``, ``Reshape``,
``Squeeze``, ``Unsqueeze``, ``Transpose`` (a ``Permute``; a ``Reshape`` where it moves size-1
axes only), ``Concat`` and ``Pad`` (with zeros). None may touch the batch axis; a ``Reshape``
target may hold :data:`~lrp_core.backends.readers.onnx.nodes.BATCH` (a folded ``Shape`` of an
activation).

Each translation ``translate(t, n)`` reads the node ``n`` through the translator ``t`` and returns
one entry per node output (see :mod:`lrp_core.backends.readers.onnx.translations`).
"""

from __future__ import annotations

import math

import numpy as np

import lrp_core as lrp
from lrp_core.layers import ZeroPad

from .nodes import BATCH, axis_in, ints, read_axes, show

__all__ = ["SHAPE"]


def _flatten(t, n):
    x = t.value(n, 0)
    axis = int(n.attr("axis", 1))
    if axis != 1:
        shape = t.shape(n, x, f"Flatten(axis={axis})")
        rank = len(shape) + 1  # Flatten's axis lies in [-rank, rank]
        axis = rank if axis == rank else axis_in(t, n, axis, rank)
        if axis == 0 or math.prod(shape[:axis - 1]) != 1:
            raise t.unsupported(n, f"Flatten(axis={n.attr('axis')}) of {('N',) + shape} merges "
                                   "the batch axis with others")
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
    target = ints(t.const(n, 1, "the target shape (it could not be folded to a constant)"))
    allowzero = bool(n.attr("allowzero", 0))
    shape = t.shapes[x]
    if not target:
        raise t.unsupported(n, "a reshape to a scalar")
    lead, rest = target[0], target[1:]
    if (lead == BATCH or (lead == 0 and not allowzero)
            or (t.static_batch is not None and lead == t.static_batch)):
        pass
    elif lead == -1 and -1 not in rest and 0 not in rest:
        if shape is not None and math.prod(rest) != math.prod(shape):
            raise t.unsupported(n, f"the reshape to {show(target)} of {('N',) + shape} moves "
                                   "values between samples of the batch")
    else:
        raise t.unsupported(n, f"the reshape to {show(target)} changes the leading (batch) axis")
    if not allowzero and 0 in rest:
        if shape is None:
            shape = t.shape(n, x, f"a reshape to {show(target)}")
        rest = [shape[i] if v == 0 else v for i, v in enumerate(rest)]
    if BATCH in rest:
        raise t.unsupported(n, f"the reshape to {show(target)} moves the batch axis")
    return [_reshape_layer(t, n, x, rest)]


def _squeeze(t, n):
    x = t.value(n, 0)
    shape = t.shape(n, x, "Squeeze")
    axes = read_axes(t, n, 1, 13)
    rank = len(shape) + 1
    if axes is None:
        axes = [i + 1 for i, s in enumerate(shape) if s == 1]
    axes = {axis_in(t, n, a, rank) for a in axes}
    if 0 in axes:
        raise t.unsupported(n, "it squeezes the batch axis")
    if any(shape[a - 1] != 1 for a in axes):
        raise t.unsupported(n, f"it squeezes axes {sorted(axes)} of {('N',) + shape}, not all of "
                               "size 1")
    return [_reshape_layer(t, n, x, [s for i, s in enumerate(shape) if i + 1 not in axes])]


def _unsqueeze(t, n):
    x = t.value(n, 0)
    shape = t.shape(n, x, "Unsqueeze")
    axes = read_axes(t, n, 1, 13)
    if axes is None:
        raise t.unsupported(n, "its axes are missing")
    rank = len(shape) + 1 + len(axes)
    axes = {axis_in(t, n, a, rank) for a in axes}
    if len(axes) != rank - len(shape) - 1:
        raise t.unsupported(n, "it repeats an axis")
    if 0 in axes:
        raise t.unsupported(n, "it inserts an axis before the batch axis")
    remaining = iter(shape)
    new = [1 if i in axes else next(remaining) for i in range(1, rank)]
    return [_reshape_layer(t, n, x, new)]


def _transpose(t, n):
    x = t.value(n, 0)
    perm = n.attr("perm")
    if perm is not None and t.shapes[x] is None:  # the data is reordered: a Permute
        perm = ints(perm)
        if perm[0] != 0 or sorted(perm) != list(range(len(perm))):
            raise t.unsupported(n, f"Transpose(perm={perm}) moves the batch axis")
        return [t.add(lrp.Permute(perm), [x], n)]
    shape = t.shape(n, x, "Transpose")
    full = (None,) + shape
    perm = list(range(len(full)))[::-1] if perm is None else ints(perm)
    if sorted(perm) != list(range(len(full))):
        raise t.unsupported(n, f"perm {perm} is not a permutation of the {len(full)} axes")
    if perm[0] != 0:
        raise t.unsupported(n, f"Transpose(perm={perm}) of {('N',) + shape} moves the batch "
                               "axis")
    moved = [p for p in perm[1:] if full[p] != 1]
    if moved != sorted(moved):  # the data is reordered
        return [t.add(lrp.Permute(perm), [x], n)]
    return [_reshape_layer(t, n, x, [full[p] for p in perm[1:]])]  # size-1 axes: a reshape


def _leading_constant(t, n, names):
    """The constants expanded over the batch that lead the Concat ``n`` (a class token), joined
    into one sample (``None`` if there are none); a constant anywhere else is refused."""
    constant = [t.is_const(name) for name in names]
    leading = constant.index(False) if False in constant else len(names)
    if any(constant[leading:]) or not all(name in t.batch_expanded for name in names[:leading]):
        raise t.unsupported(n, "it concatenates a constant with activations (only a constant "
                               "expanded over the batch, c.expand(N, ...), before the activations "
                               "is supported)")
    if not leading:
        return None
    axis = int(n.attr("axis"))
    parts = [t.consts[name][0] for name in names[:leading]]
    rank = parts[0].ndim + 1
    axis = axis_in(t, n, axis, rank)
    if axis == 0:
        raise t.unsupported(n, "it concatenates along the batch axis")
    return np.concatenate(parts, axis=axis - 1), axis


def _concat(t, n):
    names = [name for name in n.inputs if name]
    leading = _leading_constant(t, n, names)
    if leading is not None:
        value, axis = leading
        rest = [t.values[name] for name in names if name in t.values]
        x = rest[0] if len(rest) == 1 else t.add(lrp.Concat(axis), rest, n, suffix="inputs")
        return [t.add(lrp.ConcatConstant(value, axis), [x], n)]
    values = [t.value(n, i) for i, name in enumerate(n.inputs) if name]
    axis = int(n.attr("axis"))
    shape = t.shapes[values[0]]
    if axis < 0 or shape is not None:
        rank = len(t.shape(n, values[0], "Concat with a negative axis")) + 1
        axis = axis_in(t, n, axis, rank)
    if axis == 0:
        raise t.unsupported(n, "it concatenates along the batch axis")
    if len(values) == 1:
        return [values[0]]
    return [t.add(lrp.Concat(axis), values, n)]


def _pad(t, n):
    x = t.value(n, 0)
    if t.opset < 11:
        mode = n.attr("mode", "constant")
        pads = ints(n.attr("pads"))
        value = float(n.attr("value", 0.0))
        axes = None
    else:
        mode = n.attr("mode", "constant")
        pads = ints(t.const(n, 1, "pads"))
        value = t.const(n, 2, "constant_value", optional=True)
        value = 0.0 if value is None else float(value)
        axes = t.const(n, 3, "axes", optional=True)
        axes = None if axes is None else ints(axes)
    if mode != "constant" or value != 0.0:
        raise t.unsupported(n, f"Pad(mode={mode!r}, value={value}); only padding with zeros is "
                               "supported")
    if axes is None:
        rank = len(pads) // 2
        axes = list(range(rank))
    else:
        rank = len(t.shape(n, x, "Pad with axes")) + 1
        axes = [axis_in(t, n, a, rank) for a in axes]
    if len(pads) != 2 * len(axes):
        raise t.unsupported(n, f"pads {pads} does not have 2 x {len(axes)} entries")
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


SHAPE = {
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Transpose": _transpose,
    "Concat": _concat,
    "Pad": _pad,
}
