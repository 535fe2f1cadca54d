"""Reading a ``torch.nn.Module`` into an lrp-core graph, with ``torch.fx``.

``from_torch(module)`` traces ``module`` symbolically (through a small wrapper module that holds
it, so the module itself is never traced as the root, patched or given attributes) and
translates every node the output depends on into an lrp-core layer:

* **modules** (leaf modules of ``torch.nn``): Linear, Conv1-3d, ConvTranspose1-3d, MaxPool1-3d,
  AvgPool1-3d, AdaptiveAvgPool1-3d, AdaptiveMaxPool1-3d, Flatten, Unflatten, Dropout (all kinds),
  Identity, BatchNorm1-3d (and SyncBatchNorm), LayerNorm, ReLU, ReLU6, Hardtanh(0, 6), LeakyReLU,
  GELU, SiLU, ELU, Tanh, Sigmoid, Softmax; Sequential and any other container are traced through.
* **functions and tensor methods**: ``F.relu``/``torch.relu``/``x.relu()`` and their in-place
  forms, the other activations, ``torch.flatten``/``x.flatten``, ``x.view``/``x.reshape``/
  ``torch.reshape`` with ``x.size(0)``/``x.shape[0]`` (or ``-1``) as the batch size,
  ``x.contiguous()``, ``+``/``+=``/``torch.add``/``x.add(_)`` of two tensors, ``torch.cat``,
  ``F.max_pool*``, ``F.avg_pool*``, ``F.adaptive_avg_pool*``, ``F.adaptive_max_pool*``,
  ``F.dropout*``, ``x.mean(dim=(2, 3))`` (all spatial axes), and ``F.linear``/``F.conv*``/
  ``F.conv_transpose*``/``F.batch_norm``/``F.layer_norm`` on the module's own parameters.

This module traces the model and walks the fx graph; the translations of single modules,
functions and tensor methods are in :mod:`lrp_core.backends.readers.torch.ops`.

Semantics:

* A module called twice becomes two graph nodes sharing one layer. Node names are the module's
  qualified name (``"features.0"``; a second call is ``"features.0@1"``, fx's own convention) or,
  for a function or method, the fx node's name (``"add_3"``).
* Inference semantics whatever the training flag: BatchNorm reads its running statistics,
  Dropout is the identity. The module is not put in eval mode; a ``forward`` that branches on
  ``self.training`` is traced along the branch of its current flag.
* In-place operations (``x.relu_()``, ``F.relu(x, inplace=True)``, ``nn.ReLU(inplace=True)``,
  ``x.add_(y)``) rebind every name of the mutated tensor, as eager execution does. fx itself
  traces ``a += b`` as ``a + b`` (a new tensor), so an alias of ``a`` taken before ``+=`` keeps the
  old value; views of a mutated tensor are not tracked either.
* Weights stay torch tensors on their device: ``parameter.detach()`` (a view, never a copy, and
  nothing is ever written into it). Build a new analyzer after changing the weights: an analyzer
  caches the rules' modified weights.
* Hooks registered on the module are not part of ``forward`` and are neither run nor modified
  (a warning names the modules that have forward hooks).

A node that has no translation raises :class:`lrp_core.UnsupportedOperatorError` naming the fx
node, its target and the line of the user's code that called it. Dead code (results the output
does not depend on) is never translated. A model ``torch.fx`` cannot trace raises
:class:`UntraceableModelError` (an :class:`lrp_core.LRPError`) that says what to do.
"""

from __future__ import annotations

import operator
import os
import re
import warnings

import torch
import torch.fx as fx
import torch.nn as nn

import lrp_core as lrp
from lrp_core.errors import LRPError, UnsupportedOperatorError

from .ops import (_FUNCTIONS, _METHODS, _Failed, _fail, _module_layer, _Op, _Propagated, _short, _Tensor,
                        _tensor, _Unsupported)

__all__ = ["from_torch", "UntraceableModelError"]

_TORCH_DIR = os.path.dirname(torch.__file__)
_THIS_FILE = os.path.abspath(__file__)  # holds the wrapper's forward(): not the user's code
_ROOT = "model"  # the wrapper's attribute holding the user's module


class UntraceableModelError(LRPError, TypeError):
    """``torch.fx`` could not trace the model; the message says why and what to do."""


# ---------------------------------------------------------------------------------------------
# tracing


class _Wrapper(nn.Module):
    """Holds the user's module as its only child, so that the module is traced as a call."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.model = module

    def forward(self, x):
        return self.model(x)


class _Tracer(fx.Tracer):
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
           "lrp.from_torch(model, leaf_modules={MyBlock: lambda m: lrp.Chain(...)}); or build the "
           "graph by hand (lrp.Chain / lrp.Graph with the module's weights); or export the model "
           "to ONNX (torch.onnx.export) and explain the .onnx file with lrp.LRP(path).")


def _trace(module: nn.Module, leaf_types: tuple) -> tuple[fx.Graph, _Wrapper]:
    wrapper = _Wrapper(module)
    tracer = _Tracer(leaf_types)
    try:
        graph = tracer.trace(wrapper)
    except Exception as error:  # fx raises TraceError, TypeError, AttributeError, ... alike
        raise UntraceableModelError(
            f"torch.fx cannot trace {type(module).__name__}: {type(error).__name__}: {error}\n"
            f"(lrp.from_torch reads a model by symbolic tracing: data-dependent control flow, "
            f"len() or int() of a tensor, or a forward() with more than one input cannot be "
            f"traced.)\n{_ADVICE}") from error
    return graph, wrapper


def _warn_about_hooks(module: nn.Module) -> None:
    hooked = [name or type(module).__name__ for name, m in module.named_modules()
              if m._forward_hooks or m._forward_pre_hooks]
    if hooked:
        warnings.warn(f"lrp.from_torch reads forward() only; the forward hooks of {', '.join(hooked[:5])}"
                      f"{' ...' if len(hooked) > 5 else ''} are not part of the explained graph", stacklevel=3)


# ---------------------------------------------------------------------------------------------
# naming a node in messages


def _qualname(fn) -> str:
    if fn in _OPERATOR_NAMES:
        return _OPERATOR_NAMES[fn]
    module = getattr(fn, "__module__", None) or "torch"
    name = getattr(fn, "__name__", None) or repr(fn)
    if module.startswith("torch._C._nn") or module == "torch.nn.functional":
        module = "torch.nn.functional"
    elif module.startswith("torch._C") or module.startswith("torch._VariableFunctions"):
        module = "torch"
    return f"{module}.{name}"


_OPERATOR_NAMES = {operator.add: "operator.add (+)", operator.iadd: "operator.iadd (+=)",
                   operator.sub: "operator.sub (-)", operator.mul: "operator.mul (*)",
                   operator.truediv: "operator.truediv (/)", operator.matmul: "operator.matmul (@)",
                   operator.getitem: "operator.getitem ([])", getattr: "getattr"}


def _location(node: fx.Node) -> str:
    """Where in the user's code the node was created: ``file:line in func: `code```."""
    trace = node.meta.get("stack_trace") or ""
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)\n\s*(.*)', trace)
    for filename, line, func, code in reversed(frames):
        path = os.path.abspath(filename)
        if path.startswith(_TORCH_DIR) or path == _THIS_FILE:
            continue
        return f"{filename}:{line} in {func}: `{code.strip()}`"
    stack = node.meta.get("nn_module_stack") or {}
    if stack:
        path, kind = list(stack.values())[-1]
        return f"inside module '{_strip(path)}' ({getattr(kind, '__name__', kind)})"
    return "at an unknown place (no stack trace recorded)"


def _strip(qualified: str) -> str:
    """A qualified name relative to the user's module (the wrapper's prefix removed)."""
    if qualified == _ROOT:
        return ""
    return qualified[len(_ROOT) + 1:] if qualified.startswith(_ROOT + ".") else qualified


# ---------------------------------------------------------------------------------------------
# the walk over the fx graph


class _Reader:
    def __init__(self, graph: fx.Graph, wrapper: _Wrapper, custom: dict):
        self.graph = graph
        self.wrapper = wrapper
        self.custom = custom
        self.modules = dict(wrapper.named_modules())
        self.env: dict[fx.Node, object] = {}
        self.names: dict[int, list] = {}  # id(value) -> the fx nodes bound to it
        self.calls: dict[str, int] = {}
        self.shared: dict[str, lrp.Layer] = {}
        self.input = None

    # -- driving ---------------------------------------------------------------------------------
    def read(self) -> lrp.Graph:
        output = None
        for node in self.graph.nodes:
            if node.op == "output":
                output = node
                break
            try:
                value, mutated = self._translate(node)
            except _Unsupported as problem:
                value, mutated = _Failed(self._error(node, str(problem))), self._mutated_input(node)
            except _Propagated as failure:
                value, mutated = _Failed(failure.error), self._mutated_input(node)
            self._bind(node, value)
            if mutated is not None:
                self._rebind(mutated, value)
        return self._finish(output)

    def _finish(self, output: fx.Node) -> lrp.Graph:
        result = output.args[0]
        if not isinstance(result, fx.Node):
            raise UnsupportedOperatorError(
                f"the model returns a {type(result).__name__}; lrp.from_torch explains a model with one "
                "output tensor (return the logits)")
        value = self.env[result]
        if isinstance(value, _Failed):
            raise value.error
        if not isinstance(value, _Tensor):
            raise UnsupportedOperatorError(f"the model output is {_short(value)}, not a tensor computed "
                                           "from the input")
        if value.symbol is self.input.symbol:
            raise LRPError("the model returns its input unchanged: there is nothing to explain")
        return lrp.Graph(self.input.symbol, value.symbol)

    def _error(self, node: fx.Node, reason: str) -> UnsupportedOperatorError:
        if node.op == "call_module":
            module = self.modules.get(node.target)
            what = f"call_module '{_strip(node.target)}' ({type(module).__name__})"
        elif node.op == "call_function":
            what = f"call_function {_qualname(node.target)}"
        elif node.op == "call_method":
            what = f"call_method Tensor.{node.target}"
        else:
            what = f"{node.op} {node.target}"
        return UnsupportedOperatorError(
            f"cannot translate fx node '{node.name}' ({what}), called at {_location(node)}: {reason}")

    def _bind(self, node: fx.Node, value) -> None:
        self.env[node] = value
        self.names.setdefault(id(value), []).append(node)

    def _rebind(self, mutated: fx.Node, value) -> None:
        """An in-place operation changed the tensor of ``mutated``: every name bound to that
        tensor now holds ``value``."""
        old = self.env.get(mutated)
        if old is None or old is value:
            return
        for node in self.names.pop(id(old), []):
            self._bind(node, value)

    def _mutated_input(self, node: fx.Node):
        """The fx node an in-place operation writes into, or ``None``."""
        first = node.args[0] if node.args else None
        if not isinstance(first, fx.Node):
            return None
        if node.op == "call_method" and node.target.endswith("_") and not node.target.startswith("_"):
            return first
        if node.op == "call_function":
            if node.target is operator.iadd or node.kwargs.get("inplace") is True:
                return first
            name = getattr(node.target, "__name__", "")
            if name.endswith("_") and not name.startswith("_"):
                return first
        if node.op == "call_module" and getattr(self.modules.get(node.target), "inplace", False) is True:
            return first
        return None

    def _add(self, layer, inputs, name, rank):
        symbols = tuple(t.symbol for t in inputs)
        builder = symbols[0].builder
        return _Tensor(builder.call(layer, symbols, name=name or None), rank)

    def _value(self, arg):
        """An fx argument with nodes replaced by their translated values (recursively)."""
        if isinstance(arg, fx.Node):
            value = self.env[arg]
            if isinstance(value, _Failed):
                raise _Propagated(value.error)
            return value
        if isinstance(arg, (list, tuple)):
            return type(arg)(self._value(a) for a in arg) if not isinstance(arg, torch.Size) else tuple(arg)
        if isinstance(arg, dict):
            return {k: self._value(v) for k, v in arg.items()}
        if isinstance(arg, slice):
            return slice(self._value(arg.start), self._value(arg.stop), self._value(arg.step))
        return arg

    # -- one node --------------------------------------------------------------------------------
    def _translate(self, node: fx.Node):
        """``(value, mutated_node_or_None)`` for one fx node."""
        if node.op == "placeholder":  # the wrapper's forward(x): exactly one
            self.input = _Tensor(lrp.Input(), None)
            return self.input, None
        if node.op == "get_attr":
            return self._get_attr(node.target), None
        args = self._value(node.args)
        kwargs = self._value(node.kwargs)
        if node.op == "call_module":
            return self._call_module(node, args, kwargs)
        if node.op == "call_function":
            return self._call_function(node, args, kwargs)
        if node.op == "call_method":
            return self._call_method(node, args, kwargs)
        _fail(f"unknown fx node kind {node.op}")

    def _get_attr(self, target: str):
        value = self.wrapper
        for part in target.split("."):
            value = getattr(value, part)
        if isinstance(value, torch.Tensor):
            return value.detach()
        return value

    def _module_name(self, node: fx.Node) -> str:
        name = _strip(node.target)
        count = self.calls.get(name, 0)
        self.calls[name] = count + 1
        return name if count == 0 else f"{name}@{count}"

    def _call_module(self, node, args, kwargs):
        module = self.modules[node.target]
        name = self._module_name(node)
        if not args:
            _fail("the module is called without a tensor argument")
        x = _tensor(args[0])
        if len(args) > 1 or kwargs:
            _fail(f"{type(module).__name__} is called with extra arguments ({len(args) - 1} positional, "
                  f"{sorted(kwargs)}); only module(x) is supported")
        for kind, translate in self.custom.items():
            if isinstance(module, kind):
                layer = translate(module)
                if not isinstance(layer, lrp.Layer):
                    raise TypeError(f"leaf_modules[{kind.__name__}] must return an lrp_core layer or graph, "
                                    f"got {layer!r}")
                return self._add(layer, (x,), name, None), None
        try:
            layer, rank = _module_layer(module, x)
        except (TypeError, ValueError) as error:
            _fail(f"{type(module).__name__} could not be translated: {error}")
        layer = self.shared.setdefault(node.target, layer)  # a module called twice: one layer
        inplace = getattr(module, "inplace", False) is True
        return self._add(layer, (x,), name, rank), (node.args[0] if inplace else None)

    def _call_function(self, node, args, kwargs):
        target = node.target
        translate = _FUNCTIONS.get(target)
        if translate is None:
            _fail(f"{_qualname(target)} has no translation")
        return self._apply(node, translate, args, kwargs)

    def _call_method(self, node, args, kwargs):
        translate = _METHODS.get(node.target)
        if translate is None:
            _fail(f"Tensor.{node.target} has no translation")
        return self._apply(node, translate, args, kwargs)

    def _apply(self, node, translate, args, kwargs):
        try:
            result = translate(*args, **kwargs)
        except (TypeError, ValueError) as error:
            if isinstance(error, LRPError):
                raise
            _fail(f"unexpected arguments: {error}")
        if isinstance(result, _Op):
            inputs = [_tensor(t) for t in result.inputs]
            if result.layer is None:
                value = inputs[0]
            else:
                value = self._add(result.layer, inputs, node.name, result.rank)
            mutated = node.args[0] if result.inplace and isinstance(node.args[0], fx.Node) else None
            return value, mutated
        return result, None


# ---------------------------------------------------------------------------------------------
# the entry point


def from_torch(module: nn.Module, *, leaf_modules: dict | None = None) -> lrp.Graph:
    """The lrp-core graph of ``module`` (traced with torch.fx; the module is not modified).

    ``leaf_modules``: ``{ModuleType: translate}`` for modules to treat as one unit instead of
    tracing through them (parts fx cannot trace, or layers without a built-in translation);
    ``translate(module)`` returns an lrp-core layer or graph.

    Raises :class:`UntraceableModelError` when fx cannot trace the model and
    :class:`lrp_core.UnsupportedOperatorError` for a call with no translation.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"from_torch reads a torch.nn.Module, got {type(module).__name__}")
    custom = dict(leaf_modules or {})
    for kind, translate in custom.items():
        if not (isinstance(kind, type) and issubclass(kind, nn.Module)) or not callable(translate):
            raise TypeError("leaf_modules maps nn.Module subclasses to functions module -> lrp layer, "
                            f"got {kind!r}: {translate!r}")
    _warn_about_hooks(module)
    graph, wrapper = _trace(module, tuple(custom))
    return _Reader(graph, wrapper, custom).read()

