"""The torch reader's attention with constant masks, ``add_bias_kv``/``add_zero_attn``,
``nn.TransformerEncoderLayer``/``nn.TransformerEncoder``, and ``batch_first=False`` (the reader
follows a moved batch axis); the core's treatment of masked (``-inf``) scores.

Oracles: the model's own forward (float64, to 1e-12); for CP-LRP, gradient x input of the
encoder written out by hand from the module's parameters with the softmax output detached,
LayerNorm's standard deviation detached and GELU under the identity rule
(``x * (gelu(x) / x).detach()``), as in tests/test_lxt_oracle.py; for ``batch_first=False``,
the same model built with ``batch_first=True`` and the same weights.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import lrp_core as lrp
from lrp_core.backends.readers.torch.propagation import PROPAGATION_BATCH

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

L, E, HEADS = 5, 8, 2


def _seeded(module, seed=0):
    torch.manual_seed(seed)
    for p in module.parameters():  # biases and LayerNorm's β non-zero too
        p.data = torch.randn_like(p) * 0.5
    return module.double().eval()


def _x(n=3, length=L, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, length, E, dtype=torch.float64, generator=generator)


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_forward(model, x):
    graph = lrp.from_torch(model, input_shape=tuple(x.shape[1:]))
    with torch.no_grad():
        expected = model(x)
    got = lrp.LRP(graph)(x).output
    np.testing.assert_allclose(np.asarray(got), expected.numpy(), rtol=1e-12, atol=1e-12)
    return graph


def _causal_bool(length=L):
    return torch.ones(length, length, dtype=torch.bool).triu(1)  # True: masked (MHA)


# -- forward: nn.MultiheadAttention with constant masks ---------------------------------------
class _Attention(nn.Module):
    def __init__(self, mask=None, is_causal=False, need_weights=False, **kwargs):
        super().__init__()
        self.attn = nn.MultiheadAttention(E, HEADS, batch_first=True, **kwargs)
        self.fc = nn.Linear(E, 3)
        self.is_causal, self.need_weights = is_causal, need_weights
        self.register_buffer("mask", mask)

    def forward(self, x):
        out, _ = self.attn(x, x, x, attn_mask=self.mask, is_causal=self.is_causal,
                           need_weights=self.need_weights)
        return self.fc(out[:, -1])


_MASKS = {
    "bool causal": lambda: _causal_bool(),
    "float random": lambda: torch.randn(L, L, dtype=torch.float64,
                                        generator=torch.Generator().manual_seed(3)),
    "generate_square_subsequent_mask": lambda: nn.Transformer.generate_square_subsequent_mask(
        L, dtype=torch.float64),
    "bool sparse": lambda: torch.tensor([[i % 2 == 1 and j % 3 == 0 for j in range(L)]
                                         for i in range(L)]),
}


@pytest.mark.parametrize("mask", sorted(_MASKS))
@pytest.mark.parametrize("need_weights", [False, True])
def test_multihead_attention_constant_mask_forward(mask, need_weights):
    model = _seeded(_Attention(_MASKS[mask](), need_weights=need_weights))
    graph = _assert_forward(model, _x())
    assert sum(isinstance(layer, lrp.AddConstant) for layer in graph) == 1


def test_multihead_attention_is_causal_hint():
    # torch: with need_weights=False the causal mask is applied, whatever attn_mask holds
    model = _seeded(_Attention(_causal_bool(), is_causal=True))
    _assert_forward(model, _x())


@pytest.mark.parametrize("kwargs", [{"add_bias_kv": True}, {"add_zero_attn": True},
                                    {"add_bias_kv": True, "add_zero_attn": True}])
@pytest.mark.parametrize("masked", [False, True])
def test_add_bias_kv_and_add_zero_attn(kwargs, masked):
    model = _seeded(_Attention(_causal_bool() if masked else None, **kwargs))
    graph = _assert_forward(model, _x())
    assert sum(isinstance(layer, lrp.ConcatConstant) for layer in graph) == 2 * len(kwargs)
    finite = lrp.LRP(graph, lrp.AttnLRP())(_x(), [0, 1, 2]).val
    assert np.all(np.isfinite(np.asarray(finite)))


# -- forward: F.scaled_dot_product_attention with constant masks ------------------------------
class _Sdpa(nn.Module):
    def __init__(self, mask=None, is_causal=False):
        super().__init__()
        self.qkv = nn.Linear(E, 3 * E)
        self.fc = nn.Linear(E, 3)
        self.is_causal = is_causal
        self.register_buffer("mask", mask)

    def forward(self, x):
        n, length, _ = x.shape
        q, k, v = self.qkv(x).reshape(n, length, 3, HEADS, E // HEADS).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask,
                                             is_causal=self.is_causal)
        return self.fc(out.transpose(1, 2).reshape(n, length, E)[:, -1])


@pytest.mark.parametrize("mask, is_causal", [
    (None, True),
    (~_causal_bool(), False),  # sdpa: True takes part
    (torch.randn(L, L, dtype=torch.float64), False),
    (torch.where(_causal_bool(), -math.inf, 0.0).double().expand(1, HEADS, L, L), False),
])
def test_scaled_dot_product_attention_constant_mask_forward(mask, is_causal):
    model = _seeded(_Sdpa(mask, is_causal))
    graph = _assert_forward(model, _x())
    assert sum(isinstance(layer, lrp.AddConstant) for layer in graph) == 1


# -- nn.TransformerEncoderLayer / nn.TransformerEncoder --------------------------------------
class _Encoder(nn.Module):
    """A small causal encoder; ``batch_first=False`` transposes before and after it."""

    def __init__(self, batch_first=True, norm_first=False, activation="gelu", layers=2,
                 masked=True):
        super().__init__()
        layer = nn.TransformerEncoderLayer(E, HEADS, 16, dropout=0.1, activation=activation,
                                           batch_first=batch_first, norm_first=norm_first)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(E),
                                             enable_nested_tensor=False)
        self.fc = nn.Linear(E, 3)
        self.batch_first = batch_first
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(
            L, dtype=torch.float64) if masked else None)

    def forward(self, x):
        if self.batch_first:
            return self.fc(self.encoder(x, mask=self.mask)[:, -1])
        h = self.encoder(x.transpose(0, 1), mask=self.mask)
        return self.fc(h.transpose(0, 1)[:, -1])


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["gelu", "relu"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_transformer_encoder_forward(norm_first, activation, batch_first):
    model = _seeded(_Encoder(batch_first, norm_first, activation))
    graph = _assert_forward(model, _x())
    assert sum(isinstance(layer, lrp.Softmax) for layer in graph) == 2
    assert not any(isinstance(layer, lrp.Permute) and layer.axes[0] != 0 for layer in graph)


def test_transformer_encoder_layer_is_causal():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.TransformerEncoderLayer(E, HEADS, 16, dropout=0.0, batch_first=True)
            self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(L))

        def forward(self, x):
            return self.layer(x, src_mask=self.mask, is_causal=True).flatten(1)

    _assert_forward(_seeded(Block()), _x())


# -- relevance ---------------------------------------------------------------------------------
def _identity_rule(fn, x):
    """LXT's identity rule as gradient x input: ``x * (fn(x) / x).detach()``."""
    return x * (fn(x) / x).detach()


def _layer_norm_std_detached(m: nn.LayerNorm, x):
    centered = x - x.mean(-1, keepdim=True)
    std = torch.sqrt(centered.pow(2).mean(-1, keepdim=True) + m.eps)
    return centered / std.detach() * m.weight + m.bias


def _cp_lrp_oracle(model: _Encoder, x, patched=True):
    """The batch-first causal post-norm encoder with GELU, written out from its parameters:
    CP-LRP's modifications (``patched``) or the plain forward."""
    def norm(m, h):
        return _layer_norm_std_detached(m, h) if patched else F.layer_norm(
            h, m.normalized_shape, m.weight, m.bias, m.eps)

    mask = model.mask
    n, length, _ = x.shape
    d = E // HEADS
    h = x
    for layer in model.encoder.layers:
        attn = layer.self_attn
        q, k, v = F.linear(h, attn.in_proj_weight, attn.in_proj_bias).chunk(3, -1)
        q, k, v = (t.reshape(n, length, HEADS, d).transpose(1, 2) for t in (q, k, v))
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + mask, -1)
        if patched:
            weights = weights.detach()
        mixed = (weights @ v).transpose(1, 2).reshape(n, length, E)
        h = norm(layer.norm1, h + F.linear(mixed, attn.out_proj.weight, attn.out_proj.bias))
        inner = F.linear(h, layer.linear1.weight, layer.linear1.bias)
        inner = _identity_rule(F.gelu, inner) if patched else F.gelu(inner)
        h = norm(layer.norm2, h + F.linear(inner, layer.linear2.weight, layer.linear2.bias))
    h = norm(model.encoder.norm, h)
    return F.linear(h[:, -1], model.fc.weight, model.fc.bias)


def _gradient_x_input(fn, x, selection):
    x = x.clone().requires_grad_(True)
    out = fn(x)
    (grad,) = torch.autograd.grad(out[torch.arange(len(x)), selection].sum(), x)
    return (x * grad).detach().numpy()


def _small_layer_norm_stabiliser(preset):
    return lrp.Composite(*preset.primitives,
                         lrp.GlobalTypeMap({lrp.LayerNorm: lrp.LayerNormRule(epsilon=1e-12)}))


def test_cp_lrp_of_causal_encoder_equals_gradient_x_input():
    model = _seeded(_Encoder(batch_first=True, norm_first=False, activation="gelu"))
    before = _snapshot(model)
    x, selection = _x(), [0, 2, 1]
    with torch.no_grad():
        np.testing.assert_allclose(_cp_lrp_oracle(model, x, patched=False).numpy(),
                                   model(x).numpy(), rtol=1e-12, atol=1e-12)
    expected = _gradient_x_input(lambda t: _cp_lrp_oracle(model, t), x, selection)
    composite = _small_layer_norm_stabiliser(lrp.CPLRP(epsilon=1e-12))
    got = np.asarray(lrp.LRP(model, composite, normalize_output_relevance=False)(x, selection).val)
    scale = np.abs(expected).max()
    assert np.all(np.isfinite(got))
    assert np.abs(got - expected).max() <= 1e-6 * scale
    for key, value in model.state_dict().items():  # the user's model is untouched
        assert torch.equal(value, before[key])


def _mask_node_inputs(analyzer):
    """The value index of the scores each mask (AddConstant) reads, in the graph explained."""
    return [node.inputs[0] for node in analyzer.model.nodes
            if isinstance(node.layer, lrp.AddConstant)]


@pytest.mark.parametrize("preset", ["AttnLRP", "CPLRP", "zero"])
def test_masked_scores_get_zero_relevance(preset):
    model = _seeded(_Encoder(batch_first=True))
    x = _x()
    composite = {"AttnLRP": lrp.AttnLRP(), "CPLRP": lrp.CPLRP(), "zero": None}[preset]
    graph = lrp.from_torch(model, input_shape=(L, E))
    analyzer = lrp.LRP(graph, composite) if composite is not None else lrp.LRP(graph)
    explanation = analyzer(x, [0, 1, 2], layerwise_relevances=True)
    assert np.all(np.isfinite(np.asarray(explanation.val)))
    layerwise = explanation.extras["layerwise_relevances"]
    masked = _causal_bool().numpy()
    sites = _mask_node_inputs(analyzer)
    assert len(sites) == 2
    for site in sites:
        scores = np.asarray(layerwise[site])  # (N, heads, L, L)
        assert np.all(np.isfinite(scores))
        assert np.all(scores[..., masked] == 0)
        if preset != "CPLRP":  # CP-LRP holds the attention constant: no relevance to scores
            assert np.abs(scores[..., ~masked]).max() > 0


def test_masked_softmax_by_construction():
    """The input is the scores: ``softmax(x + mask) @ W``; masked scores get relevance 0."""
    class Masked(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mask", torch.where(_causal_bool(), -math.inf, 0.0).double())
            self.register_buffer("w", torch.randn(L, 3, dtype=torch.float64))

        def forward(self, x):
            return (torch.softmax(x + self.mask, -1) @ self.w).flatten(1)

    model = Masked().eval()
    x = torch.randn(2, L, L, dtype=torch.float64)
    for composite in (lrp.AttnLRP(), None):
        analyzer = lrp.LRP(model, composite) if composite is not None else lrp.LRP(model)
        r = np.asarray(analyzer(x, output_relevance=torch.ones(2, L * 3, dtype=x.dtype)).val)
        assert np.all(np.isfinite(r))
        assert np.all(r[:, _causal_bool().numpy()] == 0)
        # the first query has one key: its softmax is the constant 1, whose relevance is 0
        assert np.all(r[:, 0, 0] == 0)
        assert np.all(r[:, 1:][:, ~_causal_bool().numpy()[1:]] != 0)


@pytest.mark.parametrize("preset", ["AttnLRP", "CPLRP"])
def test_batch_first_false_equals_batch_first_true(preset):
    first = _seeded(_Encoder(batch_first=True))
    second = _Encoder(batch_first=False).double().eval()
    second.load_state_dict(first.state_dict())
    x, selection = _x(), [1, 0, 2]
    composite = getattr(lrp, preset)()
    a = np.asarray(lrp.LRP(first, composite)(x, selection).val)
    b = np.asarray(lrp.LRP(second, composite)(x, selection).val)
    assert np.all(np.isfinite(a)) and np.abs(a).max() > 0
    np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12 * np.abs(a).max())


def test_moved_value_through_elementwise_and_linear_layers():
    """MHA with batch_first=False between transposes, with Linear, GELU, a residual Add and
    LayerNorm on the (L, N, E) values, and the first token taken as x[0]."""
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(E, HEADS)  # batch_first=False
            self.proj = nn.Linear(E, E)
            self.norm = nn.LayerNorm(E)
            self.fc = nn.Linear(E, 3)
            self.register_buffer("mask", _causal_bool())

        def forward(self, x):
            h = x.permute(1, 0, 2)                       # (L, N, E)
            a, _ = self.attn(h, h, h, attn_mask=self.mask)
            h = self.norm(h + F.gelu(self.proj(a)) * 0.5)
            return self.fc(h[0])                          # the first token, (N, E)

    model = _seeded(Model())
    graph = _assert_forward(model, _x())
    assert np.all(np.isfinite(np.asarray(lrp.LRP(graph, lrp.AttnLRP())(_x(), [0, 1, 2]).val)))


# -- core: -inf in a constant, -inf into a softmax ---------------------------------------------
def test_core_softmax_rules_on_masked_scores():
    x = np.array([[0.3, -np.inf, 1.2, -np.inf]])
    softmax = lrp.Softmax(-1)
    r = np.array([[0.5, 0.0, -0.2, 0.0]])
    for rule in (lrp.SoftmaxRule(), lrp.ZeroRule(), lrp.EpsilonRule(1e-6)):
        (got,) = rule.propagate(softmax, None, (x,), r)
        assert np.all(np.isfinite(got)) and got[0, 1] == 0 and got[0, 3] == 0
        finite = x[:, [0, 2]]  # the unmasked entries: the softmax over them alone
        (expected,) = rule.propagate(softmax, None, (finite,), r[:, [0, 2]])
        np.testing.assert_allclose(got[:, [0, 2]], expected, rtol=1e-12)


def test_core_add_constant_may_hold_minus_infinity_only():
    mask = np.array([0.0, -np.inf, 0.0])
    graph = lrp.Chain(lrp.Dense(np.eye(3), None), lrp.AddConstant(mask), lrp.Softmax(-1),
                      lrp.Dense(np.ones((2, 3)), None))
    r = np.asarray(lrp.LRP(graph, lrp.AttnLRP())(np.array([[1.0, 2.0, 3.0]]), [0]).val)
    assert np.all(np.isfinite(r)) and r[0, 1] == 0
    for bad in (np.nan, np.inf):
        broken = lrp.Chain(lrp.Dense(np.eye(3), None), lrp.AddConstant(np.array([0.0, bad, 0.0])),
                           lrp.Softmax(-1), lrp.Dense(np.ones((2, 3)), None))
        with pytest.raises(lrp.NonFiniteError, match=r"AddConstant\(\(3,\)\)\): value"):
            lrp.LRP(broken)(np.array([[1.0, 2.0, 3.0]]))


# -- refusals ----------------------------------------------------------------------------------
def _refused(model, match, shape=(L, E)):
    with pytest.raises(lrp.UnsupportedOperatorError, match=match) as info:
        lrp.from_torch(model, input_shape=shape)
    return str(info.value)


class _Call(nn.Module):
    def __init__(self, call, **kwargs):
        super().__init__()
        self.attn = nn.MultiheadAttention(E, HEADS, **kwargs)
        self.call = call

    def forward(self, x):
        return self.call(self, x)


def test_mask_computed_from_the_input_is_refused():
    message = _refused(_Call(lambda m, x: m.attn(x, x, x, key_padding_mask=x.sum(-1) > 0)[0]
                             .flatten(1), batch_first=True), "key_padding_mask")
    assert "mask must be a constant of the model" in message and "test_torch_attention" in message
    message = _refused(_Call(lambda m, x: m.attn(x, x, x, attn_mask=(x @ x.transpose(1, 2))[0]
                                                 )[0].flatten(1), batch_first=True), "attn_mask")
    assert "models of one input" in message
    _refused(_Call(lambda m, x: F.scaled_dot_product_attention(x, x, x, attn_mask=x @ x.mT)
                   .flatten(1)), "attn_mask is computed from the model input")


def test_constant_per_sample_masks_are_refused():
    batch = PROPAGATION_BATCH  # a 3-D mask fits one batch size (the reader's propagation's)
    _refused(_Call(lambda m, x: m.attn(x, x, x, attn_mask=torch.zeros(batch * HEADS, L, L))[0]
                   .flatten(1), batch_first=True), "differs per sample")
    _refused(_Call(lambda m, x: m.attn(x, x, x, key_padding_mask=torch.zeros(batch, L).bool())[0]
                   .flatten(1), batch_first=True), "padding mask per sample")


def test_batch_first_false_on_the_model_input_is_refused():
    message = _refused(_Call(lambda m, x: m.attn(x, x, x)[0].flatten(1)), "batch_first=False")
    assert "batch axis first" in message and "x.transpose(0, 1)" in message
    layer = nn.TransformerEncoderLayer(E, HEADS, 16, dropout=0.0).eval()

    class Direct(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x):
            return self.layer(x).flatten(1)

    _refused(Direct(), "models whose input has the batch axis first")


def test_moved_batch_axis_reaching_a_mixing_call_is_refused():
    def flattens(m, x):  # flatten(1) of (L, N, E) would merge the batch with the embedding
        return m.attn(x.transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1))[0].flatten(1)

    message = _refused(_Call(flattens), "batch axis is moved")
    assert "flatten" in message and "test_torch_attention_masks.py" in message

    def returns_moved(m, x):
        return m.attn(x.transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1))[0]

    _refused(_Call(returns_moved), "output has its batch axis moved")

    def mixes(m, x):  # a moved value added to a batch-first one
        return m.attn(x.transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1))[0] + x[:, 0]

    _refused(_Call(mixes), "batch axis is first")
