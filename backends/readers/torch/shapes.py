"""Translations of shape calls: flattening, ``view``/``reshape``, and sizes of tensors.

``torch.flatten``/``x.flatten`` become ``Flatten``; ``x.view``/``x.reshape``/``torch.reshape``
with the batch size ``x.size(0)``/``x.shape[0]`` (or a leading ``-1`` before constant sizes)
become ``Flatten`` or a per-sample ``Reshape``; ``x.size()``, ``x.shape``, ``x.dim()`` and
indexing a size are values (:class:`~.values.Size`, :class:`~.values.Dim`, an int). A reshape
that needs the input's rank is refused where the rank is unknown (:func:`~.values.known_rank`).
"""

from __future__ import annotations

import lrp_core as lrp

from .values import Dim, Op, Size, Tensor, as_tensor, describe, fail, ints, known_rank

__all__ = ["flatten_layer", "flatten", "unflatten_layer", "reshape", "view", "contiguous",
           "size", "tensor_getattr", "tensor_getitem", "dim"]


def _normalize_dim(dim: int, rank: int | None, what: str) -> int:
    if dim >= 0:
        return dim
    if rank is None:
        fail(f"{what}: a negative dimension ({dim}) needs the input's rank, which is not known "
             "here")
    return dim + rank


def flatten_layer(x: Tensor, start_dim=0, end_dim=-1):
    """``(Flatten layer, output rank)`` for ``torch.flatten(x, start_dim, end_dim)``."""
    start_dim, end_dim = ints(start_dim, "start_dim"), ints(end_dim, "end_dim")
    if start_dim < 0:
        rank = known_rank(x, f"flatten from start_dim={start_dim} (counted from the end; it may "
                             "be the batch axis)")
        start = start_dim + rank
    else:
        start = start_dim
    if start == 0:
        fail("flattening the batch axis is not supported (use torch.flatten(x, 1))")
    if end_dim == -1:
        rank = start + 1
    elif x.rank is not None:
        rank = x.rank - (_normalize_dim(end_dim, x.rank, "flatten") - start)
    else:
        rank = None
    return lrp.Flatten(start_dim, end_dim), rank


def flatten(input, start_dim=0, end_dim=-1) -> Op:
    """``torch.flatten(x, ...)`` / ``x.flatten(...)``."""
    x = as_tensor(input)
    layer, rank = flatten_layer(x, start_dim, end_dim)
    return Op(layer, (x,), rank)


def unflatten_layer(x: Tensor, dim, sizes):
    """``(Reshape layer, output rank)`` for unflattening the features of a (batch, features)
    tensor."""
    dim = ints(dim, "dim")
    sizes = ints(tuple(sizes), "unflattened_size")
    if x.rank != 2 or _normalize_dim(dim, x.rank, "unflatten") != 1:
        fail("unflatten is supported on the feature axis of a (batch, features) tensor only; "
             f"here dim={dim} and the input rank is {x.rank if x.rank is not None else 'unknown'}")
    return lrp.Reshape(sizes), 1 + len(sizes)


def reshape(x, shape) -> Op:
    """``x.view(shape)``: the batch entry must be ``x.size(0)`` (or ``-1`` before constants)."""
    x = as_tensor(x)
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, Size)):
        shape = shape[0]
    if isinstance(shape, Size):
        if shape.of is x:
            return Op(None, (x,), x.rank)
        fail("reshaping to the size of another tensor is not supported")
    shape = list(shape)
    if not shape:
        fail("reshaping to a scalar is not supported")
    for entry in shape:
        if not isinstance(entry, (int, Dim)):
            fail(f"the shape must hold ints and sizes of tensors, got {describe(entry)}")
    first, rest = shape[0], shape[1:]
    if isinstance(first, Dim) and first.is_batch:
        kept = 0  # leading axes kept as they are: x.view(x.size(0), x.size(1), -1)
        while kept < len(rest) and _is_axis(rest[kept], x, kept + 1):
            kept += 1
        tail = rest[kept:]
        if not tail:
            return _keep_leading_axes(x, len(shape))
        if tail == [-1]:
            return Op(lrp.Flatten(kept + 1), (x,), kept + 2)
        if kept == 0 and all(isinstance(t, int) for t in tail):
            return Op(lrp.Reshape(tuple(tail)), (x,), len(shape))
        fail("only reshapes of the form x.view(x.size(0), ...) with constant sizes, or keeping "
             "the leading axes and flattening the rest with -1, are supported")
    if first == -1 and rest and all(isinstance(t, int) and t != -1 for t in rest):
        return Op(lrp.Reshape(tuple(rest)), (x,), len(shape))
    if isinstance(first, int):
        fail(f"the reshape fixes the batch size to {first}; write x.view(x.size(0), ...) or "
             "x.flatten(1) so that any batch size works")
    fail("the first entry of the shape must be the batch size x.size(0) / x.shape[0]")


def _keep_leading_axes(x: Tensor, count: int) -> Op:
    """``x.view(x.size(0), ..., x.size(count - 1))``: the identity on a rank-``count`` tensor;
    on a longer one (whose trailing axes then have size 1) it folds them into the last kept
    axis, which ``Flatten(count - 1)`` does whatever the rank."""
    if x.rank == count:
        return Op(None, (x,), count)
    if count == 1:
        known_rank(x, "x.view(x.size(0))")
        fail(f"x.view(x.size(0)) of a rank-{x.rank} tensor flattens it into the batch axis; "
             "not supported")
    return Op(lrp.Flatten(count - 1), (x,), count)


def _is_axis(entry, x: Tensor, axis: int) -> bool:
    """Whether ``entry`` is ``x.size(axis)`` (or the same axis counted from the end)."""
    if not isinstance(entry, Dim) or entry.of is not x:
        return False
    return entry.index == axis or (x.rank is not None and entry.index + x.rank == axis)


def view(self, *shape) -> Op:
    """``x.view(...)`` / ``x.reshape(...)``."""
    return reshape(self, shape)


def contiguous(self, memory_format=None) -> Op:
    """``x.contiguous()``: the identity."""
    x = as_tensor(self)
    return Op(None, (x,), x.rank)


def size(x, dim=None):
    """``x.size()`` / ``x.size(i)``."""
    x = as_tensor(x)
    if dim is None:
        return Size(x)
    return Dim(x, ints(dim, "dim"))


def tensor_getattr(obj, name):
    """``getattr(x, name)`` as fx records ``x.shape`` and ``x.ndim``."""
    if isinstance(obj, Tensor):
        if name == "shape":
            return Size(obj)
        if name == "ndim" and obj.rank is not None:
            return obj.rank
        fail(f"tensor attribute {name!r} is not supported")
    fail(f"getattr({describe(obj)}, {name!r}) is not supported")


def tensor_getitem(obj, index):
    """``obj[index]``: an entry of a size or a constant sequence (tensors cannot be indexed)."""
    if isinstance(obj, Size):
        if isinstance(index, int):
            return Dim(obj.of, index)
        fail(f"indexing a tensor size with {index!r} is not supported")
    if isinstance(obj, (tuple, list)):
        return obj[index]
    if isinstance(obj, Tensor):
        fail("indexing or slicing a tensor is not supported")
    fail(f"indexing {describe(obj)} is not supported")


def dim(x):
    """``x.dim()``: the rank, where it is known."""
    return known_rank(as_tensor(x), "x.dim()")
