"""The torch kernels against the pure array-API reference (the oracle), on torch tensors:
1-, 2- and 3-d, strides, symmetric and asymmetric padding, dilation, groups, ceil_mode,
count_include_pad; the tie rule of max pooling (first maximum in row-major window order); the
adjoint identities; the registry, ``to_numpy``, ``erf`` and the compute context."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import array_api_compat  # noqa: E402

from lrp_core.backends.kernels import torch_backend as tk  # noqa: E402
from lrp_core.kernels import get_backend, reference, special  # noqa: E402
from lrp_core.kernels.shapes import normalize_padding, output_spatial_shape  # noqa: E402

PADDINGS = [0, 1, "asym"]  # "asym": (1, 2) on the first axis, (2, 0) on the others


def _padding(kind, d):
    if kind == "asym":
        return normalize_padding(((1, 2),) + ((2, 0),) * (d - 1), d)
    return normalize_padding(kind, d)


def _geometries(d, dilations=(1, 2)):
    for k, s, pad, dil in itertools.product((1, 2, 3), (1, 2), PADDINGS, dilations):
        yield pytest.param(d, k, s, pad, dil, id=f"{d}d-k{k}-s{s}-p{pad}-d{dil}")


def _rng(*key):
    return np.random.default_rng(abs(hash(key)) % 2**32)


def _tensor(rng, shape, dtype=torch.float64):
    return torch.tensor(rng.standard_normal(shape), dtype=dtype)


def _fits(spatial, k, s, padding, dil, ceil=False):
    try:
        output_spatial_shape(spatial, (k,) * len(spatial), (s,) * len(spatial), padding,
                             (dil,) * len(spatial), ceil)
        return True
    except ValueError:
        return False


ALL = [g for d in (1, 2, 3) for g in _geometries(d)]


@pytest.mark.parametrize("d, k, s, pad, dil", ALL)
@pytest.mark.parametrize("groups", [1, 2])
def test_conv_and_its_transpose_equal_the_reference(d, k, s, pad, dil, groups):
    rng = _rng("conv", d, k, s, pad, dil, groups)
    spatial = (7, 6, 5)[:d]
    padding = _padding(pad, d)
    if not _fits(spatial, k, s, padding, dil):
        pytest.skip("the kernel does not fit")
    x = _tensor(rng, (2, 4, *spatial))
    w = _tensor(rng, (6, 4 // groups, *(k,) * d))
    geometry = dict(stride=(s,) * d, padding=padding, dilation=(dil,) * d, groups=groups)
    y = tk.conv(x, w, **geometry)
    torch.testing.assert_close(y, reference.conv(x, w, **geometry), rtol=1e-12, atol=1e-12)
    g = _tensor(rng, tuple(y.shape))
    xt = tk.conv_transpose(g, w, input_shape=tuple(x.shape), **geometry)
    torch.testing.assert_close(
        xt, reference.conv_transpose(g, w, input_shape=tuple(x.shape), **geometry),
        rtol=1e-12, atol=1e-12)
    # the adjoint identity <conv(x), g> = <x, conv_transpose(g)>
    assert math.isclose(float((y * g).sum()), float((x * xt).sum()), rel_tol=1e-10)


@pytest.mark.parametrize("d, k, s, pad, dil", ALL)
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_max_pool_and_its_transpose_equal_the_reference(d, k, s, pad, dil, ceil_mode):
    rng = _rng("max", d, k, s, pad, dil, ceil_mode)
    spatial = (7, 6, 5)[:d]
    padding = _padding(pad, d)
    if not _fits(spatial, k, s, padding, dil, ceil_mode):
        pytest.skip("the window does not fit")
    geometry = dict(kernel=(k,) * d, stride=(s,) * d, padding=padding, dilation=(dil,) * d)
    ties = torch.tensor(rng.integers(0, 3, (2, 3, *spatial)), dtype=torch.float64)  # many ties
    for x in (_tensor(rng, (2, 3, *spatial)), ties, ties.float()):
        y, index = tk.max_pool(x, ceil_mode=ceil_mode, **geometry)
        y_ref, index_ref = reference.max_pool(x, ceil_mode=ceil_mode, **geometry)
        assert torch.equal(y, y_ref)
        assert torch.equal(index, index_ref), "the tap index of the first maximum (row-major)"
        g = _tensor(rng, tuple(y.shape), x.dtype)
        torch.testing.assert_close(
            tk.max_pool_transpose(g, index, input_shape=tuple(x.shape), **geometry),
            reference.max_pool_transpose(g, index_ref, input_shape=tuple(x.shape), **geometry))


@pytest.mark.parametrize("d, k, s, pad, dil",
                         [g for d in (1, 2, 3) for g in _geometries(d, dilations=(1,))])
@pytest.mark.parametrize("ceil_mode, count_include_pad",
                         [(False, True), (True, False), (True, True)])
def test_avg_pool_and_its_transpose_equal_the_reference(d, k, s, pad, dil, ceil_mode,
                                                        count_include_pad):
    rng = _rng("avg", d, k, s, pad, ceil_mode, count_include_pad)
    spatial = (7, 6, 5)[:d]
    padding = _padding(pad, d)
    if not _fits(spatial, k, s, padding, 1, ceil_mode):
        pytest.skip("the window does not fit")
    geometry = dict(kernel=(k,) * d, stride=(s,) * d, padding=padding, ceil_mode=ceil_mode,
                    count_include_pad=count_include_pad)
    x = _tensor(rng, (2, 3, *spatial))
    y = tk.avg_pool(x, **geometry)
    torch.testing.assert_close(y, reference.avg_pool(x, **geometry), rtol=1e-12, atol=1e-12)
    g = _tensor(rng, tuple(y.shape))
    xt = tk.avg_pool_transpose(g, input_shape=tuple(x.shape), **geometry)
    torch.testing.assert_close(
        xt, reference.avg_pool_transpose(g, input_shape=tuple(x.shape), **geometry),
        rtol=1e-12, atol=1e-12)
    assert math.isclose(float((y * g).sum()), float((x * xt).sum()), rel_tol=1e-10)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_max_pool_ties_go_to_the_first_maximum_in_row_major_order(memory_format):
    x = torch.zeros(1, 2, 4, 4, dtype=torch.float32).contiguous(memory_format=memory_format)
    x[0, 1, 1, 1] = x[0, 1, 1, 2] = x[0, 1, 2, 1] = 1.0  # three tied maxima in one 3x3 window
    y, index = tk.max_pool(x, kernel=(3, 3), stride=(1, 1), padding=((0, 0), (0, 0)),
                           dilation=(1, 1), ceil_mode=False)
    assert index[0, 0].tolist() == [[0, 0], [0, 0]]  # all-zero windows: the first tap
    assert index[0, 1, 0, 0].item() == 4  # window at (0, 0): taps (1, 1), (1, 2), (2, 1) -> 4 first
    assert index[0, 1, 0, 1].item() == 3  # window at (0, 1): taps (1, 0), (1, 1), (2, 0) -> 3 first
    routed = tk.max_pool_transpose(torch.ones_like(y), index, kernel=(3, 3), stride=(1, 1),
                                   padding=((0, 0), (0, 0)), dilation=(1, 1),
                                   input_shape=tuple(x.shape))
    # all four windows pick (1, 1)
    assert routed[0, 1, 1, 1].item() == 4 and routed[0, 1].sum().item() == 4


def test_kernels_do_not_write_into_their_inputs():
    rng = _rng("inputs")
    x, w = _tensor(rng, (2, 4, 6, 6)), _tensor(rng, (3, 4, 3, 3))
    versions = (x._version, w._version)
    geometry = dict(stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1)
    y = tk.conv(x, w, **geometry)
    tk.conv_transpose(y, w, input_shape=tuple(x.shape), **geometry)
    _, index = tk.max_pool(x, kernel=(2, 2), stride=(2, 2), padding=((0, 0), (0, 0)),
                           dilation=(1, 1), ceil_mode=False)
    assert (x._version, w._version) == versions


def test_registry_uses_the_torch_kernels():
    xp = array_api_compat.array_namespace(torch.zeros(1))
    assert get_backend(xp) is tk.BACKEND


def test_to_numpy_erf_and_compute_context():
    x = torch.linspace(-4, 4, 101, dtype=torch.float64)
    array = tk.to_numpy(x)
    assert isinstance(array, np.ndarray) and np.shares_memory(array, x.numpy())
    assert tk.to_numpy(x.bfloat16()).dtype == np.float32
    assert tk.to_numpy(x.requires_grad_(True)).dtype == np.float64
    np.testing.assert_allclose(tk.erf(x.detach()).numpy(), special.erf(x.detach()).numpy(),
                               rtol=1e-13, atol=1e-15)
    with tk.compute_context():
        assert torch.is_inference_mode_enabled()


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_max_pool_linearized_keeps_torchs_indices_and_routes_as_the_reference(d, ceil_mode):
    """The torch backend's max_pool_linearized (torch's own flat indices, no conversion) gives
    the reference's pooling and routing, ties included (torch keeps the first maximum)."""
    from lrp_core.backends.kernels import torch_backend

    g = torch.Generator().manual_seed(d)
    spatial = (11, 9, 7)[:d]
    for x in (torch.randn(2, 3, *spatial, generator=g, dtype=torch.float64),
              torch.randint(0, 3, (2, 3, *spatial), generator=g).double()):  # ties
        geometry = dict(kernel=(3,) * d, stride=(2,) * d, padding=((1, 1),) * d,
                        dilation=(1,) * d, ceil_mode=ceil_mode)
        y, pullback = torch_backend.max_pool_linearized(x, **geometry)
        y_ref, index_ref = reference.max_pool(x, **geometry)
        assert torch.equal(y, y_ref)
        cotangent = torch.randn(y.shape, generator=g, dtype=torch.float64)
        del geometry["ceil_mode"]
        expected = reference.max_pool_transpose(cotangent, index_ref, input_shape=tuple(x.shape),
                                                **geometry)
        torch.testing.assert_close(pullback(cotangent), expected, rtol=0, atol=1e-14)
