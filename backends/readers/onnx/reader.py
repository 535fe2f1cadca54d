"""Read an ONNX model into an lrp_core graph, without running it.

    import lrp_core as lrp
    graph = lrp.from_onnx("model.onnx")          # or an onnx.ModelProto
    expl = lrp.LRP("model.onnx", lrp.EpsilonPlusFlat())(x)

The graph is read with the ``onnx`` package; nothing is executed (constant subgraphs, such as
the ``Shape -> Gather -> Unsqueeze -> Concat`` that feeds a ``Reshape``, are folded with NumPy).
Weights come out as NumPy arrays, so the core converts them to the namespace of the data (NumPy,
torch, CuPy). The leading dimension is the batch: a graph exported for a batch of 1 explains a
batch of N. Each operator's translation lives in one of the ``ops_*`` modules of
:mod:`lrp_core.backends.readers.onnx` (merged in its ``translations``); after translation a
constant ``Add``/``Mul``/``Sub``/``Div`` that follows a Dense or Conv is folded into its bias and
weight, consecutive constant scale-and-shifts merge, and a zero ``Pad`` before a Conv or an
average pooling becomes their padding (its ``postpass``).

Errors: :class:`lrp_core.UnsupportedOperatorError` names the node, its op type and the
supported operators; :class:`OnnxModelError` (an :class:`lrp_core.LRPError` and a
``ValueError``) names a file that is not ONNX, is truncated, or whose external data lies outside
its folder; a missing file raises ``FileNotFoundError``.
"""

from __future__ import annotations

import numpy as np

from lrp_core.graph import Graph

from .checking import check_nodes
from .loading import OnnxModelError, check_structure, load_model, too_large
from .postpass import build_graph
from .translator import Translator

__all__ = ["from_onnx", "model_input_shape"]


def from_onnx(path_or_model, *, input_shape=None, output: str | None = None) -> Graph:
    """The lrp_core graph of an ONNX model (a path to a ``.onnx`` file or an ``onnx.ModelProto``).

    ``input_shape``: the per-sample input shape (without the batch axis), needed only when the
    graph leaves some of its input's non-batch dimensions open and an operator depends on them.
    ``output``: the name of the graph output to explain when the graph has several.
    The model is read, never run, and never modified.
    """
    model, base_dir, label = load_model(path_or_model)
    try:
        check_structure(model, label)
        check_nodes(model, label)
        translator = Translator(model, label, base_dir, input_shape=input_shape, output=output)
        output_value = translator.run()
        graph = build_graph(translator.builder.nodes, translator.shapes, output_value)
        _freeze(graph)
        return graph.with_input_shape(translator.declared_input)
    except MemoryError as error:  # what the size checks did not foresee
        raise too_large(label, "a tensor of the model") from error


def _freeze(graph: Graph) -> None:
    """Make the graph's arrays read-only: they are the reader's own, nothing writes into them,
    and an analyzer needs no private copy of a read-only array (see ``lrp_core.analyzer``)."""
    layers = list(graph)
    while layers:
        layer = layers.pop()
        for name in layer._arrays:
            value = getattr(layer, name, None)
            if isinstance(value, np.ndarray):
                value.flags.writeable = False
        if getattr(layer, "activation", None) is not None:
            layers.append(layer.activation)


def model_input_shape(path_or_model) -> tuple:
    """The declared shape of the model's input, batch axis included (``None`` where it is open)."""
    model, _, label = load_model(path_or_model)
    initializers = {init.name for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    if not inputs:
        raise OnnxModelError(f"{label}: the graph declares no input")
    dims = inputs[0].type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                 for d in dims)
