"""The ONNX reader against hostile or invalid files: external data of every tensor confined to
the model's folder, sizes bounded before anything is allocated, invalid files refused."""

from __future__ import annotations

import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import lrp_core as lrp  # noqa: E402
from lrp_core.backends.readers.onnx import OnnxModelError  # noqa: E402

from helpers.onnx_models import make_model  # noqa: E402

N = helper.make_node
SECRET = np.arange(4, dtype=np.float32) + 1000.0


def external_tensor(name, location, array=SECRET):
    """A tensor whose data lies in the external file ``location``."""
    tensor = numpy_helper.from_array(array, name)
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(array.nbytes))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def constant_model(tensor):
    """y = x + the Constant ``tensor``."""
    nodes = [N("Constant", [], ["k"], name="const", value=tensor), N("Add", ["x", "k"], ["y"])]
    return make_model(nodes, (4,))


def constant_of_shape_model(tensor):
    """y = x + ConstantOfShape([4], value=tensor)."""
    nodes = [N("ConstantOfShape", ["s"], ["k"], name="fill", value=tensor),
             N("Add", ["x", "k"], ["y"])]
    return make_model(nodes, (4,), {"s": np.array([4], np.int64)})


def sparse_model(values):
    """y = x + a sparse initializer with ``values`` at indices 0..3."""
    model = make_model([N("Add", ["x", values.name], ["y"])], (4,))
    indices = numpy_helper.from_array(np.arange(4, dtype=np.int64), "indices")
    model.graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, [4]))
    return model


BUILDERS = {"constant": constant_model, "constant_of_shape": constant_of_shape_model,
            "sparse_initializer": sparse_model}


def layout(tmp_path, where):
    """The folder of the model, the location its tensor names, and the working folder (which
    holds a file at that location, relative to it)."""
    model_dir = tmp_path / "models" / "m"
    work = tmp_path / "work" / "sub"
    model_dir.mkdir(parents=True)
    work.mkdir(parents=True)
    secret = tmp_path / "work" / "secret.bin"
    secret.write_bytes(SECRET.tobytes())
    (work / "secret.bin").write_bytes(SECRET.tobytes())
    if where == "parent":
        location = "../secret.bin"
    elif where == "absolute":
        location = str(secret)
    elif where == "working_folder":  # only in the working folder, not in the model's
        location = "secret.bin"
    else:  # a symbolic link inside the model's folder that leaves it
        os.symlink(secret, model_dir / "link.bin")
        location = "link.bin"
    return model_dir, location, work


@pytest.mark.parametrize("where", ["parent", "absolute", "symlink", "working_folder"])
@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_external_data_of_every_tensor_is_confined(tmp_path, monkeypatch, kind, where):
    model_dir, location, work = layout(tmp_path, where)
    name = f"{kind}_tensor"
    model = BUILDERS[kind](external_tensor(name, location))
    path = model_dir / "model.onnx"
    path.write_bytes(model.SerializeToString())
    monkeypatch.chdir(work)  # the location resolves against the working folder: a file is there
    expected = "is missing" if where == "working_folder" else "outside the model's folder"
    with pytest.raises(OnnxModelError, match=expected) as error:
        lrp.from_onnx(path)
    assert repr(name) in str(error.value)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_external_data_without_a_folder_is_refused(tmp_path, monkeypatch, kind):
    (tmp_path / "secret.bin").write_bytes(SECRET.tobytes())
    monkeypatch.chdir(tmp_path)
    model = BUILDERS[kind](external_tensor("t", "secret.bin"))
    with pytest.raises(OnnxModelError, match="pass the path"):
        lrp.from_onnx(model)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_external_data_inside_the_folder_is_read_from_it(tmp_path, monkeypatch, kind):
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "data.bin").write_bytes(SECRET.tobytes())
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)  # not where the data is
    path = model_dir / "model.onnx"
    path.write_bytes(BUILDERS[kind](external_tensor("t", "data.bin")).SerializeToString())
    x = np.zeros((2, 4), np.float32)
    expected = SECRET[:1] if kind == "constant_of_shape" else SECRET  # the fill is one value
    np.testing.assert_array_equal(lrp.from_onnx(path)(x), np.broadcast_to(expected, (2, 4)))


# --- sizes: nothing is allocated before its size is known -----------------------------------------
HUGE = 10 ** 6  # 10**6 x 10**6 = 10**12 elements: any allocation of it fails


def test_huge_declared_input_is_read_without_allocating_it():
    nodes = [N("Relu", ["x"], ["r"]), N("MaxPool", ["r"], ["p"], kernel_shape=[2, 2]),
             N("Sigmoid", ["p"], ["s"]), N("GlobalAveragePool", ["s"], ["g"]),
             N("Flatten", ["g"], ["f"]), N("Gemm", ["f", "D"], ["y"], transB=1)]
    model = make_model(nodes, (8, HUGE, HUGE), {"D": np.ones((3, 8), np.float32)})
    graph = lrp.from_onnx(model)
    assert graph(np.ones((1, 8, 4, 4), np.float32)).shape == (1, 3)


def to_output(name):
    """Nodes that make the constant ``name`` live: y = x + float(Size(name))."""
    return [N("Size", [name], ["size"]), N("Cast", ["size"], ["sizef"], to=TensorProto.FLOAT),
            N("Add", ["x", "sizef"], ["y"])]


FOLDS = {
    "range": ([N("Range", ["a", "b", "c"], ["r"], name="big")],
              {"a": np.int64(0), "b": np.int64(HUGE * HUGE), "c": np.int64(1)}),
    "constant_of_shape": ([N("ConstantOfShape", ["s"], ["r"], name="big")],
                          {"s": np.array([HUGE, HUGE], np.int64)}),
    "broadcast": ([N("ConstantOfShape", ["s1"], ["a"]), N("ConstantOfShape", ["s2"], ["b"]),
                   N("Add", ["a", "b"], ["r"], name="big")],
                  {"s1": np.array([HUGE, 1], np.int64), "s2": np.array([1, HUGE], np.int64)}),
    "tile": ([N("ConstantOfShape", ["s"], ["a"]), N("Tile", ["a", "k"], ["r"], name="big")],
             {"s": np.array([HUGE], np.int64), "k": np.array([HUGE], np.int64)}),
    "expand": ([N("Expand", ["one", "s"], ["r"], name="big")],
               {"one": np.ones(1, np.float32), "s": np.array([HUGE, HUGE], np.int64)}),
    "concat": ([N("ConstantOfShape", ["s"], ["a"]),
                N("Concat", ["a"] * 300, ["r"], name="big", axis=0)],
               {"s": np.array([HUGE], np.int64)}),
}


@pytest.mark.parametrize("case", sorted(FOLDS))
def test_huge_folded_constant_is_refused_before_allocation(case):
    nodes, inits = FOLDS[case]
    model = make_model(nodes + to_output("r"), (4,), inits)
    with pytest.raises(OnnxModelError, match="too large") as error:
        lrp.from_onnx(model)
    message = str(error.value)
    assert "'big'" in message and "MAX_ELEMENTS" in message, message


def test_dead_nodes_are_not_folded():
    nodes = [N("Range", ["a", "b", "c"], ["unused"], name="dead"), N("Relu", ["x"], ["y"])]
    model = make_model(nodes, (4,), {"a": np.int64(0), "b": np.int64(HUGE * HUGE),
                                     "c": np.int64(1)})
    graph = lrp.from_onnx(model)
    np.testing.assert_array_equal(graph(np.ones((1, 4), np.float32)), np.ones((1, 4)))


def test_huge_sparse_initializer_is_refused():
    model = make_model([N("Add", ["x", "k"], ["y"])], (4,))
    values = numpy_helper.from_array(np.ones(1, np.float32), "k")
    indices = numpy_helper.from_array(np.zeros(1, np.int64), "k_indices")
    model.graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, [HUGE, HUGE]))
    with pytest.raises(OnnxModelError, match="too large") as error:
        lrp.from_onnx(model)
    assert "'k'" in str(error.value)


def test_memory_error_becomes_a_model_error(monkeypatch):
    from lrp_core.backends.readers.onnx import folding

    def exhausted(t, n, c):
        raise MemoryError

    monkeypatch.setitem(folding.FOLDINGS, "Neg", exhausted)
    nodes = [N("Neg", ["k"], ["m"], name="neg")] + to_output("m")
    model = make_model(nodes, (4,), {"k": np.ones(3, np.float32)})
    with pytest.raises(OnnxModelError, match="too large") as error:
        lrp.from_onnx(model)
    assert "'neg'" in str(error.value)


# --- invalid files ------------------------------------------------------------------------------
def test_duplicate_initializer_names_are_refused():
    model = make_model([N("Add", ["x", "k"], ["y"])], (4,), {"k": np.zeros(4, np.float32)})
    model.graph.initializer.append(numpy_helper.from_array(np.ones(4, np.float32), "k"))
    with pytest.raises(OnnxModelError, match="'k' is defined twice"):
        lrp.from_onnx(model)


def test_duplicate_node_outputs_are_refused():
    nodes = [N("Relu", ["x"], ["r"], name="a"), N("Sigmoid", ["x"], ["r"], name="b"),
             N("Tanh", ["r"], ["y"])]
    with pytest.raises(OnnxModelError, match="'r' is defined twice"):
        lrp.from_onnx(make_model(nodes, (4,)))


def test_attribute_of_the_wrong_type_is_refused():
    nodes = [N("Conv", ["x", "W"], ["y"], name="conv", strides="22")]
    model = make_model(nodes, (3, 8, 8), {"W": np.ones((2, 3, 3, 3), np.float32)})
    with pytest.raises(OnnxModelError, match="'conv' \\(Conv\\) is invalid: Mismatched attribute "
                                             "type in 'conv : strides'. Expected: 'INTS', "
                                             "actual: 'STRING'"):
        lrp.from_onnx(model)


def test_attribute_helper_checks_the_schema_type():
    from lrp_core.backends.readers.onnx.nodes import NodeView

    node = N("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides="22")
    view = NodeView(node, 0, opset=17)
    assert view.attr("kernel_shape") == [2, 2]
    with pytest.raises(ValueError, match="'strides' is stored as STRING"):
        view.attr("strides", [1, 1])


def test_unknown_attribute_is_refused():
    nodes = [N("Relu", ["x"], ["y"], name="relu", alpha=0.5)]
    with pytest.raises(OnnxModelError, match="'relu' \\(Relu\\) is invalid: Unrecognized "
                                             "attribute: alpha"):
        lrp.from_onnx(make_model(nodes, (4,)))


@pytest.mark.parametrize("node, message", [
    (N("Relu", ["x", "x"], ["y"], name="bad"), "has input size 2 not in range"),
    (N("MaxPool", ["x"], ["y"], name="bad"), "Required attribute 'kernel_shape' is missing"),
    (N("Relu", ["x"], ["y", "z"], name="bad"), "has output size 2 not in range"),
    (N("Gemm", ["x", "x"], ["y"], name="bad", transA=[1]), "Mismatched attribute type"),
], ids=["inputs", "required attribute", "outputs", "attribute type"])
def test_the_onnx_checker_runs_on_every_node(node, message):
    """The ONNX checker, node by node against the schema of the model's opset."""
    with pytest.raises(OnnxModelError, match=f"'bad' \\({node.op_type}\\) is invalid: .*"
                                             f"{message}"):
        lrp.from_onnx(make_model([node], (4,)))


def test_the_checker_never_looks_for_external_data_in_the_working_folder(tmp_path, monkeypatch):
    """A tensor attribute stored as external data is a placeholder for the checker (which would
    resolve it against the working folder); the reader's own loader refuses it for a model
    with no folder, whether or not such a file lies in the working folder."""
    monkeypatch.chdir(tmp_path)
    value = helper.make_tensor("c", onnx.TensorProto.FLOAT, [4], np.ones(4, np.float32))
    value.ClearField("float_data")
    value.data_location = onnx.TensorProto.EXTERNAL
    value.external_data.add(key="location", value="secret.bin")
    nodes = [N("Constant", [], ["c"], name="const", value=value), N("Add", ["x", "c"], ["y"])]
    model = make_model(nodes, (4,))
    for present in (False, True):
        if present:
            (tmp_path / "secret.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
        with pytest.raises(OnnxModelError, match="external data") as info:
            lrp.from_onnx(model)
        assert "is invalid" not in str(info.value)


def test_unknown_operators_are_left_to_the_translation():
    nodes = [N("NoSuchOp", ["x"], ["y"], name="mystery")]
    with pytest.raises(lrp.UnsupportedOperatorError, match="'mystery'"):
        lrp.from_onnx(make_model(nodes, (4,)))


OUT_OF_RANGE = {
    "concat": ([N("Concat", ["x", "x"], ["y"], name="bad", axis=-4)], {}, 17),
    "unsqueeze": ([N("Unsqueeze", ["x", "a"], ["y"], name="bad")],
                  {"a": np.array([5], np.int64)}, 17),
    "squeeze": ([N("Squeeze", ["x"], ["y"], name="bad", axes=[-4])], {}, 11),
    "softmax": ([N("Softmax", ["x"], ["y"], name="bad", axis=3)], {}, 17),
    "flatten": ([N("Flatten", ["x"], ["y"], name="bad", axis=-4)], {}, 17),
    "layer_norm": ([N("LayerNormalization", ["x", "g"], ["y"], name="bad", axis=-5)],
                   {"g": np.ones(3, np.float32)}, 17),
    "folded_gather": ([N("Gather", ["k", "i"], ["g"], name="bad", axis=-2),
                       N("Add", ["x", "g"], ["y"])],
                      {"k": np.ones(3, np.float32), "i": np.array([0], np.int64)}, 17),
    "transpose_perm": ([N("Transpose", ["x"], ["y"], name="bad", perm=[0, 1, 1])], {}, 17),
}


@pytest.mark.parametrize("case", sorted(OUT_OF_RANGE))
def test_out_of_range_axes_are_refused(case):
    nodes, inits, opset = OUT_OF_RANGE[case]
    model = make_model(nodes, (1, 3), inits, opset=opset)
    with pytest.raises(lrp.UnsupportedOperatorError, match="'bad'") as error:
        lrp.from_onnx(model)
    assert "out of range" in str(error.value) or "permutation" in str(error.value)


def test_the_graph_read_from_onnx_is_read_only():
    """The reader's arrays are its own and read-only, so an analyzer explains them without a
    private copy."""
    nodes = [N("Gemm", ["x", "W", "b"], ["y"], name="fc", transB=1)]
    model = make_model(nodes, (4,), {"W": np.ones((3, 4), np.float32),
                                     "b": np.zeros(3, np.float32)})
    graph = lrp.from_onnx(model)
    assert not graph[0].weight.flags.writeable
    analyzer = lrp.LRP(graph)
    analyzer(np.ones((2, 4), np.float32))
    (prepared,) = analyzer._cache.values()
    assert prepared.layers[0].weight is graph[0].weight
