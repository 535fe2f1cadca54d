"""Layers that move values without arithmetic: Flatten, Reshape, Dropout, Identity, Concat.

Relevance passes through them unchanged: reshaped back, copied, or (Concat) sliced.
"""

from __future__ import annotations

import array_api_compat

from ..arrays import namespace_of
from .base import PassThroughLayer

__all__ = ["ReshapingLayer", "Flatten", "Reshape", "ZeroPad", "DropoutLayer", "Dropout", "Identity",
           "Concat"]


class ReshapingLayer(PassThroughLayer):
    """Group of reshaping layers (Flatten, Reshape), usable as a composite key."""

    def output_nonnegative(self, inputs_nonnegative):
        return all(inputs_nonnegative)


class Flatten(ReshapingLayer):
    """Flatten axes ``start_dim..end_dim`` into one (torch's ``nn.Flatten``)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        self.start_dim = int(start_dim)
        self.end_dim = int(end_dim)

    def forward(self, x):
        shape = tuple(x.shape)
        start = self.start_dim % len(shape)
        end = self.end_dim % len(shape)
        if start > end:
            raise ValueError(f"Flatten({self.start_dim}, {self.end_dim}) is empty "
                             f"for shape {shape}")
        return namespace_of(x).reshape(x, shape[:start] + (-1,) + shape[end + 1:])

    def describe(self):
        return "Flatten()" if (self.start_dim, self.end_dim) == (1, -1) else \
            f"Flatten({self.start_dim}, {self.end_dim})"


class Reshape(ReshapingLayer):
    """Reshape each sample to ``shape`` (the batch axis is kept: ``shape`` excludes it; one
    entry may be -1).

    ``input_shape`` (per sample, optional) is what a model reader knows statically; when it
    equals ``shape`` the layer is a no-op that :func:`lrp_core.canonize` removes.
    """

    def __init__(self, shape, input_shape=None):
        self.shape = tuple(int(s) for s in shape)
        self.input_shape = None if input_shape is None else tuple(int(s) for s in input_shape)

    @property
    def is_noop(self) -> bool:
        return self.input_shape is not None and self.input_shape == self.shape

    def forward(self, x):
        return namespace_of(x).reshape(x, (x.shape[0],) + self.shape)

    def describe(self):
        return f"Reshape({self.shape})"


class ZeroPad(ReshapingLayer):
    """Zero padding of each non-batch axis by ``(low, high)`` cells (``pads``: one pair per axis
    of a sample). Relevance passes through: the input gets its slice, padded cells hold none."""

    def __init__(self, pads):
        self.pads = tuple((int(lo), int(hi)) for lo, hi in pads)
        if any(lo < 0 or hi < 0 for lo, hi in self.pads):
            raise ValueError(f"ZeroPad takes non-negative pads, got {self.pads}")

    def _check(self, x):
        if len(x.shape) != len(self.pads) + 1:
            raise ValueError(f"{self.describe()} expects inputs of rank {len(self.pads) + 1}, "
                             f"got shape {tuple(x.shape)}")

    def forward(self, x):
        self._check(x)
        xp = namespace_of(x)
        device = array_api_compat.device(x)
        for axis, (lo, hi) in enumerate(self.pads, start=1):
            pieces = []
            for count in (lo, hi):
                shape = list(x.shape)
                shape[axis] = count
                pieces.append(xp.zeros(tuple(shape), dtype=x.dtype, device=device) if count
                              else None)
            if lo or hi:
                x = xp.concat([p for p in (pieces[0], x, pieces[1]) if p is not None], axis=axis)
        return x

    def route(self, relevance, input_shapes):
        index = [slice(None)]
        for (lo, _), length in zip(self.pads, input_shapes[0][1:]):
            index.append(slice(lo, lo + length))
        return (relevance[tuple(index)],)

    def describe(self):
        return f"ZeroPad({self.pads})"


class _IdentityMap(PassThroughLayer):
    """A layer that returns its input (at inference): a no-op that canonize removes."""

    is_noop = True

    def forward(self, x):
        return x

    def output_nonnegative(self, inputs_nonnegative):
        return all(inputs_nonnegative)


class DropoutLayer(_IdentityMap):
    """Group of dropout layers, usable as a composite key. The identity at inference."""


class Dropout(DropoutLayer):
    """Dropout (any kind): the identity at inference."""

    def __init__(self, p: float = 0.5):
        self.p = float(p)

    def describe(self):
        return f"Dropout({self.p:g})"


class Identity(_IdentityMap):
    """The identity."""


class Concat(PassThroughLayer):
    """Concatenate the inputs along ``axis`` (not the batch axis); each input's relevance is its
    slice of the output relevance."""

    n_inputs = None

    def __init__(self, axis: int = 1):
        self.axis = int(axis)

    def _axis(self, ndim: int) -> int:
        axis = self.axis % ndim
        if axis == 0:
            raise ValueError("Concat along the batch axis is not supported")
        return axis

    def forward(self, *inputs):
        return namespace_of(*inputs).concat(list(inputs), axis=self._axis(len(inputs[0].shape)))

    def route(self, relevance, input_shapes):
        axis = self._axis(len(relevance.shape))
        pieces, start = [], 0
        for shape in input_shapes:
            index = [slice(None)] * len(relevance.shape)
            index[axis] = slice(start, start + shape[axis])
            pieces.append(relevance[tuple(index)])
            start += shape[axis]
        return tuple(pieces)

    def output_nonnegative(self, inputs_nonnegative):
        return all(inputs_nonnegative)

    def describe(self):
        return f"Concat(axis={self.axis})"
