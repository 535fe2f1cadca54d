"""The NumPy kernels equal the reference kernels (float64, rtol 1e-12; max-pool indices exactly)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrp_core.backends.kernels import numpy_backend as numpy_kernels
from lrp_core.kernels import get_backend, reference

from helpers.kernel_cases import conv_kwargs, pool_kwargs


def close(actual, expected):
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12)


@st.composite
def case(draw, groups=False, dilation=True):
    """Random 1-3-d geometry (asymmetric padding, strides, dilations, groups) and arrays."""
    d = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(d))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(d))
    dil = tuple(draw(st.integers(1, 3)) if dilation else 1 for _ in range(d))
    padding = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(d))
    max_len = {1: 12, 2: 8, 3: 5}[d]
    extents = [dl * (k - 1) + 1 for k, dl in zip(kernel, dil)]
    spatial = tuple(draw(st.integers(max(1, e - lo - hi), max(e, max_len)))
                    for e, (lo, hi) in zip(extents, padding))
    g = draw(st.integers(1, 3)) if groups else 1
    channels, out_channels = g * draw(st.integers(1, 3)), g * draw(st.integers(1, 3))
    n = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    return dict(x=rng.standard_normal((n, channels, *spatial)),
                w=rng.standard_normal((out_channels, channels // g, *kernel)),
                kernel=kernel, stride=stride, padding=padding, dilation=dil, groups=g, rng=rng)


def test_registry_picks_the_numpy_kernels():
    assert get_backend(np) is numpy_kernels.BACKEND


@given(c=case(groups=True))
def test_conv_and_its_transpose(c):
    x, w = c["x"], c["w"]
    y = numpy_kernels.conv(x, w, **conv_kwargs(c))
    close(y, reference.conv(x, w, **conv_kwargs(c)))
    cotangent = c["rng"].standard_normal(y.shape)
    close(numpy_kernels.conv_transpose(cotangent, w, input_shape=x.shape, **conv_kwargs(c)),
          reference.conv_transpose(cotangent, w, input_shape=x.shape, **conv_kwargs(c)))


@given(c=case(), ceil_mode=st.booleans())
def test_max_pool_and_its_transpose(c, ceil_mode):
    x = np.round(c["x"])  # ties
    y, index = numpy_kernels.max_pool(x, ceil_mode=ceil_mode, **pool_kwargs(c))
    y_ref, index_ref = reference.max_pool(x, ceil_mode=ceil_mode, **pool_kwargs(c))
    np.testing.assert_array_equal(y, y_ref)
    assert index.dtype == index_ref.dtype
    np.testing.assert_array_equal(index, index_ref)
    cotangent = c["rng"].standard_normal(y.shape)
    close(numpy_kernels.max_pool_transpose(cotangent, index, input_shape=x.shape, **pool_kwargs(c)),
          reference.max_pool_transpose(cotangent, index, input_shape=x.shape, **pool_kwargs(c)))


@given(c=case(dilation=False), ceil_mode=st.booleans(), count_include_pad=st.booleans())
def test_avg_pool_and_its_transpose(c, ceil_mode, count_include_pad):
    x = c["x"]
    kwargs = dict(ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                  **pool_kwargs(c, dilation=False))
    y = numpy_kernels.avg_pool(x, **kwargs)
    close(y, reference.avg_pool(x, **kwargs))
    cotangent = c["rng"].standard_normal(y.shape)
    close(numpy_kernels.avg_pool_transpose(cotangent, input_shape=x.shape, **kwargs),
          reference.avg_pool_transpose(cotangent, input_shape=x.shape, **kwargs))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_dtype_is_kept(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 6, 5)).astype(dtype)
    w = rng.standard_normal((2, 2, 3, 3)).astype(dtype)
    geometry = dict(stride=(2, 1), padding=((1, 0), (2, 1)), dilation=(1, 2), groups=2)
    y = numpy_kernels.conv(x, w, **geometry)
    back = numpy_kernels.conv_transpose(y, w, input_shape=x.shape, **geometry)
    pool = dict(kernel=(2, 3), stride=(2, 2), padding=((0, 1), (1, 1)))
    m, index = numpy_kernels.max_pool(x, dilation=(1, 1), ceil_mode=True, **pool)
    m_back = numpy_kernels.max_pool_transpose(m, index, dilation=(1, 1), input_shape=x.shape,
                                              **pool)
    a = numpy_kernels.avg_pool(x, ceil_mode=True, count_include_pad=True, **pool)
    a_back = numpy_kernels.avg_pool_transpose(a, ceil_mode=True, count_include_pad=True,
                                              input_shape=x.shape, **pool)
    for result in (y, back, m, m_back, a, a_back):
        assert result.dtype == dtype
    tolerance = 1e-5 if dtype == np.float32 else 2e-2
    np.testing.assert_allclose(y, reference.conv(x, w, **geometry), rtol=tolerance, atol=tolerance)


def test_padding_never_wins_and_integers_work():
    smallest = np.iinfo(np.int16).min
    x = np.array([[[smallest, 5, smallest]]], dtype=np.int16)
    kwargs = dict(kernel=(2,), stride=(2,), padding=((1, 1),), dilation=(1,), ceil_mode=False)
    y, index = numpy_kernels.max_pool(x, **kwargs)
    np.testing.assert_array_equal(y, [[[smallest, 5]]])
    np.testing.assert_array_equal(index, [[[1, 0]]])
    assert y.dtype == np.int16
