"""Translations of shape calls: flattening, ``view``/``reshape``, and sizes of tensors.

``torch.flatten``/``x.flatten`` become ``Flatten``; ``x.view``/``x.reshape``/``torch.reshape``
with the batch size ``x.size(0)``/``x.shape[0]`` (or a leading ``-1`` before constant sizes)
become ``Flatten`` or a per-sample ``Reshape``; ``x.size()``, ``x.shape``, ``x.dim()`` and
indexing a size are values (:class:`~.values.Size`, :class:`~.values.Dim`, an int). A reshape
that needs the input's rank is refused where the rank is unknown (:func:`~.values.known_rank`).
"""

from __future__ import annotations

import torch

import lrp_core as lrp

from .routing import BatchMoved, getitem, matrix_transpose
from .values import (
    Dim,
    Op,
    ShapeNeeded,
    Size,
    Tensor,
    as_tensor,
    describe,
    fail,
    ints,
    known_rank,
    known_shape,
)

__all__ = ["flatten_layer", "flatten", "unflatten_layer", "reshape", "view", "contiguous",
           "size", "numel", "squeeze", "unsqueeze", "tensor_getattr", "tensor_getitem", "dim"]


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
        if shape.of.shape is None:
            fail("reshaping to the size of another tensor is not supported")
        shape = (Dim(shape.of, 0),) + tuple(shape.of.shape)
    shape = list(shape)
    if not shape:
        fail("reshaping to a scalar is not supported")
    for entry in shape:
        if not isinstance(entry, (int, Dim)):
            fail(f"the shape must hold ints and sizes of tensors, got {describe(entry)}")
    if x.shape is not None:
        return _reshape_known(x, shape)
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


def _reshape_known(x: Tensor, shape: list) -> Op:
    """``x.view(shape)`` where the per-sample shape of ``x`` is known: the batch entry is
    ``x.size(0)`` (or ``-1`` with every other entry constant), the others any sizes, one may be
    ``-1``; a per-sample ``Reshape`` to the resolved target."""
    first, rest = shape[0], list(shape[1:])
    if isinstance(first, Dim) and first.is_batch:
        pass
    elif first == -1 and all(isinstance(t, int) and t != -1 for t in rest):
        pass
    elif isinstance(first, int):
        fail(f"the reshape fixes the batch size to {first}; write x.view(x.size(0), ...) or "
             "x.flatten(1) so that any batch size works")
    else:
        fail("the first entry of the shape must be the batch size x.size(0) / x.shape[0]")
    for t in rest:
        if isinstance(t, Dim):
            fail("the batch size appears twice in the shape; the batch axis must stay alone")
    count = 1
    for s in x.shape:
        count *= s
    if rest.count(-1) > 1:
        fail("more than one -1 in the shape")
    if -1 in rest:
        known = 1
        for t in rest:
            if t != -1:
                known *= t
        if known == 0 or count % known:
            fail(f"cannot reshape a sample of shape {x.shape} to {tuple(rest)}")
        rest[rest.index(-1)] = count // known
    target = tuple(rest)
    total = 1
    for t in target:
        total *= t
    if total != count or any(t < 0 for t in target):
        fail(f"cannot reshape a sample of shape {x.shape} to {target}")
    if target == x.shape:
        return Op(None, (x,), x.rank)
    return Op(lrp.Reshape(target, input_shape=x.shape), (x,), len(target) + 1, shape=target)


def squeeze(input, dim=None) -> Op:
    """``x.squeeze(dim)`` / ``torch.squeeze``: drops size-1 axes (never the batch axis)."""
    x = as_tensor(input)
    shape = known_shape(x, "squeeze")
    rank = len(shape) + 1
    if dim is None:
        dims = [a for a in range(1, rank) if shape[a - 1] == 1]
    else:
        dims = [dim] if isinstance(dim, int) else list(ints(tuple(dim), "dim"))
        dims = [d % rank if -rank <= d < rank else fail(f"dim {d} out of range") for d in dims]
        if 0 in dims:
            fail("squeezing the batch axis is not supported")
        dims = [a for a in dims if shape[a - 1] == 1]
    target = tuple(s for a, s in enumerate(shape, start=1) if a not in dims)
    return _reshape_known(x, [Dim(x, 0), *target])


def unsqueeze(input, dim) -> Op:
    """``x.unsqueeze(dim)`` / ``torch.unsqueeze``: a new size-1 axis (not before the batch)."""
    x = as_tensor(input)
    shape = known_shape(x, "unsqueeze")
    rank = len(shape) + 2
    dim = ints(dim, "dim")
    if not -rank <= dim < rank:
        fail(f"unsqueeze({dim}) is out of range for a rank-{rank - 1} tensor")
    dim %= rank
    if dim == 0:
        fail("a new axis before the batch axis is not supported")
    target = list(shape)
    target.insert(dim - 1, 1)
    return _reshape_known(x, [Dim(x, 0), *target])


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


def _dim(x: Tensor, index: int):
    """``x.size(index)``: the batch (a :class:`Dim`) or, where the shape is known, an int."""
    if x.shape is not None:
        rank = len(x.shape) + 1
        if not -rank <= index < rank:
            fail(f"size({index}) of a rank-{rank} tensor")
        index %= rank
        return Dim(x, 0) if index == 0 else x.shape[index - 1]
    return Dim(x, index)


def size(x, dim=None):
    """``x.size()`` / ``x.size(i)``."""
    x = as_tensor(x)
    if dim is None:
        return Size(x)
    return _dim(x, ints(dim, "dim"))


def numel(x):
    """``x.numel()`` is batch-dependent: refused."""
    fail("x.numel() depends on the batch size; not supported")


def tensor_getattr(obj, name):
    """``getattr(x, name)`` as fx records ``x.shape`` and ``x.ndim``."""
    if isinstance(obj, Tensor):
        if name == "shape":
            return Size(obj)
        if name == "ndim" and obj.rank is not None:
            return obj.rank
        if name == "mT":
            return matrix_transpose(obj)
        fail(f"tensor attribute {name!r} is not supported")
    if isinstance(obj, torch.Tensor) and name in ("shape", "ndim", "dtype", "device"):
        return getattr(obj, name)  # of a constant (a parameter or a buffer)
    fail(f"getattr({describe(obj)}, {name!r}) is not supported")


def tensor_getitem(obj, index):
    """``obj[index]``: an entry of a size or a constant sequence (tensors cannot be indexed)."""
    if isinstance(obj, Size):
        if isinstance(index, int):
            return _dim(obj.of, index)
        if isinstance(index, slice):
            if obj.of.shape is None:
                raise ShapeNeeded(f"x.shape[{index.start}:{index.stop}] needs the sizes, known "
                                  "only when the model is read for an input shape")
            full = (Dim(obj.of, 0),) + tuple(obj.of.shape)
            return full[index]
        fail(f"indexing a tensor size with {index!r} is not supported")
    if isinstance(obj, (tuple, list)):
        return obj[index]
    if isinstance(obj, (Tensor, BatchMoved)):
        return getitem(obj, index)
    fail(f"indexing {describe(obj)} is not supported")


def dim(x):
    """``x.dim()``: the rank, where it is known."""
    return known_rank(as_tensor(x), "x.dim()")
