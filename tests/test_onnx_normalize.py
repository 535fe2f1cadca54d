"""L2 normalisation in the ONNX reader (``backends/readers/onnx/ops_normalize.py``): torch's
``F.normalize`` as ``torch.onnx.export`` writes it (``ReduceL2`` -> ``Clip(min=eps)`` ->
``Expand`` -> ``Div``) and ``LpNormalization(p=2)`` are one ``lrp.L2Normalize``: forward equal
to onnxruntime's, explanation equal to the torch reader's for the same network; a ``ReduceL2``
outside the pattern and ``p=1`` refused."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

import lrp_core as lrp

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from helpers.onnx_models import ort_forward  # noqa: E402

F = torch.nn.functional
rng = np.random.default_rng(5)


class _Normalized(torch.nn.Module):
    """Linear -> F.normalize over the last axis -> Linear, on (N, 3, 4) tokens."""

    def __init__(self, dim=-1):
        super().__init__()
        self.proj = torch.nn.Linear(4, 6)
        self.head = torch.nn.Linear(18, 5)
        self.dim = dim

    def forward(self, x):
        h = F.normalize(self.proj(x), dim=self.dim, eps=1e-6)
        return self.head(h.flatten(1))


def _exported(model, x, path):
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buffer, dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.save(proto, str(path))
    return proto


@pytest.mark.parametrize("dim", [-1, 1])
def test_exported_f_normalize_is_one_layer(tmp_path, dim):
    torch.manual_seed(0)
    model = _Normalized(dim).eval()
    x = torch.randn(3, 3, 4, generator=torch.Generator().manual_seed(1))
    proto = _exported(model, x, tmp_path / "m.onnx")
    assert "ReduceL2" in [node.op_type for node in proto.graph.node]
    graph = lrp.from_onnx(proto)
    kinds = [type(node.layer).__name__ for node in graph.nodes]
    assert kinds.count("L2Normalize") == 1
    np.testing.assert_allclose(np.asarray(graph.forward(x.numpy())),
                               ort_forward(tmp_path / "m.onnx", x.numpy()), rtol=1e-5, atol=1e-6)
    # the same explanation as the torch reader's (float64 weights from the same model)
    model64 = model.double()
    x64 = x.double()
    via_torch = lrp.LRP(model64, lrp.AttnLRP())(x64).val.numpy()
    via_onnx = lrp.LRP(lrp.from_onnx(proto), lrp.AttnLRP())(x64.numpy()).val
    scale = np.abs(via_torch).max()
    np.testing.assert_allclose(np.asarray(via_onnx), via_torch, rtol=1e-5, atol=1e-6 * scale)


def _lp_model(p):
    from onnx import TensorProto, helper

    node = helper.make_node("LpNormalization", ["x"], ["y"], axis=-1, p=p)
    graph = helper.make_graph(
        [node], "lp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_lp_normalization(tmp_path):
    model = _lp_model(2)
    onnx.save(model, str(tmp_path / "lp.onnx"))
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    graph = lrp.from_onnx(model)
    assert isinstance(graph.nodes[-1].layer, lrp.L2Normalize)
    np.testing.assert_allclose(np.asarray(graph.forward(x)), ort_forward(tmp_path / "lp.onnx", x),
                               rtol=1e-6, atol=1e-7)
    with pytest.raises(lrp.UnsupportedOperatorError, match="p=1"):
        lrp.from_onnx(_lp_model(1))


def test_reduce_l2_outside_the_pattern_is_refused():
    from onnx import TensorProto, helper

    nodes = [helper.make_node("ReduceL2", ["x"], ["n"], axes=[2], keepdims=1),
             helper.make_node("Add", ["x", "n"], ["y"])]
    graph = helper.make_graph(
        nodes, "l2", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with pytest.raises(lrp.UnsupportedOperatorError, match="ReduceL2 of an activation"):
        lrp.from_onnx(model)
