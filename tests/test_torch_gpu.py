"""The torch path on CUDA: the same kernels and models on the GPU give the CPU's relevance, as a
tensor of the input's dtype on the input's device. Skipped without CUDA."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import lrp_core as lrp  # noqa: E402
from lrp_core.backends.kernels import torch_backend as tk  # noqa: E402
from lrp_core.kernels import reference  # noqa: E402

from helpers.torch_models import (  # noqa: E402
    assert_relevance_close,
    assert_untouched,
    gradient_times_input,
    reinitialise,
    snapshot,
)

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

CUDA = "cuda"


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernels_on_cuda_equal_the_reference(d, dtype):
    g = torch.Generator().manual_seed(d)
    spatial = (9, 8, 7)[:d]
    x = torch.randn(2, 4, *spatial, generator=g, dtype=dtype)
    w = torch.randn(6, 2, *(3,) * d, generator=g, dtype=dtype)
    ties = torch.randint(0, 3, x.shape, generator=g).to(dtype)
    conv = dict(stride=(2,) * d, padding=((1, 2),) + ((1, 1),) * (d - 1), dilation=(1,) * d,
                groups=2)
    pool = dict(kernel=(3,) * d, stride=(2,) * d, padding=((1, 1),) * d, dilation=(1,) * d)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    y = tk.conv(x.to(CUDA), w.to(CUDA), **conv)
    torch.testing.assert_close(y.cpu(), reference.conv(x, w, **conv), **tol)
    s = torch.randn(y.shape, generator=g, dtype=dtype)
    torch.testing.assert_close(
        tk.conv_transpose(s.to(CUDA), w.to(CUDA), input_shape=tuple(x.shape), **conv).cpu(),
        reference.conv_transpose(s, w, input_shape=tuple(x.shape), **conv), **tol)
    for data in (x, ties):
        yy, index = tk.max_pool(data.to(CUDA), ceil_mode=True, **pool)
        y_ref, index_ref = reference.max_pool(data, ceil_mode=True, **pool)
        assert torch.equal(yy.cpu(), y_ref) and torch.equal(index.cpu(), index_ref)
        gg = torch.randn(yy.shape, generator=g, dtype=dtype)
        torch.testing.assert_close(
            tk.max_pool_transpose(gg.to(CUDA), index, input_shape=tuple(data.shape), **pool).cpu(),
            reference.max_pool_transpose(gg, index_ref, input_shape=tuple(data.shape), **pool),
            **tol)
    avg = dict(kernel=(3,) * d, stride=(2,) * d, padding=((1, 1),) * d, ceil_mode=True,
               count_include_pad=False)
    ya = tk.avg_pool(x.to(CUDA), **avg)
    torch.testing.assert_close(ya.cpu(), reference.avg_pool(x, **avg), **tol)
    ga = torch.randn(ya.shape, generator=g, dtype=dtype)
    torch.testing.assert_close(
        tk.avg_pool_transpose(ga.to(CUDA), input_shape=tuple(x.shape), **avg).cpu(),
        reference.avg_pool_transpose(ga, input_shape=tuple(x.shape), **avg), **tol)


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    cpu = reinitialise(torchvision.models.resnet18(weights=None).double().eval(), seed=1)
    return cpu, copy.deepcopy(cpu).to(CUDA)


@pytest.mark.parametrize("preset", ["ZeroRule", "EpsilonPlusFlat", "EpsilonGammaBox",
                                    "EpsilonAlpha2Beta1"])
def test_resnet18_on_cuda_equals_cpu(resnet, preset):
    cpu, gpu = resnet
    composite = {"ZeroRule": lrp.ZeroRule(), "EpsilonPlusFlat": lrp.EpsilonPlusFlat(),
                 "EpsilonGammaBox": lrp.EpsilonGammaBox(0.0, 1.0),
                 "EpsilonAlpha2Beta1": lrp.EpsilonAlpha2Beta1()}[preset]
    before = snapshot(gpu)
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    expected = lrp.LRP(cpu, composite)(x)
    analyzer = lrp.LRP(gpu, composite)
    on_gpu = analyzer(x.to(CUDA))
    assert on_gpu.val.device.type == "cuda" and on_gpu.val.dtype == torch.float64
    assert on_gpu.output_selection == expected.output_selection
    assert_relevance_close(on_gpu.val, expected.val, rtol=1e-9)
    # the same analyzer explains NumPy (host) input: weights copied to the host once
    on_host = analyzer(x.numpy())
    assert isinstance(on_host.val, np.ndarray)
    assert_relevance_close(on_host.val, expected.val, rtol=1e-9)
    # float32 on the GPU
    x32 = x.float().to(CUDA)
    assert lrp.LRP(gpu, composite)(x32).val.dtype == torch.float32
    assert_untouched(gpu, before)


def test_lrp0_on_cuda_equals_gradient_times_input(resnet):
    _, gpu = resnet
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64,
                   generator=torch.Generator().manual_seed(3)).to(CUDA)
    expl = lrp.LRP(gpu, lrp.EpsilonRule(1e-100), normalize_output_relevance=False)(x)
    assert_relevance_close(expl.val, gradient_times_input(gpu, x, expl.output_selection), rtol=1e-8)
