"""Products of two activations: Mul (elementwise) and MatMul (matrix product).

Both are bilinear: linear in each factor with the other held constant. ``linearize`` gives the
product and its exact Jacobian transposed, so the generic rule (``ZeroRule``,
``EpsilonRule``) gives each factor ``R_a = a ⊙ (∂y/∂a)ᵀ (R / stab(y))``: the
gradient × input of the step, under which a product's relevance doubles
(``a·∂(ab)/∂a + b·∂(ab)/∂b = 2ab``), as gradient × input of the whole network does.
:class:`~lrp_core.UniformRule` (AttnLRP) halves it; :class:`~lrp_core.CPRule` (CP-LRP) gives
all of it to the factor that is not a gate.

Shapes broadcast as in NumPy (batch axis included); a factor that was broadcast gets its
relevance summed back to its own shape.
"""

from __future__ import annotations

from ..arrays import namespace_of
from .base import LinearizableLayer

__all__ = ["ProductLayer", "Mul", "MatMul", "sum_to_shape"]


def sum_to_shape(x, shape):
    """``x`` summed over the axes along which an array of ``shape`` was broadcast to ``x``'s
    shape (NumPy broadcasting: leading axes added, axes of length 1 stretched)."""
    shape = tuple(int(s) for s in shape)
    if tuple(x.shape) == shape:
        return x
    xp = namespace_of(x)
    lead = len(x.shape) - len(shape)
    if lead:
        x = xp.sum(x, axis=tuple(range(lead)))
    stretched = tuple(i for i, (n, m) in enumerate(zip(shape, x.shape)) if n == 1 and m != 1)
    if stretched:
        x = xp.sum(x, axis=stretched, keepdims=True)
    return x


class ProductLayer(LinearizableLayer):
    """Group of products of two activations (Mul, MatMul), usable as a composite key."""

    n_inputs = 2


class Mul(ProductLayer):
    """``y = a ⊙ b``, elementwise with NumPy broadcasting between inputs of one rank
    (squeeze-excitation ``x * gate``, gating)."""

    def _check(self, a, b):
        if len(a.shape) != len(b.shape):
            raise ValueError(f"Mul multiplies two activations of one rank (each with the batch "
                             f"axis first), got shapes {tuple(a.shape)} and {tuple(b.shape)} "
                             "(a product with a constant is an Affine layer)")

    def linearize(self, a, b):
        y = self.preactivation(a, b)
        shape_a, shape_b = tuple(a.shape), tuple(b.shape)
        return y, lambda s: (sum_to_shape(s * b, shape_a), sum_to_shape(s * a, shape_b))

    def preactivation(self, a, b):
        self._check(a, b)
        return a * b

    def output_nonnegative(self, inputs_nonnegative):
        return all(inputs_nonnegative)


class MatMul(ProductLayer):
    """``y = a @ b``, the matrix product over the last two axes, batched (and broadcast) over the
    leading ones, e.g. attention ``q @ kᵀ`` and ``attn @ v``. Both factors carry the batch
    axis, so each has rank >= 3."""

    def _check(self, a, b):
        if len(a.shape) < 3 or len(b.shape) < 3:
            raise ValueError(f"MatMul multiplies two activations, each (N, ..., rows, cols); got "
                             f"shapes {tuple(a.shape)} and {tuple(b.shape)} (a product with a "
                             "weight is a Dense layer)")
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(f"MatMul: the shapes {tuple(a.shape)} and {tuple(b.shape)} do not "
                             f"match ({a.shape[-1]} columns against {b.shape[-2]} rows)")

    def preactivation(self, a, b):
        self._check(a, b)
        return namespace_of(a, b).matmul(a, b)

    def linearize(self, a, b):
        y = self.preactivation(a, b)
        xp = namespace_of(a, b)
        shape_a, shape_b = tuple(a.shape), tuple(b.shape)

        def pullback(s):
            return (sum_to_shape(xp.matmul(s, xp.matrix_transpose(b)), shape_a),
                    sum_to_shape(xp.matmul(xp.matrix_transpose(a), s), shape_b))

        return y, pullback

    def output_nonnegative(self, inputs_nonnegative):
        return all(inputs_nonnegative)
