"""The kernels for PyTorch tensors (CPU and CUDA): ``torch.nn.functional`` underneath.

Same functions, signatures and semantics as :mod:`lrp_core.kernels.reference` (the oracle these
are tested against); the shape rules come from :mod:`lrp_core.kernels.shapes`. The registry in
:mod:`lrp_core.kernels` imports this module the first time it sees a torch tensor.

Which native call does the work, in one place:

* ``conv``: ``F.conv{1,2,3}d``; an asymmetric padding is applied first with ``F.pad``.
* ``conv_transpose`` (the adjoint of ``conv``): ``F.conv_transpose{1,2,3}d`` with the
  ``output_padding`` that restores ``input_shape``; where torch cannot express it (asymmetric
  padding, or an output padding torch refuses), the unpadded transpose is computed and cropped.
* ``max_pool``: ``F.max_pool{1,2,3}d(..., return_indices=True)``. torch returns the flat index of
  the winning *input* cell; it is converted to the row-major *tap* index within the window, the
  registry's contract. torch keeps the first maximum in row-major window order (a strict ``>``
  scan), which is the contract for ties (checked in ``tests/test_torch_kernels.py``, float32 and
  float64, contiguous and channels-last). Geometries torch refuses (asymmetric padding, padding
  over half the kernel) use the reference implementation.
* ``max_pool_transpose``: a ``scatter_add`` of the cotangent onto the selected input cells
  (overlapping windows add up).
* ``avg_pool``: ``F.avg_pool{1,2,3}d``; ``avg_pool_transpose``: ``g / D`` (the divisor of each
  window, from :func:`lrp_core.kernels.shapes.divisor_grid`) through a depthwise transposed
  convolution with a kernel of ones.

Also ``to_numpy`` (a host copy, or a view for CPU tensors), ``erf`` (``torch.special.erf``),
``sigmoid`` and ``silu`` (``torch.sigmoid``, ``F.silu``: one pass each), ``stabilize`` (the LRP
stabiliser through ``copysign``, in place on one temporary) and
``compute_context`` (``torch.inference_mode()``, for the analyzer to run the whole pass in;
see docs/torch.md). The kernels never write into their inputs.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from lrp_core.kernels import Backend, reference
from lrp_core.kernels.shapes import (
    check_shape,
    conv_spatial_dims,
    divisor_grid,
    normalize_window,
    output_spatial_shape,
    pool_spatial_dims,
)

__all__ = ["TorchBackend", "BACKEND", "conv", "conv_transpose", "max_pool", "max_pool_transpose",
           "avg_pool", "avg_pool_transpose", "to_numpy", "from_numpy", "erf", "stabilize",
           "sigmoid", "silu", "compute_context"]

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def compute_context():
    """The context the analyzer's forward and backward pass should run in for torch tensors:
    ``torch.inference_mode()`` (no autograd graph, no version-counter bumps)."""
    return torch.inference_mode()


def _symmetric(padding) -> bool:
    return all(lo == hi for lo, hi in padding)


def _pad_spec(padding) -> list[int]:
    """``F.pad``'s order: last axis first, ``(low, high)`` per axis."""
    spec: list[int] = []
    for lo, hi in reversed(padding):
        spec += [lo, hi]
    return spec


# ---------------------------------------------------------------------------------------------
# convolution


def conv(x, w, *, stride, padding, dilation, groups, bias=None):
    """Cross-correlation (see :func:`lrp_core.kernels.reference.conv`) with ``F.conv{d}d``;
    ``bias`` is added in place to its output afterwards, not by ``F.conv{d}d``, whose fused
    addition rounds differently: float64 results stay equal to the NumPy backend's to 1e-10
    relative on ResNet-50 (``tests/test_torch_models.py``)."""
    d = conv_spatial_dims(x.shape, w.shape, groups)
    kernel, stride, padding, dilation = normalize_window(d, w.shape[2:], stride, padding, dilation)
    if not _symmetric(padding):
        x = F.pad(x, _pad_spec(padding))
        padding = ((0, 0),) * d
    y = _CONV[d](x, w, None, stride, tuple(lo for lo, _ in padding), dilation, groups)
    return y if bias is None else y.add_(bias.reshape((-1,) + (1,) * d))


def _transpose(y, w, *, stride, padding, dilation, groups, input_shape):
    """``x`` of ``input_shape`` with ``x[i] = full[i + lo]`` (zero beyond ``full``), where
    ``full`` is the unpadded transposed convolution of ``y`` (any number of windows)."""
    d = len(stride)
    spatial = input_shape[2:]
    full = [(n - 1) * s + dl * (k - 1) + 1
            for n, s, dl, k in zip(y.shape[2:], stride, dilation, w.shape[2:])]
    extra = [length - (f - 2 * lo) for length, f, (lo, _) in zip(spatial, full, padding)]
    native = _symmetric(padding) and all(0 <= e < max(s, dl)
                                         for e, s, dl in zip(extra, stride, dilation))
    if native:
        return _CONV_T[d](y, w, None, stride, tuple(lo for lo, _ in padding), tuple(extra),
                          groups, dilation)
    x = _CONV_T[d](y, w, None, stride, 0, 0, groups, dilation)
    # crop [lo, lo + L) on each axis, zero-filling what lies beyond the full result
    spec: list[int] = []
    for (lo, _), length, f in zip(reversed(padding), reversed(spatial), reversed(full)):
        spec += [-lo, lo + length - f]
    return F.pad(x, spec)


def conv_transpose(y, w, *, stride, padding, dilation, groups, input_shape):
    """The adjoint of :func:`conv` in ``x`` (see
    :func:`lrp_core.kernels.reference.conv_transpose`)."""
    input_shape = tuple(int(s) for s in input_shape)
    d = conv_spatial_dims(input_shape, w.shape, groups)
    kernel, stride, padding, dilation = normalize_window(d, w.shape[2:], stride, padding, dilation)
    out = output_spatial_shape(input_shape[2:], kernel, stride, padding, dilation)
    check_shape(y.shape, (input_shape[0], w.shape[0], *out), "conv_transpose: y (the conv output)")
    return _transpose(y, w, stride=stride, padding=padding, dilation=dilation, groups=groups,
                      input_shape=input_shape)


# ---------------------------------------------------------------------------------------------
# pooling


def _native_pool(padding, kernel, dilation) -> bool:
    """Whether torch's pooling accepts the padding: symmetric, at most half the dilated kernel."""
    return _symmetric(padding) and all(2 * lo <= dl * (k - 1) + 1
                                       for (lo, _), k, dl in zip(padding, kernel, dilation))


def _axis_positions(n: int, d: int, axis: int, device):
    """``arange(n)`` shaped to broadcast along spatial ``axis`` of a ``d``-axis grid."""
    shape = [1] * d
    shape[axis] = n
    return torch.arange(n, device=device).view(shape)


def max_pool(x, *, kernel, stride, padding, dilation, ceil_mode):
    """Max pooling and the row-major tap index of each window's first maximum (see
    :func:`lrp_core.kernels.reference.max_pool`)."""
    d = pool_spatial_dims(x.shape)
    kernel, stride, padding, dilation = normalize_window(d, kernel, stride, padding, dilation)
    if not _native_pool(padding, kernel, dilation) or not x.dtype.is_floating_point:
        return reference.max_pool(x, kernel=kernel, stride=stride, padding=padding,
                                  dilation=dilation, ceil_mode=ceil_mode)
    y, flat = _MAX_POOL[d](x, kernel, stride, tuple(lo for lo, _ in padding), dilation,
                           ceil_mode=ceil_mode, return_indices=True)
    # flat index into the input plane -> per-axis coordinate -> tap along that axis
    spatial = x.shape[2:]
    tap = torch.zeros_like(flat)
    remainder = flat
    place = 1
    for axis in range(d - 1, -1, -1):
        coordinate = remainder % spatial[axis]
        remainder = remainder // spatial[axis]
        window = _axis_positions(y.shape[2 + axis], d, axis, x.device)
        tap_axis = torch.div(coordinate + padding[axis][0] - stride[axis] * window, dilation[axis],
                             rounding_mode="floor")
        tap = tap + tap_axis * place
        place *= kernel[axis]
    return y, tap


def max_pool_transpose(g, index, *, kernel, stride, padding, dilation, input_shape):
    """Routes ``g[n, c, p]`` to the input cell its selected tap ``index[n, c, p]`` reads;
    overlapping windows add up (see :func:`lrp_core.kernels.reference.max_pool_transpose`)."""
    input_shape = tuple(int(s) for s in input_shape)
    d = pool_spatial_dims(input_shape)
    kernel, stride, padding, dilation = normalize_window(d, kernel, stride, padding, dilation)
    if tuple(index.shape) != tuple(g.shape) or tuple(g.shape[:2]) != input_shape[:2]:
        raise ValueError(f"max_pool_transpose: g {tuple(g.shape)} and index "
                         f"{tuple(index.shape)} must share a shape, with input "
                         f"{input_shape}'s batch and channels")
    spatial = input_shape[2:]
    flat = torch.zeros_like(index)
    inside = None  # a window of padding only selects a padded cell: it routes nothing
    remainder = index
    for axis in range(d - 1, -1, -1):
        t = remainder % kernel[axis]
        remainder = remainder // kernel[axis]
        window = _axis_positions(g.shape[2 + axis], d, axis, g.device)
        coordinate = stride[axis] * window + dilation[axis] * t - padding[axis][0]
        valid = (coordinate >= 0) & (coordinate < spatial[axis])
        inside = valid if inside is None else inside & valid
        flat = flat + coordinate.clamp(0, spatial[axis] - 1) * math.prod(spatial[axis + 1:])
    if not _native_pool(padding, kernel, dilation):  # otherwise every window holds a real cell
        g = torch.where(inside, g, torch.zeros((), dtype=g.dtype, device=g.device))
    n, c = input_shape[:2]
    out = torch.zeros((n, c, math.prod(spatial)), dtype=g.dtype, device=g.device)
    out.scatter_add_(2, flat.reshape(n, c, -1), g.reshape(n, c, -1))
    return out.reshape(input_shape)


def max_pool_linearized(x, *, kernel, stride, padding, dilation, ceil_mode):
    """``(y, pullback)`` of max pooling, keeping torch's own indices (flat positions in the
    input plane) between the two: no conversion to tap indices and back, which cost more than
    the pooling itself. The pullback scatters ``g`` to those positions, as
    :func:`max_pool_transpose` does with the converted indices (the same selection: torch's
    first maximum, which the tests check against the reference's); other geometries take the
    generic path."""
    d = pool_spatial_dims(x.shape)
    kernel, stride, padding, dilation = normalize_window(d, kernel, stride, padding, dilation)
    if not _native_pool(padding, kernel, dilation) or not x.dtype.is_floating_point:
        return Backend.max_pool_linearized(BACKEND, x, kernel=kernel, stride=stride,
                                           padding=padding, dilation=dilation,
                                           ceil_mode=ceil_mode)
    y, flat = _MAX_POOL[d](x, kernel, stride, tuple(lo for lo, _ in padding), dilation,
                           ceil_mode=ceil_mode, return_indices=True)
    shape = tuple(x.shape)
    n, c = shape[:2]

    def pullback(g):
        out = torch.zeros((n, c, math.prod(shape[2:])), dtype=g.dtype, device=g.device)
        out.scatter_add_(2, flat.reshape(n, c, -1), g.reshape(n, c, -1))
        return out.reshape(shape)

    return y, pullback


def avg_pool(x, *, kernel, stride, padding, ceil_mode, count_include_pad):
    """Average pooling, PyTorch semantics (see :func:`lrp_core.kernels.reference.avg_pool`)."""
    d = pool_spatial_dims(x.shape)
    kernel, stride, padding, _ = normalize_window(d, kernel, stride, padding, 1)
    if not _native_pool(padding, kernel, (1,) * d):
        return reference.avg_pool(x, kernel=kernel, stride=stride, padding=padding,
                                  ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    return _AVG_POOL[d](x, kernel, stride, tuple(lo for lo, _ in padding), ceil_mode=ceil_mode,
                        count_include_pad=count_include_pad)


def avg_pool_transpose(g, *, kernel, stride, padding, ceil_mode, count_include_pad, input_shape):
    """The adjoint of :func:`avg_pool`: each input cell sums ``g / D`` over the windows that
    read it."""
    input_shape = tuple(int(s) for s in input_shape)
    d = pool_spatial_dims(input_shape)
    kernel, stride, padding, ones = normalize_window(d, kernel, stride, padding, 1)
    spatial = input_shape[2:]
    out = output_spatial_shape(spatial, kernel, stride, padding, ones, ceil_mode)
    check_shape(g.shape, (*input_shape[:2], *out), "avg_pool_transpose: g (the pooled output)")
    grid = divisor_grid(spatial, kernel, stride, padding, out, count_include_pad)
    share = g / torch.as_tensor(grid, dtype=g.dtype, device=g.device)
    channels = input_shape[1]
    w = torch.ones((channels, 1, *kernel), dtype=g.dtype, device=g.device)
    return _transpose(share, w, stride=stride, padding=padding, dilation=ones, groups=channels,
                      input_shape=input_shape)


# ---------------------------------------------------------------------------------------------
# conversions and special functions


def to_numpy(x) -> np.ndarray:
    """A host NumPy array of ``x`` (a view for a CPU tensor; bfloat16 becomes float32, which
    NumPy lacks)."""
    x = x.detach()
    if x.dtype == torch.bfloat16:
        x = x.float()
    return x.cpu().resolve_conj().resolve_neg().numpy()


def erf(x):
    """The error function, ``torch.special.erf``."""
    return torch.special.erf(x)


def stabilize(d, eps):
    """``d + eps·sign(d)`` with ``sign(±0) = +1`` (see ``Backend.stabilize``) in three passes
    over one fresh tensor: ``t = d + 0`` (which turns ``-0`` into ``+0``), ``t = copysign(eps,
    t)`` written into ``t``, ``t += d``; each step exact, so bit for bit the reference. Writing
    into the one temporary matters on large tensors, where torch's CPU allocator returns fresh
    memory to the system and every new tensor pays its page faults."""
    t = d + 0.0
    torch.copysign(torch.full((), eps, dtype=d.dtype, device=d.device), t, out=t)
    return t.add_(d)


def sigmoid(x):
    """``torch.sigmoid``: one pass (the array-API formula takes four)."""
    return torch.sigmoid(x)


def silu(x):
    """``F.silu``, ``x · sigmoid(x)``: one pass."""
    return F.silu(x)


def from_numpy(x: np.ndarray) -> torch.Tensor:
    """A NumPy array as a torch tensor, on the GPU when CUDA is available (for ``lrp explain``)."""
    return torch.from_numpy(x).to("cuda" if torch.cuda.is_available() else "cpu")


class TorchBackend(Backend):
    """torch (CPU and CUDA): the functions above."""

    name = "torch"
    framework = "torch"
    conv = staticmethod(conv)
    conv_transpose = staticmethod(conv_transpose)
    max_pool = staticmethod(max_pool)
    max_pool_transpose = staticmethod(max_pool_transpose)
    max_pool_linearized = staticmethod(max_pool_linearized)
    avg_pool = staticmethod(avg_pool)
    avg_pool_transpose = staticmethod(avg_pool_transpose)
    erf = staticmethod(erf)
    stabilize = staticmethod(stabilize)
    sigmoid = staticmethod(sigmoid)
    silu = staticmethod(silu)
    compute_context = staticmethod(compute_context)
    to_numpy = staticmethod(to_numpy)
    from_numpy = staticmethod(from_numpy)


BACKEND = TorchBackend()
