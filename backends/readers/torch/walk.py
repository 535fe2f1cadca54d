"""The walk over the fx graph: every node in order becomes a value of the translation
environment, and the nodes the output depends on become the lrp-core graph.

A node that cannot be translated is bound to a :class:`~.values.Failed` value holding an
:class:`lrp_core.UnsupportedOperatorError` that names the fx node, its target and the user's
line (:func:`~.locations.node_error`); it is raised only if the output depends on it, so dead
code is never translated. In-place operations rebind every name of the mutated tensor, as eager
execution does. A module called twice becomes two nodes that share one layer.
``nn.MultiheadAttention``, ``nn.TransformerEncoderLayer`` and ``nn.TransformerEncoder`` are
translated as units. A value whose batch axis a permutation moved is followed as
:mod:`.layout` describes (the call is translated on the batch-first tensor and its result moved
again), or refused.
"""

from __future__ import annotations

import inspect
import operator

import torch
import torch.fx as fx
import torch.nn as nn

import lrp_core as lrp
from lrp_core.errors import InputShapeNeededError, LRPError, UnsupportedOperatorError

from . import layout
from .attention import multihead_attention, scaled_dot_product_attention
from .functions import FUNCTIONS, METHODS, function_by_name
from .locations import node_error, qualname
from .modules import module_layer
from .propagation import inference_view
from .routing import BatchMoved
from .tracing import Wrapper, relative_name
from .transformer import transformer_encoder, transformer_encoder_layer
from .values import (
    Failed,
    Op,
    Propagated,
    ShapeNeeded,
    Tensor,
    Unsupported,
    as_tensor,
    describe,
    fail,
    leaves,
)

__all__ = ["GraphWalk"]


class GraphWalk:
    """Translates the fx graph of a traced :class:`~.tracing.Wrapper` into an lrp-core graph;
    ``custom`` maps leaf module types to the caller's translations."""

    def __init__(self, graph: fx.Graph, wrapper: Wrapper, custom: dict, shapes: dict | None = None,
                 full_shapes: dict | None = None):
        self.graph = graph
        self.shapes = shapes  # fx node -> per-sample shape (None: read without an input shape)
        self.full_shapes = full_shapes or {}  # fx node -> full shape (batch axis anywhere)
        self.wrapper = wrapper
        self.custom = custom
        self.modules = dict(wrapper.named_modules())
        self.env: dict[fx.Node, object] = {}
        self.names: dict[int, list] = {}  # id(value) -> the fx nodes bound to it
        self.calls: dict[str, int] = {}
        self.shared: dict[str, lrp.Layer] = {}
        self.input = None

    # -- driving -------------------------------------------------------------------------------
    def read(self) -> lrp.Graph:
        """The lrp-core graph from the input to the output."""
        output = None
        for node in self.graph.nodes:
            if node.op == "output":
                output = node
                break
            try:
                value, mutated = self._translate(node)
            except Unsupported as problem:
                kind = InputShapeNeededError \
                    if isinstance(problem, ShapeNeeded) and self.shapes is None \
                    else UnsupportedOperatorError
                reason = str(problem)
                if kind is InputShapeNeededError:
                    reason += ("; read the model for an input shape: lrp.from_torch(model, "
                               "input_shape=...), or lrp.LRP(model), which reads it at its "
                               "first call")
                error = node_error(node, self.modules, reason, kind)
                value, mutated = Failed(error), self._mutated_input(node)
            except Propagated as failure:
                value, mutated = Failed(failure.error), self._mutated_input(node)
            if isinstance(value, Tensor) and self.shapes is not None \
                    and self.shapes.get(node) is not None:
                value.shape = self.shapes[node]
                value.rank = len(value.shape) + 1
            if isinstance(value, BatchMoved) and value.x.shape is None \
                    and self.full_shapes.get(node) is not None:
                value.x.shape = layout.underlying_shape(self.full_shapes[node], value.axes)
                value.x.rank = len(value.axes)
            self._bind(node, value)
            if mutated is not None:
                self._rebind(mutated, value)
        return self._finish(output)

    def _finish(self, output: fx.Node) -> lrp.Graph:
        result = output.args[0]
        if not isinstance(result, fx.Node):
            raise UnsupportedOperatorError(
                f"the model returns a {type(result).__name__}; lrp.from_torch explains a model "
                "with one output tensor (return the logits)")
        value = self.env[result]
        if isinstance(value, Failed):
            raise value.error
        if isinstance(value, BatchMoved):
            raise node_error(result, self.modules, layout.OUTPUT_MOVED, UnsupportedOperatorError)
        if not isinstance(value, Tensor):
            raise UnsupportedOperatorError(f"the model output is {describe(value)}, not a tensor "
                                           "computed from the input")
        if value.symbol is self.input.symbol:
            raise LRPError("the model returns its input unchanged: there is nothing to explain")
        return lrp.Graph(self.input.symbol, value.symbol)

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
        if node.op == "call_method" and node.target.endswith("_") \
                and not node.target.startswith("_"):
            return first
        if node.op == "call_function":
            if node.target is operator.iadd or node.kwargs.get("inplace") is True:
                return first
            name = getattr(node.target, "__name__", "")
            if name.endswith("_") and not name.startswith("_"):
                return first
        if node.op == "call_module" \
                and getattr(self.modules.get(node.target), "inplace", False) is True:
            return first
        return None

    def _add(self, layer, inputs, name, rank):
        symbols = tuple(t.symbol for t in inputs)
        builder = symbols[0].builder
        return Tensor(builder.call(layer, symbols, name=name or None), rank)

    def _value(self, arg):
        """An fx argument with nodes replaced by their translated values (recursively)."""
        if isinstance(arg, fx.Node):
            value = self.env[arg]
            if isinstance(value, Failed):
                raise Propagated(value.error)
            return value
        if isinstance(arg, (list, tuple)):
            if isinstance(arg, torch.Size):
                return tuple(arg)
            return type(arg)(self._value(a) for a in arg)
        if isinstance(arg, dict):
            return {k: self._value(v) for k, v in arg.items()}
        if isinstance(arg, slice):
            return slice(self._value(arg.start), self._value(arg.stop), self._value(arg.step))
        return arg

    # -- one node ------------------------------------------------------------------------------
    def _translate(self, node: fx.Node):
        """``(value, mutated_node_or_None)`` for one fx node."""
        if node.op == "placeholder":  # the wrapper's forward(x): exactly one
            self.input = Tensor(lrp.Input(), None)
            if self.shapes is not None and self.shapes.get(node) is not None:
                self.input.shape = self.shapes[node]
                self.input.rank = len(self.input.shape) + 1
            return self.input, None
        if node.op == "get_attr":
            return self._get_attr(node.target), None
        self._check_masks(node)
        args = self._value(node.args)
        kwargs = self._value(node.kwargs)
        if _is_constant_call(node, args, kwargs):
            return _fold(node, args, kwargs, self.modules), None
        if layout.moved_values(args, kwargs) and not layout.follows_itself(node.op, node.target):
            module = self.modules[node.target] if node.op == "call_module" else None
            axes, args, kwargs = layout.unwrap(node.op, node.target, module, args, kwargs)
            value, mutated = self._dispatch(node, args, kwargs, batch_moved=True)
            return layout.wrap(value, axes), mutated
        return self._dispatch(node, args, kwargs)

    def _dispatch(self, node: fx.Node, args, kwargs, batch_moved: bool = False):
        if node.op == "call_module":
            return self._call_module(node, args, kwargs, batch_moved)
        if node.op == "call_function":
            return self._call_function(node, args, kwargs)
        if node.op == "call_method":
            return self._call_method(node, args, kwargs)
        fail(f"unknown fx node kind {node.op}")

    def _check_masks(self, node: fx.Node) -> None:
        """A mask argument of attention computed from the model input is refused as such, also
        where its computation has no translation (it would be an input of the explanation)."""
        if node.op == "call_module":
            module = self.modules[node.target]
            if any(isinstance(module, kind) for kind in self.custom):
                return
            translate = next((t for kind, t in _UNITS.items() if isinstance(module, kind)), None)
            first = (module,)
        elif node.op == "call_function":
            translate = _MASKED_FUNCTIONS.get(node.target)
            first = ()
        else:
            return
        if translate is None:
            return
        try:
            bound = inspect.signature(translate).bind(*first, *node.args, **node.kwargs)
        except TypeError:
            return
        for name, arg in bound.arguments.items():
            if "mask" in name and isinstance(arg, fx.Node) \
                    and isinstance(self.env.get(arg), (Failed, Tensor, BatchMoved)):
                fail(f"its {name} is computed from the model input, so it is a second input of "
                     "the explained function; lrp-core explains models of one input: a mask "
                     "must be a constant of the model (a buffer or parameter, a tensor computed "
                     "from them, or is_causal=True)")

    def _get_attr(self, target: str):
        value = self.wrapper
        for part in target.split("."):
            value = getattr(value, part)
        if isinstance(value, torch.Tensor):
            return value.detach()
        return value

    def _module_name(self, node: fx.Node) -> str:
        name = relative_name(node.target)
        count = self.calls.get(name, 0)
        self.calls[name] = count + 1
        return name if count == 0 else f"{name}@{count}"

    def _call_module(self, node, args, kwargs, batch_moved: bool = False):
        module = self.modules[node.target]
        name = self._module_name(node)
        if not args:
            fail("the module is called without a tensor argument")
        x = as_tensor(args[0])
        custom = any(isinstance(module, kind) for kind in self.custom)
        for kind, translate in _UNITS.items():
            if isinstance(module, kind) and not custom:
                result = translate(module, *args, **kwargs, batch_moved=batch_moved)
                return self._materialize_result(result, name), None
        if len(args) > 1 or kwargs:
            fail(f"{type(module).__name__} is called with extra arguments ({len(args) - 1} "
                 f"positional, {sorted(kwargs)}); only module(x) is supported")
        for kind, translate in self.custom.items():
            if isinstance(module, kind):
                layer = translate(module)
                if not isinstance(layer, lrp.Layer):
                    raise TypeError(f"leaf_modules[{kind.__name__}] must return an lrp_core "
                                    f"layer or graph, got {layer!r}")
                return self._add(layer, (x,), name, None), None
        try:
            layer, rank = module_layer(module, x)
        except (TypeError, ValueError) as error:
            fail(f"{type(module).__name__} could not be translated: {error}")
        layer = self.shared.setdefault(node.target, layer)  # a module called twice: one layer
        inplace = getattr(module, "inplace", False) is True
        return self._add(layer, (x,), name, rank), (node.args[0] if inplace else None)

    def _call_function(self, node, args, kwargs):
        translate = FUNCTIONS.get(node.target) or function_by_name(node.target)
        if translate is None:
            fail(f"{qualname(node.target)} has no translation")
        return self._apply(node, translate, args, kwargs)

    def _call_method(self, node, args, kwargs):
        translate = METHODS.get(node.target)
        if translate is None:
            fail(f"Tensor.{node.target} has no translation")
        return self._apply(node, translate, args, kwargs)

    def _apply(self, node, translate, args, kwargs):
        try:
            result = translate(*args, **kwargs)
        except (TypeError, ValueError) as error:
            if isinstance(error, LRPError):
                raise
            fail(f"unexpected arguments: {error}")
        mutated = None
        if isinstance(result, Op) and result.inplace and isinstance(node.args[0], fx.Node):
            mutated = node.args[0]
        return self._materialize_result(result, node.name), mutated

    def _materialize_result(self, result, name: str):
        """A translation's result as a value: its :class:`Op` (also inside a tuple or list, as
        ``split`` returns them) added to the graph."""
        if isinstance(result, Op):
            return self._materialize(result, name, name)
        if isinstance(result, (tuple, list)) and any(isinstance(r, Op) for r in result):
            several = sum(isinstance(r, Op) for r in result) > 1
            done: dict = {}
            return type(result)(
                self._materialize(r, f"{name}.{i}" if several else name, name, done)
                if isinstance(r, Op) else r for i, r in enumerate(result))
        return result

    def _materialize(self, op: Op, name: str, base: str, done: dict | None = None) -> Tensor:
        """The tensor of ``op`` (named ``name``), its inner operations added first (named
        ``base.inner``: ``self_attention.q_proj``), each once however many read it (``done``:
        ``id(op)`` -> its tensor)."""
        done = {} if done is None else done
        if id(op) in done:
            return done[id(op)]
        inputs = [self._materialize(t, f"{base}.{t.name or f'part{i}'}", base, done)
                  if isinstance(t, Op) else as_tensor(t) for i, t in enumerate(op.inputs)]
        if op.layer is None:
            value = inputs[0]
        else:
            value = self._add(op.layer, inputs, name, op.rank)
        if op.shape is not None:
            value.shape = tuple(op.shape)
            value.rank = len(value.shape) + 1
        done[id(op)] = value
        return value


# modules translated as units (their forward is not traced): module type -> translation
_UNITS = {nn.MultiheadAttention: multihead_attention,
          nn.TransformerEncoderLayer: transformer_encoder_layer,
          nn.TransformerEncoder: transformer_encoder}
# functions with a mask argument, for the message about masks computed from the input
_MASKED_FUNCTIONS = {torch.nn.functional.scaled_dot_product_attention:
                     scaled_dot_product_attention}


# -- constant folding: calls on parameters and buffers only ----------------------------------------
_INPLACE_OPERATORS = {operator.iadd, operator.isub, operator.imul, operator.itruediv,
                      operator.ifloordiv, operator.imod, operator.ipow, operator.setitem}


def _is_constant_call(node: fx.Node, args, kwargs) -> bool:
    """Whether ``node`` computes a constant from parameters, buffers and numbers only (a
    relative position bias gathered from its table), without writing into any of them."""
    values = list(leaves((args, kwargs)))
    if not any(isinstance(v, torch.Tensor) for v in values):
        return False
    if not all(isinstance(v, (torch.Tensor, int, float, bool, str, type(None), type(Ellipsis),
                              torch.dtype, torch.device, torch.Size)) for v in values):
        return False
    if kwargs.get("inplace") is True or kwargs.get("out") is not None:
        return False
    target = node.target
    if node.op == "call_module":
        return True  # run on an inference view of the module: nothing of it is written
    if node.op == "call_method":
        return not (target.endswith("_") and not target.startswith("_"))
    if target in _INPLACE_OPERATORS:
        return False
    name = getattr(target, "__name__", "")
    return not (name.endswith("_") and not name.startswith("_"))


def _fold(node: fx.Node, args, kwargs, modules: dict):
    """The constant ``node`` computes (never an alias that is written: the call is pure; a
    module runs as an inference view, its hooks skipped: Swin V2's position-bias MLP)."""
    try:
        with torch.no_grad():
            if node.op == "call_module":
                return inference_view(modules[node.target]).forward(*args, **kwargs)
            if node.op == "call_method":
                return getattr(args[0], node.target)(*args[1:], **kwargs)
            return node.target(*args, **kwargs)
    except Exception as error:
        fail(f"computing a constant failed: {type(error).__name__}: {error}")
