"""The kernels in pure array-API code: readable, runs on any namespace, and the oracle.

Works on every namespace that implements the standard (array-api-strict, NumPy, torch, CuPy,
JAX): purely functional (no in-place writes), no namespace-specific calls. Loops run over the
taps of the kernel (at most 27 for 3x3x3), never over positions or samples.

Notation per spatial axis: input length ``L``, padding ``(lo, hi)``, kernel ``k``, stride ``s``,
dilation ``δ``, ``out`` windows. The padded input is ``x̃[q] = x[q − lo]`` (a fill value outside
``[0, L)``). A forward kernel reads, for tap ``t``, the strided slice ``x̃[s·p + δ·t]`` of all
windows ``p`` at once. A transpose gathers instead of scattering: with ``ĝ`` the cotangent
spread by the stride (``ĝ[s·p] = g[p]``, zero between and outside), input ``i`` receives, from
each tap ``t``, its share of ``ĝ[i + lo − δ·t]``, so that each tap is again one contiguous slice.
"""

from __future__ import annotations

import functools
import math
import operator

import array_api_compat

from .shapes import (
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
           "avg_pool_transpose"]


# ---------------------------------------------------------------------------------------------
# functional building blocks


def _along(axis: int, index) -> tuple:
    """An indexing tuple that applies ``index`` to ``axis`` only."""
    return (slice(None),) * axis + (index, ...)


def _full_like(xp, a, shape, fill):
    return xp.full(shape, fill, dtype=a.dtype, device=array_api_compat.device(a))


def _with_length(shape, axis: int, length: int) -> tuple:
    return tuple(shape[:axis]) + (length,) + tuple(shape[axis + 1:])


def _shift_window(xp, a, axis: int, start: int, length: int, fill):
    """``b[j] = a[start + j]`` for ``j`` in ``[0, length)`` along ``axis``; ``fill`` outside ``a``.

    Pads (negative ``start``, long ``length``) and crops in one step.
    """
    n = a.shape[axis]
    below = min(max(-start, 0), length)
    inside = max(min(start + length, n) - max(start, 0), 0)
    above = length - below - inside
    parts = []
    if below:
        parts.append(_full_like(xp, a, _with_length(a.shape, axis, below), fill))
    if inside:
        first = max(start, 0)
        parts.append(a[_along(axis, slice(first, first + inside))])
    if above:
        parts.append(_full_like(xp, a, _with_length(a.shape, axis, above), fill))
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=axis)


def _spread(xp, a, axis: int, stride: int, fill):
    """``a`` spread by ``stride`` along ``axis``: ``b[stride·p] = a[p]``, ``fill`` between."""
    if stride == 1:
        return a
    n = a.shape[axis]
    gaps = [_full_like(xp, a, a.shape, fill)] * (stride - 1)
    interleaved = xp.reshape(xp.stack([a, *gaps], axis=axis + 1),
                             _with_length(a.shape, axis, n * stride))
    return interleaved[_along(axis, slice(0, stride * (n - 1) + 1))]


def _window_taps(xp, x, kernel, stride, padding, dilation, out, fill):
    """Yield ``x̃[..., s·p + δ·t]`` (shape ``(N, C, *out)``) for each tap ``t``, row-major."""
    for axis, (k, s, (lo, _), dl, o) in enumerate(zip(kernel, stride, padding, dilation, out), 2):
        x = _shift_window(xp, x, axis, -lo, window_extent(o, k, s, dl), fill)
    for tap in taps(kernel):
        yield x[(slice(None), slice(None),
                 *(slice(dl * t, dl * t + s * (o - 1) + 1, s)
                   for t, s, dl, o in zip(tap, stride, dilation, out)))]


def _spread_taps(xp, g, kernel, stride, padding, dilation, spatial, fill):
    """Yield ``ĝ[..., i + lo − δ·t]`` (shape ``(N, C, *spatial)``) for each tap ``t``, row-major."""
    geometry = zip(kernel, stride, padding, dilation, spatial)
    for axis, (k, s, (lo, _), dl, n) in enumerate(geometry, 2):
        reach = dl * (k - 1)
        g = _shift_window(xp, _spread(xp, g, axis, s, fill), axis, lo - reach, n + reach, fill)
    for tap in taps(kernel):
        yield g[(slice(None), slice(None),
                 *(slice(dl * (k - 1 - t), dl * (k - 1 - t) + n)
                   for t, k, dl, n in zip(tap, kernel, dilation, spatial)))]


def _sum(terms):
    return functools.reduce(operator.add, terms)


# ---------------------------------------------------------------------------------------------
# convolution


def _tap_matrices(xp, w, groups: int):
    """Per tap, the weight slice ``w[:, :, t]`` as ``(groups, O/groups, C/groups)`` matrices."""
    out_channels, in_per_group = w.shape[:2]
    for tap in taps(w.shape[2:]):
        yield xp.reshape(w[(slice(None), slice(None), *tap)],
                         (groups, out_channels // groups, in_per_group))


def conv(x, w, *, stride, padding, dilation, groups):
    """Cross-correlation (``torch.nn.functional.conv{1,2,3}d``), ``x (N, C, *L)``,
    ``w (O, C/groups, *k)``::

        y[n, o, p] = Σ_{c, t} w[o, c, t] · x̃[n, g(o)·C/groups + c, s·p + δ·t]

    with ``x̃`` the zero-padded input and ``g(o)`` the group of output channel ``o``.
    """
    xp = array_api_compat.array_namespace(x, w)
    d = conv_spatial_dims(x.shape, w.shape, groups)
    kernel, stride, padding, dilation = normalize_window(d, w.shape[2:], stride, padding, dilation)
    out = output_spatial_shape(x.shape[2:], kernel, stride, padding, dilation)
    n, positions = x.shape[0], math.prod(out)
    terms = (xp.matmul(w_t, xp.reshape(x_t, (n, groups, x.shape[1] // groups, positions)))
             for w_t, x_t in zip(_tap_matrices(xp, w, groups),
                                 _window_taps(xp, x, kernel, stride, padding, dilation, out, 0)))
    return xp.reshape(_sum(terms), (n, w.shape[0], *out))


def conv_transpose(y, w, *, stride, padding, dilation, groups, input_shape):
    """The adjoint of :func:`conv` in ``x``: the ``x`` of shape ``input_shape`` with
    ``<conv(x', w), y> = <x', x>`` for every ``x'``::

        x[n, c, i] = Σ_{o ∈ group(c), t} w[o, c mod C/groups, t] · ŷ[n, o, i + lo − δ·t]

    where ``ŷ`` is ``y`` spread by the stride. Inputs no window reads get 0.
    """
    xp = array_api_compat.array_namespace(y, w)
    input_shape = tuple(input_shape)
    d = conv_spatial_dims(input_shape, w.shape, groups)
    kernel, stride, padding, dilation = normalize_window(d, w.shape[2:], stride, padding, dilation)
    out = output_spatial_shape(input_shape[2:], kernel, stride, padding, dilation)
    check_shape(y.shape, (input_shape[0], w.shape[0], *out), "conv_transpose: y (the conv output)")
    n, positions = input_shape[0], math.prod(input_shape[2:])
    spread = _spread_taps(xp, y, kernel, stride, padding, dilation, input_shape[2:], 0)
    terms = (xp.matmul(xp.matrix_transpose(w_t),
                       xp.reshape(y_t, (n, groups, w.shape[0] // groups, positions)))
             for w_t, y_t in zip(_tap_matrices(xp, w, groups), spread))
    return xp.reshape(_sum(terms), input_shape)


# ---------------------------------------------------------------------------------------------
# pooling


def _lowest(xp, dtype):
    """The fill that never beats a real element: −inf, or the smallest integer."""
    return -xp.inf if xp.isdtype(dtype, "real floating") else xp.iinfo(dtype).min


def _real_taps(xp, x, spatial, kernel, stride, padding, dilation, out):
    """:func:`~lrp_core.kernels.shapes.real_taps` as an array of ``x``'s namespace and device."""
    return xp.asarray(real_taps(spatial, kernel, stride, padding, dilation, out), dtype=xp.bool,
                      device=array_api_compat.device(x))


def max_pool(x, *, kernel, stride, padding, dilation, ceil_mode):
    """Max pooling: ``y[n, c, p] = max_t x̃[n, c, s·p + δ·t]`` over the taps reading real cells.

    Returns ``(y, index)``; ``index`` (the namespace's default index dtype) is the row-major tap
    number of the window's first maximum (a NaN counts as the maximum). Padding never wins while
    the window holds a real cell.
    """
    xp = array_api_compat.array_namespace(x)
    d = pool_spatial_dims(x.shape)
    kernel, stride, padding, dilation = normalize_window(d, kernel, stride, padding, dilation)
    spatial = tuple(x.shape[2:])
    out = output_spatial_shape(spatial, kernel, stride, padding, dilation, ceil_mode)
    windows = xp.stack(list(_window_taps(xp, x, kernel, stride, padding, dilation, out,
                                         _lowest(xp, x.dtype))), axis=0)
    y = xp.max(windows, axis=0, keepdims=True)
    hit = ((windows == y) | (windows != windows)) & _real_taps(
        xp, x, spatial, kernel, stride, padding, dilation, out)
    return y[0, ...], xp.argmax(xp.astype(hit, xp.int8), axis=0)


def max_pool_transpose(g, index, *, kernel, stride, padding, dilation, input_shape):
    """The adjoint of max pooling at a fixed ``index`` (from :func:`max_pool`):
    ``x[n, c, i] = Σ g[n, c, p]`` over the windows ``p`` whose selected tap ``index[n, c, p]``
    reads ``i`` (overlaps add up; a selected padding cell drops its share)."""
    xp = array_api_compat.array_namespace(g, index)
    input_shape = tuple(input_shape)
    d = pool_spatial_dims(input_shape)
    kernel, stride, padding, dilation = normalize_window(d, kernel, stride, padding, dilation)
    if tuple(index.shape) != tuple(g.shape) or tuple(g.shape[:2]) != input_shape[:2]:
        raise ValueError(f"max_pool_transpose: g {tuple(g.shape)} and index "
                         f"{tuple(index.shape)} must share a shape, with input {input_shape}'s "
                         f"batch and channels")
    spatial = input_shape[2:]
    zero = xp.zeros((), dtype=g.dtype, device=array_api_compat.device(g))
    g_taps = _spread_taps(xp, g, kernel, stride, padding, dilation, spatial, 0)
    index_taps = _spread_taps(xp, index, kernel, stride, padding, dilation, spatial, -1)
    return _sum(xp.where(i_t == t, g_t, zero)
                for t, (g_t, i_t) in enumerate(zip(g_taps, index_taps)))


def _divisor(xp, x, spatial, kernel, stride, padding, out, count_include_pad):
    """:func:`~lrp_core.kernels.shapes.divisor_grid` in ``x``'s namespace, dtype and device."""
    grid = divisor_grid(spatial, kernel, stride, padding, out, count_include_pad)
    return xp.asarray(grid, dtype=x.dtype, device=array_api_compat.device(x))


def avg_pool(x, *, kernel, stride, padding, ceil_mode, count_include_pad):
    """Average pooling (PyTorch semantics): ``y[n, c, p] = Σ_t x̃[n, c, s·p + t] / D[p]``.

    ``D`` counts, per axis, the window's cells inside ``[−lo, L + hi)`` (``count_include_pad``;
    cells added by ``ceil_mode`` beyond the padding are not counted) or inside ``[0, L)``, and
    multiplies the counts of the axes.
    """
    xp = array_api_compat.array_namespace(x)
    d = pool_spatial_dims(x.shape)
    kernel, stride, padding, ones = normalize_window(d, kernel, stride, padding, 1)
    spatial = tuple(x.shape[2:])
    out = output_spatial_shape(spatial, kernel, stride, padding, ones, ceil_mode)
    total = _sum(_window_taps(xp, x, kernel, stride, padding, ones, out, 0))
    return total / _divisor(xp, x, spatial, kernel, stride, padding, out, count_include_pad)


def avg_pool_transpose(g, *, kernel, stride, padding, ceil_mode, count_include_pad, input_shape):
    """The adjoint of :func:`avg_pool`: ``x[n, c, i] = Σ_t ĥ[n, c, i + lo − t]``, where ``ĥ`` is
    ``g / D`` spread by the stride."""
    xp = array_api_compat.array_namespace(g)
    input_shape = tuple(input_shape)
    d = pool_spatial_dims(input_shape)
    kernel, stride, padding, ones = normalize_window(d, kernel, stride, padding, 1)
    spatial = input_shape[2:]
    out = output_spatial_shape(spatial, kernel, stride, padding, ones, ceil_mode)
    check_shape(g.shape, (*input_shape[:2], *out), "avg_pool_transpose: g (the pooled output)")
    share = g / _divisor(xp, g, spatial, kernel, stride, padding, out, count_include_pad)
    return _sum(_spread_taps(xp, share, kernel, stride, padding, ones, spatial, 0))
