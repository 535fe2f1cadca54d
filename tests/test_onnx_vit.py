"""The ONNX export of a small torchvision ViT (2 encoder blocks, 2 heads, 32 x 32 images, random
weights) read by the ONNX reader: ``nn.MultiheadAttention`` exports transpose to sequence-first
and merge the batch with the heads, which the reader follows (``backends/readers/onnx/layouts.py``)
and turns into the layers the torch reader writes. One export with a dynamic batch axis explains
batches of 1 and 3: forward equal to onnxruntime's and the torch model's, relevance equal to the
torch path's (``lrp.from_torch``) under EpsilonPlusFlat, AttnLRP and CP-LRP, in float64; a float64
export too. Graphs that really mix samples are refused, naming the node.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import lrp_core as lrp  # noqa: E402

from helpers.onnx_models import make_model  # noqa: E402
from helpers.tolerances import assert_relevance_close  # noqa: E402

PRESETS = ["epsilon_plus_flat", "attn_lrp", "cp_lrp"]


def _small_vit(seed: int):
    """torchvision's VisionTransformer, every parameter random (LayerNorm scales about 1), so that
    no two weights coincide and the attention is far from uniform."""
    from torchvision.models.vision_transformer import VisionTransformer

    model = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                              hidden_dim=32, mlp_dim=64, num_classes=10).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.3 if p.ndim < 2 else (1.0 / p[0].numel()) ** 0.5
            p.copy_(torch.randn(p.shape, generator=g) * scale)
            if ".ln" in name and name.endswith("weight"):
                p.add_(1.0)
    return model


def _export(model, path, opset, dtype=torch.float32):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, (torch.zeros(1, 3, 32, 32, dtype=dtype),), str(path),
                              dynamo=False, opset_version=opset, input_names=["x"],
                              output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
        except Exception as error:  # e.g. a torch without the TorchScript exporter
            pytest.skip(f"torch.onnx.export(dynamo=False) failed here: {error}")


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    model = _small_vit(seed=2)
    path = tmp_path_factory.mktemp("onnx") / "vit.onnx"
    _export(model, path, opset=17)
    graph = lrp.from_onnx(path)
    return model, path, graph, lrp.from_torch(model, input_shape=(3, 32, 32))


def _batch(size):
    return np.random.default_rng(7).standard_normal((size, 3, 32, 32))


def test_the_export_moves_the_batch_axis(vit):
    """The premise: the export transposes the batch off axis 0 and reshapes it with the heads."""
    model, path, graph, from_torch = vit
    nodes = onnx.load(str(path)).graph.node
    assert any(n.op_type == "Transpose" and list(n.attribute[0].ints) == [1, 0, 2]
               for n in nodes)
    assert any(n.op_type == "Transpose" and list(n.attribute[0].ints) == [2, 0, 1, 3]
               for n in nodes)


def test_the_attention_is_read_as_the_torch_reader_writes_it(vit):
    model, path, graph, from_torch = vit
    permutes = [layer.axes for layer in graph if isinstance(layer, lrp.Permute)]
    expected = [layer.axes for layer in from_torch if isinstance(layer, lrp.Permute)]
    assert permutes == expected  # (0, 2, 1) patches, then per block q, k, v, merge
    assert all(axes[0] == 0 for axes in permutes)
    for kind in (lrp.MatMul, lrp.Softmax, lrp.LayerNorm, lrp.GELU):
        assert sum(isinstance(layer, kind) for layer in graph) == \
            sum(isinstance(layer, kind) for layer in from_torch), kind


@pytest.mark.parametrize("size", [1, 3])
def test_forward_equals_onnxruntime_and_torch(vit, size):
    model, path, graph, from_torch = vit
    x = _batch(size).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": x})[0]
    assert expected.shape == (size, 10)
    ours = graph(x)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5 * scale)
    with torch.no_grad():
        np.testing.assert_allclose(ours, model(torch.from_numpy(x)).numpy(), rtol=1e-5,
                                   atol=1e-5 * scale)


@pytest.mark.parametrize("size", [1, 3])
@pytest.mark.parametrize("preset", PRESETS)
def test_onnx_path_equals_torch_path(vit, preset, size):
    """Float64 through both graphs; the weights are the same float32 numbers in both, so the
    relevance agrees to rounding (about 1e-13 of the largest entry measured; 1e-8 asserted)."""
    model, path, graph, from_torch = vit
    x = _batch(size)
    selection = [1, 7, 3][:size]
    expected = lrp.LRP(from_torch, lrp.preset(preset))(x, selection)
    actual = lrp.LRP(graph, lrp.preset(preset))(x, selection)
    assert actual.val.shape == x.shape and np.all(np.isfinite(actual.val))
    assert np.abs(expected.val).max() > 0
    np.testing.assert_allclose(actual.output, expected.output, rtol=1e-10)
    assert_relevance_close(actual.val, expected.val, rtol=1e-8)


def test_a_float64_export_agrees_with_the_torch_path(tmp_path):
    """The model exported in float64 (onnxruntime has no float64 Conv, so torch is the forward
    oracle)."""
    model = _small_vit(seed=5).double()
    path = tmp_path / "vit64.onnx"
    _export(model, path, opset=17, dtype=torch.float64)
    graph = lrp.from_onnx(path)
    from_torch = lrp.from_torch(model, input_shape=(3, 32, 32))
    x = _batch(3)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(graph(x), expected, rtol=1e-12, atol=1e-12)
    for preset in PRESETS:
        on_torch = lrp.LRP(from_torch, lrp.preset(preset))(x, [4, 0, 9])
        on_onnx = lrp.LRP(graph, lrp.preset(preset))(x, [4, 0, 9])
        assert_relevance_close(on_onnx.val, on_torch.val, rtol=1e-10)


def test_an_export_with_layer_norm_as_arithmetic(tmp_path):
    """Opset 14 has no LayerNormalization: the export writes ReduceMean, Sub, Pow, ReduceMean,
    Add, Sqrt, Div, Mul, Add, which the reader reads as one LayerNorm."""
    model = _small_vit(seed=3)
    path = tmp_path / "vit14.onnx"
    _export(model, path, opset=14)
    assert not any(n.op_type == "LayerNormalization" for n in onnx.load(str(path)).graph.node)
    graph = lrp.from_onnx(path)
    from_torch = lrp.from_torch(model, input_shape=(3, 32, 32))
    assert sum(isinstance(layer, lrp.LayerNorm) for layer in graph) == 5
    x = _batch(2)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": x.astype(np.float32)})[0]
    np.testing.assert_allclose(graph(x.astype(np.float32)), expected, rtol=1e-5,
                               atol=1e-5 * np.abs(expected).max())
    for preset in PRESETS:
        on_torch = lrp.LRP(from_torch, lrp.preset(preset))(x, [2, 5])
        on_onnx = lrp.LRP(graph, lrp.preset(preset))(x, [2, 5])
        assert_relevance_close(on_onnx.val, on_torch.val, rtol=1e-8)


def test_a_reduce_mean_outside_layer_norm_is_refused():
    nodes = [N("ReduceMean", ["x"], ["y"], name="pool", axes=[-1])]
    with pytest.raises(lrp.UnsupportedOperatorError, match="LayerNorm exported as arithmetic"):
        lrp.from_onnx(make_model(nodes, (5, 4), opset=14))


# --- the layout tracking on small graphs ------------------------------------------------------
N = onnx.helper.make_node


def _shape_of(name, out, index):
    """``Shape(name)[index]`` as a 1-element tensor (the exporter's way to read the batch)."""
    return [N("Shape", [name], [f"{out}_s"]),
            N("Gather", [f"{out}_s", f"{out}_i"], [out], axis=0)], {
        f"{out}_i": np.array([index], np.int64)}


def test_transposes_that_cancel_add_no_layer():
    nodes = [N("Transpose", ["x"], ["t"], perm=[1, 0, 2]), N("Relu", ["t"], ["r"]),
             N("Transpose", ["r"], ["y"], perm=[1, 0, 2])]
    graph = lrp.from_onnx(make_model(nodes, (5, 4)))
    assert [type(layer) for layer in graph] == [lrp.ReLU]


def test_batch_merged_with_the_sequence_before_a_gemm():
    """``(N, L, E) -> (L, N, E) -> (L·N, E) -> Gemm -> (L, N, M) -> (N, L, M)``, the output
    projection of the export, with the sizes from ``Shape``: one Dense over the last axis."""
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    batch, inits = _shape_of("x", "n", 0)
    nodes = batch + [
        N("Transpose", ["x"], ["t"], perm=[1, 0, 2]),
        N("Mul", ["n", "L"], ["ln"]),
        N("Concat", ["ln", "E"], ["flat"], axis=0),
        N("Reshape", ["t", "flat"], ["f"]),
        N("Gemm", ["f", "W", "B"], ["g"], transB=1),
        N("Concat", ["L", "n", "M"], ["back"], axis=0),
        N("Reshape", ["g", "back"], ["r"]),
        N("Transpose", ["r"], ["y"], perm=[1, 0, 2])]
    inits.update({"L": np.array([5], np.int64), "E": np.array([4], np.int64),
                  "M": np.array([3], np.int64), "W": w, "B": b})
    model = make_model(nodes, (5, 4), inits)
    graph = lrp.from_onnx(model)
    assert [type(layer) for layer in graph] == [lrp.Dense]
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(graph(x), session.run(None, {"x": x})[0], rtol=1e-5, atol=1e-6)


class _AttentionHead(torch.nn.Module):
    """``nn.MultiheadAttention`` (self-attention, batch first) and a linear head."""

    def __init__(self, length, embed, heads, classes):
        super().__init__()
        self.attention = torch.nn.MultiheadAttention(embed, heads, batch_first=True)
        self.head = torch.nn.Linear(length * embed, classes)

    def forward(self, x):
        out = self.attention(x, x, x, need_weights=False)[0]
        return self.head(torch.flatten(out, 1))


def _attention_as_batched_products(module, length, embed, heads):
    """The module written as ``F.multi_head_attention_forward`` computed it in earlier torch
    versions: sequence-first, the packed projection split with ``Split``, ``bmm`` of ``(N·H, L,
    d)`` tensors, ``(L·N, E)`` into the output projection; every size from ``Shape``."""
    mha = module.attention
    d = embed // heads
    arrays = {name: p.detach().numpy().copy() for name, p in module.named_parameters()}
    inits = {"Wt": np.ascontiguousarray(arrays["attention.in_proj_weight"].T),
             "b": arrays["attention.in_proj_bias"], "Wo": arrays["attention.out_proj.weight"],
             "bo": arrays["attention.out_proj.bias"], "Wh": arrays["head.weight"],
             "bh": arrays["head.bias"], "split": np.array([embed] * 3, np.int64),
             "L": np.array([length], np.int64), "E": np.array([embed], np.int64),
             "H": np.array([heads], np.int64), "d": np.array([d], np.int64),
             "scale": np.array(1.0 / np.sqrt(d), np.float32)}
    assert mha.batch_first and mha._qkv_same_embed_dim
    batch, more = _shape_of("x", "n", 0)
    inits.update(more)
    nodes = batch + [
        N("Transpose", ["x"], ["t"], perm=[1, 0, 2]),
        N("MatMul", ["t", "Wt"], ["p0"]), N("Add", ["p0", "b"], ["p"]),
        N("Split", ["p", "split"], ["q0", "k0", "v0"], axis=2),
        N("Mul", ["n", "H"], ["nh"]), N("Concat", ["L", "nh", "d"], ["s3"], axis=0)]
    for z in "qkv":
        nodes += [N("Reshape", [f"{z}0", "s3"], [f"{z}1"]),
                  N("Transpose", [f"{z}1"], [f"{z}2"], perm=[1, 0, 2])]
    nodes += [
        N("Mul", ["q2", "scale"], ["qs"]), N("Transpose", ["k2"], ["kt"], perm=[0, 2, 1]),
        N("MatMul", ["qs", "kt"], ["scores"]), N("Softmax", ["scores"], ["weights"], axis=-1),
        N("MatMul", ["weights", "v2"], ["o"]), N("Transpose", ["o"], ["o1"], perm=[1, 0, 2]),
        N("Mul", ["n", "L"], ["ln"]), N("Concat", ["ln", "E"], ["s2"], axis=0),
        N("Reshape", ["o1", "s2"], ["o2"]), N("Gemm", ["o2", "Wo", "bo"], ["g"], transB=1),
        N("Concat", ["L", "n", "E"], ["s3b"], axis=0), N("Reshape", ["g", "s3b"], ["g1"]),
        N("Transpose", ["g1"], ["g2"], perm=[1, 0, 2]), N("Flatten", ["g2"], ["f"], axis=1),
        N("Gemm", ["f", "Wh", "bh"], ["y"], transB=1)]
    return make_model(nodes, (length, embed), inits)


@pytest.mark.parametrize("preset", PRESETS)
def test_attention_with_the_batch_merged_with_the_heads_in_the_products(preset):
    """Another way to export the same attention (``Split``, products of ``(N·H, L, d)``
    tensors): read to the same relevance as the torch path, batches of 1 and 3."""
    length, embed, heads = 5, 12, 3
    torch.manual_seed(0)
    module = _AttentionHead(length, embed, heads, classes=4).eval()
    model = _attention_as_batched_products(module, length, embed, heads)
    graph = lrp.from_onnx(model)
    from_torch = lrp.from_torch(module, input_shape=(length, embed))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for size in (1, 3):
        x = np.random.default_rng(size).standard_normal((size, length, embed))
        expected = session.run(None, {"x": x.astype(np.float32)})[0]
        np.testing.assert_allclose(graph(x.astype(np.float32)), expected, rtol=1e-5, atol=1e-6)
        on_torch = lrp.LRP(from_torch, lrp.preset(preset))(x, [1, 3, 0][:size])
        on_onnx = lrp.LRP(graph, lrp.preset(preset))(x, [1, 3, 0][:size])
        assert np.abs(on_torch.val).max() > 0
        assert_relevance_close(on_onnx.val, on_torch.val, rtol=1e-8)


def test_batch_merged_by_a_reshape_to_minus_one():
    """``x.reshape(-1, E)``, a linear layer, ``.reshape(-1, L, M)``: one Dense, no reshape."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 3)).astype(np.float32)
    nodes = [N("Reshape", ["x", "flat"], ["f"]), N("MatMul", ["f", "W"], ["g"]),
             N("Reshape", ["g", "back"], ["y"])]
    model = make_model(nodes, (5, 4), {"flat": np.array([-1, 4], np.int64), "W": w,
                                       "back": np.array([-1, 5, 3], np.int64)})
    graph = lrp.from_onnx(model)
    assert [type(layer) for layer in graph] == [lrp.Dense]
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    np.testing.assert_allclose(graph(x), x @ w, rtol=1e-5, atol=1e-6)


def _refused(nodes, inits, name, op_type):
    with pytest.raises(lrp.UnsupportedOperatorError) as error:
        lrp.from_onnx(make_model(nodes, (5, 4), inits))
    message = str(error.value)
    assert repr(name) in message and repr(op_type) in message, message
    return message


def test_a_softmax_over_the_batch_is_refused():
    nodes = [N("Transpose", ["x"], ["t"], name="to_seq_first", perm=[1, 0, 2]),
             N("Softmax", ["t"], ["y"], name="over_batch", axis=1)]
    message = _refused(nodes, {}, "over_batch", "Softmax")
    assert "to_seq_first" in message and "batch axis" in message and "samples" in message


def test_a_softmax_over_the_batch_merged_with_the_features_is_refused():
    """``(L, N·E)``: a softmax over the last axis normalises across samples."""
    batch, inits = _shape_of("x", "n", 0)
    nodes = batch + [N("Transpose", ["x"], ["t"], name="tr", perm=[1, 0, 2]),
                     N("Mul", ["n", "E"], ["ne"]),
                     N("Concat", ["L", "ne"], ["s"], axis=0),
                     N("Reshape", ["t", "s"], ["r"], name="merge"),
                     N("Softmax", ["r"], ["y"], name="mixing", axis=-1)]
    inits.update({"L": np.array([5], np.int64), "E": np.array([4], np.int64)})
    message = _refused(nodes, inits, "mixing", "Softmax")
    assert "batch axis" in message and "N*4" in message


def test_a_reshape_that_reinterprets_the_batch_is_refused():
    """``(N, L, E)`` reshaped (not transposed) to ``(L, N, E)`` moves values between samples."""
    batch, inits = _shape_of("x", "n", 0)
    nodes = batch + [N("Concat", ["L", "n", "E"], ["s"], axis=0),
                     N("Reshape", ["x", "s"], ["y"], name="reinterpret")]
    inits.update({"L": np.array([5], np.int64), "E": np.array([4], np.int64)})
    message = _refused(nodes, inits, "reinterpret", "Reshape")
    assert "between samples" in message


def test_an_output_with_the_batch_axis_moved_is_refused():
    nodes = [N("Transpose", ["x"], ["y"], name="last", perm=[1, 0, 2])]
    message = _refused(nodes, {}, "last", "Transpose")
    assert "batch axis" in message
