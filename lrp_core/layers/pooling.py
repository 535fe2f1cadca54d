"""Pooling layers: max and average, fixed-window, adaptive and global (1-, 2- and 3-d).

The spatial rank comes from the input (``x.ndim - 2``). Max pooling is linearised at its input:
the pullback routes a cotangent to each window's first maximum (row-major window order), which
is the gradient. Average pooling is linear.
"""

from __future__ import annotations

import math

import array_api_compat
import numpy as np

from ..arrays import namespace_of
from ..kernels import get_backend
from ..kernels.shapes import normalize_padding, normalize_tuple
from .base import LinearizableLayer

__all__ = [
    "PoolingLayer",
    "MaxPool",
    "AvgPool",
    "AdaptiveAvgPool",
    "AdaptiveMaxPool",
    "GlobalAvgPool",
    "GlobalMaxPool",
]


class PoolingLayer(LinearizableLayer):
    """Group of pooling layers, usable as a composite key."""

    def output_nonnegative(self, inputs_nonnegative):
        return all(inputs_nonnegative)


def _spatial(x) -> int:
    d = len(x.shape) - 2
    if d not in (1, 2, 3):
        raise ValueError(f"pooling expects (batch, channels, 1-3 spatial axes), "
                         f"got shape {tuple(x.shape)}")
    return d


class _WindowPool(PoolingLayer):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.ceil_mode = bool(ceil_mode)

    def _geometry(self, x):
        d = _spatial(x)
        return dict(kernel=normalize_tuple(self.kernel_size, d, "kernel_size"),
                    stride=normalize_tuple(self.stride, d, "stride"),
                    padding=normalize_padding(self.padding, d),
                    ceil_mode=self.ceil_mode)

    def _options(self):
        parts = [f"{self.kernel_size}"]
        if self.stride != self.kernel_size:
            parts.append(f"stride={self.stride}")
        if any(lo or hi for lo, hi in normalize_padding(self.padding, _padding_rank(self.padding))):
            parts.append(f"padding={self.padding}")
        if self.ceil_mode:
            parts.append("ceil_mode=True")
        return ", ".join(parts)


class MaxPool(_WindowPool):
    """Max pooling; padded cells never win. Ties go to the first maximum in row-major order."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.dilation = dilation

    def _geometry(self, x):
        geometry = super()._geometry(x)
        geometry["dilation"] = normalize_tuple(self.dilation, _spatial(x), "dilation")
        return geometry

    def preactivation(self, x):
        return get_backend(namespace_of(x)).max_pool(x, **self._geometry(x))[0]

    def linearize(self, x):
        y, pullback = get_backend(namespace_of(x)).max_pool_linearized(x, **self._geometry(x))
        return y, lambda s: (pullback(s),)

    def describe(self):
        return f"MaxPool({self._options()})"


class AvgPool(_WindowPool):
    """Average pooling, torch semantics for ``count_include_pad`` and ``ceil_mode``."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def _geometry(self, x):
        geometry = super()._geometry(x)
        geometry["count_include_pad"] = self.count_include_pad
        return geometry

    def preactivation(self, x):
        return get_backend(namespace_of(x)).avg_pool(x, **self._geometry(x))

    def linearize(self, x):
        kernels = get_backend(namespace_of(x))
        geometry = self._geometry(x)
        shape = tuple(x.shape)
        return (kernels.avg_pool(x, **geometry),
                lambda s: (kernels.avg_pool_transpose(s, input_shape=shape, **geometry),))

    def describe(self):
        return f"AvgPool({self._options()})"


def _padding_rank(padding) -> int:
    return len(padding) if isinstance(padding, (tuple, list)) else 1


def _adaptive_windows(length: int, out: int):
    """torch's adaptive windows: ``[floor(i·L/out), ceil((i+1)·L/out))`` for each output ``i``."""
    return [(i * length // out, -(-(i + 1) * length // out)) for i in range(out)]


def _output_sizes(output_size, x):
    d = _spatial(x)
    sizes = ((output_size,) * d if isinstance(output_size, int) or output_size is None
             else tuple(output_size))
    if len(sizes) != d:
        raise ValueError(f"output_size {output_size} does not match {d} spatial axes")
    return tuple(x.shape[2 + i] if s is None else int(s) for i, s in enumerate(sizes))


def _along_axis(xp, x, matrix, axis):
    """Contract axis ``axis`` of ``x`` with ``matrix`` (out, L): the result has ``out`` there."""
    moved = xp.tensordot(x, matrix, axes=([axis], [1]))
    return xp.moveaxis(moved, -1, axis)


class AdaptiveAvgPool(PoolingLayer):
    """Average over torch's adaptive windows to reach ``output_size`` (``None`` keeps an axis).

    Separable and linear: one (out × L) averaging matrix per spatial axis.
    """

    def __init__(self, output_size):
        self.output_size = output_size

    def _matrices(self, x):
        xp = namespace_of(x)
        mats = []
        for length, out in zip(x.shape[2:], _output_sizes(self.output_size, x)):
            m = np.zeros((out, length))
            for i, (lo, hi) in enumerate(_adaptive_windows(length, out)):
                m[i, lo:hi] = 1.0 / (hi - lo)
            mats.append(xp.asarray(m, dtype=x.dtype, device=array_api_compat.device(x)))
        return mats

    def linearize(self, x):
        xp = namespace_of(x)
        mats = self._matrices(x)
        z = x
        for axis, m in enumerate(mats, start=2):
            z = _along_axis(xp, z, m, axis)

        def pullback(s):
            for axis, m in enumerate(mats, start=2):
                s = _along_axis(xp, s, xp.matrix_transpose(m), axis)
            return (s,)

        return z, pullback

    def describe(self):
        return f"AdaptiveAvgPool({self.output_size})"


class AdaptiveMaxPool(PoolingLayer):
    """Maximum over torch's adaptive windows; ties go to the first maximum (row-major).

    Each axis gathers its windows, padded to equal length by repeating the window's last index
    (a repeat never changes the maximum, nor which occurrence comes first).
    """

    def __init__(self, output_size):
        self.output_size = output_size

    def _gathers(self, x):
        """Per axis: one-hot gather tensor ``G[out, K, L]``."""
        xp = namespace_of(x)
        gathers = []
        for length, out in zip(x.shape[2:], _output_sizes(self.output_size, x)):
            windows = _adaptive_windows(length, out)
            width = max(hi - lo for lo, hi in windows)
            g = np.zeros((out, width, length))
            for i, (lo, hi) in enumerate(windows):
                for k in range(width):
                    g[i, k, min(lo + k, hi - 1)] = 1.0
            gathers.append(xp.asarray(g, dtype=x.dtype, device=array_api_compat.device(x)))
        return gathers

    def linearize(self, x):
        xp = namespace_of(x)
        gathers = self._gathers(x)
        d = len(gathers)
        n, c = x.shape[0], x.shape[1]
        # windows: (N, C, out_1, K_1, out_2, K_2, ...) via one contraction per axis
        w = x
        for i, g in enumerate(gathers):
            axis = 2 + 2 * i
            w = xp.tensordot(w, g, axes=([axis], [2]))  # -> (..., out, K) at the end
            w = xp.moveaxis(xp.moveaxis(w, -2, axis), -1, axis + 1)
        outs = [g.shape[0] for g in gathers]
        widths = [g.shape[1] for g in gathers]
        order = [0, 1] + [2 + 2 * i for i in range(d)] + [3 + 2 * i for i in range(d)]
        taps = xp.reshape(xp.permute_dims(w, tuple(order)), (n, c, *outs, math.prod(widths)))
        index = xp.argmax(taps, axis=-1)
        z = xp.max(taps, axis=-1)

        def pullback(s):
            tap_ids = xp.arange(math.prod(widths), device=array_api_compat.device(s))
            onehot = xp.astype(index[..., None] == tap_ids, s.dtype) * s[..., None]
            v = xp.reshape(onehot, (n, c, *outs, *widths))
            inverse = [0, 1] + [q for i in range(d) for q in (2 + i, 2 + d + i)]
            v = xp.permute_dims(v, tuple(inverse))  # (N, C, out_1, K_1, out_2, K_2, ...)
            for i, g in enumerate(gathers):
                # contract (out_i, K_i) -- now at axes 2+i, 3+i -- with G[out, K, L]
                v = xp.tensordot(v, g, axes=([2 + i, 3 + i], [0, 1]))
                v = xp.moveaxis(v, -1, 2 + i)
            return (v,)

        return z, pullback

    def describe(self):
        return f"AdaptiveMaxPool({self.output_size})"


class GlobalAvgPool(PoolingLayer):
    """Mean over all spatial axes; ``keepdims=True`` keeps them as size 1 (ONNX, torch adaptive)."""

    def __init__(self, keepdims: bool = True):
        self.keepdims = bool(keepdims)

    def linearize(self, x):
        xp = namespace_of(x)
        axes = tuple(range(2, len(x.shape)))
        count = math.prod(x.shape[2:])
        shape = tuple(x.shape)
        z = xp.mean(x, axis=axes, keepdims=self.keepdims)

        def pullback(s):
            s = xp.reshape(s, shape[:2] + (1,) * len(axes))
            return (xp.broadcast_to(s / count, shape),)

        return z, pullback

    def describe(self):
        return "GlobalAvgPool()" if self.keepdims else "GlobalAvgPool(keepdims=False)"


class GlobalMaxPool(PoolingLayer):
    """Maximum over all spatial axes (first maximum in row-major order wins ties)."""

    def __init__(self, keepdims: bool = True):
        self.keepdims = bool(keepdims)

    def linearize(self, x):
        xp = namespace_of(x)
        shape = tuple(x.shape)
        flat = xp.reshape(x, (shape[0], shape[1], -1))
        index = xp.argmax(flat, axis=-1)
        z = xp.max(flat, axis=-1)
        if self.keepdims:
            z = xp.reshape(z, shape[:2] + (1,) * (len(shape) - 2))

        def pullback(s):
            s = xp.reshape(s, shape[:2] + (1,))
            positions = xp.arange(flat.shape[-1], device=array_api_compat.device(s))
            routed = xp.astype(index[..., None] == positions, s.dtype) * s
            return (xp.reshape(routed, shape),)

        return z, pullback

    def describe(self):
        return "GlobalMaxPool()" if self.keepdims else "GlobalMaxPool(keepdims=False)"
