"""Robustness of the core: non-finite inputs and weights are refused with a message that names
them; rule parameters are validated when the rule is built; user-facing argument errors name
the argument; an analyzer explains a torch model as it is at each call (weights changed in
place are noticed); a torch model in training mode is explained as in ``eval()``, with a
warning."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import lrp_core as lrp


def small_chain(weight_1=None):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((5, 4))
    w1 = rng.standard_normal((3, 5)) if weight_1 is None else weight_1
    return lrp.Chain(lrp.Dense(w0, rng.standard_normal(5)), lrp.ReLU(),
                     lrp.Dense(w1, rng.standard_normal(3)))


def sample(n=2):
    return np.random.default_rng(1).standard_normal((n, 4))


# -- 1. non-finite values -----------------------------------------------------------------------
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_input_is_refused(bad):
    x = sample()
    x[1, 2] = bad
    with pytest.raises(ValueError, match="input holds NaN or infinity"):
        lrp.LRP(small_chain())(x)


def test_non_finite_error_is_an_lrp_error():
    assert issubclass(lrp.NonFiniteError, lrp.LRPError)
    assert issubclass(lrp.NonFiniteError, ValueError)
    x = sample()
    x[0, 0] = math.nan
    with pytest.raises(lrp.NonFiniteError):
        lrp.LRP(small_chain())(x)


def test_non_finite_output_relevance_is_refused():
    analyzer = lrp.LRP(small_chain())
    r = np.ones((2, 3))
    r[0, 1] = math.nan
    with pytest.raises(ValueError, match="output_relevance holds NaN"):
        analyzer(sample(), output_relevance=r)


def test_non_finite_weight_is_refused_naming_layer_and_parameter():
    w1 = np.random.default_rng(2).standard_normal((3, 5))
    w1[2, 0] = math.nan
    analyzer = lrp.LRP(small_chain(w1))
    with pytest.raises(ValueError, match=r"layer 1 \(Dense\(5 => 3\)\): weight") as info:
        analyzer(sample())
    assert "layer 0" not in str(info.value)


def test_weights_are_checked_once_per_namespace(monkeypatch):
    calls = []
    original = lrp.LRP._check_parameters

    def counting(self, xp, layers):
        calls.append(1)
        return original(self, xp, layers)

    monkeypatch.setattr(lrp.LRP, "_check_parameters", counting)
    analyzer = lrp.LRP(small_chain())
    for _ in range(3):
        analyzer(sample())
    assert len(calls) == 1


def test_finite_values_still_explain():
    expl = lrp.LRP(small_chain())(sample())
    assert np.all(np.isfinite(expl.val))


# -- 2. rule parameters ---------------------------------------------------------------------------
@pytest.mark.parametrize("make, error, match", [
    (lambda: lrp.EpsilonRule(math.nan), ValueError, "EpsilonRule: epsilon must be a finite pos"),
    (lambda: lrp.EpsilonRule(-1), ValueError, "EpsilonRule: epsilon"),
    (lambda: lrp.EpsilonRule(0.0), ValueError, "EpsilonRule: epsilon"),
    (lambda: lrp.EpsilonRule(math.inf), ValueError, "EpsilonRule: epsilon"),
    (lambda: lrp.EpsilonRule("1e-6"), TypeError, "EpsilonRule: epsilon must be a finite pos"),
    (lambda: lrp.EpsilonRule(None), TypeError, "EpsilonRule: epsilon"),
    (lambda: lrp.GammaRule(math.inf), ValueError, "GammaRule: gamma must be a finite float >= 0"),
    (lambda: lrp.GammaRule(math.nan), ValueError, "GammaRule: gamma"),
    (lambda: lrp.GammaRule(-1), ValueError, "GammaRule: gamma"),
    (lambda: lrp.GammaRule("0.25"), TypeError, "GammaRule: gamma"),
    (lambda: lrp.GeneralizedGammaRule(math.nan), ValueError, "GeneralizedGammaRule: gamma"),
    (lambda: lrp.GeneralizedGammaRule(-0.5), ValueError, "GeneralizedGammaRule: gamma"),
    (lambda: lrp.AlphaBetaRule(math.nan, 0), ValueError, "AlphaBetaRule: alpha"),
    (lambda: lrp.AlphaBetaRule(2.0, math.nan), ValueError, "AlphaBetaRule: beta"),
    (lambda: lrp.AlphaBetaRule(math.inf, math.inf), ValueError, "AlphaBetaRule: alpha"),
    (lambda: lrp.ZBoxRule(1.0, -1.0), ValueError, "ZBoxRule needs low <= high"),
    (lambda: lrp.ZBoxRule(math.nan, 1.0), ValueError, "ZBoxRule: low must be finite"),
    (lambda: lrp.ZBoxRule(0.0, math.inf), ValueError, "ZBoxRule: high must be finite"),
    (lambda: lrp.ZBoxRule("0", 1.0), TypeError, "ZBoxRule: low"),
    (lambda: lrp.ZBoxRule(np.array([0.0, math.nan]), 1.0), ValueError, "ZBoxRule: low"),
    (lambda: lrp.ZBoxRule(np.zeros(3), np.array([1.0, -1.0, 1.0])), ValueError, "elementwise"),
    (lambda: lrp.EpsilonGammaBox(2.0, 1.0), ValueError, "ZBoxRule needs low <= high"),
    (lambda: lrp.EpsilonPlus(epsilon=-1e-6), ValueError, "EpsilonRule: epsilon"),
])
def test_invalid_rule_parameters_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("make", [
    lambda: lrp.EpsilonRule(1),
    lambda: lrp.EpsilonRule(np.float32(1e-3)),
    lambda: lrp.EpsilonRule(float(np.finfo(np.float64).tiny)),
    lambda: lrp.GammaRule(0),
    lambda: lrp.GammaRule(np.float64(0.5)),
    lambda: lrp.GeneralizedGammaRule(0.0),
    lambda: lrp.AlphaBetaRule(1, 0),
    lambda: lrp.AlphaBetaRule(),
    lambda: lrp.ZBoxRule(-1, 1),
    lambda: lrp.ZBoxRule(0.5, 0.5),
    lambda: lrp.ZBoxRule(np.zeros((1, 4)), np.ones((1, 4))),
    lambda: lrp.ZBoxRule(np.zeros(3), 1.0),
])
def test_valid_rule_parameters_are_accepted(make):
    make()


# -- 3. argument errors with context --------------------------------------------------------------
def test_empty_batch_is_a_clear_error():
    with pytest.raises(ValueError, match="the batch is empty"):
        lrp.LRP(small_chain())(np.zeros((0, 4)))


def test_input_of_the_wrong_shape_names_the_layer():
    with pytest.raises(ValueError, match=r"layer 0 \(Dense\(4 => 5.*\(2, 7\)"):
        lrp.LRP(small_chain())(np.zeros((2, 7)))


def test_input_that_is_not_an_array_names_the_argument():
    with pytest.raises(TypeError, match="the input must be an array"):
        lrp.LRP(small_chain())([[0.0, 1.0, 2.0, 3.0]])


def test_output_relevance_that_is_not_an_array_names_the_argument():
    with pytest.raises(TypeError, match="output_relevance must be an array"):
        lrp.LRP(small_chain())(sample(), output_relevance=[[1.0, 0.0, 0.0]] * 2)


def test_preset_argument_errors_name_the_argument():
    with pytest.raises(TypeError, match="preset name must be a string"):
        lrp.preset(3)
    with pytest.raises(TypeError, match="'epsilon_plus' takes no option 'gamma'; its options: "
                                        "epsilon"):
        lrp.preset("epsilon_plus", gamma=0.5)
    assert isinstance(lrp.preset("epsilon_gamma_box", low=-1.0, high=1.0, gamma=0.1),
                      lrp.Composite)


# -- torch ----------------------------------------------------------------------------------------
torch = pytest.importorskip("torch")
nn = torch.nn


def conv_bn_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 4 * 4, 4)).double()
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 1.5)
        model[1].weight.uniform_(0.5, 1.5)
    return model.eval()


def torch_input() -> torch.Tensor:
    return torch.rand(3, 2, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def test_torch_nan_input_is_refused():
    x = torch_input()
    x[0, 0, 0, 0] = math.nan
    with pytest.raises(lrp.NonFiniteError, match="input"):
        lrp.LRP(conv_bn_model())(x)


def test_torch_nan_batchnorm_statistic_names_the_layer():
    model = conv_bn_model()
    with torch.no_grad():
        model[1].running_var[1] = math.nan
    with pytest.raises(lrp.NonFiniteError, match=r"layer 0 \(0: Conv.*\): (weight|bias)"):
        lrp.LRP(model)(torch_input())


def test_torch_empty_batch_is_a_clear_error():
    with pytest.raises(ValueError, match="the batch is empty"):
        lrp.LRP(conv_bn_model())(torch.zeros(0, 2, 6, 6, dtype=torch.float64))


def change_in_place(model: nn.Module) -> None:
    with torch.no_grad():
        model[0].weight.mul_(2)
        model[1].running_var.add_(0.7)
        model[4].bias.sub_(0.3)


@pytest.mark.parametrize("rules, canonize", [
    (None, True),
    (lrp.EpsilonGammaBox(-1.0, 2.0), True),
    (lrp.EpsilonPlusFlat(), True),
    (None, False),
    (lrp.Composite(lrp.GlobalTypeMap({lrp.ConvLayer: lrp.GammaRule(), lrp.Dense: lrp.GammaRule()})),
     False),
])
def test_analyzer_follows_in_place_weight_changes(rules, canonize):
    model = conv_bn_model()
    x = torch_input()
    analyzer = lrp.LRP(model, rules, canonize=canonize)
    before = analyzer(x).val.clone()
    before_numpy = analyzer(x.numpy()).val
    change_in_place(model)
    after = analyzer(x).val
    after_numpy = analyzer(x.numpy()).val
    fresh = lrp.LRP(model, rules, canonize=canonize)
    expected = fresh(x).val
    assert not torch.allclose(before, expected)
    torch.testing.assert_close(after, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(after_numpy, fresh(x.numpy()).val, rtol=1e-12, atol=1e-12)
    assert not np.allclose(before_numpy, after_numpy)
    # the output is the model's output as it is now
    torch.testing.assert_close(analyzer(x).output, model(x), rtol=1e-12, atol=1e-12)


def test_analyzer_is_not_rebuilt_without_changes():
    model = conv_bn_model()
    analyzer = lrp.LRP(model)
    analyzer(torch_input())
    graph, cache = analyzer.model, analyzer._cache
    analyzer(torch_input())
    assert analyzer.model is graph and analyzer._cache is cache


def test_weight_made_non_finite_in_place_is_noticed():
    model = conv_bn_model()
    analyzer = lrp.LRP(model)
    analyzer(torch_input())
    with torch.no_grad():
        model[4].weight[0, 0] = math.inf
    with pytest.raises(lrp.NonFiniteError, match=r"layer \d+ \(4: Dense.*\): weight"):
        analyzer(torch_input())


# -- 5. training mode ----------------------------------------------------------------------------
def test_training_mode_warns_naming_the_modules():
    model = nn.Sequential(nn.Linear(4, 5), nn.Dropout(0.5), nn.ReLU(), nn.Linear(5, 3),
                          nn.BatchNorm1d(3)).double().train()
    expected_message = (r"training mode \(1 \(Dropout\), 4 \(BatchNorm1d\)\).*model\.eval\(\)"
                        r".*dropout is skipped.*running statistics")
    with pytest.warns(UserWarning, match=expected_message):
        analyzer = lrp.LRP(model)
    # explained as in eval(): the same as the analyzer of the model in eval mode
    x = torch.rand(2, 4, dtype=torch.float64)
    expected = lrp.LRP(model.eval())(x).val
    torch.testing.assert_close(analyzer(x).val, expected, rtol=1e-12, atol=1e-12)


def test_eval_mode_and_plain_models_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lrp.LRP(conv_bn_model().eval())
        lrp.LRP(nn.Sequential(nn.Linear(4, 3), nn.ReLU()).double().train())
