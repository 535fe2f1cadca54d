"""Translations of pooling calls: ``F.max_pool*``, ``F.avg_pool*``, ``F.adaptive_*_pool*`` and
the mean over spatial axes.

A pooling over ``d`` spatial axes reads a ``(batch, channels, *spatial)`` tensor of rank
``d + 2``; where the reader knows another rank it refuses (:func:`spatial_input`). An adaptive
pooling to size 1 is a global pooling. ``x.mean(dims)`` is a global average pooling exactly when
``dims`` are all spatial axes of ``x``, which needs the rank of ``x``: where it is unknown the
mean is refused, never guessed.
"""

from __future__ import annotations

import lrp_core as lrp

from .values import Op, Tensor, as_tensor, fail, ints, known_rank

__all__ = ["spatial_input", "no_indices", "adaptive_avg_pool_layer", "adaptive_max_pool_layer",
           "max_pool_fn", "avg_pool_fn", "adaptive_avg_pool_fn", "adaptive_max_pool_fn", "mean"]


def spatial_input(x: Tensor, d: int, what: str) -> int:
    """The output rank ``d + 2`` of a layer over ``d`` spatial axes; refuses an input whose
    known rank is not ``d + 2`` (torch's unbatched form)."""
    if x.rank is not None and x.rank != d + 2:
        fail(f"{what} reads a (batch, channels, {d} spatial axes) tensor of rank {d + 2}; "
             f"its input has rank {x.rank}")
    return d + 2


def no_indices(return_indices) -> None:
    """Refuse ``return_indices=True``."""
    if return_indices:
        fail("return_indices=True is not supported")


def _all_ones(size) -> bool:
    return all(s == 1 for s in size) if isinstance(size, (tuple, list)) else size == 1


def adaptive_avg_pool_layer(output_size):
    """``AdaptiveAvgPool``, or ``GlobalAvgPool`` when every output size is 1."""
    if _all_ones(output_size):
        return lrp.GlobalAvgPool(keepdims=True)
    return lrp.AdaptiveAvgPool(output_size)


def adaptive_max_pool_layer(output_size):
    """``AdaptiveMaxPool``, or ``GlobalMaxPool`` when every output size is 1."""
    if _all_ones(output_size):
        return lrp.GlobalMaxPool(keepdims=True)
    return lrp.AdaptiveMaxPool(output_size)


def _default_stride(stride, kernel_size):
    """The functional pools' stride: the kernel size when not given (``None`` or empty)."""
    return kernel_size if stride is None or stride == [] or stride == () else stride


def max_pool_fn(d: int):
    """The translation of ``F.max_pool{d}d``."""
    def max_pool(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                 return_indices=False) -> Op:
        no_indices(return_indices)
        x = as_tensor(input)
        stride = _default_stride(stride, kernel_size)
        layer = lrp.MaxPool(ints(kernel_size, "kernel_size"), ints(stride, "stride"),
                            ints(padding, "padding"), ints(dilation, "dilation"), bool(ceil_mode))
        return Op(layer, (x,), spatial_input(x, d, f"max_pool{d}d"))
    return max_pool


def avg_pool_fn(d: int):
    """The translation of ``F.avg_pool{d}d``."""
    def avg_pool(input, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None) -> Op:
        if divisor_override is not None:
            fail("divisor_override is not supported")
        x = as_tensor(input)
        stride = _default_stride(stride, kernel_size)
        layer = lrp.AvgPool(ints(kernel_size, "kernel_size"), ints(stride, "stride"),
                            ints(padding, "padding"), bool(ceil_mode), bool(count_include_pad))
        return Op(layer, (x,), spatial_input(x, d, f"avg_pool{d}d"))
    return avg_pool


def adaptive_avg_pool_fn(d: int):
    """The translation of ``F.adaptive_avg_pool{d}d``."""
    def adaptive_avg_pool(input, output_size) -> Op:
        x = as_tensor(input)
        rank = spatial_input(x, d, f"adaptive_avg_pool{d}d")
        return Op(adaptive_avg_pool_layer(output_size), (x,), rank)
    return adaptive_avg_pool


def adaptive_max_pool_fn(d: int):
    """The translation of ``F.adaptive_max_pool{d}d``."""
    def adaptive_max_pool(input, output_size, return_indices=False) -> Op:
        no_indices(return_indices)
        x = as_tensor(input)
        rank = spatial_input(x, d, f"adaptive_max_pool{d}d")
        return Op(adaptive_max_pool_layer(output_size), (x,), rank)
    return adaptive_max_pool


def mean(x, dim=None, keepdim=False, *, dtype=None, out=None) -> Op:
    """``x.mean(dims)`` / ``torch.mean(x, dims)`` over all spatial axes of ``x``: a global
    average pooling. Which axes are spatial depends on the rank of ``x``, so it must be known."""
    x = as_tensor(x)
    if dim is None:
        fail("a mean over all axes, the batch axis included, is not supported")
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    if not all(isinstance(d, int) for d in dims):
        fail(f"mean over dims {dim!r}: the dims must be constant ints")
    if any(0 <= d < 2 for d in dims):  # the batch or channel axis, whatever the rank
        fail(f"mean over dims {dim!r} is supported only over all spatial axes "
             "(2, ..., rank-1), as a global average pooling")
    rank = known_rank(x, f"mean over dims {dim!r} (a global average pooling only if these are "
                         "all of the input's spatial axes)")
    if not all(-rank <= d < rank for d in dims):
        fail(f"mean over dims {dim!r}: out of range for a rank-{rank} tensor")
    spatial = tuple(range(2, rank))
    if not spatial or tuple(sorted(d % rank for d in dims)) != spatial:
        fail(f"mean over dims {dim!r} of a rank-{rank} tensor is supported only over all its "
             f"spatial axes {spatial}, as a global average pooling")
    return Op(lrp.GlobalAvgPool(keepdims=bool(keepdim)), (x,), rank if keepdim else 2)
