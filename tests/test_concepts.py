"""The feature selectors of CRP (lrp_core/concepts.py), on relevance arrays written out here."""

import numpy as np
import pytest

import lrp_core as lrp

WHERE = "layer 2 (Conv(5x5, 6 => 16))"


def test_indexed_features_are_the_same_for_every_sample():
    relevance = np.arange(12.0).reshape(3, 4)
    chosen = lrp.IndexedFeatures(3, 0).select(relevance, WHERE)
    assert chosen.shape == (3, 2)
    assert chosen.tolist() == [[3, 0], [3, 0], [3, 0]]
    assert lrp.IndexedFeatures([1, 2]).indices == (1, 2)
    assert lrp.IndexedFeatures(np.int64(2)).indices == (2,)
    assert repr(lrp.IndexedFeatures(1, 2)) == "IndexedFeatures(1, 2)"


def test_top_n_features_are_the_largest_per_sample_largest_first():
    relevance = np.array([[0.1, -2.0, 3.0, 0.5],
                          [4.0, 1.0, -1.0, 2.0]])
    assert lrp.TopNFeatures(2).select(relevance, WHERE).tolist() == [[2, 3], [0, 3]]
    assert lrp.TopNFeatures(4).select(relevance, WHERE).tolist() == [[2, 3, 0, 1],
                                                                    [0, 3, 1, 2]]
    # ties: the lower index first
    assert lrp.TopNFeatures(2).select(np.array([[1.0, 2.0, 2.0, 2.0]]), WHERE).tolist() == [[1, 2]]


def test_an_index_out_of_range_names_the_layer_and_its_features():
    with pytest.raises(ValueError, match=r"feature 16 is out of range for layer 2 .*16 "
                                         r"features \(0\.\.15\)"):
        lrp.IndexedFeatures(3, 16).select(np.zeros((1, 16)), WHERE)


def test_n_larger_than_the_features_names_the_layer():
    with pytest.raises(ValueError, match=r"TopNFeatures\(17\): layer 2 .* has only 16 features; "
                                         r"give n <= 16"):
        lrp.TopNFeatures(17).select(np.zeros((2, 16)), WHERE)


@pytest.mark.parametrize("args, error, message", [
    ((), ValueError, "at least one feature index"),
    ((-1,), ValueError, "count from 0"),
    ((1.5,), TypeError, "integer feature indices"),
    ((True,), TypeError, "integer feature indices"),
    (("3",), TypeError, "integer feature indices"),
    ((2, 2), ValueError, "feature 2 is given twice"),
])
def test_indexed_features_refuses_bad_indices(args, error, message):
    with pytest.raises(error, match=message):
        lrp.IndexedFeatures(*args)


@pytest.mark.parametrize("n, error", [(0, ValueError), (-2, ValueError), (2.0, TypeError),
                                      (True, TypeError), (None, TypeError)])
def test_top_n_features_refuses_a_bad_n(n, error):
    with pytest.raises(error):
        lrp.TopNFeatures(n)
