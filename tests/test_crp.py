"""Concept Relevance Propagation (lrp_core/crp.py): hand arithmetic, completeness, a DAG oracle,
the chunked batched pass, backends, errors and the heatmap grid. The Zennit oracle on VGG-11 is
in test_crp_torch.py, the command line in test_crp_cli.py."""

import numpy as np
import pytest

import lrp_core as lrp
import lrp_core.crp as crp_module
from lrp_core.models import random_lenet5

from helpers.oracle import lrp_zero, stab

# -- a two-layer dense network, by hand ----------------------------------------------------------

def two_layer_network():
    """x (2) -> Dense(3, relu) -> Dense(2): weights chosen so that the arithmetic is short."""
    w1 = np.array([[1.0, 1.0], [2.0, -0.5], [-1.0, -1.0]])
    w2 = np.array([[1.0, 2.0, 5.0], [1.0, -1.0, 1.0]])
    return lrp.Chain(lrp.Dense(w1, np.zeros(3), activation=lrp.relu), lrp.Dense(w2, np.zeros(2)))


def test_hand_computed_crp_on_a_two_layer_dense_network():
    # x = (1, 2): hidden z = (1 + 2, 2 - 1, -1 - 2) = (3, 1, -3), h = relu(z) = (3, 1, 0);
    # out = (3 + 2 + 0, 3 - 1 + 0) = (5, 2): output 0 is explained, with relevance 1.
    # At the hidden layer (ZeroRule): R_h = h ⊙ W2[0] / 5 = (3·1, 1·2, 0·5) / 5 = (0.6, 0.4, 0).
    # Concept 0 keeps (0.6, 0, 0): R_x = x ⊙ W1[0] · 0.6 / 3 = (1·1·0.2, 2·1·0.2) = (0.2, 0.4).
    # Concept 1 keeps (0, 0.4, 0): R_x = x ⊙ W1[1] · 0.4 / 1 = (1·2·0.4, 2·(-0.5)·0.4)
    #                                                        = (0.8, -0.4).
    # Concept 2 keeps (0, 0, 0): R_x = (0, 0).
    # Plain LRP: (0.2 + 0.8, 0.4 - 0.4) = (1, 0), the sum of the three.
    analyzer = lrp.LRP(two_layer_network())
    x = np.array([[1.0, 2.0]])
    expl = lrp.CRP(analyzer, 0, lrp.IndexedFeatures(0, 1, 2))(x)
    assert expl.analyzer == "CRP"
    assert expl.val.shape == (1, 3, 2)
    expected = np.array([[[0.2, 0.4], [0.8, -0.4], [0.0, 0.0]]])
    np.testing.assert_allclose(expl.val, expected, rtol=1e-8, atol=1e-12)
    assert np.all(expl.val[0, 2] == 0.0)  # a concept with no relevance gives none
    np.testing.assert_allclose(expl.extras["concept_relevance"], [[0.6, 0.4, 0.0]], rtol=1e-8)
    np.testing.assert_allclose(expl.extras["feature_relevance"], [[0.6, 0.4, 0.0]], rtol=1e-8)
    np.testing.assert_allclose(expl.extras["concept_share"], [[0.6, 0.4, 0.0]], rtol=1e-8)
    assert expl.extras["concepts"] == [[0, 1, 2]]
    assert expl.output_selection == [0]
    np.testing.assert_allclose(expl.output, [[5.0, 2.0]])
    np.testing.assert_allclose(expl.val.sum(axis=1), analyzer(x).val, rtol=1e-12)
    # TopNFeatures(2): the two largest, 0.6 then 0.4
    top = lrp.CRP(analyzer, 0, lrp.TopNFeatures(2))(x)
    assert top.extras["concepts"] == [[0, 1]]
    np.testing.assert_allclose(top.val, expected[:, :2], rtol=1e-8)


# -- completeness and zero concepts on LeNet-5 ----------------------------------------------------

def lenet(zero_biases=False, seed=3):
    model = random_lenet5(seed=seed)
    if not zero_biases:
        return model
    return model.with_layers([layer.replace(bias=np.zeros_like(layer.bias))
                              if getattr(layer, "bias", None) is not None else layer
                              for layer in model])


def digits(n=3, seed=0):
    return np.random.default_rng(seed).random((n, 1, 28, 28))


@pytest.mark.parametrize("layer, features", [(0, 6), (2, 16), (5, 120), (6, 84)])
def test_concepts_of_all_features_add_up_to_lrp_and_each_is_conserved(layer, features):
    # ZeroRule (ε -> 0) and zero biases: each concept's input relevance sums to its relevance at
    # the layer, and all concepts together give plain LRP's relevance (a chain: every path
    # passes through the layer)
    analyzer = lrp.LRP(lenet(zero_biases=True), lrp.EpsilonRule(1e-100))
    x = digits()
    expl = lrp.CRP(analyzer, layer, lrp.IndexedFeatures(range(features)))(x)
    plain = analyzer(x).val
    assert expl.val.shape == (3, features, 1, 28, 28)
    np.testing.assert_allclose(expl.val.sum(axis=1), plain, rtol=1e-9,
                               atol=1e-12 * np.abs(plain).max())
    per_concept = expl.val.reshape(3, features, -1).sum(axis=2)
    np.testing.assert_allclose(per_concept, expl.extras["concept_relevance"], rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(expl.extras["concept_relevance"].sum(axis=1), 1.0, rtol=1e-9)


def test_concepts_add_up_to_lrp_under_a_composite_with_biases():
    # every rule step is linear in the relevance: completeness needs no conservation
    analyzer = lrp.LRP(lenet(), lrp.EpsilonPlusFlat())
    x = digits()
    expl = lrp.CRP(analyzer, 2, lrp.TopNFeatures(16))(x)
    plain = analyzer(x).val
    np.testing.assert_allclose(expl.val.sum(axis=1), plain, rtol=1e-10,
                               atol=1e-13 * np.abs(plain).max())


def test_a_concept_without_relevance_gives_no_input_relevance():
    analyzer = lrp.LRP(lenet())
    x = digits(2)
    everything = lrp.CRP(analyzer, 5, lrp.IndexedFeatures(range(120)))(x)
    dead = np.flatnonzero(everything.extras["feature_relevance"][0] == 0.0)
    assert dead.size > 0  # dense neurons that the ReLU switched off
    alive = int(np.argmax(np.abs(everything.extras["feature_relevance"][0])))
    expl = lrp.CRP(analyzer, 5, lrp.IndexedFeatures(int(dead[0]), alive))(x[:1])
    assert np.all(expl.val[0, 0] == 0.0)
    assert np.abs(expl.val[0, 1]).max() > 0


# -- a DAG: only the relevance through the layer ------------------------------------------------

def residual_network(rng):
    """x (4) -> h = Dense(5, relu)(x) -> g = Dense(5, relu)(h) -> y = g + h -> Dense(3)."""
    w1, b1 = rng.normal(size=(5, 4)), 0.1 * rng.normal(size=5)
    w2, b2 = rng.normal(size=(5, 5)), 0.1 * rng.normal(size=5)
    w3, b3 = rng.normal(size=(3, 5)), 0.1 * rng.normal(size=3)
    x = lrp.Input()
    h = lrp.Dense(w1, b1, activation=lrp.relu)(x)
    g = lrp.Dense(w2, b2, activation=lrp.relu)(h)
    out = lrp.Dense(w3, b3)(lrp.Add()(g, h))
    return lrp.Graph(x, out), (w1, b1, w2, b2, w3, b3)


def test_in_a_dag_a_concept_carries_only_the_relevance_through_the_layer():
    rng = np.random.default_rng(7)
    model, (w1, b1, w2, b2, w3, b3) = residual_network(rng)
    x = rng.random((2, 4))
    analyzer = lrp.LRP(model)
    # the oracle, from the equations (ZeroRule everywhere, Add splits in proportion)
    h = np.maximum(x @ w1.T + b1, 0)
    g = np.maximum(h @ w2.T + b2, 0)
    y = g + h
    out = y @ w3.T + b3
    onehot = np.eye(3)[out.argmax(1)]
    r_y = lrp_zero(w3, b3, y, onehot)
    r_g = g * r_y / stab(y)  # the part of the relevance that passes through g
    features = lrp.IndexedFeatures(range(5))
    expl = lrp.CRP(analyzer, 1, features)(x)
    for k in range(5):
        kept = np.where(np.arange(5) == k, r_g, 0.0)
        expected = lrp_zero(w1, b1, x, lrp_zero(w2, b2, h, kept))
        np.testing.assert_allclose(expl.val[:, k], expected, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(expl.extras["feature_relevance"], r_g, rtol=1e-10)
    # all concepts of g: the part through g only, not plain LRP (the skip carries the rest) ...
    plain = analyzer(x).val
    through_skip = lrp_zero(w1, b1, x, h * r_y / stab(y))
    np.testing.assert_allclose(expl.val.sum(axis=1) + through_skip, plain, rtol=1e-9)
    assert np.abs(through_skip).max() > 1e-3
    # ... while every path passes through h: its concepts give all of plain LRP
    at_h = lrp.CRP(analyzer, 0, features)(x)
    np.testing.assert_allclose(at_h.val.sum(axis=1), plain, rtol=1e-10, atol=1e-14)


# -- the batched, chunked concept pass -------------------------------------------------------------

def test_chunks_follow_the_memory_bound_and_give_the_same_relevance(monkeypatch):
    analyzer = lrp.LRP(lenet(), lrp.EpsilonPlus())
    x = digits(3)
    whole = lrp.CRP(analyzer, 2, lrp.TopNFeatures(4), max_memory=None)(x)
    # below layer 2 the largest step is the pooling 6x24x24 -> 6x12x12: 3456 + 864 values per
    # pair, four such arrays of 8 bytes (float64): 138240 bytes a pair
    per_pair = 8 * 4 * (6 * 24 * 24 + 6 * 12 * 12)
    calls = []
    original = crp_module._propagate_down

    def counting(run, value, relevance, rows):
        calls.append(int(relevance.shape[0]))
        return original(run, value, relevance, rows)

    monkeypatch.setattr(crp_module, "_propagate_down", counting)
    chunked = lrp.CRP(analyzer, 2, lrp.TopNFeatures(4), max_memory=5 * per_pair + 7)(x)
    assert calls == [5, 5, 2]  # 12 pairs, 5 per chunk
    np.testing.assert_allclose(chunked.val, whole.val, rtol=1e-12, atol=1e-15)
    calls.clear()
    lrp.CRP(analyzer, 2, lrp.TopNFeatures(4))(x)  # the default bound (1 GiB): one pass
    assert calls == [12]
    calls.clear()
    lrp.CRP(analyzer, 2, lrp.TopNFeatures(4), max_memory=1)(x)  # at least one pair a chunk
    assert calls == [1] * 12


def test_a_batch_equals_its_samples_one_by_one():
    analyzer = lrp.LRP(lenet(), lrp.EpsilonGammaBox(0.0, 1.0))
    crp = lrp.CRP(analyzer, 2, lrp.TopNFeatures(3))
    x = digits(3)
    batch = crp(x, [1, 4, 7])
    for n in range(3):
        single = crp(x[n:n + 1], [1, 4, 7][n])
        assert single.extras["concepts"] == batch.extras["concepts"][n:n + 1]
        np.testing.assert_allclose(single.val, batch.val[n:n + 1], rtol=1e-12, atol=1e-15)
    assert batch.output_selection == [1, 4, 7]


def test_backends_agree():
    analyzer = lrp.LRP(lenet(), lrp.EpsilonPlusFlat())
    x = digits(2)
    expected = lrp.CRP(analyzer, 2, lrp.TopNFeatures(3))(x)
    strict = pytest.importorskip("array_api_strict")
    torch = pytest.importorskip("torch")
    for array in (strict.asarray(x), torch.asarray(x)):
        got = lrp.CRP(analyzer, 2, lrp.TopNFeatures(3))(array)
        assert type(got.val) is type(array)
        assert got.extras["concepts"] == expected.extras["concepts"]
        np.testing.assert_allclose(np.asarray(got.val), expected.val, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(np.asarray(got.extras["concept_relevance"]),
                                   expected.extras["concept_relevance"], rtol=1e-12)


def test_the_explanation_keeps_the_input_dtype_and_the_batch_output():
    analyzer = lrp.LRP(random_lenet5(seed=3, dtype=np.float32))
    x = digits(2).astype(np.float32)
    expl = lrp.CRP(analyzer, 0, lrp.IndexedFeatures(1, 4))(x, 3)
    assert expl.val.dtype == np.float32 and expl.val.shape == (2, 2, 1, 28, 28)
    assert expl.extras["concept_relevance"].dtype == np.float32
    plain = analyzer(x, 3)
    np.testing.assert_array_equal(expl.output, plain.output)
    assert expl.output_selection == [3, 3]
    assert expl.input is x
    assert expl.extras["layer"] == 0 and expl.extras["layer_name"] is None
    assert expl.extras["layer_label"].startswith("layer 0 (Conv(5x5, 1 => 6")
    assert "analyzer='CRP'" in repr(expl)


# -- layers by index or name, and the errors ------------------------------------------------------

def named_lenet():
    builder = lrp.GraphBuilder()
    value = 0
    for i, layer in enumerate(random_lenet5(seed=3)):
        value = builder.add(layer, [value], name=f"block{i}")
    return builder.build()


def test_a_layer_by_name_or_negative_index_is_the_same_layer():
    analyzer = lrp.LRP(named_lenet())
    x = digits(1)
    by_index = lrp.CRP(analyzer, 2, lrp.TopNFeatures(2))(x)
    by_name = lrp.CRP(analyzer, "block2", lrp.TopNFeatures(2))(x)
    assert by_name.extras["layer_name"] == "block2"
    np.testing.assert_array_equal(by_name.val, by_index.val)
    assert lrp.CRP(analyzer, -1, lrp.TopNFeatures(1)).layer == 7


def test_an_unknown_layer_lists_the_valid_ones():
    analyzer = lrp.LRP(named_lenet())
    with pytest.raises(ValueError, match=r"no layer named 'conv2'; valid names: 'block0', "
                                         r"'block1', .*'block7'; valid indices 0\.\.7"):
        lrp.CRP(analyzer, "conv2", lrp.TopNFeatures(2))
    with pytest.raises(ValueError, match=r"layer 8 is out of range for a model of 8 layers"):
        lrp.CRP(lrp.LRP(lenet()), 8, lrp.TopNFeatures(2))
    with pytest.raises(TypeError, match=r"an index \(topological order, from 0\) or a layer name"):
        lrp.CRP(analyzer, 2.0, lrp.TopNFeatures(2))


def test_selector_errors_name_the_layer():
    analyzer = lrp.LRP(named_lenet())
    x = digits(1)
    with pytest.raises(ValueError, match=r"feature 16 is out of range for layer 2 \(block2: "
                                         r"Conv.*16 features \(0\.\.15\)"):
        lrp.CRP(analyzer, "block2", lrp.IndexedFeatures(0, 16))(x)
    with pytest.raises(ValueError, match=r"TopNFeatures\(7\): layer 0 \(block0: .* has only 6"):
        lrp.CRP(analyzer, 0, lrp.TopNFeatures(7))(x)


def test_crp_refuses_what_is_not_an_analyzer_or_a_selector():
    with pytest.raises(TypeError, match="takes an LRP analyzer"):
        lrp.CRP(lenet(), 2, lrp.TopNFeatures(2))
    with pytest.raises(TypeError, match="features must be"):
        lrp.CRP(lrp.LRP(lenet()), 2, 3)
    with pytest.raises(ValueError, match="max_memory"):
        lrp.CRP(lrp.LRP(lenet()), 2, lrp.TopNFeatures(2), max_memory=0)


def test_the_input_is_checked_as_for_lrp():
    crp = lrp.CRP(lrp.LRP(lenet()), 2, lrp.TopNFeatures(2))
    x = digits(1)
    x[0, 0, 3, 3] = np.nan
    with pytest.raises(lrp.NonFiniteError):
        crp(x)
    with pytest.raises(TypeError, match="floating-point"):
        crp(np.zeros((1, 1, 28, 28), dtype=np.int64))
    with pytest.raises(ValueError, match="out of range"):
        crp(digits(1), 10)


# -- the heatmap grid ----------------------------------------------------------------------------

def _find(grid: np.ndarray, cell: np.ndarray) -> bool:
    """Whether ``cell`` appears in ``grid`` pixel for pixel."""
    h, w = cell.shape[:2]
    first = cell[0].tobytes()
    for y in range(grid.shape[0] - h + 1):
        row = grid[y].tobytes()
        start = row.find(first)
        while start != -1:
            if start % 3 == 0:
                x = start // 3
                if x + w <= grid.shape[1] and np.array_equal(grid[y:y + h, x:x + w], cell):
                    return True
            start = row.find(first, start + 1)
    return False


def test_heatmap_draws_a_grid_of_samples_by_concepts():
    analyzer = lrp.LRP(lenet(), lrp.EpsilonPlus())
    x = digits(2)
    expl = lrp.CRP(analyzer, 2, lrp.TopNFeatures(3))(x)
    images = lrp.heatmap(expl)
    assert len(images) == 1
    grid = images[0]
    assert grid.dtype == np.uint8 and grid.ndim == 3 and grid.shape[2] == 3
    # every cell is the heatmap of its concept, enlarged 4x (28 -> 112 pixels)
    for n in range(2):
        for k in range(3):
            cell = lrp.heatmap(expl.val[n, k][None])[0]
            assert _find(grid, np.repeat(np.repeat(cell, 4, axis=0), 4, axis=1)), (n, k)
    # more samples: taller; more concepts: wider
    one = lrp.heatmap(lrp.CRP(analyzer, 2, lrp.TopNFeatures(3))(x[:1]))[0]
    six = lrp.heatmap(lrp.CRP(analyzer, 2, lrp.TopNFeatures(6))(x))[0]
    assert one.shape[0] < grid.shape[0] and one.shape[1] == grid.shape[1]
    assert six.shape[1] > grid.shape[1] and six.shape[0] == grid.shape[0]
    # the shares printed are each concept's relevance over the layer's absolute relevance
    feature = expl.extras["feature_relevance"]
    share = np.take_along_axis(feature, np.array(expl.extras["concepts"]), axis=1)
    np.testing.assert_allclose(expl.extras["concept_share"],
                               share / np.abs(feature).sum(axis=1, keepdims=True), rtol=1e-12)


def test_heatmap_of_a_crp_analyzer_and_its_options():
    crp = lrp.CRP(lrp.LRP(lenet()), 2, lrp.IndexedFeatures(0, 5))
    x = digits(1)
    grid = lrp.heatmap(x, crp)[0]
    assert grid.ndim == 3
    overlaid = lrp.heatmap(crp(x), overlay=True, colormap="inferno", process_batch=True)[0]
    assert overlaid.shape == grid.shape and not np.array_equal(overlaid, grid)


# -- the demo's LeNet-5 and the README's figure ---------------------------------------------------

def test_both_selectors_on_the_demo_lenet5_and_the_readme_figure(tmp_path, capsys):
    import importlib.util

    from lrp_core.data import sample_digits
    from lrp_core.models import lenet5_digits

    from helpers.cli import REPO

    analyzer = lrp.LRP(lenet5_digits(np.float64), lrp.EpsilonPlus())
    images, labels = sample_digits(np.float64)
    x = images[[3, 8]]
    every = lrp.CRP(analyzer, 2, lrp.IndexedFeatures(range(16)))(x)
    np.testing.assert_allclose(every.val.sum(axis=1), analyzer(x).val, rtol=1e-10,
                               atol=1e-13)
    top = lrp.CRP(analyzer, 2, lrp.TopNFeatures(4))(x)
    for n in range(2):
        order = np.argsort(-every.extras["feature_relevance"][n], kind="stable")[:4]
        assert top.extras["concepts"][n] == order.tolist()
        np.testing.assert_allclose(top.val[n], every.val[n][order], rtol=1e-12)
    # the README's command: examples/crp_digits.py (here into tmp_path instead of docs/)
    spec = importlib.util.spec_from_file_location("crp_digits", REPO / "examples" / "crp_digits.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    path = example.main(["--out", str(tmp_path)])
    from PIL import Image

    with Image.open(path) as png:
        assert png.size[0] > 5 * 112 and png.size[1] > 2 * 112
    assert "digit 3, predicted 3: channels" in capsys.readouterr().out


def test_crp_on_a_torch_model_read_per_input_shape():
    """A torch model that needs its input shape (read at the analyzer's first call, once per
    shape): CRP resolves the layer in the graph read for each shape, and equals CRP on the
    graph read with that shape given."""
    torch = pytest.importorskip("torch")
    from torch import nn

    class ChannelShuffle(nn.Module):
        def forward(self, x):
            n, c, h, w = x.shape
            return x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), ChannelShuffle(), nn.Conv2d(4, 6, 3),
                          nn.ReLU(), nn.Flatten(), nn.LazyLinear(3)).double()
    model(torch.rand(1, 1, 8, 8, dtype=torch.float64))  # materialise the lazy layer
    model.eval()
    lazy = lrp.LRP(model, lrp.EpsilonPlusFlat())
    with pytest.raises(lrp.InputShapeNeededError):
        lrp.from_torch(model)
    crp = lrp.CRP(lazy, "3", lrp.TopNFeatures(2))
    assert "read at the first call" in repr(crp)
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    got = crp(x)
    read = lrp.LRP(lrp.from_torch(model, input_shape=(1, 8, 8)), lrp.EpsilonPlusFlat())
    expected = lrp.CRP(read, "3", lrp.TopNFeatures(2))(x)
    assert got.extras["concepts"] == expected.extras["concepts"]
    torch.testing.assert_close(got.val, expected.val, rtol=1e-12, atol=1e-14)
