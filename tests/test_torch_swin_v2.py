"""torchvision's Swin V2 in the torch reader: cosine attention (``F.normalize`` of queries and
keys as ``lrp.L2Normalize``, the per-head temperature as a constant scale), the continuous
relative position bias (``16·sigmoid(cpb_mlp(...))`` of buffers, evaluated once when the model
is read, an ``AddConstant``) and ``PatchMergingV2``.

* ``swin_v2_t`` at 64x64: read, forward equal to the model's (float32 to 1e-4, float64 to
  1e-10), explained with EpsilonPlusFlat, AttnLRP and CPLRP; the model untouched.
* The oracle, float64, on a small Swin V2 (two stages, a shifted window, a patch merging):
  ``lrp.CPLRP`` equals gradient x input of a patched deep copy of the model, the LXT-style
  efficient-mode construction written here (see tests/test_lxt_oracle.py for ViT): GELU under
  the identity rule (``x · (gelu(x)/x)`` with the ratio detached), LayerNorm's standard
  deviation detached, the L2 norm of ``F.normalize`` detached, and the attention weights (the
  softmax's output) detached, as CP-LRP holds them constant. The copy's window attention is
  written out here from torchvision's equations; undetached, it reproduces the model's logits.
* The same for ``lrp.AttnLRP`` (relevance now reaches the normalised queries and keys): the copy
  patched as AttnLRP's efficient mode, each product of two activations giving half the gradient
  to each factor, the softmax live.
* Conservation: with every bias zero, CP-LRP's input relevance sums to the logit.
* ``F.normalize`` outside Swin: read as ``L2Normalize``; p != 2 and the batch axis refused.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
nn = torch.nn
F = nn.functional

import lrp_core as lrp  # noqa: E402

from helpers.torch_models import assert_untouched, snapshot  # noqa: E402

swin = torchvision.models.swin_transformer
EPSILON = 1e-12  # gradient x input has no stabiliser
IMAGE, CLASSES = 32, 10


def _small_swin_v2(seed, *, zero_biases=False):
    """A Swin V2 of two stages (8x8 then 4x4 tokens, window 4: the second block of the first
    stage is shifted; a PatchMergingV2 between), float64, every parameter drawn anew."""
    torch.manual_seed(seed)
    model = torchvision.models.SwinTransformer(
        patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 4], window_size=[4, 4],
        num_classes=CLASSES, block=swin.SwinTransformerBlockV2,
        downsample_layer=swin.PatchMergingV2).double().eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("logit_scale"):
                p.copy_(math.log(10) + 0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype))
            elif p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * p[0].numel() ** -0.5)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
            elif zero_biases and "cpb_mlp" not in name:
                p.zero_()
            else:  # biases, LayerNorm's beta (the key bias too: torchvision ignores it)
                p.copy_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def _input(seed, n=2):
    return torch.randn(n, 3, IMAGE, IMAGE, dtype=torch.float64,
                       generator=torch.Generator().manual_seed(100 + seed))


def _close(got, expected, rtol):
    """Equal to ``rtol`` of the largest relevance; returns the error measured."""
    got, expected = np.asarray(got), np.asarray(expected)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * scale)
    return np.abs(got - expected).max() / scale


# -- the oracle: a patched deep copy, gradient x input -------------------------------------------

def _shift_mask(pad_h, pad_w, window, shift):
    """The shifted window's mask, ``(windows, T, T)``: -100 between tokens of different regions
    of the rolled map (Liu et al., 2021, Fig. 4), 0 within a region."""
    region = torch.zeros(pad_h, pad_w, dtype=torch.float64)
    bounds_h = (0, pad_h - window[0], pad_h - shift[0], pad_h)
    bounds_w = (0, pad_w - window[1], pad_w - shift[1], pad_w)
    label = 0
    for i in range(3):
        for j in range(3):
            region[bounds_h[i]:bounds_h[i + 1], bounds_w[j]:bounds_w[j + 1]] = label
            label += 1
    region = region.reshape(pad_h // window[0], window[0], pad_w // window[1], window[1])
    region = region.permute(0, 2, 1, 3).reshape(-1, window[0] * window[1])
    different = region[:, None, :] != region[:, :, None]
    return torch.where(different, -100.0, 0.0).to(torch.float64)


def _cosine_window_attention(module, x, mode):
    """Swin V2's shifted-window cosine attention of ``module`` (a ShiftedWindowAttentionV2) on
    ``x`` ``(N, H, W, C)``. ``mode`` ``None``: as torchvision computes it; ``"cp"``: the L2 norms
    and the attention weights held constant (CP-LRP); ``"attn"``: the L2 norms held constant and
    each product of two activations giving each factor half the gradient (AttnLRP's uniform
    rule, ``0.5·(a·b.detach()) + 0.5·(a.detach()·b)``)."""
    n, height, width, channels = x.shape
    window, heads = module.window_size, module.num_heads
    d = channels // heads
    pad_b, pad_r = (-height) % window[0], (-width) % window[1]
    x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
    pad_h, pad_w = height + pad_b, width + pad_r
    shift = [0 if window[0] >= pad_h else module.shift_size[0],
             0 if window[1] >= pad_w else module.shift_size[1]]
    if sum(shift):
        x = torch.roll(x, (-shift[0], -shift[1]), (1, 2))
    tokens = window[0] * window[1]
    windows = x.reshape(n, pad_h // window[0], window[0], pad_w // window[1], window[1], channels)
    windows = windows.permute(0, 1, 3, 2, 4, 5).reshape(n, -1, tokens, channels)
    w, b = module.qkv.weight, module.qkv.bias

    def heads_of(t):  # (n, windows, T, C) -> (n, windows, heads, T, d)
        return t.reshape(n, -1, tokens, heads, d).permute(0, 1, 3, 2, 4)

    def unit(t):
        norm = t.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return t / (norm if mode is None else norm.detach())

    def product(a, b):
        if mode == "attn":
            return 0.5 * (a @ b.detach()) + 0.5 * (a.detach() @ b)
        return a @ b

    q = heads_of(F.linear(windows, w[:channels], b[:channels]))
    k = heads_of(F.linear(windows, w[channels:2 * channels]))  # the key has no bias in V2
    v = heads_of(F.linear(windows, w[2 * channels:], b[2 * channels:]))
    temperature = torch.clamp(module.logit_scale, max=math.log(100.0)).exp()  # (heads, 1, 1)
    scores = product(unit(q), unit(k).transpose(-2, -1)) * temperature
    with torch.no_grad():
        table = module.cpb_mlp(module.relative_coords_table).reshape(-1, heads)
        bias = table[module.relative_position_index].reshape(tokens, tokens, heads)
        bias = 16 * torch.sigmoid(bias.permute(2, 0, 1))
    scores = scores + bias
    if sum(shift):
        scores = scores + _shift_mask(pad_h, pad_w, window, shift)[:, None]
    weights = torch.softmax(scores, -1)
    if mode == "cp":
        weights = weights.detach()
    out = product(weights, v).permute(0, 1, 3, 2, 4).reshape(n, -1, tokens, channels)
    out = module.proj(out)
    out = out.reshape(n, pad_h // window[0], pad_w // window[1], window[0], window[1], channels)
    out = out.permute(0, 1, 3, 2, 4, 5).reshape(n, pad_h, pad_w, channels)
    if sum(shift):
        out = torch.roll(out, (shift[0], shift[1]), (1, 2))
    return out[:, :height, :width]


class _IdentityRuleGELU(nn.GELU):
    def forward(self, x):
        return x * (F.gelu(x) / x).detach()


class _ConstantStdLayerNorm(nn.LayerNorm):
    def forward(self, x):
        centered = x - x.mean(-1, keepdim=True)
        std = torch.sqrt(centered.pow(2).mean(-1, keepdim=True) + self.eps).detach()
        return centered / std * self.weight + self.bias


def _attention_class(mode):
    return type(f"Attention_{mode}", (swin.ShiftedWindowAttentionV2,),
                {"forward": lambda self, x: _cosine_window_attention(self, x, mode)})


def _twin(model, mode):
    """A deep copy of ``model`` whose window attention is :func:`_cosine_window_attention`
    in ``mode`` and, with a mode, GELU and LayerNorm patched as the efficient mode of CP-LRP and
    AttnLRP patches them (module docstring). The user's model and torch's and torchvision's
    classes are not modified."""
    twin = copy.deepcopy(model)
    attention = _attention_class(mode)
    detach = mode is not None
    counts = {}
    for module in twin.modules():
        kind = type(module)
        if kind is swin.ShiftedWindowAttentionV2:
            module.__class__ = attention
        elif detach and kind is nn.GELU:
            module.__class__ = _IdentityRuleGELU
        elif detach and kind is nn.LayerNorm:
            module.__class__ = _ConstantStdLayerNorm
        else:
            continue
        counts[kind.__name__] = counts.get(kind.__name__, 0) + 1
    assert counts["ShiftedWindowAttentionV2"] == 4
    return twin


def _gradient_times_input(model, x, selection):
    x = x.clone().requires_grad_(True)
    out = model(x)
    (grad,) = torch.autograd.grad(out[torch.arange(len(x)), selection].sum(), x)
    return (x * grad).detach().numpy(), out.detach().numpy()


def _explain(preset, model, x, selection):
    composite = lrp.Composite(*preset(epsilon=EPSILON).primitives,
                              lrp.GlobalTypeMap({lrp.LayerNorm: lrp.LayerNormRule(EPSILON)}))
    return lrp.LRP(model, composite, normalize_output_relevance=False)(x, selection)


def _cp_lrp(model, x, selection):
    return _explain(lrp.CPLRP, model, x, selection)


@pytest.mark.parametrize("seed", [0, 1])
def test_cp_lrp_equals_gradient_times_input_of_the_patched_copy(seed):
    model = _small_swin_v2(seed)
    x = _input(seed)
    before = snapshot(model)
    with torch.no_grad():
        logits = model(x)
        # the copy's attention, written out here, is torchvision's
        torch.testing.assert_close(_twin(model, None)(x), logits, rtol=1e-12,
                                   atol=1e-12)
    selection = [3, 7]
    expected, twin_logits = _gradient_times_input(_twin(model, "cp"), x, selection)
    np.testing.assert_allclose(twin_logits, logits.numpy(), rtol=1e-12, atol=1e-12)
    explanation = _cp_lrp(model, x, selection)
    np.testing.assert_allclose(explanation.output.numpy(), logits.numpy(), rtol=1e-12,
                               atol=1e-12)
    error = _close(explanation.val.numpy(), expected, 1e-6)
    print(f"CP-LRP vs patched gradient x input, Swin V2 seed {seed}: {error:.2e}")
    assert_untouched(model, before)


def test_attn_lrp_equals_gradient_times_input_of_the_patched_copy():
    """AttnLRP through the cosine attention: the norms held constant (``L2NormalizeRule``), the
    uniform rule on both products, the softmax rule; against gradient x input of the copy
    patched as AttnLRP's efficient mode (products with half the gradient to each factor)."""
    model = _small_swin_v2(3)
    x = _input(3)
    selection = [0, 9]
    expected, twin_logits = _gradient_times_input(_twin(model, "attn"), x, selection)
    explanation = _explain(lrp.AttnLRP, model, x, selection)
    np.testing.assert_allclose(explanation.output.numpy(), twin_logits, rtol=1e-12, atol=1e-12)
    error = _close(explanation.val.numpy(), expected, 1e-6)
    print(f"AttnLRP vs patched gradient x input, Swin V2: {error:.2e}")


def test_cp_lrp_conserves_relevance_without_biases():
    """Every bias zero (the position bias only reaches the attention weights, which CP-LRP holds
    constant): the input relevance sums to the logit."""
    model = _small_swin_v2(2, zero_biases=True)
    x = _input(2)
    explanation = _cp_lrp(model, x, [1, 4])
    totals = explanation.val.sum(dim=(1, 2, 3)).numpy()
    logits = explanation.output.numpy()[[0, 1], [1, 4]]
    np.testing.assert_allclose(totals, logits, rtol=1e-8)


def test_small_swin_v2_reads_without_the_position_bias_mlp():
    """The position-bias MLP, its sigmoid and the temperature depend on parameters and buffers
    alone: they are evaluated when the model is read, none is a layer of the graph."""
    model = _small_swin_v2(0)
    graph = lrp.from_torch(model, input_shape=(3, IMAGE, IMAGE))
    kinds = [type(node.layer).__name__ for node in graph.nodes]
    assert kinds.count("L2Normalize") == 8  # q and k of four blocks
    assert "Sigmoid" not in kinds and "ReLU" not in kinds
    assert not any(isinstance(node.layer, lrp.Dense) and node.layer.weight.shape[1] == 2
                   for node in graph.nodes)  # cpb_mlp's first Linear (2 -> 512)


# -- swin_v2_t ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def swin_v2_t():
    torch.manual_seed(0)
    return torchvision.models.swin_v2_t(weights=None).eval()


def test_swin_v2_t_reads_and_explains_at_64(swin_v2_t):
    model = swin_v2_t
    before = snapshot(model)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    graph = lrp.from_torch(model, input_shape=x)
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(graph.forward(x), expected, rtol=1e-4,
                               atol=1e-4 * float(expected.abs().max()))
    for composite in (lrp.EpsilonPlusFlat(), lrp.AttnLRP(), lrp.CPLRP()):
        expl = lrp.LRP(graph, composite)(x)
        assert tuple(expl.val.shape) == tuple(x.shape) and expl.val.dtype == x.dtype
        assert bool(torch.isfinite(expl.val).all())
        assert float(expl.val.abs().sum()) > 0
    assert_untouched(model, before)


def test_swin_v2_t_forward_in_float64(swin_v2_t):
    model = copy.deepcopy(swin_v2_t).double()
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    graph = lrp.from_torch(model, input_shape=x)
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(graph.forward(x), expected, rtol=1e-10,
                               atol=1e-10 * float(expected.abs().max()))


# -- F.normalize outside Swin --------------------------------------------------------------------

class _Normalized(nn.Module):
    def __init__(self, **options):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(4 * 4 * 4, 3)
        self.options = options

    def forward(self, x):
        h = F.normalize(self.conv(x), **self.options)
        return self.head(h.flatten(1))


@pytest.mark.parametrize("options", [{}, {"dim": -1}, {"dim": 2, "eps": 1e-3}])
def test_f_normalize_reads_as_l2_normalize(options):
    model = _Normalized(**options).double().eval()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    graph = lrp.from_torch(model)
    assert any(isinstance(node.layer, lrp.L2Normalize) for node in graph.nodes)
    with torch.no_grad():
        torch.testing.assert_close(graph.forward(x), model(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("options, match", [({"p": 1.0}, "p=1.0"), ({"dim": 0}, "batch axis")])
def test_f_normalize_refusals(options, match):
    with pytest.raises(lrp.UnsupportedOperatorError, match=match):
        lrp.from_torch(_Normalized(**options).eval())
