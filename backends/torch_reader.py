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
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

import lrp_core as lrp
from lrp_core.errors import LRPError, UnsupportedOperatorError

__all__ = ["from_torch", "UntraceableModelError"]

_TORCH_DIR = os.path.dirname(torch.__file__)
_THIS_FILE = os.path.abspath(__file__)
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
# values of the translation environment


@dataclass(eq=False)
class _Tensor:
    """A tensor of the lrp graph: its symbol and its rank (``None`` when unknown)."""

    symbol: object
    rank: int | None = None


@dataclass(eq=False)
class _Size:
    """``x.size()`` / ``x.shape``."""

    of: _Tensor


@dataclass(eq=False)
class _Dim:
    """``x.size(i)`` / ``x.shape[i]``: a size known only at run time (``i == 0``: the batch)."""

    of: _Tensor
    index: int

    @property
    def is_batch(self) -> bool:
        return self.index == 0


@dataclass(eq=False)
class _Failed:
    """A node that could not be translated; raised only when something live consumes it."""

    error: UnsupportedOperatorError


class _Unsupported(Exception):
    """Raised by a translator; turned into an UnsupportedOperatorError naming the node."""


class _Propagated(Exception):
    """A node consumed an untranslatable value: it fails with that value's error."""

    def __init__(self, error: UnsupportedOperatorError):
        super().__init__(str(error))
        self.error = error


def _fail(reason: str):
    raise _Unsupported(reason)


# ---------------------------------------------------------------------------------------------
# helpers


def _param(value):
    """A parameter or buffer as the tensor the graph keeps: detached, never copied."""
    if value is None:
        return None
    if isinstance(value, nn.parameter.UninitializedParameter) or \
            isinstance(value, nn.parameter.UninitializedBuffer):
        _fail("the module has uninitialized (lazy) parameters: run one forward pass first")
    if not isinstance(value, torch.Tensor):
        _fail(f"expected a tensor parameter, got {type(value).__name__}")
    return value.detach()


def _tensor(value, what="input") -> _Tensor:
    if isinstance(value, _Failed):
        raise _Propagated(value.error)
    if not isinstance(value, _Tensor):
        _fail(f"its {what} must be a tensor computed from the model input, got {_short(value)}")
    return value


def _short(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a constant tensor of shape {tuple(value.shape)}"
    if isinstance(value, (_Size, _Dim)):
        return "a tensor size"
    return repr(value)


def _ints(value, name) -> tuple[int, ...] | int:
    if isinstance(value, (list, tuple)):
        if not all(isinstance(v, int) for v in value):
            _fail(f"{name} must be constant ints, got {_short(value)}")
        return tuple(value)
    if not isinstance(value, int):
        _fail(f"{name} must be a constant int, got {_short(value)}")
    return value


def _all_ones(size) -> bool:
    return all(s == 1 for s in size) if isinstance(size, (tuple, list)) else size == 1


def _spatial_from_module(m: nn.Module) -> int | None:
    name = type(m).__name__
    match = re.search(r"([123])d$", name)
    return int(match.group(1)) if match else None


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
# the translation


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
        return _Tensor(builder.add(layer, symbols, name=name or None), rank)

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


@dataclass
class _Op:
    """A translator's result: ``layer`` (``None``: the identity) applied to ``inputs``."""

    layer: object
    inputs: tuple
    rank: int | None = None
    inplace: bool = False


# ---------------------------------------------------------------------------------------------
# modules


def _module_layer(m: nn.Module, x: _Tensor):
    """``(layer or None for the identity, output rank)`` for a leaf module of torch.nn."""
    rank = x.rank
    d = _spatial_from_module(m)
    if isinstance(m, nn.Linear):
        return lrp.Dense(_param(m.weight), _param(m.bias)), rank
    if isinstance(m, nn.modules.conv._ConvTransposeNd):
        _zeros_padding(m)
        return lrp.ConvTranspose(_param(m.weight), _param(m.bias), stride=m.stride, padding=m.padding,
                                 output_padding=m.output_padding, dilation=m.dilation,
                                 groups=m.groups), d + 2
    if isinstance(m, nn.modules.conv._ConvNd):
        _zeros_padding(m)
        return lrp.Conv(_param(m.weight), _param(m.bias), stride=m.stride, padding=m.padding,
                        dilation=m.dilation, groups=m.groups), d + 2
    if isinstance(m, nn.modules.pooling._MaxPoolNd):
        if m.return_indices:
            _fail("return_indices=True is not supported")
        return lrp.MaxPool(m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode), d + 2
    if isinstance(m, nn.modules.pooling._AvgPoolNd):
        if getattr(m, "divisor_override", None) is not None:
            _fail("divisor_override is not supported")
        return lrp.AvgPool(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad), d + 2
    if isinstance(m, nn.modules.pooling._AdaptiveAvgPoolNd):
        if _all_ones(m.output_size):
            return lrp.GlobalAvgPool(keepdims=True), d + 2
        return lrp.AdaptiveAvgPool(m.output_size), d + 2
    if isinstance(m, nn.modules.pooling._AdaptiveMaxPoolNd):
        if m.return_indices:
            _fail("return_indices=True is not supported")
        if _all_ones(m.output_size):
            return lrp.GlobalMaxPool(keepdims=True), d + 2
        return lrp.AdaptiveMaxPool(m.output_size), d + 2
    if isinstance(m, nn.Flatten):
        return _flatten(x, m.start_dim, m.end_dim)
    if isinstance(m, nn.Unflatten):
        return _unflatten(x, m.dim, m.unflattened_size)
    if isinstance(m, nn.modules.dropout._DropoutNd):
        return lrp.Dropout(m.p), rank
    if isinstance(m, nn.Identity):
        return lrp.Identity(), rank
    if isinstance(m, nn.modules.batchnorm._NormBase):
        if isinstance(m, nn.modules.instancenorm._InstanceNorm):
            _fail("InstanceNorm normalises with the statistics of each sample; it is not supported")
        if m.running_mean is None or m.running_var is None:
            _fail("this BatchNorm has track_running_stats=False: it normalises with batch statistics "
                  "even at inference, which LRP cannot explain")
        rank = {2: 4, 3: 5}.get(d, rank) if d != 1 else rank
        return lrp.BatchNorm(_param(m.weight), _param(m.bias), _param(m.running_mean),
                             _param(m.running_var), m.eps), rank
    if isinstance(m, nn.LayerNorm):
        return lrp.LayerNorm(m.normalized_shape, _param(m.weight), _param(getattr(m, "bias", None)),
                             m.eps), rank
    layer = _activation_module(m)
    if layer is not None:
        return layer, rank
    _fail(f"no translation for module type {type(m).__module__}.{type(m).__name__}; mark it with "
          f"lrp.from_torch(model, leaf_modules={{{type(m).__name__}: lambda m: <lrp layer>}}) to translate it yourself")


def _zeros_padding(m) -> None:
    if m.padding_mode != "zeros":
        _fail(f"padding_mode={m.padding_mode!r} is not supported (only 'zeros')")


def _activation_module(m):
    if isinstance(m, nn.ReLU):
        return lrp.ReLU()
    if isinstance(m, nn.ReLU6):
        return lrp.ReLU6()
    if isinstance(m, nn.Hardtanh):
        return _hardtanh(m.min_val, m.max_val)
    if isinstance(m, nn.LeakyReLU):
        return lrp.LeakyReLU(m.negative_slope)
    if isinstance(m, nn.GELU):
        return lrp.GELU(m.approximate)
    if isinstance(m, nn.SiLU):
        return lrp.SiLU()
    if isinstance(m, nn.ELU):
        return lrp.ELU(m.alpha)
    if isinstance(m, nn.Tanh):
        return lrp.Tanh()
    if isinstance(m, nn.Sigmoid):
        return lrp.Sigmoid()
    if isinstance(m, nn.Softmax):
        return lrp.Softmax(1 if m.dim is None else m.dim)
    return None


def _hardtanh(min_val, max_val):
    if (min_val, max_val) != (0.0, 6.0):
        _fail(f"Hardtanh({min_val}, {max_val}) is not supported (only Hardtanh(0, 6), i.e. ReLU6)")
    return lrp.ReLU6()


# ---------------------------------------------------------------------------------------------
# reshaping


def _normalize_dim(dim: int, rank: int | None, what: str) -> int:
    if dim >= 0:
        return dim
    if rank is None:
        _fail(f"{what}: a negative dimension ({dim}) needs the input's rank, which is not known here")
    return dim + rank


def _flatten(x: _Tensor, start_dim=0, end_dim=-1):
    start_dim, end_dim = _ints(start_dim, "start_dim"), _ints(end_dim, "end_dim")
    start = start_dim if start_dim >= 0 or x.rank is None else start_dim + x.rank
    if start == 0:
        _fail("flattening the batch axis is not supported (use torch.flatten(x, 1))")
    if end_dim == -1:
        rank = start + 1
    elif x.rank is not None:
        rank = x.rank - (_normalize_dim(end_dim, x.rank, "flatten") - start)
    else:
        rank = None
    return lrp.Flatten(start_dim, end_dim), rank


def _unflatten(x: _Tensor, dim, sizes):
    dim = _ints(dim, "dim")
    sizes = _ints(tuple(sizes), "unflattened_size")
    if x.rank != 2 or _normalize_dim(dim, x.rank, "unflatten") != 1:
        _fail("unflatten is supported on the feature axis of a (batch, features) tensor only; "
              f"here dim={dim} and the input rank is {x.rank if x.rank is not None else 'unknown'}")
    return lrp.Reshape(sizes), 1 + len(sizes)


def _reshape(x, shape) -> _Op:
    """``x.view(shape)``: the batch entry must be ``x.size(0)`` (or ``-1`` before constants)."""
    x = _tensor(x)
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, _Size)):
        shape = shape[0]
    if isinstance(shape, _Size):
        if shape.of is x:
            return _Op(None, (x,), x.rank)
        _fail("reshaping to the size of another tensor is not supported")
    shape = list(shape)
    if not shape:
        _fail("reshaping to a scalar is not supported")
    for entry in shape:
        if not isinstance(entry, (int, _Dim)):
            _fail(f"the shape must hold ints and sizes of tensors, got {_short(entry)}")
    first, rest = shape[0], shape[1:]
    if isinstance(first, _Dim) and first.is_batch:
        kept = 0  # leading axes kept as they are: x.view(x.size(0), x.size(1), -1)
        while kept < len(rest) and _is_axis(rest[kept], x, kept + 1):
            kept += 1
        tail = rest[kept:]
        if not tail:
            return _Op(None, (x,), len(shape))
        if tail == [-1]:
            return _Op(lrp.Flatten(kept + 1), (x,), kept + 2)
        if kept == 0 and all(isinstance(t, int) for t in tail):
            return _Op(lrp.Reshape(tuple(tail)), (x,), len(shape))
        _fail("only reshapes of the form x.view(x.size(0), ...) with constant sizes, or keeping the "
              "leading axes and flattening the rest with -1, are supported")
    if first == -1 and rest and all(isinstance(t, int) and t != -1 for t in rest):
        return _Op(lrp.Reshape(tuple(rest)), (x,), len(shape))
    if isinstance(first, int):
        _fail(f"the reshape fixes the batch size to {first}; write x.view(x.size(0), ...) or "
              "x.flatten(1) so that any batch size works")
    _fail("the first entry of the shape must be the batch size x.size(0) / x.shape[0]")


def _is_axis(entry, x: _Tensor, axis: int) -> bool:
    """Whether ``entry`` is ``x.size(axis)`` (or the same axis counted from the end)."""
    if not isinstance(entry, _Dim) or entry.of is not x:
        return False
    return entry.index == axis or (x.rank is not None and entry.index + x.rank == axis)


def _mean(x, dim=None, keepdim=False, *, dtype=None, out=None):
    x = _tensor(x)
    if dim is None:
        _fail("a mean over all axes, the batch axis included, is not supported")
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    if not all(isinstance(d, int) for d in dims):
        _fail(f"mean over dims {dim!r}: the dims must be constant ints")
    if x.rank is not None:
        dims = tuple(sorted(d % x.rank for d in dims))
        spatial = tuple(range(2, x.rank))
    else:
        if any(d < 0 for d in dims):
            _fail(f"mean over dims {dim!r}: negative dims need the input's rank, which is not known here")
        dims = tuple(sorted(dims))
        spatial = tuple(range(2, max(dims) + 1))
    if not spatial or dims != spatial:
        _fail(f"mean over dims {dim!r} is supported only over all spatial axes (2, ..., rank-1), "
              "as a global average pooling")
    rank = (len(spatial) + 2) if keepdim else 2
    return _Op(lrp.GlobalAvgPool(keepdims=bool(keepdim)), (x,), rank)


def _size(x, dim=None):
    x = _tensor(x)
    if dim is None:
        return _Size(x)
    return _Dim(x, _ints(dim, "dim"))


def _getattr(obj, name):
    if isinstance(obj, _Tensor):
        if name == "shape":
            return _Size(obj)
        if name == "ndim" and obj.rank is not None:
            return obj.rank
        _fail(f"tensor attribute {name!r} is not supported")
    _fail(f"getattr({_short(obj)}, {name!r}) is not supported")


def _getitem(obj, index):
    if isinstance(obj, _Size):
        if isinstance(index, int):
            return _Dim(obj.of, index)
        _fail(f"indexing a tensor size with {index!r} is not supported")
    if isinstance(obj, (tuple, list)):
        return obj[index]
    if isinstance(obj, _Tensor):
        _fail("indexing or slicing a tensor is not supported")
    _fail(f"indexing {_short(obj)} is not supported")


def _dim(x):
    x = _tensor(x)
    if x.rank is None:
        _fail("the input's rank is not known here")
    return x.rank


# ---------------------------------------------------------------------------------------------
# arithmetic and concatenation


def _add(input, other, *, alpha=1, out=None, inplace=False) -> _Op:
    if alpha != 1:
        _fail(f"torch.add with alpha={alpha} is not supported")
    if not isinstance(input, _Tensor) or not isinstance(other, _Tensor):
        _fail(f"adding {_short(other if isinstance(input, _Tensor) else input)} is not supported; "
              "only the sum of two tensors computed from the input (a residual addition) is")
    rank = input.rank if input.rank is not None else other.rank
    return _Op(lrp.Add(), (input, other), rank, inplace)


def _cat(tensors, dim=0, *, out=None) -> _Op:
    tensors = [_tensor(t) for t in tensors]
    if not tensors:
        _fail("concatenating nothing")
    dim = _ints(dim, "dim")
    rank = next((t.rank for t in tensors if t.rank is not None), None)
    if (dim if dim >= 0 or rank is None else dim + rank) == 0:
        _fail("concatenation along the batch axis is not supported")
    if len(tensors) == 1:
        return _Op(None, tuple(tensors), rank)
    return _Op(lrp.Concat(dim), tuple(tensors), rank)


# ---------------------------------------------------------------------------------------------
# functional layers on the module's own parameters


def _weight(value, what):
    if isinstance(value, _Tensor):
        _fail(f"the {what} is computed from the input; only parameters and buffers are supported")
    return _param(value)


def _linear(input, weight, bias=None) -> _Op:
    x = _tensor(input)
    return _Op(lrp.Dense(_weight(weight, "weight"), _weight(bias, "bias")), (x,), x.rank)


def _conv_fn(d):
    def conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> _Op:
        x = _tensor(input)
        return _Op(lrp.Conv(_weight(weight, "weight"), _weight(bias, "bias"), stride=stride, padding=padding,
                            dilation=dilation, groups=groups), (x,), d + 2)
    return conv


def _conv_transpose_fn(d):
    def conv_transpose(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                       dilation=1) -> _Op:
        x = _tensor(input)
        return _Op(lrp.ConvTranspose(_weight(weight, "weight"), _weight(bias, "bias"), stride=stride,
                                     padding=padding, output_padding=output_padding, dilation=dilation,
                                     groups=groups), (x,), d + 2)
    return conv_transpose


def _batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
                eps=1e-5) -> _Op:
    x = _tensor(input)
    if running_mean is None or running_var is None:
        _fail("batch_norm without running statistics normalises with batch statistics; not supported")
    return _Op(lrp.BatchNorm(_weight(weight, "weight"), _weight(bias, "bias"),
                             _weight(running_mean, "running mean"), _weight(running_var, "running variance"),
                             eps), (x,), x.rank)


def _layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5) -> _Op:
    x = _tensor(input)
    return _Op(lrp.LayerNorm(tuple(normalized_shape), _weight(weight, "weight"), _weight(bias, "bias"), eps),
               (x,), x.rank)


# ---------------------------------------------------------------------------------------------
# functional pooling and dropout


def _max_pool_fn(d):
    def max_pool(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                 return_indices=False) -> _Op:
        if return_indices:
            _fail("return_indices=True is not supported")
        stride = kernel_size if stride is None or stride == [] or stride == () else stride
        return _Op(lrp.MaxPool(_ints(kernel_size, "kernel_size"), _ints(stride, "stride"),
                               _ints(padding, "padding"), _ints(dilation, "dilation"), bool(ceil_mode)),
                   (_tensor(input),), d + 2)
    return max_pool


def _avg_pool_fn(d):
    def avg_pool(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None) -> _Op:
        if divisor_override is not None:
            _fail("divisor_override is not supported")
        stride = kernel_size if stride is None or stride == [] or stride == () else stride
        return _Op(lrp.AvgPool(_ints(kernel_size, "kernel_size"), _ints(stride, "stride"),
                               _ints(padding, "padding"), bool(ceil_mode), bool(count_include_pad)),
                   (_tensor(input),), d + 2)
    return avg_pool


def _adaptive_avg_pool_fn(d):
    def adaptive_avg_pool(input, output_size) -> _Op:
        layer = lrp.GlobalAvgPool(keepdims=True) if _all_ones(output_size) else lrp.AdaptiveAvgPool(output_size)
        return _Op(layer, (_tensor(input),), d + 2)
    return adaptive_avg_pool


def _adaptive_max_pool_fn(d):
    def adaptive_max_pool(input, output_size, return_indices=False) -> _Op:
        if return_indices:
            _fail("return_indices=True is not supported")
        layer = lrp.GlobalMaxPool(keepdims=True) if _all_ones(output_size) else lrp.AdaptiveMaxPool(output_size)
        return _Op(layer, (_tensor(input),), d + 2)
    return adaptive_max_pool


def _dropout(input, p=0.5, training=True, inplace=False) -> _Op:
    x = _tensor(input)
    return _Op(lrp.Dropout(p), (x,), x.rank, bool(inplace))


def _dropout_method(input, p=0.5, train=True) -> _Op:
    return _dropout(input, p)


# ---------------------------------------------------------------------------------------------
# functional activations


def _unary(layer_factory, inplace_default=False):
    def translate(input, *args, inplace=inplace_default, **kwargs) -> _Op:
        x = _tensor(input)
        layer, inplace_arg = layer_factory(*args, **kwargs)
        return _Op(layer, (x,), x.rank, bool(inplace or inplace_arg))
    return translate


def _no_options(layer_cls):
    def factory(inplace=False):
        return layer_cls(), inplace
    return factory


def _leaky_factory(negative_slope=0.01, inplace=False):
    return lrp.LeakyReLU(negative_slope), inplace


def _elu_factory(alpha=1.0, inplace=False):
    return lrp.ELU(alpha), inplace


def _gelu_factory(approximate="none"):
    return lrp.GELU(approximate), False


def _hardtanh_factory(min_val=-1.0, max_val=1.0, inplace=False):
    return _hardtanh(min_val, max_val), inplace


def _softmax_factory(dim=None, _stacklevel=3, dtype=None):
    if dtype is not None:
        _fail("softmax with a dtype is not supported")
    return lrp.Softmax(1 if dim is None else dim), False


_RELU = _unary(_no_options(lrp.ReLU))
_RELU_ = _unary(_no_options(lrp.ReLU), inplace_default=True)

_FUNCTIONS: dict = {
    # activations
    F.relu: _RELU, torch.relu: _RELU, torch.relu_: _RELU_, F.relu_: _RELU_,
    F.relu6: _unary(_no_options(lrp.ReLU6)),
    F.hardtanh: _unary(_hardtanh_factory), F.hardtanh_: _unary(_hardtanh_factory, inplace_default=True),
    F.leaky_relu: _unary(_leaky_factory), F.leaky_relu_: _unary(_leaky_factory, inplace_default=True),
    F.gelu: _unary(_gelu_factory),
    F.silu: _unary(_no_options(lrp.SiLU)),
    F.elu: _unary(_elu_factory), F.elu_: _unary(_elu_factory, inplace_default=True),
    torch.tanh: _unary(_no_options(lrp.Tanh)), F.tanh: _unary(_no_options(lrp.Tanh)),
    torch.tanh_: _unary(_no_options(lrp.Tanh), inplace_default=True),
    torch.sigmoid: _unary(_no_options(lrp.Sigmoid)), F.sigmoid: _unary(_no_options(lrp.Sigmoid)),
    torch.sigmoid_: _unary(_no_options(lrp.Sigmoid), inplace_default=True),
    F.softmax: _unary(_softmax_factory), torch.softmax: _unary(_softmax_factory),
    # reshaping
    torch.flatten: lambda input, start_dim=0, end_dim=-1: _Op(*_flatten_op(input, start_dim, end_dim)),
    torch.reshape: lambda input, shape: _reshape(input, (shape,)),
    # arithmetic, concatenation
    operator.add: lambda a, b: _add(a, b), operator.iadd: lambda a, b: _add(a, b, inplace=True),
    torch.add: _add,
    torch.cat: _cat, torch.concat: _cat, torch.concatenate: lambda tensors, axis=0, out=None: _cat(tensors, axis),
    torch.mean: _mean,
    # sizes
    getattr: _getattr, operator.getitem: _getitem,
    # layers on parameters
    F.linear: _linear, F.batch_norm: _batch_norm, F.layer_norm: _layer_norm,
    # dropout
    F.dropout: _dropout, F.dropout1d: _dropout, F.dropout2d: _dropout, F.dropout3d: _dropout,
    F.alpha_dropout: _dropout, F.feature_alpha_dropout: _dropout,
    torch.dropout: lambda input, p, train: _dropout(input, p),
}
for _d in (1, 2, 3):
    _FUNCTIONS[getattr(F, f"conv{_d}d")] = _conv_fn(_d)
    _FUNCTIONS[getattr(torch, f"conv{_d}d")] = _conv_fn(_d)
    _FUNCTIONS[getattr(F, f"conv_transpose{_d}d")] = _conv_transpose_fn(_d)
    _FUNCTIONS[getattr(F, f"max_pool{_d}d")] = _max_pool_fn(_d)
    _FUNCTIONS[getattr(torch, f"max_pool{_d}d")] = _max_pool_fn(_d)
    _FUNCTIONS[getattr(F, f"avg_pool{_d}d")] = _avg_pool_fn(_d)
    _FUNCTIONS[getattr(F, f"adaptive_avg_pool{_d}d")] = _adaptive_avg_pool_fn(_d)
    _FUNCTIONS[getattr(F, f"adaptive_max_pool{_d}d")] = _adaptive_max_pool_fn(_d)
_FUNCTIONS[torch.avg_pool1d] = _avg_pool_fn(1)
_FUNCTIONS[torch.adaptive_avg_pool1d] = _adaptive_avg_pool_fn(1)


def _flatten_op(input, start_dim, end_dim):
    x = _tensor(input)
    layer, rank = _flatten(x, start_dim, end_dim)
    return layer, (x,), rank


def _view(self, *shape) -> _Op:
    return _reshape(self, shape)


_METHODS: dict = {
    "relu": _RELU, "relu_": _RELU_,
    "tanh": _FUNCTIONS[torch.tanh], "tanh_": _FUNCTIONS[torch.tanh_],
    "sigmoid": _FUNCTIONS[torch.sigmoid], "sigmoid_": _FUNCTIONS[torch.sigmoid_],
    "softmax": _FUNCTIONS[torch.softmax],
    "flatten": lambda self, start_dim=0, end_dim=-1: _Op(*_flatten_op(self, start_dim, end_dim)),
    "view": _view, "reshape": _view,
    "contiguous": lambda self, memory_format=None: _Op(None, (_tensor(self),), _tensor(self).rank),
    "add": _add, "add_": lambda self, other, *, alpha=1: _add(self, other, alpha=alpha, inplace=True),
    "__add__": lambda a, b: _add(a, b), "__radd__": lambda a, b: _add(b, a),
    "mean": _mean,
    "size": _size, "dim": _dim,
}


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
