"""The ONNX reader's errors: each names the node (op type, supported operators) or the file."""

from __future__ import annotations

import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import lrp_core as lrp  # noqa: E402
from lrp_core.backends.readers.onnx import OnnxModelError  # noqa: E402

from helpers.data import data_path  # noqa: E402
from helpers.onnx_models import make_model  # noqa: E402

N = helper.make_node
RNG = np.random.default_rng(7)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def conv_model():
    """A small valid model with a weight big enough to truncate inside."""
    nodes = [N("Conv", ["x", "W", "B"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             N("Relu", ["c"], ["r"], name="relu"), N("GlobalAveragePool", ["r"], ["g"], name="gap"),
             N("Flatten", ["g"], ["f"], name="flatten"),
             N("Gemm", ["f", "D"], ["y"], name="fc", transB=1)]
    return make_model(nodes, (3, 8, 8), {"W": rand(16, 3, 3, 3), "B": rand(16), "D": rand(4, 16)})


def assert_names_node(error, name, op_type):
    message = str(error.value)
    assert repr(name) in message and repr(op_type) in message, message
    assert "Supported operators:" in message and "Conv" in message and "Gemm" in message, message


# --- unsupported operators ------------------------------------------------------------------------
UNSUPPORTED = {
    "unknown_op": ([N("Erf", ["x"], ["y"], name="my_erf")], {}, 17, "my_erf", "Erf",
                   "no translation"),
    "quotient_of_activations": ([N("Relu", ["x"], ["r"]), N("Div", ["x", "r"], ["y"], name="q")],
                                {}, 17, "q", "Div", "Div of two activations"),
    "constant_over_activation": ([N("Div", ["K", "x"], ["y"], name="inv")], {"K": np.float32(1)},
                                 17, "inv", "Div", "not linear"),
    "transpose_of_batch": ([N("Transpose", ["x"], ["y"], name="tb", perm=[1, 0, 2])], {}, 17,
                           "tb", "Transpose", "batch axis"),
    "reshape_mixing_batch": ([N("Reshape", ["x", "s"], ["y"], name="rs")],
                             {"s": np.array([-1, 4], np.int64)}, 17, "rs", "Reshape", "batch"),
    "reshape_changing_batch": ([N("Reshape", ["x", "s"], ["y"], name="rs2")],
                               {"s": np.array([2, 12], np.int64)}, 17, "rs2", "Reshape", "batch"),
    "gather_on_batch": ([N("Gather", ["x", "i"], ["y"], name="g", axis=0)],
                        {"i": np.array([0], np.int64)}, 17, "g", "Gather", "batch axis"),
    "weight_from_input": ([N("Conv", ["x", "x"], ["y"], name="cw")], {}, 17, "cw", "Conv",
                          "must be a constant"),
    "general_clip": ([N("Clip", ["x", "lo", "hi"], ["y"], name="clip")],
                     {"lo": np.float32(-1), "hi": np.float32(1)}, 13, "clip", "Clip", "ReLU6"),
    "reflect_pad": ([N("Pad", ["x", "p"], ["y"], name="pad", mode="reflect")],
                    {"p": np.array([0, 0, 1, 0, 0, 1], np.int64)}, 13, "pad", "Pad", "zeros"),
    "nonzero_pad": ([N("Pad", ["x", "p", "v"], ["y"], name="pad1")],
                    {"p": np.array([0, 0, 1, 0, 0, 1], np.int64), "v": np.float32(1)}, 13, "pad1",
                    "Pad", "zeros"),
    "batch_pad": ([N("Pad", ["x", "p"], ["y"], name="padb")],
                  {"p": np.array([1, 0, 0, 0, 0, 0], np.int64)}, 13, "padb", "Pad", "batch"),
    "concat_batch": ([N("Concat", ["x", "x"], ["y"], name="cat", axis=0)], {}, 13, "cat", "Concat",
                     "batch"),
    "concat_constant": ([N("Concat", ["x", "K"], ["y"], name="catk", axis=1)], {"K": rand(1, 1, 4)},
                        13, "catk", "Concat", "constant"),
    "flatten_axis0": ([N("Flatten", ["x"], ["y"], name="fl", axis=0)], {}, 13, "fl", "Flatten",
                      "batch"),
    "squeeze_batch": ([N("Squeeze", ["x", "a"], ["y"], name="sq")], {"a": np.array([0], np.int64)},
                      13, "sq", "Squeeze", "batch"),
    "softmax_batch": ([N("Softmax", ["x"], ["y"], name="sm", axis=0)], {}, 13, "sm", "Softmax",
                      "batch"),
    "constant_per_sample": ([N("Add", ["x", "K"], ["y"], name="addk")], {"K": rand(2, 3, 4)}, 13,
                            "addk", "Add", "samples of the batch"),
    "maxpool_indices": ([N("MaxPool", ["x"], ["y", "idx"], name="mp", kernel_shape=[2]),
                         N("Cast", ["idx"], ["unused"], name="cast", to=1)], {}, 13, "mp",
                        "MaxPool",
                        "Indices"),
    "avgpool_dilations": ([N("AveragePool", ["x"], ["y"], name="ap", kernel_shape=[2],
                             dilations=[2])], {}, 19, "ap", "AveragePool", "dilation"),
    "matmul_constant_left": ([N("MatMul", ["K", "x"], ["y"], name="mm")], {"K": rand(5, 3)}, 13,
                             "mm", "MatMul", "constant"),
    "conv_bad_auto_pad": ([N("Conv", ["x", "W"], ["y"], name="cv", auto_pad="FOO")],
                          {"W": rand(2, 3, 1)}, 13, "cv", "Conv", "auto_pad"),
    "conv_channels_mismatch": ([N("Conv", ["x", "W"], ["y"], name="cm")], {"W": rand(2, 5, 1)}, 13,
                               "cm", "Conv", "does not fit"),
    "gemm_trans_a": ([N("Flatten", ["x"], ["f"]),
                      N("Gemm", ["f", "B"], ["y"], name="gm", transA=1)],
                     {"B": rand(12, 2)}, 13, "gm", "Gemm", "transA"),
    "dropout_training": ([N("Dropout", ["x", "r", "t"], ["y"], name="do")],
                         {"r": np.float32(0.5), "t": np.array(True)}, 13, "do", "Dropout",
                         "training"),
}


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_unsupported_operator_names_the_node(case):
    nodes, inits, opset, name, op_type, reason = UNSUPPORTED[case]
    model = make_model(nodes, (3, 4), inits, opset)
    with pytest.raises(lrp.UnsupportedOperatorError) as error:
        lrp.from_onnx(model)
    assert_names_node(error, name, op_type)
    assert reason in str(error.value)
    assert isinstance(error.value, lrp.LRPError)


def test_constant_that_broadcasts_the_activation_larger():
    model = make_model([N("Add", ["x", "K"], ["y"], name="addb")], (1, 4), {"K": rand(3, 4)}, 13)
    with pytest.raises(lrp.UnsupportedOperatorError, match="larger shape") as error:
        lrp.from_onnx(model)
    assert_names_node(error, "addb", "Add")


def test_unnamed_node_is_named_by_position_and_output():
    model = make_model([N("Relu", ["x"], ["r"]), N("Erf", ["r"], ["y"])], (3,))
    with pytest.raises(lrp.UnsupportedOperatorError, match=r"#1 \(unnamed, output 'y'\).*'Erf'"):
        lrp.from_onnx(model)


def test_operator_of_another_domain():
    node = N("FusedConv", ["x"], ["y"], name="fc", domain="com.microsoft")
    model = make_model([node], (3, 4), domains=["com.microsoft"])
    with pytest.raises(lrp.UnsupportedOperatorError, match="com.microsoft") as error:
        lrp.from_onnx(model)
    assert_names_node(error, "fc", "FusedConv")


def test_opset_older_than_7():
    model = make_model([N("Relu", ["x"], ["y"])], (3,), opset=6)
    with pytest.raises(lrp.UnsupportedOperatorError, match="opset 6"):
        lrp.from_onnx(model)


def test_two_inputs():
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 3]) for n in ("a", "b")]
    model = make_model([N("Add", ["a", "b"], ["y"])], (3,), inputs=inputs)
    with pytest.raises(lrp.UnsupportedOperatorError, match="2 inputs.*'a', 'b'"):
        lrp.from_onnx(model)


def test_two_outputs_need_a_choice():
    model = make_model([N("Relu", ["x"], ["y"]), N("Sigmoid", ["x"], ["z"])], (3,),
                       outputs=("y", "z"))
    with pytest.raises(ValueError, match="output=NAME"):
        lrp.from_onnx(model)
    assert type(lrp.from_onnx(model, output="z")[0]).__name__ == "Sigmoid"
    with pytest.raises(ValueError, match="no output 'w'"):
        lrp.from_onnx(model, output="w")


def test_dynamic_shape_needs_input_shape_only_where_used():
    x_info = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, "H", "W"])]
    same = dict(kernel_shape=[3, 3], auto_pad="SAME_UPPER")
    ok = make_model([N("Conv", ["x", "W"], ["y"], **same)], (), {"W": rand(3, 2, 3, 3)},
                    inputs=x_info)
    lrp.from_onnx(ok)  # stride 1: the padding does not depend on the size
    model = make_model([N("Conv", ["x", "W"], ["y"], name="strided", strides=[2, 2], **same)], (),
                       {"W": rand(3, 2, 3, 3)}, inputs=x_info)
    with pytest.raises(lrp.UnsupportedOperatorError, match="input_shape") as error:
        lrp.from_onnx(model)
    assert "'strided'" in str(error.value)
    graph = lrp.from_onnx(model, input_shape=(2, 7, 8))
    x = rand(2, 2, 7, 8)
    expected = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(graph(x), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="does not match"):
        lrp.from_onnx(model, input_shape=(3, 7, 8))


def test_softmax_on_the_output_is_reported_by_the_model_check(tmp_path):
    nodes = [N("Gemm", ["x", "W"], ["z"], transB=1),
             N("Softmax", ["z"], ["y"], name="probabilities")]
    model = make_model(nodes, (5,), {"W": rand(3, 5)}, 13)
    path = tmp_path / "softmax.onnx"
    onnx.save(model, path)
    for source in (model, path, str(path)):
        with pytest.raises(lrp.ModelCheckError, match="strip_softmax") as error:
            lrp.LRP(source)
        assert "probabilities" in str(error.value)
    analyzer = lrp.LRP(lrp.strip_softmax(lrp.from_onnx(path)))
    x = rand(2, 5)
    np.testing.assert_allclose(analyzer(x).output,
                               x @ numpy_helper.to_array(model.graph.initializer[0]).T, rtol=1e-5)


def test_the_users_model_is_not_modified():
    model = conv_model()
    before = model.SerializeToString()
    lrp.LRP(model, lrp.EpsilonPlusFlat())(rand(2, 3, 8, 8))
    assert model.SerializeToString() == before


def test_not_a_model_type():
    with pytest.raises(TypeError, match="path or an onnx.ModelProto"):
        lrp.from_onnx(42)


# --- files ----------------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "model.onnx"
    with pytest.raises(FileNotFoundError) as error:
        lrp.from_onnx(path)
    assert str(path) in str(error.value)
    with pytest.raises(FileNotFoundError):
        lrp.LRP(str(path))


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(OnnxModelError, match="folder"):
        lrp.from_onnx(tmp_path)


@pytest.mark.parametrize("content", [b"", b"hello, this is a text file\n",
                                     b"\x08\x07" + bytes(range(256)) * 4,
                                     b"PK\x03\x04" + b"\x00" * 100])
def test_not_an_onnx_file(tmp_path, content):
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    with pytest.raises(OnnxModelError) as error:
        lrp.from_onnx(path)
    assert str(path) in str(error.value)
    assert isinstance(error.value, lrp.LRPError) and isinstance(error.value, ValueError)


def _truncations(data: bytes):
    return sorted({len(data) // 10, len(data) // 3, len(data) // 2, len(data) - 300, len(data) - 5,
                   len(data) - 1})


def test_truncated_file(tmp_path):
    data = conv_model().SerializeToString()
    for length in _truncations(data):
        path = tmp_path / f"cut{length}.onnx"
        path.write_bytes(data[:length])
        with pytest.raises(OnnxModelError) as error:
            lrp.from_onnx(path)
        assert str(path) in str(error.value), (length, str(error.value))


def test_truncated_mnist8(tmp_path):
    data = data_path("onnx-model-zoo", "mnist-8.onnx").read_bytes()
    for length in _truncations(data):
        path = tmp_path / f"mnist-8-cut{length}.onnx"
        path.write_bytes(data[:length])
        with pytest.raises(OnnxModelError, match=str(path)):
            lrp.from_onnx(path)


def _save_external(model, folder, location="weights.bin"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    copy = onnx.ModelProto()
    copy.CopyFrom(model)  # saving with external data rewrites the model it is given
    onnx.save_model(copy, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=0)
    return path


def _relocate(path, location):
    model = onnx.load(path, load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(model, path)


def test_external_data_inside_the_folder(tmp_path):
    model = conv_model()
    path = _save_external(model, tmp_path / "m")
    assert (tmp_path / "m" / "weights.bin").is_file()
    x = rand(2, 3, 8, 8)
    np.testing.assert_allclose(lrp.from_onnx(path)(x), lrp.from_onnx(model)(x), rtol=0, atol=0)
    unloaded = onnx.load(path, load_external_data=False)
    with pytest.raises(OnnxModelError, match="pass the path"):
        lrp.from_onnx(unloaded)


@pytest.mark.parametrize("where", ["parent", "absolute", "symlink", "missing"])
def test_external_data_outside_the_folder_is_refused(tmp_path, where):
    path = _save_external(conv_model(), tmp_path / "m")
    outside = tmp_path / "outside.bin"
    outside.write_bytes((tmp_path / "m" / "weights.bin").read_bytes())
    if where == "parent":
        _relocate(path, "../outside.bin")
    elif where == "absolute":
        _relocate(path, str(outside))
    elif where == "symlink":
        os.symlink(outside, tmp_path / "m" / "link.bin")
        _relocate(path, "link.bin")
    else:
        _relocate(path, "gone.bin")
    with pytest.raises(OnnxModelError,
                       match="missing" if where == "missing" else "outside") as error:
        lrp.from_onnx(path)
    assert str(path) in str(error.value)
