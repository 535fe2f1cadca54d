"""Shape arithmetic shared by the kernels and the layers: pure Python, no arrays.

Conventions (per spatial axis): an input of length ``L`` is padded with ``lo`` cells below and
``hi`` above; window ``p`` (the ``p``-th output) reads the padded positions
``stride·p + dilation·t`` for the taps ``t = 0 … kernel−1``. Taps are numbered row-major over
the ``d`` axes (the last axis fastest).
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Iterator, Sequence

import numpy as np

__all__ = [
    "normalize_tuple",
    "normalize_padding",
    "normalize_window",
    "conv_output_size",
    "pool_output_size",
    "output_spatial_shape",
    "window_extent",
    "tap_mask",
    "divisor_grid",
    "real_taps",
    "window_counts",
    "taps",
    "conv_spatial_dims",
    "pool_spatial_dims",
    "check_shape",
]


def _as_int(value, name: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an int, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an int, got {value!r}") from None


def normalize_tuple(value, d: int, name: str) -> tuple[int, ...]:
    """``value`` (an int, or a sequence of ``d`` ints) as a tuple of ``d`` non-negative ints.

    Used for kernel sizes, strides, dilations and output paddings; ``name`` goes into the error.
    """
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != d:
            raise ValueError(f"{name} needs {d} values (one per spatial axis), "
                             f"got {tuple(value)!r}")
        result = tuple(_as_int(v, name) for v in value)
    else:
        result = (_as_int(value, name),) * d
    if any(v < 0 for v in result):
        raise ValueError(f"{name} must be non-negative, got {result!r}")
    return result


def normalize_padding(padding, d: int) -> tuple[tuple[int, int], ...]:
    """``padding`` as ``d`` ``(low, high)`` pairs.

    Accepts an int (the same on both sides of every axis), a sequence of ``d`` entries each an
    int (symmetric on that axis) or a ``(low, high)`` pair. Values must be non-negative.
    """
    if not (isinstance(padding, Sequence) and not isinstance(padding, str)):
        padding = (padding,) * d
    if len(padding) != d:
        raise ValueError(f"padding needs {d} entries (one per spatial axis, each an int or a "
                         f"(low, high) pair), got {tuple(padding)!r}")
    pairs = []
    for entry in padding:
        if isinstance(entry, Sequence) and not isinstance(entry, str):
            if len(entry) != 2:
                raise ValueError(f"a padding pair is (low, high), got {tuple(entry)!r}")
            pairs.append((_as_int(entry[0], "padding"), _as_int(entry[1], "padding")))
        else:
            p = _as_int(entry, "padding")
            pairs.append((p, p))
    if any(v < 0 for pair in pairs for v in pair):
        raise ValueError(f"padding must be non-negative, got {tuple(pairs)!r}")
    return tuple(pairs)


def normalize_window(d: int, kernel, stride, padding, dilation):
    """``(kernel, stride, padding, dilation)`` normalised for ``d`` spatial axes.

    Each of ``kernel``, ``stride``, ``dilation``: an int or ``d`` ints; ``padding``: anything
    :func:`normalize_padding` accepts.
    """
    return (normalize_tuple(kernel, d, "kernel"), normalize_tuple(stride, d, "stride"),
            normalize_padding(padding, d), normalize_tuple(dilation, d, "dilation"))


def _check_window(kernel: int, stride: int, dilation: int) -> None:
    for name, value in (("kernel", kernel), ("stride", stride), ("dilation", dilation)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")


def conv_output_size(length: int, kernel: int, stride: int, padding_lo: int, padding_hi: int,
                     dilation: int) -> int:
    """Number of windows on one axis: ``⌊(L + lo + hi − dilation·(kernel−1) − 1) / stride⌋ + 1``.

    Raises ``ValueError`` when the dilated kernel does not fit the padded input.
    """
    _check_window(kernel, stride, dilation)
    span = length + padding_lo + padding_hi - dilation * (kernel - 1) - 1
    if span < 0:
        raise ValueError(f"a kernel of {kernel} (dilation {dilation}, extent "
                         f"{dilation * (kernel - 1) + 1}) does not fit an axis of length {length} "
                         f"padded by ({padding_lo}, {padding_hi})")
    return span // stride + 1


def pool_output_size(length: int, kernel: int, stride: int, padding_lo: int, padding_hi: int,
                     dilation: int, ceil_mode: bool) -> int:
    """Number of pooling windows on one axis, PyTorch's rule.

    Without ``ceil_mode`` it is :func:`conv_output_size`. With it, the division rounds up, and a
    last window that would start beyond ``L + lo`` (entirely in the high padding or past it) is
    dropped: if ``(out − 1)·stride ≥ L + lo`` then ``out − 1``.
    """
    out = conv_output_size(length, kernel, stride, padding_lo, padding_hi, dilation)
    if ceil_mode:
        span = length + padding_lo + padding_hi - dilation * (kernel - 1) - 1
        out = -(-span // stride) + 1
        if (out - 1) * stride >= length + padding_lo:
            out -= 1
    return out


def output_spatial_shape(spatial: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                         padding: Sequence[tuple[int, int]], dilation: Sequence[int],
                         ceil_mode: bool = False) -> tuple[int, ...]:
    """:func:`pool_output_size` on every axis (with ``ceil_mode=False``: convolution's rule)."""
    if not len(spatial) == len(kernel) == len(stride) == len(padding) == len(dilation):
        raise ValueError(f"spatial shape {tuple(spatial)}, kernel {tuple(kernel)}, stride "
                         f"{tuple(stride)}, padding {tuple(padding)} and dilation "
                         f"{tuple(dilation)} must have one entry per spatial axis")
    return tuple(pool_output_size(n, k, s, lo, hi, dl, ceil_mode)
                 for n, k, s, (lo, hi), dl in zip(spatial, kernel, stride, padding, dilation))


def window_extent(out: int, kernel: int, stride: int, dilation: int) -> int:
    """The padded length ``out`` windows span: ``stride·(out−1) + dilation·(kernel−1) + 1``.

    With ``ceil_mode`` it can exceed ``L + lo + hi``; the cells beyond are padding too.
    """
    return stride * (out - 1) + dilation * (kernel - 1) + 1


def tap_mask(out: int, kernel: int, stride: int, dilation: int, start: int,
             stop: int) -> list[list[bool]]:
    """``mask[t][p]``: whether tap ``t`` of window ``p`` reads a position in ``[start, stop)``.

    Positions count on the padded axis (the first input cell is at ``lo``).

    With ``start = lo, stop = lo + L`` it marks the taps that read real (unpadded) input.
    """
    return [[start <= stride * p + dilation * t < stop for p in range(out)] for t in range(kernel)]


def window_counts(length: int, kernel: int, stride: int, padding_lo: int, padding_hi: int,
                  out: int, count_include_pad: bool) -> list[int]:
    """Per window on one axis, the number of cells average pooling divides by (PyTorch's rule).

    ``count_include_pad=True``: the cells inside the padded axis ``[−lo, L + hi)`` (cells that
    ``ceil_mode`` adds beyond the padding are not counted); ``False``: those inside ``[0, L)``.
    A window with no such cell (possible only when a padding exceeds the kernel) counts 1, so
    its average is 0 instead of 0/0.
    """
    stop = padding_lo + length + (padding_hi if count_include_pad else 0)
    start = 0 if count_include_pad else padding_lo
    mask = tap_mask(out, kernel, stride, 1, start, stop)
    return [max(sum(column), 1) for column in zip(*mask)]


def divisor_grid(spatial, kernel, stride, padding, out, count_include_pad: bool) -> np.ndarray:
    """Average pooling's divisor ``D[p]``, float64 of shape ``out``: the product over axes of
    :func:`window_counts`. One NumPy array on the host; each backend copies it to its own."""
    grid = np.ones(tuple(out))
    for axis, (n, k, s, (lo, hi), o) in enumerate(zip(spatial, kernel, stride, padding, out)):
        shape = [1] * len(out)
        shape[axis] = o
        counts = window_counts(n, k, s, lo, hi, o, count_include_pad)
        grid = grid * np.asarray(counts, dtype=np.float64).reshape(shape)
    return grid


def real_taps(spatial, kernel, stride, padding, dilation, out) -> np.ndarray:
    """Boolean ``(T, 1, 1, *out)`` on the host: whether tap ``t`` (row-major) of window ``p``
    reads a real (unpadded) input cell (:func:`tap_mask` on each axis, combined)."""
    d = len(kernel)
    mask = np.ones((1,) * (2 * d), dtype=bool)
    for axis, (n, k, s, (lo, _), dl, o) in enumerate(
            zip(spatial, kernel, stride, padding, dilation, out)):
        shape = [1] * (2 * d)
        shape[axis], shape[d + axis] = k, o
        mask = mask & np.asarray(tap_mask(o, k, s, dl, lo, lo + n), dtype=bool).reshape(shape)
    return mask.reshape(math.prod(kernel), 1, 1, *out)


def taps(kernel: Sequence[int]) -> Iterator[tuple[int, ...]]:
    """The taps of a kernel as index tuples, in row-major order (tap number ``0, 1, …``)."""
    return itertools.product(*(range(k) for k in kernel))


def conv_spatial_dims(x_shape: Sequence[int], w_shape: Sequence[int], groups: int) -> int:
    """Check a convolution's input ``(N, C, *L)`` against its weight ``(O, C/groups, *k)``.

    Returns the number ``d`` of spatial axes (1, 2 or 3); raises ``ValueError`` on a mismatch.
    """
    d = len(w_shape) - 2
    if d not in (1, 2, 3):
        raise ValueError(f"a convolution weight is (out, in/groups, *kernel) with 1-3 kernel "
                         f"axes, got shape {tuple(w_shape)}")
    if len(x_shape) != d + 2:
        raise ValueError(f"a weight of shape {tuple(w_shape)} needs an input (batch, channels, "
                         f"{d} spatial axes), got shape {tuple(x_shape)}")
    if groups < 1 or w_shape[0] % groups:
        raise ValueError(f"groups={groups} must be positive and divide the {w_shape[0]} output "
                         f"channels")
    if x_shape[1] != w_shape[1] * groups:
        raise ValueError(f"input has {x_shape[1]} channels; a weight of shape {tuple(w_shape)} "
                         f"with groups={groups} needs {w_shape[1] * groups}")
    return d



def pool_spatial_dims(shape: Sequence[int]) -> int:
    """The number ``d`` of spatial axes of a pooling input ``(N, C, *L)``; 1, 2 or 3."""
    d = len(shape) - 2
    if d not in (1, 2, 3):
        raise ValueError(f"pooling expects (batch, channels, 1-3 spatial axes), got shape "
                         f"{tuple(shape)}")
    return d


def check_shape(shape: Sequence[int], expected: Sequence[int], what: str) -> None:
    """Raise ``ValueError`` naming ``what`` unless ``shape == expected``."""
    if tuple(shape) != tuple(expected):
        raise ValueError(f"{what}: expected shape {tuple(expected)}, got {tuple(shape)}")
