"""Reading an ONNX model: the file or ``onnx.ModelProto``, its structure checks, its opset, and
its initializers as NumPy arrays (external data confined to the model's folder).

Every failure names the file: :class:`OnnxModelError` for what is not a readable ONNX model,
``FileNotFoundError`` for a missing file.
"""

from __future__ import annotations

import errno
import math
import os

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

import lrp_core as lrp

from .nodes import NodeView

__all__ = ["OnnxModelError", "MIN_OPSET", "load_model", "check_structure", "opset_of",
           "read_initializers"]

#: The oldest opset whose attributes the reader knows (the issue asks for 7 to current).
MIN_OPSET = 7


class OnnxModelError(lrp.LRPError, ValueError):
    """The file (or ModelProto) is not a readable ONNX model: not ONNX, truncated, corrupt, or
    with external data outside its folder. The message names the file."""


def load_model(path_or_model):
    """``(model, base_dir, label)``: the ModelProto, the folder its external data lies in (``None``
    for a ModelProto given as such) and how messages name it. External data is not read here."""
    if isinstance(path_or_model, onnx.ModelProto):
        name = path_or_model.graph.name or "unnamed"
        return path_or_model, None, f"the ONNX model (graph {name!r})"
    if not isinstance(path_or_model, (str, os.PathLike)):
        raise TypeError("from_onnx takes a path or an onnx.ModelProto, got "
                        f"{type(path_or_model).__name__}")
    path = os.fspath(path_or_model)
    label = f"ONNX file {path!r}"
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "no ONNX model file at this path", path)
    if os.path.isdir(path):
        raise OnnxModelError(f"{label} is a folder, not an ONNX model file")
    try:
        model = onnx.load_model(path, load_external_data=False)
    except Exception as error:  # protobuf's DecodeError, onnx's own errors, ...
        raise OnnxModelError(f"{label} is not a readable ONNX model (not ONNX, truncated or "
                             f"corrupt): {type(error).__name__}: {error}") from error
    return model, os.path.dirname(os.path.abspath(path)), label


def check_structure(model, label: str) -> None:
    """Reject what is not an ONNX model, or a truncated one: every name a node reads must be
    defined before it, every graph output defined, and the default-domain opset declared."""
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise OnnxModelError(f"{label} is not an ONNX model (it holds no ir_version or no graph; "
                             "is the file empty, truncated or of another format?)")
    graph = model.graph
    if not graph.node or not graph.output:
        raise OnnxModelError(f"{label} has {len(graph.node)} nodes and {len(graph.output)} "
                             "outputs; the file may be truncated")
    defined = {v.name for v in graph.input} | {t.name for t in graph.initializer}
    defined |= {t.values.name for t in graph.sparse_initializer}
    for index, node in enumerate(graph.node):
        for name in node.input:
            if name and name not in defined:
                view = NodeView(node, index)
                raise OnnxModelError(f"{label}: node {view.label} ({node.op_type}) reads "
                                     f"{name!r}, which no input, initializer or earlier node "
                                     "defines (the file may be truncated, or the graph is not "
                                     "sorted)")
        defined.update(name for name in node.output if name)
    for value in graph.output:
        if value.name not in defined:
            raise OnnxModelError(f"{label}: the graph output {value.name!r} is computed by no "
                                 "node (the file may be truncated)")
    if opset_of(model) is None:
        raise OnnxModelError(f"{label} declares no opset for the default ONNX domain (the file "
                             "may be truncated)")


def opset_of(model):
    """The model's opset for the default ONNX domain, ``None`` if it declares none."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return None


def read_initializers(graph, base_dir, label: str) -> dict[str, np.ndarray]:
    """The graph's initializers (dense, then sparse) as writable NumPy arrays, by name."""
    consts = {}
    for tensor in graph.initializer:
        consts[tensor.name] = _tensor_to_array(tensor, base_dir, label)
    for sparse in graph.sparse_initializer:
        try:
            consts[sparse.values.name] = _sparse_to_dense(sparse)
        except Exception as error:
            raise OnnxModelError(f"{label}: the sparse initializer {sparse.values.name!r} could "
                                 f"not be read: {error}") from error
    return consts


def _external_file(base_dir, tensor, label: str) -> tuple[str, int, int | None]:
    info = {entry.key: entry.value for entry in tensor.external_data}
    location = info.get("location", "")
    if base_dir is None:
        raise OnnxModelError(f"{label}: tensor {tensor.name!r} keeps its data in the external "
                             f"file {location!r}; pass the path of the .onnx file so that it can "
                             "be found")
    root = os.path.realpath(base_dir)
    target = os.path.realpath(os.path.join(root, location))
    if not location or os.path.isabs(location) or os.path.commonpath([root, target]) != root:
        raise OnnxModelError(f"{label}: tensor {tensor.name!r} points to external data "
                             f"{location!r} outside the model's folder {root!r}; refused")
    if not os.path.isfile(target):
        raise OnnxModelError(f"{label}: the external data file {location!r} of tensor "
                             f"{tensor.name!r} is missing")
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
        raise OnnxModelError(f"{label}: the tensor {tensor.name!r} could not be read "
                             f"({type(error).__name__}: {error}); the file may be truncated or "
                             "corrupt") from error
    # a view of the protobuf's bytes is read-only, which torch warns about when it wraps it
    return array if array.flags.writeable else array.copy()


def _sparse_to_dense(sparse) -> np.ndarray:
    values = numpy_helper.to_array(sparse.values)
    indices = numpy_helper.to_array(sparse.indices)
    dims = tuple(int(d) for d in sparse.dims)
    dense = np.zeros(math.prod(dims), dtype=values.dtype)
    flat = indices if indices.ndim == 1 else np.ravel_multi_index(indices.T, dims)
    dense[flat] = values
    return dense.reshape(dims)
