"""Constants inside the network: AddConstant (a positional embedding) and ConcatConstant (a
class token).

A constant acts as a bias: it takes its share of the relevance, and that share is not passed
on. Under the generic rule AddConstant gives ``R_x = x ⊙ R / stab(x + c)`` (the constant keeps
``c ⊙ R / stab(x + c)``); ConcatConstant passes on the relevance of ``x``'s cells and drops the
relevance of the constant's cells.
"""

from __future__ import annotations

from ..arrays import namespace_of
from .base import LinearizableLayer, PassThroughLayer

__all__ = ["AddConstant", "ConcatConstant"]


def _shape(value) -> tuple[int, ...]:
    return tuple(int(s) for s in value.shape)


class AddConstant(LinearizableLayer):
    """``y = x + c`` with ``c`` (``value``) a constant array of at most one sample's rank,
    broadcast against each sample (NumPy's right alignment); it never changes ``x``'s shape.
    ``c`` may hold ``-inf`` (an attention mask on the scores before a softmax: ``-inf`` where
    masked); ``NaN`` and ``+inf`` are refused by the analyzer."""

    _arrays = ("value",)
    _masks = ("value",)  # an attention mask: -inf where a score is masked

    def __init__(self, value):
        if not hasattr(value, "shape") or not hasattr(value, "dtype"):
            raise TypeError(f"AddConstant(value) takes an array, got {type(value).__name__}")
        self.value = value

    def linearize(self, x):
        z = self.preactivation(x)
        return z, lambda s: (s,)

    def preactivation(self, x):
        if len(self.value.shape) > len(x.shape) - 1:
            raise ValueError(f"{self.describe()}: the constant has more axes than one sample of "
                             f"the input {tuple(x.shape)} (its shape is per sample)")
        z = x + self.value
        if tuple(z.shape) != tuple(x.shape):
            raise ValueError(f"{self.describe()} would change the shape {tuple(x.shape)} to "
                             f"{tuple(z.shape)}")
        return z

    def describe(self):
        return f"AddConstant({_shape(self.value)})"


class ConcatConstant(PassThroughLayer):
    """Concatenate the constant ``c`` (``value``, one sample's shape, repeated over the batch)
    before ``x`` along ``axis`` (>= 1): ``cat([c.expand(N, ...), x], axis)``, a class token.
    ``x`` gets its slice of the relevance; the constant's cells keep theirs."""

    _arrays = ("value",)

    def __init__(self, value, axis: int = 1):
        if not hasattr(value, "shape") or not hasattr(value, "dtype"):
            raise TypeError(f"ConcatConstant(value, axis) takes an array, "
                            f"got {type(value).__name__}")
        self.value = value
        self.axis = int(axis)

    def _axis(self, ndim: int) -> int:
        axis = self.axis % ndim if -ndim <= self.axis < ndim else 0
        if axis == 0:
            raise ValueError(f"{self.describe()} does not fit an input of rank {ndim} (axis "
                             "must name a non-batch axis)")
        return axis

    def forward(self, x):
        xp = namespace_of(x)
        axis = self._axis(len(x.shape))
        value = self.value
        if len(value.shape) != len(x.shape) - 1:
            raise ValueError(f"{self.describe()}: the constant must have one sample's rank "
                             f"({len(x.shape) - 1} axes), the input has shape {tuple(x.shape)}")
        shape = (x.shape[0],) + _shape(value)
        expanded = xp.broadcast_to(xp.reshape(value, (1,) + _shape(value)), shape)
        return xp.concat([xp.astype(expanded, x.dtype, copy=False), x], axis=axis)

    def route(self, relevance, input_shapes):
        axis = self._axis(len(relevance.shape))
        index = [slice(None)] * len(relevance.shape)
        index[axis] = slice(int(self.value.shape[axis - 1]), None)
        return (relevance[tuple(index)],)

    def describe(self):
        return f"ConcatConstant({_shape(self.value)}, axis={self.axis})"
