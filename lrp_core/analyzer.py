"""The LRP analyzer: one forward pass that keeps what the backward pass needs, then the
backward pass in reverse topological order, each layer's rule mapping ``R_out`` to ``R_in``.

Fan-out relevances add; ``Add`` splits in proportion (its rule's generic step); pass-through
layers (activations on their own, Flatten, Reshape, Dropout, Concat) route relevance unchanged.
The backward pass is explicit code, not autograd. Modified layers are built once per array
namespace, device and dtype, and reused until a torch tensor of the model changes in place
(its version counter moves; then the model is canonized again); a call holds all of its state
in local variables, so one analyzer serves several threads.
"""

from __future__ import annotations

import operator
import threading
from dataclasses import dataclass

import array_api_compat

from .arrays import namespace_of, to_namespace, to_numpy
from .canonize import canonize as canonize_model
from .canonize import check_model
from .composites import Composite
from .errors import LRPCompatibilityError, LRPError, NonFiniteError
from .explanation import Explanation
from .graph import Graph
from .kernels import get_backend, namespace_name
from .layers import Layer, LinearizableLayer, PassThroughLayer
from .readers import as_graph
from .rules import NO_HINTS, LRPRule, StepHints, ZeroRule

__all__ = ["LRP", "analyze", "propagate"]


@dataclass(frozen=True)
class _Prepared:
    """The graph's layers and the rules' modified layers for one namespace/device/dtype."""

    layers: tuple
    modified: tuple


def _arrays_of(layer, prefix: str = ""):
    """``(name, array)`` for each array parameter of ``layer`` (its activation's included)."""
    for name in layer._arrays:
        value = getattr(layer, name, None)
        if value is not None and hasattr(value, "dtype") and hasattr(value, "shape"):
            yield prefix + name, value
    activation = getattr(layer, "activation", None)
    if isinstance(activation, Layer):
        yield from _arrays_of(activation, prefix + "activation.")


def _versioned(graph: Graph) -> tuple:
    """The graph's parameters that carry a version counter (torch tensors, and detached views
    of them, which share their parameter's counter): each layer once."""
    tracked, seen = [], set()
    for layer in graph:
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        tracked.extend(p for _, p in _arrays_of(layer) if _version_of(p) is not None)
    return tuple(tracked)


def _version_of(array):
    """torch's version counter of ``array``; ``None`` for arrays without one (NumPy, ...) and
    for torch inference tensors (which do not track it)."""
    try:
        version = getattr(array, "_version", None)
    except RuntimeError:  # an inference tensor
        return None
    return version if isinstance(version, int) else None


def _all_finite(xp, x) -> bool:
    """One reduction, one conversion to a Python bool."""
    return bool(xp.all(xp.isfinite(x)))


def _step(rule, layer, modified, inputs, shapes, relevance, hints=NO_HINTS):
    if isinstance(layer, PassThroughLayer):
        return layer.route(relevance, shapes)
    return rule.propagate(layer, modified, inputs, relevance, hints)


def _compute_context(xp):
    """The context the passes run in: a backend may provide one (torch: ``inference_mode``)."""
    return get_backend(xp).compute_context()


def _compatibility_error(rule, layer, where: str) -> LRPCompatibilityError:
    return LRPCompatibilityError(f"{rule!r} cannot be applied to {where}: "
                                 f"{type(rule).__name__}.is_compatible returned False for "
                                 f"{type(layer).__name__}")


def propagate(rule: LRPRule, layer: Layer, a, relevance):
    """One step of the backward pass: the relevance of the input ``a`` of ``layer`` (a tuple of
    inputs for Add/Concat) given the relevance of its output, exactly as the analyzer does it.

    The layer's parameters are converted to ``a``'s namespace, device and dtype.
    """
    inputs = tuple(a) if isinstance(a, (tuple, list)) else (a,)
    if not rule.is_compatible(layer):
        raise _compatibility_error(rule, layer, layer.describe())
    xp = namespace_of(*inputs)
    layer = layer.convert(lambda p: to_namespace(p, xp, array_api_compat.device(inputs[0]),
                                                 inputs[0].dtype))
    modified = rule.modify_layer(layer) if isinstance(layer, LinearizableLayer) else None
    relevance = to_namespace(relevance, xp, array_api_compat.device(inputs[0]), inputs[0].dtype)
    with _compute_context(xp):
        result = _step(rule, layer, modified, inputs, [tuple(x.shape) for x in inputs], relevance)
    return result if isinstance(a, (tuple, list)) else result[0]


class LRP:
    """Layer-wise Relevance Propagation.

    ``LRP(model)`` uses ``ZeroRule`` everywhere; ``LRP(model, composite)``,
    ``LRP(model, [rule_per_layer, ...])`` or ``LRP(model, rule)`` (one rule for all layers).
    ``model``: an lrp-core graph, a ``torch.nn.Module``, an ``onnx.ModelProto`` or a path to a
    ``.onnx`` file. Keywords: ``normalize_output_relevance=True`` (start from 1 instead of the
    logit), ``skip_checks=False`` (skip :func:`lrp_core.check_model`), ``canonize=True``.
    Raises :class:`~lrp_core.LRPCompatibilityError` if a rule cannot apply to its layer.

    Each call explains the model as it is then: torch parameters and buffers changed in place
    after the analyzer was built are noticed (by their version counters) and the analyzer
    rebuilt. NaN or infinity in the input or in the weights is a
    :class:`~lrp_core.NonFiniteError`.
    """

    def __init__(self, model, rules=None, *, normalize_output_relevance: bool = True,
                 skip_checks: bool = False, canonize: bool = True):
        self._source: Graph = as_graph(model)
        self._canonize = bool(canonize)
        self._skip_checks = bool(skip_checks)
        self._rule_spec = rules
        # the model's torch tensors and their versions: an in-place change of a weight (a
        # training step between two explanations) is noticed and the analyzer rebuilt
        self._tracked = _versioned(self._source)
        self.normalize_output_relevance = bool(normalize_output_relevance)
        self._lock = threading.Lock()
        self._build(self._versions())

    def _versions(self) -> tuple:
        return tuple(p._version for p in self._tracked)

    def _build(self, versions: tuple) -> None:
        """Canonize, check and bind the rules to the model as it is now; empty the cache."""
        graph = canonize_model(self._source) if self._canonize else self._source
        if not self._skip_checks:
            check_model(graph)
        resolved = self._resolve_rules(graph, self._rule_spec)
        for i, (rule, layer) in enumerate(zip(resolved, graph)):
            if not rule.is_compatible(layer):
                raise _compatibility_error(rule, layer, graph.label(i))
        self.model: Graph = graph
        self.rules: tuple[LRPRule, ...] = tuple(rule.bind(graph, i)
                                                for i, rule in enumerate(resolved))
        self._plan_wiring()
        self._cache: dict = {}
        self._built_versions = versions

    def _refresh(self) -> None:
        """Rebuild if a tracked tensor of the model was changed in place since the last build."""
        if not self._tracked:
            return
        versions = self._versions()
        if versions != self._built_versions:
            with self._lock:
                if versions != self._built_versions:
                    self._build(versions)

    # -- construction --------------------------------------------------------------------------
    @staticmethod
    def _resolve_rules(graph: Graph, rules) -> list[LRPRule]:
        if rules is None:
            return [ZeroRule()] * len(graph)
        if isinstance(rules, LRPRule):
            return [rules] * len(graph)
        if isinstance(rules, Composite):
            return rules.rules_for(graph)
        if isinstance(rules, (list, tuple)):
            rules = list(rules)
            if len(rules) != len(graph):
                raise ValueError(f"got {len(rules)} rules for a model of {len(graph)} layers; "
                                 f"one rule per layer, in this order:\n{graph!r}")
            for rule in rules:
                if not isinstance(rule, LRPRule):
                    raise TypeError(f"rules must be lrp.LRPRule instances, got {rule!r}")
            return rules
        raise TypeError(f"rules must be a Composite, a list of rules or a rule, got {rules!r}")

    def _plan_wiring(self) -> None:
        nodes = self.model.nodes
        consumers = self.model.consumers()
        self._last_reader = [max(c) if c else -1 for c in consumers]
        # a value is kept for the backward pass if a layer that computes with its input reads it
        self._keep = [any(not isinstance(nodes[c].layer, PassThroughLayer) for c in readers)
                      for readers in consumers]
        self._keep[-1] = True  # the output
        nonnegative = [False]
        for node in nodes:
            nonnegative.append(node.layer.output_nonnegative(tuple(nonnegative[j]
                                                                   for j in node.inputs)))
        self._inputs_nonnegative = [all(nonnegative[j] for j in node.inputs) for node in nodes]
        self._reuse = [isinstance(node.layer, LinearizableLayer) and rule.reuses_forward()
                       for node, rule in zip(nodes, self.rules)]

    def _prepared(self, xp, device, dtype) -> _Prepared:
        key = (namespace_name(xp), str(device), str(dtype))
        prepared = self._cache.get(key)
        if prepared is not None:
            return prepared
        with self._lock:
            prepared = self._cache.get(key)
            if prepared is None:
                prepared = self._prepare(xp, device, dtype)
                self._cache[key] = prepared
        return prepared

    def _prepare(self, xp, device, dtype) -> _Prepared:
        converted: dict[int, Layer] = {}  # a layer used by two nodes is converted once
        layers, modified = [], []
        for node in self.model.nodes:
            layer = converted.get(id(node.layer))
            if layer is None:
                layer = node.layer.convert(lambda p: to_namespace(p, xp, device, dtype))
                converted[id(node.layer)] = layer
            layers.append(layer)
        self._check_parameters(xp, layers)
        for layer, rule in zip(layers, self.rules):
            modified.append(rule.modify_layer(layer) if isinstance(layer, LinearizableLayer)
                            else None)
        return _Prepared(tuple(layers), tuple(modified))

    def _check_parameters(self, xp, layers) -> None:
        """A :class:`~lrp_core.NonFiniteError` naming each parameter that holds NaN or infinity
        (one reduction over all parameters; located only when one is found)."""
        flags, where, seen = [], [], set()
        for i, layer in enumerate(layers):
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            for name, p in _arrays_of(layer):
                if xp.isdtype(p.dtype, ("real floating", "complex floating")):
                    flags.append(xp.all(xp.isfinite(p)))
                    where.append((i, name))
        if not flags or bool(xp.all(xp.stack(flags))):
            return
        bad = [f"{self.model.label(i)}: {name}" for (i, name), ok in zip(where, flags)
               if not bool(ok)]
        note = ("\n(the layers as canonized: a BatchNorm's parameters are folded into the layer "
                "before it)") if self._canonize else ""
        raise NonFiniteError("the model's parameters hold NaN or infinity, in:\n" +
                             "\n".join(f"  - {b}" for b in bad) + note)

    # -- analysis ------------------------------------------------------------------------------
    def _check_declared_shape(self, x) -> None:
        """The model's declared per-sample input shape (an ONNX model's input), if any."""
        declared = self._source.input_shape
        if declared is None:
            return
        got = tuple(int(d) for d in x.shape[1:])
        if len(got) != len(declared) or any(d is not None and d != g
                                             for d, g in zip(declared, got)):
            expected = ", ".join(["N"] + ["?" if d is None else str(d) for d in declared])
            raise ValueError(f"the model takes inputs of shape ({expected}) (batch first; ? is "
                             f"open), got {tuple(int(d) for d in x.shape)}")

    def __call__(self, x, output_selection=None, *, output_relevance=None,
                 layerwise_relevances: bool = False) -> Explanation:
        try:
            xp = namespace_of(x)
        except TypeError:
            raise TypeError(f"the input must be an array (NumPy, torch, CuPy, ... batch first), "
                            f"got a {type(x).__name__}") from None
        if not xp.isdtype(x.dtype, "real floating"):
            raise TypeError(f"the input must be a floating-point array, got dtype {x.dtype}")
        if len(x.shape) < 2:
            raise ValueError(f"the input must be batch first, (N, ...); got shape {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError(f"the batch is empty: the input has shape {tuple(x.shape)}; "
                             "give at least one sample")
        self._check_declared_shape(x)
        if not _all_finite(xp, x):
            raise NonFiniteError("the input holds NaN or infinity; LRP would explain a "
                                 "meaningless output (replace or drop those samples)")
        self._refresh()
        device = array_api_compat.device(x)
        compute_dtype = xp.float32 if xp.finfo(x.dtype).bits < 32 else x.dtype
        prepared = self._prepared(xp, device, compute_dtype)
        with _compute_context(xp):
            values, shapes, records = self._forward(prepared,
                                                    xp.astype(x, compute_dtype, copy=False))
            output = values[-1]
            if output_relevance is not None:
                try:
                    namespace_of(output_relevance)
                except TypeError:
                    raise TypeError(f"output_relevance must be an array shaped like the model "
                                    f"output {tuple(output.shape)}, got a "
                                    f"{type(output_relevance).__name__}") from None
                relevance = to_namespace(output_relevance, xp, device, compute_dtype)
                if tuple(relevance.shape) != tuple(output.shape):
                    raise ValueError(f"output_relevance has shape {tuple(relevance.shape)}, "
                                     f"the model output {tuple(output.shape)}")
                if not _all_finite(xp, relevance):
                    raise NonFiniteError("output_relevance holds NaN or infinity")
                selection = None
            else:
                relevance, selection = self._output_relevance(xp, output, output_selection)
            relevances = self._backward(prepared, values, shapes, records, relevance,
                                        layerwise_relevances)
        extras = None
        if layerwise_relevances:
            layerwise = [None if r is None else xp.astype(r, x.dtype, copy=False)
                         for r in relevances]
            extras = {"layerwise_relevances": layerwise}
        return Explanation(val=xp.astype(relevances[0], x.dtype, copy=False), input=x,
                           output=xp.astype(output, x.dtype, copy=False),
                           output_selection=selection, extras=extras)

    def _forward(self, prepared: _Prepared, x):
        nodes = self.model.nodes
        values = [x] + [None] * len(nodes)
        shapes = [tuple(x.shape)] + [None] * len(nodes)
        records = [None] * len(nodes)
        for i, node in enumerate(nodes):
            layer = prepared.layers[i]
            inputs = [values[j] for j in node.inputs]
            try:
                if self._reuse[i]:
                    z, pullback = layer.linearize(*inputs)
                    records[i] = (z, pullback)
                    out = z if layer.activation is None else layer.activation.forward(z)
                else:
                    out = layer.forward(*inputs)
            except (ValueError, RuntimeError, TypeError, IndexError) as error:
                if isinstance(error, LRPError):
                    raise
                shapes_in = ", ".join(str(shapes[j]) for j in node.inputs)
                raise ValueError(f"the model cannot run on this input: {self.model.label(i)} "
                                 f"fails on input shape {shapes_in} (the model input has shape "
                                 f"{shapes[0]}): {error}") from error
            values[i + 1] = out
            shapes[i + 1] = tuple(out.shape)
            for j in node.inputs:  # drop what neither a later layer nor the backward pass needs
                if self._last_reader[j] == i and not self._keep[j]:
                    values[j] = None
        return values, shapes, records

    def _output_relevance(self, xp, output, output_selection):
        n = output.shape[0]
        flat = xp.reshape(output, (n, -1))
        k = flat.shape[1]
        device = array_api_compat.device(output)
        if output_selection is None:
            index = xp.argmax(flat, axis=1)
            selection = [int(i) for i in to_numpy(index).tolist()]
        else:
            selection = self._selection_list(output_selection, n, k)
            index = xp.asarray(selection, dtype=xp.int64, device=device)
        onehot = xp.astype(xp.arange(k, device=device)[None, :] == index[:, None], output.dtype)
        relevance = onehot if self.normalize_output_relevance else onehot * flat
        return xp.reshape(relevance, output.shape), selection

    @staticmethod
    def _selection_list(output_selection, n: int, k: int) -> list[int]:
        if isinstance(output_selection, bool):
            raise TypeError("output_selection must be an int or one int per sample, got a bool")
        try:  # an int, a NumPy integer or a 0-d integer array
            selection = [operator.index(output_selection)] * n
        except TypeError:
            items = (output_selection.tolist() if hasattr(output_selection, "tolist")
                     else output_selection)
            try:
                selection = [operator.index(i) for i in items]
            except TypeError:
                raise TypeError(f"output_selection must be an int or one int per sample, "
                                f"got {output_selection!r}") from None
            if len(selection) != n:
                raise ValueError(f"output_selection has {len(selection)} entries "
                                 f"for a batch of {n}") from None
        bad = [i for i in selection if not 0 <= i < k]
        if bad:
            raise ValueError(f"output_selection {bad[0]} is out of range: the model has {k} "
                             f"outputs (0..{k - 1})")
        return selection

    def _backward(self, prepared, values, shapes, records, relevance, keep_all):
        nodes = self.model.nodes
        relevances = [None] * (len(nodes) + 1)
        relevances[-1] = relevance
        for i in range(len(nodes) - 1, -1, -1):
            node = nodes[i]
            r = relevances[i + 1]
            if r is None:
                continue
            inputs = tuple(values[j] for j in node.inputs)
            hints = StepHints(records[i], self._inputs_nonnegative[i])
            r_inputs = _step(self.rules[i], prepared.layers[i], prepared.modified[i], inputs,
                             [shapes[j] for j in node.inputs], r, hints)
            for j, r_j in zip(node.inputs, r_inputs):
                relevances[j] = r_j if relevances[j] is None else relevances[j] + r_j
            records[i] = None
            values[i + 1] = None
            if not keep_all:
                relevances[i + 1] = None
        return relevances

    # -- display -------------------------------------------------------------------------------
    def __repr__(self) -> str:
        graph = self.model
        chain = graph.is_chain
        width = len(str(len(graph) - 1))
        labels = []
        for node in graph.nodes:
            name = f"{node.name}: " if node.name else ""
            wiring = "" if chain else "  <- " + ", ".join("input" if j == 0 else str(j - 1)
                                                          for j in node.inputs)
            labels.append(f"{name}{node.layer.describe()}{wiring}")
        column = max(len(label) for label in labels)
        lines = ["LRP("]
        for i, (label, rule) in enumerate(zip(labels, self.rules)):
            lines.append(f"  {i:>{width}}  {label:<{column}}  => {rule!r}")
        lines.append(")")
        return "\n".join(lines)


def analyze(x, analyzer: LRP, output_selection=None, **options) -> Explanation:
    """``analyzer(x, output_selection, **options)``."""
    return analyzer(x, output_selection, **options)
