"""Translations of the operators that pick parts of an activation: ``Slice``, ``Split`` and
``Gather`` on constant indices, to :class:`lrp_core.Slice` (plus a ``Reshape`` where ``Gather``
drops the axis, and a ``Concat`` for indices that are not evenly spaced). None may touch the
batch axis (a ``Slice`` of the batch axis that takes all of it is ignored).

Each translation ``translate(t, n)`` reads the node ``n`` through the translator ``t`` and returns
one entry per node output (see :mod:`lrp_core.backends.readers.onnx.translations`).
"""

from __future__ import annotations

import lrp_core as lrp

from .nodes import BATCH, axis_in, ints

__all__ = ["ROUTING"]

_HUGE = 2 ** 62  # an end at or beyond this means "to the end" (exporters write INT64_MAX)


def _rank(t, n, x, what: str) -> int:
    shape = t.shapes[x]
    return len(t.shape(n, x, what) if shape is None else shape) + 1


def _takes_whole_batch(start: int, end: int, step: int) -> bool:
    return step == 1 and start == 0 and (end >= _HUGE or end == BATCH)


def slice_arguments(t, n):
    """``(starts, ends, axes, steps)`` of a Slice node, lists of one length (attributes before
    opset 10, constant inputs from it on; ``axes`` default to the first ones, ``steps`` to 1)."""
    if t.opset < 10:
        starts, ends = ints(n.attr("starts")), ints(n.attr("ends"))
        axes = n.attr("axes")
        steps = None
    else:
        starts = ints(t.const(n, 1, "starts"))
        ends = ints(t.const(n, 2, "ends"))
        axes = t.const(n, 3, "axes", optional=True)
        steps = t.const(n, 4, "steps", optional=True)
    axes = list(range(len(starts))) if axes is None else ints(axes)
    steps = [1] * len(starts) if steps is None else ints(steps)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise t.unsupported(n, f"starts {starts}, ends {ends}, axes {axes} and steps {steps} "
                               "differ in length")
    return starts, ends, axes, steps


def _slice(t, n):
    x = t.value(n, 0)
    starts, ends, axes, steps = slice_arguments(t, n)
    rank = _rank(t, n, x, "Slice") if any(a < 0 for a in axes) or t.shapes[x] else None
    value = x
    for start, end, axis, step in zip(starts, ends, axes, steps):
        if rank is not None:
            axis = axis_in(t, n, axis, rank)
        if step < 1:
            raise t.unsupported(n, f"step {step}: only positive steps are supported")
        if axis == 0:
            if _takes_whole_batch(start, end, step):
                continue
            raise t.unsupported(n, "it slices the batch axis")
        end = None if end >= _HUGE else end
        value = t.add(lrp.Slice(axis, start, end, step), [value], n, suffix=f"axis{axis}")
    return [value]


def _split_sizes(t, n, length: int) -> list[int]:
    count = len(n.outputs)
    if t.opset < 13:
        sizes = n.attr("split")
    else:
        sizes = t.const(n, 1, "split", optional=True)
    if sizes is not None:
        sizes = ints(sizes)
    elif t.opset >= 18 and n.attr("num_outputs") is not None:
        count = int(n.attr("num_outputs"))
        piece = -(-length // count)  # the last piece may be smaller
        sizes = [min(piece, length - i * piece) for i in range(count)]
    else:
        if length % count:
            raise t.unsupported(n, f"an axis of length {length} does not split into {count} "
                                   "equal parts")
        sizes = [length // count] * count
    if sum(sizes) != length or any(s < 0 for s in sizes):
        raise t.unsupported(n, f"split sizes {sizes} do not add up to the axis length {length}")
    return sizes


def _split(t, n):
    x = t.value(n, 0)
    shape = t.shape(n, x, "Split")
    axis = axis_in(t, n, n.attr("axis", 0), len(shape) + 1)
    if axis == 0:
        raise t.unsupported(n, "it splits the batch axis")
    sizes = _split_sizes(t, n, shape[axis - 1])
    outputs, start = [], 0
    for k, size in enumerate(sizes):
        outputs.append(t.add(lrp.Slice(axis, start, start + size), [x], n, suffix=f"part{k}"))
        start += size
    return outputs


def _gather(t, n):
    x = t.value(n, 0)
    indices = t.const(n, 1, "indices (only constant indices are supported)")
    shape = t.shape(n, x, "Gather")
    axis = axis_in(t, n, n.attr("axis", 0), len(shape) + 1)
    if axis == 0:
        raise t.unsupported(n, "it gathers along the batch axis")
    length = shape[axis - 1]
    if indices.ndim > 1:
        raise t.unsupported(n, f"indices of shape {indices.shape}: only a scalar or a vector of "
                               "indices is supported")
    picked = ints(indices)
    if any(not -length <= i < length for i in picked):
        raise t.unsupported(n, f"indices {picked} are out of range for an axis of length {length}")
    picked = [i % length for i in picked]
    if not picked:
        raise t.unsupported(n, "it gathers nothing")
    if indices.ndim == 0:  # x[:, i]: the axis is dropped
        (i,) = picked
        one = t.add(lrp.Slice(axis, i, i + 1), [x], n, suffix="take")
        rest = list(shape[:axis - 1] + shape[axis:])
        return [t.add(lrp.Reshape(rest, input_shape=t.shapes[one]), [one], n)]
    step = picked[1] - picked[0] if len(picked) > 1 else 1
    if step >= 1 and picked == list(range(picked[0], picked[-1] + 1, step)):
        return [t.add(lrp.Slice(axis, picked[0], picked[-1] + 1, step), [x], n)]
    # any other order (repeats included: the relevance of each copy adds up)
    pieces = [t.add(lrp.Slice(axis, i, i + 1), [x], n, suffix=f"take{k}")
              for k, i in enumerate(picked)]
    return [t.add(lrp.Concat(axis), pieces, n)]


ROUTING = {
    "Slice": _slice,
    "Split": _split,
    "Gather": _gather,
}
