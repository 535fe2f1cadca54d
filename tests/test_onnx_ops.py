"""The ONNX reader, one operator and attribute combination at a time: hand-made graphs
(``onnx.helper``) whose forward pass must equal onnxruntime's, for a batch of several samples."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import lrp_core as lrp  # noqa: E402
from lrp_core import Affine, ZeroPad  # noqa: E402

from helpers.onnx_models import make_model  # noqa: E402

RNG = np.random.default_rng(1234)


def rand(*shape, scale=1.0):
    return (scale * RNG.standard_normal(shape)).astype(np.float32)


def run_ort(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["y"], {"x": x})[0]


def check(model, x_shape, batch=3, scale=1.0):
    """The translated graph's forward equals onnxruntime's; LRP-0 runs and keeps the shape."""
    x = rand(batch, *x_shape, scale=scale)
    graph = lrp.from_onnx(model)
    ours = graph(x)
    theirs = run_ort(model, x)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    expl = lrp.LRP(graph, skip_checks=True)(x)
    assert expl.val.shape == x.shape and np.all(np.isfinite(expl.val))
    return graph


def layer_types(graph):
    return [type(layer).__name__ for layer in graph]


N = helper.make_node


# --- Conv -------------------------------------------------------------------------------------
CONV_CASES = {
    "pads_strides_dilations": ((2, 9, 9), (4, 2, 3, 3),
                               dict(pads=[1, 0, 2, 1], strides=[2, 1], dilations=[1, 2])),
    "groups": ((4, 8, 8), (6, 2, 3, 3), dict(group=2, pads=[1, 1, 1, 1])),
    "depthwise": ((3, 7, 7), (3, 1, 3, 3), dict(group=3)),
    "same_upper_stride2": ((2, 9, 8), (3, 2, 4, 3), dict(auto_pad="SAME_UPPER", strides=[2, 2])),
    "same_lower_stride2": ((2, 9, 8), (3, 2, 4, 3), dict(auto_pad="SAME_LOWER", strides=[2, 2])),
    "same_upper_stride3": ((2, 10, 8), (3, 2, 5, 2), dict(auto_pad="SAME_UPPER", strides=[3, 2])),
    "same_lower_even_kernel": ((2, 6, 6), (3, 2, 2, 2), dict(auto_pad="SAME_LOWER")),
    "valid_stride2": ((2, 9, 8), (3, 2, 3, 3), dict(auto_pad="VALID", strides=[2, 2])),
    "conv1d": ((2, 11), (3, 2, 3), dict(pads=[1, 2], strides=[2])),
    "conv3d": ((2, 5, 6, 7), (3, 2, 3, 3, 2), dict(pads=[1, 0, 1, 1, 0, 0])),
}


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("opset", [7, 11, 17])
@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv(case, opset, bias):
    x_shape, w_shape, attrs = CONV_CASES[case]
    inits = {"W": rand(*w_shape)}
    if bias:
        inits["B"] = rand(w_shape[0])
    node = N("Conv", ["x", "W"] + (["B"] if bias else []), ["y"], name="the_conv",
             kernel_shape=list(w_shape[2:]), **attrs)
    graph = check(make_model([node], x_shape, inits, opset), x_shape)
    assert layer_types(graph) == ["Conv"] and graph.nodes[0].name == "the_conv"


CONV_TRANSPOSE_CASES = {
    "strides_pads_output_padding": ((3, 5, 5), (3, 2, 3, 3),
                                    dict(strides=[2, 2], pads=[1, 0, 1, 1], output_padding=[1, 0])),
    "groups_dilations": ((4, 5, 5), (4, 3, 3, 3), dict(group=2, dilations=[2, 1])),
    "output_shape": ((3, 5, 5), (3, 2, 3, 3), dict(strides=[2, 2], output_shape=[10, 10])),
    "output_shape_odd": ((3, 5, 5), (3, 2, 4, 4), dict(strides=[2, 2], output_shape=[9, 10])),
    "same_upper": ((3, 5, 5), (3, 2, 4, 4), dict(strides=[2, 2], auto_pad="SAME_UPPER")),
    "same_lower": ((3, 5, 5), (3, 2, 3, 3), dict(strides=[2, 2], auto_pad="SAME_LOWER")),
    "conv_transpose1d": ((3, 6), (3, 4, 3), dict(strides=[3], pads=[1, 0])),
}


@pytest.mark.parametrize("case", sorted(CONV_TRANSPOSE_CASES))
def test_conv_transpose(case):
    x_shape, w_shape, attrs = CONV_TRANSPOSE_CASES[case]
    node = N("ConvTranspose", ["x", "W", "B"], ["y"], kernel_shape=list(w_shape[2:]), **attrs)
    groups = attrs.get("group", 1)
    graph = check(make_model([node], x_shape,
                             {"W": rand(*w_shape), "B": rand(w_shape[1] * groups)}), x_shape)
    assert layer_types(graph) == ["ConvTranspose"]


# --- Gemm, MatMul -----------------------------------------------------------------------------
@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("c_shape", [(4,), (1, 4), (), None])
@pytest.mark.parametrize("alpha_beta", [(1.0, 1.0), (0.5, 2.0)])
def test_gemm(trans_b, c_shape, alpha_beta):
    alpha, beta = alpha_beta
    inits = {"B": rand(4, 6) if trans_b else rand(6, 4)}
    inputs = ["x", "B"]
    if c_shape is not None:
        inits["C"] = rand(*c_shape)
        inputs.append("C")
    node = N("Gemm", inputs, ["y"], transB=trans_b, alpha=alpha, beta=beta)
    graph = check(make_model([node], (6,), inits, opset=13), (6,))
    assert layer_types(graph) == ["Dense"]


@pytest.mark.parametrize("bias_shape", [(3,), (1, 3), (1, 1, 3)])
def test_matmul_add_folds_to_dense(bias_shape):
    nodes = [N("MatMul", ["x", "W"], ["h"]), N("Add", ["h", "B"], ["y"])]
    x_shape = (4, 5) if len(bias_shape) == 3 else (5,)
    graph = check(make_model(nodes, x_shape, {"W": rand(5, 3), "B": rand(*bias_shape)}), x_shape)
    assert layer_types(graph) == ["Dense"] and graph[0].bias is not None


def test_matmul_constant_reshaped_initializer():
    """mnist-8 style: the weight is a Reshape of an initializer, the bias a separate Add."""
    nodes = [N("Reshape", ["W4", "wshape"], ["W"]), N("Flatten", ["x"], ["f"]),
             N("MatMul", ["f", "W"], ["h"]), N("Add", ["h", "B"], ["y"])]
    inits = {"W4": rand(2, 3, 2, 5), "wshape": np.array([12, 5], np.int64), "B": rand(1, 5)}
    graph = check(make_model(nodes, (2, 3, 2), inits, opset=8), (2, 3, 2))
    assert layer_types(graph) == ["Flatten", "Dense"]


# --- arithmetic with constants ----------------------------------------------------------------
def _conv_then(op, const, const_first=False):
    inputs = ["c", "K"] if not const_first else ["K", "c"]
    return [N("Conv", ["x", "W"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            N(op, inputs, ["y"])], {"W": rand(4, 2, 3, 3), "K": const}


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("const_shape", [(4, 1, 1), (1, 4, 1, 1), (), (1,)])
def test_constant_after_conv_folds(op, const_shape):
    const = (np.abs(rand(*const_shape)) + 0.5).astype(np.float32)
    nodes, inits = _conv_then(op, const)
    graph = check(make_model(nodes, (2, 5, 5), inits), (2, 5, 5))
    assert layer_types(graph) == ["Conv"]


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul"])
def test_constant_left_operand(op):
    nodes, inits = _conv_then(op, rand(4, 1, 1), const_first=True)
    graph = check(make_model(nodes, (2, 5, 5), inits), (2, 5, 5))
    assert layer_types(graph) == ["Conv"]


def test_constant_varying_over_space_is_an_affine_layer():
    nodes, inits = _conv_then("Mul", rand(4, 5, 5))
    graph = check(make_model(nodes, (2, 5, 5), inits), (2, 5, 5))
    assert layer_types(graph) == ["Conv", "Affine"]


def test_input_normalisation_is_one_affine_layer():
    """(x - mean) / std before a padded Conv cannot be folded into it (padding) but merges."""
    nodes = [N("Sub", ["x", "mean"], ["a"]), N("Div", ["a", "std"], ["b"]),
             N("Conv", ["b", "W", "B"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    inits = {"mean": rand(1, 3, 1, 1),
             "std": np.array([0.2, 0.3, 0.25], np.float32).reshape(3, 1, 1),
             "W": rand(4, 3, 3, 3), "B": rand(4)}
    graph = check(make_model(nodes, (3, 6, 6), inits), (3, 6, 6))
    assert layer_types(graph) == ["Affine", "Conv"]
    assert isinstance(graph[0], Affine)


def test_affine_after_relu_and_constant_minus_activation():
    nodes = [N("Relu", ["x"], ["r"]), N("Sub", ["K", "r"], ["s"]), N("Mul", ["s", "M"], ["y"])]
    graph = check(make_model(nodes, (3, 4), {"K": rand(3, 4), "M": rand(4)}), (3, 4))
    assert layer_types(graph) == ["ReLU", "Affine"]


def test_dense_scale_folds():
    nodes = [N("Gemm", ["x", "W", "B"], ["h"], transB=1), N("Mul", ["h", "S"], ["z"]),
             N("Add", ["z", "T"], ["y"])]
    graph = check(make_model(nodes, (6,),
                             {"W": rand(4, 6), "B": rand(4), "S": rand(4), "T": rand(1, 4)}, 13),
                  (6,))
    assert layer_types(graph) == ["Dense"]


def test_conv_transpose_scale_folds():
    nodes = [N("ConvTranspose", ["x", "W"], ["h"], group=2, strides=[2, 2]),
             N("Mul", ["h", "S"], ["y"])]
    graph = check(make_model(nodes, (4, 3, 3), {"W": rand(4, 3, 2, 2), "S": rand(6, 1, 1)}),
                  (4, 3, 3))
    assert layer_types(graph) == ["ConvTranspose"]


# --- merging ------------------------------------------------------------------------------------
def test_residual_add_sub_and_sum():
    conv = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    nodes = [N("Conv", ["x", "W1"], ["a"], **conv), N("Relu", ["a"], ["r"]),
             N("Conv", ["r", "W2"], ["b"], **conv), N("Add", ["b", "r"], ["s"]),
             N("Conv", ["x", "W3"], ["x2"], **conv), N("Sub", ["s", "x2"], ["d"]),
             N("Sum", ["d", "r", "s"], ["y"])]
    inits = {"W1": rand(2, 2, 3, 3), "W2": rand(2, 2, 3, 3), "W3": rand(2, 2, 3, 3)}
    graph = check(make_model(nodes, (2, 5, 5), inits), (2, 5, 5))
    assert layer_types(graph).count("Add") == 3


def test_concat():
    conv = dict(kernel_shape=[1, 1])
    nodes = [N("Conv", ["x", "W1"], ["a"], **conv), N("Conv", ["x", "W2"], ["b"], **conv),
             N("Concat", ["a", "b", "x"], ["c"], axis=1), N("Concat", ["c", "c"], ["y"], axis=-1)]
    graph = check(make_model(nodes, (2, 3, 4), {"W1": rand(3, 2, 1, 1), "W2": rand(1, 2, 1, 1)}),
                  (2, 3, 4))
    assert layer_types(graph) == ["Conv", "Conv", "Concat", "Concat"]


# --- pooling --------------------------------------------------------------------------------------
MAXPOOL_CASES = {
    "pads_strides": ((2, 8, 9), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    "ceil_mode": ((2, 8, 9), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 1],
                                  ceil_mode=1)),
    "ceil_mode_no_pad": ((2, 7, 7), dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)),
    "dilations": ((2, 9, 9), dict(kernel_shape=[2, 3], strides=[1, 2], dilations=[2, 2])),
    "default_stride_is_one": ((2, 5, 5), dict(kernel_shape=[2, 2])),
    "same_upper": ((2, 7, 8), dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")),
    "same_lower": ((2, 7, 8), dict(kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_LOWER")),
    "maxpool1d": ((2, 9), dict(kernel_shape=[3], strides=[2], pads=[1, 1])),
    "maxpool3d": ((2, 4, 5, 6), dict(kernel_shape=[2, 2, 3], strides=[2, 2, 2])),
}


@pytest.mark.parametrize("opset", [10, 12, 18])
@pytest.mark.parametrize("case", sorted(MAXPOOL_CASES))
def test_max_pool(case, opset):
    x_shape, attrs = MAXPOOL_CASES[case]
    check(make_model([N("MaxPool", ["x"], ["y"], **attrs)], x_shape, opset=opset), x_shape)


def test_max_pool_opset7():
    attrs = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    check(make_model([N("MaxPool", ["x"], ["y"], **attrs)], (2, 8, 9), opset=7), (2, 8, 9))


AVGPOOL_CASES = {
    "pads_include": ((2, 8, 9), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                                     count_include_pad=1)),
    "pads_exclude": ((2, 8, 9), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                                     count_include_pad=0)),
    "asymmetric_pads": ((2, 8, 9), dict(kernel_shape=[3, 2], strides=[1, 2], pads=[2, 0, 1, 1],
                                        count_include_pad=1)),
    "ceil_include": ((2, 8, 9), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                                     ceil_mode=1, count_include_pad=1)),
    "ceil_exclude": ((2, 8, 8), dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)),
    "same_lower": ((2, 7, 8), dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_LOWER")),
    "same_upper_include": ((2, 7, 8), dict(kernel_shape=[2, 2], strides=[2, 2],
                                           auto_pad="SAME_UPPER", count_include_pad=1)),
    "avgpool1d": ((2, 9), dict(kernel_shape=[3], strides=[2], pads=[1, 1])),
}


@pytest.mark.parametrize("opset", [10, 19])
@pytest.mark.parametrize("case", sorted(AVGPOOL_CASES))
def test_average_pool(case, opset):
    x_shape, attrs = AVGPOOL_CASES[case]
    check(make_model([N("AveragePool", ["x"], ["y"], **attrs)], x_shape, opset=opset), x_shape)


def test_average_pool_opset7():
    attrs = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)
    check(make_model([N("AveragePool", ["x"], ["y"], **attrs)], (2, 8, 9), opset=7), (2, 8, 9))


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("x_shape", [(3, 5, 4), (2, 7), (2, 3, 4, 5)])
def test_global_pools(op, x_shape):
    check(make_model([N(op, ["x"], ["y"])], x_shape), x_shape)


# --- reshaping ----------------------------------------------------------------------------------
@pytest.mark.parametrize("axis, x_shape", [(1, (2, 3, 4)), (-3, (2, 3, 4)), (2, (1, 3, 4)),
                                           (3, (1, 1, 5))])
def test_flatten(axis, x_shape):
    graph = check(make_model([N("Flatten", ["x"], ["y"], axis=axis)], x_shape, opset=13), x_shape)
    assert layer_types(graph) == ["Flatten"]


@pytest.mark.parametrize("target", [[0, -1], [-1, 24], [0, 4, 6], [0, 0, -1], [0, 2, 3, 4]])
def test_reshape(target):
    model = make_model([N("Reshape", ["x", "s"], ["y"])], (2, 3, 4),
                       {"s": np.array(target, np.int64)}, 13)
    graph = check(model, (2, 3, 4))
    assert layer_types(graph) == ["Reshape"]


def test_reshape_to_its_own_shape_is_a_noop_for_canonize():
    model = make_model([N("Reshape", ["x", "s"], ["r"]), N("Relu", ["r"], ["y"])], (1, 4, 4),
                       {"s": np.array([1, 1, 4, 4], np.int64)}, batch=1)
    graph = lrp.from_onnx(model)
    assert graph[0].is_noop
    assert layer_types(lrp.canonize(graph)) == ["ReLU"]
    x = rand(5, 1, 4, 4)  # a batch of 5 through a graph exported for a batch of 1
    np.testing.assert_allclose(graph(x), np.maximum(x, 0))


@pytest.mark.parametrize("opset", [9, 11, 13])
def test_reshape_from_shape_subgraph(opset):
    """torch's ``x.view(x.size(0), -1)``: Shape -> Gather -> Unsqueeze -> Concat -> Reshape."""
    unsqueeze = (N("Unsqueeze", ["n"], ["n1"], axes=[0]) if opset < 13
                 else N("Unsqueeze", ["n", "ax"], ["n1"]))
    zero = numpy_helper.from_array(np.array(0, np.int64))
    nodes = [N("Relu", ["x"], ["r"]), N("Shape", ["r"], ["s"]),
             N("Constant", [], ["i"], value=zero),
             N("Gather", ["s", "i"], ["n"], axis=0), unsqueeze,
             N("Concat", ["n1", "m1"], ["t"], axis=0),
             N("Reshape", ["r", "t"], ["y"])]
    inits = {"m1": np.array([-1], np.int64), "ax": np.array([0], np.int64)}
    graph = check(make_model(nodes, (2, 3, 4), inits, opset), (2, 3, 4))
    assert layer_types(graph) == ["ReLU", "Reshape"] and graph[1].shape == (24,)


def test_shape_slice_cast_arithmetic_subgraph():
    """A Shape -> Slice -> ReduceProd -> Concat shape computation with a Cast and a Mul."""
    nodes = [N("Shape", ["x"], ["s"]), N("Slice", ["s", "one", "big"], ["tail"]),
             N("ReduceProd", ["tail"], ["p"], keepdims=1),
             N("Cast", ["p"], ["pf"], to=TensorProto.FLOAT),
             N("Mul", ["pf", "half"], ["q"]), N("Cast", ["q"], ["qi"], to=TensorProto.INT64),
             N("Slice", ["s", "zero", "one"], ["head"]),
             N("Concat", ["head", "qi", "two"], ["t"], axis=0),
             N("Reshape", ["x", "t"], ["y"])]
    inits = {"one": np.array([1], np.int64), "big": np.array([100], np.int64),
             "zero": np.array([0], np.int64), "half": np.array(0.5, np.float32),
             "two": np.array([2], np.int64)}
    graph = check(make_model(nodes, (2, 3, 4), inits, 13), (2, 3, 4))
    assert graph[0].shape == (12, 2)


@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze_unsqueeze(opset):
    if opset < 13:
        nodes = [N("Squeeze", ["x"], ["s"], axes=[1, -1]), N("Unsqueeze", ["s"], ["y"], axes=[2])]
        inits = {}
    else:
        nodes = [N("Squeeze", ["x", "a1"], ["s"]), N("Unsqueeze", ["s", "a2"], ["y"])]
        inits = {"a1": np.array([1, -1], np.int64), "a2": np.array([2], np.int64)}
    check(make_model(nodes, (1, 4, 3, 1), inits, opset), (1, 4, 3, 1))


def test_squeeze_without_axes_keeps_the_batch():
    """onnxruntime squeezes a batch of 1 away too; the reader keeps the batch axis."""
    model = make_model([N("Squeeze", ["x"], ["y"])], (1, 4, 1), opset=13, batch=1)
    graph = lrp.from_onnx(model)
    assert graph[0].shape == (4,)
    x = rand(3, 1, 4, 1)
    np.testing.assert_allclose(graph(x), np.stack([run_ort(model, x[i:i + 1]) for i in range(3)]))


def test_transpose_of_size_one_axes():
    graph = check(make_model([N("Transpose", ["x"], ["y"], perm=[0, 2, 1, 3])], (4, 1, 3)),
                  (4, 1, 3))
    assert layer_types(graph) == ["Reshape"]


# --- activations ----------------------------------------------------------------------------------
ACTIVATIONS = {
    "Relu": ([N("Relu", ["x"], ["y"])], {}, 13, "ReLU"),
    "LeakyRelu": ([N("LeakyRelu", ["x"], ["y"], alpha=0.2)], {}, 13, "LeakyReLU"),
    "LeakyRelu_default": ([N("LeakyRelu", ["x"], ["y"])], {}, 13, "LeakyReLU"),
    "Elu": ([N("Elu", ["x"], ["y"], alpha=0.7)], {}, 13, "ELU"),
    "Sigmoid": ([N("Sigmoid", ["x"], ["y"])], {}, 13, "Sigmoid"),
    "Tanh": ([N("Tanh", ["x"], ["y"])], {}, 13, "Tanh"),
    "Gelu": ([N("Gelu", ["x"], ["y"])], {}, 20, "GELU"),
    "Gelu_tanh": ([N("Gelu", ["x"], ["y"], approximate="tanh")], {}, 20, "GELU"),
    "Clip_attrs_relu6": ([N("Clip", ["x"], ["y"], min=0.0, max=6.0)], {}, 7, "ReLU6"),
    "Clip_inputs_relu6": ([N("Clip", ["x", "lo", "hi"], ["y"])],
                          {"lo": np.float32(0), "hi": np.float32(6)}, 13, "ReLU6"),
    "Clip_min_only": ([N("Clip", ["x", "lo"], ["y"])], {"lo": np.float32(0)}, 11, "ReLU"),
    "Softmax_opset11": ([N("Softmax", ["x"], ["y"])], {}, 11, "Softmax"),
    "Softmax_opset13": ([N("Softmax", ["x"], ["y"])], {}, 13, "Softmax"),
    "Softmax_axis1": ([N("Softmax", ["x"], ["y"], axis=1)], {}, 13, "Softmax"),
}


@pytest.mark.parametrize("case", sorted(ACTIVATIONS))
def test_activations(case):
    nodes, inits, opset, expected = ACTIVATIONS[case]
    x_shape = (7,) if case == "Softmax_opset11" else (3, 4)
    graph = check(make_model(nodes, x_shape, {k: np.asarray(v) for k, v in inits.items()}, opset),
                  x_shape, scale=4.0)
    assert layer_types(graph) == [expected]


# --- normalisation, dropout, identity, constants --------------------------------------------------
@pytest.mark.parametrize("opset", [7, 9, 15])
@pytest.mark.parametrize("after_conv", [False, True])
def test_batch_normalization(opset, after_conv):
    nodes = [N("BatchNormalization", ["h" if after_conv else "x", "g", "b", "m", "v"], ["y"],
               epsilon=1e-3)]
    inits = {"g": rand(3), "b": rand(3), "m": rand(3), "v": np.abs(rand(3)) + 0.5}
    if after_conv:
        nodes.insert(0, N("Conv", ["x", "W"], ["h"], kernel_shape=[1, 1]))
        inits["W"] = rand(3, 2, 1, 1)
    x_shape = (2, 4, 5) if after_conv else (3, 4, 5)
    graph = check(make_model(nodes, x_shape, inits, opset), x_shape)
    assert "BatchNorm" in layer_types(graph)
    x = rand(2, *x_shape)
    np.testing.assert_allclose(lrp.canonize(graph)(x), graph(x), rtol=1e-5, atol=1e-5)
    if after_conv:
        assert layer_types(lrp.canonize(graph)) == ["Conv"]


@pytest.mark.parametrize("axis", [-1, 2])
def test_layer_normalization(axis):
    node = N("LayerNormalization", ["x", "g", "b"], ["y"], axis=axis, epsilon=1e-4)
    norm_shape = (4, 5) if axis == 2 else (5,)
    graph = check(make_model([node], (3, 4, 5),
                             {"g": rand(*norm_shape), "b": rand(*norm_shape)}, 17), (3, 4, 5))
    assert layer_types(graph) == ["LayerNorm"]


@pytest.mark.parametrize("opset", [7, 10, 13])
def test_dropout_identity_cast_constant(opset):
    dropout = (N("Dropout", ["r"], ["d"], ratio=0.3) if opset < 12
               else N("Dropout", ["r", "ratio"], ["d"]))
    nodes = [N("Relu", ["x"], ["r"]), dropout, N("Identity", ["d"], ["i"]),
             N("Cast", ["i"], ["c"], to=TensorProto.FLOAT),
             N("Constant", [], ["k"], value=numpy_helper.from_array(rand(4))),
             N("Add", ["c", "k"], ["y"])]
    inits = {"ratio": np.array(0.3, np.float32)} if opset >= 12 else {}
    graph = check(make_model(nodes, (3, 4), inits, opset), (3, 4))
    assert layer_types(graph) == ["ReLU", "AddConstant"]  # a shift alone: a bias inside


def test_graph_of_identity_only():
    graph = check(make_model([N("Identity", ["x"], ["y"])], (3,)), (3,))
    assert layer_types(graph) == ["Identity"]


# --- Pad ------------------------------------------------------------------------------------------
def _pad_node(opset, pads, value=None):
    if opset < 11:
        return N("Pad", ["x"], ["p"], pads=pads, **({} if value is None else {"value": value})), {}
    return N("Pad", ["x", "pads"], ["p"]), {"pads": np.array(pads, np.int64)}


@pytest.mark.parametrize("opset", [7, 13])
def test_pad_folds_into_conv(opset):
    pad, inits = _pad_node(opset, [0, 0, 1, 2, 0, 0, 2, 1], value=0.0)
    inits["W"] = rand(3, 2, 3, 3)
    nodes = [pad, N("Conv", ["p", "W"], ["y"], kernel_shape=[3, 3], pads=[1, 0, 0, 1])]
    graph = check(make_model(nodes, (2, 6, 7), inits, opset), (2, 6, 7))
    assert layer_types(graph) == ["Conv"] and graph[0].padding == ((2, 2), (2, 2))


@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_pad_folds_into_average_pool(count_include_pad):
    pad, inits = _pad_node(13, [0, 0, 1, 1, 0, 0, 1, 1])
    nodes = [pad, N("AveragePool", ["p"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                    count_include_pad=count_include_pad)]
    graph = check(make_model(nodes, (2, 6, 7), inits, 13), (2, 6, 7))
    assert layer_types(graph) == ["AvgPool"]


def test_pad_before_max_pool_stays_a_layer():
    pad, inits = _pad_node(13, [0, 0, 1, 0, 0, 0, 0, 2])
    nodes = [pad, N("MaxPool", ["p"], ["y"], kernel_shape=[2, 2], strides=[2, 2])]
    graph = check(make_model(nodes, (2, 5, 5), inits, 13), (2, 5, 5))
    assert layer_types(graph) == ["ZeroPad", "MaxPool"]
    assert isinstance(graph[0], ZeroPad)


def test_pad_with_axes_opset18_and_channel_padding():
    nodes = [N("Pad", ["x", "pads", "", "axes"], ["y"])]
    inits = {"pads": np.array([1, 2, 0, 3], np.int64), "axes": np.array([1, -1], np.int64)}
    graph = check(make_model(nodes, (2, 3, 4), inits, 18), (2, 3, 4))
    assert graph[0].pads == ((1, 0), (0, 0), (2, 3))


# --- batch size -----------------------------------------------------------------------------------
def test_graph_exported_for_batch_one_explains_a_batch():
    """A batch-1 graph with a constant Reshape to (1, -1): a batch of 4 equals 4 single runs."""
    nodes = [N("Conv", ["x", "W", "B"], ["c"], kernel_shape=[3, 3]), N("Relu", ["c"], ["r"]),
             N("Reshape", ["r", "s"], ["f"]), N("Gemm", ["f", "D", "E"], ["y"], transB=1)]
    inits = {"W": rand(3, 2, 3, 3), "B": rand(3), "s": np.array([1, -1], np.int64),
             "D": rand(5, 27), "E": rand(5)}
    model = make_model(nodes, (2, 5, 5), inits, 13, batch=1)
    x = rand(4, 2, 5, 5)
    graph = lrp.from_onnx(model)
    expected = np.concatenate([run_ort(model, x[i:i + 1]) for i in range(4)])
    np.testing.assert_allclose(graph(x), expected, rtol=1e-5, atol=1e-5)
    analyzer = lrp.LRP(graph, lrp.EpsilonPlusFlat())
    batch = analyzer(x, 2).val
    single = np.concatenate([analyzer(x[i:i + 1], 2).val for i in range(4)])
    np.testing.assert_allclose(batch, single, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("opset", [7, 10, 13, 18, onnx.defs.onnx_opset_version()])
def test_small_network_at_each_opset(opset):
    """One network written the way each opset spells it (Pad, Clip, Unsqueeze, Dropout)."""
    if opset < 11:
        pad = N("Pad", ["x"], ["p"], pads=[0, 0, 1, 1, 0, 0, 1, 1])
        clip = N("Clip", ["b"], ["r"], min=0.0, max=6.0)
    else:
        pad = N("Pad", ["x", "pads"], ["p"])
        clip = N("Clip", ["b", "lo", "hi"], ["r"])
    unsqueeze = (N("Unsqueeze", ["n"], ["n1"], axes=[0]) if opset < 13
                 else N("Unsqueeze", ["n", "ax"], ["n1"]))
    dropout = N("Dropout", ["g"], ["d"], ratio=0.5) if opset < 12 else N("Dropout", ["g"], ["d"])
    nodes = [pad, N("Conv", ["p", "W"], ["c"], kernel_shape=[3, 3], strides=[2, 2],
                    auto_pad="SAME_UPPER"),
             N("BatchNormalization", ["c", "s", "bb", "m", "v"], ["b"]), clip,
             N("MaxPool", ["r"], ["q"], kernel_shape=[2, 2], strides=[2, 2]),
             N("Shape", ["q"], ["sh"]), N("Gather", ["sh", "zero"], ["n"], axis=0), unsqueeze,
             N("Concat", ["n1", "minus1"], ["target"], axis=0),
             N("Reshape", ["q", "target"], ["f"]),
             N("Gemm", ["f", "D", "E"], ["g"], transB=1), dropout, N("Add", ["d", "K"], ["y"])]
    flat = 4 * 3 * 3  # 9x10, padded to 11x12, strided SAME conv 6x6, pooled 3x3
    inits = {"pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "lo": np.float32(0),
             "hi": np.float32(6), "ax": np.array([0], np.int64), "W": rand(4, 2, 3, 3),
             "s": rand(4), "bb": rand(4), "m": rand(4), "v": np.abs(rand(4)) + 0.5,
             "zero": np.array(0, np.int64), "minus1": np.array([-1], np.int64),
             "D": rand(5, flat), "E": rand(5), "K": rand(5)}
    used = {name for node in nodes for name in node.input}
    inits = {k: np.asarray(v) for k, v in inits.items() if k in used}
    graph = check(make_model(nodes, (2, 9, 10), inits, opset), (2, 9, 10), scale=3.0)
    assert layer_types(lrp.canonize(graph)) == ["Conv", "MaxPool", "Reshape", "Dense"]
