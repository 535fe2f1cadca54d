"""Oracles that do not depend on the library's code (architecture, section 9).

(a) LRP-0 started from the logit equals gradient × input on ReLU networks with max pooling,
    residual additions and concatenation (the gradient by central finite differences of an
    independent NumPy forward pass; the networks are piecewise linear, so away from kinks the
    difference quotient is exact up to rounding). With the default normalisation it is
    gradient × input divided by the logit.
(b) Conservation with zero biases.
(c) Identities between rules, batch = samples one by one, layerwise relevances.
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import lrp_core as lrp

sys.path.insert(0, os.path.dirname(__file__))
from helpers import oracle as O  # noqa: E402


# ---------------------------------------------------------------------------------------------
# One network description, two interpreters: the library's functional Graph API and NumPy.
# ---------------------------------------------------------------------------------------------
class LrpOps:
    def __init__(self):
        self.shared = {}   # one Dense per weight array: a second call applies the same layer again

    def conv(self, h, w, b, relu, **kw):
        return lrp.Conv(w, b, activation=lrp.relu if relu else None, **kw)(h)

    def dense(self, h, w, b, relu):
        if id(w) not in self.shared:
            self.shared[id(w)] = lrp.Dense(w, b, activation=lrp.relu if relu else None)
        return self.shared[id(w)](h)

    def relu(self, h):
        return lrp.ReLU()(h)

    def maxpool(self, h, k, s, p):
        return lrp.MaxPool(k, s, p)(h)

    def add(self, *hs):
        return lrp.Add()(*hs)

    def concat(self, *hs):
        return lrp.Concat(axis=1)(*hs)

    def flatten(self, h):
        return lrp.Flatten()(h)


class NumpyOps:
    """Evaluates the network in NumPy (convolutions as explicit matrices) and records the
    margins that keep finite differences exact: the smallest |pre-activation| of a ReLU and
    the smallest gap between a max-pooling window's largest and second-largest values; and
    the smallest positive value a stabilised denominator sees (ReLU and Add outputs), which
    bounds how far the 1e-9 stabiliser moves LRP-0 away from gradient × input (relatively,
    eps / value along each path)."""

    def __init__(self):
        self.relu_margin = np.inf
        self.pool_margin = np.inf
        self.active_margin = np.inf

    def _active(self, y):
        if (y > 0).any():
            self.active_margin = min(self.active_margin, y[y > 0].min())
        return y

    def _relu(self, z):
        nz = np.abs(z[z != 0])  # an exact 0 only arises from all-zero inputs and no bias
        if nz.size:
            self.relu_margin = min(self.relu_margin, nz.min())
        return self._active(np.maximum(z, 0))

    def conv(self, h, w, b, relu, **kw):
        m, out_shape = O.conv_matrix(w, h.shape[1:], **kw)
        z = h.reshape(len(h), -1) @ m.T + (0 if b is None else O.conv_bias(b, out_shape))
        z = z.reshape(len(h), *out_shape)
        return self._relu(z) if relu else z

    def dense(self, h, w, b, relu):
        z = h @ w.T + (0 if b is None else b)
        return self._relu(z) if relu else z

    def relu(self, h):
        return self._relu(h)

    def maxpool(self, h, k, s, p):
        d = h.ndim - 2
        vals, _, _ = O._windows(h, (k,) * d, (k if s is None else s,) * d, ((p, p),) * d)
        top2 = np.sort(vals, axis=-1)[..., -2:]
        active = top2[..., 1] > 0   # windows whose maximum is a live (non-zero) value
        if active.any():
            self.pool_margin = min(self.pool_margin, (top2[..., 1] - top2[..., 0])[active].min())
        return vals.max(-1)

    def add(self, *hs):
        return self._active(sum(hs[1:], hs[0]))

    def concat(self, *hs):
        return np.concatenate(hs, axis=1)

    def flatten(self, h):
        return h.reshape(len(h), -1)


def make_params(seed, d, c_in, c, size, n_out, bias_scale):
    """Random weights (He-like scale) for :func:`resnet_like`."""
    rng = np.random.default_rng(seed)

    def w(*shape):
        fan_in = math.prod(shape[1:])
        return rng.normal(scale=math.sqrt(2.0 / fan_in), size=shape)

    def b(n):
        return bias_scale * rng.normal(size=n)

    k3 = (3,) * d
    p = {
        "c1": (w(c, c_in, *k3), b(c)),
        "c2": (w(c, c, *k3), b(c)),
        "b1": (w(2, c, *(1,) * d), b(2)),
        "b2": (w(2, c, *k3), b(2)),
        "b3": (w(1, c, *k3), b(1)),
    }
    return p, rng


def resnet_like(ops, x, p, pool, dense_params):
    """conv-relu, conv-relu + residual Add (fan-out), max pool, three branches (1x1 conv,
    padded conv, padded conv followed by a ReLU of its own) concatenated, flatten,
    dense-relu, the same dense-relu layer applied twice in a row (two nodes, one layer), the
    three added n-ary, dense to the logits."""
    h1 = ops.conv(x, *p["c1"], True, padding=1)
    h2 = ops.conv(h1, *p["c2"], True, padding=1)
    r = ops.add(h2, h1)
    q = ops.maxpool(r, *pool)
    b1 = ops.conv(q, *p["b1"], True)
    b2 = ops.conv(q, *p["b2"], True, padding=1)
    b3 = ops.relu(ops.conv(q, *p["b3"], False, padding=1))  # a ReLU of its own (fused by canonize)
    cat = ops.concat(b1, b2, b3)
    f = ops.flatten(cat)
    (wd1, bd1), (wd2, bd2), (wo, bo) = dense_params
    d1 = ops.dense(f, wd1, bd1, True)
    d2 = ops.dense(d1, wd2, bd2, True)
    d3 = ops.dense(d2, wd2, bd2, True)   # the layer of d2, applied again
    s = ops.add(d1, d2, d3)
    return ops.dense(s, wo, bo, False)


def pooled_size(size, pool):
    k, s, pad = pool
    s = k if s is None else s
    return (size + 2 * pad - k) // s + 1


def build_case(seed, d, n, c_in, c, size, pool, n_out=4, bias_scale=0.1):
    p, rng = make_params(seed, d, c_in, c, size, n_out, bias_scale)
    flat = 5 * pooled_size(size, pool) ** d
    hidden = 8

    def w(*shape):
        return rng.normal(scale=math.sqrt(2.0 / shape[1]), size=shape)

    dense_params = [(w(hidden, flat), bias_scale * rng.normal(size=hidden)),
                    (w(hidden, hidden), bias_scale * rng.normal(size=hidden)),
                    (w(n_out, hidden), bias_scale * rng.normal(size=n_out))]
    if bias_scale == 0:
        p = {k: (v[0], None) for k, v in p.items()}
        dense_params = [(wd, None) for wd, _ in dense_params]
    x_sym = lrp.Input()
    graph = lrp.Graph(x_sym, resnet_like(LrpOps(), x_sym, p, pool, dense_params))
    x = rng.normal(size=(n, c_in) + (size,) * d)

    def forward(xx, ops=None):
        return resnet_like(ops or NumpyOps(), xx, p, pool, dense_params)

    return graph, x, forward


def fd_input_gradient(forward, x, v, h=1e-6):
    """∇ₓ (v · forward(x)) per sample by central differences, one batched forward per sample."""
    grads = np.empty_like(x)
    dim = math.prod(x.shape[1:])
    for n in range(len(x)):
        eye = np.eye(dim).reshape(dim, *x.shape[1:])
        batch = np.concatenate([x[n] + h * eye, x[n] - h * eye])
        out = forward(batch) @ v[n]
        grads[n] = ((out[:dim] - out[dim:]) / (2 * h)).reshape(x.shape[1:])
    return grads


case_strategy = dict(
    seed=st.integers(0, 2**32 - 1),
    d=st.sampled_from([1, 2]),
    n=st.integers(1, 3),
    c_in=st.integers(1, 2),
    c=st.integers(2, 3),
    size=st.sampled_from([4, 6]),
    pool=st.sampled_from([(2, None, 0), (3, 2, 1), (2, 1, 0)]),
    bias_scale=st.sampled_from([0.0, 0.1, 0.5]),
)


@settings(max_examples=30, deadline=None)
@given(**case_strategy, selection=st.sampled_from(["argmax", "int", "list"]))
def test_lrp0_from_logit_equals_gradient_times_input(seed, d, n, c_in, c, size, pool, bias_scale,
                                                     selection):
    graph, x, forward = build_case(seed, d, n, c_in, c, size, pool, bias_scale=bias_scale)
    ops = NumpyOps()
    logits = forward(x, ops)
    assume(ops.relu_margin > 1e-4 and ops.pool_margin > 1e-4 and ops.active_margin > 1e-3)
    # the library's forward agrees with the independent one
    np.testing.assert_allclose(np.asarray(graph(x)), logits, rtol=1e-12, atol=1e-12)

    if selection == "argmax":
        chosen, arg = logits.argmax(1), None
    elif selection == "int":
        chosen, arg = np.full(n, 2), 2
    else:
        chosen = np.random.default_rng(seed).integers(0, logits.shape[1], size=n)
        arg = [int(i) for i in chosen]
    onehot = np.eye(logits.shape[1])[chosen]
    grad = fd_input_gradient(forward, x, onehot)
    gxi = grad * x
    # finite-difference rounding (~1e-10) plus the stabiliser's eps/value along ≤ 10 divisions
    scale = max(1.0, np.abs(gxi).max()) * (1e-8 + 10 * 1e-9 / ops.active_margin)

    expl = lrp.LRP(graph, lrp.ZeroRule(), normalize_output_relevance=False)(x, arg)
    assert list(expl.output_selection) == [int(i) for i in chosen]
    np.testing.assert_allclose(np.asarray(expl.output), logits, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(expl.val), gxi, rtol=1e-6, atol=scale)

    # default normalisation: start from 1, i.e. gradient × input / logit
    logit = logits[np.arange(n), chosen]
    assume(np.abs(logit).min() > 1e-3)
    expl1 = lrp.LRP(graph, lrp.ZeroRule())(x, arg)
    expected = gxi / logit.reshape((n,) + (1,) * (x.ndim - 1))
    np.testing.assert_allclose(np.asarray(expl1.val), expected, rtol=1e-6,
                               atol=scale / np.abs(logit).min())


@settings(max_examples=10, deadline=None)
@given(**case_strategy)
def test_lrp0_from_custom_output_relevance(seed, d, n, c_in, c, size, pool, bias_scale):
    """Starting from R = logits ⊙ v, LRP-0 gives x ⊙ ∇ₓ(v · f(x))."""
    graph, x, forward = build_case(seed, d, n, c_in, c, size, pool, bias_scale=bias_scale)
    ops = NumpyOps()
    logits = forward(x, ops)
    assume(ops.relu_margin > 1e-4 and ops.pool_margin > 1e-4 and ops.active_margin > 1e-3)
    v = np.random.default_rng(seed + 1).normal(size=logits.shape)
    expected = fd_input_gradient(forward, x, v) * x
    got = lrp.LRP(graph)(x, output_relevance=logits * v).val
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6,
                               atol=max(1.0, np.abs(expected).max())
                               * (1e-8 + 10 * 1e-9 / ops.active_margin))


# ---------------------------------------------------------------------------------------------
# (b) conservation
# ---------------------------------------------------------------------------------------------
CONSERVING = [lrp.ZeroRule(), lrp.EpsilonRule(1e-12), lrp.ZPlusRule(), lrp.AlphaBetaRule(2, 1),
              lrp.GammaRule(), lrp.FlatRule(), lrp.WSquareRule()]


def conv_dense_net(seed, pool=False):
    """Zero biases; Conv-ReLU (signed input, no padding), Conv-ReLU (stride 2, padded),
    [MaxPool,] Flatten, Dense-ReLU, Dense-ReLU, Dense. Wide enough that every neuron that gets
    relevance has a non-empty z⁺ and z⁻ (else AlphaBetaRule cannot conserve: α·R − β·0)."""
    rng = np.random.default_rng(seed)

    def w(*shape):
        return rng.normal(scale=math.sqrt(2.0 / math.prod(shape[1:])), size=shape)

    layers = [lrp.Conv(w(8, 2, 3, 3), activation=lrp.relu),
              lrp.Conv(w(6, 8, 3, 3), stride=2, padding=1), lrp.ReLU()]
    flat = 6 * 4 * 4
    if pool:
        layers.append(lrp.MaxPool(2))
        flat = 6 * 2 * 2
    layers += [lrp.Flatten(), lrp.Dense(w(64, flat), activation=lrp.relu),
               lrp.Dense(w(64, 64)), lrp.ReLU(), lrp.Dense(w(5, 64))]
    x = rng.normal(size=(3, 2, 10, 10))
    return lrp.Chain(*layers), x


# The 1e-9 stabiliser leaks a relative eps/|z| at each neuron: conservation holds to ~1e-8.
CONSERVATION_RTOL = 1e-7


def rules_for(model, rule):
    """``rule`` on every Dense and Conv (after canonize), ZeroRule elsewhere."""
    return [rule if isinstance(layer, (lrp.Dense, lrp.Conv)) else lrp.ZeroRule()
            for layer in lrp.canonize(model)]


@pytest.mark.parametrize("rule", CONSERVING, ids=repr)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_conservation_conv_dense(rule, seed):
    model, x = conv_dense_net(seed)
    expl = lrp.LRP(model, rules_for(model, rule))(x)
    np.testing.assert_allclose(np.asarray(expl.val).reshape(len(x), -1).sum(1), np.ones(len(x)),
                               rtol=CONSERVATION_RTOL)
    # from the logit: sums to the logit
    expl = lrp.LRP(model, rules_for(model, rule), normalize_output_relevance=False)(x)
    logit = np.asarray(expl.output)[np.arange(len(x)), expl.output_selection]
    np.testing.assert_allclose(np.asarray(expl.val).reshape(len(x), -1).sum(1), logit,
                               rtol=CONSERVATION_RTOL)


@pytest.mark.parametrize("rule", [lrp.ZeroRule(), lrp.EpsilonRule(1e-12), lrp.ZPlusRule(),
                                  lrp.AlphaBetaRule(2, 1), lrp.GammaRule()], ids=repr)
@pytest.mark.parametrize("seed", [0, 1])
def test_conservation_with_max_pooling(rule, seed):
    # (Flat/WSquare are left out here: they hand relevance to zero activations, which the
    # generic rule on a max pool of an all-zero window cannot pass on.)
    model, x = conv_dense_net(seed, pool=True)
    expl = lrp.LRP(model, rules_for(model, rule))(x)
    np.testing.assert_allclose(np.asarray(expl.val).reshape(len(x), -1).sum(1), np.ones(len(x)),
                               rtol=CONSERVATION_RTOL)


@settings(max_examples=15, deadline=None)
@given(**{k: v for k, v in case_strategy.items() if k != "bias_scale"},
       rule=st.sampled_from([lrp.ZeroRule(), lrp.EpsilonRule(1e-12), lrp.GammaRule(0.5)]))
def test_conservation_on_dag(seed, d, n, c_in, c, size, pool, rule):
    """Residual additions split in proportion, concatenation slices, fan-out adds: with zero
    biases the input relevance still sums to 1."""
    graph, x, forward = build_case(seed, d, n, c_in, c, size, pool, bias_scale=0.0)
    rules = [rule if isinstance(layer, (lrp.Dense, lrp.Conv)) else lrp.ZeroRule()
             for layer in lrp.canonize(graph)]
    expl = lrp.LRP(graph, rules)(x)
    # the stabiliser leaks eps/|z| relative where it divides a relevance not proportional to z
    # (the selected logit, started from 1) and ~eps absolute elsewhere: a tiny logit leaks more
    ops = NumpyOps()
    logits = forward(x, ops)
    smallest = min(np.abs(logits.max(1)).min(), ops.active_margin)
    assume(smallest > 1e-6)   # a dead network (all logits 0) has nothing to conserve
    np.testing.assert_allclose(np.asarray(expl.val).reshape(n, -1).sum(1), np.ones(n),
                               rtol=1e-8 + 1e-8 / smallest)


# ---------------------------------------------------------------------------------------------
# (c) identities
# ---------------------------------------------------------------------------------------------
def dense_net_signed(seed):
    rng = np.random.default_rng(seed)
    model = lrp.Chain(lrp.Dense(rng.normal(size=(6, 4)), rng.normal(size=6), activation=lrp.relu),
                      lrp.Dense(rng.normal(size=(5, 6)), rng.normal(size=5), activation=lrp.relu),
                      lrp.Dense(rng.normal(size=(3, 5)), rng.normal(size=3)))
    return model, rng.normal(size=(4, 4))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_zplus_equals_alpha1_beta0(seed):
    model, x = conv_dense_net(seed)
    a = lrp.LRP(model, rules_for(model, lrp.ZPlusRule()))(x).val
    b = lrp.LRP(model, rules_for(model, lrp.AlphaBetaRule(1, 0)))(x).val
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-15)
    model, x = dense_net_signed(seed)  # with biases and signed inputs
    a = lrp.LRP(model, lrp.ZPlusRule())(x).val
    b = lrp.LRP(model, lrp.AlphaBetaRule(1.0, 0.0))(x).val
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("seed", [0, 1])
def test_gamma0_equals_zero_rule(seed):
    model, x = conv_dense_net(seed, pool=True)
    a = lrp.LRP(model, rules_for(model, lrp.GammaRule(0.0)))(x).val
    b = lrp.LRP(model)(x).val
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-15)
    model, x = dense_net_signed(seed)
    np.testing.assert_allclose(np.asarray(lrp.LRP(model, lrp.GammaRule(0))(x).val),
                               np.asarray(lrp.LRP(model, lrp.ZeroRule())(x).val),
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kw", [dict(), dict(padding=1), dict(padding=((2, 0), (1, 1)), stride=2),
                                dict(groups=2, dilation=2, padding=2)], ids=str)
def test_flat_equals_wsquare_on_all_ones_weights(kw):
    rng = np.random.default_rng(0)
    groups = kw.get("groups", 1)
    conv = lrp.Conv(np.ones((4, 4 // groups, 3, 3)), rng.normal(size=4), **kw)
    x = rng.normal(size=(2, 4, 6, 6))
    r = rng.normal(size=np.asarray(conv(x)).shape)
    np.testing.assert_allclose(np.asarray(lrp.propagate(lrp.FlatRule(), conv, x, r)),
                               np.asarray(lrp.propagate(lrp.WSquareRule(), conv, x, r)),
                               rtol=1e-13, atol=1e-15)
    dense = lrp.Dense(np.ones((3, 5)), rng.normal(size=3))
    xd, rd = rng.normal(size=(2, 5)), rng.normal(size=(2, 3))
    np.testing.assert_allclose(np.asarray(lrp.propagate(lrp.FlatRule(), dense, xd, rd)),
                               np.asarray(lrp.propagate(lrp.WSquareRule(), dense, xd, rd)),
                               rtol=1e-13, atol=1e-15)


@settings(max_examples=10, deadline=None)
@given(**case_strategy, rule=st.sampled_from([lrp.ZeroRule(), lrp.EpsilonRule(), lrp.ZPlusRule(),
                                              lrp.AlphaBetaRule(), lrp.GammaRule(),
                                              lrp.FlatRule()]))
def test_batch_equals_samples_one_by_one(seed, d, n, c_in, c, size, pool, bias_scale, rule):
    graph, x, _ = build_case(seed, d, n, c_in, c, size, pool, bias_scale=bias_scale)
    rules = [rule if isinstance(layer, (lrp.Dense, lrp.Conv)) else lrp.ZeroRule()
             for layer in lrp.canonize(graph)]
    analyzer = lrp.LRP(graph, rules)
    batch = analyzer(x)
    selection = [(i * 7 + seed) % 4 for i in range(n)]
    batch_sel = analyzer(x, selection)
    for i in range(n):
        one = analyzer(x[i:i + 1])
        assert one.output_selection == [batch.output_selection[i]]
        np.testing.assert_allclose(np.asarray(one.val)[0], np.asarray(batch.val)[i],
                                   rtol=1e-11, atol=1e-14)
        one_sel = analyzer(x[i:i + 1], selection[i])
        np.testing.assert_allclose(np.asarray(one_sel.val)[0], np.asarray(batch_sel.val)[i],
                                   rtol=1e-11, atol=1e-14)


def test_layerwise_relevances_chain():
    model, x = conv_dense_net(3, pool=True)
    analyzer = lrp.LRP(model)
    n_layers = len(analyzer.model)
    # conv, conv (ReLU fused), maxpool, flatten, dense, dense (ReLU fused), dense
    assert n_layers == 7
    expl = analyzer(x, layerwise_relevances=True)
    rels = expl.extras["layerwise_relevances"]
    assert len(rels) == n_layers + 1
    # shapes: the input and each layer's output
    values = [x]
    for layer in analyzer.model:
        values.append(np.asarray(layer(values[-1])))
    for rel, val in zip(rels, values):
        assert np.asarray(rel).shape == val.shape
    np.testing.assert_array_equal(np.asarray(rels[0]), np.asarray(expl.val))
    np.testing.assert_array_equal(np.asarray(rels[-1]), np.eye(5)[expl.output_selection])
    for rel in rels:   # zero biases, LRP-0: every layer's relevance sums to 1 per sample
        np.testing.assert_allclose(np.asarray(rel).reshape(len(x), -1).sum(1), np.ones(len(x)),
                                   rtol=CONSERVATION_RTOL)
    assert expl.extras is not None and lrp.LRP(model)(x).extras is None


def test_layerwise_relevances_dag():
    graph, x, forward = build_case(5, 2, 2, 1, 2, 6, (2, None, 0), bias_scale=0.0)
    analyzer = lrp.LRP(graph)
    expl = analyzer(x, layerwise_relevances=True)
    rels = expl.extras["layerwise_relevances"]
    nodes = analyzer.model.nodes
    assert len(rels) == len(nodes) + 1
    # the relevance of a value is the sum of what its readers hand back; cut the graph at a
    # Concat: its inputs' relevances sum to 1; at an Add's output: 1
    for i, node in enumerate(nodes):
        if isinstance(node.layer, (lrp.Concat, lrp.Add)):
            total = sum(np.asarray(rels[j]).reshape(len(x), -1).sum(1) for j in set(node.inputs))
            if isinstance(node.layer, lrp.Concat):
                np.testing.assert_allclose(total, np.ones(len(x)), rtol=CONSERVATION_RTOL)
            np.testing.assert_allclose(np.asarray(rels[i + 1]).reshape(len(x), -1).sum(1),
                                       np.ones(len(x)), rtol=CONSERVATION_RTOL)


# ---------------------------------------------------------------------------------------------
# output relevance and selection
# ---------------------------------------------------------------------------------------------
def test_output_relevance_and_selection():
    model, x = dense_net_signed(0)
    logits = np.asarray(model(x))
    expl = lrp.LRP(model)(x)
    np.testing.assert_array_equal(np.asarray(expl.output), logits)
    assert list(expl.output_selection) == list(logits.argmax(1))
    rels = lrp.LRP(model)(x, layerwise_relevances=True).extras["layerwise_relevances"]
    np.testing.assert_array_equal(np.asarray(rels[-1]), np.eye(3)[logits.argmax(1)])
    rels = lrp.LRP(model, normalize_output_relevance=False)(x, [0, 2, 1, 1],
                                                            layerwise_relevances=True)
    assert list(rels.output_selection) == [0, 2, 1, 1]
    np.testing.assert_array_equal(np.asarray(rels.extras["layerwise_relevances"][-1]),
                                  np.eye(3)[[0, 2, 1, 1]] * logits)
    with pytest.raises((ValueError, lrp.LRPError)):
        lrp.LRP(model)(x, 3)
    with pytest.raises((ValueError, lrp.LRPError)):
        lrp.LRP(model)(x, [0, 1])


# ---------------------------------------------------------------------------------------------
# the analyzer, layer by layer, equals the rules' equations chained (biases, signed input,
# ReLU-fed layers where the sign-split rules may skip the a⁻ terms)
# ---------------------------------------------------------------------------------------------
def twin_chain(seed, pool):
    """The same network as an lrp Chain (separate ReLUs to be fused) and an OracleChain."""
    rng = np.random.default_rng(seed)

    def w(*shape):
        return rng.normal(scale=math.sqrt(2.0 / math.prod(shape[1:])), size=shape)

    w1, b1 = w(4, 2, 3, 3), 0.1 * rng.normal(size=4)
    w2, b2 = w(5, 4, 3, 3), 0.1 * rng.normal(size=5)
    layers = [lrp.Conv(w1, b1, padding=1), lrp.ReLU(),
              lrp.Conv(w2, b2, stride=2, padding=((1, 0), (0, 1))), lrp.ReLU()]
    s1, shape = O.conv_step(w1, b1, (2, 6, 6), True, padding=1)
    s2, shape = O.conv_step(w2, b2, shape, True, stride=2, padding=((1, 0), (0, 1)))
    steps = [s1, s2]
    if pool:
        layers.append(lrp.MaxPool(2, 1))
        steps.append(("maxpool", 2, 1, 0))
        shape = (shape[0], shape[1] - 1, shape[2] - 1)
    flat = math.prod(shape)
    w3, b3 = w(12, flat), 0.1 * rng.normal(size=12)
    w4, b4 = w(4, 12), 0.1 * rng.normal(size=4)
    layers += [lrp.Flatten(), lrp.Dense(w3, b3, activation=lrp.relu), lrp.Dense(w4, b4)]
    steps += [("flatten",), O.dense_step(w3, b3, True), O.dense_step(w4, b4, False)]
    x = rng.normal(size=(3, 2, 6, 6))
    return lrp.Chain(*layers), O.OracleChain((2, 6, 6), steps), x


@pytest.mark.parametrize("rule", [lrp.ZeroRule(), lrp.EpsilonRule(0.01), lrp.GammaRule(),
                                  lrp.ZPlusRule(), lrp.AlphaBetaRule(), lrp.AlphaBetaRule(1.5, 0.5),
                                  lrp.GeneralizedGammaRule(), lrp.FlatRule(), lrp.WSquareRule()],
                         ids=repr)
@pytest.mark.parametrize("pool", [False, True], ids=["nopool", "pool"])
def test_analyzer_equals_chained_equations(rule, pool):
    model, chain, x = twin_chain(11, pool)
    rules = rules_for(model, rule)
    if pool:   # ZBox on the first layer, as the presets do
        rules[0] = lrp.ZBoxRule(-3.0, 3.0)
    expl = lrp.LRP(model, rules, normalize_output_relevance=False)(x)
    logits = chain.forward(x)
    start = np.eye(4)[logits.argmax(1)] * logits
    expected = chain.lrp(x, rules, start)
    np.testing.assert_allclose(np.asarray(expl.val), expected, rtol=1e-10,
                               atol=1e-13 * np.abs(expected).max())


@pytest.mark.parametrize("selection", [np.int64(2), np.int32(2), np.array(2)], ids=repr)
def test_output_selection_accepts_numpy_integers(selection):
    """``analyzer(x, 3)`` explains output 3 for every sample; a NumPy integer (a label read
    from an array, ``logits.argmax()``) or a 0-d array is the same int."""
    model, x = dense_net_signed(0)
    expected = lrp.LRP(model)(x, 2)
    got = lrp.LRP(model)(x, selection)
    assert list(got.output_selection) == [2] * len(x)
    np.testing.assert_array_equal(np.asarray(got.val), np.asarray(expected.val))
