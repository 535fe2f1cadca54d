"""``F.normalize``: L2 normalisation along an axis (Swin V2's cosine attention normalises its
queries and keys this way) is the core's :class:`lrp_core.L2Normalize`; other p-norms are
refused."""

from __future__ import annotations

import lrp_core as lrp

from .values import Op, as_tensor, fail, ints

__all__ = ["normalize"]


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None) -> Op:
    """``F.normalize(input, p, dim, eps)``: ``x / max(‖x‖_p, eps)`` along ``dim``."""
    x = as_tensor(input)
    if out is not None:
        fail("F.normalize with out= writes into another tensor; call it without out=")
    if p != 2:
        fail(f"F.normalize with p={p!r}: only the Euclidean norm (p=2) has an lrp-core layer "
             "(lrp.L2Normalize)")
    axis = ints(dim, "dim")
    if axis == 0 or (x.rank is not None and axis == -x.rank):
        fail("F.normalize over the batch axis mixes the samples; normalise a per-sample axis")
    return Op(lrp.L2Normalize(axis, float(eps)), (x,), x.rank)
