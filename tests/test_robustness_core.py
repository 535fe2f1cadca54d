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

    def counting(self, graph, xp, layers):
        calls.append(1)
        return original(self, graph, xp, layers)

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


# -- 6. one build per call, pickling, arrays without version counters ---------------------------
def test_a_rebuild_during_a_call_does_not_mix_builds():
    """A call takes the analyzer's build once: when another call rebuilds it (a weight changed
    in place) while this one runs, this call still explains the model it started on, and the
    other call the changed model. (The ZBox bounds depend on the Affine's scale through the
    rule's binding, so the two models' relevances differ.)"""
    torch.manual_seed(0)
    scale = torch.rand(4, dtype=torch.float64) + 0.5
    shift = torch.randn(4, dtype=torch.float64)
    w1, w2 = torch.randn(5, 4, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    x = torch.rand(2, 4, dtype=torch.float64)
    rules = [lrp.PassRule(), lrp.ZBoxRule(-1.0, 1.0), lrp.PassRule(), lrp.EpsilonRule()]
    state = {"armed": False, "inner": None}

    def trigger(z):
        if state["armed"]:
            state["armed"] = False
            with torch.no_grad():
                scale.mul_(3.0)  # a training step in another thread, say
            state["inner"] = analyzer(x)  # ... whose call rebuilds the analyzer
        return z

    def graph(s, t, fn=lambda z: z):
        return lrp.Chain(lrp.Affine(s, t), lrp.Dense(w1), lrp.Activation(fn, "f"),
                         lrp.Dense(w2))

    analyzer = lrp.LRP(graph(scale, shift, trigger), rules, canonize=False)
    before = lrp.LRP(graph(scale.clone(), shift), rules, canonize=False)(x)
    analyzer(x)  # built and prepared
    state["armed"] = True
    outer = analyzer(x)
    after = lrp.LRP(graph(scale.clone(), shift), rules, canonize=False)(x)
    assert not torch.allclose(before.val, after.val)
    torch.testing.assert_close(outer.val, before.val, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(outer.output, before.output, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(state["inner"].val, after.val, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make", [lambda: small_chain(), lambda: conv_bn_model()],
                         ids=["numpy graph", "torch model"])
def test_an_analyzer_pickles(make):
    import pickle

    analyzer = lrp.LRP(make(), lrp.EpsilonPlusFlat())
    x = sample() if isinstance(analyzer.model[0].weight, np.ndarray) else torch_input()
    expected = analyzer(x)
    copied = pickle.loads(pickle.dumps(analyzer))
    assert repr(copied) == repr(analyzer)
    got = copied(x)
    np.testing.assert_array_equal(np.asarray(got.val), np.asarray(expected.val))
    analyzer(x)  # the original still works after being pickled


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_numpy_graph_changed_in_place_is_explained_as_built(backend):
    """NumPy arrays carry no version counter: the analyzer keeps its own read-only copy of a
    writable array, so it never mixes old modified weights with new ones (also where the
    conversion to torch would share the NumPy memory)."""
    graph = small_chain()
    analyzer = lrp.LRP(graph, lrp.EpsilonRule(1e-6))
    x = sample() if backend == "numpy" else torch.from_numpy(sample())
    expected = analyzer(x)
    graph[2].weight[...] *= 5.0
    again = analyzer(x)
    np.testing.assert_array_equal(np.asarray(again.val), np.asarray(expected.val))
    np.testing.assert_array_equal(np.asarray(again.output), np.asarray(expected.output))
    fresh = lrp.LRP(graph, lrp.EpsilonRule(1e-6))(x)
    assert not np.allclose(np.asarray(fresh.output), np.asarray(expected.output))
    with pytest.raises(ValueError, match="read-only"):
        analyzer.model[-1].weight[0, 0] = 1.0


def test_read_only_arrays_are_not_copied():
    graph = small_chain()
    for layer in graph:
        for name in ("weight", "bias"):
            if getattr(layer, name, None) is not None:
                getattr(layer, name).flags.writeable = False
    analyzer = lrp.LRP(graph)
    analyzer(sample())
    (prepared,) = analyzer._cache.values()
    assert prepared.layers[0].weight is graph[0].weight


# -- 7. input shapes named by the layer that fixes them ------------------------------------------
def test_a_dense_first_layer_names_the_shape_it_takes():
    with pytest.raises(ValueError, match=r"^the model takes inputs of shape \(N, \.\.\., 4\) "
                                         r"\(its first layer is .*Dense\(4 => 5.*\), "
                                         r"got \(2, 7\)$"):
        lrp.LRP(small_chain())(np.ones((2, 7)))


def test_a_conv_first_layer_names_the_shape_it_takes():
    model = lrp.Chain(lrp.Conv(np.ones((2, 3, 3, 3))), lrp.Flatten())
    with pytest.raises(ValueError, match=r"takes inputs of shape \(N, 3, H, W\) .* got "
                                         r"\(1, 1, 8, 8\)$") as info:
        lrp.LRP(model)(np.ones((1, 1, 8, 8)))
    assert "conv" not in str(info.value).split("got")[1].lower()


def test_a_deeper_layer_names_its_shape_and_the_model_input():
    model = lrp.Chain(lrp.Flatten(), lrp.Dense(np.ones((3, 784))))
    with pytest.raises(ValueError, match=r"Dense\(784 => 3\).* takes inputs of shape "
                                         r"\(N, \.\.\., 784\) and gets \(2, 756\) from the model "
                                         r"input of shape \(2, 27, 28\)"):
        lrp.LRP(model)(np.ones((2, 27, 28)))


# -- 8. lrp.propagate checks its arrays ---------------------------------------------------------
@pytest.mark.parametrize("where", ["input", "relevance"])
def test_propagate_refuses_non_finite_values(where):
    layer = lrp.Dense(np.ones((3, 4)))
    a, r = np.ones((2, 4)), np.ones((2, 3))
    (a if where == "input" else r)[0, 0] = math.nan
    with pytest.raises(lrp.NonFiniteError, match=f"propagate: the {where} holds NaN"):
        lrp.propagate(lrp.EpsilonRule(), layer, a, r)


def test_output_relevance_on_another_device_is_an_error():
    """Mixing devices is an error, never a silent transfer (the meta device stands in for a
    second GPU here)."""
    model = conv_bn_model()
    x = torch_input()
    analyzer = lrp.LRP(model)
    elsewhere = torch.ones((x.shape[0], 4), device="meta")
    with pytest.raises(ValueError, match="output_relevance is on device meta, the input on cpu"):
        analyzer(x, output_relevance=elsewhere)
    on_host = np.ones((x.shape[0], 4))  # a host array is copied to the input's device
    analyzer(x, output_relevance=on_host)
