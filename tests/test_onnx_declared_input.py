"""The declared input of an ONNX model is enforced (regression: mnist-8, declared 1x28x28,
explained a 27x28 input without a word and failed on 30x30 with a NumPy reshape message)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")

import lrp_core as lrp

from helpers.data import data_path
from helpers.onnx_models import make_model


def test_mnist8_refuses_another_sample_shape_and_says_which_it_takes():
    analyzer = lrp.LRP(str(data_path("onnx-model-zoo", "mnist-8.onnx")), lrp.EpsilonPlusFlat())
    assert analyzer(np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)).val.shape \
        == (3, 1, 28, 28)
    for shape in [(2, 1, 27, 28), (1, 1, 30, 30), (1, 28, 28, 1), (1, 784)]:
        with pytest.raises(ValueError, match=r"inputs of shape \(N, 1, 28, 28\)"):
            analyzer(np.zeros(shape, dtype=np.float32))


def _conv_model(x_shape):
    from onnx import helper

    w = np.ones((2, 1, 3, 3), dtype=np.float32)
    return make_model([helper.make_node("Conv", ["x", "w"], ["y"])], x_shape, {"w": w})


def test_open_dimensions_accept_any_size_and_fixed_ones_are_checked():
    analyzer = lrp.LRP(_conv_model([1, "H", 5]))
    assert analyzer.model.nodes and lrp.from_onnx(_conv_model([1, "H", 5])).input_shape == \
        (1, None, 5)
    for height in (5, 9):
        analyzer(np.ones((2, 1, height, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(N, 1, \?, 5\)"):
        analyzer(np.ones((2, 1, 5, 6), dtype=np.float32))


def test_graphs_without_a_declared_shape_are_not_checked_here():
    model = lrp.Chain(lrp.Dense(np.ones((2, 3))))
    assert model.input_shape is None
    assert lrp.LRP(model)(np.ones((1, 3))).val.shape == (1, 3)


def test_an_external_data_location_with_a_null_byte_is_named(tmp_path):
    # regression: a bare ValueError("embedded null byte") from os.path
    from onnx import TensorProto, helper, numpy_helper

    from lrp_core.backends.readers.onnx import OnnxModelError

    w = numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    entry = w.external_data.add()
    entry.key, entry.value = "location", "a\x00b"
    model = make_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [2])
    model.graph.initializer.append(w)
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(OnnxModelError, match="null byte.*tensor 'w'|tensor 'w'.*null byte"):
        lrp.from_onnx(str(path))
