"""Values whose batch axis the graph has moved: the reader tracks, per ONNX value, where the
batch axis is, and emits lrp-core layers (whose batch axis is always first) only where the data
really moves within a sample.

``nn.MultiheadAttention`` exports (TorchScript exporter) transpose to sequence-first ``(L, N,
E)``, merge the batch with the heads (``(L, N·H, d)``, ``(N·H, L, d)``), split it back (``(N,
H, L, d)``), merge it with the sequence (``(L·N, E)`` before the output projection) and
transpose back. Each of these is a *regrouping* of one sample's axes around the batch axis: the
reader records it instead of emitting it.

The record, a *layout*, is a tuple of groups, one per axis of the ONNX tensor: the axes of the
lrp-core tensor (the *core* tensor; its axis 0 is the batch) merged, in row-major order, into
that ONNX axis; ``()`` is an axis of size 1. A value without a record has the canonical layout
``((0,), (1,), ..., (k,))``: its ONNX axes are the core axes. So:

- ``Transpose`` permutes the groups, ``Unsqueeze`` inserts ``()``, ``Squeeze`` drops size-1
  groups: no layer.
- ``Reshape`` regroups the core axes in the ONNX row-major order, splitting a core axis (a
  per-sample ``Reshape`` layer) where a target dimension takes part of it. The batch axis is
  never split, and a target dimension takes it only when its size says so (a multiple of the
  batch size, folded from ``Shape``: :data:`~lrp_core.backends.readers.onnx.nodes.BATCH` ·
  k); anything else would move values between samples and is refused.
- ``Gather``, ``Slice`` and ``Split`` along a group that is one core axis become ``Slice`` layers.
- Element-wise operators (with a constant, mapped into the core order, or of activations of
  one layout) and operators on the last axis (``MatMul`` with a constant matrix, ``Gemm``,
  ``Softmax``, ``LayerNormalization``) run on the core tensor; for the latter the core axes are
  first permuted so that the last ONNX axis is the last core axis (a ``Permute`` and a
  ``Reshape`` where it merges several). A ``MatMul`` of two activations whose leading axes are
  laid out alike (``(N·H, L, d) x (N·H, d, S)``) is a ``MatMul`` with their last two ONNX axes
  last.
- Any other operator reads its input *materialised*: a ``Permute`` and ``Reshape`` that make
  the ONNX axes the core axes, possible when the batch axis is the first ONNX axis, alone. A
  graph that reaches such an operator (or its output) with the batch axis elsewhere mixes
  samples in that operator and is refused there, naming the node that moved the batch axis.

In the attention block this gives the layers the torch reader writes for
``nn.MultiheadAttention`` (``Permute(0, 2, 1, 3)`` of the queries, ``Permute(0, 2, 3, 1)`` of
the keys, ``MatMul``, ``Softmax``, ``MatMul``, ``Permute(0, 2, 1, 3)`` and ``Reshape(L, E)``
before the output projection).
"""

from __future__ import annotations

import copy
import math

import numpy as np

import lrp_core as lrp

from .nodes import BATCH, axis_in, ints, read_axes, show

__all__ = ["Laid", "canonical", "is_canonical", "materialise", "onnx_shape", "translate_laid"]

#: a folded dimension ``k · BATCH`` stands for ``k`` times the batch size when ``k`` is below this
_MAX_FACTOR = 1 << 24


class Laid:
    """A translation's result: the core value ``value`` and the ``groups`` of its layout, with
    ``origin``, the node that moved the batch axis (for messages)."""

    def __init__(self, value: int, groups, origin):
        self.value = value
        self.groups = tuple(tuple(int(a) for a in g) for g in groups)
        self.origin = origin


def canonical(rank: int) -> tuple:
    """The layout of a core tensor of ``rank`` axes (batch included) read as it is."""
    return tuple((a,) for a in range(rank))


def is_canonical(groups) -> bool:
    return tuple(groups) == canonical(len(groups))


def describe(groups, sizes) -> str:
    """The ONNX shape of a layout for messages: ``N`` for the batch, ``N*2`` merged."""
    parts = []
    for g in groups:
        factors = ["N" if a == 0 else str(sizes[a]) for a in g]
        parts.append("*".join(factors) if factors else "1")
    return "(" + ", ".join(parts) + ")"


def _sizes(t, n, value: int, what: str) -> list:
    """The core sizes of ``value``: ``[None, *per-sample shape]`` (index 0 is the batch)."""
    return [None] + list(t.shape(n, value, what))


def onnx_shape(t, n, value: int, groups) -> np.ndarray:
    """The ONNX shape of a laid value as ``Shape`` returns it, with ``BATCH`` · k where a
    dimension holds the batch merged with axes of total size k."""
    sizes = _sizes(t, n, value, "Shape")
    dims = []
    for g in groups:
        k = math.prod(sizes[a] for a in g if a != 0)
        dims.append(k * BATCH if 0 in g else k)
    return np.asarray(dims, dtype=np.int64)


def _moved(t, n, name: str, why: str):
    origin = t.layouts[name].origin if name in t.layouts else None
    where = "" if origin is None else f" (node {origin.label}, {origin.op_type}, moved it)"
    return t.unsupported(n, f"{why}{where}; lrp_core keeps the batch axis first and never mixes "
                            "samples")


def materialise(t, n, name: str, *, output: bool = False) -> int:
    """The core value of the ONNX value ``name`` with its ONNX axes as core axes (a
    ``Permute`` and a ``Reshape`` where its layout differs), refused when the batch axis is not
    the first ONNX axis alone."""
    laid = t.layouts[name]
    value, groups = t.values[name], laid.groups
    cached = t.materialised.get(name)
    if cached is not None:
        return cached
    sizes = _sizes(t, n, value, f"reading {name!r}, whose batch axis the graph moved")
    if not _batch_first(groups, sizes) and output:
        raise t.unsupported(n, f"its output {name!r}, the graph output, has the batch axis moved "
                               f"or merged with other axes, shape {describe(groups, sizes)}; "
                               "lrp_core explains outputs whose first axis is the batch")
    if not _batch_first(groups, sizes):
        raise _moved(t, n, name, f"its input {name!r} has the batch axis moved or merged with "
                                 f"other axes, shape {describe(groups, sizes)}, and "
                                 f"{n.op_type} would mix samples")
    value = _arrange(t, n, value, sizes, groups, suffix=f"{name}:layout")
    t.materialised[name] = value
    return value


def _batch_first(groups, sizes) -> bool:
    """The batch axis is the first ONNX axis, alone but for core axes of size 1."""
    return (bool(groups) and 0 in groups[0] and all(sizes[a] == 1 for a in groups[0] if a)
            and not any(0 in g for g in groups[1:]))


def _arrange(t, n, value, sizes, groups, *, suffix):
    """``value`` permuted to the core order of ``groups`` (batch first) and reshaped to one axis
    per group (see :func:`_batch_first`)."""
    order = [0] + [a for a in groups[0] if a] + [a for g in groups[1:] for a in g]
    if order != list(range(len(order))):
        value = t.add(lrp.Permute(order), [value], n, suffix=f"{suffix}:permute")
    permuted = [sizes[a] for a in order[1:]]
    target = [math.prod(sizes[a] for a in g) for g in groups[1:]]
    if target != permuted:
        value = t.add(lrp.Reshape(target, input_shape=permuted), [value], n,
                      suffix=f"{suffix}:reshape")
    return value


def _trailing(t, n, name: str, value, groups, count: int = 1):
    """The core value with the last ``count`` ONNX axes of ``name`` as its last axes (one core
    axis each) and the layout of the other ONNX axes on it: ``(value, groups)``."""
    sizes = _sizes(t, n, value, n.op_type)
    lead, tail = groups[:-count], groups[-count:]
    if any(0 in g for g in tail):
        raise _moved(t, n, name, f"{n.op_type} acts on the last axes of {name!r}, shape "
                                 f"{describe(groups, sizes)}, which hold the batch axis")
    lead_atoms = [a for g in lead for a in g if a != 0]
    order = [0] + lead_atoms + [a for g in tail for a in g]
    if order != list(range(len(order))):
        value = t.add(lrp.Permute(order), [value], n, suffix="layout:permute")
    permuted = [sizes[a] for a in order[1:]]
    target = [sizes[a] for a in lead_atoms] + [math.prod(sizes[a] for a in g) for g in tail]
    if target != permuted:
        value = t.add(lrp.Reshape(target, input_shape=permuted), [value], n,
                      suffix="layout:reshape")
    new = {a: i + 1 for i, a in enumerate(lead_atoms)}
    new[0] = 0
    first_tail = 1 + len(lead_atoms)
    groups = tuple(tuple(new[a] for a in g) for g in lead) + tuple(
        (first_tail + i,) for i in range(count))
    return value, groups


def _in_core(t, n, translate, values=None, consts=None):
    """``translate(t, n)`` with inputs replaced by core values (``values``: index -> value) and
    constants (``consts``: index -> array), under names only this call binds."""
    view = copy.copy(n)
    view.inputs = list(n.inputs)
    bound = []
    for i, v in (values or {}).items():
        name = f"{n.input(i)}\x00core{i}"
        t.values[name] = v
        view.inputs[i] = name
        bound.append((t.values, name))
    for i, c in (consts or {}).items():
        name = f"{n.input(i)}\x00const{i}"
        t.consts[name] = c
        view.inputs[i] = name
        bound.append((t.consts, name))
    try:
        return translate(t, view)
    finally:
        for table, name in bound:
            table.pop(name, None)


def _constant_in_core(t, n, c, groups, sizes):
    """An ONNX constant that broadcasts against the laid tensor, as a constant of the core
    tensor's rank (batch axis of size 1) in the core order; refused when it varies along an
    axis that holds the batch."""
    c = np.asarray(c)
    rank = len(groups)
    if c.ndim > rank:
        raise t.unsupported(n, f"the constant of shape {c.shape} has more axes than the "
                               f"activation {describe(groups, sizes)}")
    c = c.reshape((1,) * (rank - c.ndim) + c.shape)
    pieces, atoms = [], []
    for i, g in enumerate(groups):
        length = c.shape[i]
        if length == 1:
            pieces += [1] * len(g)
        elif 0 in g:
            raise t.unsupported(n, f"the constant of shape {c.shape} differs between samples of "
                                   f"the batch (axis {i} of {describe(groups, sizes)})")
        elif length == math.prod(sizes[a] for a in g):
            pieces += [sizes[a] for a in g]
        else:
            raise t.unsupported(n, f"the constant of shape {c.shape} does not broadcast against "
                                   f"{describe(groups, sizes)}")
        atoms += list(g)
    if c.size == 1:
        return c.reshape(())
    return np.transpose(c.reshape(pieces), np.argsort(atoms))


_ARITHMETIC = ("Add", "Sub", "Mul", "Div")
_UNARY = ("Relu", "LeakyRelu", "Elu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
          "Gelu", "Identity", "Dropout", "Cast")
_LAST_AXIS = ("MatMul", "Gemm", "Softmax", "LayerNormalization")


def translate_laid(t, n):
    """The translation of ``n`` when one of its inputs has a moved batch axis, or when ``n``
    moves it (a ``Transpose``, ``Reshape`` or ``Unsqueeze`` the batch-first translations
    refuse); ``None`` otherwise (the node is translated as usual, its inputs materialised)."""
    laid = [i for i, name in enumerate(n.inputs) if name and name in t.layouts]
    op = n.op_type
    if op == "Transpose" and (laid or _transpose_moves_batch(n)):
        return _transpose(t, n)
    if op == "Reshape" and (laid or _reshape_moves_batch(t, n)):
        return _reshape(t, n)
    if op == "Unsqueeze" and (laid or _unsqueeze_moves_batch(t, n)):
        return _unsqueeze(t, n)
    if not laid:
        return None
    if op == "Squeeze":
        return _squeeze(t, n)
    if op == "Gather" and laid == [0]:
        return _gather(t, n)
    if op == "Slice" and laid == [0] and t.opset >= 10:
        return _slice(t, n)
    if op == "Split" and laid == [0]:
        return _split(t, n)
    if op in _ARITHMETIC:
        return _arithmetic(t, n)
    if op in _UNARY and laid == [0]:
        return _unary(t, n)
    if op in _LAST_AXIS and laid == [0] and _on_last_axis(t, n):
        return _last_axis(t, n)
    if op == "MatMul" and not any(t.is_const(name) for name in n.inputs[:2]):
        return _batched_matmul(t, n)
    return None


def _groups(t, n, i):
    """``(value, groups)`` of input ``i``."""
    name = n.input(i)
    value = t.values[name]
    if name in t.layouts:
        return value, t.layouts[name].groups
    return value, canonical(len(t.shape(n, value, n.op_type)) + 1)


def _result(t, n, value, groups, origin=None):
    if is_canonical(groups):
        return value
    if origin is None:
        origin = next((t.layouts[name].origin for name in n.inputs if name in t.layouts), n)
    return Laid(value, groups, origin)


# -- moving axes without layers -----------------------------------------------------------------
def _transpose_moves_batch(n) -> bool:
    perm = n.attr("perm")
    return perm is not None and len(ints(perm)) > 0 and ints(perm)[0] != 0


def _transpose(t, n):
    value, groups = _groups(t, n, 0)
    perm = n.attr("perm")
    perm = list(range(len(groups)))[::-1] if perm is None else ints(perm)
    if sorted(perm) != list(range(len(groups))):
        raise t.unsupported(n, f"perm {perm} is not a permutation of the {len(groups)} axes")
    return [_result(t, n, value, [groups[p] for p in perm], origin=n)]


def _unsqueeze_moves_batch(t, n) -> bool:
    axes = read_axes(t, n, 1, 13)
    return axes is not None and 0 in ints(axes)


def _unsqueeze(t, n):
    value, groups = _groups(t, n, 0)
    axes = read_axes(t, n, 1, 13)
    if axes is None:
        raise t.unsupported(n, "its axes are missing")
    rank = len(groups) + len(axes)
    axes = {axis_in(t, n, a, rank) for a in axes}
    if len(axes) != len(ints(read_axes(t, n, 1, 13))):
        raise t.unsupported(n, "it repeats an axis")
    remaining = iter(groups)
    new = [() if i in axes else next(remaining) for i in range(rank)]
    return [_result(t, n, value, new, origin=n)]


def _squeeze(t, n):
    value, groups = _groups(t, n, 0)
    sizes = _sizes(t, n, value, "Squeeze")
    axes = read_axes(t, n, 1, 13)
    if axes is None:
        axes = [i for i, g in enumerate(groups)
                if 0 not in g and math.prod(sizes[a] for a in g) == 1]
    axes = {axis_in(t, n, a, len(groups)) for a in axes}
    for a in axes:
        if 0 in groups[a] or math.prod(sizes[b] for b in groups[a]) != 1:
            raise t.unsupported(n, f"it squeezes axis {a} of {describe(groups, sizes)}, which is "
                                   "not of size 1")
    return [_result(t, n, value, _drop_groups(groups, axes))]


def _drop_groups(groups, axes):
    """``groups`` without the size-1 groups at ``axes``; their core axes (of size 1) join a
    group that does not hold the batch where there is one."""
    kept = [list(g) for i, g in enumerate(groups) if i not in axes]
    loose = [a for i, g in enumerate(groups) if i in axes for a in g]
    if loose:
        if not kept:
            kept = [[]]
        free = [g for g in kept if 0 not in g]
        (free[-1] if free else kept[-1]).extend(loose)
    return [tuple(g) for g in kept]


def _reshape_moves_batch(t, n) -> bool:
    """Whether the batch-first ``Reshape`` translation refuses ``n`` because it moves the batch
    (its leading target entry is not the batch, or another entry holds it)."""
    if not t.is_const(n.input(1)):
        return False
    target = ints(t.consts[n.input(1)])
    if not target:
        return False
    lead, rest = target[0], target[1:]
    allowzero = bool(n.attr("allowzero", 0))
    keeps = (lead == BATCH or (lead == 0 and not allowzero)
             or (t.static_batch is not None and lead == t.static_batch))
    if lead == -1 and -1 not in rest and 0 not in rest:  # x.reshape(-1, E) merges the batch
        shape = t.shapes[t.values[n.input(0)]]
        keeps = shape is None or math.prod(rest) == math.prod(shape)
    return not keeps or any(v != 0 and v % BATCH == 0 for v in rest)


def _dimension(t, n, entry, i, groups, sizes, allowzero):
    """One target entry as ``(k, holds_batch)``; ``None`` for -1."""
    if entry == -1:
        return None
    if entry == 0 and not allowzero:
        if i >= len(groups):
            raise t.unsupported(n, f"its target entry {i} copies an input axis that does not "
                                   "exist")
        g = groups[i]
        return math.prod(sizes[a] for a in g if a != 0), 0 in g
    if entry > 0 and entry % BATCH == 0 and entry // BATCH < _MAX_FACTOR:
        return entry // BATCH, True
    if entry < 1:
        raise t.unsupported(n, f"target entry {entry} (an empty tensor)")
    return entry, False


def _reshape(t, n):
    value, groups = _groups(t, n, 0)
    sizes = _sizes(t, n, value, "a Reshape of a tensor whose batch axis the graph moved")
    target = ints(t.const(n, 1, "the target shape (it could not be folded to a constant)"))
    allowzero = bool(n.attr("allowzero", 0))
    shown = show(target) if all(v == BATCH or v % BATCH for v in target) else str(
        ["N" + (f"*{v // BATCH}" if v // BATCH != 1 else "") if v > 0 and v % BATCH == 0 else v
         for v in target])
    dims = [_dimension(t, n, v, i, groups, sizes, allowzero) for i, v in enumerate(target)]
    total = math.prod(s for s in sizes[1:])
    if dims.count(None) > 1:
        raise t.unsupported(n, f"the reshape to {shown} has several -1 entries")
    if None in dims:
        known = math.prod(k for k, _ in (d for d in dims if d is not None))
        batch_known = any(b for _, b in (d for d in dims if d is not None))
        if known == 0 or total % known:
            raise t.unsupported(n, f"cannot reshape {describe(groups, sizes)} to {shown}")
        dims[dims.index(None)] = (total // known, not batch_known)
    if sum(b for _, b in dims) != 1 or math.prod(k for k, _ in dims) != total:
        raise t.unsupported(n, f"the reshape of {describe(groups, sizes)} to {shown} moves values "
                               "between samples of the batch")
    # the atoms: core axes in ONNX row-major order, split where a target dimension takes part
    core = list(range(len(sizes)))  # core order of the atoms, by id
    size = dict(enumerate(sizes))
    queue = [a for g in groups for a in g]
    fresh = len(sizes)
    new_groups = []
    for k, holds_batch in dims:
        group, need, need_batch = [], k, holds_batch
        while need > 1 or need_batch:
            if not queue:
                raise t.unsupported(n, f"cannot reshape {describe(groups, sizes)} to {shown}")
            a = queue[0]
            if a == 0:
                if not need_batch:
                    raise t.unsupported(n, f"the reshape of {describe(groups, sizes)} to {shown} "
                                           "merges or splits the batch axis across a dimension "
                                           "that does not hold it: it moves values between "
                                           "samples of the batch")
                group.append(queue.pop(0))
                need_batch = False
                continue
            s = size[a]
            if need % s == 0 and (s > 1 or need > 1 or need_batch):
                group.append(queue.pop(0))
                need //= s
            elif need > 1 and s % need == 0:  # split the core axis a into (need, s // need)
                head, tail = fresh, fresh + 1
                fresh += 2
                size[head], size[tail] = need, s // need
                at = core.index(a)
                core[at:at + 1] = [head, tail]
                queue[0] = tail
                group.append(head)
                need = 1
            elif need_batch and need == 1:
                raise t.unsupported(n, f"the reshape of {describe(groups, sizes)} to {shown} puts "
                                       "the batch axis where other values are: it moves values "
                                       "between samples of the batch")
            else:
                raise t.unsupported(n, f"the reshape of {describe(groups, sizes)} to {shown} "
                                       "regroups axes in a way that cannot be followed with the "
                                       "batch axis moved")
        new_groups.append(group)
    if any(size[a] != 1 for a in queue):
        raise t.unsupported(n, f"cannot reshape {describe(groups, sizes)} to {shown}")
    if queue:  # size-1 core axes left over join the last dimension
        new_groups[-1] = new_groups[-1] + queue
    if len(core) != len(sizes):  # a per-sample Reshape, which drops the core axes of size 1
        core = [a for a in core if a == 0 or size[a] != 1]
        new_groups = [[a for a in g if a in core] for g in new_groups]
        value = t.add(lrp.Reshape([size[a] for a in core[1:]], input_shape=sizes[1:]), [value],
                      n, suffix="split")
    index = {a: i for i, a in enumerate(core)}
    new_groups = [tuple(index[a] for a in g) for g in new_groups]
    return [_result(t, n, value, new_groups, origin=n)]


def _gather(t, n):
    value, groups = _groups(t, n, 0)
    sizes = _sizes(t, n, value, "Gather")
    indices = t.const(n, 1, "indices (only constant indices are supported)")
    axis = axis_in(t, n, n.attr("axis", 0), len(groups))
    g = groups[axis]
    if 0 in g:
        raise t.unsupported(n, "it gathers along the batch axis")
    if len(g) != 1:
        raise t.unsupported(n, f"it gathers along axis {axis} of {describe(groups, sizes)}, which "
                               "merges several axes of a tensor whose batch axis the graph moved")
    (a,) = g
    length = sizes[a]
    picked = ints(indices)
    if indices.ndim > 1 or not picked or any(not -length <= i < length for i in picked):
        raise t.unsupported(n, f"indices {picked} (a scalar or a vector within the axis of length "
                               f"{length} is supported)")
    picked = [i % length for i in picked]
    step = picked[1] - picked[0] if len(picked) > 1 else 1
    if step < 1 or picked != list(range(picked[0], picked[-1] + 1, step)):
        raise t.unsupported(n, f"indices {picked} are not evenly spaced, on a tensor whose batch "
                               "axis the graph moved")
    value = t.add(lrp.Slice(a, picked[0], picked[-1] + 1, step), [value], n)
    if indices.ndim == 0:  # the axis is dropped: its core axis (now of size 1) joins another
        groups = _drop_groups(groups, {axis})
    return [_result(t, n, value, groups)]


def _one_axis(t, n, groups, sizes, axis, what):
    """The core axis of the ONNX axis ``axis``, which must be one core axis, not the batch."""
    g = groups[axis]
    if 0 in g:
        raise t.unsupported(n, f"it {what} the batch axis")
    if len(g) != 1:
        raise t.unsupported(n, f"it {what} axis {axis} of {describe(groups, sizes)}, which merges "
                               "several axes of a tensor whose batch axis the graph moved")
    return g[0]


def _slice(t, n):
    from .ops_routing import _HUGE, _takes_whole_batch, slice_arguments

    value, groups = _groups(t, n, 0)
    sizes = _sizes(t, n, value, "Slice")
    starts, ends, axes, steps = slice_arguments(t, n)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = axis_in(t, n, axis, len(groups))
        if step < 1:
            raise t.unsupported(n, f"step {step}: only positive steps are supported")
        if groups[axis] == (0,) and _takes_whole_batch(start, end, step):
            continue
        a = _one_axis(t, n, groups, sizes, axis, "slices")
        value = t.add(lrp.Slice(a, start, None if end >= _HUGE else end, step), [value], n,
                      suffix=f"axis{axis}")
    return [_result(t, n, value, groups)]


def _split(t, n):
    from .ops_routing import _split_sizes

    value, groups = _groups(t, n, 0)
    sizes = _sizes(t, n, value, "Split")
    axis = axis_in(t, n, n.attr("axis", 0), len(groups))
    a = _one_axis(t, n, groups, sizes, axis, "splits")
    outputs, start = [], 0
    for k, size in enumerate(_split_sizes(t, n, sizes[a])):
        part = t.add(lrp.Slice(a, start, start + size), [value], n, suffix=f"part{k}")
        outputs.append(_result(t, n, part, groups))
        start += size
    return outputs


# -- operators that run on the core tensor -------------------------------------------------------
def _arithmetic(t, n):
    from .ops_elementwise import ELEMENTWISE

    names = [n.input(0), n.input(1)]
    constant = [t.is_const(name) for name in names]
    if not any(constant):
        (a, ga), (b, gb) = _groups(t, n, 0), _groups(t, n, 1)
        if ga != gb or t.shapes[a] != t.shapes[b]:
            return None  # different layouts: both materialised
        out = _in_core(t, n, ELEMENTWISE[n.op_type], values={0: a, 1: b})
        return [_result(t, n, out[0], ga)]
    i = constant.index(False)
    value, groups = _groups(t, n, i)
    sizes = _sizes(t, n, value, n.op_type)
    c = _constant_in_core(t, n, t.const(n, 1 - i, "the constant operand"), groups, sizes)
    out = _in_core(t, n, ELEMENTWISE[n.op_type], values={i: value}, consts={1 - i: c})
    return [_result(t, n, out[0], groups)]


def _unary(t, n):
    from .ops_elementwise import ELEMENTWISE

    value, groups = _groups(t, n, 0)
    out = _in_core(t, n, ELEMENTWISE[n.op_type], values={0: value})
    return [_result(t, n, out[0], groups)] + list(out[1:])


def _on_last_axis(t, n) -> bool:
    op = n.op_type
    if op == "MatMul":
        return t.is_const(n.input(1)) and np.ndim(t.consts[n.input(1)]) == 2
    if op == "Gemm":
        return t.is_const(n.input(1)) and not n.attr("transA", 0)
    # Softmax (opset >= 13) and LayerNormalization over the last axis, written -1 (the core
    # tensor may have more axes than the ONNX one)
    if op == "Softmax":
        return t.opset >= 13 and int(n.attr("axis", -1)) == -1
    return int(n.attr("axis", -1)) == -1


def _signature(groups, sizes):
    return tuple(tuple("N" if a == 0 else sizes[a] for a in g) for g in groups)


def _batched_matmul(t, n):
    """``MatMul`` of two activations whose leading (batch-like) axes are laid out alike (the
    batch merged with the heads, ``(N·H, L, d) x (N·H, d, S)``): a ``MatMul`` of the core
    tensors with their last two ONNX axes last; ``None`` (both materialised) otherwise."""
    (a, ga), (b, gb) = _groups(t, n, 0), _groups(t, n, 1)
    if len(ga) != len(gb) or len(ga) < 2:
        return None
    sa = _sizes(t, n, a, "MatMul")
    sb = _sizes(t, n, b, "MatMul")
    if _signature(ga[:-2], sa) != _signature(gb[:-2], sb):
        return None
    a, groups = _trailing(t, n, n.input(0), a, ga, 2)
    b, _ = _trailing(t, n, n.input(1), b, gb, 2)
    shape_a, shape_b = t.shapes[a], t.shapes[b]
    if shape_a[-1] != shape_b[-2]:
        raise t.unsupported(n, f"a product of {describe(ga, sa)} and {describe(gb, sb)}: the "
                               "inner dimensions differ")
    return [_result(t, n, t.add(lrp.MatMul(), [a, b], n), groups)]


def _last_axis(t, n):
    from .ops_elementwise import ELEMENTWISE
    from .ops_linear import LINEAR, gemm_dense
    from .ops_normalization import NORMALIZATION

    name = n.input(0)
    value, groups = _groups(t, n, 0)
    value, groups = _trailing(t, n, name, value, groups)
    if n.op_type == "Gemm":
        out = [t.add(gemm_dense(t, n), [value], n)]
    else:
        table = {**LINEAR, **ELEMENTWISE, **NORMALIZATION}[n.op_type]
        out = _in_core(t, n, table, values={0: value})
    return [_result(t, n, out[0], groups)] + list(out[1:])
