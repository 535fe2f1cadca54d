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
from google.protobuf.message import Message
from onnx import TensorProto, helper, numpy_helper

import lrp_core as lrp

from .nodes import NodeView

__all__ = ["OnnxModelError", "MIN_OPSET", "MAX_ELEMENTS", "load_model", "check_structure",
           "opset_of", "read_initializers", "tensor_to_array", "sparse_to_array", "too_large"]

#: The oldest opset whose attributes the reader knows (the issue asks for 7 to current).
MIN_OPSET = 7

#: The most elements of any tensor the reader reads or builds (a stored tensor, a folded
#: constant, a densified sparse tensor): larger ones are refused as too large.
MAX_ELEMENTS = 2 ** 28


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
    _check_text(model, label)
    _check_unique_names(graph, label)
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


def _check_text(message, label: str, where: str = "the model") -> None:
    """Every string field (names, op types, domains, ...) is valid UTF-8: protobuf hands an
    invalid one over as ``bytes``, which the reader would otherwise trip on."""
    for field, value in message.ListFields():
        if field.type == field.TYPE_STRING:
            values = [value] if isinstance(value, (str, bytes)) else value
            bad = next((v for v in values if not isinstance(v, str)), None)
            if bad is not None:
                raise OnnxModelError(f"{label}: the field {field.name!r} of {where} is not valid "
                                     f"UTF-8 ({bytes(bad)[:40]!r}); the file is corrupt")
        elif field.type == field.TYPE_MESSAGE:
            values = [value] if isinstance(value, Message) else value
            for item in values:
                _check_text(item, label, f"{where} > {field.name}")


def _check_unique_names(graph, label: str) -> None:
    """Each name is defined once: by a graph input, an initializer or a node output (an
    initializer may also be listed as a graph input, IR version < 4)."""
    seen: dict[str, str] = {}

    def define(name, what):
        if not name:
            return
        if name in seen:
            raise OnnxModelError(f"{label}: the name {name!r} is defined twice ({seen[name]} and "
                                 f"{what}); the file is invalid")
        seen[name] = what

    initializers = [t.name for t in graph.initializer]
    initializers += [t.values.name for t in graph.sparse_initializer]
    for name in initializers:
        define(name, f"initializer {name!r}")
    listed = set(initializers)
    for value in graph.input:
        if value.name not in listed:
            define(value.name, f"graph input {value.name!r}")
        else:
            listed.discard(value.name)  # listed once as an input: allowed, twice is not
    for index, node in enumerate(graph.node):
        for name in node.output:
            define(name, f"output of node {NodeView(node, index).label} ({node.op_type})")


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
        consts[tensor.name] = tensor_to_array(tensor, base_dir, label,
                                              f"the initializer {tensor.name!r}")
    for sparse in graph.sparse_initializer:
        consts[sparse.values.name] = sparse_to_array(
            sparse, base_dir, label, f"the sparse initializer {sparse.values.name!r}")
    return consts


def too_large(label: str, what: str, elements=None) -> OnnxModelError:
    """The error for a tensor (or a node's result) too large to read or build."""
    size = "" if elements is None else f" of {elements} elements"
    return OnnxModelError(f"{label}: {what} is too large{size}; the reader refuses tensors of "
                          f"more than MAX_ELEMENTS = 2**28 = {MAX_ELEMENTS} elements")


def _declared_elements(dims) -> int:
    dims = [int(d) for d in dims]
    if any(d < 0 for d in dims):
        raise ValueError(f"negative dimensions {dims}")
    return math.prod(dims)


def _external_file(base_dir, tensor, label: str, what: str) -> tuple[str, int, int | None]:
    info = {entry.key: entry.value for entry in tensor.external_data}
    location = info.get("location", "")
    if base_dir is None:
        raise OnnxModelError(f"{label}: {what} (tensor {tensor.name!r}) keeps its data in the "
                             f"external file {location!r}; pass the path of the .onnx file so "
                             "that it can be found (external data is refused for a model given "
                             "as bytes or as an onnx.ModelProto)")
    root = os.path.realpath(base_dir)
    if "\0" in location:  # os.path would raise a bare "embedded null byte"
        raise OnnxModelError(f"{label}: {what} (tensor {tensor.name!r}) has an external data "
                             f"location with a null byte, {location!r}; refused")
    target = os.path.realpath(os.path.join(root, location))
    if (not location or os.path.isabs(location)
            or os.path.commonpath([root, target]) != root or target == root):
        raise OnnxModelError(f"{label}: {what} (tensor {tensor.name!r}) points to external data "
                             f"{location!r} outside the model's folder {root!r}; refused")
    if not os.path.isfile(target):
        raise OnnxModelError(f"{label}: the external data file {location!r} of {what} (tensor "
                             f"{tensor.name!r}) is missing")
    try:
        offset = int(info.get("offset", 0) or 0)
        length = info.get("length")
        length = None if length in (None, "") else int(length)
    except ValueError as error:
        raise OnnxModelError(f"{label}: {what} (tensor {tensor.name!r}) has a malformed external "
                             f"data offset or length: {error}") from error
    if offset < 0 or (length is not None and length < 0):
        raise OnnxModelError(f"{label}: {what} (tensor {tensor.name!r}) has a negative external "
                             "data offset or length")
    return target, offset, length


def tensor_to_array(tensor, base_dir, label: str, what: str | None = None) -> np.ndarray:
    """THE way the reader turns a ``TensorProto`` of the file into a writable NumPy array
    (initializers, ``Constant`` values, tensor attributes, sparse values and indices).

    External data is read only from a regular file inside the model's folder ``base_dir``
    (real paths compared, so a symbolic link leaving the folder is refused), never for a model
    given without a folder (``base_dir`` ``None``); a tensor of more than :data:`MAX_ELEMENTS`
    elements is refused. ``what`` names the tensor in messages."""
    what = what or f"the tensor {tensor.name!r}"
    try:
        elements = _declared_elements(tensor.dims)
    except ValueError as error:
        raise OnnxModelError(f"{label}: {what} is malformed: {error}") from error
    if elements > MAX_ELEMENTS:
        raise too_large(label, what, elements)
    if tensor.data_location == TensorProto.EXTERNAL or tensor.external_data:
        path, offset, length = _external_file(base_dir, tensor, label, what)
        try:
            itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize \
                if tensor.data_type not in (0, TensorProto.STRING) else 1
        except (KeyError, TypeError, ValueError) as error:
            raise OnnxModelError(f"{label}: {what} has the unknown data type "
                                 f"{tensor.data_type}; the file is invalid") from error
        if length is None:
            length = elements * itemsize
        if length > elements * max(itemsize, 1) + 16:
            raise OnnxModelError(f"{label}: {what} declares {length} bytes of external data for "
                                 f"{elements} elements; the file is invalid")
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(length)
        copy = TensorProto()
        copy.CopyFrom(tensor)
        del copy.external_data[:]
        copy.data_location = TensorProto.DEFAULT
        copy.raw_data = data
        tensor = copy
    try:
        array = numpy_helper.to_array(tensor)
    except MemoryError as error:
        raise too_large(label, what, elements) from error
    except Exception as error:
        raise OnnxModelError(f"{label}: {what} could not be read "
                             f"({type(error).__name__}: {error}); the file may be truncated or "
                             "corrupt") from error
    # a view of the protobuf's bytes is read-only, which torch warns about when it wraps it
    return array if array.flags.writeable else array.copy()


def sparse_to_array(sparse, base_dir, label: str, what: str | None = None) -> np.ndarray:
    """A ``SparseTensorProto`` densified, its values and indices read by
    :func:`tensor_to_array`; refused when the dense tensor would exceed :data:`MAX_ELEMENTS`."""
    what = what or f"the sparse tensor {sparse.values.name!r}"
    try:
        dims = tuple(int(d) for d in sparse.dims)
        elements = _declared_elements(dims)
    except ValueError as error:
        raise OnnxModelError(f"{label}: {what} is malformed: {error}") from error
    if elements > MAX_ELEMENTS:
        raise too_large(label, what, elements)
    values = tensor_to_array(sparse.values, base_dir, label, f"the values of {what}")
    indices = tensor_to_array(sparse.indices, base_dir, label, f"the indices of {what}")
    try:
        values = values.reshape(-1)
        if indices.ndim == 2 and indices.shape[1] == len(dims):
            if np.any(indices < 0) or np.any(indices >= np.asarray(dims)):
                raise ValueError("an index lies outside the dense shape")
            flat = np.ravel_multi_index(indices.T, dims) if dims else indices.reshape(-1)
        elif indices.ndim == 1:
            if np.any(indices < 0) or np.any(indices >= elements):
                raise ValueError("an index lies outside the dense shape")
            flat = indices
        else:
            raise ValueError(f"indices of shape {indices.shape} for a dense shape {dims}")
        if len(flat) != len(values):
            raise ValueError(f"{len(flat)} indices for {len(values)} values")
        dense = np.zeros(elements, dtype=values.dtype)
        dense[flat] = values
        return dense.reshape(dims)
    except MemoryError as error:
        raise too_large(label, what, elements) from error
    except Exception as error:
        raise OnnxModelError(f"{label}: {what} could not be read: {error}") from error
