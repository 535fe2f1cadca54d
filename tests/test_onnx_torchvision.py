"""The ONNX reader on torchvision ResNet-18, MobileNetV2 and VGG-11 with random weights, exported
here with ``torch.onnx.export`` for a batch of 1 and explained as a batch of 2: forward equal to
onnxruntime's, LRP-0 equal to an autograd oracle (float64), and the ONNX path equal to the torch
path (``lrp.from_torch``) for all five presets. The VGG-11 cases are marked ``slow`` (about a
minute and a half on two cores: its AdaptiveAvgPool2d(7) exports only from 224 x 224 inputs).
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
nn = torch.nn

import lrp_core as lrp  # noqa: E402

from helpers.onnx_models import (  # noqa: E402
    PRESETS,
    assert_relevance_close,
    numpy_gradient_times_input,
    ort_forward,
)

# name -> (input size, opset); VGG-11 needs 224 so that its AdaptiveAvgPool2d(7) exports
TORCHVISION = {"resnet18": (32, 13), "mobilenet_v2": (32, 17), "vgg11": (224, 17)}


def _reinitialise(model, seed):
    """He-initialised weights and random BatchNorm statistics, so that activations neither
    vanish nor stay trivial (torchvision's own init gives MobileNetV2 logits of about 1e-13)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(0.05 * torch.randn(m.bias.shape, generator=g))
            elif isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
    return model


def _fold_batchnorms(model):
    """A copy with each BatchNorm2d that directly follows a Conv2d (in registration order) folded
    into it, so that the ONNX export and the torch reader hold bit-identical float32 weights."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(model)
    for parent in list(folded.modules()):
        children = list(parent.named_children())
        for (conv_name, conv), (bn_name, bn) in zip(children, children[1:]):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(parent, bn_name, nn.Identity())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    return folded


def _export(model, x, path, opset):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=opset,
                              input_names=["input"], output_names=["logits"])
        except Exception as error:  # e.g. a torch without the TorchScript exporter
            pytest.skip(f"torch.onnx.export(dynamo=False) failed here: "
                        f"{type(error).__name__}: {error}")


@pytest.fixture(scope="module",
                params=[pytest.param(name, marks=[pytest.mark.slow] if name == "vgg11" else [])
                        for name in sorted(TORCHVISION)])
def exported(request, tmp_path_factory):
    name = request.param
    size, opset = TORCHVISION[name]
    model = _reinitialise(getattr(torchvision.models, name)(weights=None, num_classes=10),
                          seed=3).eval()
    folded = _fold_batchnorms(model)
    path = tmp_path_factory.mktemp("onnx") / f"{name}.onnx"
    _export(folded, torch.zeros(1, 3, size, size), path, opset)  # exported for a batch of 1
    x = np.random.default_rng(5).standard_normal((2, 3, size, size))  # explained as a batch of 2
    return name, model, folded, path, x, lrp.from_onnx(path)


def test_torchvision_forward_equals_onnxruntime(exported):
    name, model, folded, path, x, graph = exported
    x32 = x.astype(np.float32)
    expected = ort_forward(path, x32)
    ours = graph(x32)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    with torch.no_grad():  # the original model, BatchNorm unfolded
        np.testing.assert_allclose(ours, model(torch.tensor(x32)).numpy(), rtol=1e-4,
                                   atol=1e-4 * np.abs(expected).max())


class _SecantReLU6(nn.Module):
    """ReLU6 whose derivative is replaced by the secant ``relu6(z) / z``: with it, gradient x
    input equals LRP-0, which passes relevance through a standalone activation unchanged."""

    def forward(self, z):
        a = torch.clamp(z, 0.0, 6.0)
        safe = torch.where(z == 0, torch.ones_like(z), z)
        return z * torch.where(z == 0, torch.zeros_like(z), a / safe).detach()


def _secant_oracle(model):
    oracle = copy.deepcopy(model).double()
    for parent in list(oracle.modules()):
        for child_name, child in parent.named_children():
            if isinstance(child, nn.ReLU6):
                setattr(parent, child_name, _SecantReLU6())
    return oracle


def test_torchvision_lrp0_equals_autograd_oracle(exported):
    """Against the original model, BatchNorm and all: float32 folding limits the agreement."""
    name, model, folded, path, x, graph = exported
    if name == "vgg11":
        x = x[:1]  # float64 VGG-11 at 224: one sample is enough
    analyzer = lrp.LRP(graph, normalize_output_relevance=False)
    expl = analyzer(x)
    oracle = _secant_oracle(model) if name == "mobilenet_v2" else copy.deepcopy(model).double()
    expected = numpy_gradient_times_input(oracle, x, expl.output_selection)
    assert_relevance_close(expl.val, expected, rtol=1e-4)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_torchvision_onnx_path_equals_torch_path(exported, preset):
    """The same network read twice (the ONNX export and the module, BatchNorm folded before
    both so that the weights are identical) gives the same relevance, preset by preset.

    Float64 for the small models: with random weights the Gamma and ZBox rules meet near-zero
    denominators (MobileNetV2's linear bottlenecks), which magnify float32 rounding."""
    name, model, folded, path, x, graph = exported
    rules = PRESETS[preset](-4.0, 4.0)
    from_torch = lrp.LRP(folded, rules)
    from_onnx = lrp.LRP(graph, rules)
    assert len(from_onnx.model) == len(from_torch.model)
    assert [type(r) for r in from_onnx.rules] == [type(r) for r in from_torch.rules]
    x, rtol = (x.astype(np.float32), 1e-4) if name == "vgg11" else (x, 1e-7)
    expected = from_torch(x)
    actual = from_onnx(x)
    assert actual.output_selection == expected.output_selection
    assert actual.val.shape == x.shape and np.all(np.isfinite(actual.val))
    assert_relevance_close(actual.val, expected.val, rtol=rtol)
