"""Oracle tests of every rule, one layer at a time (``lrp.propagate``).

Each expected value is re-derived here from the rule's published equation (architecture,
section 6), either as worked numbers or as an explicit NumPy matrix expression (see
``helpers/oracle.py``: a convolution becomes its explicit matrix, built tap by tap). None of it
replays the library's code.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import lrp_core as lrp

sys.path.insert(0, os.path.dirname(__file__))
from helpers import oracle as O  # noqa: E402

TIGHT = dict(rtol=1e-12, atol=1e-14)

# -- a tiny Dense: 3 inputs, 2 outputs, small integer-ish weights, a signed input ---------------
W = np.array([[1.0, -2.0, -0.5],
              [-1.0, 1.0, 2.0]])
B = np.array([0.5, -1.0])
A = np.array([[2.0, 1.0, -1.0],      # z = [1, -4]
              [0.5, -1.5, 3.0]])      # z = [5.0, 2.5]
R = np.array([[1.0, 2.0],
              [-0.5, 1.5]])


def dense(bias=True, activation=None):
    return lrp.Dense(W.copy(), B.copy() if bias else None, activation=activation)


def step(rule, layer, a, r):
    return np.asarray(lrp.propagate(rule, layer, a, r))


# ---------------------------------------------------------------------------------------------
# Worked numbers (sample 0): z = W a + b = [2 - 2 + 0.5 + 0.5, -2 + 1 - 2 - 1] = [1, -4].
# ---------------------------------------------------------------------------------------------
def test_zero_rule_worked_numbers():
    # s = R / z = [1/1, 2/(-4)] = [1, -0.5]
    # Wᵀs = [1·1 + (-1)(-0.5), -2·1 + 1·(-0.5), -0.5·1 + 2·(-0.5)] = [1.5, -2.5, -1.5]
    # R_in = a ⊙ Wᵀs = [3, -2.5, 1.5]
    got = step(lrp.ZeroRule(), dense(), A[:1], R[:1])
    np.testing.assert_allclose(got, [[3.0, -2.5, 1.5]], rtol=1e-8)  # 1e-9 stabiliser on z ~ 1


def test_epsilon_rule_worked_numbers():
    # ε = 0.5: stab(z) = [1.5, -4.5], s = [2/3, -4/9]
    # Wᵀs = [2/3 + 4/9, -4/3 - 4/9, -1/3 - 8/9] = [10/9, -16/9, -11/9]; R_in = [20/9, -16/9, 11/9]
    got = step(lrp.EpsilonRule(0.5), dense(), A[:1], R[:1])
    np.testing.assert_allclose(got, [[20 / 9, -16 / 9, 11 / 9]], **TIGHT)


def test_zplus_rule_worked_numbers():
    # a⁺ = [2, 1, 0], a⁻ = [0, 0, -1]; W⁺ = [[1,0,0],[0,1,2]], W⁻ = [[0,-2,-.5],[-1,0,0]],
    # b⁺ = [.5, 0]
    # z = W⁺a⁺ + W⁻a⁻ + b⁺ = [2 + 0.5 + 0.5, 1 + 0 + 0] = [3, 1]; s = [1/3, 2]
    # a⁺ ⊙ W⁺ᵀs = [2/3, 2, 0]; a⁻ ⊙ W⁻ᵀs = [0, 0, (-1)(-0.5/3)] = [0, 0, 1/6]
    got = step(lrp.ZPlusRule(), dense(), A[:1], R[:1])
    np.testing.assert_allclose(got, [[2 / 3, 2.0, 1 / 6]], rtol=1e-8)


def test_flat_and_wsquare_rules_worked_numbers():
    # Flat: every input gets Σ_j R_j / 3 = (1 + 2)/3 = 1
    got = step(lrp.FlatRule(), dense(), A[:1], R[:1])
    np.testing.assert_allclose(got, [[1.0, 1.0, 1.0]], rtol=1e-8)
    # W²: rows [1, 4, .25] (sum 5.25) and [1, 1, 4] (sum 6)
    got = step(lrp.WSquareRule(), dense(), A[:1], R[:1])
    expected = [[1 / 5.25 + 2 * 1 / 6, 1 * 4 / 5.25 + 2 * 1 / 6, 1 * 0.25 / 5.25 + 2 * 4 / 6]]
    np.testing.assert_allclose(got, expected, rtol=1e-8)


def test_alpha_beta_worked_numbers():
    # z⁺ = W⁺a⁺ + W⁻a⁻ + b⁺ = [3, 1]       (as in ZPlus)
    # z⁻ = W⁺a⁻ + W⁻a⁺ + b⁻, term by term:
    #   row 0: W⁺a⁻ = 0·0 + 0·0 + 0·(-1) = 0; W⁻a⁺ = 0·2 + (-2)·1 + (-.5)·0 = -2; b⁻ = 0  -> -2
    #   row 1: W⁺a⁻ = 0 + 0 + 2·(-1) = -2;    W⁻a⁺ = (-1)·2 + 0 + 0 = -2;       b⁻ = -1 -> -5
    # s⁺ = [1/3, 2], s⁻ = [-1/2, -2/5]
    # R⁺ = [2/3, 2, 1/6] (as in ZPlus)
    # R⁻ = a⁻ ⊙ W⁺ᵀs⁻ + a⁺ ⊙ W⁻ᵀs⁻ = [0, 0, (-1)(2·(-2/5))] + [2·(-1)(-2/5), 1·(-2)(-1/2), 0]
    #    = [4/5, 1, 4/5]
    # R_in = 2 R⁺ - R⁻ = [4/3 - 4/5, 4 - 1, 1/3 - 4/5]
    got = step(lrp.AlphaBetaRule(2, 1), dense(), A[:1], R[:1])
    np.testing.assert_allclose(got, [[4 / 3 - 4 / 5, 3.0, 1 / 3 - 4 / 5]], rtol=1e-8)


def test_pass_rule_returns_relevance_unchanged():
    square = lrp.Dense(np.array([[1.0, 2.0], [3.0, -4.0]]), np.array([1.0, 1.0]))
    r = np.array([[0.3, -0.7]])
    np.testing.assert_array_equal(step(lrp.PassRule(), square, np.array([[1.0, -1.0]]), r), r)
    # on a reshaping layer, reshaped to the input's shape
    x = np.arange(12.0).reshape(2, 2, 3)
    r = np.arange(12.0).reshape(2, 6) - 5
    np.testing.assert_array_equal(step(lrp.PassRule(), lrp.Flatten(), x, r), r.reshape(2, 2, 3))


# ---------------------------------------------------------------------------------------------
# Every rule against its equation, on the Dense (with bias, two samples) and on convolutions
# ---------------------------------------------------------------------------------------------
RULES = [
    lrp.ZeroRule(),
    lrp.EpsilonRule(),
    lrp.EpsilonRule(0.3),
    lrp.GammaRule(),
    lrp.GammaRule(1.5),
    lrp.WSquareRule(),
    lrp.FlatRule(),
    lrp.ZPlusRule(),
    lrp.AlphaBetaRule(),
    lrp.AlphaBetaRule(3.0, 2.0),
    lrp.GeneralizedGammaRule(),
    lrp.GeneralizedGammaRule(0.7),
    lrp.ZBoxRule(-1.0, 2.0),
]


@pytest.mark.parametrize("rule", RULES, ids=repr)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_rule_on_dense_matches_equation(rule, bias):
    b = B if bias else np.zeros(2)
    got = step(rule, dense(bias), A, R)
    np.testing.assert_allclose(got, O.oracle_rule(rule, W, b, A, R), **TIGHT)


@pytest.mark.parametrize("rule", RULES, ids=repr)
def test_rule_ignores_activation_of_layer(rule):
    """The modified layer drops the activation: rules read the pre-activation."""
    got = step(rule, dense(activation=lrp.relu), A, R)
    np.testing.assert_allclose(got, O.oracle_rule(rule, W, B, A, R), **TIGHT)


def test_zbox_rule_with_array_bounds_on_dense():
    low = np.array([-1.0, -2.0, -1.5])
    high = np.array([2.5, 1.0, 3.0])
    rule = lrp.ZBoxRule(low, high)
    np.testing.assert_allclose(step(rule, dense(), A, R), O.lrp_zbox(W, B, A, R, low, high),
                               **TIGHT)
    # with the batch axis too
    low_b, high_b = np.stack([low, low - 1]), np.stack([high, high + 1])
    rule = lrp.ZBoxRule(low_b, high_b)
    np.testing.assert_allclose(step(rule, dense(), A, R), O.lrp_zbox(W, B, A, R, low_b, high_b),
                               **TIGHT)


def test_generalized_gamma_worked_signs():
    """Outputs with z > 0 use zˡ, those with z < 0 use zʳ: sample 0 has z = [1, -4]."""
    g = 0.5
    got = step(lrp.GeneralizedGammaRule(g), dense(), A[:1], R[:1])
    Wgp, Wgn = W + g * O.pos(W), W + g * O.neg(W)
    a = A[:1]
    ap, an = O.pos(a), O.neg(a)
    # output 0 (z = 1 > 0): zˡ₀ = Wγ⁺₀·a⁺ + Wγ⁻₀·a⁻ + (b₀ + γb₀⁺)
    zl0 = Wgp[0] @ ap[0] + Wgn[0] @ an[0] + B[0] * (1 + g)
    # output 1 (z = -4 < 0): zʳ₁ = Wγ⁻₁·a⁺ + Wγ⁺₁·a⁻ + (b₁ + γb₁⁻)
    zr1 = Wgn[1] @ ap[0] + Wgp[1] @ an[0] + B[1] * (1 + g)
    s_l, s_r = R[0, 0] / zl0, R[0, 1] / zr1
    expected = ap[0] * (Wgp[0] * s_l + Wgn[1] * s_r) + an[0] * (Wgn[0] * s_l + Wgp[1] * s_r)
    np.testing.assert_allclose(got[0], expected, rtol=1e-8)


# -- convolutions --------------------------------------------------------------------------------
def test_zero_rule_on_padded_strided_conv1d_worked_numbers():
    # kernel [1, 2, -1], padding 1, stride 2, input [1, -2, 3, 1]:
    # out 0 taps x[-1], x[0], x[1] -> z0 = 2·1 + (-1)(-2) = 4;
    # out 1 taps x[1..3] -> z1 = -2 + 6 - 1 = 3
    # R = [1, 1]: s = [1/4, 1/3]
    # R_in = [1·(2/4), -2·(-1/4 + 1/3), 3·(2/3), 1·(-1/3)] = [1/2, -1/6, 2, -1/3]
    conv = lrp.Conv(np.array([[[1.0, 2.0, -1.0]]]), stride=2, padding=1)
    x = np.array([[[1.0, -2.0, 3.0, 1.0]]])
    got = step(lrp.ZeroRule(), conv, x, np.ones((1, 1, 2)))
    np.testing.assert_allclose(got, [[[0.5, -1 / 6, 2.0, -1 / 3]]], rtol=1e-8)


def test_flat_rule_on_padded_conv_counts_in_bounds_taps_only():
    # Same geometry: out 0 has 2 in-bounds taps (x[0], x[1]), out 1 has 3 (x[1], x[2], x[3]).
    # R = [1, 1]: R_in = [1/2, 1/2 + 1/3, 1/3, 1/3]
    # (counting the padded tap would give 1/3 at x[0])
    conv = lrp.Conv(np.array([[[1.0, 2.0, -1.0]]]), np.array([0.7]), stride=2, padding=1)
    x = np.array([[[1.0, -2.0, 3.0, 1.0]]])
    got = step(lrp.FlatRule(), conv, x, np.ones((1, 1, 2)))
    np.testing.assert_allclose(got, [[[0.5, 0.5 + 1 / 3, 1 / 3, 1 / 3]]], rtol=1e-8)


def test_flat_rule_on_padded_conv2d_counts_in_bounds_taps_only():
    # 3x3 input, 3x3 kernel, padding 1: an output's window holds 4 (corner), 6 (edge) or 9 taps.
    conv = lrp.Conv(np.full((1, 1, 3, 3), -0.3), padding=1)
    x = np.random.default_rng(0).normal(size=(1, 1, 3, 3))
    got = step(lrp.FlatRule(), conv, x, np.ones((1, 1, 3, 3)))[0, 0]
    n = np.array([[4, 6, 4], [6, 9, 6], [4, 6, 4]], dtype=float)
    expected = np.zeros((3, 3))
    for i in range(3):           # input pixel (i, j) is in the window of outputs (p, q) with
        for j in range(3):       # |p - i| <= 1 and |q - j| <= 1
            expected[i, j] = sum(1 / n[p, q] for p in range(3) for q in range(3)
                                 if abs(p - i) <= 1 and abs(q - j) <= 1)
    np.testing.assert_allclose(got, expected, rtol=1e-8)
    assert np.isclose(got.sum(), 9.0)  # conserved


CONVS = {
    # 1-d: 2 -> 3 channels, kernel 3, stride 2, padding 1
    "conv1d": dict(weight_shape=(3, 2, 3), in_shape=(2, 7), kw=dict(stride=2, padding=1)),
    # 1-d dilated, asymmetric padding
    "conv1d_dil": dict(weight_shape=(2, 2, 2), in_shape=(2, 6),
                       kw=dict(padding=((2, 1),), dilation=2)),
    # 2-d: groups 2, asymmetric padding, stride (2, 1), dilation (1, 2)
    "conv2d_groups": dict(weight_shape=(4, 1, 3, 2), in_shape=(2, 5, 5),
                          kw=dict(stride=(2, 1), padding=((1, 0), (0, 2)), dilation=(1, 2),
                                  groups=2)),
    # 2-d plain padded
    "conv2d": dict(weight_shape=(2, 3, 3, 3), in_shape=(3, 4, 4), kw=dict(padding=1)),
}


def conv_case(name, seed=0):
    spec = CONVS[name]
    rng = np.random.default_rng(seed)
    weight = np.round(rng.normal(size=spec["weight_shape"]), 1)
    bias = np.round(rng.normal(size=spec["weight_shape"][0]), 1)
    x = rng.normal(size=(2, *spec["in_shape"]))
    m, out_shape = O.conv_matrix(weight, spec["in_shape"], **spec["kw"])
    mask, _ = O.conv_matrix(np.ones_like(weight), spec["in_shape"], **spec["kw"])
    r = rng.normal(size=(2, *out_shape))
    return weight, bias, x, r, m, O.conv_bias(bias, out_shape), mask, spec["kw"]


@pytest.mark.parametrize("name", list(CONVS))
def test_conv_matrix_oracle_agrees_with_layer_forward(name):
    weight, bias, x, r, m, bvec, _, kw = conv_case(name)
    conv = lrp.Conv(weight, bias, **kw)
    got = np.asarray(conv(x))
    np.testing.assert_allclose(got.reshape(2, -1), x.reshape(2, -1) @ m.T + bvec, **TIGHT)


@pytest.mark.parametrize("rule", RULES, ids=repr)
@pytest.mark.parametrize("name", list(CONVS))
def test_rule_on_conv_matches_equation(rule, name):
    weight, bias, x, r, m, bvec, mask, kw = conv_case(name)
    conv = lrp.Conv(weight, bias, activation=lrp.relu, **kw)
    got = step(rule, conv, x, r)
    a, rr = x.reshape(2, -1), r.reshape(2, -1)
    expected = O.oracle_rule(rule, m, bvec, a, rr, mask=mask).reshape(x.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-13)


def test_zbox_rule_with_array_bounds_on_conv():
    weight, bias, x, r, m, bvec, _, kw = conv_case("conv2d_groups", seed=3)
    rng = np.random.default_rng(7)
    low = -1 - rng.random(x.shape[1:])
    high = 1 + rng.random(x.shape[1:])
    got = step(lrp.ZBoxRule(low, high), lrp.Conv(weight, bias, **kw), x, r)
    expected = O.lrp_zbox(m, bvec, x.reshape(2, -1), r.reshape(2, -1), low.reshape(-1),
                          high.reshape(-1))
    np.testing.assert_allclose(got, expected.reshape(x.shape), rtol=1e-11, atol=1e-13)


def test_pass_rule_on_size_preserving_conv():
    conv = lrp.Conv(np.ones((1, 1, 3)), np.zeros(1), padding=1)
    x = np.array([[[1.0, -2.0, 3.0]]])
    r = np.array([[[0.1, 0.2, -0.4]]])
    np.testing.assert_array_equal(step(lrp.PassRule(), conv, x, r), r)


# -- LayerNorm ------------------------------------------------------------------------------------
@pytest.mark.parametrize("affine", [False, True])
def test_layernorm_rule_matches_equation(affine):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 5))
    r = rng.normal(size=(3, 5))
    gamma = np.array([1.0, -0.5, 2.0, 0.3, 1.2]) if affine else None
    beta = np.array([0.1, 0.2, -0.3, 0.0, 0.5]) if affine else None
    layer = lrp.LayerNorm(5, gamma, beta)
    got = step(lrp.LayerNormRule(), layer, x, r)
    np.testing.assert_allclose(got, O.lrp_layernorm(x, r, gamma, beta), rtol=1e-10, atol=1e-12)
    if not affine:
        # the rule conserves: Σ_i R_i = Σ_j R̂_j (a_j − μ)/stab(a_j − μ),
        # as Σ_i a_i(δ_ij − 1/N) = a_j − μ
        centered = x - x.mean(1, keepdims=True)
        np.testing.assert_allclose(got.sum(1), (r * centered / O.stab(centered)).sum(1), rtol=1e-12)
        np.testing.assert_allclose(got.sum(1), r.sum(1), rtol=1e-6)


def test_layernorm_rule_worked_numbers():
    # a = [1, 2, 6], μ = 3, N = 3, no affine so R̂ = R = [1, 1, 1]
    # R_i = Σ_j a_i (δ_ij − 1/3) / (a_j − 3) · R̂_j with a_j − 3 = [-2, -1, 3]
    #     = a_i (1/(a_i − 3) − (1/3)(−1/2 − 1 + 1/3))
    a = np.array([[1.0, 2.0, 6.0]])
    c = (-0.5 - 1 + 1 / 3) / 3
    expected = [[1 * (-0.5 - c), 2 * (-1 - c), 6 * (1 / 3 - c)]]
    got = step(lrp.LayerNormRule(), lrp.LayerNorm(3), a, np.ones((1, 3)))
    np.testing.assert_allclose(got, expected, rtol=1e-8)


def test_layernorm_rule_over_two_axes():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 4, 2, 3))
    r = rng.normal(size=(2, 4, 2, 3))
    got = step(lrp.LayerNormRule(), lrp.LayerNorm((2, 3)), x, r)
    expected = O.lrp_layernorm(x.reshape(8, 6), r.reshape(8, 6)).reshape(x.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_layernorm_rule_in_analyzer_matches_chained_equations():
    rng = np.random.default_rng(5)
    w1, b1 = rng.normal(size=(6, 4)), rng.normal(size=6)
    gamma, beta = rng.normal(size=6), 0.1 * rng.normal(size=6)
    w2, b2 = rng.normal(size=(3, 6)), rng.normal(size=3)
    model = lrp.Chain(lrp.Dense(w1, b1), lrp.LayerNorm(6, gamma, beta), lrp.Dense(w2, b2))
    x = rng.normal(size=(2, 4))
    expl = lrp.LRP(model, [lrp.EpsilonRule(0.1), lrp.LayerNormRule(), lrp.ZeroRule()])(x, [0, 2])
    h = x @ w1.T + b1
    mu = h.mean(1, keepdims=True)
    ln = (h - mu) / np.sqrt(((h - mu) ** 2).mean(1, keepdims=True) + 1e-5) * gamma + beta
    r = np.eye(3)[[0, 2]]
    r = O.lrp_zero(w2, b2, ln, r)
    r = O.lrp_layernorm(h, r, gamma, beta)
    r = O.lrp_epsilon(w1, b1, x, r, 0.1)
    np.testing.assert_allclose(np.asarray(expl.val), r, rtol=1e-10, atol=1e-12)


# -- layers without weights under the generic rule ----------------------------------------------
def test_maxpool_routes_to_first_maximum():
    x = np.array([[[[1.0, 3.0, 0.5, 0.5],
                    [3.0, 2.0, 0.5, -1.0],
                    [-1.0, -2.0, 4.0, 4.0],
                    [-3.0, 0.0, 4.0, 1.0]]]])
    r = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    got = step(lrp.ZeroRule(), lrp.MaxPool(2), x, r)
    # windows' maxima: 3 (tie at (0,1) and (1,0): first in row-major order is (0,1)),
    # 0.5 (tie (0,2),(0,3),(1,2): first (0,2)), 0 at (3,1), 4 (tie (2,2),(2,3),(3,2): first (2,2))
    expected = np.zeros((4, 4))
    expected[0, 1], expected[0, 2], expected[3, 1], expected[2, 2] = 1.0, 2.0, 0.0, 4.0
    np.testing.assert_allclose(got[0, 0], expected, rtol=1e-8)
    np.testing.assert_allclose(got[0, 0, 0, 1], 1.0 * 3 / (3 + 1e-9), rtol=1e-15)


def test_maxpool_with_padding_and_overlap_matches_routing_matrix():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 2, 5, 5))
    layer = lrp.MaxPool(3, stride=2, padding=1)
    y = np.asarray(layer(x))
    np.testing.assert_array_equal(y, O.maxpool_forward(x, 3, 2, 1))
    r = rng.normal(size=y.shape)
    got = step(lrp.EpsilonRule(0.01), layer, x, r)
    for n in range(2):
        m, _ = O.maxpool_matrix(x[n], 3, 2, 1)
        expected = O.lrp_epsilon(m, np.zeros(m.shape[0]), x[n].reshape(1, -1),
                                 r[n].reshape(1, -1), 0.01)
        np.testing.assert_allclose(got[n].reshape(1, -1), expected, **TIGHT)


def test_avgpool_splits_in_proportion():
    x = np.array([[[1.0, 3.0, -2.0, 6.0]]])
    r = np.array([[[2.0, 1.0]]])
    got = step(lrp.ZeroRule(), lrp.AvgPool(2), x, r)
    # window [1, 3]: R·a/Σa = 2·[1, 3]/4; window [-2, 6]: 1·[-2, 6]/4
    np.testing.assert_allclose(got, [[[0.5, 1.5, -0.5, 1.5]]], rtol=1e-8)


@pytest.mark.parametrize("count_include_pad", [True, False])
def test_padded_avgpool_splits_in_proportion_to_in_bounds_inputs(count_include_pad):
    rng = np.random.default_rng(6)
    x = rng.random((2, 2, 7)) + 0.1
    layer = lrp.AvgPool(3, stride=2, padding=1, count_include_pad=count_include_pad)
    y = np.asarray(layer(x))
    assert y.shape == (2, 2, 4)
    r = rng.normal(size=y.shape)
    expected = np.zeros_like(x)
    for o in range(4):            # window o covers inputs 2o-1 .. 2o+1 (in bounds only)
        taps = [i for i in range(2 * o - 1, 2 * o + 2) if 0 <= i < 7]
        total = x[..., taps].sum(-1)
        for i in taps:
            expected[..., i] += x[..., i] * r[..., o] / total
    got = step(lrp.ZeroRule(), layer, x, r)
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-12)


def test_add_splits_in_proportion_nary():
    a1 = np.array([[1.0, -2.0, 0.5]])
    a2 = np.array([[3.0, 1.0, 0.5]])
    a3 = np.array([[-2.0, 4.0, 0.0]])
    r = np.array([[2.0, 3.0, -1.0]])
    got = lrp.propagate(lrp.ZeroRule(), lrp.Add(), (a1, a2, a3), r)
    assert isinstance(got, tuple) and len(got) == 3
    total = a1 + a2 + a3   # [2, 3, 1]
    for ai, gi in zip((a1, a2, a3), got):
        np.testing.assert_allclose(np.asarray(gi), ai * r / O.stab(total), **TIGHT)


def test_concat_hands_each_input_its_slice():
    a1 = np.ones((2, 1, 3))
    a2 = np.ones((2, 2, 3))
    r = np.arange(18.0).reshape(2, 3, 3)
    r1, r2 = lrp.propagate(lrp.ZeroRule(), lrp.Concat(axis=1), (a1, a2), r)
    np.testing.assert_array_equal(np.asarray(r1), r[:, :1])
    np.testing.assert_array_equal(np.asarray(r2), r[:, 1:])
    r1, r2 = lrp.propagate(lrp.ZeroRule(), lrp.Concat(axis=-1),
                           (np.ones((2, 3, 1)), np.ones((2, 3, 2))), r)
    np.testing.assert_array_equal(np.asarray(r1), r[:, :, :1])
    np.testing.assert_array_equal(np.asarray(r2), r[:, :, 1:])


# ---------------------------------------------------------------------------------------------
# Custom rules written with the hooks
# ---------------------------------------------------------------------------------------------
class MyGammaRule(lrp.LRPRule):
    def modify_parameters(self, param):
        return param + 0.25 * lrp.relu(param)


class PositiveWeightsOnly(lrp.LRPRule):
    """W → W⁺, bias untouched."""

    def modify_weight(self, weight):
        return lrp.keep_positive(weight)


class NoBias(lrp.LRPRule):
    def modify_bias(self, bias):
        return 0.0 * bias


class OnesInput(lrp.LRPRule):
    def modify_input(self, x):
        return x * 0.0 + 1.0


class BigEpsilon(lrp.LRPRule):
    def modify_denominator(self, d):
        return lrp.stabilize_denom(d, 0.3)


class DoubledLayer(lrp.LRPRule):
    """modify_layer overrides the parameter hooks (which would zero the weight here)."""

    def modify_parameters(self, param):
        return 0.0 * param

    def modify_layer(self, layer):
        return lrp.Dense(2.0 * layer.weight, -1.0 * layer.bias)


class DenseOnly(lrp.LRPRule):
    def is_compatible(self, layer):
        return isinstance(layer, lrp.Dense)


def test_custom_gamma_rule_equals_gamma_rule_exactly():
    np.testing.assert_array_equal(step(MyGammaRule(), dense(), A, R),
                                  step(lrp.GammaRule(), dense(), A, R))
    weight, bias, x, r, *_, kw = conv_case("conv2d_groups")
    conv = lrp.Conv(weight, bias, **kw)
    np.testing.assert_array_equal(step(MyGammaRule(), conv, x, r),
                                  step(lrp.GammaRule(), conv, x, r))


@pytest.mark.parametrize("rule, expected", [
    (PositiveWeightsOnly(), lambda: O.lrp_generic(O.pos(W), B, A, R)),
    (NoBias(), lambda: O.lrp_generic(W, 0 * B, A, R)),
    (OnesInput(), lambda: O.lrp_generic(W, B, np.ones_like(A), R)),
    (BigEpsilon(), lambda: O.lrp_generic(W, B, A, R, eps=0.3)),
    (DoubledLayer(), lambda: O.lrp_generic(2 * W, -B, A, R)),
], ids=["modify_weight", "modify_bias", "modify_input", "modify_denominator", "modify_layer"])
def test_custom_hook_rules_on_dense(rule, expected):
    np.testing.assert_allclose(step(rule, dense(), A, R), expected(), **TIGHT)


def test_custom_hook_rules_on_conv():
    weight, bias, x, r, m, bvec, _, kw = conv_case("conv1d")
    conv = lrp.Conv(weight, bias, **kw)
    a, rr = x.reshape(2, -1), r.reshape(2, -1)
    for rule, expected in [(PositiveWeightsOnly(), O.lrp_generic(O.pos(m), bvec, a, rr)),
                           (NoBias(), O.lrp_generic(m, 0 * bvec, a, rr)),
                           (OnesInput(), O.lrp_generic(m, bvec, np.ones_like(a), rr)),
                           (BigEpsilon(), O.lrp_generic(m, bvec, a, rr, eps=0.3))]:
        np.testing.assert_allclose(step(rule, conv, x, r), expected.reshape(x.shape),
                                   rtol=1e-11, atol=1e-13)


def test_custom_is_compatible_is_honoured():
    weight, bias, *_ = conv_case("conv1d")
    conv = lrp.Conv(weight, bias, stride=2, padding=1)
    with pytest.raises(lrp.LRPCompatibilityError):
        lrp.LRP(lrp.Chain(conv, lrp.Flatten(), lrp.Dense(np.ones((2, 12)))),
                [DenseOnly(), lrp.ZeroRule(), DenseOnly()])
    lrp.LRP(lrp.Chain(conv, lrp.Flatten(), lrp.Dense(np.ones((2, 12)))),
            [lrp.ZeroRule(), lrp.ZeroRule(), DenseOnly()])


def test_hooks_do_not_mutate_the_layer():
    layer = dense()
    w_before, b_before = layer.weight.copy(), layer.bias.copy()
    for rule in RULES + [MyGammaRule(), DoubledLayer(), PositiveWeightsOnly()]:
        step(rule, layer, A, R)
    np.testing.assert_array_equal(layer.weight, w_before)
    np.testing.assert_array_equal(layer.bias, b_before)


# ---------------------------------------------------------------------------------------------
# dtype: the hooks do not promote
# ---------------------------------------------------------------------------------------------
class Float64ScalarGamma(lrp.LRPRule):
    """A careless hook: a NumPy float64 scalar promotes float32 arrays under NEP 50."""

    def modify_parameters(self, param):
        return param + np.float64(0.25) * lrp.relu(param)


def test_hooks_keep_float32():
    w32 = W.astype(np.float32)
    assert lrp.GammaRule().modify_parameters(w32).dtype == np.float32
    assert lrp.WSquareRule().modify_weight(w32).dtype == np.float32
    assert lrp.FlatRule().modify_weight(w32).dtype == np.float32
    assert lrp.FlatRule().modify_input(w32).dtype == np.float32
    assert lrp.ZeroRule().modify_denominator(w32).dtype == np.float32
    assert lrp.EpsilonRule(1e-3).modify_denominator(w32).dtype == np.float32
    assert lrp.stabilize_denom(w32, 1e-9).dtype == np.float32
    assert lrp.keep_positive(w32).dtype == np.float32 and lrp.keep_negative(w32).dtype == np.float32


ALL_RULES_32 = RULES + [lrp.PassRule(), MyGammaRule(), Float64ScalarGamma(),
                        lrp.ZBoxRule(np.full(3, -1.0), np.full(3, 2.0))]


@pytest.mark.parametrize("rule", ALL_RULES_32, ids=repr)
def test_float32_dense_gives_float32_relevance(rule):
    square = isinstance(rule, lrp.PassRule)  # PassRule needs equal input and output sizes
    w, b, r = (np.eye(3), np.zeros(3), np.ones((2, 3))) if square else (W, B, R)
    layer = lrp.Dense(w.astype(np.float32), b.astype(np.float32))
    got = step(rule, layer, A.astype(np.float32), r.astype(np.float32))
    assert got.dtype == np.float32
    expected = step(rule if not isinstance(rule, Float64ScalarGamma) else lrp.GammaRule(),
                    lrp.Dense(w, b), A, r)
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize("rule", RULES + [Float64ScalarGamma()], ids=repr)
def test_float32_conv_gives_float32_relevance(rule):
    weight, bias, x, r, *_, kw = conv_case("conv2d")
    conv32 = lrp.Conv(weight.astype(np.float32), bias.astype(np.float32), **kw)
    got = step(rule, conv32, x.astype(np.float32), r.astype(np.float32))
    assert got.dtype == np.float32


def test_float32_layernorm_rule():
    x = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    got = step(lrp.LayerNormRule(),
               lrp.LayerNorm(4, np.ones(4, np.float32), np.zeros(4, np.float32)), x, x)
    assert got.dtype == np.float32


W1 = np.array([[1.0, -1.0], [0.5, 2.0], [-1.0, 1.0]])
B1 = np.array([0.1, 0.2, -0.3])


@pytest.mark.parametrize("rule", [lrp.ZeroRule(), lrp.GammaRule(), MyGammaRule(),
                                  Float64ScalarGamma(), lrp.ZPlusRule(), lrp.AlphaBetaRule(),
                                  lrp.FlatRule(), lrp.WSquareRule(),
                                  lrp.ZBoxRule(np.full(2, -1.0), np.full(2, 2.0)),
                                  lrp.GeneralizedGammaRule(), lrp.EpsilonRule()], ids=repr)
def test_analyzer_keeps_float32(rule):
    rules = [rule, lrp.ZeroRule()]
    x = np.array([[1.0, 2.0], [-0.5, 1.0]], np.float32)
    model32 = lrp.Chain(lrp.Dense(W1.astype(np.float32), B1.astype(np.float32)), lrp.ReLU(),
                        lrp.Dense(W.astype(np.float32), B.astype(np.float32)))
    expl = lrp.LRP(model32, rules)(x)
    assert expl.val.dtype == np.float32 and expl.val.shape == x.shape
    # float64 weights, float32 input: the relevance follows the input
    model64 = lrp.Chain(lrp.Dense(W1, B1), lrp.ReLU(), lrp.Dense(W, B))
    expl64 = lrp.LRP(model64, rules)(x)
    assert expl64.val.dtype == np.float32
    np.testing.assert_allclose(expl64.val, expl.val, rtol=1e-6, atol=1e-7)


def test_float16_input_is_computed_in_float32_and_returned_in_float16():
    model = lrp.Chain(lrp.Dense(W1, B1), lrp.ReLU(), lrp.Dense(W, B))
    x = np.array([[1.0, 2.0], [-0.5, 1.0]])
    expl16 = lrp.LRP(model, lrp.GammaRule())(x.astype(np.float16))
    expl32 = lrp.LRP(model, lrp.GammaRule())(x.astype(np.float16).astype(np.float32))
    assert expl16.val.dtype == np.float16
    np.testing.assert_array_equal(expl16.val, expl32.val.astype(np.float16))


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------
def _conv_net_with_pool():
    rng = np.random.default_rng(0)
    return lrp.Chain(lrp.Conv(rng.normal(size=(2, 1, 3, 3)), np.zeros(2), activation=lrp.relu),
                     lrp.MaxPool(2), lrp.Flatten(), lrp.Dense(rng.normal(size=(3, 2))))


@pytest.mark.parametrize("model, rules, rule_name, layer_name", [
    (_conv_net_with_pool(), [lrp.ZeroRule(), lrp.GammaRule(), lrp.ZeroRule(), lrp.ZeroRule()],
     "GammaRule", "MaxPool"),
    (lrp.Chain(lrp.Dense(np.ones((3, 2))), lrp.LayerNorm(3), lrp.Dense(np.ones((2, 3)))),
     [lrp.LayerNormRule(), lrp.LayerNormRule(), lrp.ZeroRule()], "LayerNormRule", "Dense"),
    (lrp.Chain(lrp.Flatten(), lrp.ReLU(), lrp.Dense(np.ones((2, 3)))),
     [lrp.ZeroRule(), lrp.FlatRule(), lrp.ZeroRule()], "FlatRule", "ReLU"),
    (_conv_net_with_pool(), [lrp.ZeroRule(), lrp.ZeroRule(), lrp.ZPlusRule(), lrp.ZeroRule()],
     "ZPlusRule", "Flatten"),
    (_conv_net_with_pool(), [lrp.ZeroRule(), lrp.WSquareRule(), lrp.ZeroRule(), lrp.ZeroRule()],
     "WSquareRule", "MaxPool"),
    (_conv_net_with_pool(),
     [lrp.ZeroRule(), lrp.ZBoxRule(0.0, 1.0), lrp.ZeroRule(), lrp.ZeroRule()],
     "ZBoxRule", "MaxPool"),
], ids=["gamma-maxpool", "layernorm-dense", "flat-relu", "zplus-flatten", "wsquare-maxpool",
        "zbox-maxpool"])
def test_incompatible_rule_raises_when_analyzer_is_built(model, rules, rule_name, layer_name):
    with pytest.raises(lrp.LRPCompatibilityError) as info:
        lrp.LRP(model, rules)
    message = str(info.value)
    assert rule_name in message and layer_name in message
    assert isinstance(info.value, lrp.LRPError)


def test_flat_rule_on_unfused_relu_raises():
    model = lrp.Chain(lrp.Dense(np.ones((3, 2))), lrp.ReLU(), lrp.Dense(np.ones((2, 3))))
    with pytest.raises(lrp.LRPCompatibilityError, match=r"(?s)FlatRule.*ReLU"):
        lrp.LRP(model, [lrp.ZeroRule(), lrp.FlatRule(), lrp.ZeroRule()], canonize=False)


def test_incompatible_rule_raises_in_propagate():
    with pytest.raises(lrp.LRPCompatibilityError):
        lrp.propagate(lrp.GammaRule(), lrp.MaxPool(2), np.ones((1, 1, 2, 2)), np.ones((1, 1, 1, 1)))
    with pytest.raises(lrp.LRPCompatibilityError):
        lrp.propagate(lrp.LayerNormRule(), dense(), A, R)


@pytest.mark.parametrize("alpha, beta", [(1, 1), (2, 0), (0.5, 0.5), (3, 1)])
def test_alpha_beta_requires_difference_one(alpha, beta):
    with pytest.raises(ValueError, match="alpha - beta"):
        lrp.AlphaBetaRule(alpha, beta)


@pytest.mark.parametrize("alpha, beta", [(0.5, -0.5), (-1.0, -2.0)])
def test_alpha_beta_requires_nonnegative(alpha, beta):
    with pytest.raises(ValueError):
        lrp.AlphaBetaRule(alpha, beta)


# -- parameter rules see a layer's effective map, never γ and β of a normalisation -----------------
# Regression: is_compatible used to accept any layer with attributes named weight and bias, so
# FlatRule on an unfused BatchNorm modified γ and β and gave R / (1 − μ) instead of R.

def _lone_batchnorm():
    """BatchNorm right after the input (nothing to fuse into), with a large running mean."""
    gen = np.random.default_rng(11)
    c = 3
    norm = lrp.BatchNorm(gen.random(c) + 0.5, gen.standard_normal(c), np.full(c, 0.75),
                         gen.random(c) + 0.1, eps=1e-3)
    head = lrp.Dense(gen.standard_normal((2, c * 4 * 4)))
    return lrp.Chain(norm, lrp.Flatten(), head), gen.standard_normal((2, c, 4, 4))


@pytest.mark.parametrize("rule", [lrp.FlatRule(), lrp.WSquareRule(), lrp.GammaRule(0.5),
                                  lrp.ZPlusRule(), lrp.AlphaBetaRule(2.0, 1.0),
                                  lrp.ZBoxRule(-3.0, 3.0), lrp.GeneralizedGammaRule(0.5)])
def test_parameter_rules_refuse_an_unfused_batchnorm(rule):
    model, _ = _lone_batchnorm()
    rules = [rule, lrp.PassRule(), lrp.EpsilonRule()]
    with pytest.raises(lrp.LRPCompatibilityError, match="BatchNorm"):
        lrp.LRP(model, rules, canonize=False)
    with pytest.raises(lrp.LRPCompatibilityError):
        lrp.propagate(rule, model[0], np.ones((1, 3, 4, 4)), np.ones((1, 3, 4, 4)))


@pytest.mark.parametrize("make", [lambda c: lrp.LayerNorm(c, np.ones(c), np.zeros(c))])
def test_parameter_rules_refuse_a_layernorm(make):
    with pytest.raises(lrp.LRPCompatibilityError):
        lrp.LRP(lrp.Chain(make(4), lrp.Dense(np.ones((2, 4)))), [lrp.FlatRule(), lrp.ZeroRule()])


def test_flat_rule_on_a_canonized_batchnorm_passes_relevance_unchanged():
    # a diagonal map under the flat rule: R_in = R, whatever the running mean (was R / (1 − μ))
    model, x = _lone_batchnorm()
    analyzer = lrp.LRP(model, [lrp.FlatRule(), lrp.PassRule(), lrp.EpsilonRule()])
    assert isinstance(analyzer.model[0], lrp.Affine)
    expl = analyzer(x, layerwise_relevances=True)
    above = expl.extras["layerwise_relevances"][1]
    np.testing.assert_allclose(expl.val, above, rtol=1e-8, atol=1e-15)  # 1e-9: the stabiliser


def test_gamma_rule_on_a_canonized_batchnorm_uses_the_effective_map():
    # oracle: the rule written out by hand on the diagonal map y = s ⊙ x + t, s = γ/σ, t = β − μs
    model, x = _lone_batchnorm()
    norm = model[0]
    analyzer = lrp.LRP(model, [lrp.GammaRule(0.5), lrp.PassRule(), lrp.EpsilonRule()])
    expl = analyzer(x, layerwise_relevances=True)
    r = expl.extras["layerwise_relevances"][1]
    s = norm.weight / np.sqrt(norm.running_var + norm.eps)
    t = norm.bias - norm.running_mean * s
    s_g, t_g = ((s + 0.5 * np.maximum(s, 0))[:, None, None],
                (t + 0.5 * np.maximum(t, 0))[:, None, None])
    z = x * s_g + t_g
    expected = x * s_g * r / (z + 1e-9 * np.where(z >= 0, 1.0, -1.0))
    np.testing.assert_allclose(expl.val, expected, rtol=1e-10, atol=1e-14)
