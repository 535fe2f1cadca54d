"""Read an ONNX model into an lrp_core graph, without running it.

    import lrp_core as lrp
    graph = lrp.from_onnx("model.onnx")          # or an onnx.ModelProto
    expl = lrp.LRP("model.onnx", lrp.EpsilonPlusFlat())(x)

The graph is read with the ``onnx`` package; nothing is executed (constant subgraphs, such as
the ``Shape -> Gather -> Unsqueeze -> Concat`` that feeds a ``Reshape``, are folded with NumPy).
Weights come out as NumPy arrays, so the core converts them to the namespace of the data (NumPy,
torch, CuPy). The leading dimension is the batch: a graph exported for a batch of 1 explains a
batch of N. Each operator's translation lives in :mod:`lrp_core.backends.readers.onnx.ops`; after translation a
constant ``Add``/``Mul``/``Sub``/``Div`` that follows a Dense or Conv is folded into its bias and
weight, consecutive constant scale-and-shifts merge, and a zero ``Pad`` before a Conv or an
average pooling becomes their padding.

Errors: :class:`lrp_core.UnsupportedOperatorError` names the node, its op type and the
supported operators; :class:`OnnxModelError` (an :class:`lrp_core.LRPError` and a
``ValueError``) names a file that is not ONNX, is truncated, or whose external data lies outside
its folder; a missing file raises ``FileNotFoundError``.
"""

from __future__ import annotations

import errno
import math
import os
from collections import Counter

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

import lrp_core as lrp
from lrp_core.graph import Graph, GraphBuilder, Node
from lrp_core.kernels.shapes import conv_output_size
from lrp_core.layers import Affine, ZeroPad
from lrp_core.rewrite import absorb, fuse, keep, rewrite

from .ops import BATCH, FOLDINGS, TRANSLATIONS, NodeView, absorb_pad, fold_affine

__all__ = ["from_onnx", "model_input_shape", "OnnxModelError", "SUPPORTED_OPS", "MIN_OPSET"]

#: The oldest opset whose attributes the reader knows (the issue asks for 7 to current).
MIN_OPSET = 7

#: The operators translated to layers (``Constant`` included); more are folded on constants.
SUPPORTED_OPS = tuple(sorted(set(TRANSLATIONS) | {"Constant"}))
_FOLD_ONLY_OPS = tuple(sorted(set(FOLDINGS) - set(SUPPORTED_OPS)))


class OnnxModelError(lrp.LRPError, ValueError):
    """The file (or ModelProto) is not a readable ONNX model: not ONNX, truncated, corrupt, or
    with external data outside its folder. The message names the file."""


def from_onnx(path_or_model, *, input_shape=None, output: str | None = None) -> Graph:
    """The lrp_core graph of an ONNX model (a path to a ``.onnx`` file or an ``onnx.ModelProto``).

    ``input_shape``: the per-sample input shape (without the batch axis), needed only when the
    graph leaves some of its input's non-batch dimensions open and an operator depends on them.
    ``output``: the name of the graph output to explain when the graph has several.
    The model is read, never run, and never modified.
    """
    model, base_dir, label = _load(path_or_model)
    _check_structure(model, label)
    return Translator(model, label, base_dir, input_shape=input_shape, output=output).run()


def model_input_shape(path_or_model) -> tuple:
    """The declared shape of the model's input, batch axis included (``None`` where it is open)."""
    model, _, label = _load(path_or_model)
    initializers = {init.name for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    if not inputs:
        raise OnnxModelError(f"{label}: the graph declares no input")
    dims = inputs[0].type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims)


# ---------------------------------------------------------------------------------------------
# loading and validation
# ---------------------------------------------------------------------------------------------
def _load(path_or_model):
    if isinstance(path_or_model, onnx.ModelProto):
        name = path_or_model.graph.name or "unnamed"
        return path_or_model, None, f"the ONNX model (graph {name!r})"
    if not isinstance(path_or_model, (str, os.PathLike)):
        raise TypeError(f"from_onnx takes a path or an onnx.ModelProto, got {type(path_or_model).__name__}")
    path = os.fspath(path_or_model)
    label = f"ONNX file {path!r}"
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "no ONNX model file at this path", path)
    if os.path.isdir(path):
        raise OnnxModelError(f"{label} is a folder, not an ONNX model file")
    try:
        model = onnx.load_model(path, load_external_data=False)
    except Exception as error:  # protobuf's DecodeError, onnx's own errors, ...
        raise OnnxModelError(f"{label} is not a readable ONNX model (not ONNX, truncated or corrupt): "
                             f"{type(error).__name__}: {error}") from error
    return model, os.path.dirname(os.path.abspath(path)), label


def _check_structure(model, label: str) -> None:
    """Reject what is not an ONNX model, or a truncated one: every name a node reads must be
    defined before it, every graph output defined, and the default-domain opset declared."""
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise OnnxModelError(f"{label} is not an ONNX model (it holds no ir_version or no graph; "
                             "is the file empty, truncated or of another format?)")
    graph = model.graph
    if not graph.node or not graph.output:
        raise OnnxModelError(f"{label} has {len(graph.node)} nodes and {len(graph.output)} outputs; "
                             "the file may be truncated")
    defined = {v.name for v in graph.input} | {t.name for t in graph.initializer}
    defined |= {t.values.name for t in graph.sparse_initializer}
    for index, node in enumerate(graph.node):
        for name in node.input:
            if name and name not in defined:
                view = NodeView(node, index)
                raise OnnxModelError(f"{label}: node {view.label} ({node.op_type}) reads {name!r}, which no input, "
                                     "initializer or earlier node defines (the file may be truncated, or the "
                                     "graph is not sorted)")
        defined.update(name for name in node.output if name)
    for value in graph.output:
        if value.name not in defined:
            raise OnnxModelError(f"{label}: the graph output {value.name!r} is computed by no node "
                                 "(the file may be truncated)")
    if _opset(model) is None:
        raise OnnxModelError(f"{label} declares no opset for the default ONNX domain (the file may be truncated)")


def _opset(model):
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return None


def _external_file(base_dir, tensor, label: str) -> tuple[str, int, int | None]:
    info = {entry.key: entry.value for entry in tensor.external_data}
    location = info.get("location", "")
    if base_dir is None:
        raise OnnxModelError(f"{label}: tensor {tensor.name!r} keeps its data in the external file "
                             f"{location!r}; pass the path of the .onnx file so that it can be found")
    root = os.path.realpath(base_dir)
    target = os.path.realpath(os.path.join(root, location))
    if not location or os.path.isabs(location) or os.path.commonpath([root, target]) != root:
        raise OnnxModelError(f"{label}: tensor {tensor.name!r} points to external data {location!r} outside "
                             f"the model's folder {root!r}; refused")
    if not os.path.isfile(target):
        raise OnnxModelError(f"{label}: the external data file {location!r} of tensor {tensor.name!r} is missing")
    length = info.get("length")
    return target, int(info.get("offset", 0) or 0), None if length in (None, "") else int(length)


def _tensor_to_array(tensor, base_dir, label: str) -> np.ndarray:
    if tensor.data_location == TensorProto.EXTERNAL:
        path, offset, length = _external_file(base_dir, tensor, label)
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(-1 if length is None else length)
        copy = TensorProto()
        copy.CopyFrom(tensor)
        del copy.external_data[:]
        copy.data_location = TensorProto.DEFAULT
        copy.raw_data = data
        tensor = copy
    try:
        array = numpy_helper.to_array(tensor)
    except Exception as error:
        raise OnnxModelError(f"{label}: the tensor {tensor.name!r} could not be read ({type(error).__name__}: "
                             f"{error}); the file may be truncated or corrupt") from error
    # a view of the protobuf's bytes is read-only, which torch warns about when it wraps it
    return array if array.flags.writeable else array.copy()


# ---------------------------------------------------------------------------------------------
# translation
# ---------------------------------------------------------------------------------------------
class Translator:
    """Walks the ONNX nodes in order, keeping constants (NumPy arrays) and activations (value
    indices of the graph under construction, with their per-sample shapes where known)."""

    def __init__(self, model, label, base_dir, *, input_shape=None, output=None):
        self.model = model
        self.graph = model.graph
        self.label = label
        self.opset = _opset(model)
        self.consts: dict[str, np.ndarray] = {}
        self.values: dict[str, int] = {}
        self.builder = GraphBuilder()
        self.shapes: list = []  # per value index: the per-sample shape, or None if unknown
        self.uses = Counter(name for node in self.graph.node for name in node.input if name)
        self.uses.update(v.name for v in self.graph.output)
        self.output_name = output
        self.static_batch = None
        for tensor in self.graph.initializer:
            self.consts[tensor.name] = _tensor_to_array(tensor, base_dir, label)
        for sparse in self.graph.sparse_initializer:
            try:
                self.consts[sparse.values.name] = _sparse_to_dense(sparse)
            except Exception as error:
                raise OnnxModelError(f"{label}: the sparse initializer {sparse.values.name!r} could not be read: "
                                     f"{error}") from error
        self._set_input(input_shape)

    # -- what the operator translations call -------------------------------------------------
    def unsupported(self, n: NodeView, why: str) -> lrp.UnsupportedOperatorError:
        return lrp.UnsupportedOperatorError(
            f"{self.label}: ONNX node {n.label} (op_type {n.op_type!r}, opset {self.opset}) cannot be "
            f"translated: {why}.\nSupported operators: {', '.join(SUPPORTED_OPS)}; on constant inputs "
            f"(folded with NumPy) also: {', '.join(_FOLD_ONLY_OPS)}.")

    def is_const(self, name: str) -> bool:
        return bool(name) and name in self.consts

    def is_used(self, name: str) -> bool:
        return bool(name) and self.uses[name] > 0

    def value(self, n: NodeView, i: int) -> int:
        name = n.input(i)
        if name in self.values:
            return self.values[name]
        if name in self.consts:
            raise self.unsupported(n, f"input {i} ({name!r}) is a constant where an activation is expected")
        raise self.unsupported(n, f"input {i} is missing")

    def const(self, n: NodeView, i: int, what: str, *, optional: bool = False):
        name = n.input(i)
        if not name:
            if optional:
                return None
            raise self.unsupported(n, f"{what} (input {i}) is missing")
        if name in self.consts:
            return self.consts[name]
        raise self.unsupported(n, f"{what} (input {i}, {name!r}) is computed from the model input; "
                                  "it must be a constant (an initializer or a foldable subgraph)")

    def shape(self, n: NodeView, value: int, need: str):
        shape = self.shapes[value]
        if shape is None:
            raise self.unsupported(n, f"{need} needs the static shape of its input, which the graph leaves "
                                      "open; pass from_onnx(..., input_shape=<shape of one sample>)")
        return shape

    def add(self, layer, inputs, n: NodeView, suffix: str | None = None) -> int:
        try:
            shape = _output_shape(layer, [self.shapes[v] for v in inputs])
        except (ValueError, TypeError) as error:
            raise self.unsupported(n, f"{layer.describe()} does not fit its input: {error}") from error
        name = n.layer_name if suffix is None else f"{n.layer_name}:{suffix}"
        value = self.builder.add(layer, inputs, name)
        self.shapes.append(shape)
        return value

    # -- the walk ------------------------------------------------------------------------------
    def _set_input(self, input_shape) -> None:
        inputs = [v for v in self.graph.input if v.name not in self.consts]
        if len(inputs) != 1:
            raise lrp.UnsupportedOperatorError(
                f"{self.label} has {len(inputs)} inputs that are not initializers "
                f"({', '.join(repr(v.name) for v in inputs)}); lrp_core explains graphs with one input")
        value = inputs[0]
        dims = None
        tensor_type = value.type.tensor_type
        if tensor_type.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                    for d in tensor_type.shape.dim]
            if len(dims) < 2:
                raise lrp.UnsupportedOperatorError(
                    f"{self.label}: the input {value.name!r} has rank {len(dims)}; lrp_core needs a batch axis "
                    "followed by at least one more")
            self.static_batch = dims[0]
        per_sample = None if dims is None or None in dims[1:] else tuple(dims[1:])
        if input_shape is not None:
            given = tuple(int(s) for s in input_shape)
            if dims is not None and (len(given) != len(dims) - 1 or
                                     any(d is not None and d != g for d, g in zip(dims[1:], given))):
                raise ValueError(f"{self.label}: input_shape {given} does not match the input "
                                 f"{value.name!r} of shape {['N'] + [d or '?' for d in dims[1:]]}")
            per_sample = given
        self.input_name = value.name
        self.values[value.name] = 0
        self.shapes.append(per_sample)

    def run(self) -> Graph:
        if self.opset < MIN_OPSET:
            raise lrp.UnsupportedOperatorError(
                f"{self.label} uses opset {self.opset}; the reader supports opsets {MIN_OPSET} to "
                f"{onnx.defs.onnx_opset_version()} (convert it with onnx.version_converter)")
        for index, node in enumerate(self.graph.node):
            self._translate(NodeView(node, index))
        return self._build(self._output_value())

    def _translate(self, n: NodeView) -> None:
        if n.node.domain not in ("", "ai.onnx"):
            raise self.unsupported(n, f"the operator domain {n.node.domain!r} is not the default ONNX domain")
        names = [name for name in n.inputs if name]
        if n.op_type == "Shape" and names and names[0] in self.values:
            # the shape of an activation, with BATCH standing for the batch size
            shape = self.shape(n, self.values[names[0]], "Shape")
            results = [_slice(n, np.asarray((BATCH,) + tuple(shape), dtype=np.int64))]
        elif all(name in self.consts for name in names) and n.op_type in FOLDINGS:
            try:
                results = FOLDINGS[n.op_type](self, n, [self.consts.get(name) if name else None for name in n.inputs])
                results = [None if r is None else np.asarray(r) for r in results]
            except lrp.LRPError:
                raise
            except Exception as error:
                raise self.unsupported(n, f"folding it on constants failed: {type(error).__name__}: {error}") from error
        elif n.op_type in TRANSLATIONS:
            if not any(name in self.values for name in names):
                raise self.unsupported(n, "all its inputs are constants, and folding this operator is not supported")
            try:
                results = TRANSLATIONS[n.op_type](self, n)
            except lrp.LRPError:
                raise
            except Exception as error:  # a malformed node: missing attribute, wrong rank, ...
                raise self.unsupported(n, f"{type(error).__name__}: {error}") from error
        elif n.op_type in FOLDINGS:
            raise self.unsupported(n, f"{n.op_type} is supported on constants only (shape computations), "
                                      "not on values computed from the model input")
        else:
            raise self.unsupported(n, "no translation to an lrp_core layer exists for this operator")
        for k, name in enumerate(n.outputs):
            result = results[k] if k < len(results) else None
            if not name:
                continue
            if result is None:
                if self.is_used(name):
                    raise self.unsupported(n, f"its output {k} ({name!r}) is used, but only its first output "
                                              "is supported")
            elif isinstance(result, np.ndarray):
                self.consts[name] = result
            else:
                self.values[name] = result

    def _output_value(self) -> int:
        names = [v.name for v in self.graph.output]
        if self.output_name is None:
            if len(names) != 1:
                raise ValueError(f"{self.label} has {len(names)} outputs ({', '.join(map(repr, names))}); "
                                 "choose the one to explain with from_onnx(..., output=NAME)")
            name = names[0]
        elif self.output_name in names:
            name = self.output_name
        else:
            raise ValueError(f"{self.label} has no output {self.output_name!r}; "
                             f"its outputs: {', '.join(map(repr, names))}")
        if name not in self.values:
            raise lrp.UnsupportedOperatorError(f"{self.label}: the output {name!r} is a constant; "
                                               "it does not depend on the input")
        return self.values[name]

    # -- after translation: folding, then the graph ------------------------------------------------
    def _build(self, output: int) -> Graph:
        """The post-pass: fold constant scale-and-shifts into their producer, absorb zero pads."""
        shapes = self.shapes

        def decide(site):
            layer = site.node.layer
            if site.producer is None:
                return keep()
            if isinstance(layer, Affine):
                merged = fold_affine(site.producer, layer, shapes[site.producer_value])
                if merged is not None:
                    return fuse(merged)
            if isinstance(site.producer, ZeroPad):
                absorbed = absorb_pad(site.producer, layer)
                if absorbed is not None:
                    return absorb(absorbed)
            return keep()

        graph = rewrite(self.builder.nodes, decide, output=output)
        if graph is None:  # the output is the input (a graph of Identity/Dropout only)
            return Graph.from_nodes([Node(lrp.Identity(), (0,), "identity")])
        return graph


def _slice(n: NodeView, shape):
    start, end = n.attr("start", 0), n.attr("end")
    return shape[start:end] if end is not None else shape[start:]


def _sparse_to_dense(sparse) -> np.ndarray:
    values = numpy_helper.to_array(sparse.values)
    indices = numpy_helper.to_array(sparse.indices)
    dims = tuple(int(d) for d in sparse.dims)
    dense = np.zeros(math.prod(dims), dtype=values.dtype)
    flat = indices if indices.ndim == 1 else np.ravel_multi_index(indices.T, dims)
    dense[flat] = values
    return dense.reshape(dims)


def _output_shape(layer, shapes):
    """The per-sample output shape of ``layer`` (``None`` if an input shape is unknown):
    arithmetic for convolutions, a forward pass on zeros (batch of one) for the rest."""
    if any(s is None for s in shapes):
        return None
    if isinstance(layer, lrp.ConvLayer):
        (shape,) = shapes
        w = layer.weight
        in_channels = w.shape[0] if isinstance(layer, lrp.ConvTranspose) else w.shape[1] * layer.groups
        if len(shape) != w.ndim - 1 or shape[0] != in_channels:
            raise ValueError(f"a sample of shape {shape} does not fit a weight of shape {tuple(w.shape)} "
                             f"with groups={layer.groups}")
        if isinstance(layer, lrp.ConvTranspose):
            return tuple(layer.output_shape((1,) + tuple(shape))[1:])
        spatial = [conv_output_size(length, k, s, lo, hi, d) for length, k, s, (lo, hi), d in
                   zip(shape[1:], layer.kernel_size, layer.stride, layer.resolved_padding(), layer.dilation)]
        return (int(w.shape[0]), *spatial)
    zeros = [np.zeros((1,) + tuple(s), dtype=np.float32) for s in shapes]
    return tuple(int(d) for d in layer.forward(*zeros).shape[1:])
