"""The pure array-API kernels against oracles that do not share their code.

Oracles: direct-definition loops over output positions (plain NumPy, float64, written here);
the adjoint identity ``<A x, y> = <x, Aᵀ y>`` for each transpose; and ``torch.nn.functional``
with autograd when torch is installed. Each runs on NumPy, array-api-strict and (if installed)
torch arrays. Output sizes come from :mod:`lrp_core.kernels.shapes`, tested on its own.
"""

import array_api_strict
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrp_core.kernels import reference
from lrp_core.kernels.shapes import output_spatial_shape

from helpers.kernel_cases import conv_kwargs, pool_kwargs

NAMESPACES = ["numpy", "array_api_strict", "torch"]


def to_namespace(a, name):
    if name == "numpy":
        return a
    if name == "array_api_strict":
        return array_api_strict.asarray(a)
    torch = pytest.importorskip("torch")
    return torch.asarray(a)


def to_numpy(a):
    return np.from_dlpack(a) if not isinstance(a, np.ndarray) else a


# ---------------------------------------------------------------------------------------------
# direct definitions: one loop over output positions, one over taps


def padded_position(p, t, stride, padding, dilation):
    """The input position tap ``t`` of window ``p`` reads (it may lie in the padding)."""
    return tuple(s * pi + dl * ti - lo
                 for pi, ti, s, (lo, _), dl in zip(p, t, stride, padding, dilation))


def inside(pos, lower, upper):
    return all(lo <= q < hi for q, lo, hi in zip(pos, lower, upper))


def naive_conv(x, w, stride, padding, dilation, groups):
    n, c, *spatial = x.shape
    o, c_group, *kernel = w.shape
    o_group = o // groups
    out = output_spatial_shape(spatial, kernel, stride, padding, dilation)
    y = np.zeros((n, o, *out))
    for p in np.ndindex(*out):
        for t in np.ndindex(*kernel):
            pos = padded_position(p, t, stride, padding, dilation)
            if not inside(pos, [0] * len(pos), spatial):
                continue
            for oc in range(o):
                group = slice(oc // o_group * c_group, (oc // o_group + 1) * c_group)
                y[(slice(None), oc, *p)] += x[(slice(None), group, *pos)] @ w[(oc, slice(None), *t)]
    return y


def naive_max_pool(x, kernel, stride, padding, dilation, ceil_mode):
    """Per window, the maximum of the real cells and the row-major tap of its first occurrence."""
    n, c, *spatial = x.shape
    out = output_spatial_shape(spatial, kernel, stride, padding, dilation, ceil_mode)
    y = np.full((n, c, *out), -np.inf)
    index = np.zeros((n, c, *out), dtype=np.int64)
    for b, ch in np.ndindex(n, c):
        for p in np.ndindex(*out):
            for tap_number, t in enumerate(np.ndindex(*kernel)):
                pos = padded_position(p, t, stride, padding, dilation)
                if inside(pos, [0] * len(pos), spatial) and x[(b, ch, *pos)] > y[(b, ch, *p)]:
                    y[(b, ch, *p)], index[(b, ch, *p)] = x[(b, ch, *pos)], tap_number
    return y, index


def naive_gather(x, index, kernel, stride, padding, dilation):
    """The max pool linearised at ``index``: each window's selected cell (0 if it is padding)."""
    n, c, *spatial = x.shape
    y = np.zeros(index.shape)
    taps = list(np.ndindex(*kernel))
    for b, ch, *p in np.ndindex(*index.shape):
        pos = padded_position(p, taps[index[(b, ch, *p)]], stride, padding, dilation)
        if inside(pos, [0] * len(pos), spatial):
            y[(b, ch, *p)] = x[(b, ch, *pos)]
    return y


def naive_avg_pool(x, kernel, stride, padding, ceil_mode, count_include_pad):
    """Sum of the real cells over the cells counted: per axis those inside the padded axis
    (count_include_pad) or the input, multiplied over the axes (PyTorch)."""
    n, c, *spatial = x.shape
    ones = [1] * len(kernel)
    out = output_spatial_shape(spatial, kernel, stride, padding, ones, ceil_mode)
    lower = [-lo if count_include_pad else 0 for lo, _ in padding]
    upper = [n_ + (hi if count_include_pad else 0) for n_, (_, hi) in zip(spatial, padding)]
    y = np.zeros((n, c, *out))
    for p in np.ndindex(*out):
        total, count = 0.0, 1
        for axis, k in enumerate(kernel):
            count *= sum(lower[axis] <= stride[axis] * p[axis] + t - padding[axis][0] < upper[axis]
                         for t in range(k))
        for t in np.ndindex(*kernel):
            pos = padded_position(p, t, stride, padding, ones)
            if inside(pos, [0] * len(pos), spatial):
                total = total + x[(slice(None), slice(None), *pos)]
        y[(slice(None), slice(None), *p)] = total / max(count, 1)  # no cell counted: 0, not 0/0
    return y


# ---------------------------------------------------------------------------------------------
# geometries


@st.composite
def geometry(draw, groups=False, dilation=True, torch_padding=False):
    """Random 1-3-d window geometry, and an input shape the windows fit."""
    d = draw(st.integers(1, 3))
    max_len = {1: 9, 2: 7, 3: 5}[d]
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(d))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(d))
    dil = tuple(draw(st.integers(1, 2)) if dilation else 1 for _ in range(d))
    reach = [dl * (k - 1) for k, dl in zip(kernel, dil)]
    if torch_padding:  # symmetric, at most half the kernel; the input at least the kernel
        padding = tuple((p, p) for p in (draw(st.integers(0, k // 2)) for k in kernel))
        lowest = [r + 1 for r in reach]
    else:
        padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(d))
        lowest = [max(1, r + 1 - lo - hi) for r, (lo, hi) in zip(reach, padding)]
    spatial = tuple(draw(st.integers(low, max(low, max_len))) for low in lowest)
    g = draw(st.integers(1, 3)) if groups else 1
    channels = g * draw(st.integers(1, 2))
    shape = (draw(st.integers(1, 2)), channels, *spatial)
    return dict(shape=shape, kernel=kernel, stride=stride, padding=padding, dilation=dil, groups=g)


def conv_arrays(case, seed):
    rng = np.random.default_rng(seed)
    g = case["groups"]
    x = rng.standard_normal(case["shape"])
    w = rng.standard_normal((g * (1 + seed % 2), case["shape"][1] // g, *case["kernel"]))
    return x, w


# ---------------------------------------------------------------------------------------------
# convolution


@pytest.mark.parametrize("name", NAMESPACES)
@given(case=geometry(groups=True), seed=st.integers(0, 2**16))
def test_conv_matches_direct_definition(name, case, seed):
    x, w = conv_arrays(case, seed)
    y = reference.conv(to_namespace(x, name), to_namespace(w, name), **conv_kwargs(case))
    np.testing.assert_allclose(to_numpy(y), naive_conv(x, w, **conv_kwargs(case)), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("name", NAMESPACES)
@given(case=geometry(groups=True), seed=st.integers(0, 2**16))
def test_conv_transpose_is_the_adjoint(name, case, seed):
    x, w = conv_arrays(case, seed)
    y = naive_conv(x, w, **conv_kwargs(case))
    cotangent = np.random.default_rng(seed + 1).standard_normal(y.shape)
    back = reference.conv_transpose(to_namespace(cotangent, name), to_namespace(w, name),
                                    input_shape=x.shape, **conv_kwargs(case))
    assert tuple(back.shape) == x.shape
    np.testing.assert_allclose(np.vdot(x, to_numpy(back)), np.vdot(y, cotangent), rtol=1e-10,
                               atol=1e-10)


def test_conv_transpose_leaves_unread_inputs_zero():
    # length 6, kernel 2, stride 3: inputs 2 and 5 are read by no window
    w = np.ones((1, 1, 2))
    back = reference.conv_transpose(np.ones((1, 1, 2)), w, stride=(3,), padding=((0, 0),),
                                    dilation=(1,), groups=1, input_shape=(1, 1, 6))
    np.testing.assert_array_equal(back, [[[1, 1, 0, 1, 1, 0]]])


def test_conv_transpose_checks_the_cotangent_shape():
    with pytest.raises(ValueError, match="conv_transpose"):
        reference.conv_transpose(np.ones((1, 1, 3)), np.ones((1, 1, 2)), stride=(1,),
                                 padding=((0, 0),), dilation=(1,), groups=1, input_shape=(1, 1, 6))


# ---------------------------------------------------------------------------------------------
# max pooling


@pytest.mark.parametrize("name", NAMESPACES)
@given(case=geometry(), ceil_mode=st.booleans(), seed=st.integers(0, 2**16))
def test_max_pool_matches_direct_definition_with_ties(name, case, ceil_mode, seed):
    # small integers: many ties, which go to the first maximum in row-major window order
    x = np.random.default_rng(seed).integers(-3, 3, case["shape"]).astype(np.float64)
    y, index = reference.max_pool(to_namespace(x, name), ceil_mode=ceil_mode, **pool_kwargs(case))
    y_ref, index_ref = naive_max_pool(x, ceil_mode=ceil_mode, **pool_kwargs(case))
    np.testing.assert_array_equal(to_numpy(y), y_ref)
    np.testing.assert_array_equal(to_numpy(index), index_ref)
    np.testing.assert_array_equal(naive_gather(x, index_ref, **pool_kwargs(case)),
                                  np.where(np.isfinite(y_ref), y_ref, 0))


@pytest.mark.parametrize("name", NAMESPACES)
@given(case=geometry(), ceil_mode=st.booleans(), seed=st.integers(0, 2**16))
def test_max_pool_transpose_is_the_adjoint(name, case, ceil_mode, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 3, case["shape"]).astype(np.float64)
    _, index = naive_max_pool(x, ceil_mode=ceil_mode, **pool_kwargs(case))
    probe, cotangent = rng.standard_normal(x.shape), rng.standard_normal(index.shape)
    back = reference.max_pool_transpose(to_namespace(cotangent, name), to_namespace(index, name),
                                        input_shape=x.shape, **pool_kwargs(case))
    np.testing.assert_allclose(np.vdot(probe, to_numpy(back)),
                               np.vdot(naive_gather(probe, index, **pool_kwargs(case)), cotangent),
                               rtol=1e-10, atol=1e-10)


def test_max_pool_padding_never_wins_over_real_cells():
    # every real cell is -inf or the smallest integer: still a real cell is selected
    kwargs = dict(kernel=(3,), stride=(1,), padding=((1, 1),), dilation=(1,), ceil_mode=False)
    x = np.array([[[-np.inf, -np.inf]]])
    y, index = reference.max_pool(x, **kwargs)
    np.testing.assert_array_equal(index, [[[1, 0]]])  # window 0 reads (pad, x0, x1)
    assert np.all(y == -np.inf)
    smallest = np.iinfo(np.int32).min
    y, index = reference.max_pool(np.full((1, 1, 2), smallest, dtype=np.int32), **kwargs)
    np.testing.assert_array_equal(index, [[[1, 0]]])
    assert y.dtype == np.int32 and np.all(y == smallest)


def test_max_pool_nan_is_the_maximum():
    x = np.array([[[1.0, np.nan, 3.0, np.nan]]])
    y, index = reference.max_pool(x, kernel=(2,), stride=(2,), padding=((0, 0),), dilation=(1,),
                                  ceil_mode=False)
    assert np.all(np.isnan(y))
    np.testing.assert_array_equal(index, [[[1, 1]]])


# ---------------------------------------------------------------------------------------------
# average pooling


@pytest.mark.parametrize("name", NAMESPACES)
@given(case=geometry(dilation=False), ceil_mode=st.booleans(), count_include_pad=st.booleans(),
       seed=st.integers(0, 2**16))
def test_avg_pool_matches_direct_definition(name, case, ceil_mode, count_include_pad, seed):
    x = np.random.default_rng(seed).standard_normal(case["shape"])
    kwargs = dict(ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                  **pool_kwargs(case, dilation=False))
    y = reference.avg_pool(to_namespace(x, name), **kwargs)
    np.testing.assert_allclose(to_numpy(y), naive_avg_pool(x, **kwargs), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMESPACES)
@given(case=geometry(dilation=False), ceil_mode=st.booleans(), count_include_pad=st.booleans(),
       seed=st.integers(0, 2**16))
def test_avg_pool_transpose_is_the_adjoint(name, case, ceil_mode, count_include_pad, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(case["shape"])
    kwargs = dict(ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                  **pool_kwargs(case, dilation=False))
    y = naive_avg_pool(x, **kwargs)
    cotangent = rng.standard_normal(y.shape)
    back = reference.avg_pool_transpose(to_namespace(cotangent, name), input_shape=x.shape,
                                        **kwargs)
    np.testing.assert_allclose(np.vdot(x, to_numpy(back)), np.vdot(y, cotangent), rtol=1e-10,
                               atol=1e-10)


# ---------------------------------------------------------------------------------------------
# dtypes


@pytest.mark.parametrize("name", NAMESPACES)
def test_float32_stays_float32(name):
    rng = np.random.default_rng(0)
    x = to_namespace(rng.standard_normal((2, 4, 5, 5)).astype(np.float32), name)
    w = to_namespace(rng.standard_normal((6, 2, 3, 3)).astype(np.float32), name)
    geometry_ = dict(stride=(2, 1), padding=((1, 0), (1, 1)), dilation=(1, 1))
    y = reference.conv(x, w, groups=2, **geometry_)
    back = reference.conv_transpose(y, w, groups=2, input_shape=tuple(x.shape), **geometry_)
    pool = dict(kernel=(3, 2), stride=(2, 2), padding=((1, 1), (0, 1)))
    m, index = reference.max_pool(x, dilation=(1, 1), ceil_mode=True, **pool)
    m_back = reference.max_pool_transpose(m, index, dilation=(1, 1), input_shape=tuple(x.shape),
                                          **pool)
    a = reference.avg_pool(x, ceil_mode=True, count_include_pad=False, **pool)
    a_back = reference.avg_pool_transpose(a, ceil_mode=True, count_include_pad=False,
                                          input_shape=tuple(x.shape), **pool)
    for result in (y, back, m, m_back, a, a_back):
        assert result.dtype == x.dtype
    assert "int" in str(index.dtype)


# ---------------------------------------------------------------------------------------------
# torch.nn.functional (symmetric padding within torch's limits)


def _torch_ops():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    return torch, F


@given(case=geometry(groups=True), seed=st.integers(0, 2**16))
def test_conv_and_its_transpose_match_torch(case, seed):
    torch, F = _torch_ops()
    d = len(case["kernel"])
    x, w = conv_arrays(case, seed)
    xt = torch.tensor(x, requires_grad=True)
    # torch pads symmetrically; pad (lo, hi) per axis first (F.pad lists the last axis first)
    widths = [v for lo_hi in reversed(case["padding"]) for v in lo_hi]
    conv = getattr(F, f"conv{d}d")
    yt = conv(F.pad(xt, widths), torch.tensor(w), stride=case["stride"], dilation=case["dilation"],
              groups=case["groups"])
    cotangent = np.random.default_rng(seed).standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(cotangent))
    np.testing.assert_allclose(reference.conv(x, w, **conv_kwargs(case)), yt.detach().numpy(),
                               rtol=1e-12, atol=1e-12)
    back = reference.conv_transpose(cotangent, w, input_shape=x.shape, **conv_kwargs(case))
    np.testing.assert_allclose(back, xt.grad.numpy(), rtol=1e-12, atol=1e-12)


@given(case=geometry(torch_padding=True), ceil_mode=st.booleans(), seed=st.integers(0, 2**16))
def test_max_pool_and_its_transpose_match_torch(case, ceil_mode, seed):
    torch, F = _torch_ops()
    d = len(case["kernel"])
    x = np.random.default_rng(seed).standard_normal(case["shape"])
    xt = torch.tensor(x, requires_grad=True)
    pool = getattr(F, f"max_pool{d}d")
    yt = pool(xt, case["kernel"], case["stride"], [lo for lo, _ in case["padding"]],
              case["dilation"], ceil_mode=ceil_mode)
    cotangent = np.random.default_rng(seed + 1).standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(cotangent))
    y, index = reference.max_pool(x, ceil_mode=ceil_mode, **pool_kwargs(case))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    back = reference.max_pool_transpose(cotangent, index, input_shape=x.shape, **pool_kwargs(case))
    np.testing.assert_allclose(back, xt.grad.numpy(), rtol=1e-12, atol=1e-12)


@given(case=geometry(dilation=False, torch_padding=True), ceil_mode=st.booleans(),
       count_include_pad=st.booleans(), seed=st.integers(0, 2**16))
def test_avg_pool_and_its_transpose_match_torch(case, ceil_mode, count_include_pad, seed):
    torch, F = _torch_ops()
    d = len(case["kernel"])
    x = np.random.default_rng(seed).standard_normal(case["shape"])
    xt = torch.tensor(x, requires_grad=True)
    pool = getattr(F, f"avg_pool{d}d")
    yt = pool(xt, case["kernel"], case["stride"], [lo for lo, _ in case["padding"]],
              ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    cotangent = np.random.default_rng(seed + 1).standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(cotangent))
    kwargs = dict(ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                  **pool_kwargs(case, dilation=False))
    np.testing.assert_allclose(reference.avg_pool(x, **kwargs), yt.detach().numpy(), rtol=1e-12,
                               atol=1e-12)
    back = reference.avg_pool_transpose(cotangent, input_shape=x.shape, **kwargs)
    np.testing.assert_allclose(back, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
