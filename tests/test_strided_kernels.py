"""The strided kernels shared by the NumPy and CuPy backends, on NumPy: with the ``as_strided``
window view CuPy takes where it has no ``sliding_window_view`` (a NumPy stand-in without it),
and the convolution with a fused bias on every backend. Oracle: the array-API reference."""

from __future__ import annotations

import types

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrp_core.backends.kernels import strided
from lrp_core.kernels import Backend, get_backend, reference

from helpers.kernel_cases import conv_kwargs, pool_kwargs


class NumpyWithoutWindowView:
    """NumPy, except that ``lib.stride_tricks`` offers only ``as_strided`` (as some CuPy
    versions): the kernels must take the fallback."""

    lib = types.SimpleNamespace(stride_tricks=types.SimpleNamespace(
        as_strided=np.lib.stride_tricks.as_strided))

    def __getattr__(self, name):
        return getattr(np, name)


STAND_IN = NumpyWithoutWindowView()


def close(actual, expected):
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12)


@st.composite
def geometry(draw):
    d = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(d))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(d))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(d))
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(d))
    spatial = tuple(dl * (k - 1) + 1 + draw(st.integers(0, 4)) for k, dl in zip(kernel, dilation))
    groups = draw(st.integers(1, 2))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((2, 2 * groups, *spatial))
    w = rng.standard_normal((2 * groups, 2, *kernel))
    return dict(x=x, w=w, kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                groups=groups, rng=rng)


def test_the_fallback_window_view_equals_numpys():
    x = np.arange(2 * 3 * 7 * 6, dtype=float).reshape(2, 3, 7, 6)
    expected = np.lib.stride_tricks.sliding_window_view(x, (3, 2), axis=(2, 3))
    np.testing.assert_array_equal(strided.strided_window_view(np, x, (3, 2), (2, 3)), expected)
    assert strided.sliding_window_view(STAND_IN, x, (3, 2), (2, 3)).shape == expected.shape
    with pytest.raises(ValueError, match="window 8 larger than axis 2"):
        strided.strided_window_view(np, x, (8, 2), (2, 3))


@given(c=geometry())
def test_kernels_with_the_fallback_equal_the_reference(c):
    x, w = c["x"], c["w"]
    y = strided.conv(STAND_IN, x, w, **conv_kwargs(c))
    close(y, reference.conv(x, w, **conv_kwargs(c)))
    cotangent = c["rng"].standard_normal(y.shape)
    close(strided.conv_transpose(STAND_IN, cotangent, w, input_shape=x.shape, **conv_kwargs(c)),
          reference.conv_transpose(cotangent, w, input_shape=x.shape, **conv_kwargs(c)))
    m, index = strided.max_pool(STAND_IN, x, ceil_mode=False, **pool_kwargs(c))
    m_ref, index_ref = reference.max_pool(x, ceil_mode=False, **pool_kwargs(c))
    np.testing.assert_array_equal(m, m_ref)
    np.testing.assert_array_equal(index, index_ref)
    kwargs = dict(ceil_mode=True, count_include_pad=False, **pool_kwargs(c, dilation=False))
    a = strided.avg_pool(STAND_IN, x, **kwargs)
    close(a, reference.avg_pool(x, **kwargs))
    close(strided.avg_pool_transpose(STAND_IN, a, input_shape=x.shape, **kwargs),
          reference.avg_pool_transpose(a, input_shape=x.shape, **kwargs))


def _backends():
    yield "reference", np, Backend()
    yield "numpy", np, get_backend(np)
    pytest.importorskip("torch")
    import array_api_compat.torch as xp_torch

    yield "torch", xp_torch, get_backend(xp_torch)


@pytest.mark.parametrize("which", ["reference", "numpy", "torch"])
def test_conv_with_a_fused_bias_equals_conv_plus_bias(which):
    name, xp, backend = next(b for b in _backends() if b[0] == which)
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 4, 7, 6)), rng.standard_normal((6, 2, 3, 2)), \
        rng.standard_normal(6)
    geometry = dict(stride=(2, 1), padding=((1, 0), (2, 1)), dilation=(1, 2), groups=2)
    expected = reference.conv(x, w, **geometry) + b[None, :, None, None]
    if name == "torch":
        import torch

        x, w, b = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
    got = backend.conv(x, w, bias=b, **geometry)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-12, atol=1e-12)
