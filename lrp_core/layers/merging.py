"""Add: the n-ary residual addition, linear in its inputs.

Under the generic rule each input gets ``R_i = a_i ⊙ R / stab(Σ_j a_j)`` (eps 1e-9 with
:class:`~lrp_core.ZeroRule`): relevance split in proportion to the summands.
"""

from __future__ import annotations

from .base import LinearizableLayer

__all__ = ["Add"]


class Add(LinearizableLayer):
    """``y = a_1 + a_2 + ...`` (same shapes)."""

    n_inputs = None

    def linearize(self, *inputs):
        shapes = {tuple(a.shape) for a in inputs}
        if len(shapes) != 1:
            raise ValueError(f"Add needs inputs of one shape, got {sorted(shapes)}")
        z = inputs[0]
        for a in inputs[1:]:
            z = z + a
        count = len(inputs)
        return z, lambda s: (s,) * count

    def output_nonnegative(self, inputs_nonnegative):
        return all(inputs_nonnegative)
