"""Strided kernels for NumPy-like modules (NumPy, CuPy): sliding-window views and one batched
matmul (BLAS, cuBLAS) per convolution.

Every function takes the module ``xp`` (``numpy`` or ``cupy``) first; :mod:`.numpy_backend` and
:mod:`.cupy_backend` bind it. Same functions, signatures and semantics as
:mod:`lrp_core.kernels.reference`, which is the oracle these are tested against; the shape rules
come from :mod:`lrp_core.kernels.shapes` (host NumPy arrays, moved to ``xp`` where used).
Forward kernels view the padded input as windows ``(N, C, *out, *k)`` without copying
(``sliding_window_view``). The convolution copies them once into columns (im2col) and multiplies
by the weight in one ``matmul`` whose batch axis is the group; its transpose multiplies back to
columns and adds them tap by tap into a padded buffer (col2im). Pooling works on the windows tap
by tap. Python loops run over kernel taps only, never over positions, samples or groups.
"""

from __future__ import annotations

import math

import numpy as np

from lrp_core.kernels.shapes import (
    check_shape,
    conv_spatial_dims,
    divisor_grid,
    normalize_window,
    output_spatial_shape,
    pool_spatial_dims,
    real_taps,
    taps,
    window_extent,
)

__all__ = ["conv", "conv_transpose", "max_pool", "max_pool_transpose", "avg_pool",
           "avg_pool_transpose", "sliding_window_view", "KERNELS"]

#: The kernel functions a backend binds to its module.
KERNELS = ("conv", "conv_transpose", "max_pool", "max_pool_transpose", "avg_pool",
           "avg_pool_transpose")


def sliding_window_view(xp, x, window_shape, axis):
    """``xp``'s ``lib.stride_tricks.sliding_window_view``, or the same view built with
    ``as_strided`` where the module has none: ``v[..., i, ..., t] = x[..., i + t, ...]`` over
    ``axis``, the window axes appended last (NumPy's semantics, read-only use only)."""
    native = getattr(getattr(getattr(xp, "lib", None), "stride_tricks", None),
                     "sliding_window_view", None)
    if native is not None:
        return native(x, window_shape, axis=axis)
    return strided_window_view(xp, x, window_shape, axis)


def strided_window_view(xp, x, window_shape, axis):
    """The window view through ``as_strided`` (the fallback of :func:`sliding_window_view`)."""
    window_shape, axis = tuple(window_shape), tuple(axis)
    shape = list(x.shape)
    for a, w in zip(axis, window_shape):
        if shape[a] < w:
            raise ValueError(f"window {w} larger than axis {a} of length {shape[a]}")
        shape[a] = shape[a] - w + 1
    strides = tuple(x.strides) + tuple(x.strides[a] for a in axis)
    return xp.lib.stride_tricks.as_strided(x, shape=tuple(shape) + window_shape, strides=strides)


def _padded(xp, x, kernel, stride, padding, dilation, out, fill):
    """``x`` padded with ``fill`` to the positions ``[−lo, −lo + extent)`` its windows read."""
    extents = [window_extent(o, k, s, dl) for o, k, s, dl in zip(out, kernel, stride, dilation)]
    widths = [(lo, max(e - n - lo, 0)) for (lo, _), e, n in zip(padding, extents, x.shape[2:])]
    if any(lo or hi for lo, hi in widths):
        x = xp.pad(x, [(0, 0), (0, 0), *widths], constant_values=fill)
    return x[(slice(None), slice(None), *(slice(0, e) for e in extents))]


def _windows(xp, x, kernel, stride, padding, dilation, out, fill):
    """The view ``v[n, c, *p, *t] = x̃[n, c, s·p + δ·t]`` of the ``fill``-padded input."""
    d = len(kernel)
    spans = tuple(dl * (k - 1) + 1 for k, dl in zip(kernel, dilation))
    view = sliding_window_view(xp, _padded(xp, x, kernel, stride, padding, dilation, out, fill),
                               spans, axis=tuple(range(2, 2 + d)))
    return view[(slice(None), slice(None),
                 *(slice(0, s * (o - 1) + 1, s) for s, o in zip(stride, out)),
                 *(slice(None, None, dl) for dl in dilation))]


def _add_taps(xp, contributions, shape, kernel, stride, padding, dilation, out, dtype):
    """col2im: ``x[n, c, i] = Σ_t contribution_t[n, c, p]`` over ``s·p + δ·t = i + lo``.

    ``contributions`` yields one ``(N, C, *out)`` array per tap, row-major.
    """
    spatial = shape[2:]
    extents = [max(lo + n, window_extent(o, k, s, dl))
               for (lo, _), n, o, k, s, dl in zip(padding, spatial, out, kernel, stride, dilation)]
    buffer = xp.zeros((*shape[:2], *extents), dtype=dtype)
    for tap, part in zip(taps(kernel), contributions):
        buffer[(slice(None), slice(None),
                *(slice(dl * t, dl * t + s * (o - 1) + 1, s)
                  for t, s, dl, o in zip(tap, stride, dilation, out)))] += part
    crop = (slice(None), slice(None), *(slice(lo, lo + n) for (lo, _), n in zip(padding, spatial)))
    return xp.ascontiguousarray(buffer[crop])


def conv(xp, x, w, *, stride, padding, dilation, groups, bias=None):
    """Cross-correlation, ``y[n, o, p] = Σ_{c, t} w[o, c, t] · x̃[n, g(o)·C/groups + c, s·p + δ·t]``
    (see :func:`lrp_core.kernels.reference.conv`): im2col and one batched matmul; ``bias`` (per
    output channel) is added in place to the matmul's result."""
    d = conv_spatial_dims(x.shape, w.shape, groups)
    kernel, stride, padding, dilation = normalize_window(d, w.shape[2:], stride, padding, dilation)
    out = output_spatial_shape(x.shape[2:], kernel, stride, padding, dilation)
    n, c, o = x.shape[0], x.shape[1], w.shape[0]
    windows = _windows(xp, x, kernel, stride, padding, dilation, out, 0)
    windows = windows.reshape(n, groups, c // groups, *out, *kernel)
    # columns (groups, C/groups · T, N · P): rows are (channel, tap), columns (sample, position)
    columns = windows.transpose(1, 2, *range(3 + d, 3 + 2 * d), 0, *range(3, 3 + d))
    columns = columns.reshape(groups, (c // groups) * math.prod(kernel), n * math.prod(out))
    y = xp.matmul(w.reshape(groups, o // groups, -1), columns).reshape(o, n, *out)
    if bias is not None:
        y += bias.reshape((o,) + (1,) * (1 + d))
    return xp.ascontiguousarray(xp.moveaxis(y, 1, 0))


def conv_transpose(xp, y, w, *, stride, padding, dilation, groups, input_shape):
    """The adjoint of :func:`conv` in ``x`` (see :func:`lrp_core.kernels.reference.conv_transpose`):
    one batched matmul to columns, then col2im."""
    input_shape = tuple(input_shape)
    d = conv_spatial_dims(input_shape, w.shape, groups)
    kernel, stride, padding, dilation = normalize_window(d, w.shape[2:], stride, padding, dilation)
    out = output_spatial_shape(input_shape[2:], kernel, stride, padding, dilation)
    n, c, o = input_shape[0], input_shape[1], w.shape[0]
    check_shape(y.shape, (n, o, *out), "conv_transpose: y (the conv output)")
    rows = y.reshape(n, groups, o // groups, -1).transpose(1, 2, 0, 3)
    rows = rows.reshape(groups, o // groups, -1)
    columns = xp.matmul(w.reshape(groups, o // groups, -1).transpose(0, 2, 1), rows)
    columns = columns.reshape(groups, c // groups, math.prod(kernel), n, *out)
    contributions = (xp.moveaxis(columns[:, :, t], 2, 0).reshape(n, c, *out)
                     for t in range(math.prod(kernel)))
    return _add_taps(xp, contributions, input_shape, kernel, stride, padding, dilation, out,
                     columns.dtype)


def _lowest(xp, dtype):
    """The fill that never beats a real element: −inf, or the smallest integer."""
    return -np.inf if np.issubdtype(dtype, np.floating) else np.iinfo(dtype).min


def _first_true(xp, hit):
    """``argmax(hit, axis=0)`` (the first ``t`` with ``hit[t]``, 0 if none), computed as a
    maximum over the leading axis of the ranks ``T − t``: elementwise, hence far faster."""
    count = hit.shape[0]
    rank = xp.arange(count, 0, -1, dtype=np.min_scalar_type(count))
    best = (hit * rank.reshape(count, *(1,) * (hit.ndim - 1))).max(axis=0)
    return ((count - best) % count).astype(np.intp)


def max_pool(xp, x, *, kernel, stride, padding, dilation, ceil_mode):
    """Max pooling and the row-major tap index of each window's first maximum (a NaN counts as
    the maximum; padding never wins while the window holds a real cell). See
    :func:`lrp_core.kernels.reference.max_pool`."""
    d = pool_spatial_dims(x.shape)
    kernel, stride, padding, dilation = normalize_window(d, kernel, stride, padding, dilation)
    spatial = x.shape[2:]
    out = output_spatial_shape(spatial, kernel, stride, padding, dilation, ceil_mode)
    windows = _windows(xp, x, kernel, stride, padding, dilation, out, _lowest(xp, x.dtype))
    # one copy, taps first: the reductions below then run over contiguous (N, C, *out) slabs
    stacked = xp.stack([windows[(..., *tap)] for tap in taps(kernel)])
    y = stacked.max(axis=0)
    hit = (stacked == y) | (stacked != stacked)
    hit &= xp.asarray(real_taps(spatial, kernel, stride, padding, dilation, out))
    return y, _first_true(xp, hit)


def max_pool_transpose(xp, g, index, *, kernel, stride, padding, dilation, input_shape):
    """Routes ``g[n, c, p]`` to the input cell its selected tap ``index[n, c, p]`` reads (overlaps
    add up). See :func:`lrp_core.kernels.reference.max_pool_transpose`."""
    input_shape = tuple(input_shape)
    d = pool_spatial_dims(input_shape)
    kernel, stride, padding, dilation = normalize_window(d, kernel, stride, padding, dilation)
    if index.shape != g.shape or g.shape[:2] != input_shape[:2]:
        raise ValueError(f"max_pool_transpose: g {g.shape} and index {index.shape} must share a "
                         f"shape, with input {input_shape}'s batch and channels")
    contributions = (xp.where(index == t, g, 0) for t in range(math.prod(kernel)))
    return _add_taps(xp, contributions, input_shape, kernel, stride, padding, dilation, g.shape[2:],
                     g.dtype)


def avg_pool(xp, x, *, kernel, stride, padding, ceil_mode, count_include_pad):
    """Average pooling, PyTorch semantics; see :func:`lrp_core.kernels.reference.avg_pool`."""
    d = pool_spatial_dims(x.shape)
    kernel, stride, padding, ones = normalize_window(d, kernel, stride, padding, 1)
    spatial = x.shape[2:]
    out = output_spatial_shape(spatial, kernel, stride, padding, ones, ceil_mode)
    windows = _windows(xp, x, kernel, stride, padding, ones, out, 0)
    total = xp.zeros(windows.shape[:2 + d], dtype=x.dtype)
    for tap in taps(kernel):
        total += windows[(..., *tap)]
    return total / xp.asarray(divisor_grid(spatial, kernel, stride, padding, out,
                                           count_include_pad).astype(x.dtype))


def avg_pool_transpose(xp, g, *, kernel, stride, padding, ceil_mode, count_include_pad,
                       input_shape):
    """The adjoint of :func:`avg_pool`: each input cell sums ``g / D`` over the windows that
    read it."""
    input_shape = tuple(input_shape)
    d = pool_spatial_dims(input_shape)
    kernel, stride, padding, ones = normalize_window(d, kernel, stride, padding, 1)
    spatial = input_shape[2:]
    out = output_spatial_shape(spatial, kernel, stride, padding, ones, ceil_mode)
    check_shape(g.shape, (*input_shape[:2], *out), "avg_pool_transpose: g (the pooled output)")
    share = g / xp.asarray(divisor_grid(spatial, kernel, stride, padding, out,
                                        count_include_pad).astype(g.dtype))
    return _add_taps(xp, [share] * math.prod(kernel), input_shape, kernel, stride,
                     padding, ones, out, share.dtype)
