"""Tracing a ``torch.nn.Module`` with ``torch.fx`` without modifying it.

:func:`trace` traces a small :class:`Wrapper` that holds the user's module as its only child, so
the module itself is never traced as the root, patched or given attributes; the
:class:`Tracer` skips hooks (it calls ``forward`` directly) and records stack traces for error
locations. A model fx cannot trace raises :class:`UntraceableModelError`, which says what to do.
:func:`warn_about_hooks` names the modules whose forward hooks the graph leaves out.
"""

from __future__ import annotations

import os
import warnings

import torch.fx as fx
import torch.nn as nn

from lrp_core.errors import LRPError

__all__ = ["UntraceableModelError", "Wrapper", "Tracer", "trace", "warn_about_hooks",
           "relative_name", "ROOT", "WRAPPER_FILE"]

ROOT = "model"  # the wrapper's attribute holding the user's module
WRAPPER_FILE = os.path.abspath(__file__)  # holds the wrapper's forward(): not the user's code


class UntraceableModelError(LRPError, TypeError):
    """``torch.fx`` could not trace the model; the message says why and what to do."""


class Wrapper(nn.Module):
    """Holds the user's module as its only child, so that the module is traced as a call."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.model = module

    def forward(self, x):
        return self.model(x)


class Tracer(fx.Tracer):
    """fx's tracer, with: no autowrapping of the user's globals, recorded stack traces, the
    caller's leaf modules, and module calls that skip hooks (``forward`` is called directly)."""

    def __init__(self, leaf_types: tuple):
        super().__init__(autowrap_modules=(), autowrap_functions=())
        self.record_stack_traces = True
        self._leaf_types = leaf_types

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if self._leaf_types and isinstance(m, self._leaf_types):
            return True
        return super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m, forward, args, kwargs):
        return super().call_module(m, lambda *a, **k: m.forward(*a, **k), args, kwargs)


_ADVICE = ("What to do: make the untraceable part a leaf module and translate it yourself, "
           "lrp.from_torch(model, leaf_modules={MyBlock: lambda m: lrp.Chain(...)}); or build "
           "the graph by hand (lrp.Chain / lrp.Graph with the module's weights); or export the "
           "model to ONNX (torch.onnx.export) and explain the .onnx file with lrp.LRP(path).")


def trace(module: nn.Module, leaf_types: tuple) -> tuple[fx.Graph, Wrapper]:
    """The fx graph of a :class:`Wrapper` around ``module``, and the wrapper."""
    wrapper = Wrapper(module)
    tracer = Tracer(leaf_types)
    try:
        graph = tracer.trace(wrapper)
    except Exception as error:  # fx raises TraceError, TypeError, AttributeError, ... alike
        raise UntraceableModelError(
            f"torch.fx cannot trace {type(module).__name__}: {type(error).__name__}: {error}\n"
            f"(lrp.from_torch reads a model by symbolic tracing: data-dependent control flow, "
            f"len() or int() of a tensor, or a forward() with more than one input cannot be "
            f"traced.)\n{_ADVICE}") from error
    return graph, wrapper


def warn_about_hooks(module: nn.Module) -> None:
    """Warn (at the caller of ``from_torch``) about modules with forward hooks."""
    hooked = [name or type(module).__name__ for name, m in module.named_modules()
              if m._forward_hooks or m._forward_pre_hooks]
    if hooked:
        warnings.warn(f"lrp.from_torch reads forward() only; the forward hooks of "
                      f"{', '.join(hooked[:5])}{' ...' if len(hooked) > 5 else ''} are not part "
                      "of the explained graph", stacklevel=3)


def relative_name(qualified: str) -> str:
    """A qualified name of the wrapper relative to the user's module (the prefix removed)."""
    if qualified == ROOT:
        return ""
    return qualified[len(ROOT) + 1:] if qualified.startswith(ROOT + ".") else qualified
