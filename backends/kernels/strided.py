"""Strided kernels for NumPy-like modules (NumPy, CuPy): sliding-window views and one batched
matmul (BLAS, cuBLAS) per convolution.

Every function takes the module ``xp`` (``numpy`` or ``cupy``) first; :mod:`.numpy_backend` and
:mod:`.cupy_backend` bind it. Same functions, signatures and semantics as
:mod:`lrp_core.kernels.reference`, which is the oracle these are tested against; the shape rules
come from :mod:`lrp_core.kernels.shapes` (host NumPy arrays, moved to ``xp`` where used).
Forward kernels view the padded input as windows ``(N, C, *out, *k)`` without copying
(``sliding_window_view``). The convolution copies them once into columns (im2col) and multiplies
by the weight in one ``matmul`` whose batch axis is the group; its transpose multiplies back to
columns and adds them tap by tap into a padded buffer (col2im). A 1x1 convolution without
padding skips the columns (one matmul over the samples and groups). A depthwise convolution (one
input channel per group, EfficientNet's and MobileNet's) builds its columns per plane, or sums
the taps channels-last where rows are short; its transpose is the convolution with the flipped
kernel at stride 1 and a per-tap scatter-add otherwise; these stream over cache-sized blocks of
planes or samples (``block_bytes``; the NumPy backend sets it, CuPy runs one block). Pooling
works on the windows tap by tap. Python loops run over kernel taps and blocks only, never over
positions or groups.
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


def conv(xp, x, w, *, stride, padding, dilation, groups, bias=None, block_bytes=None):
    """Cross-correlation, ``y[n, o, p] = Σ_{c, t} w[o, c, t] · x̃[n, g(o)·C/groups + c, s·p + δ·t]``
    (see :func:`lrp_core.kernels.reference.conv`): im2col and one batched matmul; for a
    depthwise convolution (one input channel per group) :func:`_depthwise_conv`, for a 1x1
    kernel without padding the matmul alone (:func:`_pointwise_cells`). ``bias`` (per output
    channel) is added in place to the result. ``block_bytes`` bounds the depthwise kernels'
    working set (see :func:`_blocks`)."""
    d = conv_spatial_dims(x.shape, w.shape, groups)
    kernel, stride, padding, dilation = normalize_window(d, w.shape[2:], stride, padding, dilation)
    out = output_spatial_shape(x.shape[2:], kernel, stride, padding, dilation)
    n, c, o = x.shape[0], x.shape[1], w.shape[0]
    if c == groups > 1:  # depthwise; one input channel (c = groups = 1) is an ordinary conv
        y = _depthwise_conv(xp, x, w, kernel, stride, padding, dilation, out, block_bytes)
        if bias is not None:
            y += bias.reshape((o,) + (1,) * d)
        return y
    cells = _pointwise_cells(kernel, stride, padding, out)
    if cells is not None:
        rows = x[cells].reshape(n, groups, c // groups, math.prod(out))
        y = xp.matmul(w.reshape(groups, o // groups, c // groups), rows).reshape(n, o, *out)
        if bias is not None:
            y += bias.reshape((o,) + (1,) * d)
        return y
    windows = _windows(xp, x, kernel, stride, padding, dilation, out, 0)
    windows = windows.reshape(n, groups, c // groups, *out, *kernel)
    # columns (groups, C/groups · T, N · P): rows are (channel, tap), columns (sample, position)
    columns = windows.transpose(1, 2, *range(3 + d, 3 + 2 * d), 0, *range(3, 3 + d))
    columns = columns.reshape(groups, (c // groups) * math.prod(kernel), n * math.prod(out))
    y = xp.matmul(w.reshape(groups, o // groups, -1), columns).reshape(o, n, *out)
    if bias is not None:
        y += bias.reshape((o,) + (1,) * (1 + d))
    return xp.ascontiguousarray(xp.moveaxis(y, 1, 0))


def conv_transpose(xp, y, w, *, stride, padding, dilation, groups, input_shape,
                   block_bytes=None):
    """The adjoint of :func:`conv` in ``x`` (see :func:`lrp_core.kernels.reference.conv_transpose`):
    one batched matmul to columns, then col2im; for a depthwise convolution
    :func:`_depthwise_conv_transpose`, for a 1x1 kernel without padding the matmul alone."""
    input_shape = tuple(input_shape)
    d = conv_spatial_dims(input_shape, w.shape, groups)
    kernel, stride, padding, dilation = normalize_window(d, w.shape[2:], stride, padding, dilation)
    out = output_spatial_shape(input_shape[2:], kernel, stride, padding, dilation)
    n, c, o = input_shape[0], input_shape[1], w.shape[0]
    check_shape(y.shape, (n, o, *out), "conv_transpose: y (the conv output)")
    if c == groups > 1:
        return _depthwise_conv_transpose(xp, y, w, input_shape, kernel, stride, padding, dilation,
                                         out, block_bytes)
    cells = _pointwise_cells(kernel, stride, padding, out)
    if cells is not None:
        rows = y.reshape(n, groups, o // groups, math.prod(out))
        part = xp.matmul(w.reshape(groups, o // groups, c // groups).transpose(0, 2, 1), rows)
        part = part.reshape(n, c, *out)
        if part.shape == input_shape:
            return part
        x = xp.zeros(input_shape, dtype=part.dtype)
        x[cells] = part
        return x
    rows = y.reshape(n, groups, o // groups, -1).transpose(1, 2, 0, 3)
    rows = rows.reshape(groups, o // groups, -1)
    columns = xp.matmul(w.reshape(groups, o // groups, -1).transpose(0, 2, 1), rows)
    columns = columns.reshape(groups, c // groups, math.prod(kernel), n, *out)
    contributions = (xp.moveaxis(columns[:, :, t], 2, 0).reshape(n, c, *out)
                     for t in range(math.prod(kernel)))
    return _add_taps(xp, contributions, input_shape, kernel, stride, padding, dilation, out,
                     columns.dtype)


#: Depthwise convolutions (one input channel per group) choose among three formulations:
#: the forward one copies its windows into columns and multiplies them per plane (im2col in
#: cache-sized blocks) unless its last output axis is shorter than ``COLUMNS_FROM_WIDTH``, where
#: it sums the taps channels-last instead (the inner loops then run over the channels, not over
#: short rows); a transpose of stride 1 is the forward convolution of ``y`` with the flipped
#: kernel (``TRANSPOSE_AS_CONV``); other transposes add tap by tap, channels-last when the last
#: output axis is shorter than ``CHANNELS_LAST_BELOW``. The thresholds come from timing
#: EfficientNet-B0's layers on NumPy (docs/performance.md); every path gives the same result.
COLUMNS_FROM_WIDTH = 10
CHANNELS_LAST_BELOW = 48
TRANSPOSE_AS_CONV = True


def _pointwise_cells(kernel, stride, padding, out):
    """For a 1x1 kernel without padding, the input cells ``s·p`` the convolution reads (its
    columns are these cells themselves: no im2col, ``y[n] = W · x[n][cells]`` per group);
    None for any other geometry."""
    if any(k != 1 for k in kernel) or any(lo or hi for lo, hi in padding):
        return None
    return (slice(None), slice(None), *(slice(0, s * (o - 1) + 1, s) for s, o in zip(stride, out)))


def _tap_slices(tap, stride, dilation, out):
    """The cells ``δ·t + s·p`` (``p`` over ``out``) of the padded input that tap ``t`` reads."""
    return tuple(slice(dl * t, dl * t + s * (o - 1) + 1, s)
                 for t, s, dl, o in zip(tap, stride, dilation, out))


def _blocks(count, unit_bytes, block_bytes):
    """Ranges of at most ``block_bytes // unit_bytes`` units (at least one) covering
    ``range(count)``; one range if ``block_bytes`` is None. The depthwise kernels stream over
    planes or samples block by block, so that a block's working set stays in cache across the
    taps instead of travelling to memory and back once per tap."""
    step = count if block_bytes is None else max(1, min(count, block_bytes // max(unit_bytes, 1)))
    return [(start, min(start + step, count)) for start in range(0, count, step)]


def _depthwise_weights(xp, w, c, count, channels_last, n, d):
    """The weights of tap ``t`` as ``weights[t]``: ``(C, M)`` channels-last, else per plane
    ``(N·C, M, 1, …)`` (``M = O / C`` outputs per input channel)."""
    multiplier = w.shape[0] // c
    weights = xp.moveaxis(w.reshape(c, multiplier, count), 2, 0)
    if channels_last:
        return weights
    weights = xp.broadcast_to(weights[:, None], (count, n, c, multiplier))
    return weights.reshape(count, n * c, multiplier, *(1,) * d)


def _depthwise_conv(xp, x, w, kernel, stride, padding, dilation, out, block_bytes):
    """Depthwise convolution (``groups == C``, ``M = O / C`` outputs per channel):
    ``y[n, c·M + m, p] = Σ_t w[c·M + m, 0, t] · x̃[n, c, s·p + δ·t]``, per plane ``(n, c)`` a
    ``(M, T) @ (T, P)`` product with its columns, built block by block; channels-last tap sums
    where the rows are short (see ``COLUMNS_FROM_WIDTH``)."""
    if out[-1] < COLUMNS_FROM_WIDTH:
        return _depthwise_tap_sums(xp, x, w, kernel, stride, padding, dilation, out, block_bytes)
    n, c = x.shape[:2]
    multiplier, count, positions = w.shape[0] // c, math.prod(kernel), math.prod(out)
    dtype = xp.result_type(x, w)
    padded = _padded(xp, x, kernel, stride, padding, dilation, out, 0)
    padded = padded.reshape(n * c, *padded.shape[2:])
    weights = xp.broadcast_to(w.reshape(1, c, multiplier, count), (n, c, multiplier, count))
    # contiguous: a flipped kernel's view would leave negative strides that BLAS cannot take
    weights = xp.ascontiguousarray(weights.reshape(n * c, multiplier, count), dtype=dtype)
    y = xp.empty((n * c, multiplier, positions), dtype=dtype)
    unit = ((count + multiplier) * positions + padded[0].size) * y.itemsize
    cells = [_tap_slices(tap, stride, dilation, out) for tap in taps(kernel)]
    columns = None
    for start, stop in _blocks(n * c, unit, block_bytes):
        if columns is None:
            columns = xp.empty((stop - start, count, *out), dtype=dtype)
        block = columns[:stop - start]
        for i, tap_cells in enumerate(cells):
            block[:, i] = padded[(slice(start, stop), *tap_cells)]
        xp.matmul(weights[start:stop], block.reshape(stop - start, count, positions),
                  out=y[start:stop])
    return y.reshape(n, c * multiplier, *out)


def _depthwise_tap_sums(xp, x, w, kernel, stride, padding, dilation, out, block_bytes):
    """:func:`_depthwise_conv` accumulated tap by tap from strided views of the input, padded
    channels-last: ``T`` multiply-adds over the whole tensor into one accumulator and one
    scratch buffer, sample blocks of ``block_bytes``."""
    n, c = x.shape[:2]
    spatial, multiplier, count, d = x.shape[2:], w.shape[0] // c, math.prod(kernel), len(kernel)
    dtype = xp.result_type(x, w)
    weights = _depthwise_weights(xp, w, c, count, True, n, d)
    extents = [window_extent(o, k, s, dl) for o, k, s, dl in zip(out, kernel, stride, dilation)]
    kept = [max(0, min(size, e - lo)) for size, e, (lo, _) in zip(spatial, extents, padding)]
    padded = xp.zeros((n, *extents, c), dtype=x.dtype)
    padded[(slice(None), *(slice(lo, lo + k) for (lo, _), k in zip(padding, kept)))] = \
        xp.moveaxis(x[(slice(None), slice(None), *(slice(0, k) for k in kept))], 1, -1)
    y = xp.empty((n, *out, c, multiplier), dtype=dtype)
    unit = (y[0].size * 2 + padded[0].size) * y.itemsize
    cells = [(slice(None), *_tap_slices(tap, stride, dilation, out), slice(None), None)
             for tap in taps(kernel)]
    scratch = None
    for start, stop in _blocks(n, unit, block_bytes):
        total, block = y[start:stop], padded[start:stop]
        if scratch is None:
            scratch = xp.empty_like(total)
        part = scratch[:stop - start]
        for i, tap_cells in enumerate(cells):
            xp.multiply(block[tap_cells], weights[i], out=total if i == 0 else part)
            if i:
                total += part
    y = xp.ascontiguousarray(xp.moveaxis(y, (d + 1, d + 2), (1, 2)))
    return y.reshape(n, c * multiplier, *out)


def _depthwise_conv_transpose(xp, y, w, input_shape, kernel, stride, padding, dilation, out,
                              block_bytes):
    """The adjoint of :func:`_depthwise_conv`: ``x[n, c, i] = Σ_{m, t} w[c·M + m, 0, t] ·
    y[n, c·M + m, p]`` over ``s·p + δ·t = i + lo``. With stride 1 this is the convolution of
    ``y`` with the flipped kernel, padded by ``δ·(k − 1) − lo`` and ``δ·(k − 1) − hi`` (a
    depthwise one if ``M = 1``). Otherwise, per tap, the products are added into the cells
    ``s·p + δ·t`` of a zero buffer covering the padded input (the per-tap scatter-add, in place),
    which is then cropped to the input."""
    n, c = input_shape[:2]
    spatial, multiplier, count, d = input_shape[2:], w.shape[0] // c, math.prod(kernel), \
        len(kernel)
    flipped_padding = tuple((dl * (k - 1) - lo, dl * (k - 1) - hi)
                            for k, dl, (lo, hi) in zip(kernel, dilation, padding))
    if TRANSPOSE_AS_CONV and all(s == 1 for s in stride) and \
            all(lo >= 0 and hi >= 0 for lo, hi in flipped_padding):
        flipped = xp.ascontiguousarray(
            xp.flip(w.reshape(c, multiplier, *kernel), axis=tuple(range(2, 2 + d))))
        return conv(xp, y, flipped, stride=stride, padding=flipped_padding, dilation=dilation,
                    groups=c, block_bytes=block_bytes)
    channels_last = out[-1] < CHANNELS_LAST_BELOW
    extents = [max(lo + size, window_extent(o, k, s, dl)) for (lo, _), size, o, k, s, dl
               in zip(padding, spatial, out, kernel, stride, dilation)]
    dtype = xp.result_type(y, w)
    weights = _depthwise_weights(xp, w, c, count, channels_last, n, d)
    if channels_last:
        g = xp.ascontiguousarray(
            xp.moveaxis(y.reshape(n, c, multiplier, *out), (1, 2), (d + 1, d + 2)))
        buffer = xp.zeros((n, *extents, c), dtype=dtype)
    else:
        g = y.reshape(n * c, multiplier, *out)
        buffer = xp.zeros((n * c, *extents), dtype=dtype)
    unit = (g[0].size * 2 + buffer[0].size) * buffer.itemsize
    cells = [(slice(None), *_tap_slices(tap, stride, dilation, out)) for tap in taps(kernel)]
    scratch = None
    for start, stop in _blocks(g.shape[0], unit, block_bytes):
        block, part_of_g = buffer[start:stop], g[start:stop]
        if scratch is None:
            scratch = xp.empty(part_of_g.shape, dtype=dtype)
        products = scratch[:stop - start]
        for i, tap_cells in enumerate(cells):
            xp.multiply(part_of_g, weights[i] if channels_last else weights[i, start:stop],
                        out=products)
            if channels_last:
                block[tap_cells] += products[..., 0] if multiplier == 1 else products.sum(axis=-1)
            else:
                block[tap_cells] += products[:, 0] if multiplier == 1 else products.sum(axis=1)
    crop = tuple(slice(lo, lo + size) for (lo, _), size in zip(padding, spatial))
    if channels_last:
        return xp.ascontiguousarray(xp.moveaxis(buffer[(slice(None), *crop)], -1, 1))
    if all(lo == 0 and e == size for (lo, _), e, size in zip(padding, extents, spatial)):
        return buffer.reshape(input_shape)
    return xp.ascontiguousarray(buffer[(slice(None), *crop)]).reshape(input_shape)


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
