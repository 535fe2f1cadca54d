"""The ONNX path against the torch path on torchvision models with gates, hard activations,
GELU exported as Erf arithmetic, LayerNorm2d through permutes and layer scales: MobileNetV3-Small,
EfficientNet-B0 and ConvNeXt-Tiny (random weights, BatchNorm folded before both readers so that
the weights are identical), exported with a dynamic batch axis. The same relevance, float64,
under EpsilonPlusFlat (gates: CPRule), CPLRP and AttnLRP, to 1e-5 of the largest relevance: the
export writes some constants in float32 where the torch path keeps them exact (HardSigmoid's
alpha 1/6, folded constants), about 1e-8 relative, which the rules' small denominators magnify.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
nn = torch.nn

import lrp_core as lrp  # noqa: E402

from helpers.tolerances import assert_relevance_close  # noqa: E402

MODELS = ["mobilenet_v3_small", "efficientnet_b0", "convnext_tiny"]
SIZE = 32


def _reinitialise(model, seed):
    """He-initialised weights, random BatchNorm statistics and layer scales of order 1, so that
    activations neither vanish nor stay trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layer_scale"):
                p.copy_(0.5 + 0.5 * torch.rand(p.shape, generator=g))
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
    """Each BatchNorm2d that directly follows a Conv2d among a module's children folded into it
    (in place, on the model given)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for parent in list(model.modules()):
        children = list(parent.named_children())
        for (conv_name, conv), (bn_name, bn) in zip(children, children[1:]):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(parent, bn_name, nn.Identity())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    return model


@pytest.fixture(scope="module", params=[
    pytest.param(name, marks=[] if name == "mobilenet_v3_small" else [pytest.mark.slow])
    for name in MODELS])
def read_twice(request, tmp_path_factory):
    name = request.param
    model = getattr(torchvision.models, name)(weights=None, num_classes=10).eval()
    model = _fold_batchnorms(_reinitialise(model, seed=4))
    path = tmp_path_factory.mktemp("onnx") / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, (torch.zeros(1, 3, SIZE, SIZE),), str(path), dynamo=False,
                              opset_version=17, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
        except Exception as error:  # e.g. a torch without the TorchScript exporter
            pytest.skip(f"torch.onnx.export(dynamo=False) failed here: {error}")
    x = np.random.default_rng(6).standard_normal((2, 3, SIZE, SIZE))
    return name, model, lrp.from_onnx(path), lrp.from_torch(model, input_shape=(3, SIZE, SIZE)), x


def test_forward_equals_torch(read_twice):
    name, model, from_onnx, from_torch, x = read_twice
    with torch.no_grad():
        expected = model(torch.from_numpy(x.astype(np.float32))).numpy()
    scale = np.abs(expected).max()
    # the analyzer runs each graph in the input's namespace and dtype (float64 here)
    on_onnx, on_torch = (lrp.LRP(g)(x).output for g in (from_onnx, from_torch))
    np.testing.assert_allclose(on_onnx, expected, rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_allclose(on_torch, expected, rtol=1e-5, atol=1e-5 * scale)
    # float64 through both graphs: only the export's float32 constants differ
    np.testing.assert_allclose(on_onnx, on_torch, rtol=1e-6, atol=1e-6 * scale)


@pytest.mark.parametrize("preset", ["epsilon_plus_flat", "cp_lrp", "attn_lrp"])
def test_onnx_path_equals_torch_path(read_twice, preset):
    name, model, from_onnx, from_torch, x = read_twice
    on_onnx = lrp.LRP(from_onnx, lrp.preset(preset))
    on_torch = lrp.LRP(from_torch, lrp.preset(preset))
    gated = [sum(isinstance(r, lrp.CPRule) for r in a.rules) for a in (on_onnx, on_torch)]
    assert gated[0] == gated[1]
    expected = on_torch(x, [1, 7])
    actual = on_onnx(x, [1, 7])
    assert np.all(np.isfinite(actual.val)) and np.abs(expected.val).max() > 0
    assert_relevance_close(actual.val, expected.val, rtol=1e-5)
