"""lrp-core on a GPU: CuPy and torch CUDA against the NumPy float64 reference, on the
conformance suite's networks (its ``reference`` and ``batch`` properties), torchvision models,
the demo LeNet-5 and the ONNX zoo MNIST model, in float32 and float64; relevance on the input's
device; a torch model explaining CuPy input through DLPack. Marked ``gpu``: skipped (with the
reason) where CuPy or CUDA is missing, so CI on CPU stays green. ``benchmarks/gpu_check.sh``
runs these on a GPU machine."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import lrp_core as lrp
from lrp_core.models import random_lenet5

from helpers.data import data_path

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

pytestmark = pytest.mark.gpu


def _cupy():
    try:
        import cupy
    except ImportError as error:
        pytest.skip(f"CuPy does not import here: {error}")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("CuPy finds no CUDA device")
    except Exception as error:  # noqa: BLE001 - CUDARuntimeError and driver errors alike
        pytest.skip(f"CuPy finds no CUDA device: {error}")
    return cupy


def _cuda():
    if not torch.cuda.is_available():
        pytest.skip("torch finds no CUDA device")
    return "cuda"


def _to_numpy(a):
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    return _cupy().asnumpy(a) if type(a).__module__.startswith("cupy") else np.asarray(a)


def _assert_close(got, expected, dtype):
    got, expected = _to_numpy(got), np.asarray(expected)
    scale = float(np.abs(expected).max()) or 1.0
    tol = 1e-9 if dtype == "float64" else 1e-3
    assert got.shape == expected.shape
    assert float(np.abs(got - expected).max()) <= tol * scale, \
        f"max |difference| / max |relevance| = {np.abs(got - expected).max() / scale:.2e}"


PRESETS = {"zero": lrp.ZeroRule(), "epsilon_plus_flat": lrp.EpsilonPlusFlat(),
           "epsilon_gamma_box": lrp.EpsilonGammaBox(-1.0, 1.0)}


# -- the conformance suite's networks ----------------------------------------------------------
@pytest.mark.parametrize("implementation", ["lrp_core-cupy", "lrp_core-torch-cuda"])
def test_conformance_reference_and_batch_properties_hold_on_the_gpu(implementation):
    from lrp_conformance import implementations, runner

    try:
        impl = implementations.load_implementation(implementation)
    except implementations.ImplementationUnavailable as error:
        pytest.skip(str(error))
    report = runner.run(impl, properties=["reference", "batch", "conservation"],
                        presets=["zero", "epsilon_plus_flat", "epsilon_gamma_box"],
                        examples=15, seed=0, shrink=False)
    assert report.outcomes and not report.failures, "\n".join(
        f"{o.prop} / {o.preset}: {o.reason}\n{o.code}" for o in report.failures)


# -- the demo LeNet-5 and the ONNX zoo model ---------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("preset", list(PRESETS))
def test_lenet5_on_cupy_and_torch_cuda_equals_numpy(preset, dtype):
    model = random_lenet5(seed=3)
    x = np.random.default_rng(0).random((4, 1, 28, 28))
    analyzer = lrp.LRP(model, PRESETS[preset])
    expected = analyzer(x).val  # NumPy float64: the reference
    cupy = _cupy()
    on_cupy = analyzer(cupy.asarray(x.astype(dtype)))
    assert isinstance(on_cupy.val, cupy.ndarray) and str(on_cupy.val.dtype) == dtype
    _assert_close(on_cupy.val, expected, dtype)
    on_cuda = analyzer(torch.as_tensor(x.astype(dtype), device=_cuda()))
    assert on_cuda.val.device.type == "cuda"
    _assert_close(on_cuda.val, expected, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_zoo_mnist_model_on_the_gpu(dtype):
    path = data_path("onnx-model-zoo", "mnist-8.onnx")
    x = np.random.default_rng(1).random((3, 1, 28, 28))
    analyzer = lrp.LRP(str(path), lrp.EpsilonPlusFlat())
    expected = analyzer(x).val
    _assert_close(analyzer(_cupy().asarray(x.astype(dtype))).val, expected, dtype)
    _assert_close(analyzer(torch.as_tensor(x.astype(dtype), device=_cuda())).val, expected,
                  dtype)


# -- torchvision models ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["vgg11", "resnet18"])
def test_torchvision_models_on_the_gpu(name, dtype):
    torch.manual_seed(0)
    cpu = getattr(torchvision.models, name)(weights=None).double().eval()
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    expected = lrp.LRP(cpu, lrp.EpsilonPlusFlat())(x.numpy()).val
    gpu = copy.deepcopy(cpu).to(getattr(torch, dtype)).to(_cuda())
    on_cuda = lrp.LRP(gpu, lrp.EpsilonPlusFlat())(x.to(getattr(torch, dtype)).to("cuda"))
    _assert_close(on_cuda.val, expected, dtype)
    # the same CUDA model explains CuPy input: weights exchanged through DLPack, once
    cupy = _cupy()
    analyzer = lrp.LRP(gpu, lrp.EpsilonPlusFlat())
    on_cupy = analyzer(cupy.asarray(x.numpy().astype(dtype)))
    assert isinstance(on_cupy.val, cupy.ndarray)
    _assert_close(on_cupy.val, expected, dtype)
    assert len(analyzer._cache) == 1


def test_a_second_gpu_for_output_relevance_is_an_error():
    _cuda()
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    model = random_lenet5(seed=1)
    x = torch.rand(1, 1, 28, 28, dtype=torch.float64, device="cuda:0")
    with pytest.raises(ValueError, match="output_relevance is on device cuda:1"):
        lrp.LRP(model)(x, output_relevance=torch.ones(1, 10, dtype=torch.float64,
                                                      device="cuda:1"))
