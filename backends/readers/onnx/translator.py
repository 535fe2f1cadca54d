"""The walk over the ONNX nodes: :class:`Translator` keeps constants (NumPy arrays, folded with
:data:`~lrp_core.backends.readers.onnx.folding.FOLDINGS`) and activations (value indices of the
graph under construction, with their per-sample shapes where known), translates each node with
:data:`~lrp_core.backends.readers.onnx.translations.TRANSLATIONS`, and raises
:class:`lrp_core.UnsupportedOperatorError` naming the node that cannot be translated. Where the
graph moves the batch axis (attention exports), the layout of each such value is tracked by
:mod:`~lrp_core.backends.readers.onnx.layouts`.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import onnx

import lrp_core as lrp
from lrp_core import GraphBuilder
from lrp_core.kernels.shapes import conv_output_size, normalize_padding, output_spatial_shape
from lrp_core.layers import Affine, ZeroPad

from .folding import FOLDINGS
from .layouts import Laid, materialise, onnx_shape, translate_laid
from .loading import (
    MAX_ELEMENTS,
    MIN_OPSET,
    opset_of,
    read_initializers,
    sparse_to_array,
    tensor_to_array,
    too_large,
)
from .nodes import BATCH, NodeView, shape_slice
from .translations import SUPPORTED_OPS, TRANSLATIONS

__all__ = ["Translator"]

_FOLD_ONLY_OPS = tuple(sorted(set(FOLDINGS) - set(SUPPORTED_OPS)))


class Translator:
    """Walks the ONNX nodes in order, keeping constants (NumPy arrays) and activations (value
    indices of the graph under construction, with their per-sample shapes where known)."""

    def __init__(self, model, label, base_dir, *, input_shape=None, output=None):
        self.model = model
        self.graph = model.graph
        self.label = label
        self.base_dir = base_dir
        self.opset = opset_of(model)
        self.consts: dict[str, np.ndarray] = {}
        self.values: dict[str, int] = {}
        self.builder = GraphBuilder()
        self.shapes: list = []  # per value index: the per-sample shape, or None if unknown
        self.uses = Counter(name for node in self.graph.node for name in node.input if name)
        self.uses.update(v.name for v in self.graph.output)
        self.live = _live_nodes(self.graph)
        self.output_name = output
        self.static_batch = None
        #: constants expanded over the batch (``Expand`` to a shape led by the batch size): held
        #: as one sample with a leading axis of 1; only a ``Concat`` before activations reads them
        self.batch_expanded: set[str] = set()
        #: values whose batch axis the graph moved (a Transpose to sequence-first, a Reshape that
        #: merges it with the heads): their layout (see layouts.py), and their materialised form
        self.layouts: dict[str, Laid] = {}
        self.materialised: dict[str, int] = {}
        #: nodes a pattern read ahead (a decomposed LayerNorm): node index -> its results, or
        #: ``None`` for a node whose outputs only the pattern reads
        self.claimed: dict[int, list | None] = {}
        #: outputs only the nodes of such a pattern read (they have no value of their own)
        self.internal: set[str] = set()
        self.consts.update(read_initializers(self.graph, base_dir, label))
        self._set_input(input_shape)

    # -- what the operator translations call -------------------------------------------------
    def read_tensor(self, proto, what: str) -> np.ndarray:
        """A tensor (or sparse tensor) of the file as an array, through the loader's one function
        (external data confined to the model's folder, sizes bounded)."""
        if isinstance(proto, onnx.SparseTensorProto):
            return sparse_to_array(proto, self.base_dir, self.label, what)
        return tensor_to_array(proto, self.base_dir, self.label, what)

    def unsupported(self, n: NodeView, why: str) -> lrp.UnsupportedOperatorError:
        return lrp.UnsupportedOperatorError(
            f"{self.label}: ONNX node {n.label} (op_type {n.op_type!r}, opset {self.opset}) "
            f"cannot be translated: {why}.\nSupported operators: {', '.join(SUPPORTED_OPS)}; on "
            f"constant inputs (folded with NumPy) also: {', '.join(_FOLD_ONLY_OPS)}.")

    def is_const(self, name: str) -> bool:
        return bool(name) and name in self.consts

    def is_used(self, name: str) -> bool:
        return bool(name) and self.uses[name] > 0

    def value(self, n: NodeView, i: int) -> int:
        name = n.input(i)
        if name in self.layouts:
            return materialise(self, n, name)
        if name in self.values:
            return self.values[name]
        if name in self.consts:
            raise self.unsupported(n, f"input {i} ({name!r}) is a constant where an activation is "
                                      "expected")
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
            raise self.unsupported(n, f"{need} needs the static shape of its input, which the "
                                      "graph leaves open; pass from_onnx(..., input_shape=<shape "
                                      "of one sample>)")
        return shape

    def add(self, layer, inputs, n: NodeView, suffix: str | None = None) -> int:
        try:
            shape = _output_shape(layer, [self.shapes[v] for v in inputs])
        except (ValueError, TypeError) as error:
            raise self.unsupported(n, f"{layer.describe()} does not fit its input: "
                                      f"{error}") from error
        added = _padding_elements(layer, self.shapes[inputs[0]] if inputs else None)
        if added > MAX_ELEMENTS:  # a padding of 2**33 cells: refused before anything runs
            raise too_large(self.label, f"the padding of node {n.label} ({n.op_type}) (per "
                                        "sample)", added)
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
                f"({', '.join(repr(v.name) for v in inputs)}); lrp_core explains graphs with one "
                "input")
        value = inputs[0]
        dims = None
        tensor_type = value.type.tensor_type
        if tensor_type.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                    for d in tensor_type.shape.dim]
            if len(dims) < 2:
                raise lrp.UnsupportedOperatorError(
                    f"{self.label}: the input {value.name!r} has rank {len(dims)}; lrp_core "
                    "needs a batch axis followed by at least one more")
            self.static_batch = dims[0]
        per_sample = None if dims is None or None in dims[1:] else tuple(dims[1:])
        if input_shape is not None:
            given = tuple(int(s) for s in input_shape)
            if dims is not None and (len(given) != len(dims) - 1 or
                                     any(d is not None and d != g
                                         for d, g in zip(dims[1:], given))):
                raise ValueError(f"{self.label}: input_shape {given} does not match the input "
                                 f"{value.name!r} of shape {['N'] + [d or '?' for d in dims[1:]]}")
            per_sample = given
        # what the analyzer enforces: the declared per-sample shape (None where it is open)
        self.declared_input = per_sample if per_sample is not None else (
            None if dims is None else tuple(dims[1:]))
        self.input_name = value.name
        self.values[value.name] = 0
        self.shapes.append(per_sample)

    def run(self) -> int:
        """Translate every node; the value index of the output to explain. The nodes are then in
        ``self.builder.nodes`` and their per-sample shapes in ``self.shapes``."""
        if self.opset < MIN_OPSET:
            raise lrp.UnsupportedOperatorError(
                f"{self.label} uses opset {self.opset}; the reader supports opsets {MIN_OPSET} to "
                f"{onnx.defs.onnx_opset_version()} (convert it with onnx.version_converter)")
        for index, node in enumerate(self.graph.node):
            if index not in self.live:
                continue  # nothing reads its outputs: neither folded nor translated
            if index in self.claimed:  # read ahead by a pattern
                results = self.claimed.pop(index)
                if results is not None:
                    self._store(NodeView(node, index, opset=self.opset), results)
                continue
            n = NodeView(node, index, opset=self.opset)
            problem = n.check_attributes()
            if problem is not None:
                raise self.unsupported(n, f"the node is invalid: {problem}")
            n = NodeView(node, index, opset=self.opset, read_tensor=self.read_tensor)
            try:
                self._translate(n)
            except MemoryError as error:
                raise too_large(self.label, f"the result of node {n.label} ({n.op_type})"
                                ) from error
        return self._output_value()

    def _translate(self, n: NodeView) -> None:
        if n.node.domain not in ("", "ai.onnx"):
            raise self.unsupported(n, f"the operator domain {n.node.domain!r} is not the default "
                                      "ONNX domain")
        names = [name for name in n.inputs if name]
        if n.op_type == "Shape" and names and names[0] in self.values:
            # the shape of an activation, with BATCH standing for the batch size
            if names[0] in self.layouts:
                full = onnx_shape(self, n, self.values[names[0]], self.layouts[names[0]].groups)
            else:
                shape = self.shape(n, self.values[names[0]], "Shape")
                full = np.asarray((BATCH,) + tuple(shape), dtype=np.int64)
            results = [shape_slice(n, full)]
        elif all(name in self.consts for name in names) and n.op_type in FOLDINGS:
            try:
                inputs = [self.consts.get(name) if name else None for name in n.inputs]
                results = FOLDINGS[n.op_type](self, n, inputs)
                results = [None if r is None else np.asarray(r) for r in results]
            except (lrp.LRPError, MemoryError):
                raise
            except Exception as error:
                raise self.unsupported(n, f"folding it on constants failed: "
                                          f"{type(error).__name__}: {error}") from error
        elif n.op_type in TRANSLATIONS:
            if not any(name in self.values for name in names):
                raise self.unsupported(n, "all its inputs are constants, and folding this operator "
                                          "is not supported")
            try:
                results = translate_laid(self, n)  # the batch axis moved, or moved here
                if results is None:
                    results = TRANSLATIONS[n.op_type](self, n)
            except (lrp.LRPError, MemoryError):
                raise
            except Exception as error:  # a malformed node: missing attribute, wrong rank, ...
                raise self.unsupported(n, f"{type(error).__name__}: {error}") from error
        elif n.op_type in FOLDINGS:
            raise self.unsupported(n, f"{n.op_type} is supported on constants only (shape "
                                      "computations), not on values computed from the model input")
        else:
            raise self.unsupported(n, "no translation to an lrp_core layer exists for this "
                                      "operator")
        self._store(n, results)

    def _store(self, n: NodeView, results) -> None:
        for k, name in enumerate(n.outputs):
            result = results[k] if k < len(results) else None
            if not name:
                continue
            if result is None:
                if self.is_used(name) and name not in self.internal:
                    raise self.unsupported(n, f"its output {k} ({name!r}) is used, but only its "
                                              "first output is supported")
            elif isinstance(result, np.ndarray):
                self.consts[name] = result
            elif isinstance(result, Laid):
                self.values[name] = result.value
                self.layouts[name] = result
            else:
                self.values[name] = result

    def _output_value(self) -> int:
        names = [v.name for v in self.graph.output]
        if self.output_name is None:
            if len(names) != 1:
                raise ValueError(f"{self.label} has {len(names)} outputs "
                                 f"({', '.join(map(repr, names))}); choose the one to explain "
                                 "with from_onnx(..., output=NAME)")
            name = names[0]
        elif self.output_name in names:
            name = self.output_name
        else:
            raise ValueError(f"{self.label} has no output {self.output_name!r}; "
                             f"its outputs: {', '.join(map(repr, names))}")
        if name not in self.values:
            raise lrp.UnsupportedOperatorError(f"{self.label}: the output {name!r} is a constant; "
                                               "it does not depend on the input")
        if name in self.layouts:  # read with the batch axis first, or refused
            origin = self.layouts[name].origin
            return materialise(self, origin, name, output=True)
        return self.values[name]


def _live_nodes(graph) -> set[int]:
    """The indices of the nodes whose outputs the graph outputs depend on."""
    needed = {v.name for v in graph.output}
    live = set()
    for index in range(len(graph.node) - 1, -1, -1):
        node = graph.node[index]
        if any(name and name in needed for name in node.output):
            live.add(index)
            needed.update(name for name in node.input if name)
    return live


#: Above this many elements per sample, a layer without shape arithmetic is not run on zeros to
#: find its output shape (the shape is then left unknown).
_PROBE_ELEMENTS = 1 << 16

_SAME_SHAPE = (lrp.ReLU, lrp.LeakyReLU, lrp.ReLU6, lrp.ELU, lrp.Sigmoid, lrp.Tanh, lrp.GELU,
               lrp.SiLU, lrp.Hardsigmoid, lrp.Hardswish, lrp.Mish,
               lrp.Softmax, lrp.Identity, lrp.BatchNorm, lrp.LayerNorm, Affine)


def _output_shape(layer, shapes):
    """The per-sample output shape of ``layer`` (``None`` if an input shape is unknown), by shape
    arithmetic, never by materialising activations; a layer without arithmetic here is run on
    zeros (a batch of one) only when its input is small, else its shape is left unknown."""
    if any(s is None for s in shapes):
        return None
    shapes = [tuple(int(d) for d in s) for s in shapes]
    if isinstance(layer, lrp.ConvLayer):
        (shape,) = shapes
        w = layer.weight
        if isinstance(layer, lrp.ConvTranspose):
            in_channels = w.shape[0]
        else:
            in_channels = w.shape[1] * layer.groups
        if len(shape) != w.ndim - 1 or shape[0] != in_channels:
            raise ValueError(f"a sample of shape {shape} does not fit a weight of shape "
                             f"{tuple(w.shape)} with groups={layer.groups}")
        if isinstance(layer, lrp.ConvTranspose):
            return tuple(layer.output_shape((1,) + tuple(shape))[1:])
        spatial = [conv_output_size(length, k, s, lo, hi, d) for length, k, s, (lo, hi), d in
                   zip(shape[1:], layer.kernel_size, layer.stride, layer.resolved_padding(),
                       layer.dilation)]
        return (int(w.shape[0]), *spatial)
    if isinstance(layer, _SAME_SHAPE) and len(shapes) == 1:
        return shapes[0]
    if isinstance(layer, lrp.Dense) and len(shapes) == 1:
        (shape,) = shapes
        out, features = layer.weight.shape
        if not shape or shape[-1] != features:
            raise ValueError(f"a sample of shape {shape} does not fit a weight of shape "
                             f"{tuple(layer.weight.shape)}")
        return shape[:-1] + (int(out),)
    if isinstance(layer, (lrp.MaxPool, lrp.AvgPool)) and len(shapes) == 1:
        (shape,) = shapes
        d = len(shape) - 1
        kernel = _tuple(layer.kernel_size, d)
        stride = _tuple(layer.stride, d)
        dilation = _tuple(getattr(layer, "dilation", 1), d)
        padding = normalize_padding(layer.padding, d)
        return (shape[0], *output_spatial_shape(shape[1:], kernel, stride, padding, dilation,
                                                layer.ceil_mode))
    if isinstance(layer, (lrp.GlobalAvgPool, lrp.GlobalMaxPool)) and layer.keepdims:
        (shape,) = shapes
        return (shape[0],) + (1,) * (len(shape) - 1)
    if isinstance(layer, lrp.Flatten) and (layer.start_dim, layer.end_dim) == (1, -1):
        return (math.prod(shapes[0]),)
    if isinstance(layer, lrp.Reshape):
        if math.prod(layer.shape) != math.prod(shapes[0]):
            raise ValueError(f"a sample of shape {shapes[0]} cannot be reshaped to {layer.shape}")
        return tuple(layer.shape)
    if isinstance(layer, ZeroPad):
        (shape,) = shapes
        if len(layer.pads) != len(shape):
            raise ValueError(f"pads {layer.pads} for a sample of shape {shape}")
        return tuple(s + lo + hi for s, (lo, hi) in zip(shape, layer.pads))
    if isinstance(layer, lrp.Add):
        return tuple(int(d) for d in np.broadcast_shapes(*shapes))
    if isinstance(layer, lrp.ConcatConstant):
        (shape,) = shapes
        value = tuple(int(d) for d in layer.value.shape)
        axis = layer.axis % (len(shape) + 1)
        if len(value) != len(shape) or value[:axis - 1] + value[axis:] != \
                shape[:axis - 1] + shape[axis:]:
            raise ValueError(f"a constant of shape {value} cannot be concatenated with samples "
                             f"of shape {shape} on axis {layer.axis}")
        return shape[:axis - 1] + (shape[axis - 1] + value[axis - 1],) + shape[axis:]
    if isinstance(layer, lrp.Slice):
        (shape,) = shapes
        axis = layer.axis % (len(shape) + 1)
        taken = range(*slice(layer.start, layer.stop, layer.step).indices(shape[axis - 1]))
        return shape[:axis - 1] + (len(taken),) + shape[axis:]
    if isinstance(layer, lrp.Permute):
        (shape,) = shapes
        if len(layer.axes) != len(shape) + 1:
            raise ValueError(f"{layer.describe()} does not fit a sample of shape {shape}")
        return tuple(shape[a - 1] for a in layer.axes[1:])
    if isinstance(layer, lrp.Mul):
        if len({len(s) for s in shapes}) != 1:
            raise ValueError(f"samples of shapes {shapes} differ in rank")
        return tuple(int(d) for d in np.broadcast_shapes(*shapes))
    if isinstance(layer, lrp.MatMul):
        a, b = shapes
        if len(a) != len(b) or len(a) < 2 or a[-1] != b[-2]:
            raise ValueError(f"samples of shapes {a} and {b} do not multiply as batched "
                             "matrices of one rank")
        return tuple(int(d) for d in np.broadcast_shapes(a[:-2], b[:-2])) + (a[-2], b[-1])
    if isinstance(layer, lrp.Concat) and layer.axis >= 1:
        first = shapes[0]
        axis = layer.axis - 1
        if axis >= len(first) or any(len(s) != len(first) or
                                     s[:axis] + s[axis + 1:] != first[:axis] + first[axis + 1:]
                                     for s in shapes):
            raise ValueError(f"samples of shapes {shapes} cannot be concatenated on axis "
                             f"{layer.axis}")
        return first[:axis] + (sum(s[axis] for s in shapes),) + first[axis + 1:]
    if sum(math.prod(s) for s in shapes) > _PROBE_ELEMENTS:
        return None
    zeros = [np.zeros((1,) + tuple(s), dtype=np.float32) for s in shapes]
    return tuple(int(d) for d in layer.forward(*zeros).shape[1:])


def _padding_elements(layer, shape) -> int:
    """The elements a Conv, pooling or ZeroPad ``layer`` adds to one sample of ``shape`` by its
    padding (0 without padding or when the shape is unknown)."""
    if shape is None or getattr(layer, "padding", getattr(layer, "pads", None)) is None:
        return 0
    try:
        if isinstance(layer, ZeroPad):
            pads = layer.pads
            if len(pads) != len(shape):
                return 0
            return math.prod(d + lo + hi for d, (lo, hi) in zip(shape, pads)) - math.prod(shape)
        if len(shape) < 2:
            return 0
        if hasattr(layer, "resolved_padding"):
            pads = layer.resolved_padding()
        else:
            pads = normalize_padding(layer.padding, len(shape) - 1)
        padded = math.prod(length + lo + hi for length, (lo, hi) in zip(shape[1:], pads))
        return shape[0] * padded - math.prod(shape)
    except (TypeError, ValueError):
        return 0


def _tuple(value, d: int) -> tuple:
    if isinstance(value, (int, np.integer)):
        return (int(value),) * d
    return tuple(int(v) for v in value)
