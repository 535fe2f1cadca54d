"""The rules of products and the softmax: UniformRule, CPRule, ProductRule, SoftmaxRule, and
what the generic rules (ZeroRule, EpsilonRule) do on Mul, MatMul and Softmax.

Hand-computed cases (the arithmetic is written next to each), torch's autograd as the oracle
where a rule equals gradient x input of a modified function, and the presets AttnLRP / CPLRP
on a hand-built attention block against gradient x input of a torch module in which what the
rule holds constant is detached (CP-LRP: the attention weights, the sigmoid gate and the layer
norm's standard deviation; AttnLRP: each product's gradient halved, the standard deviation
detached), in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import lrp_core as lrp

torch = pytest.importorskip("torch")
xps = pytest.importorskip("array_api_strict")

rng = np.random.default_rng(13)

TINY = 1e-30  # a stabiliser that changes nothing in float64 at these magnitudes


# -- Mul, hand-computed ----------------------------------------------------------------------------

A = np.array([[2.0, -1.0, 3.0]])
B = np.array([[0.5, 4.0, -2.0]])  # y = a * b = [1, -4, -6]
R = np.array([[0.3, 0.6, -0.9]])


def test_mul_uniform_rule_halves():
    r_a, r_b = lrp.propagate(lrp.UniformRule(), lrp.Mul(), (A, B), R)
    np.testing.assert_allclose(r_a, [[0.15, 0.3, -0.45]], rtol=1e-15)
    np.testing.assert_allclose(r_b, [[0.15, 0.3, -0.45]], rtol=1e-15)


@pytest.mark.parametrize("gate", [0, 1])
def test_mul_cp_rule_gives_everything_to_the_other_factor(gate):
    eps = 0.1
    r = lrp.propagate(lrp.CPRule(eps, gate=gate), lrp.Mul(), (A, B), R)
    # the other factor x: R_x = x * g * R / (y + eps*sign(y)), y = [1, -4, -6]
    expected = [[0.3 * 1 / 1.1, 0.6 * -4 / -4.1, -0.9 * -6 / -6.1]]
    np.testing.assert_allclose(r[1 - gate], expected, rtol=1e-14)
    np.testing.assert_array_equal(r[gate], np.zeros_like(A))


def test_mul_under_the_generic_rules_is_gradient_times_input():
    """ZeroRule / EpsilonRule: each factor gets ``a * b * R / stab(y)``, i.e. about ``R``: the
    relevance of a product doubles, as gradient x input does (x·∇(ab) = 2ab)."""
    r_a, r_b = lrp.propagate(lrp.EpsilonRule(0.1), lrp.Mul(), (A, B), R)
    expected = [[0.3 * 1 / 1.1, 0.6 * -4 / -4.1, -0.9 * -6 / -6.1]]
    np.testing.assert_allclose(r_a, expected, rtol=1e-14)
    np.testing.assert_allclose(r_b, expected, rtol=1e-14)
    r_a, r_b = lrp.propagate(lrp.ZeroRule(), lrp.Mul(), (A, B), R)
    np.testing.assert_allclose(r_a + r_b, 2 * R, rtol=1e-8)


def test_mul_broadcast_factor_gets_its_relevance_summed_back():
    x = np.array([[[1.0, 2.0], [3.0, -1.0]]])  # (1, 2, 2)
    g = np.array([[[0.5], [0.25]]])  # (1, 2, 1): one gate per row
    r = np.array([[[0.2, 0.4], [-0.6, 0.8]]])
    r_x, r_g = lrp.propagate(lrp.UniformRule(), lrp.Mul(), (x, g), r)
    np.testing.assert_allclose(r_x, r / 2, rtol=1e-15)
    np.testing.assert_allclose(r_g, [[[0.3], [0.1]]], rtol=1e-14)  # (0.2+0.4)/2, (-0.6+0.8)/2
    r_x, r_g = lrp.propagate(lrp.CPRule(TINY, gate=0), lrp.Mul(), (x, g), r)
    # x is the gate here: row sums of R go to g: [0.6, 0.2]
    np.testing.assert_allclose(r_g, [[[0.6], [0.2]]], rtol=1e-14)
    np.testing.assert_array_equal(r_x, np.zeros_like(x))


# -- MatMul, hand-computed ------------------------------------------------------------------------

MA = np.array([[[1.0, 2.0]]])  # (1, 1, 2)
MB = np.array([[[3.0, -1.0], [0.5, 2.0]]])  # (1, 2, 2); y = [[1*3 + 2*0.5, -1 + 4]] = [[4, 3]]
MR = np.array([[[0.8, -0.6]]])


def test_matmul_uniform_rule():
    r_a, r_b = lrp.propagate(lrp.UniformRule(TINY), lrp.MatMul(), (MA, MB), MR)
    # s = R / (2y) = [0.8/8, -0.6/6] = [0.1, -0.1]
    # R_a,k = a_k Σ_j b_kj s_j: [1*(3*0.1 + -1*-0.1), 2*(0.5*0.1 + 2*-0.1)] = [0.4, -0.3]
    np.testing.assert_allclose(r_a, [[[0.4, -0.3]]], rtol=1e-14)
    # R_b,kj = a_k b_kj s_j: [[1*3*0.1, 1*-1*-0.1], [2*0.5*0.1, 2*2*-0.1]]
    np.testing.assert_allclose(r_b, [[[0.3, 0.1], [0.1, -0.4]]], rtol=1e-14)
    assert r_a.sum() + r_b.sum() == pytest.approx(MR.sum(), rel=1e-14)  # conservative


def test_matmul_uniform_rule_epsilon():
    eps = 0.5
    r_a, _ = lrp.propagate(lrp.UniformRule(eps), lrp.MatMul(), (MA, MB), MR)
    s = [0.8 / (8 + eps), -0.6 / (6 + eps)]
    np.testing.assert_allclose(r_a, [[[1 * (3 * s[0] - 1 * s[1]), 2 * (0.5 * s[0] + 2 * s[1])]]],
                               rtol=1e-14)


def test_matmul_cp_rule():
    r_a, r_b = lrp.propagate(lrp.CPRule(TINY, gate=0), lrp.MatMul(), (MA, MB), MR)
    # a held constant: s = R / y = [0.2, -0.2]; R_b,kj = b_kj a_k s_j
    np.testing.assert_allclose(r_b, [[[0.6, 0.2], [0.2, -0.8]]], rtol=1e-14)
    np.testing.assert_array_equal(r_a, np.zeros_like(MA))
    r_a, r_b = lrp.propagate(lrp.CPRule(TINY, gate=1), lrp.MatMul(), (MA, MB), MR)
    # b held constant: R_a,k = a_k Σ_j b_kj s_j = [1*(0.6+0.2), 2*(0.1-0.4)] = [0.8, -0.6]
    np.testing.assert_allclose(r_a, [[[0.8, -0.6]]], rtol=1e-14)
    np.testing.assert_array_equal(r_b, np.zeros_like(MB))


def test_matmul_zero_rule_doubles():
    r_a, r_b = lrp.propagate(lrp.ZeroRule(), lrp.MatMul(), (MA, MB), MR)
    np.testing.assert_allclose(r_a, [[[0.8, -0.6]]], rtol=1e-8)
    np.testing.assert_allclose(r_b, [[[0.6, 0.2], [0.2, -0.8]]], rtol=1e-8)


# -- Softmax, hand-computed ------------------------------------------------------------------------

SX = np.array([[1.0, 2.0, 0.0]])
SR = np.array([[0.5, -0.2, 0.1]])


def _softmax_by_hand():
    e = [math.exp(1.0), math.exp(2.0), math.exp(0.0)]
    return [v / sum(e) for v in e]


def test_softmax_rule_by_hand():
    s = _softmax_by_hand()
    got = lrp.propagate(lrp.SoftmaxRule(), lrp.Softmax(-1), SX, SR)
    # R_x,i = x_i (R_i - s_i Σ_j R_j), Σ_j R_j = 0.4
    expected = [[1.0 * (0.5 - s[0] * 0.4), 2.0 * (-0.2 - s[1] * 0.4), 0.0]]
    np.testing.assert_allclose(got, expected, rtol=1e-14)


@pytest.mark.parametrize("epsilon", [0.0, 0.05])
def test_softmax_rule_is_the_epsilon_rule_of_the_jacobian(epsilon):
    """``x_i Σ_j (∂s_j/∂x_i) R_j / (s_j + ε)`` with the Jacobian from autograd."""
    x = rng.standard_normal((2, 3, 5)) * 2
    r = rng.standard_normal(x.shape)
    t = torch.tensor(x, requires_grad=True)
    s = torch.softmax(t, -1)
    (s * (torch.from_numpy(r) / (s.detach() + epsilon))).sum().backward()
    expected = x * t.grad.numpy()
    got = lrp.propagate(lrp.SoftmaxRule(epsilon), lrp.Softmax(-1), x, r)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-13)
    # the generic rule on the softmax: the same with the stabiliser s + eps·sign(s) (s > 0),
    # eps = 1e-9 for ZeroRule
    stabiliser = epsilon or 1e-9
    t.grad = None
    s = torch.softmax(t, -1)
    (s * (torch.from_numpy(r) / (s.detach() + stabiliser))).sum().backward()
    generic = lrp.propagate(lrp.EpsilonRule(epsilon) if epsilon else lrp.ZeroRule(),
                            lrp.Softmax(-1), x, r)
    np.testing.assert_allclose(generic, x * t.grad.numpy(), rtol=1e-10, atol=1e-13)


def test_softmax_rule_over_another_axis_and_masked_scores():
    x = np.array([[[1.0, -np.inf], [0.5, 2.0]]])  # dim 1; -inf: a masked score
    r = np.array([[[0.2, 0.1], [0.3, 0.4]]])
    layer = lrp.Softmax(1)
    got = lrp.SoftmaxRule().propagate(layer, None, (x,), r)[0]
    s = layer(x)
    # column 0: x = [1, 0.5]; column 1: x = [-inf -> 0, 2], s = [0, 1]
    expected = np.array([[[1.0 * (0.2 - s[0, 0, 0] * 0.5), 0.0],
                          [0.5 * (0.3 - s[0, 1, 0] * 0.5), 2.0 * (0.4 - 1.0 * 0.5)]]])
    np.testing.assert_allclose(got, expected, rtol=1e-14)


# -- compatibility and binding --------------------------------------------------------------------

def test_rules_refuse_other_layers():
    for rule in (lrp.UniformRule(), lrp.CPRule(gate=0), lrp.ProductRule()):
        assert not rule.is_compatible(lrp.Dense(np.eye(2)))
        assert rule.is_compatible(lrp.Mul()) and rule.is_compatible(lrp.MatMul())
    assert lrp.SoftmaxRule().is_compatible(lrp.Softmax())
    assert not lrp.SoftmaxRule().is_compatible(lrp.Mul())
    for rule in (lrp.GammaRule(), lrp.ZPlusRule(), lrp.AlphaBetaRule(), lrp.FlatRule()):
        assert not rule.is_compatible(lrp.Mul()) and not rule.is_compatible(lrp.Softmax())
    with pytest.raises(lrp.LRPCompatibilityError, match="ZPlusRule"):
        lrp.propagate(lrp.ZPlusRule(), lrp.Mul(), (A, B), R)


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="UniformRule: epsilon"):
        lrp.UniformRule(0.0)
    with pytest.raises(ValueError, match="gate is 0 or 1"):
        lrp.CPRule(gate=2)
    with pytest.raises(ValueError, match="SoftmaxRule: epsilon"):
        lrp.SoftmaxRule(-1.0)
    with pytest.raises(TypeError, match="ungated"):
        lrp.ProductRule(ungated="uniform")


def test_cp_rule_without_a_gate_outside_an_analyzer():
    with pytest.raises(lrp.LRPCompatibilityError, match="gate=0 or 1"):
        lrp.propagate(lrp.CPRule(), lrp.Mul(), (A, B), R)


def _gated_graph(gate_layer, *, both=False):
    b = lrp.GraphBuilder()
    h = b.add(lrp.Dense(rng.standard_normal((4, 4))), [0])
    g = b.add(gate_layer, [h])
    g = b.add(lrp.Reshape((4,)), [g])  # the gate reaches the product through a reshape
    other = g if both else h
    m = b.add(lrp.Mul(), [other, g])
    return b.build(b.add(lrp.Dense(rng.standard_normal((2, 4))), [m]))


@pytest.mark.parametrize("gate_layer", [lrp.Sigmoid(), lrp.Hardsigmoid(), lrp.Softmax(-1)])
def test_cp_rule_finds_the_gate(gate_layer):
    model = _gated_graph(gate_layer)
    analyzer = lrp.LRP(model, lrp.Composite(lrp.EpsilonRule(),
                                            lrp.GlobalTypeMap({lrp.Mul: lrp.CPRule()})))
    mul = [i for i, layer in enumerate(analyzer.model) if isinstance(layer, lrp.Mul)][0]
    assert analyzer.rules[mul].gate == 1
    x = rng.standard_normal((3, 4))
    e = analyzer(x)
    assert np.all(np.isfinite(e.val))


def test_cp_rule_refuses_a_product_without_a_gate_or_with_two():
    plain = _gated_graph(lrp.ReLU())
    composite = lrp.Composite(lrp.EpsilonRule(), lrp.GlobalTypeMap({lrp.Mul: lrp.CPRule()}))
    with pytest.raises(lrp.LRPCompatibilityError, match="neither factor is"):
        lrp.LRP(plain, composite)
    with pytest.raises(lrp.LRPCompatibilityError, match="both factors are"):
        lrp.LRP(_gated_graph(lrp.Sigmoid(), both=True), composite)


def test_product_rule_chooses_per_product():
    composite = lrp.Composite(lrp.EpsilonRule(), lrp.GlobalTypeMap({lrp.Mul: lrp.ProductRule()}))
    gated = lrp.LRP(_gated_graph(lrp.Sigmoid()), composite)
    plain = lrp.LRP(_gated_graph(lrp.ReLU()), composite)
    assert any(isinstance(rule, lrp.CPRule) and rule.gate == 1 for rule in gated.rules)
    assert any(isinstance(rule, lrp.UniformRule) for rule in plain.rules)
    assert "CPRule" in repr(gated) and "UniformRule" in repr(plain)


def test_a_sigmoid_fused_into_a_dense_is_a_gate():
    b = lrp.GraphBuilder()
    h = b.add(lrp.Dense(rng.standard_normal((4, 4))), [0])
    g = b.add(lrp.Dense(rng.standard_normal((4, 4))), [h])
    g = b.add(lrp.Sigmoid(), [g])  # canonize fuses it into the Dense
    m = b.add(lrp.Mul(), [g, h])
    model = b.build(b.add(lrp.Dense(rng.standard_normal((2, 4))), [m]))
    analyzer = lrp.LRP(model, lrp.EpsilonPlus())
    assert any(isinstance(rule, lrp.CPRule) and rule.gate == 0 for rule in analyzer.rules)


# -- presets --------------------------------------------------------------------------------------

def test_presets_are_registered():
    assert lrp.PRESETS["attn_lrp"] is lrp.AttnLRP and lrp.PRESETS["cp_lrp"] is lrp.CPLRP
    assert "UniformRule" in repr(lrp.preset("attn-lrp", epsilon=1e-4))
    assert "ProductRule" in repr(lrp.CPLRP()) and "SoftmaxRule" in repr(lrp.AttnLRP())
    assert "ProductRule" in repr(lrp.EpsilonPlusFlat())  # gates: CPRule by default


# -- an attention block: the presets against autograd ---------------------------------------

T, D = 4, 6


def _weights(seed=0):
    g = np.random.default_rng(seed)
    return {"gamma": g.uniform(0.5, 1.5, D), "q": g.standard_normal((D, D)) / 2,
            "k": g.standard_normal((D, D)) / 2, "v": g.standard_normal((D, D)),
            "mlp": g.standard_normal((D, D)), "gate": g.standard_normal((D, D)),
            "mix": g.standard_normal((D, D)), "out": g.standard_normal((3, D * T))}


def _attention_graph(w, *, gated: bool):
    """Pre-norm attention with a residual, then ``relu(W r) * gate`` (gated: a sigmoid gate;
    else a second ReLU branch), flattened, one Dense. No biases, no constants."""
    b = lrp.GraphBuilder()
    n = b.add(lrp.LayerNorm(D, w["gamma"], None), [0])
    q = b.add(lrp.Dense(w["q"]), [n])
    k = b.add(lrp.Dense(w["k"]), [n])
    v = b.add(lrp.Dense(w["v"]), [n])
    kt = b.add(lrp.Permute((0, 2, 1)), [k])
    scores = b.add(lrp.MatMul(), [q, kt])
    scores = b.add(lrp.Affine(np.asarray(1 / math.sqrt(D))), [scores])
    attention = b.add(lrp.Softmax(-1), [scores])
    o = b.add(lrp.MatMul(), [attention, v])
    r = b.add(lrp.Add(), [o, 0])
    h = b.add(lrp.Dense(w["mlp"], activation=lrp.ReLU()), [r])
    other = b.add(lrp.Dense(w["gate"], activation=lrp.Sigmoid() if gated else lrp.ReLU()), [r])
    m = b.add(lrp.Mul(), [h, other])
    m = b.add(lrp.Dense(w["mix"]), [m])
    f = b.add(lrp.Flatten(), [m])
    return b.build(b.add(lrp.Dense(w["out"]), [f]))


def _torch_block(w, x, *, gated: bool, cp: bool):
    """The same block in torch with what the rule holds constant detached; products halved in
    their gradient for AttnLRP (value ``ab``, gradients ``b/2`` and ``a/2``)."""
    p = {name: torch.from_numpy(value) for name, value in w.items()}

    def product(op, a, b, gate_is_b=False):
        if cp and gate_is_b:
            return op(a, b.detach())
        if cp:
            return op(a.detach(), b)  # the attention weights are the first factor
        return 0.5 * op(a, b.detach()) + 0.5 * op(a.detach(), b)

    mu = x.mean(-1, keepdim=True)
    sd = torch.sqrt(((x - mu) ** 2).mean(-1, keepdim=True) + 1e-5).detach()
    n = (x - mu) / sd * p["gamma"]
    q, k, v = n @ p["q"].T, n @ p["k"].T, n @ p["v"].T
    if cp:
        attention = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(D), -1)
    else:
        attention = torch.softmax(product(torch.matmul, q, k.transpose(1, 2)) / math.sqrt(D), -1)
    o = product(torch.matmul, attention, v)
    r = o + x
    h = torch.relu(r @ p["mlp"].T)
    other = r @ p["gate"].T
    other = torch.sigmoid(other) if gated else torch.relu(other)
    m = product(torch.mul, h, other, gate_is_b=True) @ p["mix"].T
    return m.reshape(len(x), -1) @ p["out"].T


def _exact(preset):
    """The preset with stabilisers that vanish in float64 (the oracle has none)."""
    return lrp.Composite(*preset.primitives,
                         lrp.GlobalTypeMap({lrp.LayerNorm: lrp.LayerNormRule(epsilon=TINY),
                                            lrp.Add: lrp.EpsilonRule(TINY)}))


def _gradient_times_input(w, x, targets, *, gated, cp):
    t = torch.tensor(x, requires_grad=True)
    out = _torch_block(w, t, gated=gated, cp=cp)
    out[torch.arange(len(x)), torch.tensor(targets)].sum().backward()
    return (t.grad * t).detach().numpy(), out.detach().numpy()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cp_lrp_is_gradient_times_input_with_the_gates_detached(seed):
    w = _weights(seed)
    x = np.random.default_rng(100 + seed).standard_normal((3, T, D))
    targets = [0, 2, 1]
    model = _attention_graph(w, gated=True)
    expected, logits = _gradient_times_input(w, x, targets, gated=True, cp=True)
    np.testing.assert_allclose(model(x), logits, rtol=1e-12)
    analyzer = lrp.LRP(model, _exact(lrp.CPLRP(epsilon=TINY)), normalize_output_relevance=False)
    got = analyzer(x, targets).val
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10 * scale)
    # with zero biases and no constants CP-LRP conserves the logit
    np.testing.assert_allclose(got.reshape(3, -1).sum(1), logits[[0, 1, 2], targets],
                               rtol=1e-9)
    # the preset itself (epsilon 1e-6, stabiliser 1e-9) is close
    preset = lrp.LRP(model, lrp.CPLRP(), normalize_output_relevance=False)(x, targets).val
    np.testing.assert_allclose(preset, expected, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("seed", [0, 1])
def test_attn_lrp_is_gradient_times_input_with_halved_products(seed):
    w = _weights(seed)
    x = np.random.default_rng(200 + seed).standard_normal((2, T, D))
    targets = [1, 0]
    model = _attention_graph(w, gated=False)
    expected, logits = _gradient_times_input(w, x, targets, gated=False, cp=False)
    np.testing.assert_allclose(model(x), logits, rtol=1e-12)
    analyzer = lrp.LRP(model, _exact(lrp.AttnLRP(epsilon=TINY)),
                       normalize_output_relevance=False)
    got = analyzer(x, targets).val
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10 * scale)


def test_the_presets_agree_across_numpy_torch_and_array_api_strict():
    w = _weights(3)
    x = np.random.default_rng(7).standard_normal((2, T, D))
    for gated, preset in [(True, lrp.CPLRP()), (False, lrp.AttnLRP()),
                          (True, lrp.EpsilonPlusFlat()), (True, lrp.preset("zero"))]:
        analyzer = lrp.LRP(_attention_graph(w, gated=gated), preset)
        expected = analyzer(x, [0, 1]).val
        for convert in (torch.from_numpy, xps.asarray):
            got = analyzer(convert(x), [0, 1]).val
            assert type(got) is type(convert(x))
            np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-10,
                                       atol=1e-12 * np.abs(expected).max())


def test_zero_preset_on_an_attention_block_is_gradient_times_input():
    """LRP-0 with the exact linearisations of the products and the softmax is gradient x input
    of the unmodified block (only the layer norm's std is detached, by LayerNormRule)."""
    w = _weights(4)
    x = np.random.default_rng(8).standard_normal((2, T, D))
    model = _attention_graph(w, gated=False)
    composite = lrp.Composite(lrp.ZeroRule(), lrp.GlobalTypeMap({lrp.LayerNorm:
                                                                 lrp.LayerNormRule(epsilon=TINY)}))
    got = lrp.LRP(model, composite, normalize_output_relevance=False)(x, [2, 0]).val
    p = {name: torch.from_numpy(value) for name, value in w.items()}
    t = torch.tensor(x, requires_grad=True)
    mu = t.mean(-1, keepdim=True)
    sd = torch.sqrt(((t - mu) ** 2).mean(-1, keepdim=True) + 1e-5).detach()
    n = (t - mu) / sd * p["gamma"]
    q, k, v = n @ p["q"].T, n @ p["k"].T, n @ p["v"].T
    r = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(D), -1) @ v + t
    m = (torch.relu(r @ p["mlp"].T) * torch.relu(r @ p["gate"].T)) @ p["mix"].T
    out = m.reshape(2, -1) @ p["out"].T
    out[[0, 1], [2, 0]].sum().backward()
    expected = (t.grad * t).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


def test_cp_lrp_conserves_on_torchvision_vision_transformer():
    """torchvision's VisionTransformer read by the torch reader, with zero biases, class token
    and positional embedding: CP-LRP passes the logit on to the input (no relevance to the
    queries and keys, LayerNorm's rule conservative with zero β), up to its stabilisers."""
    vision_transformer = pytest.importorskip("torchvision.models.vision_transformer")
    torch.manual_seed(0)
    model = vision_transformer.VisionTransformer(image_size=32, patch_size=8, num_layers=2,
                                                 num_heads=2, hidden_dim=16, mlp_dim=32,
                                                 num_classes=5).eval().double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or name in ("class_token", "encoder.pos_embedding"):
                p.zero_()
        model.heads.head.weight.normal_()  # torchvision initialises the head to zeros
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    analyzer = lrp.LRP(lrp.from_torch(model, input_shape=(3, 32, 32)), lrp.CPLRP(epsilon=1e-12),
                       normalize_output_relevance=False)
    explanation = analyzer(x, [0, 3])
    logits = model(x)[[0, 1], [0, 3]].detach().numpy()
    assert np.all(np.abs(logits) > 0.1)
    sums = explanation.val.reshape(2, -1).sum(1).numpy()
    np.testing.assert_allclose(sums, logits, rtol=1e-6)
    assert sum(isinstance(rule, lrp.CPRule) for rule in analyzer.rules) == 2  # A·v per block
