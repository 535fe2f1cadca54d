"""The ONNX checker on every node: attribute types, unknown and missing attributes, the number
of inputs and outputs, each against the operator's schema for the model's opset.

``onnx.checker.check_model`` on the whole file is not used, for two reasons:

* it resolves the external data of tensors against the process's working folder when the model
  came from bytes or a ``ModelProto`` (a model could probe files next to the user); the reader
  resolves external data itself, confined to the model's folder (:mod:`.loading`), and gives the
  checker scalar placeholders instead;
* it requires a shape on every graph input and output, which the ONNX IR leaves optional
  (an output's shape is often open), and which the reader does not need.

Operators the schema registry does not know (custom domains, misspelt op types) are left to the
translation, which reports them as unsupported, naming the supported ones.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, checker, helper

from .loading import OnnxModelError
from .nodes import NodeView

__all__ = ["check_nodes"]

_DEFAULT_DOMAINS = ("", "ai.onnx")


def check_nodes(model, label: str) -> None:
    """Raise :class:`OnnxModelError` naming the first node the ONNX checker refuses."""
    context = checker.C.CheckerContext()
    context.ir_version = model.ir_version
    context.opset_imports = {("" if e.domain in _DEFAULT_DOMAINS else e.domain): e.version
                             for e in model.opset_import}
    for index, node in enumerate(model.graph.node):
        domain = "" if node.domain in _DEFAULT_DOMAINS else node.domain
        if domain or not onnx.defs.has(node.op_type):
            continue  # not a standard operator: the translation says it is unsupported
        if any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for a in node.attribute):
            continue  # control flow (If, Loop, Scan): unsupported, reported by the translation
        try:
            checker.check_node(_without_external_data(node), context)
        except checker.ValidationError as error:
            message = str(error).strip().splitlines()[0]
            raise OnnxModelError(f"{label}: node {NodeView(node, index).label} "
                                 f"({node.op_type}) is invalid: {message}") from None


def _without_external_data(node):
    """``node``, or a copy whose tensor attributes stored as external data are scalar
    placeholders of the same type (the reader reads and checks that data itself)."""
    if not any(_external(t) for a in node.attribute for t in _tensors(a)):
        return node
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    for attribute in copy.attribute:
        if attribute.type == AttributeProto.TENSOR and _external(attribute.t):
            attribute.t.CopyFrom(_placeholder(attribute.t))
        elif attribute.type == AttributeProto.TENSORS:
            for tensor in attribute.tensors:
                if _external(tensor):
                    tensor.CopyFrom(_placeholder(tensor))
        elif attribute.type == AttributeProto.SPARSE_TENSOR:
            for part in (attribute.sparse_tensor.values, attribute.sparse_tensor.indices):
                if _external(part):
                    part.CopyFrom(_placeholder(part))
    return copy


def _tensors(attribute):
    if attribute.type == AttributeProto.TENSOR:
        return [attribute.t]
    if attribute.type == AttributeProto.TENSORS:
        return list(attribute.tensors)
    if attribute.type == AttributeProto.SPARSE_TENSOR:
        return [attribute.sparse_tensor.values, attribute.sparse_tensor.indices]
    return []


def _external(tensor) -> bool:
    return tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data) > 0


def _placeholder(tensor):
    placeholder = TensorProto(name=tensor.name, data_type=tensor.data_type)
    placeholder.dims.extend([1] * len(tensor.dims))
    if tensor.data_type == TensorProto.STRING:
        placeholder.string_data.append(b"")
        return placeholder
    try:
        size = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    except (KeyError, TypeError, ValueError):
        size = 1  # an invalid type: the checker names it
    placeholder.raw_data = bytes(size)
    return placeholder
