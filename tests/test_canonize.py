"""Model preparation: canonize, strip_softmax, check_model. The oracle is the forward pass."""

import numpy as np
import pytest

import lrp_core as lrp

rng = np.random.default_rng(3)


def batchnorm(c):
    return lrp.BatchNorm(rng.random(c) + 0.5, rng.standard_normal(c), rng.standard_normal(c),
                         rng.random(c) * 1e-3, eps=1e-2)  # eps dominates var: forgetting it shows


@pytest.mark.parametrize("make", [
    lambda: lrp.Conv(rng.standard_normal((5, 3, 3, 3)), rng.standard_normal(5), padding=1),
    lambda: lrp.Conv(rng.standard_normal((6, 1, 3, 3)), None, groups=3),
    lambda: lrp.ConvTranspose(rng.standard_normal((3, 5, 3, 3)), rng.standard_normal(5), stride=2),
    lambda: lrp.ConvTranspose(rng.standard_normal((3, 2, 3, 3)), None, groups=3),
])
def test_batchnorm_fused_into_conv_with_its_epsilon(make):
    conv = make()
    out_c = (conv.weight.shape[1] * conv.groups if isinstance(conv, lrp.ConvTranspose)
             else conv.weight.shape[0])
    model = lrp.Chain(conv, batchnorm(out_c), lrp.ReLU())
    fused = lrp.canonize(model)
    assert (len(fused) == 1 and isinstance(fused[0], type(conv))
            and isinstance(fused[0].activation, lrp.ReLU))
    x = rng.standard_normal((2, 3, 6, 6))
    np.testing.assert_allclose(fused(x), model(x), rtol=1e-12, atol=1e-12)


def test_batchnorm_fused_into_dense():
    model = lrp.Chain(lrp.Dense(rng.standard_normal((4, 3))), batchnorm(4))
    fused = lrp.canonize(model)
    assert len(fused) == 1
    x = rng.standard_normal((5, 3))
    np.testing.assert_allclose(fused(x), model(x), rtol=1e-12)


def test_batchnorm_not_fused_when_the_conv_output_is_read_twice():
    x = lrp.Input()
    h = lrp.Conv(rng.standard_normal((3, 3, 1, 1)))(x)
    y = lrp.Add()(batchnorm(3)(h), h)
    model = lrp.Graph(x, y)
    fused = lrp.canonize(model)
    # the BatchNorm stays a layer of its own, as the channel-wise Affine of its effective map
    assert [type(l).__name__ for l in fused] == ["Conv", "Affine", "Add"]
    assert fused[1].axis == 1
    data = rng.standard_normal((2, 3, 4, 4))
    np.testing.assert_allclose(fused(data), model(data), rtol=1e-12, atol=1e-12)


def test_noops_removed_and_model_untouched():
    model = lrp.Chain(lrp.Identity(), lrp.Dropout(0.3), lrp.Reshape((2, 3), input_shape=(2, 3)),
                      lrp.Reshape((6,)), lrp.Dense(np.ones((2, 6))), lrp.ReLU())
    before = repr(model)
    fused = lrp.canonize(model)
    assert [type(l).__name__ for l in fused] == ["Reshape", "Dense"]
    assert repr(model) == before and len(model) == 6


def test_strip_softmax():
    model = lrp.Chain(lrp.Dense(np.eye(3)), lrp.Softmax())
    with pytest.raises(lrp.ModelCheckError, match="strip_softmax"):
        lrp.LRP(model)
    stripped = lrp.strip_softmax(model)
    assert len(stripped) == 1
    x = rng.standard_normal((2, 3))
    np.testing.assert_allclose(stripped(x), x)
    fused = lrp.Chain(lrp.Dense(np.eye(3), activation=lrp.Softmax()))
    assert lrp.strip_softmax(fused)[0].activation is None
    assert lrp.strip_softmax(stripped) is stripped


def test_check_model_names_each_problem_and_where():
    class Weird(lrp.Layer):
        def forward(self, x):
            return x

    model = lrp.Chain(lrp.Dense(np.eye(3)), lrp.Dense(np.eye(3), activation=lrp.Softmax()),
                      Weird(), lrp.Dense(np.eye(3)))
    with pytest.raises(lrp.ModelCheckError) as info:
        lrp.check_model(model)
    message = str(info.value)
    assert "layer 1 (Dense" in message and "softmax activation inside the model" in message
    assert "lrp.Softmax(dim)" in message
    assert "layer 2 (Weird()" in message and "not a supported layer type" in message
    assert lrp.check_model(lrp.Chain(lrp.Dense(np.eye(3)))) is True
    # a Softmax layer inside the network is explained by the rules (lrp.SoftmaxRule)
    assert lrp.check_model(lrp.Chain(lrp.Dense(np.eye(3)), lrp.Softmax(), lrp.Dense(np.eye(3))))
    lrp.LRP(model, skip_checks=True, canonize=False)  # the check can be skipped


def test_a_constant_added_to_the_model_input_is_an_input_normalisation():
    """``x - mean`` on the model input (as a reader writes it, AddConstant) becomes the
    shift-only Affine: PassRule in the presets, ZBox bounds mapped through it; a constant added
    inside the network stays an AddConstant (a bias that keeps its share of relevance)."""
    rng = np.random.default_rng(0)
    mean = rng.standard_normal(4)
    w0, w1 = rng.standard_normal((5, 4)), rng.standard_normal((3, 5))
    embedding = rng.standard_normal(5)
    model = lrp.Chain(lrp.AddConstant(-mean), lrp.Affine(np.full(4, 2.0)), lrp.Dense(w0),
                      lrp.AddConstant(embedding), lrp.Dense(w1))
    canonized = lrp.canonize(model)
    kinds = [type(layer).__name__ for layer in canonized]
    assert kinds == ["Affine", "Affine", "Dense", "AddConstant", "Dense"]
    np.testing.assert_array_equal(canonized[0].bias, -mean)
    x = rng.standard_normal((2, 4))
    np.testing.assert_allclose(lrp.LRP(model)(x).output, lrp.LRP(canonized)(x).output)
    # the box bounds of the input space, mapped through both: the same as a hand-normalised model
    rules = lrp.LRP(model, lrp.EpsilonGammaBox(-1.0, 1.0)).rules
    assert [type(r).__name__ for r in rules[:2]] == ["PassRule", "PassRule"]
    analyzer = lrp.LRP(model, [lrp.PassRule(), lrp.PassRule(), lrp.ZBoxRule(-1.0, 1.0),
                               lrp.EpsilonRule(1e-6), lrp.EpsilonRule(1e-6)])
    plain = lrp.Chain(lrp.Dense(w0), lrp.AddConstant(embedding), lrp.Dense(w1))
    normalised = lrp.LRP(plain, [lrp.ZBoxRule(2 * (-1.0 - mean), 2 * (1.0 - mean)),
                                 lrp.EpsilonRule(1e-6), lrp.EpsilonRule(1e-6)], canonize=False)
    z = 2.0 * (x - mean)
    np.testing.assert_allclose(analyzer(x).val, normalised(z).val, rtol=1e-10, atol=1e-12)
