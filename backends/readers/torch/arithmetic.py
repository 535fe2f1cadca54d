"""Translations of arithmetic and concatenation.

* two tensors computed from the input: ``a + b`` is ``Add`` (a residual addition), ``a - b`` is
  ``Add(a, Affine(-1)(b))``, ``a * b`` is ``Mul`` (a gate, squeeze-excitation's
  ``x * scale``) and ``a @ b`` / ``torch.matmul`` / ``torch.bmm`` is ``MatMul`` (attention);
* a tensor and a constant (a Python number, a parameter or a buffer): ``x * c``, ``x / c`` and
  ``-x`` are an ``Affine`` scale (a linear layer: ConvNeXt's layer scale); ``x + c`` and
  ``x - c`` are ``AddConstant`` (a bias inside the network: a positional embedding); ``x @ W``
  is ``Dense(Wᵀ)``. A constant must broadcast against one sample without changing its shape;
  a leading axis of size 1 that stands for the batch is dropped;
* ``torch.cat`` is ``Concat``; concatenating a constant expanded over the batch
  (``cls_token.expand(n, -1, -1)``) before a tensor is ``ConcatConstant`` (ViT's class token);
* plain numbers (sizes the reader knows: ``channels // groups``) are computed; arithmetic on
  the batch size is refused.
"""

from __future__ import annotations

import operator

import torch

import lrp_core as lrp

from .values import Dim, Op, ShapeNeeded, Tensor, as_tensor, describe, fail, ints, known_rank, param

__all__ = ["add", "sub", "mul", "truediv", "neg", "matmul", "einsum", "cat", "number_op",
           "Expanded", "expand", "core_layer"]


def core_layer(name: str):
    """The lrp-core layer class ``name`` (refused with a clear reason where the core lacks it)."""
    layer = getattr(lrp, name, None)
    if layer is None:
        fail(f"lrp_core has no {name} layer (yet) to translate this call into")
    return layer


class Expanded:
    """A constant expanded over the batch: ``c.expand(n, ...)`` with ``n`` the batch size; its
    per-sample value is ``value``."""

    def __init__(self, value):
        self.value = value


def expand(self, *sizes):
    """``c.expand(x.size(0), -1, ...)`` of a constant ``c`` with a leading axis of size 1."""
    if isinstance(self, Tensor):
        fail("expanding a tensor computed from the input is not supported")
    if not isinstance(self, torch.Tensor):
        fail(f"expanding {describe(self)} is not supported")
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    first, rest = sizes[0], sizes[1:] if sizes else ()
    if not (isinstance(first, Dim) and first.is_batch) or len(sizes) != self.dim() \
            or self.shape[0] != 1:
        fail("only a constant with a leading axis of size 1 expanded over the batch "
             "(c.expand(x.size(0), -1, ...)) is supported")
    if any(not (s == -1 or s == n) for s, n in zip(rest, self.shape[1:])):
        fail(f"expand{tuple(sizes)} of a constant of shape {tuple(self.shape)} changes a "
             "non-batch size; not supported")
    return Expanded(self[0])


def _per_sample_constant(c, x: Tensor, what: str):
    """The constant ``c`` as a per-sample array for ``x``, or a failure."""
    if isinstance(c, (Dim,)):
        fail(f"{what} with the batch size is not supported")
    if isinstance(c, bool) or not isinstance(c, (int, float, torch.Tensor)):
        fail(f"{what} with {describe(c)} is not supported")
    if not isinstance(c, torch.Tensor):  # float64, so that no digit of the number is lost
        return torch.tensor(float(c), dtype=torch.float64)
    value = param(c)
    if value.dim() > 0 and value.shape[0] == 1 and x.rank is None:
        known_rank(x, f"{what} with a constant of shape {tuple(value.shape)} (is its leading "
                      "axis the batch?)")
    if x.rank is not None and value.dim() == x.rank:
        if value.shape[0] != 1:
            fail(f"{what} with a constant of shape {tuple(value.shape)}, which varies along the "
                 "batch axis, is not supported")
        value = value[0]
    elif x.rank is not None and value.dim() > x.rank:
        fail(f"{what} with a constant of shape {tuple(value.shape)} would change the rank of "
             f"a rank-{x.rank} tensor")
    if x.shape is not None:
        try:
            broadcast = tuple(torch.broadcast_shapes(tuple(x.shape), tuple(value.shape)))
        except RuntimeError:
            fail(f"{what}: a constant of shape {tuple(value.shape)} does not broadcast against "
                 f"a sample of shape {x.shape}")
        if broadcast != tuple(x.shape):
            fail(f"{what}: a constant of shape {tuple(value.shape)} would change the shape of "
                 f"a sample {x.shape} to {broadcast}")
    return value


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def number_op(op, name: str):
    """``op`` on plain numbers (sizes the reader knows); on tensors, refused."""
    def translate(*args):
        if all(_is_number(a) or isinstance(a, bool) for a in args):
            return op(*args)
        if any(isinstance(a, Dim) and a.is_batch for a in args):
            fail(f"{name} with the batch size is not supported; the batch axis must stay alone")
        if any(isinstance(a, Dim) for a in args):
            raise ShapeNeeded(f"{name} of a tensor's size needs the sizes, known only when the "
                              "model is read for an input shape")
        fail(f"{name} of {', '.join(describe(a) for a in args)} is not supported")
    return translate


def _with_sizes(op, name: str, a, b):
    """``a op b`` where a size of a tensor is involved (refused for the batch size; needs the
    shapes for another size)."""
    return number_op(op, name)(a, b)


def add(input, other, *, alpha=1, out=None, inplace=False):
    """``input + other``: two tensors (``Add``), a tensor and a constant (``AddConstant``), or
    two numbers."""
    if isinstance(input, Dim) or isinstance(other, Dim):
        return _with_sizes(operator.add, "+", input, other)
    if _is_number(input) and _is_number(other):
        return input + alpha * other
    if alpha != 1:
        fail(f"torch.add with alpha={alpha} is not supported")
    if isinstance(input, Tensor) and isinstance(other, Tensor):
        rank = input.rank if input.rank is not None else other.rank
        return Op(lrp.Add(), (input, other), rank, inplace)
    if isinstance(other, Tensor) and not inplace:
        input, other = other, input
    x = as_tensor(input)
    value = _per_sample_constant(other, x, "adding")
    return Op(core_layer("AddConstant")(value), (x,), x.rank, inplace)


def sub(input, other, *, alpha=1, out=None, inplace=False):
    """``input - other``."""
    if isinstance(input, Dim) or isinstance(other, Dim):
        return _with_sizes(operator.sub, "-", input, other)
    if _is_number(input) and _is_number(other):
        return input - alpha * other
    if alpha != 1:
        fail(f"torch.sub with alpha={alpha} is not supported")
    if isinstance(input, Tensor) and isinstance(other, Tensor):
        negated = Op(lrp.Affine(scale=torch.tensor(-1.0)), (other,), other.rank, name="neg")
        rank = input.rank if input.rank is not None else other.rank
        return Op(lrp.Add(), (input, negated), rank, inplace)
    if not isinstance(input, Tensor):
        fail(f"subtracting a tensor from {describe(input)} is not supported")
    value = _per_sample_constant(other, input, "subtracting")
    return Op(core_layer("AddConstant")(-value), (input,), input.rank, inplace)


def mul(input, other, *, out=None, inplace=False):
    """``input * other``: two tensors (``Mul``), a tensor and a constant (``Affine``), or two
    numbers."""
    if isinstance(input, Dim) or isinstance(other, Dim):
        return _with_sizes(operator.mul, "*", input, other)
    if _is_number(input) and _is_number(other):
        return input * other
    if isinstance(input, Tensor) and isinstance(other, Tensor):
        rank = None if input.rank is None or other.rank is None else max(input.rank, other.rank)
        return Op(core_layer("Mul")(), (input, other), rank, inplace)
    if isinstance(other, Tensor) and not inplace:
        input, other = other, input
    x = as_tensor(input)
    value = _per_sample_constant(other, x, "multiplying")
    return Op(lrp.Affine(scale=value), (x,), x.rank, inplace)


def truediv(input, other, *, rounding_mode=None, out=None, inplace=False):
    """``input / other`` by a constant (a scale), or of two numbers."""
    if isinstance(input, Dim) or isinstance(other, Dim):
        return _with_sizes(operator.truediv, "/", input, other)
    if _is_number(input) and _is_number(other):
        return input / other
    if rounding_mode is not None:
        fail(f"division with rounding_mode={rounding_mode!r} is not supported")
    x = input if isinstance(input, Tensor) else fail(
        f"dividing {describe(input)} by a tensor is not supported")
    if isinstance(other, Tensor):
        fail("dividing by a tensor computed from the input is not supported")
    value = _per_sample_constant(other, x, "dividing")
    return Op(lrp.Affine(scale=1.0 / value), (x,), x.rank, inplace)


def neg(input):
    """``-x``."""
    if _is_number(input):
        return -input
    x = as_tensor(input)
    return Op(lrp.Affine(scale=torch.tensor(-1.0)), (x,), x.rank)


def matmul(input, other, *, out=None):
    """``input @ other``: two tensors (``MatMul``, batched over the leading axes) or a tensor
    times a constant matrix (``Dense``)."""
    if isinstance(input, Tensor) and isinstance(other, Tensor):
        if input.rank is not None and other.rank is not None and input.rank != other.rank:
            fail(f"a matrix product of a rank-{input.rank} and a rank-{other.rank} tensor is "
                 "not supported (both must have the batch axis first)")
        rank = input.rank if input.rank is not None else other.rank
        return Op(core_layer("MatMul")(), (input, other), rank)
    x = as_tensor(input)
    if isinstance(other, torch.Tensor) and other.dim() == 2:
        return Op(lrp.Dense(param(other).mT), (x,), x.rank)
    fail(f"a matrix product with {describe(other)} is not supported")


def cat(tensors, dim=0, *, out=None) -> Op:
    """``torch.cat(tensors, dim)`` along a non-batch axis (a constant expanded over the batch
    first: ``ConcatConstant``)."""
    tensors = list(tensors)
    if not tensors:
        fail("concatenating nothing")
    dim = ints(dim, "dim")
    constant = None
    if isinstance(tensors[0], Expanded) and len(tensors) >= 2:
        constant, tensors = tensors[0], tensors[1:]
    tensors = [as_tensor(t) for t in tensors]
    rank = next((t.rank for t in tensors if t.rank is not None), None)
    if (dim if dim >= 0 or rank is None else dim + rank) == 0:
        fail("concatenation along the batch axis is not supported")
    if constant is not None:
        x = tensors[0] if len(tensors) == 1 else Op(lrp.Concat(dim), tuple(tensors), rank,
                                                    name="cat")
        return Op(core_layer("ConcatConstant")(constant.value, dim), (x,), rank)
    if len(tensors) == 1:
        return Op(None, tuple(tensors), rank)
    return Op(lrp.Concat(dim), tuple(tensors), rank)


NUMBER_OPS = {operator.floordiv: number_op(operator.floordiv, "//"),
              operator.mod: number_op(operator.mod, "%"),
              operator.eq: number_op(operator.eq, "=="), operator.ne: number_op(operator.ne, "!="),
              operator.lt: number_op(operator.lt, "<"), operator.le: number_op(operator.le, "<="),
              operator.gt: number_op(operator.gt, ">"), operator.ge: number_op(operator.ge, ">="),
              operator.pow: number_op(operator.pow, "**")}


def einsum(equation, *operands):
    """``torch.einsum`` of two tensors that is a batched matrix product (one index of each
    operand kept, one contracted, the others shared, the batch first): ``Permute``s around a
    ``MatMul`` (MaxViT's ``"BGHID,BGHJD->BGHIJ"``)."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not isinstance(equation, str) or "->" not in equation or "..." in equation:
        fail("einsum is supported with an explicit output and without '...'")
    if len(operands) != 2 or not all(isinstance(t, Tensor) for t in operands):
        fail("einsum is supported for two tensors computed from the input")
    inputs, output = equation.replace(" ", "").split("->")
    terms = inputs.split(",")
    if len(terms) != 2:
        fail("einsum is supported for two operands")
    a_term, b_term = terms
    a, b = operands
    for term, t in ((a_term, a), (b_term, b)):
        if len(set(term)) != len(term):
            fail(f"einsum with a repeated index in {term!r} (a diagonal) is not supported")
        if t.rank is not None and t.rank != len(term):
            fail(f"einsum term {term!r} for a rank-{t.rank} tensor")
    shared = [c for c in output if c in a_term and c in b_term]
    only_a = [c for c in output if c in a_term and c not in b_term]
    only_b = [c for c in output if c in b_term and c not in a_term]
    contracted = [c for c in a_term if c in b_term and c not in output]
    if set(a_term) - set(output) - set(contracted) or set(b_term) - set(output) - set(contracted):
        fail("einsum that sums an index of one operand alone is not supported")
    if len(only_a) != 1 or len(only_b) != 1 or len(contracted) != 1:
        fail(f"einsum {equation!r} is not a batched matrix product (one index kept from each "
             "operand, one contracted)")
    if not (a_term[0] == b_term[0] == output[0] == shared[0]):
        fail(f"einsum {equation!r}: the batch index must come first in every term")
    (i,), (j,), (d,) = only_a, only_b, contracted
    rank = len(shared) + 2
    a_axes = tuple(a_term.index(c) for c in shared + [i, d])
    b_axes = tuple(b_term.index(c) for c in shared + [d, j])
    left = a if a_axes == tuple(range(rank)) else Op(lrp.Permute(a_axes), (a,), rank,
                                                      name="left")
    right = b if b_axes == tuple(range(rank)) else Op(lrp.Permute(b_axes), (b,), rank,
                                                       name="right")
    product = Op(core_layer("MatMul")(), (left, right), rank, name="matmul")
    order = shared + [i, j]
    out_axes = tuple(order.index(c) for c in output)
    if out_axes == tuple(range(rank)):
        product.name = None
        return product
    return Op(lrp.Permute(out_axes), (product,), rank)
