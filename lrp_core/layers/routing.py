"""Layers that move values to other places: Permute, Slice, Stack.

Each output cell is one input cell (or, for Slice, some input cells are not read), so relevance
is routed by the transposed index map: the input cell that produced an output cell gets that
cell's relevance, and an input cell not read gets none. Nothing is created or lost except the
relevance that Slice's output never held. The batch axis (0) is never permuted, sliced or
stacked along.
"""

from __future__ import annotations

import array_api_compat

from ..arrays import namespace_of
from .base import PassThroughLayer
from .reshaping import ReshapingLayer

__all__ = ["Permute", "Slice", "Stack"]


class Permute(ReshapingLayer):
    """Permute the axes: output axis ``i`` is input axis ``axes[i]`` (``x.permute(*axes)``).

    ``axes`` is a permutation of all axes, batch axis included, with ``axes[0] == 0``. The
    relevance is permuted back by the inverse permutation.
    """

    def __init__(self, axes):
        self.axes = tuple(int(a) for a in axes)
        if sorted(self.axes) != list(range(len(self.axes))):
            raise ValueError(f"Permute(axes) takes a permutation of 0..{len(self.axes) - 1}, "
                             f"got {self.axes}")
        if not self.axes or self.axes[0] != 0:
            raise ValueError(f"Permute(axes) keeps the batch axis first (axes[0] == 0), "
                             f"got {self.axes}")

    @property
    def inverse(self) -> tuple[int, ...]:
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a] = i
        return tuple(inverse)

    @property
    def is_noop(self) -> bool:
        return self.axes == tuple(range(len(self.axes)))

    def _check(self, x):
        if len(x.shape) != len(self.axes):
            raise ValueError(f"{self.describe()} takes inputs of rank {len(self.axes)}, "
                             f"got shape {tuple(x.shape)}")

    def forward(self, x):
        self._check(x)
        return namespace_of(x).permute_dims(x, self.axes)

    def route(self, relevance, input_shapes):
        self._check(relevance)
        return (namespace_of(relevance).permute_dims(relevance, self.inverse),)

    def describe(self):
        return f"Permute({self.axes})"


class Slice(ReshapingLayer):
    """``x[..., start:stop:step, ...]`` along one ``axis`` (>= 1; negative counts from the end);
    ``start``/``stop`` as in Python (``None``, negative and out-of-range values allowed),
    ``step >= 1``. Cells not taken get no relevance."""

    def __init__(self, axis: int, start=None, stop=None, step: int = 1):
        self.axis = int(axis)
        self.start = None if start is None else int(start)
        self.stop = None if stop is None else int(stop)
        self.step = int(step)
        if self.step < 1:
            raise ValueError(f"Slice takes step >= 1, got {self.step}")
        if self.axis == 0:
            raise ValueError("Slice along the batch axis (0) is not supported")

    def _axis(self, ndim: int) -> int:
        axis = self.axis % ndim if -ndim <= self.axis < ndim else 0
        if axis == 0:
            raise ValueError(f"{self.describe()} does not fit an input of rank {ndim} (axis "
                             "must name a non-batch axis)")
        return axis

    def _positions(self, length: int) -> range:
        return range(*slice(self.start, self.stop, self.step).indices(length))

    def forward(self, x):
        axis = self._axis(len(x.shape))
        taken = self._positions(x.shape[axis])
        index = [slice(None)] * len(x.shape)
        # in-range bounds only (array-api-strict refuses others)
        index[axis] = slice(taken.start, taken[-1] + 1, self.step) if len(taken) else slice(0, 0)
        return x[tuple(index)]

    def route(self, relevance, input_shapes):
        shape = tuple(input_shapes[0])
        axis = self._axis(len(shape))
        xp = namespace_of(relevance)
        device = array_api_compat.device(relevance)
        taken = self._positions(shape[axis])
        if not len(taken):
            return (xp.zeros(shape, dtype=relevance.dtype, device=device),)
        if self.step == 1 or len(taken) == 1:  # zeros before and after the slice
            before = taken.start
            after = shape[axis] - before - len(taken)
            pieces = [self._zeros(xp, shape, axis, before, relevance), relevance,
                      self._zeros(xp, shape, axis, after, relevance)]
            return (xp.concat([p for p in pieces if p is not None], axis=axis),)
        # strided: scattered back with a one-hot matrix (the array API has no item assignment
        # on every namespace): R_in[..., i, ...] = sum_k [taken_k == i] R_out[..., k, ...]
        onehot = xp.astype(xp.asarray(list(taken), device=device)[:, None]
                           == xp.arange(shape[axis], device=device)[None, :], relevance.dtype)
        order = [a for a in range(len(shape)) if a != axis] + [axis]
        moved = xp.permute_dims(relevance, tuple(order))  # (..., k)
        scattered = xp.matmul(moved, onehot)  # (..., n)
        back = [0] * len(order)
        for i, a in enumerate(order):
            back[a] = i
        return (xp.permute_dims(scattered, tuple(back)),)

    @staticmethod
    def _zeros(xp, shape, axis, count, like):
        if not count:
            return None
        zeros_shape = list(shape)
        zeros_shape[axis] = count
        return xp.zeros(tuple(zeros_shape), dtype=like.dtype,
                        device=array_api_compat.device(like))

    def describe(self):
        parts = [str(self.axis), str(self.start), str(self.stop)]
        if self.step != 1:
            parts.append(str(self.step))
        return f"Slice({', '.join(parts)})"


class Stack(PassThroughLayer):
    """Stack the inputs (all of one shape) along a new ``axis`` (>= 1 in the output, as
    ``torch.stack(xs, axis)``); each input's relevance is its slice of the output relevance."""

    n_inputs = None

    def __init__(self, axis: int = 1):
        self.axis = int(axis)

    def _axis(self, ndim_out: int) -> int:
        if not -ndim_out <= self.axis < ndim_out:
            raise ValueError(f"{self.describe()} does not fit an output of rank {ndim_out}")
        axis = self.axis % ndim_out
        if axis == 0:
            raise ValueError("Stack along the batch axis is not supported")
        return axis

    def forward(self, *inputs):
        shapes = {tuple(a.shape) for a in inputs}
        if len(shapes) != 1:
            raise ValueError(f"Stack needs inputs of one shape, got {sorted(shapes)}")
        xp = namespace_of(*inputs)
        return xp.stack(list(inputs), axis=self._axis(len(inputs[0].shape) + 1))

    def route(self, relevance, input_shapes):
        axis = self._axis(len(relevance.shape))
        pieces = []
        for k in range(len(input_shapes)):
            index = [slice(None)] * len(relevance.shape)
            index[axis] = k
            pieces.append(relevance[tuple(index)])
        return tuple(pieces)

    def output_nonnegative(self, inputs_nonnegative):
        return all(inputs_nonnegative)

    def describe(self):
        return f"Stack(axis={self.axis})"
