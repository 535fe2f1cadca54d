"""Turning whatever the user passes as a model into an lrp-core :class:`~lrp_core.Graph`.

Model readers live in ``backends/`` and are imported lazily, by name, only when a model of
their framework arrives: importing :mod:`lrp_core` imports neither torch nor onnx.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings

from .graph import Chain, Graph
from .layers import Layer

__all__ = ["as_graph", "from_torch", "from_onnx", "onnx_input_shape"]


def _reader(module: str, extra: str):
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"reading this model needs {error.name or module}: "
                          f"pip install 'lrp-core[{extra}]'") from error


def _behaves_differently_in_training(module) -> bool:
    """Dropout (random in training) and BatchNorm-like layers (batch statistics in training)."""
    name = type(module).__name__
    return "Dropout" in name or hasattr(module, "running_mean") or hasattr(module, "running_var")


def _warn_if_training(module) -> None:
    """One ``UserWarning`` naming the modules in training mode whose output depends on it
    (dropout, BatchNorm): the graph is what ``module.eval()`` computes (dropout skipped,
    BatchNorm on its running statistics). A model in training mode without such modules (a
    freshly built one) reads the same in both modes and is not warned about."""
    named = getattr(module, "named_modules", None)
    if named is None:
        return
    training = [f"{name} ({type(m).__name__})" if name else type(m).__name__
                for name, m in named()
                if getattr(m, "training", False) and _behaves_differently_in_training(m)]
    if not training:
        return
    shown = ", ".join(training[:8]) + (f", ... ({len(training)} in all)"
                                       if len(training) > 8 else "")
    warnings.warn(f"the model is in training mode ({shown}); LRP explains it as in model.eval(): "
                  "dropout is skipped and BatchNorm uses its running statistics. Call "
                  "model.eval() first to silence this warning", UserWarning,
                  stacklevel=_caller_level())


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside lrp_core (the user's call)."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def from_torch(module, **options) -> Graph:
    """The graph of a ``torch.nn.Module`` (traced with torch.fx; the module is not modified).

    The graph computes what ``module.eval()`` computes (dropout skipped, BatchNorm on its
    running statistics); a module in training mode is read so, with a ``UserWarning``."""
    _warn_if_training(module)
    return _reader("lrp_core.backends.readers.torch", "torch").from_torch(module, **options)


def from_onnx(path_or_model, **options) -> Graph:
    """The graph of an ONNX model (a path or an ``onnx.ModelProto``), read without running it."""
    return _reader("lrp_core.backends.readers.onnx", "onnx").from_onnx(path_or_model, **options)


def onnx_input_shape(path_or_model) -> tuple:
    """The declared input shape of an ONNX model, batch axis included (``None`` where open)."""
    return _reader("lrp_core.backends.readers.onnx", "onnx").model_input_shape(path_or_model)


def as_graph(model) -> Graph:
    """``model`` as a graph: a graph, a layer, a torch module, an ONNX model or a path."""
    if isinstance(model, Graph):
        return model
    if isinstance(model, Layer):
        return Chain(model)
    if isinstance(model, (str, os.PathLike)):
        return from_onnx(model)
    root = type(model).__module__.split(".")[0]
    if root == "torch":
        return from_torch(model)
    if root == "onnx":
        return from_onnx(model)
    if any(c.__module__.split(".")[0] == "torch" for c in type(model).__mro__):
        return from_torch(model)
    raise TypeError(f"cannot explain a {type(model).__name__}: pass an lrp_core graph "
                    "(lrp.Chain(...)), a torch.nn.Module, an onnx.ModelProto or a path to a "
                    ".onnx file")
