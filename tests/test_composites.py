"""Composites: which rule each layer gets (last matching primitive wins; default ZeroRule)."""

import numpy as np
import pytest

import lrp_core as lrp


def small_cnn():
    rng = np.random.default_rng(0)
    return lrp.Chain(
        lrp.Conv(rng.standard_normal((4, 3, 3, 3)), np.zeros(4), padding=1),   # 0 (relu fused)
        lrp.ReLU(),
        lrp.MaxPool(2),                                                          # 1
        lrp.Conv(rng.standard_normal((4, 4, 3, 3)), np.zeros(4), padding=1),   # 2
        lrp.ReLU(),
        lrp.Flatten(),                                                           # 3
        lrp.Dense(rng.standard_normal((8, 64)), np.zeros(8), activation=lrp.relu),  # 4
        lrp.Dense(rng.standard_normal((3, 8)), np.zeros(3)),                     # 5
    )


def rules_of(model, composite):
    return list(lrp.LRP(model, composite).rules)


def test_unmatched_layers_get_zero_rule():
    rules = rules_of(small_cnn(), lrp.Composite(lrp.LayerMap(2, lrp.EpsilonRule())))
    assert rules == [lrp.ZeroRule()] * 2 + [lrp.EpsilonRule()] + [lrp.ZeroRule()] * 3


def test_last_matching_primitive_wins():
    composite = lrp.Composite(lrp.GlobalMap(lrp.EpsilonRule()), lrp.LayerMap(0, lrp.FlatRule()),
                              lrp.RangeMap(range(0, 1), lrp.GammaRule()))
    assert rules_of(small_cnn(), composite)[:2] == [lrp.GammaRule(), lrp.EpsilonRule()]


def test_default_rule_first_argument():
    rules = rules_of(small_cnn(),
                     lrp.Composite(lrp.EpsilonRule(0.1), lrp.LastLayerMap(lrp.ZeroRule())))
    assert rules == [lrp.EpsilonRule(0.1)] * 5 + [lrp.ZeroRule()]


def test_index_primitives():
    m = small_cnn()
    assert rules_of(m, lrp.Composite(lrp.FirstLayerMap(lrp.EpsilonRule())))[0] == lrp.EpsilonRule()
    assert rules_of(m, lrp.Composite(lrp.LastLayerMap(lrp.EpsilonRule())))[-1] == lrp.EpsilonRule()
    assert rules_of(m, lrp.Composite(lrp.LayerMap(-2, lrp.EpsilonRule())))[4] == lrp.EpsilonRule()
    assert rules_of(m, lrp.Composite(lrp.RangeMap((1, 3), lrp.EpsilonRule())))[1:4] == \
        [lrp.EpsilonRule(), lrp.EpsilonRule(), lrp.ZeroRule()]


def test_type_primitives():
    m = small_cnn()
    rules = rules_of(m, lrp.Composite(lrp.GlobalTypeMap({lrp.ConvLayer: lrp.ZPlusRule(),
                                                         lrp.Dense: lrp.EpsilonRule()})))
    assert rules == [lrp.ZPlusRule(), lrp.ZeroRule(), lrp.ZPlusRule(), lrp.ZeroRule(),
                     lrp.EpsilonRule(), lrp.EpsilonRule()]
    rules = rules_of(m, lrp.Composite(lrp.FirstNTypeMap(3, {lrp.ConvLayer: lrp.FlatRule()})))
    assert rules[:3] == [lrp.FlatRule(), lrp.ZeroRule(), lrp.FlatRule()]
    rules = rules_of(m,
                     lrp.Composite(lrp.RangeTypeMap(range(1, 6), {lrp.Dense: lrp.EpsilonRule()})))
    assert rules == [lrp.ZeroRule()] * 4 + [lrp.EpsilonRule()] * 2
    rules = rules_of(m, lrp.Composite(lrp.FirstLayerTypeMap({lrp.Dense: lrp.FlatRule()})))
    assert rules[0] == lrp.ZeroRule()  # the first layer is a Conv: no match
    rules = rules_of(m, lrp.Composite(lrp.LastLayerTypeMap({lrp.Dense: lrp.EpsilonRule()})))
    assert rules[-1] == lrp.EpsilonRule() and rules[-2] == lrp.ZeroRule()


def test_first_matching_key_in_a_type_map_decides():
    rules = rules_of(small_cnn(),
                     lrp.Composite(lrp.GlobalTypeMap({lrp.Conv: lrp.FlatRule(),
                                                      lrp.ConvLayer: lrp.ZPlusRule()})))
    assert rules[0] == lrp.FlatRule()


@pytest.mark.parametrize("preset, conv_rule, first_rule", [
    (lrp.EpsilonPlus(), lrp.ZPlusRule(), lrp.ZPlusRule()),
    (lrp.EpsilonPlusFlat(), lrp.ZPlusRule(), lrp.FlatRule()),
    (lrp.EpsilonAlpha2Beta1(), lrp.AlphaBetaRule(2, 1), lrp.AlphaBetaRule(2, 1)),
    (lrp.EpsilonAlpha2Beta1Flat(), lrp.AlphaBetaRule(2, 1), lrp.FlatRule()),
    (lrp.EpsilonGammaBox(-1.0, 1.0, gamma=0.5), lrp.GammaRule(0.5), None),
])
def test_presets(preset, conv_rule, first_rule):
    rules = rules_of(small_cnn(), preset)
    if first_rule is None:
        assert isinstance(rules[0], lrp.ZBoxRule) and (rules[0].low, rules[0].high) == (-1.0, 1.0)
    else:
        assert rules[0] == first_rule
    assert rules[2] == conv_rule
    assert rules[1] == lrp.ZeroRule()                     # pooling: left to ZeroRule
    assert rules[3] == lrp.PassRule()                     # reshaping
    assert rules[4] == rules[5] == lrp.EpsilonRule(1e-6)  # dense


def test_preset_epsilon_and_normalization_layers():
    x = lrp.Input()
    h = lrp.LayerNorm(4)(x)
    h = lrp.BatchNorm(None, None, np.zeros(4), np.ones(4))(h)  # not after a Dense: stays
    y = lrp.Dense(np.ones((2, 4)))(h)
    rules = rules_of(lrp.Graph(x, y), lrp.EpsilonPlus(epsilon=0.5))
    assert rules == [lrp.LayerNormRule(), lrp.PassRule(), lrp.EpsilonRule(0.5)]


def test_bad_primitives_are_refused():
    with pytest.raises(TypeError, match="composite primitives"):
        lrp.Composite(lrp.ZeroRule(), "conv")
    with pytest.raises(TypeError, match="LRP rule"):
        lrp.GlobalMap("zero")
    with pytest.raises(TypeError, match="layer classes"):
        lrp.GlobalTypeMap({int: lrp.ZeroRule()})


def test_printing_a_composite_shows_primitives_and_coverage():
    text = repr(lrp.EpsilonPlusFlat())
    assert "GlobalTypeMap(" in text and "all layers" in text
    assert "FirstOfTypeMap(" in text and "the first layer of these types" in text
    assert "ConvLayer" in text and "ZPlusRule()" in text and "FlatRule()" in text


def test_printing_an_analyzer_aligns_layers_and_rules():
    text = repr(lrp.LRP(small_cnn(), lrp.EpsilonPlusFlat()))
    lines = text.splitlines()[1:-1]
    assert len(lines) == 6
    columns = {line.rindex("  => ") for line in lines}
    assert len(columns) == 1  # aligned
    assert lines[0].split()[0] == "0" and "FlatRule()" in lines[0]


# -- presets on a model that normalises its input in the graph --------------------------------
# Regression: an ONNX model starting with (x − mean)/std is read as [Affine, Conv, ...]; the
# presets used to look for the first conv at index 0 and put no FlatRule/ZBoxRule anywhere.

MEAN, STD = np.array([0.2, 0.5, 0.7]), np.array([0.3, 0.25, 0.1])


def normalised_cnn(channel_wise=False):
    """``[Affine, Conv, ReLU, Flatten, Dense]`` and the same model without its Affine."""
    gen = np.random.default_rng(5)
    conv = lrp.Conv(gen.standard_normal((4, 3, 3, 3)), gen.standard_normal(4), padding=1)
    dense = lrp.Dense(gen.standard_normal((2, 4 * 5 * 5)), gen.standard_normal(2))
    if channel_wise:
        affine = lrp.Affine(1 / STD, -MEAN / STD, axis=1)
    else:
        affine = lrp.Affine((1 / STD)[:, None, None], (-MEAN / STD)[:, None, None])
    tail = [conv, lrp.ReLU(), lrp.Flatten(), dense]
    return lrp.Chain(affine, *tail), lrp.Chain(*tail)


@pytest.mark.parametrize("preset, first", [(lrp.EpsilonPlusFlat(), lrp.FlatRule()),
                                           (lrp.EpsilonAlpha2Beta1Flat(), lrp.FlatRule())])
def test_flat_presets_find_the_first_conv_behind_an_input_normalisation(preset, first):
    model, _ = normalised_cnn()
    rules = rules_of(model, preset)
    assert rules[0] == lrp.PassRule() and rules[1] == first


def test_first_layer_type_map_keeps_the_index_0_meaning():
    model, _ = normalised_cnn()
    rules = rules_of(model, lrp.Composite(lrp.FirstLayerTypeMap({lrp.ConvLayer: lrp.FlatRule()})))
    assert lrp.FlatRule() not in rules


@pytest.mark.parametrize("channel_wise", [False, True])
def test_gamma_box_bounds_are_mapped_through_the_input_normalisation(channel_wise):
    # oracle: the model without its Affine, fed the normalised input, with the bounds [0, 1]
    # normalised by hand, gives the relevance the full model gives at the Conv's input
    model, tail = normalised_cnn(channel_wise)
    x = np.random.default_rng(6).random((2, 3, 5, 5))
    expl = lrp.LRP(model, lrp.EpsilonGammaBox(0.0, 1.0))(x, layerwise_relevances=True)
    assert isinstance(lrp.LRP(model, lrp.EpsilonGammaBox(0.0, 1.0)).rules[1], lrp.ZBoxRule)
    low = np.broadcast_to(((0 - MEAN) / STD)[:, None, None], (3, 5, 5))
    high = np.broadcast_to(((1 - MEAN) / STD)[:, None, None], (3, 5, 5))
    normalised = (x - MEAN[:, None, None]) / STD[:, None, None]
    reference = lrp.LRP(tail, lrp.EpsilonGammaBox(low, high))(normalised)
    np.testing.assert_allclose(expl.extras["layerwise_relevances"][1], reference.val,
                               rtol=1e-9, atol=1e-12)


def test_gamma_box_bounds_with_a_negative_scale_stay_ordered():
    model = lrp.Chain(lrp.Affine(np.array(-2.0), np.array(1.0)),
                      lrp.Conv(np.ones((1, 1, 2, 2))), lrp.Flatten())
    rule = lrp.LRP(model, lrp.EpsilonGammaBox(0.0, 1.0)).rules[1]
    assert float(rule.low) == -1.0 and float(rule.high) == 1.0


def test_zbox_deeper_in_the_network_takes_its_bounds_as_given():
    model, _ = normalised_cnn()
    rule = lrp.ZBoxRule(-5.0, 5.0)
    assert rules_of(model, lrp.Composite(lrp.LayerMap(3, rule)))[3] is rule  # the Dense
