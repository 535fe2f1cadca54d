"""The shape-aware torch reader: ``lrp.from_torch(model, input_shape=...)`` propagates the
per-sample shape of every tensor (fake tensors, nothing computed) and reads permutations,
slicing, splitting, views with computed sizes, products of activations, constants inside the
network and attention.

Oracles: the torch model's own output (float64, 1e-12) for every translation; for the
piecewise-linear models, LRP-0 started from the logit equals autograd gradient x input; the
module is bit-for-bit untouched (parameters, buffers, version counters, hooks, flags)."""

from __future__ import annotations

import copy
import os

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional
torchvision = pytest.importorskip("torchvision")

import lrp_core as lrp  # noqa: E402

from helpers.torch_models import (  # noqa: E402
    assert_relevance_close,
    assert_untouched,
    gradient_times_input,
    reinitialise,
    seeded,
    snapshot,
)

EXACT_LRP0 = lrp.EpsilonRule(1e-100)  # LRP-0 with a negligible stabiliser: gradient x input


def rand(*shape, seed=1):
    return torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def read_and_check(model: nn.Module, x, rtol=1e-12):
    """The graph read for ``x``'s shape computes the model's output (also canonized); the model
    is untouched by reading."""
    before = snapshot(model)
    graph = lrp.from_torch(model, input_shape=x)
    assert graph.input_shape == tuple(x.shape[1:])
    with torch.no_grad():
        expected = copy.deepcopy(model).eval()(x)
    for g in (graph, lrp.canonize(graph)):
        torch.testing.assert_close(g.forward(x), expected, rtol=rtol,
                                   atol=rtol * float(expected.abs().max()))
    assert_untouched(model, before)
    return graph


def assert_lrp0_is_gradient_times_input(model, graph, x, rtol=1e-8):
    expl = lrp.LRP(graph, EXACT_LRP0, normalize_output_relevance=False)(x)
    expected = gradient_times_input(model, x, expl.output_selection)
    assert_relevance_close(expl.val, expected, rtol=rtol)


def assert_explains(graph, x, composite=None):
    expl = lrp.LRP(graph, composite or lrp.EpsilonPlusFlat())(x)
    assert tuple(expl.val.shape) == tuple(x.shape)
    assert expl.val.dtype == x.dtype
    assert bool(torch.isfinite(expl.val).all())
    return expl


# ---------------------------------------------------------------------------------------------
# routing: permutations, slicing, splitting, stacking, views with computed sizes


class ChannelsLast(nn.Module):
    """permute / transpose / movedim / mT around a Linear on the last axis."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 4)
        self.head = nn.Linear(4 * 5 * 6, 3)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        if self.how == "permute":
            h = self.fc(h.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        elif self.how == "transpose":
            h = self.fc(h.transpose(1, 3)).transpose(-1, 1)
        elif self.how == "movedim":
            h = torch.movedim(self.fc(torch.movedim(h, 1, -1)), 3, 1)
        else:  # mT on a (N, C, H*W) tensor
            h = self.fc(h.flatten(2).mT).mT
        return self.head(torch.relu(h).reshape(h.shape[0], -1))


@pytest.mark.parametrize("how", ["permute", "transpose", "movedim", "mT"])
def test_permutations(how):
    model = seeded(ChannelsLast(how)).eval()
    x = rand(2, 3, 5, 6)
    graph = read_and_check(model, x)
    assert any(isinstance(layer, lrp.Permute) for layer in graph)
    assert_lrp0_is_gradient_times_input(model, graph, x)
    assert_explains(graph, x)


class Slicing(nn.Module):
    def __init__(self, how):
        super().__init__()
        self.how = how
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.fc = nn.LazyLinear(3)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        how = self.how
        if how == "range":
            h = h[:, 1:4]
        elif how == "step":
            h = h[:, :, ::2, 1::2]
        elif how == "ellipsis":
            h = h[..., 0::2, :-1]
        elif how == "index":
            h = h[:, 2]  # drops the channel axis
        elif how == "none":
            h = h[:, None, 1:]
        elif how == "narrow":
            h = h.narrow(1, 2, 3)
        elif how == "select":
            h = h.select(2, -1)
        elif how == "split":
            a, b, c = torch.split(h, [1, 2, 3], dim=1)
            h = torch.cat([c, a + b[:, :1]], dim=1)
        elif how == "chunk":
            a, b = h.chunk(2, dim=1)
            h = torch.cat([b, a], dim=1)
        elif how == "unbind":
            parts = h.unbind(1)
            h = torch.stack([parts[4], parts[0] + parts[1]], dim=1)
        elif how == "stack":
            h = torch.stack([h, 2.0 * h], dim=-1)
        elif how == "squeeze":
            h = h[:, :, :1].squeeze(2).unsqueeze(-1)
        elif how == "roll":
            h = torch.roll(h, shifts=(-2, 1), dims=(2, -1)) + h.roll(3, 1)
        elif how == "pad":
            h = F.pad(h, (1, 2, 0, 1))
        return self.fc(h.flatten(1))


SLICINGS = ["range", "step", "ellipsis", "index", "none", "narrow", "select", "split", "chunk",
            "unbind", "stack", "squeeze", "roll", "pad"]


@pytest.mark.parametrize("how", SLICINGS)
def test_slicing_splitting_and_stacking(how):
    model = Slicing(how)
    x = rand(2, 3, 5, 6)
    model(x.float())  # materialises the lazy Linear
    model = seeded(model).eval()
    graph = read_and_check(model, x)
    assert_lrp0_is_gradient_times_input(model, graph, x)
    assert_explains(graph, x)


class ChannelShuffle(nn.Module):
    """ShuffleNetV2's channel shuffle: sizes unpacked from ``x.size()``, ``//``, views."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 4 * 4, 3)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        batch, channels, height, width = x.size()
        per_group = channels // 2
        x = x.view(batch, 2, per_group, height, width)
        x = torch.transpose(x, 1, 2).contiguous()
        x = x.view(batch, -1, height, width)
        return self.fc(x.reshape(x.shape[0], channels * height * width))


def test_channel_shuffle_with_computed_sizes():
    model = seeded(ChannelShuffle()).eval()
    x = rand(2, 3, 4, 4)
    graph = read_and_check(model, x)
    assert_lrp0_is_gradient_times_input(model, graph, x)


def test_a_model_that_needs_shapes_names_the_call_without_them():
    model = seeded(ChannelShuffle()).eval()
    before = snapshot(model)
    with pytest.raises(lrp.InputShapeNeededError) as info:
        lrp.from_torch(model)
    message = str(info.value)
    assert "floordiv" in message and "per_group = channels // 2" in message
    assert f"{os.path.basename(__file__)}:" in message and "input_shape" in message
    assert isinstance(info.value, lrp.UnsupportedOperatorError)
    assert_untouched(model, before)


def test_what_stays_unsupported_keeps_its_error_with_shapes():
    class Sine(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return torch.sin(self.fc(x).permute(0, 1))

    with pytest.raises(lrp.UnsupportedOperatorError) as info:
        lrp.from_torch(Sine(), input_shape=(4,))
    assert not isinstance(info.value, lrp.InputShapeNeededError)
    assert "torch.sin" in str(info.value) and "return torch.sin(" in str(info.value)
    with pytest.raises(lrp.UnsupportedOperatorError, match="batch"):
        lrp.from_torch(nn.Sequential(nn.Flatten(0)), input_shape=(4,))


# ---------------------------------------------------------------------------------------------
# constants inside the network, scales, stochastic depth


class Constants(nn.Module):
    """A class token concatenated before the tokens, a positional embedding added, a layer
    scale, Python-number arithmetic and torchvision's stochastic depth."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(3, 4)
        self.cls = nn.Parameter(torch.zeros(1, 1, 4))
        self.pos = nn.Parameter(torch.zeros(1, 6, 4))
        self.scale = nn.Parameter(torch.ones(4))
        self.depth = torchvision.ops.StochasticDepth(0.5, "row")
        self.fc = nn.Linear(6 * 4, 3)

    def forward(self, x):
        n = x.shape[0]
        h = self.embed(x)                                      # (N, 5, 4)
        h = torch.cat([self.cls.expand(n, -1, -1), h], dim=1)  # (N, 6, 4)
        h = torch.relu(h + self.pos) * self.scale
        h = self.depth(h) / 2.0 - 0.25
        h = -h + 1
        return self.fc(torch.relu(h).flatten(1))


def test_constants_inside_the_network():
    model = seeded(Constants()).eval()
    x = rand(3, 5, 3)
    graph = read_and_check(model, x)
    kinds = {type(layer).__name__ for layer in graph}
    assert {"ConcatConstant", "AddConstant", "Affine"} <= kinds
    assert_lrp0_is_gradient_times_input(model, graph, x)
    assert_explains(graph, x)


# ---------------------------------------------------------------------------------------------
# elementwise activations; products of two activations; softmax inside; attention


@pytest.mark.parametrize("module, function", [
    (nn.Hardswish(), F.hardswish), (nn.Hardsigmoid(), F.hardsigmoid), (nn.Mish(), F.mish)])
def test_new_activations(module, function):
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.act, self.fc2 = nn.Linear(4, 5), module, nn.Linear(10, 2)

        def forward(self, x):
            h = self.fc1(x)
            return self.fc2(torch.cat([self.act(h), function(h * 3)], dim=1))

    model = seeded(Model()).eval()
    x = rand(4, 4)
    graph = read_and_check(model, x)
    assert sum(type(layer).__name__ == type(module).__name__ for layer in graph) == 2
    assert_explains(graph, x)


class Products(nn.Module):
    """A squeeze-excitation gate, a matmul of two activations, bmm, einsum and a softmax
    inside the network."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.se1, self.se2 = nn.Conv2d(4, 2, 1), nn.Conv2d(2, 4, 1)
        self.fc = nn.Linear(64 + 16 + 16, 3)

    def forward(self, x):
        h = torch.relu(self.conv(x))                                   # (N, 4, 4, 4)
        gate = torch.sigmoid(self.se2(torch.relu(self.se1(F.adaptive_avg_pool2d(h, 1)))))
        h = gate * h                                                   # squeeze-excitation
        t = h.flatten(2)                                               # (N, 4, 16)
        scores = torch.softmax(t @ t.transpose(1, 2) / 4.0, dim=-1)   # (N, 4, 4)
        mixed = torch.bmm(scores, t)                                   # (N, 4, 16)
        other = torch.einsum("nci,ndi->ncd", t, mixed)                 # (N, 4, 4)
        return self.fc(torch.cat([mixed.flatten(1), torch.matmul(other, t).flatten(1)[:, :16],
                                  h.flatten(1)[:, :16]], dim=1))


def test_products_of_activations_and_softmax_inside():
    model = seeded(Products()).eval()
    x = rand(2, 3, 4, 4)
    graph = read_and_check(model, x)
    kinds = [type(layer).__name__ for layer in graph]
    assert kinds.count("Mul") == 1 and kinds.count("MatMul") == 4 and "Softmax" in kinds
    assert_explains(graph, x)


@pytest.mark.parametrize("same_input", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_multihead_attention(same_input, bias):
    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, bias=bias, batch_first=True)
            self.key = nn.Linear(8, 8)
            self.fc = nn.Linear(5 * 8, 3)

        def forward(self, x):
            kv = x if same_input else self.key(x)
            out, _ = self.attn(x, kv, kv, need_weights=False)
            return self.fc(out.flatten(1))

    model = seeded(Attention()).eval()
    x = rand(3, 5, 8)
    graph = read_and_check(model, x)
    kinds = [type(layer).__name__ for layer in graph]
    assert kinds.count("MatMul") == 2 and kinds.count("Softmax") == 1
    assert_explains(graph, x)


@pytest.mark.parametrize("split", ["unbind", "index"])
def test_scaled_dot_product_attention(split):
    """timm's attention: q, k, v taken from a permutation that moves the batch axis."""

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(8, 24)
            self.fc = nn.Linear(5 * 8, 3)

        def forward(self, x):
            n, length, _ = x.shape
            qkv = self.qkv(x).reshape(n, length, 3, 2, 4).permute(2, 0, 3, 1, 4)
            q, k, v = qkv.unbind(0) if split == "unbind" else (qkv[0], qkv[1], qkv[2])
            out = F.scaled_dot_product_attention(q, k, v)  # (N, heads, L, d)
            return self.fc(out.transpose(1, 2).reshape(n, -1))

    model = seeded(Attention()).eval()
    x = rand(3, 5, 8)
    graph = read_and_check(model, x)
    assert [type(layer).__name__ for layer in graph].count("MatMul") == 2
    assert_explains(graph, x)
    assert_explains(graph, x, lrp.AttnLRP())


@pytest.mark.parametrize("kwargs, call, match", [
    ({"batch_first": False}, lambda m, x: m(x, x, x)[0], "batch_first"),
    ({"batch_first": True}, lambda m, x: m(x, x, x)[1], "attention weights"),
    ({"batch_first": True}, lambda m, x: m(x, x, x, key_padding_mask=x.sum(-1) > 0)[0],
     "mask must be a constant"),
])
def test_multihead_attention_refusals(kwargs, call, match):
    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(4, 2, **kwargs)

        def forward(self, x):
            return call(self.attn, x).flatten(1)

    with pytest.raises(lrp.UnsupportedOperatorError, match=match):
        lrp.from_torch(Attention(), input_shape=(4, 4))


class LayerNorm2d(nn.LayerNorm):
    """ConvNeXt's LayerNorm over channels: permute, LayerNorm over the last axis, permute."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def test_layer_norm_over_channels_through_permutes():
    model = seeded(nn.Sequential(nn.Conv2d(3, 4, 3), LayerNorm2d(4), nn.Flatten(),
                                 nn.Linear(4 * 3 * 3, 2))).eval()
    x = rand(2, 3, 5, 5)
    graph = read_and_check(model, x)
    assert any(isinstance(layer, lrp.LayerNorm) for layer in graph)
    assert_explains(graph, x)


# ---------------------------------------------------------------------------------------------
# torchvision: one representative per family that reads only with shapes (or new layers)


def tiny_vit():
    return torchvision.models.VisionTransformer(image_size=16, patch_size=4, num_layers=2,
                                                num_heads=2, hidden_dim=8, mlp_dim=16,
                                                num_classes=5)


def tiny_maxvit():
    return torchvision.models.MaxVit(input_size=(32, 32), stem_channels=8, partition_size=2,
                                     block_channels=[8, 16], block_layers=[1, 1], head_dim=4,
                                     stochastic_depth_prob=0.2, num_classes=5)


def tiny_convnext():
    config = torchvision.models.convnext.CNBlockConfig
    return torchvision.models.ConvNeXt([config(8, 16, 2), config(16, None, 1)],
                                       stochastic_depth_prob=0.1, num_classes=5)


def tiny_efficientnet():
    config = torchvision.models.efficientnet.MBConvConfig
    return torchvision.models.EfficientNet([config(1, 3, 1, 8, 8, 1), config(4, 3, 2, 8, 16, 2)],
                                           dropout=0.2, stochastic_depth_prob=0.2,
                                           num_classes=5)


def tiny_swin():
    return torchvision.models.SwinTransformer(patch_size=[4, 4], embed_dim=8, depths=[2, 2],
                                              num_heads=[2, 4], window_size=[4, 4],
                                              stochastic_depth_prob=0.2, num_classes=5)


FAMILIES = {
    "convnext (ConvNeXt, 2 stages)": (tiny_convnext, 32),
    "efficientnet (EfficientNet, 3 MBConv blocks)": (tiny_efficientnet, 16),
    "mobilenet_v3_small": (lambda: torchvision.models.mobilenet_v3_small(), 32),
    "regnet_y_400mf": (lambda: torchvision.models.regnet_y_400mf(), 32),
    "shufflenet_v2_x0_5": (lambda: torchvision.models.shufflenet_v2_x0_5(), 32),
    "vit (VisionTransformer, 2 layers)": (tiny_vit, 16),
    "maxvit (MaxVit, 2 blocks)": (tiny_maxvit, 32),
    # 56: the 14 x 14 map is padded to windows of 4, and the second block's window is shifted
    "swin (SwinTransformer, 2 stages)": (tiny_swin, 56),
}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_torchvision_family_is_read_and_explained(name):
    make, size = FAMILIES[name]
    torch.manual_seed(0)
    model = reinitialise(make(), seed=0).double().eval()
    if "vit" in name or "swin" in name:  # torchvision zero-initialises some heads
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.Linear):
                    m.weight.normal_(0, m.in_features ** -0.5)
    x = rand(2, 3, size, size)
    before = snapshot(model)
    graph = read_and_check(model, x, rtol=1e-10)
    assert_explains(graph, x[:1].float())  # float32 weights made once; float64 convs are slow
    if "vit" in name or "swin" in name:  # the transformers also with the attention presets
        for preset in (lrp.AttnLRP(), lrp.CPLRP()):
            assert_explains(graph, x, preset)
    assert_untouched(model, before)


@pytest.mark.slow
def test_efficientnet_v2_is_read_and_explained():
    """EfficientNetV2 (fused MBConv, stochastic depth), torchvision's own initialisation (He
    re-initialisation makes its activations grow to 1e5 and the comparison ill-conditioned)."""
    torch.manual_seed(0)
    model = torchvision.models.efficientnet_v2_s().double().eval()
    x = rand(1, 3, 32, 32)
    graph = read_and_check(model, x, rtol=1e-10)
    assert_explains(graph, x)


def test_shufflenet_lrp0_is_gradient_times_input():
    """ShuffleNetV2 is piecewise linear (ReLU, max pooling, channel shuffle, chunk, cat)."""
    model = reinitialise(torchvision.models.shufflenet_v2_x0_5(), seed=0).double().eval()
    x = rand(2, 3, 32, 32)
    graph = read_and_check(model, x, rtol=1e-10)
    assert_lrp0_is_gradient_times_input(model, graph, x, rtol=1e-7)


# ---------------------------------------------------------------------------------------------
# the input shape: given as a shape or an example; the model untouched by propagation


def test_input_shape_as_a_shape_or_an_example():
    model = seeded(ChannelShuffle()).eval()
    by_shape = lrp.from_torch(model, input_shape=(3, 4, 4))
    by_example = lrp.from_torch(model, input_shape=torch.zeros(7, 3, 4, 4, dtype=torch.float64))
    assert by_shape.input_shape == by_example.input_shape == (3, 4, 4)
    x = rand(5, 3, 4, 4)  # any batch size
    torch.testing.assert_close(by_shape.forward(x), by_example.forward(x))
    with pytest.raises(lrp.LRPError, match=r"per-sample shape \(3, 5, 5\)"):
        lrp.from_torch(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), input_shape=(3, 5, 5))


def test_shape_propagation_leaves_a_model_in_training_mode_untouched():
    model = seeded(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                                 nn.Dropout(0.5), nn.Flatten(), nn.Linear(4 * 3 * 3, 2)))
    model.train()
    before = snapshot(model)
    with pytest.warns(UserWarning, match="training mode"):
        graph = lrp.from_torch(model, input_shape=(3, 5, 5))
    assert_untouched(model, before)  # running statistics, version counters, flags
    x = rand(2, 3, 5, 5)
    with torch.no_grad():
        expected = copy.deepcopy(model).eval()(x)
    torch.testing.assert_close(graph.forward(x), expected)


ALL_TORCHVISION = torchvision.models.list_models(module=torchvision.models)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("LRP_ALL_TORCHVISION"),
                    reason="the 80 torchvision classifiers (3 minutes on two idle cores, 5 GB "
                           "for ViT-H): set LRP_ALL_TORCHVISION=1")
@pytest.mark.parametrize("name", ALL_TORCHVISION)
def test_every_torchvision_classifier(name):
    """All 80: read (forward equal to the model's) and explained with EpsilonPlusFlat, small
    input where the architecture allows it (benchmarks/torchvision_coverage.py times them)."""
    size = 224 if name.startswith(("vit_", "maxvit")) else 96 if name == "inception_v3" else 64
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None).eval()
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    graph = read_and_check(model, x, rtol=1e-4)
    assert_explains(graph, x)


# ---------------------------------------------------------------------------------------------
# lrp.LRP(model) of a model that needs shapes: read at the first call, once per input shape


class AnySize(nn.Module):
    """Needs shapes (a permute, an integer index) and runs on any spatial size."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        h = torch.relu(self.conv(x)).permute(0, 2, 3, 1)  # (N, H, W, C)
        h = torch.relu(self.fc(h))
        return self.head(h[:, 0].transpose(1, 2).mean(2))  # first row, averaged over W


def test_lrp_reads_a_model_that_needs_shapes_per_input_shape():
    model = seeded(AnySize()).eval()
    before = snapshot(model)
    with pytest.raises(lrp.InputShapeNeededError):
        lrp.from_torch(model)
    analyzer = lrp.LRP(model, EXACT_LRP0, normalize_output_relevance=False)  # nothing read yet
    assert analyzer.graphs == {}
    small, large = rand(2, 3, 5, 5), rand(3, 3, 7, 6, seed=2)
    for x in (small, large, rand(1, 3, 5, 5, seed=3)):
        expl = analyzer(x)
        assert_relevance_close(expl.val, gradient_times_input(model, x, expl.output_selection),
                               rtol=1e-8)
    graphs = analyzer.graphs
    assert set(graphs) == {(3, 5, 5), (3, 7, 6)}  # two shapes, two graphs
    assert graphs[(3, 5, 5)] is not graphs[(3, 7, 6)]
    analyzer(small)
    assert analyzer.graphs[(3, 5, 5)] is graphs[(3, 5, 5)]  # cached, not read again
    assert "first call" in repr(lrp.LRP(model))
    assert_untouched(model, before)
