"""What an analyzer holds between its forward and backward pass: a layer whose rule reuses the
forward pass keeps its pre-activation ``z``; the activation of ``z`` that the next layer read is
not kept beside it, but recomputed when the backward pass reads it, with the same numbers."""

import numpy as np
import pytest

import lrp_core as lrp


def _chain(rng):
    return lrp.Chain(
        lrp.Conv(rng.standard_normal((4, 2, 3, 3)), rng.standard_normal(4), padding=1),
        lrp.ReLU(),
        lrp.Conv(rng.standard_normal((3, 4, 3, 3)), rng.standard_normal(3), padding=1),
        lrp.ReLU(),
        lrp.Flatten(),
        lrp.Dense(rng.standard_normal((5, 3 * 6 * 6)), rng.standard_normal(5)),
    )


def _held(analyzer, x):
    """The distinct arrays the forward pass leaves for the backward pass."""
    xp, built, _, dtype, prepared = analyzer._setup(x)
    values, _, records = analyzer._forward(built, prepared, xp.astype(x, dtype))
    held = {id(v): v for v in values if v is not None}
    for record in records:
        if record is not None:
            held[id(record[0])] = record[0]
    return built, prepared, values, records, held


def test_each_reused_layer_output_is_held_once():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, 6, 6))
    analyzer = lrp.LRP(_chain(rng), lrp.EpsilonRule(1e-6))
    built, prepared, values, records, held = _held(analyzer, x)
    fused = [i for i, layer in enumerate(prepared.layers) if built.reuse[i]
             and getattr(layer, "activation", None) is not None]
    assert len(fused) == 2, "the canonized chain should fuse the ReLUs into the convolutions"
    # the first conv's output is read back by the second conv's rule; the second's only by the
    # Flatten, which needs no values, so it is not kept at all
    assert [built.recompute[i + 1] for i in fused] == [True, False]
    for i in fused[:1]:
        assert values[i + 1] is None  # activation(z) dropped; z is in records[i]
        again = analyzer._read_back(built, prepared, values, records, i + 1)
        np.testing.assert_array_equal(again, prepared.layers[i].activation.forward(records[i][0]))
    # at most the input and one array per layer (the last layer's z is also the output)
    assert len(held) <= 1 + len(prepared.layers)


@pytest.mark.parametrize("rule", [lrp.EpsilonRule(1e-6), lrp.ZeroRule(), lrp.EpsilonPlusFlat()])
def test_recomputed_values_give_the_relevance_of_kept_ones(rule):
    rng = np.random.default_rng(1)
    model = _chain(rng)
    x = rng.standard_normal((3, 2, 6, 6))
    analyzer = lrp.LRP(model, rule)
    got = analyzer(x, [0, 1, 4])
    # the oracle: the same step-by-step propagation with every value kept
    keeping = lrp.LRP(model, rule)
    built = keeping._current()
    object.__setattr__(built, "recompute", (False,) * len(built.recompute))
    expected = keeping(x, [0, 1, 4])
    np.testing.assert_array_equal(np.asarray(got.val), np.asarray(expected.val))
