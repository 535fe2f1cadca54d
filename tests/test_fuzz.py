"""Fuzz tests: mutated ONNX files (bytes and protobuf fields) and hostile analyzer inputs.

Every outcome is either a graph (then one small input of its declared shape is explained) or an
error of the expected classes (:data:`EXPECTED`) with a message; a file outside the example's
model folder is never opened. The generators take a ``random.Random`` so that
``scripts/fuzz_onnx.py`` runs the same ones for longer (see docs/robustness.md).
"""

from __future__ import annotations

import builtins
import contextlib
import io
import math
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

import lrp_core as lrp  # noqa: E402

from helpers.onnx_models import make_model  # noqa: E402

N = helper.make_node

#: the error classes an outcome may raise (anything else is a crash)
EXPECTED = (lrp.LRPError, ValueError, TypeError, FileNotFoundError, NotImplementedError)

#: the largest per-sample input the fuzz explains (more, or an open dimension: read only)
EXPLAIN_ELEMENTS = 10 ** 5

REAL_MODELS = (("onnx-model-zoo", "mnist-8.onnx"), ("lenet5-webmnist", "lenet5.onnx"))

SUSPICIOUS_INTS = (0, 1, -1, 2, 3, -7, 10 ** 9, 2 ** 31, 2 ** 40, -(2 ** 62), 2 ** 62)
SUSPICIOUS_FLOATS = (0.0, -1.0, 1.0, 1e-45, 1e38, -1e38, math.inf, -math.inf, math.nan)
OP_TYPES = ("Conv", "Gemm", "Relu", "Reshape", "MaxPool", "AveragePool", "Add", "MatMul",
            "Flatten", "Softmax", "Concat", "Constant", "Identity", "Transpose", "Pad",
            "BatchNormalization", "Squeeze", "Unsqueeze", "Sum", "Cast", "NoSuchOp", "")


# -- the seed models -------------------------------------------------------------------------


def small_models() -> list:
    """Small graphs of the supported operators (built with ``make_model``)."""
    r = np.random.default_rng(0)

    def rand(*shape):
        return r.standard_normal(shape).astype(np.float32)

    dense = make_model(
        [N("Flatten", ["x"], ["f"], name="flat"),
         N("Gemm", ["f", "W1", "b1"], ["h"], name="fc1", transB=1),
         N("Relu", ["h"], ["a"], name="relu"),
         N("Gemm", ["a", "W2", "b2"], ["y"], name="fc2", transB=1)],
        (2, 3), {"W1": rand(4, 6), "b1": rand(4), "W2": rand(3, 4), "b2": rand(3)}, batch=1)
    conv = make_model(
        [N("Conv", ["x", "K", "c"], ["h"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
         N("Relu", ["h"], ["a"], name="relu"),
         N("MaxPool", ["a"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
         N("Reshape", ["p", "shape"], ["f"], name="reshape"),
         N("MatMul", ["f", "W"], ["m"], name="matmul"),
         N("Add", ["m", "b"], ["y"], name="bias")],
        (1, 4, 4), {"K": rand(2, 1, 3, 3), "c": rand(2), "shape": np.array([1, 8], np.int64),
                    "W": rand(8, 3), "b": rand(3)}, batch=1)
    norm = make_model(
        [N("BatchNormalization", ["x", "s", "o", "m", "v"], ["n"], name="bn"),
         N("AveragePool", ["n"], ["p"], name="avg", kernel_shape=[2]),
         N("LeakyRelu", ["p"], ["a"], name="leaky", alpha=0.1),
         N("Flatten", ["a"], ["f"], name="flat"),
         N("Gemm", ["f", "W", "b"], ["y"], name="fc", transB=1)],
        (2, 4), {"s": rand(2), "o": rand(2), "m": rand(2), "v": np.abs(rand(2)) + 0.5,
                 "W": rand(3, 6), "b": rand(3)}, batch=1)
    return [dense, conv, norm]


def seed_models(real_paths) -> list:
    """``(name, ModelProto)`` of the real files (paths) and of :func:`small_models`."""
    seeds = [(Path(p).name, onnx.load_model(str(p))) for p in real_paths]
    seeds += [(f"small-{i}", m) for i, m in enumerate(small_models())]
    return seeds


# -- the mutations ----------------------------------------------------------------------------


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """Byte flips, truncation, insertion or deletion of the serialized model."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(("flip", "flip", "truncate", "insert", "delete", "set"))
        at = rng.randrange(max(len(data), 1))
        if kind == "flip" and data:
            data[at] ^= 1 << rng.randrange(8)
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif kind == "delete":
            del data[at:at + rng.randint(1, 16)]
        elif kind == "set" and data:
            data[at] = rng.choice((0, 0xFF, 0x7F, 0x80))
    return bytes(data)


def _names(graph) -> list[str]:
    names = [v.name for v in graph.input] + [t.name for t in graph.initializer]
    return names + [o for n in graph.node for o in n.output]


def _mutate_input_dims(model, rng, ctx):
    if not model.graph.input:
        return
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if not dims:
        return
    dim = dims[rng.randrange(len(dims))]
    choice = rng.random()
    if choice < 0.15:
        dim.dim_param = rng.choice(("N", "", "h"))
    else:
        dim.dim_value = rng.choice(SUSPICIOUS_INTS + (0, -1, 10 ** 9, rng.randint(0, 40)))
    if rng.random() < 0.1:
        dims.add().dim_value = rng.choice((1, 0, 5))
    if rng.random() < 0.1:
        del dims[rng.randrange(len(dims))]


def _mutate_attribute(model, rng, ctx):
    nodes = [n for n in model.graph.node if n.attribute]
    if not nodes:
        return
    node = rng.choice(nodes)
    attr = rng.choice(node.attribute)
    pick = rng.random()
    if pick < 0.1:
        attr.type = rng.choice(list(onnx.AttributeProto.AttributeType.values()))
    elif pick < 0.15:
        node.attribute.add().CopyFrom(helper.make_attribute(rng.choice(("bogus", "axis")),
                                                            rng.choice(SUSPICIOUS_INTS)))
    elif attr.ints or attr.type == onnx.AttributeProto.INTS:
        values = list(attr.ints) or [1]
        if rng.random() < 0.3:
            values = values[:rng.randrange(len(values) + 1)] + [rng.choice(SUSPICIOUS_INTS)]
        else:
            values[rng.randrange(len(values))] = rng.choice(SUSPICIOUS_INTS)
        attr.ClearField("ints")
        attr.ints.extend(values)
    elif attr.type == onnx.AttributeProto.INT:
        attr.i = rng.choice(SUSPICIOUS_INTS)
    elif attr.type == onnx.AttributeProto.FLOAT:
        attr.f = rng.choice(SUSPICIOUS_FLOATS)
    elif attr.type == onnx.AttributeProto.STRING:
        attr.s = rng.choice((b"", b"NOTSET", b"\xff\xfe", b"SAME_UPPER", b"x" * 300))
    elif attr.type == onnx.AttributeProto.TENSOR:
        _mutate_tensor(attr.t, rng, ctx)
    else:
        attr.i = rng.choice(SUSPICIOUS_INTS)


def _mutate_node_name(model, rng, ctx):
    if model.graph.node:
        node = rng.choice(model.graph.node)
        other = rng.choice(model.graph.node).name
        node.name = rng.choice(("", other, "é/\n\x00", "n" * 500, "../x"))


def _mutate_op_type(model, rng, ctx):
    if model.graph.node:
        node = rng.choice(model.graph.node)
        node.op_type = rng.choice(OP_TYPES)
        if rng.random() < 0.2:
            node.domain = rng.choice(("com.microsoft", "ai.onnx.ml", "bogus"))


def _mutate_wiring(model, rng, ctx):
    graph = model.graph
    names = _names(graph) or ["x"]
    pick = rng.random()
    if pick < 0.3 and graph.node:  # rewire an input to another existing name
        node = rng.choice(graph.node)
        if node.input:
            node.input[rng.randrange(len(node.input))] = rng.choice(names)
    elif pick < 0.45 and graph.node:  # dangle
        node = rng.choice(graph.node)
        if node.input:
            node.input[rng.randrange(len(node.input))] = rng.choice(("nowhere", "", "y"))
    elif pick < 0.55 and graph.node:  # duplicate an output name
        node = rng.choice(graph.node)
        if node.output:
            node.output[rng.randrange(len(node.output))] = rng.choice(names)
    elif pick < 0.65 and graph.node:  # an extra input
        rng.choice(graph.node).input.append(rng.choice(names + ["", "nowhere"]))
    elif pick < 0.75 and graph.node:  # drop a node
        del graph.node[rng.randrange(len(graph.node))]
    elif pick < 0.85 and graph.node:  # duplicate a node
        graph.node.append(rng.choice(graph.node))
    elif pick < 0.92:  # the graph output
        graph.output[0].name = rng.choice(names + ["nowhere"])
    else:  # swap two nodes (unsorted graph)
        if len(graph.node) > 1:
            i, j = rng.sample(range(len(graph.node)), 2)
            a, b = onnx.NodeProto(), onnx.NodeProto()
            a.CopyFrom(graph.node[i])
            b.CopyFrom(graph.node[j])
            graph.node[i].CopyFrom(b)
            graph.node[j].CopyFrom(a)


def _mutate_tensor(tensor, rng, ctx):
    pick = rng.random()
    if pick < 0.35:
        dims = list(tensor.dims) or [1]
        if rng.random() < 0.3:
            dims.append(rng.choice((0, 1, 2, 10 ** 9)))
        elif rng.random() < 0.3 and len(dims) > 1:
            dims.pop()
        else:
            dims[rng.randrange(len(dims))] = rng.choice(SUSPICIOUS_INTS)
        tensor.ClearField("dims")
        tensor.dims.extend(dims)
    elif pick < 0.5:
        if tensor.raw_data:
            tensor.raw_data = tensor.raw_data[:rng.randrange(len(tensor.raw_data))]
        elif tensor.float_data:
            del tensor.float_data[rng.randrange(len(tensor.float_data)):]
        elif tensor.int64_data:
            del tensor.int64_data[rng.randrange(len(tensor.int64_data)):]
    elif pick < 0.6:
        tensor.data_type = rng.choice((0, TensorProto.STRING, TensorProto.INT8, TensorProto.DOUBLE,
                                       TensorProto.BOOL, TensorProto.COMPLEX64, 99))
    elif pick < 0.7:
        if (tensor.data_type == TensorProto.INT64 and len(tensor.raw_data) % 8 == 0
                and (tensor.raw_data or tensor.int64_data)):
            array = (np.frombuffer(tensor.raw_data, np.int64).copy() if tensor.raw_data
                     else np.array(tensor.int64_data, np.int64))
            if array.size:
                array[rng.randrange(array.size)] = rng.choice(SUSPICIOUS_INTS)
            tensor.ClearField("int64_data")
            tensor.raw_data = array.tobytes()
        elif (tensor.raw_data and tensor.data_type == TensorProto.FLOAT
              and len(tensor.raw_data) % 4 == 0):
            array = np.frombuffer(tensor.raw_data, np.float32).copy()
            if array.size:
                array[rng.randrange(array.size)] = rng.choice(SUSPICIOUS_FLOATS)
            tensor.raw_data = array.tobytes()
    else:
        _make_external(tensor, rng, ctx)


def _make_external(tensor, rng, ctx):
    location = rng.choice((ctx["outside_rel"], ctx["outside_abs"], "weights.bin", "missing.bin",
                           "", "link.bin", "sub/../weights.bin", ".", "..", "weights.bin\x00x",
                           "../model/weights.bin"))
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    del tensor.external_data[:]
    entries = [("location", location)]
    if rng.random() < 0.7:
        entries.append(("offset", rng.choice(("0", "4", "-8", "x", "", str(10 ** 12)))))
    if rng.random() < 0.7:
        entries.append(("length", rng.choice(("16", "0", "-1", "1e3", str(10 ** 12), "64"))))
    for key, value in entries:
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value


def _mutate_initializer(model, rng, ctx):
    graph = model.graph
    if graph.initializer:
        _mutate_tensor(rng.choice(graph.initializer), rng, ctx)


def _mutate_header(model, rng, ctx):
    pick = rng.random()
    if pick < 0.4 and model.opset_import:
        model.opset_import[0].version = rng.choice((0, 1, 6, 7, 99, -3))
    elif pick < 0.55:
        del model.opset_import[:]
    elif pick < 0.7:
        model.ir_version = rng.choice((0, -1, 1, 99))
    elif pick < 0.85:
        if model.graph.input:
            model.graph.input[0].type.tensor_type.elem_type = rng.choice(
                (0, TensorProto.INT64, TensorProto.STRING, 99))
    else:
        del model.graph.input[:]


PROTO_MUTATIONS = (_mutate_input_dims, _mutate_attribute, _mutate_node_name, _mutate_op_type,
                   _mutate_wiring, _mutate_initializer, _mutate_header)


def mutate_proto(model, rng: random.Random, ctx: dict):
    """A copy of ``model`` with 1 to 3 protobuf-level mutations."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for _ in range(rng.randint(1, 3)):
        rng.choice(PROTO_MUTATIONS)(copy, rng, ctx)
    return copy


# -- running one example ----------------------------------------------------------------------


class OutsideRead(AssertionError):
    """The reader opened a file outside the model's folder."""


@contextlib.contextmanager
def forbid_opening(forbidden: set[str]):
    """``builtins.open``/``io.open`` raise :class:`OutsideRead` for a path in ``forbidden``
    (real paths)."""
    real_open = builtins.open

    def guarded(file, *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)):
            path = os.fsdecode(os.fspath(file))
            if os.path.realpath(path) in forbidden:
                raise OutsideRead(f"the reader opened {path!r}, outside the model's folder")
        return real_open(file, *args, **kwargs)

    builtins.open = io.open = guarded
    try:
        yield
    finally:
        builtins.open = io.open = real_open


def make_layout(root: Path) -> dict:
    """``root/model`` (where models are written, with ``weights.bin`` and a symbolic link to the
    sentinel) and ``root/outside/secret.bin`` (the sentinel that must never be opened)."""
    model_dir, outside = root / "model", root / "outside"
    model_dir.mkdir()
    outside.mkdir()
    secret = outside / "secret.bin"
    secret.write_bytes(np.arange(64, dtype=np.float32).tobytes())
    (model_dir / "weights.bin").write_bytes(np.ones(64, dtype=np.float32).tobytes())
    (model_dir / "sub").mkdir()
    with contextlib.suppress(OSError):
        (model_dir / "link.bin").symlink_to(secret)
    return {"model_dir": model_dir, "secret": os.path.realpath(secret),
            "outside_rel": "../outside/secret.bin", "outside_abs": str(secret)}


def explain_input_shape(graph):
    """The per-sample shape to explain, or ``None`` (open, huge or zero-size dimensions)."""
    shape = graph.input_shape
    if shape is None or any(d is None or d <= 0 for d in shape):
        return None
    if math.prod(shape) > EXPLAIN_ELEMENTS:
        return None
    return shape


def run_model(source, seed: int = 0) -> str:
    """Read ``source`` (a path or a ModelProto) and, when it is a graph of a small declared
    shape, explain one input; the outcome's class: ``"read"``, ``"explained"`` or the error's
    class name. Raises AssertionError for anything unexpected."""
    try:
        graph = lrp.from_onnx(source)
    except EXPECTED as error:
        assert str(error).strip(), f"{type(error).__name__} without a message"
        return type(error).__name__
    shape = explain_input_shape(graph)
    if shape is None:
        return "read"
    x = np.random.default_rng(seed).standard_normal((1, *shape)).astype(np.float32)
    try:
        result = lrp.LRP(graph)(x)
    except EXPECTED as error:
        assert str(error).strip(), f"{type(error).__name__} without a message"
        return "explain:" + type(error).__name__
    assert tuple(result.val.shape) == x.shape and result.val.dtype == x.dtype
    return "explained"


def onnx_example(seeds, rng: random.Random, root: Path) -> str:
    """One example: a seed model mutated (bytes or protobuf), written into ``root/model`` and
    read by path (or, for a protobuf mutation, sometimes as a ModelProto); never opening the
    sentinel. Returns the outcome's class."""
    ctx = make_layout(root)
    name, model = rng.choice(seeds)
    path = ctx["model_dir"] / "model.onnx"
    as_proto = None
    if rng.random() < 0.4:
        path.write_bytes(mutate_bytes(model.SerializeToString(), rng))
    else:
        mutated = mutate_proto(model, rng, ctx)
        path.write_bytes(mutated.SerializeToString())
        if rng.random() < 0.25:
            as_proto = mutated
    seed = rng.randrange(2 ** 32)
    with forbid_opening({ctx["secret"]}):
        try:
            return run_model(path if as_proto is None else as_proto, seed)
        except AssertionError:
            raise
        except Exception as error:  # noqa: BLE001 - the fuzz's point
            raise AssertionError(f"{name}: unexpected {type(error).__name__}: {error}") from error


# -- the tests --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeds():
    from helpers.data import data_path

    return seed_models([data_path(*parts) for parts in REAL_MODELS])


def _check_onnx_example(seeds, rng):
    with tempfile.TemporaryDirectory() as root:
        onnx_example(seeds, rng, Path(root))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rng=st.randoms(use_true_random=False))
def test_mutated_onnx_models_are_read_or_refused(seeds, rng):
    _check_onnx_example(seeds, rng)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rng=st.randoms(use_true_random=False))
def test_mutated_small_models_are_read_or_refused(seeds, rng):
    _check_onnx_example([s for s in seeds if s[0].startswith("small")], rng)


def test_the_sentinel_guard_works(tmp_path):
    ctx = make_layout(tmp_path)
    with forbid_opening({ctx["secret"]}), pytest.raises(OutsideRead):
        open(ctx["model_dir"] / "link.bin", "rb")  # noqa: SIM115


def test_unmutated_seeds_are_explained(seeds, tmp_path):
    for name, model in seeds:
        path = tmp_path / f"{name}.onnx"
        path.write_bytes(model.SerializeToString())
        assert run_model(path) == "explained", name


# -- analyzer inputs --------------------------------------------------------------------------

DTYPES = (np.float16, np.float32, np.float64, np.int32, np.int64, np.bool_, np.complex64)


@st.composite
def analyzer_inputs(draw, declared):
    if draw(st.booleans()):
        shape = (draw(st.integers(0, 3)), *declared)
    else:
        shape = tuple(draw(st.lists(st.integers(0, 4), min_size=1, max_size=5)))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    elements = hnp.from_dtype(dtype) if draw(st.booleans()) else None
    if elements is None:
        x = draw(hnp.arrays(dtype, shape, elements=hnp.from_dtype(
            dtype, **({"min_value": -3, "max_value": 3} if dtype.kind in "fc" else {}),
            **({"allow_nan": False, "allow_infinity": False} if dtype.kind in "fc" else {}))))
    else:
        x = draw(hnp.arrays(dtype, shape, elements=elements))
    selection = draw(st.one_of(
        st.none(), st.integers(-5, 6), st.booleans(), st.floats(allow_nan=True),
        st.lists(st.integers(-2, 4), max_size=4), st.just(np.int64(1)), st.just("1"),
        st.just(np.array([0, 1]))))
    return x, selection


ANALYZER_MODELS = {}


def _analyzer(index):
    if index not in ANALYZER_MODELS:
        graph = lrp.from_onnx(small_models()[index])
        ANALYZER_MODELS[index] = (graph.input_shape, lrp.LRP(graph))
    return ANALYZER_MODELS[index]


def expected_problem(x, declared, selection, outputs=3):
    """``(error class, word of its message)`` the analyzer must raise for ``x`` and
    ``selection``, or ``None`` when it must explain."""
    if x.dtype.kind != "f":
        return TypeError, "floating"
    if x.ndim < 2:
        return ValueError, "batch"
    if x.shape[0] == 0:
        return ValueError, "empty"
    if tuple(x.shape[1:]) != tuple(declared):
        return ValueError, "shape"
    if not np.isfinite(x).all():
        return lrp.NonFiniteError, "NaN"
    if selection is None:
        return None
    if isinstance(selection, (bool, float, str)):
        return TypeError, "output_selection"
    items = [selection] * len(x) if isinstance(selection, (int, np.integer)) else list(selection)
    if len(items) != len(x) or not all(0 <= int(i) < outputs for i in items):
        return ValueError, "output_selection"
    return None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), index=st.sampled_from((0, 1, 2)))
def test_analyzer_inputs_are_explained_or_refused(data, index):
    declared, analyzer = _analyzer(index)
    x, selection = data.draw(analyzer_inputs(declared))
    expected = expected_problem(x, declared, selection)
    try:
        result = analyzer(x, selection)
    except EXPECTED as error:
        assert expected is not None, f"refused a valid input: {type(error).__name__}: {error}"
        assert isinstance(error, expected[0]) and expected[1] in str(error), (expected, error)
        return
    except Exception as error:  # noqa: BLE001
        raise AssertionError(f"unexpected {type(error).__name__}: {error}") from error
    assert expected is None, f"accepted {expected}"
    assert tuple(result.val.shape) == x.shape and result.val.dtype == x.dtype


# -- regressions of what the fuzz found ---------------------------------------------------------


def test_invalid_utf8_name_is_a_model_error(tmp_path):
    """protobuf hands an invalid UTF-8 string field over as bytes (get_schema raised a bare
    TypeError on such an op type)."""
    data = small_models()[0].SerializeToString().replace(b"Relu", b"R\xfflu", 1)
    path = tmp_path / "model.onnx"
    path.write_bytes(data)
    with pytest.raises(lrp.LRPError, match="op_type.*not valid UTF-8"):
        lrp.from_onnx(path)
    with pytest.raises(lrp.LRPError, match="UTF-8"):
        lrp.from_onnx(onnx.load_model_from_string(data))


@pytest.mark.parametrize("op", ["Conv", "ConvTranspose"])
def test_conv_bias_of_the_wrong_size_is_refused(op):
    """A bias that does not match the output channels was read and failed only when explaining
    (or in the folding of a following Add, with a bare ValueError)."""
    weight = np.ones((2, 1, 3, 3), np.float32)
    model = make_model([N(op, ["x", "W", "B"], ["h"], name="conv"),
                        N("Add", ["h", "c"], ["y"], name="shift")], (1, 5, 5),
                       {"W": weight, "B": np.ones(16, np.float32),
                        "c": np.ones((2, 1, 1), np.float32)}, batch=1)
    with pytest.raises(lrp.UnsupportedOperatorError, match="'conv'.*bias B has shape"):
        lrp.from_onnx(model)


@pytest.mark.parametrize("node", [
    N("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], strides=[1, 2 ** 33],
      pads=[0, 0, 0, 2 ** 33]),
    N("Conv", ["x", "W"], ["y"], name="pool", kernel_shape=[1, 1], strides=[1, 2 ** 33],
      pads=[0, 0, 0, 2 ** 33]),
    N("Pad", ["x", "pads"], ["y"], name="pool"),
], ids=["maxpool", "conv", "pad"])
def test_huge_padding_is_refused_before_explaining(node):
    """A padding of 2**33 cells (small output, huge padded input) was read, and the explanation
    then failed with a MemoryError of 1 TiB; the reader refuses the padded input (or the
    result) as too large."""
    inits = {"W": np.ones((1, 1, 1, 1), np.float32),
             "pads": np.array([0, 0, 0, 0, 0, 0, 0, 10 ** 9], np.int64)}
    inits = {k: v for k, v in inits.items() if k in node.input}
    with pytest.raises(lrp.LRPError, match="'pool'.*too large"):
        lrp.from_onnx(make_model([node], (1, 4, 4), inits, batch=1))


def test_external_tensor_of_an_unknown_data_type_is_a_model_error(tmp_path):
    """External data of data type 99 raised a KeyError from onnx's type table (fuzz seed 0,
    example 33399)."""
    model = small_models()[0]
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "weights.bin"
    tensor.data_type = 99
    (tmp_path / "weights.bin").write_bytes(bytes(1024))
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(lrp.LRPError, match="unknown data type 99"):
        lrp.from_onnx(path)
