"""Translations of calls that move values: permutations, slicing and indexing, splitting,
stacking.

``x.permute``/``torch.permute``/``x.transpose``/``torch.transpose``/``x.mT``/``torch.movedim``
become ``Permute`` (the batch axis stays first); ``x[:, a:b]`` (slices, integers, ``...`` and
``None`` on the non-batch axes), ``x.narrow``, ``x.select`` become ``Slice`` (and a ``Reshape``
that drops an indexed axis or inserts a ``None`` one); ``torch.split``/``x.split``/``chunk``/
``unbind`` become one ``Slice`` per piece, all reading the same tensor (fan-out: their
relevances add); ``torch.stack`` becomes ``Stack``; ``torch.roll`` is two Slices and a Concat
per axis; ``F.pad`` with zeros is ``ZeroPad``. Negative axes need the rank, and indexing
with an integer, ``split`` and ``chunk`` need the per-sample shape (:func:`~.values.known_shape`).
"""

from __future__ import annotations

import lrp_core as lrp

from .values import (
    Op,
    Tensor,
    as_tensor,
    describe,
    fail,
    ints,
    known_rank,
    known_shape,
    normalize_axis,
)

__all__ = ["BatchMoved", "permute", "transpose", "movedim", "matrix_transpose", "getitem",
           "narrow", "select", "split", "chunk", "unbind", "stack", "roll", "pad"]


class BatchMoved:
    """``x.permute(axes)`` with ``axes[0] != 0``: a permutation that moves the batch axis. Only
    taking entries of its leading axis is read (``qkv.permute(2, 0, 3, 1, 4)`` then
    ``qkv.unbind(0)`` or ``qkv[0]``, as attention blocks split q, k and v): each is a
    ``select`` of ``x`` along ``axes[0]`` and a permutation that keeps the batch first."""

    def __init__(self, x: Tensor, axes: tuple):
        self.x, self.axes = x, axes

    def __repr__(self):
        return f"a tensor whose batch axis is moved by the permutation {self.axes}"

    def take(self, index: int) -> Op:
        x, axes = self.x, self.axes
        shape = known_shape(x, "taking an entry of a permutation that moves the batch axis")
        a = axes[0]
        index = ints(index, "index")
        if not -shape[a - 1] <= index < shape[a - 1]:
            fail(f"index {index} is out of range for an axis of size {shape[a - 1]}")
        taken = select(x, a, index)
        rest = [ax - (ax > a) for ax in axes[1:]]
        if rest[0] != 0:
            fail(f"the permutation {axes} followed by taking an entry of its leading axis "
                 "does not keep the batch axis first")
        if rest == list(range(len(rest))):
            return taken
        remaining = shape[:a - 1] + shape[a:]
        return Op(lrp.Permute(tuple(rest)), (taken,), len(rest),
                  shape=tuple(remaining[r - 1] for r in rest[1:]))

    def unbind(self) -> tuple:
        shape = known_shape(self.x, "unbind of a permutation that moves the batch axis")
        return tuple(self.take(i) for i in range(shape[self.axes[0] - 1]))


def _source(input):
    """``(batch-first tensor, the permutation already applied to it or None)``."""
    if isinstance(input, BatchMoved):
        return input.x, input.axes
    return as_tensor(input), None


def _permute_op(x: Tensor, axes, before: tuple | None = None) -> Op:
    """``x`` permuted by ``axes``, after ``before`` (a permutation that moved the batch axis;
    ``None``: none): the two composed, ``before[axes[i]]``."""
    axes = tuple(axes)
    if before is not None:
        axes = tuple(before[a] for a in axes)
    if axes[0] != 0:
        return BatchMoved(x, axes)
    if axes == tuple(range(len(axes))):
        return Op(None, (x,), x.rank)
    shape = None if x.shape is None else tuple(x.shape[a - 1] for a in axes[1:])
    return Op(lrp.Permute(axes), (x,), len(axes), shape=shape)


def permute(input, *dims) -> Op:
    """``x.permute(*dims)`` / ``torch.permute(x, dims)``."""
    x, before = _source(input)
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    dims = ints(tuple(dims), "dims")
    rank = len(dims)
    if before is not None and len(before) != rank:
        fail(f"permute with {rank} dims of a rank-{len(before)} tensor")
    if x.rank is not None and x.rank != rank:
        fail(f"permute with {rank} dims of a rank-{x.rank} tensor")
    axes = tuple(normalize_axis(d, rank, "dims") for d in dims)
    if sorted(axes) != list(range(rank)):
        fail(f"dims {dims} are not a permutation of the {rank} axes")
    return _permute_op(x, axes, before)


def transpose(input, dim0, dim1) -> Op:
    """``x.transpose(dim0, dim1)`` / ``torch.transpose`` / ``x.swapaxes``."""
    x, before = _source(input)
    dim0, dim1 = ints(dim0, "dim0"), ints(dim1, "dim1")
    if before is not None:
        rank = len(before)
    elif dim0 >= 0 and dim1 >= 0 and x.rank is None:
        rank = known_rank(x, f"transpose({dim0}, {dim1}) (a permutation of all axes)")
    else:
        rank = known_rank(x, f"transpose({dim0}, {dim1})")
    a, b = normalize_axis(dim0, rank, "dim0"), normalize_axis(dim1, rank, "dim1")
    axes = list(range(rank))
    axes[a], axes[b] = axes[b], axes[a]
    return _permute_op(x, axes, before)


def matrix_transpose(input) -> Op:
    """``x.mT``: the last two axes swapped."""
    return transpose(input, -2, -1)


def movedim(input, source, destination) -> Op:
    """``torch.movedim(x, source, destination)`` / ``x.movedim`` / ``torch.moveaxis``."""
    x, before = _source(input)
    rank = len(before) if before is not None else known_rank(x, "movedim")
    source = (source,) if isinstance(source, int) else tuple(source)
    destination = (destination,) if isinstance(destination, int) else tuple(destination)
    if len(source) != len(destination):
        fail("movedim: source and destination differ in length")
    src = [normalize_axis(s, rank, "source") for s in source]
    dst = [normalize_axis(d, rank, "destination") for d in destination]
    axes = [None] * rank
    for s, d in zip(src, dst):
        axes[d] = s
    rest = iter(a for a in range(rank) if a not in src)
    axes = [a if a is not None else next(rest) for a in axes]
    return _permute_op(x, axes, before)


# -- indexing ----------------------------------------------------------------------------------
def _slice_bounds(index: slice, what: str):
    start, stop, step = (ints(v, what) if v is not None else None
                         for v in (index.start, index.stop, index.step))
    step = 1 if step is None else step
    if step < 1:
        fail(f"{what}: a step of {step} is not supported (only positive steps)")
    return start, stop, step


def getitem(x: Tensor, index) -> Op:
    """``x[index]``: slices, integers, ``...`` and ``None``; the batch axis must be taken whole
    (``x[:, ...]``)."""
    if isinstance(x, BatchMoved):
        if isinstance(index, int) and not isinstance(index, bool):
            return x.take(index)
        fail(f"indexing {x!r} with {index!r}")
    if not isinstance(index, tuple):
        index = (index,)
    for entry in index:
        if not (entry is None or entry is Ellipsis or isinstance(entry, (int, slice))):
            fail(f"indexing a tensor with {describe(entry)} is not supported (only slices, "
                 "integers, ... and None)")
        if isinstance(entry, bool):
            fail("indexing a tensor with a bool is not supported")
    if index.count(Ellipsis) > 1:
        fail("an index with more than one ...")
    consuming = [e for e in index if e is not None and e is not Ellipsis]
    if Ellipsis in index or any(isinstance(e, int) for e in consuming) or None in index:
        rank = known_rank(x, "indexing with ..., an integer or None")
        at = index.index(Ellipsis) if Ellipsis in index else len(index)
        fill = rank - len(consuming)
        if fill < 0:
            fail(f"too many indices ({len(consuming)}) for a rank-{rank} tensor")
        index = index[:at] + (slice(None),) * fill + index[at + 1:]
    if not index or index[0] is None:
        fail("indexing that adds an axis before the batch axis is not supported")
    if index[0] != slice(None):
        fail(f"indexing the batch axis with {index[0]!r} is not supported; take it whole "
             "(x[:, ...])")
    op, axis, dropped, added = x, 0, [], []
    for entry in index:
        if entry is None:
            added.append(axis + len(added) - len(dropped))  # new axis in the output
            continue
        if isinstance(entry, int):
            op = Op(lrp.Slice(axis, entry, entry + 1 if entry != -1 else None), (op,),
                    x.rank, name=f"slice{axis}")
            dropped.append(axis)
        elif entry != slice(None):
            start, stop, step = _slice_bounds(entry, "index")
            op = Op(lrp.Slice(axis, start, stop, step), (op,), x.rank, name=f"slice{axis}")
        axis += 1
    if dropped or added:
        shape = known_shape(x, "indexing with an integer or None")
        out = list(_sliced_shape(shape, index))
        op = Op(lrp.Reshape(tuple(out)), (op,), len(out) + 1, shape=tuple(out))
    if op is x:
        return Op(None, (x,), x.rank)
    return op


def _sliced_shape(shape: tuple, index: tuple) -> tuple:
    """The per-sample shape of ``x[index]`` (``index`` complete, batch entry first)."""
    out, axis = [], 0
    for entry in index[1:]:
        if entry is None:
            out.append(1)
            continue
        length = shape[axis]
        if isinstance(entry, slice):
            out.append(len(range(*entry.indices(length))))
        elif not -length <= entry < length:
            fail(f"index {entry} is out of range for an axis of size {length}")
        axis += 1
    return tuple(out) + tuple(shape[axis:])


def narrow(input, dim, start, length) -> Op:
    """``x.narrow(dim, start, length)`` / ``torch.narrow``."""
    x = as_tensor(input)
    dim, start, length = ints(dim, "dim"), ints(start, "start"), ints(length, "length")
    if dim < 0 or start < 0:
        shape = known_shape(x, "narrow with a negative dim or start")
        dim = normalize_axis(dim, len(shape) + 1, "dim")
        start = start % shape[dim - 1]
    if dim == 0:
        fail("narrowing the batch axis is not supported")
    return Op(lrp.Slice(dim, start, start + length), (x,), x.rank)


def select(input, dim, index) -> Op:
    """``x.select(dim, index)`` / ``torch.select``: ``x[:, ..., index]`` on axis ``dim``."""
    x = as_tensor(input)
    rank = known_rank(x, "select")
    dim = normalize_axis(dim, rank, "dim")
    return getitem(x, (slice(None),) * dim + (ints(index, "index"),))


def _pieces(x: Tensor, dim, sizes, what: str) -> list:
    shape = known_shape(x, what)
    rank = len(shape) + 1
    axis = normalize_axis(dim, rank, "dim")
    if axis == 0:
        fail(f"{what} along the batch axis is not supported")
    ops, start = [], 0
    for size in sizes:
        ops.append(Op(lrp.Slice(axis, start, start + size), (x,), rank))
        start += size
    return ops, axis, shape


def split(tensor, split_size_or_sections, dim=0) -> tuple:
    """``torch.split`` / ``x.split``: one ``Slice`` per piece."""
    x = as_tensor(tensor)
    shape = known_shape(x, "split")
    axis = normalize_axis(dim, len(shape) + 1, "dim")
    length = shape[axis - 1] if axis else 0
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        if size <= 0:
            fail(f"split size {size}")
        sizes = [min(size, length - s) for s in range(0, length, size)]
    else:
        sizes = list(ints(tuple(split_size_or_sections), "split_size_or_sections"))
    return tuple(_pieces(x, dim, sizes, "split")[0])


def chunk(input, chunks, dim=0) -> tuple:
    """``torch.chunk`` / ``x.chunk``: pieces of ``ceil(size / chunks)``, as torch cuts them."""
    x = as_tensor(input)
    shape = known_shape(x, "chunk")
    axis = normalize_axis(dim, len(shape) + 1, "dim")
    length = shape[axis - 1] if axis else 0
    chunks = ints(chunks, "chunks")
    size = -(-length // chunks)
    return split(x, size, axis)


def unbind(input, dim=0) -> tuple:
    """``torch.unbind`` / ``x.unbind``: one ``x.select(dim, i)`` per index."""
    if isinstance(input, BatchMoved) and dim == 0:
        return input.unbind()
    x = as_tensor(input)
    shape = known_shape(x, "unbind")
    axis = normalize_axis(dim, len(shape) + 1, "dim")
    if axis == 0:
        fail("unbind along the batch axis is not supported")
    return tuple(select(x, axis, i) for i in range(shape[axis - 1]))


def stack(tensors, dim=0, *, out=None) -> Op:
    """``torch.stack(tensors, dim)`` along a non-batch axis."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        fail("stacking nothing")
    dim = ints(dim, "dim")
    rank = next((t.rank for t in tensors if t.rank is not None), None)
    if dim < 0:
        if rank is None:
            known_rank(tensors[0], f"stack along dim={dim}")
        dim += rank + 1
    if dim == 0:
        fail("stacking along the batch axis is not supported")
    return Op(lrp.Stack(dim), tuple(tensors), None if rank is None else rank + 1)


def roll(input, shifts, dims=None) -> Op:
    """``torch.roll(x, shifts, dims)`` along non-batch axes: per axis, two Slices and a Concat
    (a permutation of positions: relevance follows it back)."""
    x = as_tensor(input)
    shape = known_shape(x, "roll")
    if dims is None:
        fail("roll without dims flattens the batch axis into the others; not supported")
    shifts = (shifts,) if isinstance(shifts, int) else tuple(ints(tuple(shifts), "shifts"))
    dims = (dims,) if isinstance(dims, int) else tuple(ints(tuple(dims), "dims"))
    if len(shifts) != len(dims):
        fail("roll: shifts and dims differ in length")
    rank = len(shape) + 1
    axes = tuple(normalize_axis(d, rank, "dims") for d in dims)
    if 0 in axes:
        fail("rolling along the batch axis is not supported")
    op = x
    for shift, axis in zip(shifts, axes):
        length = shape[axis - 1]
        shift %= length
        if shift == 0:
            continue
        tail = Op(lrp.Slice(axis, length - shift, None), (op,), rank, name=f"tail{axis}")
        head = Op(lrp.Slice(axis, 0, length - shift), (op,), rank, name=f"head{axis}")
        op = Op(lrp.Concat(axis), (tail, head), rank, name=f"roll{axis}")
    if op is x:
        return Op(None, (x,), x.rank)
    op.name = None
    return op


def pad(input, pad, mode="constant", value=None) -> Op:
    """``F.pad(x, pad)`` with zeros on non-batch axes (``ZeroPad``)."""
    x = as_tensor(input)
    if mode != "constant" or value not in (None, 0, 0.0):
        fail(f"F.pad with mode={mode!r}, value={value!r} is not supported (only zeros)")
    pads = ints(tuple(pad), "pad")
    if len(pads) % 2:
        fail("F.pad takes pairs of pads")
    rank = known_rank(x, "F.pad")
    pairs = [(pads[i], pads[i + 1]) for i in range(0, len(pads), 2)]  # last axis first
    if len(pairs) > rank - 1:
        fail("F.pad of the batch axis is not supported")
    if any(lo < 0 or hi < 0 for lo, hi in pairs):
        fail("F.pad with negative pads (cropping) is not supported")
    per_axis = [(0, 0)] * (rank - 1 - len(pairs)) + list(reversed(pairs))
    if all(p == (0, 0) for p in per_axis):
        return Op(None, (x,), rank)
    return Op(lrp.ZeroPad(tuple(per_axis)), (x,), rank)
