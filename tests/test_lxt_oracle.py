"""LXT (``lxt`` 2.1, the AttnLRP authors' implementation) as an independent oracle for the
transformer presets on torchvision's ``VisionTransformer``, in float64.

* CP-LRP: ``lrp.CPLRP`` against LXT's *efficient* mode, gradient x input of the model patched
  with LXT's own patch map for torchvision's ViT (``lxt.efficient.models.vit_torch.cp_LRP``:
  GELU under LXT's identity rule, LayerNorm with the standard deviation detached,
  ``MultiheadAttention`` with query and key detached, so the attention weights are constant).
  ``lxt.efficient.monkey_patch`` would patch torch's classes for the whole process; here the
  same patch functions of that map go onto private subclasses, used by a deep copy only.
* AttnLRP: ``lrp.AttnLRP`` against an oracle assembled, layer by layer, from LXT's *explicit*
  rules (``lxt.explicit``: its softmax rule, its uniform-epsilon rule for ``q @ kᵀ`` and
  ``A @ v``, its epsilon rule for Linear, Conv and the additions, its LayerNorm rule, its
  identity rule for GELU and the ``1/√d`` scaling).

Conventions matched: the output relevance is the selected logit (lrp-core with
``normalize_output_relevance=False``; LXT's backward pass from a gradient of 1 at that logit
in efficient mode, from a relevance equal to the logit in explicit mode). Gradient x input has
no stabiliser, so lrp-core runs with ``epsilon=1e-12`` (LXT's explicit rules get the same
``1e-12``; they add it, lrp-core adds ``ε·sign(z)``, a difference of 2e-12/|z|).
``LayerNormRule`` has a fixed stabiliser of 1e-9 on ``x - mean`` and on its output, which no
preset option reaches: alone it moves the result by up to ~2e-6 of its largest value on this
model (6e-8 and 1.4e-6 for the two seeds here). The tests therefore run each preset with
``LayerNormRule``'s stabiliser set to 1e-12 too (asserting 1e-6 of the largest relevance), and
check the preset exactly as shipped at 1e-5. LXT's softmax rule (Proposition 3.1) is not
conservative, so conservation is no test here. Skipped without ``lxt`` (CI installs it with
``--no-deps``: these parts need torch only).
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import math
import sys

import numpy as np
import pytest

import lrp_core as lrp

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
pytest.importorskip("lxt", reason="LXT (pip install lxt==2.1 --no-deps) is the oracle here")
lxt_functional = pytest.importorskip("lxt.explicit.functional")
lxt_rules = pytest.importorskip("lxt.explicit.rules")

F = torch.nn.functional
EPSILON = 1e-12  # the presets' epsilon and LXT's: gradient x input has none
IMAGE, PATCH, CLASSES = 32, 8, 10


def _with_small_layer_norm_stabiliser(preset):
    return lrp.Composite(*preset.primitives,
                         lrp.GlobalTypeMap({lrp.LayerNorm: lrp.LayerNormRule(epsilon=EPSILON)}))


def _vision_transformer(seed):
    """A small torchvision ViT, float64, eval mode, every parameter drawn anew (torchvision
    zeroes the head, the biases, the class token and LayerNorm's β), so that the biases and
    the constants inside (class token, positional embedding) take their share."""
    torch.manual_seed(seed)
    model = torchvision.models.VisionTransformer(
        image_size=IMAGE, patch_size=PATCH, num_layers=2, num_heads=2, hidden_dim=32,
        mlp_dim=64, num_classes=CLASSES)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2 and name != "class_token" and "pos_embedding" not in name:
                p.normal_(0.0, p[0].numel() ** -0.5)  # weights: unit-variance outputs
            elif name.endswith("ln_1.weight") or name.endswith("ln_2.weight") \
                    or name == "encoder.ln.weight":
                p.normal_(1.0, 0.2)
            else:  # biases, LayerNorm's beta, class token, positional embedding
                p.normal_(0.0, 0.3)
    return model.double().eval()


def _input(seed):
    return torch.randn(2, 3, IMAGE, IMAGE, dtype=torch.float64,
                       generator=torch.Generator().manual_seed(100 + seed))


def _snapshot(model):
    return ({n: p.detach().clone() for n, p in model.state_dict().items()},
            [type(m) for m in model.modules()])


def _assert_untouched(model, before):
    state, types = before
    assert [type(m) for m in model.modules()] == types
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name]), name
    for cls in (torch.nn.GELU, torch.nn.LayerNorm, torch.nn.MultiheadAttention):
        assert cls.forward.__module__.startswith("torch."), f"{cls.__name__} was patched"


def _close(got, expected, rtol):
    """``got`` equals ``expected`` to ``rtol`` of the largest relevance (elementwise relative
    error is meaningless for the relevances near 0); returns the error measured."""
    got = got.numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * scale)
    return np.abs(got - expected).max() / scale


# -- CP-LRP: LXT's efficient mode ----------------------------------------------------------------

def _lxt_cp_lrp_patch_map():
    """LXT's patch map for torchvision's ViT (``lxt.efficient.models.vit_torch.cp_LRP``).

    ``lxt.efficient``'s and ``lxt.efficient.models``' ``__init__`` import LXT's patch maps for
    Hugging Face models, hence ``transformers``; the ViT map and the patch functions need torch
    only. So the two packages are registered without running their ``__init__`` while the ViT
    map is imported, and ``sys.modules`` is restored afterwards."""
    before = set(sys.modules)
    try:
        for name in ("lxt.efficient", "lxt.efficient.models"):
            if name not in sys.modules:
                spec = importlib.util.find_spec(name)
                sys.modules[name] = importlib.util.module_from_spec(spec)
        return importlib.import_module("lxt.efficient.models.vit_torch").cp_LRP
    finally:
        for name in set(sys.modules) - before:
            del sys.modules[name]


def _lxt_cp_lrp_copy(model):
    """A deep copy of ``model`` patched as ``lxt.efficient.monkey_patch(vision_transformer,
    cp_LRP)`` patches it, but without touching torch's classes: LXT's patch functions are
    applied to private subclasses of ``nn.GELU``, ``nn.LayerNorm`` and
    ``nn.MultiheadAttention``, and the copy's modules of those classes are moved to them.
    The user's model is not modified."""
    patch_map = _lxt_cp_lrp_patch_map()
    patched = {}
    for cls, patch in patch_map.items():
        patched[cls] = type(f"LXT{cls.__name__}", (cls,), {})
        assert patch(patched[cls]), f"LXT could not patch {cls.__name__}"
    twin = copy.deepcopy(model)
    count = 0
    for module in twin.modules():
        if type(module) in patched:
            module.__class__ = patched[type(module)]
            count += 1
    assert count == 2 * 4 + 1  # per block GELU, 2 LayerNorms, attention; the final LayerNorm
    return twin


def _lxt_efficient_relevance(model, x, selection):
    """LXT's efficient mode: gradient x input, backward from a gradient of 1 at the selected
    logit (so the output relevance is the logit itself)."""
    twin = _lxt_cp_lrp_copy(model)
    x = x.clone().requires_grad_(True)
    out = twin(x)
    (grad,) = torch.autograd.grad(out[torch.arange(len(x)), selection].sum(), x)
    return (x * grad).detach().numpy(), out.detach().numpy()


@pytest.mark.parametrize("seed", [0, 1])
def test_cp_lrp_equals_lxt_efficient_mode_on_vision_transformer(seed):
    model = _vision_transformer(seed)
    x = _input(seed)
    before = _snapshot(model)
    selection = [3, 7]
    expected, logits = _lxt_efficient_relevance(model, x, selection)
    np.testing.assert_allclose(logits, model(x).detach().numpy(), rtol=1e-12, atol=1e-12)

    composite = _with_small_layer_norm_stabiliser(lrp.CPLRP(epsilon=EPSILON))
    analyzer = lrp.LRP(model, composite, normalize_output_relevance=False)
    explanation = analyzer(x, selection)
    np.testing.assert_allclose(explanation.output.numpy(), logits, rtol=1e-12, atol=1e-12)
    error = _close(explanation.val, expected, 1e-6)
    print(f"CP-LRP vs LXT efficient, seed {seed}: {error:.2e} of the largest relevance")
    # the preset as shipped (LayerNormRule's fixed stabiliser 1e-9)
    shipped = lrp.LRP(model, lrp.CPLRP(epsilon=EPSILON), normalize_output_relevance=False)
    print(f"  the preset as shipped: {_close(shipped(x, selection).val, expected, 1e-5):.2e}")
    # lrp-core's default start (relevance 1 at the logit) is the same map divided by the logit
    normalized = lrp.LRP(model, composite)(x, selection).val
    _close(normalized, expected / logits[[0, 1], selection].reshape(2, 1, 1, 1), 1e-6)
    _assert_untouched(model, before)


# -- AttnLRP: an oracle assembled from LXT's explicit rules --------------------------------------

def _split_heads(t, heads):
    """(N, T, E) -> (N, heads, T, E / heads), as ``nn.MultiheadAttention`` splits them."""
    n, tokens, embed = t.shape
    return t.reshape(n, tokens, heads, embed // heads).permute(0, 2, 1, 3)


def _lxt_attn_lrp_forward(model, x):
    """torchvision's ``VisionTransformer.forward`` written out with an LXT explicit rule on
    every operation that does not only move values (as AttnLRP assigns them, Achtibat et al.,
    ICML 2024). In explicit mode LXT's backward pass carries relevance, not gradient."""
    eps = EPSILON
    ln = lxt_functional.layer_norm_grad_fn.apply  # (x, weight, bias, ln eps, LRP epsilon)
    linear = lxt_functional.linear_epsilon
    n, hidden = len(x), model.hidden_dim
    params = {name: p.detach() for name, p in model.named_parameters()}

    def conv_proj(t):
        return F.conv2d(t, params["conv_proj.weight"], params["conv_proj.bias"], stride=PATCH)

    h = lxt_rules.epsilon_lrp(conv_proj, eps, x)  # LXT's epsilon rule for any function
    h = h.reshape(n, hidden, -1).permute(0, 2, 1)
    h = torch.cat([params["class_token"].expand(n, -1, -1), h], dim=1)
    h = lxt_functional.add2(h, params["encoder.pos_embedding"].expand_as(h), epsilon=eps)
    for block in model.encoder.layers:
        attention = block.self_attention
        heads, dim = attention.num_heads, hidden // attention.num_heads
        w_q, w_k, w_v = attention.in_proj_weight.detach().chunk(3)
        b_q, b_k, b_v = attention.in_proj_bias.detach().chunk(3)
        a = ln(h, block.ln_1.weight.detach(), block.ln_1.bias.detach(), block.ln_1.eps, eps)

        q = _split_heads(linear(a, w_q, b_q, epsilon=eps), heads)
        k = _split_heads(linear(a, w_k, b_k, epsilon=eps), heads)
        v = _split_heads(linear(a, w_v, b_v, epsilon=eps), heads)
        scale = 1 / math.sqrt(dim)
        q = lxt_rules.identity(lambda t, c=scale: t * c, q)  # a constant scaling
        scores = lxt_functional.matmul(q, k.transpose(-1, -2), epsilon=eps)
        weights = lxt_functional.softmax(scores, -1)
        mixed = lxt_functional.matmul(weights, v, epsilon=eps)
        mixed = mixed.permute(0, 2, 1, 3).reshape(n, -1, hidden)
        out = linear(mixed, attention.out_proj.weight.detach(),
                     attention.out_proj.bias.detach(), epsilon=eps)
        h = lxt_functional.add2(out, h, epsilon=eps)
        fc1, fc2 = block.mlp[0], block.mlp[3]
        m = ln(h, block.ln_2.weight.detach(), block.ln_2.bias.detach(), block.ln_2.eps, eps)
        m = linear(m, fc1.weight.detach(), fc1.bias.detach(), epsilon=eps)
        m = lxt_rules.identity(F.gelu, m)
        m = linear(m, fc2.weight.detach(), fc2.bias.detach(), epsilon=eps)
        h = lxt_functional.add2(h, m, epsilon=eps)
    final = model.encoder.ln
    h = ln(h, final.weight.detach(), final.bias.detach(), final.eps, eps)
    head = model.heads.head
    return linear(h[:, 0], head.weight.detach(), head.bias.detach(), epsilon=eps)


def _lxt_explicit_relevance(model, x, selection):
    x = x.clone().requires_grad_(True)
    out = _lxt_attn_lrp_forward(model, x)
    start = torch.zeros_like(out)
    rows = torch.arange(len(x))
    start[rows, selection] = out.detach()[rows, selection]  # the relevance: the logit
    (relevance,) = torch.autograd.grad(out, x, start)
    return relevance.detach().numpy(), out.detach().numpy()


@pytest.mark.parametrize("seed", [0, 1])
def test_attn_lrp_equals_lxt_explicit_rules_on_vision_transformer(seed):
    model = _vision_transformer(seed)
    x = _input(seed)
    before = _snapshot(model)
    selection = [3, 7]
    expected, logits = _lxt_explicit_relevance(model, x, selection)
    # the oracle's forward pass is torchvision's
    np.testing.assert_allclose(logits, model(x).detach().numpy(), rtol=1e-12, atol=1e-12)

    composite = _with_small_layer_norm_stabiliser(lrp.AttnLRP(epsilon=EPSILON))
    explanation = lrp.LRP(model, composite, normalize_output_relevance=False)(x, selection)
    error = _close(explanation.val, expected, 1e-6)
    print(f"AttnLRP vs LXT explicit, seed {seed}: {error:.2e} of the largest relevance")
    shipped = lrp.LRP(model, lrp.AttnLRP(epsilon=EPSILON), normalize_output_relevance=False)
    print(f"  the preset as shipped: {_close(shipped(x, selection).val, expected, 1e-5):.2e}")
    # not conservative (the softmax rule): the test above is no conservation test; CP-LRP on
    # the same model differs, so the comparison can tell the two presets apart
    cp = lrp.LRP(model, _with_small_layer_norm_stabiliser(lrp.CPLRP(epsilon=EPSILON)),
                 normalize_output_relevance=False)(x, selection).val
    assert np.abs(cp.numpy() - expected).max() > 1e-3 * np.abs(expected).max()
    _assert_untouched(model, before)
