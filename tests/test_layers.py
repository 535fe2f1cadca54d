"""Layers: forward values against direct definitions, pullbacks against finite differences."""

import math

import numpy as np
import pytest

import lrp_core as lrp

rng = np.random.default_rng(11)


def adaptive_windows(length, out):
    return [(math.floor(i * length / out), math.ceil((i + 1) * length / out)) for i in range(out)]


def naive_adaptive(x, out_hw, reduce):
    n, c, h, w = x.shape
    y = np.zeros((n, c) + out_hw)
    for i, (h0, h1) in enumerate(adaptive_windows(h, out_hw[0])):
        for j, (w0, w1) in enumerate(adaptive_windows(w, out_hw[1])):
            y[:, :, i, j] = reduce(x[:, :, h0:h1, w0:w1].reshape(n, c, -1), axis=-1)
    return y


@pytest.mark.parametrize("out", [(3, 2), (5, 7), (1, 1), (7, 4)])
def test_adaptive_pools_match_their_definition(out):
    x = rng.standard_normal((2, 3, 7, 5))
    np.testing.assert_allclose(lrp.AdaptiveAvgPool(out)(x), naive_adaptive(x, out, np.mean),
                               rtol=1e-12)
    np.testing.assert_allclose(lrp.AdaptiveMaxPool(out)(x), naive_adaptive(x, out, np.max),
                               rtol=1e-12)


def test_global_pools():
    x = rng.standard_normal((2, 3, 4, 5))
    np.testing.assert_allclose(lrp.GlobalAvgPool()(x), x.mean(axis=(2, 3), keepdims=True),
                               rtol=1e-12)
    np.testing.assert_allclose(lrp.GlobalMaxPool(keepdims=False)(x), x.max(axis=(2, 3)))


def test_batchnorm_and_layernorm_forward():
    x = rng.standard_normal((4, 3, 2, 2))
    g, b, m, v = rng.random(3) + 0.5, rng.standard_normal(3), rng.standard_normal(3), rng.random(3)
    expected = ((x - m[:, None, None]) / np.sqrt(v[:, None, None] + 1e-3) * g[:, None, None]
                + b[:, None, None])
    np.testing.assert_allclose(lrp.BatchNorm(g, b, m, v, eps=1e-3)(x), expected, rtol=1e-12)
    x = rng.standard_normal((4, 3, 6))
    g, b = rng.standard_normal(6), rng.standard_normal(6)
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(lrp.LayerNorm(6, g, b)(x), (x - mu) / np.sqrt(var + 1e-5) * g + b,
                               rtol=1e-12)


def test_activations():
    x = np.linspace(-7, 7, 301)
    erf = np.array([math.erf(v / math.sqrt(2)) for v in x])
    np.testing.assert_allclose(lrp.GELU()(x), 0.5 * x * (1 + erf), rtol=1e-12, atol=1e-14)
    tanh_gelu = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(lrp.GELU("tanh")(x), tanh_gelu, rtol=1e-13)
    np.testing.assert_allclose(lrp.SiLU()(x), x / (1 + np.exp(-x)), rtol=1e-13)
    np.testing.assert_allclose(lrp.ELU(0.5)(x), np.where(x > 0, x, 0.5 * np.expm1(x)), rtol=1e-13)
    np.testing.assert_allclose(lrp.LeakyReLU(0.1)(x), np.where(x > 0, x, 0.1 * x))
    np.testing.assert_allclose(lrp.ReLU6()(x), np.clip(x, 0, 6))
    np.testing.assert_allclose(lrp.Sigmoid()(x), 1 / (1 + np.exp(-x)), rtol=1e-13)
    np.testing.assert_allclose(lrp.Tanh()(x), np.tanh(x))
    s = lrp.Softmax()(x[None])
    np.testing.assert_allclose(s, np.exp(x)[None] / np.exp(x).sum(), rtol=1e-12)


def test_reshaping_and_concat():
    x = rng.standard_normal((2, 3, 4))
    assert lrp.Flatten()(x).shape == (2, 12)
    assert lrp.Reshape((4, 3))(x).shape == (2, 4, 3)
    y = lrp.Concat(axis=1)(x, x[:, :1])
    assert y.shape == (2, 4, 4)
    pieces = lrp.Concat(1).route(y, [x.shape, (2, 1, 4)])
    np.testing.assert_array_equal(pieces[0], x)
    with pytest.raises(ValueError, match="batch axis"):
        lrp.Concat(axis=0)(x, x)


LINEARIZABLE = [
    (lambda: lrp.Dense(rng.standard_normal((3, 5)), rng.standard_normal(3)), (2, 5)),
    (lambda: lrp.Conv(rng.standard_normal((4, 2, 3, 3)), rng.standard_normal(4), stride=2,
                      padding=((1, 0), (2, 1))), (2, 2, 7, 6)),
    (lambda: lrp.Conv(rng.standard_normal((4, 1, 3)), None, groups=2, dilation=2, padding="same"),
     (2, 2, 9)),
    (lambda: lrp.ConvTranspose(rng.standard_normal((2, 3, 3, 3)), rng.standard_normal(3), stride=2,
                               padding=1, output_padding=1), (2, 2, 4, 4)),
    (lambda: lrp.AvgPool(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
     (2, 2, 6, 7)),
    (lambda: lrp.AdaptiveAvgPool((3, 2)), (2, 2, 7, 5)),
    (lambda: lrp.GlobalAvgPool(), (2, 3, 4, 4)),
    (lambda: lrp.BatchNorm(rng.random(3), rng.random(3), rng.random(3), rng.random(3)), (2, 3, 4)),
    (lambda: lrp.LayerNorm((2, 3), rng.standard_normal((2, 3)), rng.standard_normal((2, 3))),
     (4, 2, 3)),
    (lambda: lrp.MaxPool(2, stride=1), (2, 2, 5, 5)),
    (lambda: lrp.AdaptiveMaxPool((2, 3)), (2, 2, 5, 7)),
    (lambda: lrp.GlobalMaxPool(), (2, 3, 4, 4)),
]


@pytest.mark.parametrize("make, shape", LINEARIZABLE)
def test_pullback_is_the_vector_jacobian_product(make, shape):
    """<pullback(s), v> equals the directional derivative of <z(x), s> along v (central
    differences; max pooling is piecewise linear, so distinct values make it exact)."""
    layer = make()
    x = rng.permutation(np.arange(np.prod(shape), dtype=float)).reshape(shape) / 7.0 + 0.1
    z, pullback = layer.linearize(x)
    s = rng.standard_normal(z.shape)
    (g,) = pullback(s)
    assert g.shape == x.shape
    v = rng.standard_normal(shape)
    h = 1e-5
    numeric = (np.sum(layer.preactivation(x + h * v) * s)
               - np.sum(layer.preactivation(x - h * v) * s)) / (2 * h)
    np.testing.assert_allclose(np.sum(g * v), numeric, rtol=1e-7, atol=1e-9)


def test_add_pullback_and_shape_check():
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    z, pullback = lrp.Add().linearize(a, b)
    np.testing.assert_array_equal(z, a + b)
    s = rng.standard_normal((2, 3))
    assert all(np.array_equal(p, s) for p in pullback(s))
    with pytest.raises(ValueError, match="one shape"):
        lrp.Add()(a, b[:, :2])


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="out_features, in_features"):
        lrp.Dense(np.ones(3))
    with pytest.raises(ValueError, match="rank 3, 4 or 5"):
        lrp.Conv(np.ones((2, 2)))
    with pytest.raises(ValueError, match="'same' needs stride 1"):
        lrp.Conv(np.ones((1, 1, 3, 3)), stride=2, padding="same")
    with pytest.raises(ValueError, match="expects input of rank 4"):
        lrp.Conv(np.ones((1, 1, 3, 3)))(np.ones((1, 5, 5)))
    with pytest.raises(TypeError, match="activation"):
        lrp.Dense(np.ones((2, 2)), activation=3)


def test_activation_argument_forms():
    w = np.ones((2, 2))
    assert isinstance(lrp.Dense(w, activation=lrp.relu).activation, lrp.ReLU)
    assert isinstance(lrp.Dense(w, activation=lrp.Tanh).activation, lrp.Tanh)
    custom = lrp.Dense(w, activation=lambda v: v * 2)
    np.testing.assert_array_equal(custom(np.ones((1, 2))), [[4.0, 4.0]])


def test_graph_construction_and_printing():
    x = lrp.Input()
    h = lrp.Dense(np.eye(3), activation=lrp.relu)(x)
    y = lrp.Concat(1)(lrp.Dense(np.eye(3))(h), h)
    graph = lrp.Graph(x, y)
    assert len(graph) == 3 and not graph.is_chain
    text = repr(graph)
    assert "2  Concat(axis=1)  <- 1, 0" in text
    chain = lrp.Chain(lrp.Chain(lrp.Dense(np.eye(3)), lrp.ReLU()), lrp.Flatten())
    assert len(chain) == 3 and chain.is_chain
    with pytest.raises(TypeError, match="lrp_core layers"):
        lrp.Chain(lrp.ReLU(), "relu")
    other = lrp.Input()
    with pytest.raises(ValueError, match="different graphs"):
        lrp.Add()(x, other)
