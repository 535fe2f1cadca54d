"""The ONNX reader on two real exported graphs, on MNIST test digits from ../shared/data:

* mnist-8 (ONNX Model Zoo, CNTK export, opset 8) and LeNet-5 (PyTorch export, opset 10): forward
  equal to onnxruntime's, a batch of 16 with every preset, LRP-0 from the logit equal to gradient
  x input of a torch model built from the same initializers (autograd, float64);
* the LeNet-5 ONNX graph and its ``.pth`` state_dict give the same explanation through the two
  readers (and through a Chain built by hand from the state_dict).

torch is needed only by the tests that compare with it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import lrp_core as lrp  # noqa: E402

from helpers.data import data_path, mnist_test_images  # noqa: E402

try:
    import torch
except ImportError:  # the comparisons with torch skip; the rest runs
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")


from helpers.onnx_models import (  # noqa: E402
    PRESETS,
    assert_relevance_close,
    numpy_gradient_times_input,
    ort_forward,
)

# LRP-0 divides by z + 1e-9·sign(z): where |z| is small that differs from the gradient by about
# 1e-9 / |z|, so float64 agreement is to about 1e-6 of the largest relevance, not to 1e-15
ORACLE_RTOL = 1e-6


# ---------------------------------------------------------------------------------------------
# MNIST models
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits():
    return mnist_test_images(16)


def mnist8_torch(path):
    """mnist-8 rebuilt in torch (float64) from the ONNX file's own initializers."""
    from onnx import numpy_helper

    F = torch.nn.functional

    w = {t.name: torch.tensor(numpy_helper.to_array(t), dtype=torch.float64)
         for t in onnx.load(path).graph.initializer}

    def forward(x):
        x = F.max_pool2d(F.relu(F.conv2d(x, w["Parameter5"], w["Parameter6"].reshape(-1),
                                         padding=2)), 2)
        x = F.max_pool2d(F.relu(F.conv2d(x, w["Parameter87"], w["Parameter88"].reshape(-1),
                                         padding=2)), 3, 3)
        return x.reshape(len(x), 256) @ w["Parameter193"].reshape(256, 10) + w["Parameter194"]

    return forward


def lenet5_module():
    """The architecture of lenet5.pth (see shared/data/README.md), as a torch module."""
    from helpers.torch_models import LeNet5  # needs torch

    return LeNet5()


def lenet5_torch():
    from helpers.torch_models import load_lenet5  # needs torch

    return load_lenet5()


MNIST_MODELS = {"mnist-8": ("onnx-model-zoo", "mnist-8.onnx"),
                "lenet5": ("lenet5-webmnist", "lenet5.onnx")}


@pytest.mark.parametrize("name", sorted(MNIST_MODELS))
def test_mnist_forward_equals_onnxruntime(name, digits):
    path = data_path(*MNIST_MODELS[name])
    x, labels = digits
    graph = lrp.from_onnx(path)
    arrays = [getattr(layer, name) for layer in graph for name in layer._arrays]
    assert arrays and all(isinstance(a, np.ndarray) for a in arrays if a is not None)
    ours = graph(x)
    np.testing.assert_allclose(ours, ort_forward(path, x), rtol=1e-5, atol=1e-5)
    assert (ours.argmax(1) == labels).mean() >= 15 / 16
    expl = lrp.LRP(str(path))(x)  # the path goes straight to the analyzer
    np.testing.assert_allclose(expl.output, ours, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("name", sorted(MNIST_MODELS))
def test_mnist_batch_of_16_with_every_preset(name, preset, digits):
    x, _ = digits
    analyzer = lrp.LRP(data_path(*MNIST_MODELS[name]), PRESETS[preset](0.0, 1.0))
    expl = analyzer(x)
    assert (expl.val.shape == x.shape and expl.val.dtype == np.float32
            and np.all(np.isfinite(expl.val)))
    assert np.abs(expl.val).sum() > 0
    for i in (0, 7, 15):  # the batch equals its samples one by one
        single = analyzer(x[i:i + 1], expl.output_selection[i]).val
        assert_relevance_close(expl.val[i:i + 1], single, rtol=1e-5)


@needs_torch
def test_mnist8_lrp0_equals_gradient_times_input(digits):
    path = data_path(*MNIST_MODELS["mnist-8"])
    x = digits[0].astype(np.float64)
    analyzer = lrp.LRP(path, normalize_output_relevance=False)
    expl = analyzer(x)
    expected = numpy_gradient_times_input(mnist8_torch(path), x, expl.output_selection)
    assert_relevance_close(expl.val, expected, rtol=ORACLE_RTOL)


@needs_torch
def test_lenet5_lrp0_equals_gradient_times_input(digits):
    """The torch LeNet-5 gets the ONNX file's initializers (they carry the state_dict's names)."""
    from onnx import numpy_helper

    path = data_path(*MNIST_MODELS["lenet5"])
    x = digits[0].astype(np.float64)
    analyzer = lrp.LRP(path, normalize_output_relevance=False)
    expl = analyzer(x)
    module = lenet5_module().double().eval()
    initializers = {t.name: torch.tensor(numpy_helper.to_array(t), dtype=torch.float64)
                    for t in onnx.load(path).graph.initializer}
    module.load_state_dict({name: initializers[name] for name in module.state_dict()})
    expected = numpy_gradient_times_input(module, x, expl.output_selection)
    assert_relevance_close(expl.val, expected, rtol=ORACLE_RTOL)


def lenet5_chain(state):
    """LeNet-5 built by hand from the state_dict: an oracle independent of both readers."""
    p = {k: v.numpy() for k, v in state.items()}
    return lrp.Chain(lrp.Conv(p["convolutions.0.weight"], p["convolutions.0.bias"], padding=2),
                     lrp.ReLU(), lrp.MaxPool(2),
                     lrp.Conv(p["convolutions.3.weight"], p["convolutions.3.bias"]), lrp.ReLU(),
                     lrp.MaxPool(2), lrp.Flatten(),
                     lrp.Dense(p["classifier.0.weight"], p["classifier.0.bias"]), lrp.ReLU(),
                     lrp.Dense(p["classifier.2.weight"], p["classifier.2.bias"]), lrp.ReLU(),
                     lrp.Dense(p["classifier.4.weight"], p["classifier.4.bias"]))


@needs_torch
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_lenet5_onnx_equals_pth_through_the_two_readers(preset, digits):
    x, _ = digits
    rules = PRESETS[preset](0.0, 1.0)
    module = lenet5_torch()
    from_onnx = lrp.LRP(data_path(*MNIST_MODELS["lenet5"]), rules)
    from_pth = lrp.LRP(module, rules)
    by_hand = lrp.LRP(lenet5_chain(module.state_dict()), rules)
    assert len(from_onnx.model) == len(from_pth.model) == len(by_hand.model) == 8
    for dtype, rtol in ((np.float32, 1e-4), (np.float64, 1e-10)):
        xd = x.astype(dtype)
        expected = from_pth(xd)
        actual = from_onnx(xd)
        assert actual.output_selection == expected.output_selection
        assert_relevance_close(actual.val, expected.val, rtol)
        assert_relevance_close(actual.val, by_hand(xd).val, rtol)


@needs_torch
def test_onnx_weights_explain_torch_input(digits):
    """NumPy weights from ONNX, torch data: the core converts the weights."""
    x, _ = digits
    analyzer = lrp.LRP(data_path(*MNIST_MODELS["lenet5"]), lrp.EpsilonPlusFlat())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch's warning about read-only NumPy buffers
        expl = analyzer(torch.tensor(x))
    assert isinstance(expl.val, torch.Tensor) and expl.val.dtype == torch.float32
    assert_relevance_close(expl.val.numpy(), analyzer(x).val, rtol=1e-5)
