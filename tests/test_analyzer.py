"""The analyzer's API: output selection, start relevance, extras, dtypes, errors, threads."""

import threading

import numpy as np
import pytest

import lrp_core as lrp
from lrp_core.cli import random_lenet5

rng = np.random.default_rng(7)


@pytest.fixture(scope="module")
def lenet():
    return random_lenet5(seed=2)


@pytest.fixture(scope="module")
def x():
    return rng.random((3, 1, 28, 28))


def test_explanation_fields(lenet, x):
    expl = lrp.LRP(lenet)(x)
    logits = lenet(x)
    assert expl.val.shape == x.shape and expl.val.dtype == x.dtype
    assert expl.input is x
    np.testing.assert_allclose(expl.output, logits, rtol=1e-12)
    assert expl.output_selection == list(np.argmax(logits, axis=1))
    assert (expl.analyzer, expl.heatmap, expl.extras) == ("LRP", "attribution", None)


def test_lrp_analyze_is_the_call(lenet, x):
    analyzer = lrp.LRP(lenet, lrp.EpsilonPlus())
    np.testing.assert_array_equal(lrp.analyze(x, analyzer, 4).val, analyzer(x, 4).val)


def test_output_selection_forms(lenet, x):
    analyzer = lrp.LRP(lenet)
    assert analyzer(x, 3).output_selection == [3, 3, 3]
    per_sample = analyzer(x, [3, 1, 4])
    assert per_sample.output_selection == [3, 1, 4]
    for i, k in enumerate([3, 1, 4]):
        np.testing.assert_allclose(per_sample.val[i:i + 1], analyzer(x[i:i + 1], k).val,
                                   rtol=1e-10, atol=1e-16)
    np.testing.assert_array_equal(analyzer(x, np.array([3, 1, 4])).val, per_sample.val)


@pytest.mark.parametrize("bad, error, match", [
    (10, ValueError, "out of range"),
    (-1, ValueError, "out of range"),
    ([1, 2], ValueError, "2 entries for a batch of 3"),
    ("cat", TypeError, "one int per sample"),
    ([1.7, 2, 3], TypeError, "one int per sample"),
])
def test_bad_output_selection(lenet, x, bad, error, match):
    with pytest.raises(error, match=match):
        lrp.LRP(lenet)(x, bad)


def test_normalized_output_relevance_sums_to_one_and_logit_scales(lenet, x):
    normalized = lrp.LRP(lenet)(x, 2)
    raw = lrp.LRP(lenet, normalize_output_relevance=False)(x, 2)
    logit = lenet(x)[:, 2]
    np.testing.assert_allclose(raw.val, normalized.val * logit[:, None, None, None],
                               rtol=1e-9, atol=1e-15)


def test_output_relevance_start(lenet, x):
    analyzer = lrp.LRP(lenet)
    start = np.zeros((3, 10))
    start[:, 5] = 1.0
    np.testing.assert_allclose(analyzer(x, output_relevance=start).val, analyzer(x, 5).val,
                               rtol=1e-12)
    assert analyzer(x, output_relevance=start).output_selection is None
    with pytest.raises(ValueError, match="shape"):
        analyzer(x, output_relevance=np.zeros((3, 9)))


def test_layerwise_relevances(lenet, x):
    expl = lrp.LRP(lenet)(x, layerwise_relevances=True)
    rel = expl.extras["layerwise_relevances"]
    assert len(rel) == len(lenet) + 1
    np.testing.assert_array_equal(rel[0], expl.val)
    assert rel[-1].shape == (3, 10) and np.all(rel[-1].sum(axis=1) == 1)
    assert rel[5].shape == (3, 256)  # after Flatten


def test_rules_list_of_wrong_length_prints_numbered_layers(lenet):
    with pytest.raises(ValueError) as info:
        lrp.LRP(lenet, [lrp.ZeroRule()] * 3)
    message = str(info.value)
    assert "3 rules for a model of 8 layers" in message
    assert "0  Conv(5x5, 1 => 6, ReLU())" in message and "7  Dense(84 => 10)" in message


def test_rules_of_the_wrong_type(lenet):
    with pytest.raises(TypeError, match="LRPRule"):
        lrp.LRP(lenet, ["zero"] * 8)
    with pytest.raises(TypeError, match="Composite"):
        lrp.LRP(lenet, "epsilon")


def test_single_rule_for_every_layer(lenet, x):
    a = lrp.LRP(lenet, lrp.EpsilonRule(0.01))
    assert a.rules == (lrp.EpsilonRule(0.01),) * 8


def test_incompatible_rule_names_rule_and_layer(lenet):
    rules = [lrp.ZeroRule(), lrp.GammaRule()] + [lrp.ZeroRule()] * 6
    with pytest.raises(lrp.LRPCompatibilityError,
                       match=r"GammaRule\(gamma=0.25\).*layer 1 \(MaxPool"):
        lrp.LRP(lenet, rules)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_kept(lenet, dtype):
    x = rng.random((2, 1, 28, 28)).astype(dtype)
    expl = lrp.LRP(lenet, lrp.EpsilonPlusFlat())(x)
    assert expl.val.dtype == dtype and expl.output.dtype == dtype


def test_float16_computed_in_float32_and_returned_as_float16(lenet):
    x16 = rng.random((2, 1, 28, 28)).astype(np.float16)
    analyzer = lrp.LRP(lenet, lrp.EpsilonPlus())
    expl = analyzer(x16)
    assert expl.val.dtype == np.float16
    reference = analyzer(x16.astype(np.float32)).val
    np.testing.assert_array_equal(expl.val, reference.astype(np.float16))


def test_integer_input_is_refused(lenet):
    with pytest.raises(TypeError, match="floating-point"):
        lrp.LRP(lenet)(np.zeros((1, 1, 28, 28), dtype=np.uint8))


def test_modified_layers_built_once_per_namespace_and_dtype(lenet, x):
    analyzer = lrp.LRP(lenet, lrp.EpsilonPlusFlat())
    analyzer(x)
    analyzer(x)
    analyzer(x.astype(np.float32))
    assert len(analyzer._cache) == 2


def test_input_and_model_untouched(lenet, x):
    before_x = x.copy()
    before_w = [np.array(l.weight) for l in lenet if hasattr(l, "weight")]
    lrp.LRP(lenet, lrp.EpsilonGammaBox(0.0, 1.0))(x)
    np.testing.assert_array_equal(x, before_x)
    for w, layer in zip(before_w, [l for l in lenet if hasattr(l, "weight")]):
        np.testing.assert_array_equal(w, layer.weight)


def test_one_analyzer_serves_several_threads(lenet):
    analyzer = lrp.LRP(lenet, lrp.EpsilonPlusFlat())
    inputs = [rng.random((2, 1, 28, 28)) for _ in range(6)]
    expected = [analyzer(v).val for v in inputs]
    results = [None] * len(inputs)

    def work(i):
        results[i] = analyzer(inputs[i]).val

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


def test_a_layer_applied_twice_is_two_nodes():
    dense = lrp.Dense(rng.standard_normal((4, 4)), activation=lrp.relu)
    x = lrp.Input()
    y = dense(dense(x))
    model = lrp.Graph(x, y)
    assert len(model) == 2 and model[0] is model[1]
    inputs = rng.standard_normal((2, 4))
    expl = lrp.LRP(model, normalize_output_relevance=False)(inputs)
    w = dense.weight
    h = np.maximum(inputs @ w.T, 0)
    assert expl.val.shape == (2, 4)
    np.testing.assert_allclose(expl.output, np.maximum(h @ w.T, 0))


def test_unbatched_input_is_refused(lenet):
    with pytest.raises(ValueError, match="batch first"):
        lrp.LRP(lrp.Chain(lrp.Dense(np.eye(3))))(np.ones(3))
