"""Depthwise, grouped and pointwise convolutions of the NumPy (strided) kernels against torch.

Oracles: ``torch.nn.functional.conv{1,2,3}d`` for the convolution and torch's autograd (the
gradient of ``<conv(x), g>`` in ``x``) for its transpose, in float64 to 1e-12; and the
array-API reference for random geometries. The depthwise kernels have several formulations
(im2col per plane or channels-last tap sums forward; the flipped-kernel convolution or a
channels-first or channels-last scatter-add for the transpose) and stream in blocks: each path,
whole and in blocks of one unit, is forced here, besides the NumPy backend's own choice.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrp_core.backends.kernels import numpy_backend, strided
from lrp_core.kernels import reference

torch = pytest.importorskip("torch")
F = torch.nn.functional

# (channels, groups, out channels, spatial, kernel, stride, padding, dilation, batch)
CASES = {
    "depthwise 3x3 stride 1": (8, 8, 8, (9, 9), (3, 3), (1, 1), (1, 1), (1, 1), 1),
    "depthwise 3x3 stride 2 odd size": (6, 6, 6, (13, 11), (3, 3), (2, 2), (1, 1), (1, 1), 3),
    "depthwise 5x5 stride 2": (5, 5, 5, (15, 15), (5, 5), (2, 2), (2, 2), (1, 1), 2),
    "depthwise 5x5 stride 1 batch 4": (7, 7, 7, (10, 12), (5, 5), (1, 1), (2, 2), (1, 1), 4),
    "depthwise dilation 2": (4, 4, 4, (12, 9), (3, 3), (1, 2), (2, 1), (2, 2), 2),
    "depthwise no padding, stride 3": (3, 3, 3, (11, 10), (3, 2), (3, 3), (0, 0), (1, 1), 2),
    "depthwise multiplier 2": (4, 4, 8, (9, 7), (3, 3), (2, 1), (1, 1), (1, 1), 2),
    "depthwise wide rows": (2, 2, 2, (5, 70), (3, 3), (1, 1), (1, 1), (1, 1), 2),
    "depthwise padding beyond the kernel": (3, 3, 3, (6, 7), (2, 2), (1, 1), (3, 3), (1, 1), 2),
    "grouped 3 groups": (6, 3, 9, (8, 9), (3, 3), (2, 1), (1, 1), (1, 2), 2),
    "grouped 5x5 stride 2": (8, 2, 4, (11, 11), (5, 5), (2, 2), (2, 2), (1, 1), 3),
    "single input channel": (1, 1, 6, (9, 8), (3, 3), (1, 1), (1, 1), (1, 1), 2),
    "pointwise": (6, 1, 10, (7, 9), (1, 1), (1, 1), (0, 0), (1, 1), 3),
    "pointwise stride 2 odd size": (4, 1, 5, (9, 7), (1, 1), (2, 2), (0, 0), (1, 1), 2),
    "pointwise grouped stride (1, 3)": (6, 2, 4, (8, 10), (1, 1), (1, 3), (0, 0), (1, 1), 2),
    "1x1 padded": (3, 1, 4, (5, 5), (1, 1), (1, 1), (1, 1), (1, 1), 2),
}

#: The module switches of :mod:`strided` that force each depthwise path.
PATHS = {
    "columns, transpose as conv": dict(COLUMNS_FROM_WIDTH=0, TRANSPOSE_AS_CONV=True),
    "tap sums, transpose as conv": dict(COLUMNS_FROM_WIDTH=10**9, TRANSPOSE_AS_CONV=True),
    "columns, scatter channels-first": dict(COLUMNS_FROM_WIDTH=0, TRANSPOSE_AS_CONV=False,
                                            CHANNELS_LAST_BELOW=0),
    "tap sums, scatter channels-last": dict(COLUMNS_FROM_WIDTH=10**9, TRANSPOSE_AS_CONV=False,
                                            CHANNELS_LAST_BELOW=10**9),
}


def geometry(stride, padding, dilation, groups):
    return dict(stride=stride, padding=tuple((p, p) for p in padding), dilation=dilation,
                groups=groups)


def torch_conv_and_gradient(x, w, g, stride, padding, dilation, groups):
    """``conv(x)`` and ``∂<conv(x), g>/∂x`` by torch (autograd), as NumPy arrays."""
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[x.ndim - 2]
    xt = torch.from_numpy(x).requires_grad_(True)
    y = conv(xt, torch.from_numpy(w), None, stride, padding, dilation, groups)
    (gradient,) = torch.autograd.grad(y, xt, torch.from_numpy(g))
    return y.detach().numpy(), gradient.numpy()


def close(actual, expected):
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12)


def force(path, monkeypatch):
    for name, value in PATHS[path].items():
        monkeypatch.setattr(strided, name, value)


def kernels(path=None, block_bytes=None):
    """The NumPy backend's conv pair, or the strided kernels with the given block size."""
    if path is None:
        return numpy_backend.conv, numpy_backend.conv_transpose
    return (functools.partial(strided.conv, np, block_bytes=block_bytes),
            functools.partial(strided.conv_transpose, np, block_bytes=block_bytes))


#: (path, block_bytes): the backend's own choice, then each path whole and in 1-unit blocks
VARIANTS = [(None, None)] + [(path, block) for path in PATHS for block in (None, 1)]
#: the forced paths only matter where the input has one channel per group (depthwise)
RUNS = [(name, *variant) for name, case in CASES.items()
        for variant in (VARIANTS if case[0] == case[1] else VARIANTS[:1])]


@pytest.mark.parametrize(("name", "path", "block_bytes"), RUNS)
def test_conv_and_transpose_equal_torch(name, path, block_bytes, monkeypatch):
    c, groups, o, spatial, kernel, stride, padding, dilation, n = CASES[name]
    if path is not None:
        force(path, monkeypatch)
    rng = np.random.default_rng(sum(map(ord, name)))
    x = rng.standard_normal((n, c, *spatial))
    w = rng.standard_normal((o, c // groups, *kernel))
    conv, conv_transpose = kernels(path, block_bytes)
    kwargs = geometry(stride, padding, dilation, groups)
    y = conv(x, w, **kwargs)
    g = rng.standard_normal(y.shape)
    y_torch, gradient = torch_conv_and_gradient(x, w, g, stride, padding, dilation, groups)
    close(y, y_torch)
    close(conv_transpose(g, w, input_shape=x.shape, **kwargs), gradient)


@pytest.mark.parametrize("d", [1, 3])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("path", list(PATHS))
def test_one_and_three_dimensional_depthwise_equal_torch(d, stride, path, monkeypatch):
    force(path, monkeypatch)
    rng = np.random.default_rng(d)
    spatial, kernel = ((17,), (5,)) if d == 1 else ((6, 7, 5), (3, 3, 2))
    stride, padding, dilation = (stride,) * d, (1,) * d, (1,) * (d - 1) + (2,)
    x = rng.standard_normal((2, 4, *spatial))
    w = rng.standard_normal((4, 1, *kernel))
    kwargs = geometry(stride, padding, dilation, 4)
    y = numpy_backend.conv(x, w, **kwargs)
    g = rng.standard_normal(y.shape)
    y_torch, gradient = torch_conv_and_gradient(x, w, g, stride, padding, dilation, 4)
    close(y, y_torch)
    close(numpy_backend.conv_transpose(g, w, input_shape=x.shape, **kwargs), gradient)


def test_depthwise_bias_dtype_and_asymmetric_padding():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    w = rng.standard_normal((3, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    kwargs = dict(stride=(2, 1), padding=((2, 0), (1, 3)), dilation=(1, 1), groups=3)
    y = numpy_backend.conv(x, w, bias=b, **kwargs)
    back = numpy_backend.conv_transpose(y, w, input_shape=x.shape, **kwargs)
    assert y.dtype == back.dtype == np.float32
    expected = F.conv2d(F.pad(torch.from_numpy(x), (1, 3, 2, 0)), torch.from_numpy(w),
                        torch.from_numpy(b), (2, 1), 0, 1, 3)
    np.testing.assert_allclose(y, expected.numpy(), rtol=1e-5, atol=1e-5)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    np.testing.assert_allclose(
        back, reference.conv_transpose(y.astype(np.float64), w64, input_shape=x.shape, **kwargs),
        rtol=1e-5, atol=1e-5)
    close(numpy_backend.conv(x64, w64, **kwargs), reference.conv(x64, w64, **kwargs))


@st.composite
def depthwise_case(draw):
    """Random 1-3-d depthwise geometry (asymmetric padding, strides, dilations, multiplier)."""
    d = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 5)) for _ in range(d))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(d))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(d))
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(d))
    extents = [dl * (k - 1) + 1 for k, dl in zip(kernel, dilation)]
    spatial = tuple(max(1, e - lo - hi) + draw(st.integers(0, 4))
                    for e, (lo, hi) in zip(extents, padding))
    c, multiplier, n = draw(st.integers(1, 4)), draw(st.integers(1, 2)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    return dict(x=rng.standard_normal((n, c, *spatial)),
                w=rng.standard_normal((c * multiplier, 1, *kernel)),
                geometry=dict(stride=stride, padding=padding, dilation=dilation, groups=c),
                rng=rng)


@settings(max_examples=40, deadline=None)
@given(c=depthwise_case(), path=st.sampled_from(list(PATHS)),
       block_bytes=st.sampled_from([None, 1, 2000]))
def test_random_depthwise_geometries_equal_the_reference(c, path, block_bytes):
    x, w, kwargs = c["x"], c["w"], c["geometry"]
    conv, conv_transpose = kernels(path, block_bytes)
    with pytest.MonkeyPatch.context() as monkeypatch:
        force(path, monkeypatch)
        y = conv(x, w, **kwargs)
        g = c["rng"].standard_normal(y.shape)
        back = conv_transpose(g, w, input_shape=x.shape, **kwargs)
    close(y, reference.conv(x, w, **kwargs))
    close(back, reference.conv_transpose(g, w, input_shape=x.shape, **kwargs))
