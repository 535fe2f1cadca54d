"""Translations of arithmetic and concatenation: the sum of two tensors and ``torch.cat``.

``+``, ``+=``, ``torch.add`` and ``x.add(_)`` of two tensors computed from the input become
``Add`` (whose inputs have one shape, so the output has the rank of either); ``torch.cat``
becomes ``Concat`` (the layer resolves a negative axis and refuses the batch axis at run time).
"""

from __future__ import annotations

import lrp_core as lrp

from .values import Op, Tensor, as_tensor, describe, fail, ints

__all__ = ["add", "cat"]


def add(input, other, *, alpha=1, out=None, inplace=False) -> Op:
    """``input + other`` of two tensors computed from the input (a residual addition)."""
    if alpha != 1:
        fail(f"torch.add with alpha={alpha} is not supported")
    if not isinstance(input, Tensor) or not isinstance(other, Tensor):
        fail(f"adding {describe(other if isinstance(input, Tensor) else input)} is not "
             "supported; only the sum of two tensors computed from the input (a residual "
             "addition) is")
    rank = input.rank if input.rank is not None else other.rank
    return Op(lrp.Add(), (input, other), rank, inplace)


def cat(tensors, dim=0, *, out=None) -> Op:
    """``torch.cat(tensors, dim)`` along a non-batch axis."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        fail("concatenating nothing")
    dim = ints(dim, "dim")
    rank = next((t.rank for t in tensors if t.rank is not None), None)
    if (dim if dim >= 0 or rank is None else dim + rank) == 0:
        fail("concatenation along the batch axis is not supported")
    if len(tensors) == 1:
        return Op(None, tuple(tensors), rank)
    return Op(lrp.Concat(dim), tuple(tensors), rank)
