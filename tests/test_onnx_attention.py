"""The ONNX reader on the operators of attention and routing: Transpose (a Permute), Slice,
Split, Gather on constant indices, MatMul and Mul of two activations, Softmax inside the
network, LayerNormalization, HardSigmoid/HardSwish, and ``x * sigmoid(x)`` read as SiLU.

Small graphs written with ``onnx.helper``: the forward pass equals onnxruntime's (a batch of
several samples, dynamic batch axis), the layers read are the expected ones, and the relevance
under AttnLRP, CPLRP and EpsilonPlusFlat equals that of the same graph built by hand with lrp's
layers (float64)."""

from __future__ import annotations

import math

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import helper  # noqa: E402

import lrp_core as lrp  # noqa: E402

from helpers.onnx_models import make_model  # noqa: E402

RNG = np.random.default_rng(4321)
N = helper.make_node
T, D = 4, 6
INT64_MAX = np.iinfo(np.int64).max


def rand(*shape, scale=1.0):
    return (scale * RNG.standard_normal(shape)).astype(np.float32)


def run_ort(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["y"], {"x": x})[0]


def layer_types(graph):
    return [type(layer).__name__ for layer in graph]


def _relevances_agree(read, built, x, presets):
    targets = [i % 3 for i in range(len(x))]
    for preset in presets:
        got = lrp.LRP(read, preset)(x, targets).val
        expected = lrp.LRP(built, preset)(x, targets).val
        np.testing.assert_allclose(got, expected, rtol=1e-9,
                                   atol=1e-12 * np.abs(expected).max())
        assert np.all(np.isfinite(got)) and np.abs(got).max() > 0


# -- an attention block ---------------------------------------------------------------------------

def _attention_weights():
    return {"gamma": rand(D), "beta": rand(D), "Wq": rand(D, D, scale=0.5),
            "Wk": rand(D, D, scale=0.5), "Wv": rand(D, D), "Wg": rand(D, D), "Wh": rand(D, D),
            "Wout": rand(D, 3), "scale": np.float32(1 / math.sqrt(D)), "i0": np.int64(0)}


def _attention_onnx(w):
    nodes = [
        N("LayerNormalization", ["x", "gamma", "beta"], ["n"], axis=-1),
        N("MatMul", ["n", "Wq"], ["q"]), N("MatMul", ["n", "Wk"], ["k"]),
        N("MatMul", ["n", "Wv"], ["v"]),
        N("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        N("MatMul", ["q", "kt"], ["scores"]), N("Mul", ["scores", "scale"], ["scaled"]),
        N("Softmax", ["scaled"], ["attention"], axis=-1),
        N("MatMul", ["attention", "v"], ["o"]), N("Add", ["o", "x"], ["r"]),
        N("MatMul", ["r", "Wg"], ["g0"]), N("Sigmoid", ["g0"], ["g"]),
        N("Mul", ["r", "g"], ["gated"], name="gate"),
        N("MatMul", ["gated", "Wh"], ["h"]), N("Sigmoid", ["h"], ["hs"]),
        N("Mul", ["h", "hs"], ["silu"], name="silu"),
        N("Gather", ["silu", "i0"], ["token"], axis=1),
        N("MatMul", ["token", "Wout"], ["y"]),
    ]
    return make_model(nodes, (T, D), w, opset=17)


def _attention_by_hand(w):
    f = {k: np.asarray(v, dtype=np.float64) for k, v in w.items()}
    b = lrp.GraphBuilder()
    n = b.add(lrp.LayerNorm(D, f["gamma"], f["beta"]), [0])
    q = b.add(lrp.Dense(f["Wq"].T), [n])
    k = b.add(lrp.Dense(f["Wk"].T), [n])
    v = b.add(lrp.Dense(f["Wv"].T), [n])
    kt = b.add(lrp.Permute((0, 2, 1)), [k])
    scores = b.add(lrp.Affine(f["scale"]), [b.add(lrp.MatMul(), [q, kt])])
    o = b.add(lrp.MatMul(), [b.add(lrp.Softmax(-1), [scores]), v])
    r = b.add(lrp.Add(), [o, 0])
    g = b.add(lrp.Dense(f["Wg"].T, activation=lrp.Sigmoid()), [r])
    h = b.add(lrp.Dense(f["Wh"].T, activation=lrp.SiLU()), [b.add(lrp.Mul(), [r, g])])
    token = b.add(lrp.Reshape((D,)), [b.add(lrp.Slice(1, 0, 1), [h])])
    return b.build(b.add(lrp.Dense(f["Wout"].T), [token]))


def test_attention_block_reads_and_explains_as_built_by_hand():
    w = _attention_weights()
    model = _attention_onnx(w)
    x = rand(3, T, D)
    graph = lrp.from_onnx(model)
    np.testing.assert_allclose(graph(x), run_ort(model, x), rtol=1e-5, atol=1e-5)
    types = layer_types(lrp.canonize(graph))
    assert types.count("MatMul") == 2 and "Permute" in types and "Softmax" in types
    assert types.count("Mul") == 1  # the gate; x * sigmoid(x) became a SiLU
    silu = [layer for layer in lrp.canonize(graph) if isinstance(layer, lrp.Dense)
            and isinstance(layer.activation, lrp.SiLU)]
    assert len(silu) == 1
    built = _attention_by_hand(w)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(graph(x64), built(x64), rtol=1e-10)
    _relevances_agree(graph, built, x64, [lrp.AttnLRP(), lrp.CPLRP(), lrp.EpsilonPlusFlat()])
    analyzer = lrp.LRP(graph, lrp.CPLRP())
    assert sum(isinstance(rule, lrp.CPRule) for rule in analyzer.rules) == 2  # gate and A·v


def test_mul_of_a_sigmoid_of_another_value_is_a_gate_not_a_silu():
    nodes = [N("Relu", ["x"], ["r"]), N("Sigmoid", ["x"], ["s"]), N("Mul", ["r", "s"], ["y"])]
    model = make_model(nodes, (5,))
    x = rand(3, 5)
    graph = lrp.from_onnx(model)
    np.testing.assert_allclose(graph(x), run_ort(model, x), rtol=1e-6)
    assert "Mul" in layer_types(graph) and "SiLU" not in layer_types(graph)


def test_products_that_do_not_line_up_are_refused():
    flat = [N("Flatten", ["x"], ["f"]), N("Mul", ["x", "f"], ["y"], name="m")]
    with pytest.raises(lrp.UnsupportedOperatorError, match="batch axes would not line up"):
        lrp.from_onnx(make_model(flat, (3, 4)))
    with pytest.raises(lrp.UnsupportedOperatorError, match="do not multiply"):
        lrp.from_onnx(make_model([N("MatMul", ["x", "x"], ["y"])], (3, 4)))


# -- routing --------------------------------------------------------------------------------------

def _routing_onnx(w, opset):
    split = (N("Split", ["x", "sizes"], ["p1", "p2"], axis=1) if opset < 18 else
             N("Split", ["x"], ["p1", "p2"], axis=1, num_outputs=2))
    nodes = [
        split,
        N("Gather", ["x", "idx"], ["g"], axis=2),
        N("Slice", ["x", "starts", "ends", "axes", "steps"], ["s"]),
        N("Slice", ["x", "starts0", "ends0", "axes0"], ["whole"]),  # batch axis: all of it
        N("HardSwish", ["p2"], ["hs"]), N("HardSigmoid", ["p1"], ["hg"], alpha=1 / 6),
        N("Concat", ["hs", "hg"], ["c"], axis=1),
        N("Concat", ["c", "g", "s", "whole"], ["cat"], axis=2),
        N("Flatten", ["cat"], ["f"]), N("MatMul", ["f", "W"], ["y"]),
    ]
    inits = {"idx": np.array([3, 0, 0], np.int64), "starts": np.array([1], np.int64),
             "ends": np.array([INT64_MAX], np.int64), "axes": np.array([2], np.int64),
             "steps": np.array([2], np.int64), "starts0": np.array([0], np.int64),
             "ends0": np.array([INT64_MAX], np.int64), "axes0": np.array([0], np.int64),
             "W": w}
    if opset < 18:
        inits["sizes"] = np.array([3, 3], np.int64)
    return make_model(nodes, (6, 5), inits, opset=opset)


def _routing_by_hand(w):
    b = lrp.GraphBuilder()
    p1 = b.add(lrp.Slice(1, 0, 3), [0])
    p2 = b.add(lrp.Slice(1, 3, 6), [0])
    g = b.add(lrp.Concat(2), [b.add(lrp.Slice(2, i, i + 1), [0]) for i in (3, 0, 0)])
    s = b.add(lrp.Slice(2, 1, None, 2), [0])
    c = b.add(lrp.Concat(1), [b.add(lrp.Hardswish(), [p2]),
                               b.add(lrp.Hardsigmoid(float(np.float32(1 / 6))), [p1])])
    cat = b.add(lrp.Concat(2), [c, g, s, 0])
    f = b.add(lrp.Flatten(), [cat])
    return b.build(b.add(lrp.Dense(np.asarray(w, np.float64).T), [f]))


@pytest.mark.parametrize("opset", [14, 18])
def test_split_gather_slice_and_hard_activations(opset):
    w = rand(6 * 15, 3)
    model = _routing_onnx(w, opset)
    x = rand(3, 6, 5, scale=4.0)
    graph = lrp.from_onnx(model)
    np.testing.assert_allclose(graph(x), run_ort(model, x), rtol=1e-5, atol=1e-5)
    assert {"Slice", "Hardswish", "Hardsigmoid", "Concat"} <= set(layer_types(graph))
    built = _routing_by_hand(w)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(graph(x64), built(x64), rtol=1e-10)
    _relevances_agree(graph, built, x64, [lrp.AttnLRP(), lrp.EpsilonPlusFlat()])
    # routing conserves: LRP-epsilon (tiny epsilon) on a bias-free Dense sums to the logit
    r = lrp.LRP(graph, lrp.EpsilonRule(1e-12), normalize_output_relevance=False)(x64, [1, 0, 2])
    logits = built(x64)[[0, 1, 2], [1, 0, 2]]
    np.testing.assert_allclose(r.val.reshape(3, -1).sum(1), logits, rtol=1e-9)


def test_gather_of_evenly_spaced_indices_is_one_slice():
    nodes = [N("Gather", ["x", "idx"], ["g"], axis=1), N("Flatten", ["g"], ["y"])]
    model = make_model(nodes, (7, 2), {"idx": np.array([-6, 3, 5], np.int64)})
    x = rand(2, 7, 2)
    graph = lrp.from_onnx(model)
    np.testing.assert_allclose(graph(x), run_ort(model, x), rtol=1e-6)
    assert layer_types(graph) == ["Slice", "Flatten"]


def test_transpose_without_static_shapes_is_a_permute():
    nodes = [N("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]), N("Flatten", ["t"], ["y"])]
    from onnx import TensorProto

    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "H", "W", "C"])]
    model = make_model(nodes, (), inputs=inputs)
    x = rand(2, 3, 4, 5)
    graph = lrp.from_onnx(model)
    assert layer_types(graph) == ["Permute", "Flatten"]
    np.testing.assert_allclose(graph(x), run_ort(model, x), rtol=1e-6)


@pytest.mark.parametrize("nodes, inits, reason", [
    ([N("Slice", ["x", "s", "e", "a"], ["y"])],
     {"s": np.array([1], np.int64), "e": np.array([2], np.int64), "a": np.array([0], np.int64)},
     "slices the batch axis"),
    ([N("Slice", ["x", "s", "e", "a", "st"], ["y"])],
     {"s": np.array([3], np.int64), "e": np.array([0], np.int64), "a": np.array([1], np.int64),
      "st": np.array([-1], np.int64)}, "positive steps"),
    ([N("Split", ["x"], ["a", "y"], axis=0)], {}, "batch axis"),
    ([N("Gather", ["x", "i"], ["y"], axis=1)], {"i": np.array([[0, 1]], np.int64)},
     "scalar or a vector"),
    ([N("Gather", ["x", "i"], ["y"], axis=1)], {"i": np.array([7], np.int64)}, "out of range"),
])
def test_refused_routing(nodes, inits, reason):
    with pytest.raises(lrp.UnsupportedOperatorError, match=reason):
        lrp.from_onnx(make_model(nodes, (3, 4), inits))


# -- GELU as torch exports it, and constants inside ------------------------------------------------

def _erf_gelu_nodes(x, out):
    return [N("Div", [x, "sqrt2"], [f"{out}_d"]), N("Erf", [f"{out}_d"], [f"{out}_e"]),
            N("Add", [f"{out}_e", "one"], [f"{out}_a"]), N("Mul", [x, f"{out}_a"], [f"{out}_m"]),
            N("Mul", [f"{out}_m", "half"], [out])]


GELU_CONSTANTS = {"sqrt2": np.float32(math.sqrt(2.0)), "one": np.float32(1.0),
                  "half": np.float32(0.5)}


def test_erf_pattern_is_read_as_gelu():
    nodes = [N("MatMul", ["x", "W"], ["h"])] + _erf_gelu_nodes("h", "g") + [
        N("MatMul", ["g", "V"], ["y"])]
    model = make_model(nodes, (5,), {"W": rand(5, 4), "V": rand(4, 3), **GELU_CONSTANTS})
    x = rand(3, 5, scale=2.0)
    graph = lrp.from_onnx(model)
    np.testing.assert_allclose(graph(x), run_ort(model, x), rtol=1e-5, atol=1e-6)
    canonized = lrp.canonize(graph)
    assert isinstance(canonized[0].activation, lrp.GELU)
    assert not any(isinstance(layer, (lrp.Mul, lrp.Activation)) for layer in canonized)
    # what is left of the factor 2 and the 0.5 is one Affine of scale 1 (relevance unchanged)
    affines = [layer for layer in canonized if isinstance(layer, lrp.Affine)]
    assert len(affines) == 1 and float(affines[0].scale) == 1.0
    first = _dense_of(model, "W")
    built = lrp.Chain(first.replace(activation=lrp.GELU()), _dense_of(model, "V"))
    x64 = x.astype(np.float64)
    _relevances_agree(graph, built, x64, [lrp.EpsilonPlusFlat(), lrp.AttnLRP()])


def _dense_of(model, name):
    from onnx import numpy_helper

    (init,) = [i for i in model.graph.initializer if i.name == name]
    return lrp.Dense(numpy_helper.to_array(init).astype(np.float64).T)


def test_erf_outside_the_gelu_pattern_is_refused():
    nodes = [N("Erf", ["x"], ["e"], name="lone"), N("Add", ["e", "one"], ["a"]),
             N("Relu", ["x"], ["r"]), N("Mul", ["r", "a"], ["y"])]
    with pytest.raises(lrp.UnsupportedOperatorError, match="'lone'.*outside GELU's pattern"):
        lrp.from_onnx(make_model(nodes, (5,), {"one": np.float32(1.0)}))


def test_a_positional_embedding_is_an_add_constant():
    """``x + pos`` that no layer takes in is a bias inside the network, as the torch reader
    reads it: its share of relevance is not passed on."""
    pos = rand(T, D)
    nodes = [N("Relu", ["x"], ["r"]), N("Add", ["r", "pos"], ["p"]), N("Flatten", ["p"], ["f"]),
             N("MatMul", ["f", "W"], ["y"])]
    model = make_model(nodes, (T, D), {"pos": pos, "W": rand(T * D, 3)})
    graph = lrp.from_onnx(model)
    assert layer_types(graph) == ["ReLU", "AddConstant", "Flatten", "Dense"]
    x = rand(2, T, D)
    np.testing.assert_allclose(graph(x), run_ort(model, x), rtol=1e-5, atol=1e-6)


def test_a_class_token_expanded_over_the_batch_is_a_concat_constant():
    """torch's export of ``cat([cls.expand(N, -1, -1), x], 1)``: the expand's shape is built
    from ``Shape(x)``, so it holds the batch size."""
    cls, pos = rand(1, 1, D), rand(T + 1, D)
    nodes = [N("Shape", ["x"], ["s"]), N("Gather", ["s", "zero"], ["n"], axis=0),
             N("Unsqueeze", ["n", "axes0"], ["n1"]), N("Concat", ["n1", "ones"], ["shape"], axis=0),
             N("Expand", ["cls", "shape"], ["tokens"]),
             N("Concat", ["tokens", "x"], ["c"], axis=1), N("Add", ["c", "pos"], ["p"]),
             N("Gather", ["p", "pick"], ["rows"], axis=1), N("Flatten", ["rows"], ["f"]),
             N("MatMul", ["f", "W"], ["y"])]
    w = rand(2 * D, 3)
    inits = {"zero": np.int64(0), "axes0": np.array([0], np.int64), "pick": np.array([0, 2]),
             "ones": np.array([1, 1], np.int64), "cls": cls, "pos": pos, "W": w}
    model = make_model(nodes, (T, D), inits)
    graph = lrp.from_onnx(model)
    assert layer_types(graph)[:2] == ["ConcatConstant", "AddConstant"]
    x = rand(3, T, D)
    np.testing.assert_allclose(graph(x), run_ort(model, x), rtol=1e-5, atol=1e-6)
    f = {"cls": cls[0].astype(np.float64), "pos": pos.astype(np.float64),
         "W": w.astype(np.float64)}
    b = lrp.GraphBuilder()
    p = b.add(lrp.AddConstant(f["pos"]), [b.add(lrp.ConcatConstant(f["cls"], 1), [0])])
    rows = b.add(lrp.Slice(1, 0, 3, 2), [p])  # tokens 0 (the class token) and 2 (x's row 1)
    built = b.build(b.add(lrp.Dense(f["W"].T), [b.add(lrp.Flatten(), [rows])]))
    x64 = x.astype(np.float64)
    _relevances_agree(graph, built, x64, [lrp.CPLRP(), lrp.EpsilonPlusFlat()])
    # the class token's share stays with it; x's row 1 gets relevance, its other rows none
    r = lrp.LRP(graph, lrp.CPLRP())(x64, [0, 1, 2]).val
    assert np.all(r[:, [0, 2, 3]] == 0) and np.all(np.abs(r[:, 1]).sum(-1) > 0)


def test_a_constant_concatenated_after_the_activations_is_refused():
    nodes = [N("Concat", ["x", "c"], ["y"], axis=1)]
    with pytest.raises(lrp.UnsupportedOperatorError, match="expanded over the batch"):
        lrp.from_onnx(make_model(nodes, (T, D), {"c": rand(1, 1, D)}))


def test_erf_pattern_with_constants_defined_after_the_erf():
    """PyTorch's exporter writes each Constant node just before its first reader: the ``1`` of
    ``1 + erf`` comes after the Erf node."""
    from onnx import numpy_helper

    def constant(name, value):
        return N("Constant", [], [name], value=numpy_helper.from_array(np.float32(value)))

    nodes = [constant("sqrt2", math.sqrt(2.0)), N("Div", ["x", "sqrt2"], ["d"]),
             N("Erf", ["d"], ["e"]), constant("one", 1.0), N("Add", ["e", "one"], ["a"]),
             N("Mul", ["x", "a"], ["m"]), constant("half", 0.5), N("Mul", ["m", "half"], ["y"])]
    model = make_model(nodes, (5,))
    x = rand(3, 5, scale=2.0)
    graph = lrp.from_onnx(model)
    np.testing.assert_allclose(graph(x), run_ort(model, x), rtol=1e-5, atol=1e-6)
    assert "GELU" in layer_types(graph) and "Activation" not in layer_types(graph)
