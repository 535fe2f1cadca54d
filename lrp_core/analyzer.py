"""The LRP analyzer: one forward pass that keeps what the backward pass needs, then the
backward pass in reverse topological order, each layer's rule mapping ``R_out`` to ``R_in``.

Fan-out relevances add; ``Add`` splits in proportion (its rule's generic step); pass-through
layers (activations on their own, Flatten, Reshape, Dropout, Concat) route relevance unchanged.
The backward pass is explicit code, not autograd. Modified layers are built once per array
namespace, device and dtype, and reused until a torch tensor of the model changes in place
(its version counter moves; then the model is canonized again). Everything one build derives
from the model (canonized graph, bound rules, wiring, cache) is one immutable :class:`_Build`
that a call takes once at its start, so a rebuild during another thread's call never mixes an
old and a new graph; the rest of a call's state is local, so one analyzer serves several
threads. An analyzer pickles (for Dask workers, multiprocessing) without its lock and cache.
"""

from __future__ import annotations

import operator
import threading
from dataclasses import dataclass

import array_api_compat
import numpy as np

from .arrays import namespace_of, to_namespace, to_numpy
from .canonize import canonize as canonize_model
from .canonize import check_model
from .composites import Composite
from .errors import InputShapeNeededError, LRPCompatibilityError, LRPError, NonFiniteError
from .explanation import Explanation
from .graph import Graph
from .kernels import get_backend, namespace_name
from .layers import Layer, LinearizableLayer, PassThroughLayer
from .readers import as_graph
from .rules import NO_HINTS, LRPRule, StepHints, ZeroRule

__all__ = ["LRP", "analyze", "propagate"]


@dataclass(frozen=True)
class _Build:
    """What one build derives from the model: the canonized graph, the bound rules, the
    wiring of the passes, the versions of the tracked tensors it was built from, and the cache
    of prepared layers (per namespace, device, dtype) that belongs to this build only."""

    graph: Graph
    rules: tuple
    last_reader: tuple  # the last node reading each value (-1: none)
    keep: tuple  # whether the backward pass needs each value
    inputs_nonnegative: tuple  # per node: all its inputs are known to be >= 0
    reuse: tuple  # per node: the rule reuses the forward pass's linearisation
    recompute: tuple  # per value: dropped after the forward pass, recomputed when read back
    versions: tuple
    cache: dict


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


def _private(array):
    """A read-only copy of a writable array without a version counter (a NumPy array of a
    hand-built graph): the user may change it in place, which the analyzer could not notice, so
    it explains the array as it was when it was built. Other arrays are returned as they are
    (torch tensors are tracked by their version counters; a reader's arrays are read-only)."""
    flags = getattr(array, "flags", None)
    if array is None or flags is None or not getattr(flags, "writeable", False) \
            or _version_of(array) is not None:
        return array
    copy = namespace_of(array).asarray(array, copy=True)
    if getattr(copy, "flags", None) is not None and hasattr(copy.flags, "writeable"):
        copy.flags.writeable = False
    return copy


def _with_private_arrays(graph: Graph) -> Graph:
    """``graph`` with :func:`_private` copies of its writable untracked arrays (a layer shared by
    two nodes stays shared); ``graph`` itself when it has none."""
    copied = []

    def private(array):
        result = _private(array)
        if result is not array:
            copied.append(result)
        return result

    layers: dict[int, Layer] = {}
    for layer in graph:
        if id(layer) not in layers:
            layers[id(layer)] = layer.convert(private)
    if not copied:
        return graph
    return graph.with_layers([layers[id(layer)] for layer in graph]).with_input_shape(
        graph.input_shape)


def _check_same_device(array, x, what: str) -> None:
    """An array given with the input lives on the input's device: a host NumPy array is
    welcome (it is copied over), as is one of another namespace (exchanged through DLPack or
    the host); the same namespace on another device is an error, never a silent transfer."""
    if isinstance(array, np.ndarray) or namespace_name(namespace_of(array)) != \
            namespace_name(namespace_of(x)):
        return
    here, there = array_api_compat.device(array), array_api_compat.device(x)
    if str(here) != str(there):
        raise ValueError(f"{what} is on device {here}, the input on {there}: give them on one "
                         "device")


def _all_finite(xp, x) -> bool:
    """One reduction, one conversion to a Python bool."""
    return bool(xp.all(xp.isfinite(x)))


def _input_error(graph: Graph, i: int, shapes, error) -> ValueError:
    """The error for node ``i`` failing in the forward pass: the shape its parameters take if
    that is the problem (the model's shape, when it reads the model input), else the shapes and
    the kernel's own message."""
    node = graph.nodes[i]
    got = shapes[node.inputs[0]]
    takes = graph.nodes[i].layer.mismatch(got) if len(node.inputs) == 1 else None
    label = graph.label(i)
    if takes is not None and node.inputs == (0,):
        return ValueError(f"the model takes inputs of shape {takes} (its first layer is {label}),"
                          f" got {got}")
    if takes is not None:
        return ValueError(f"the model cannot run on this input: {label} takes inputs of shape "
                          f"{takes} and gets {got} from the model input of shape {shapes[0]}")
    shapes_in = ", ".join(str(shapes[j]) for j in node.inputs)
    return ValueError(f"the model cannot run on this input: {label} fails on input shape "
                      f"{shapes_in} (the model input has shape {shapes[0]}): {error}")


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

    The layer's parameters are converted to ``a``'s namespace, device and dtype. NaN or infinity
    in the inputs or the relevance is a :class:`~lrp_core.NonFiniteError`.
    """
    inputs = tuple(a) if isinstance(a, (tuple, list)) else (a,)
    if not rule.is_compatible(layer):
        raise _compatibility_error(rule, layer, layer.describe())
    xp = namespace_of(*inputs)
    layer = layer.convert(lambda p: to_namespace(p, xp, array_api_compat.device(inputs[0]),
                                                 inputs[0].dtype))
    modified = rule.modify_layer(layer) if isinstance(layer, LinearizableLayer) else None
    relevance = to_namespace(relevance, xp, array_api_compat.device(inputs[0]), inputs[0].dtype)
    for what, value in [(f"input {k}" if len(inputs) > 1 else "the input", v)
                        for k, v in enumerate(inputs)] + [("the relevance", relevance)]:
        if xp.isdtype(value.dtype, "real floating") and not _all_finite(xp, value):
            raise NonFiniteError(f"propagate: {what} holds NaN or infinity")
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

    #: per-sample input shape -> analyzer, for a torch model that needs its input shape to be
    #: read (``None``: the model was read at construction)
    _per_shape: dict | None = None

    def __init__(self, model, rules=None, *, normalize_output_relevance: bool = True,
                 skip_checks: bool = False, canonize: bool = True):
        try:
            self._source: Graph = as_graph(model)
        except InputShapeNeededError:  # read at the first call, once per per-sample shape
            self._read_per_shape(model, rules, normalize_output_relevance, skip_checks, canonize)
            return
        self._canonize = bool(canonize)
        self._skip_checks = bool(skip_checks)
        self._rule_spec = rules
        # the model's torch tensors and their versions: an in-place change of a weight (a
        # training step between two explanations) is noticed and the analyzer rebuilt
        self._tracked = _versioned(self._source)
        self.normalize_output_relevance = bool(normalize_output_relevance)
        self._lock = threading.Lock()
        self._built: _Build = self._build(self._versions())

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_lock"]
        state["_built"] = None  # rebuilt on arrival: the cache holds converted arrays
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()
        if self._per_shape is None:
            self._built = self._build(self._versions())

    # -- a torch model read per input shape ----------------------------------------------------
    def _read_per_shape(self, model, rules, normalize_output_relevance, skip_checks, canonize):
        self._per_shape = {}
        self._unread = model
        self._rule_spec = rules
        self._options = {"skip_checks": bool(skip_checks), "canonize": bool(canonize)}
        self.normalize_output_relevance = bool(normalize_output_relevance)
        self._lock = threading.Lock()

    @property
    def graphs(self) -> dict:
        """For a torch model that needs its input shape (``lrp.InputShapeNeededError``): the
        graphs read so far, ``{per-sample input shape: graph as explained}``, one per shape the
        analyzer was called with. Empty for a model read at construction (see :attr:`model`)."""
        if self._per_shape is None:
            return {}
        return {shape: analyzer.model for shape, analyzer in self._per_shape.items()}

    def _for_shape(self, x) -> LRP:
        """The analyzer of the model read for the per-sample shape of ``x`` (read once)."""
        shape = tuple(int(d) for d in getattr(x, "shape", ())[1:])
        analyzer = self._per_shape.get(shape)
        if analyzer is None:
            with self._lock:
                analyzer = self._per_shape.get(shape)
                if analyzer is None:
                    from .readers import from_torch
                    analyzer = LRP(from_torch(self._unread, input_shape=shape), self._rule_spec,
                                   normalize_output_relevance=self.normalize_output_relevance,
                                   **self._options)
                    self._per_shape[shape] = analyzer
        analyzer.normalize_output_relevance = self.normalize_output_relevance
        return analyzer

    def _read_first(self) -> LRPError:
        return LRPError(f"this analyzer reads its model ({type(self._unread).__name__}) at its "
                        "first call, once per per-sample input shape; see .graphs")

    @property
    def model(self) -> Graph:
        """The graph as explained: canonized (unless ``canonize=False``)."""
        if self._per_shape is not None:
            raise self._read_first()
        return self._built.graph

    @property
    def rules(self) -> tuple[LRPRule, ...]:
        """The rule of each layer of :attr:`model`, bound to it."""
        if self._per_shape is not None:
            raise self._read_first()
        return self._built.rules

    @property
    def _cache(self) -> dict:
        return self._built.cache

    def _versions(self) -> tuple:
        return tuple(p._version for p in self._tracked)

    def _build(self, versions: tuple) -> _Build:
        """Canonize, check and bind the rules to the model as it is now, with an empty cache."""
        graph = canonize_model(self._source) if self._canonize else self._source
        graph = _with_private_arrays(graph)
        if not self._skip_checks:
            check_model(graph)
        resolved = self._resolve_rules(graph, self._rule_spec)
        for i, (rule, layer) in enumerate(zip(resolved, graph)):
            if not rule.is_compatible(layer):
                raise _compatibility_error(rule, layer, graph.label(i))
        rules = tuple(rule.bind(graph, i) for i, rule in enumerate(resolved))
        return _Build(graph, rules, **self._wiring(graph, rules), versions=versions, cache={})

    def _current(self) -> _Build:
        """The build for the model as it is now: rebuilt if a tracked tensor of the model was
        changed in place since (one build per change, whichever thread sees it first)."""
        built = self._built
        if not self._tracked:
            return built
        versions = self._versions()
        if versions == built.versions:
            return built
        with self._lock:
            if versions != self._built.versions:
                self._built = self._build(versions)
            return self._built

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

    @staticmethod
    def _wiring(graph: Graph, rules) -> dict:
        nodes = graph.nodes
        consumers = graph.consumers()
        # a value is kept for the backward pass if a layer that computes with its input reads it
        keep = [any(not isinstance(nodes[c].layer, PassThroughLayer) for c in readers)
                for readers in consumers]
        keep[-1] = True  # the output
        nonnegative = [False]
        for node in nodes:
            nonnegative.append(node.layer.output_nonnegative(tuple(nonnegative[j]
                                                                   for j in node.inputs)))
        reuse = tuple(isinstance(node.layer, LinearizableLayer) and rule.reuses_forward()
                      for node, rule in zip(nodes, rules))
        # The output of a layer whose rule reuses the forward pass is kept twice otherwise: its
        # pre-activation z (in the record) and activation(z) (the value the next layer reads).
        # Such a value is dropped once the forward pass is done with it and recomputed from z
        # when the backward pass reads it (one elementwise pass, the same numbers): the pass
        # then holds one array per layer, as the gradient does.
        recompute = [False] + [reuse[i] and nodes[i].layer.activation is not None and keep[i + 1]
                               for i in range(len(nodes))]
        recompute[-1] = False  # the output
        return dict(
            last_reader=tuple(max(c) if c else -1 for c in consumers),
            keep=tuple(keep),
            inputs_nonnegative=tuple(all(nonnegative[j] for j in node.inputs) for node in nodes),
            reuse=reuse, recompute=tuple(recompute))

    def _prepared(self, built: _Build, xp, device, dtype) -> _Prepared:
        key = (namespace_name(xp), str(device), str(dtype))
        prepared = built.cache.get(key)
        if prepared is not None:
            return prepared
        with self._lock:
            prepared = built.cache.get(key)
            if prepared is None:
                prepared = self._prepare(built, xp, device, dtype)
                built.cache[key] = prepared
        return prepared

    def _prepare(self, built: _Build, xp, device, dtype) -> _Prepared:
        converted: dict[int, Layer] = {}  # a layer used by two nodes is converted once

        def convert(p):
            return to_namespace(p, xp, device, dtype)

        layers, modified = [], []
        for node in built.graph.nodes:
            layer = converted.get(id(node.layer))
            if layer is None:
                layer = node.layer.convert(convert)
                converted[id(node.layer)] = layer
            layers.append(layer)
        self._check_parameters(built.graph, xp, layers)
        for layer, rule in zip(layers, built.rules):
            modified.append(rule.modify_layer(layer) if isinstance(layer, LinearizableLayer)
                            else None)
        return _Prepared(tuple(layers), tuple(modified))

    def _check_parameters(self, graph: Graph, xp, layers) -> None:
        """A :class:`~lrp_core.NonFiniteError` naming each parameter that holds NaN or infinity
        (one reduction over all parameters; located only when one is found)."""
        flags, where, seen = [], [], set()
        for i, layer in enumerate(layers):
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            for name, p in _arrays_of(layer):
                if xp.isdtype(p.dtype, ("real floating", "complex floating")):
                    ok = xp.isfinite(p)
                    if name in layer._masks:  # a mask may hold -inf (a masked position)
                        ok = ok | (p == -xp.inf)
                    flags.append(xp.all(ok))
                    where.append((i, name))
        if not flags or bool(xp.all(xp.stack(flags))):
            return
        bad = [f"{graph.label(i)}: {name}" for (i, name), ok in zip(where, flags)
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

    def _checked_input(self, x):
        """The array namespace of the input ``x``, once ``x`` is known to be a finite, batch-first
        floating-point array of the model's declared shape (also used by :class:`~lrp_core.CRP`)."""
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
        return xp

    def _setup(self, x):
        """What a call (or a CRP pass) starts with: ``(xp, build, device, compute dtype,
        prepared layers)``, the input checked and the build taken once (float16 and bfloat16
        compute in float32)."""
        xp = self._checked_input(x)
        built = self._current()
        device = array_api_compat.device(x)
        compute_dtype = xp.float32 if xp.finfo(x.dtype).bits < 32 else x.dtype
        return xp, built, device, compute_dtype, self._prepared(built, xp, device, compute_dtype)

    def __call__(self, x, output_selection=None, *, output_relevance=None,
                 layerwise_relevances: bool = False) -> Explanation:
        if self._per_shape is not None and len(getattr(x, "shape", ())) >= 2:
            return self._for_shape(x)(x, output_selection, output_relevance=output_relevance,
                                      layerwise_relevances=layerwise_relevances)
        xp, built, device, compute_dtype, prepared = self._setup(x)
        with _compute_context(xp):
            values, shapes, records = self._forward(built, prepared,
                                                    xp.astype(x, compute_dtype, copy=False))
            output = values[-1]
            if output_relevance is not None:
                try:
                    namespace_of(output_relevance)
                except TypeError:
                    raise TypeError(f"output_relevance must be an array shaped like the model "
                                    f"output {tuple(output.shape)}, got a "
                                    f"{type(output_relevance).__name__}") from None
                _check_same_device(output_relevance, x, "output_relevance")
                relevance = to_namespace(output_relevance, xp, device, compute_dtype)
                if tuple(relevance.shape) != tuple(output.shape):
                    raise ValueError(f"output_relevance has shape {tuple(relevance.shape)}, "
                                     f"the model output {tuple(output.shape)}")
                if not _all_finite(xp, relevance):
                    raise NonFiniteError("output_relevance holds NaN or infinity")
                selection = None
            else:
                relevance, selection = self._output_relevance(xp, output, output_selection)
            relevances = self._backward(built, prepared, values, shapes, records, relevance,
                                        layerwise_relevances)
        extras = None
        if layerwise_relevances:
            layerwise = [None if r is None else xp.astype(r, x.dtype, copy=False)
                         for r in relevances]
            extras = {"layerwise_relevances": layerwise}
        return Explanation(val=xp.astype(relevances[0], x.dtype, copy=False), input=x,
                           output=xp.astype(output, x.dtype, copy=False),
                           output_selection=selection, extras=extras)

    def _forward(self, built: _Build, prepared: _Prepared, x):
        nodes = built.graph.nodes
        values = [x] + [None] * len(nodes)
        shapes = [tuple(x.shape)] + [None] * len(nodes)
        records = [None] * len(nodes)
        for i, node in enumerate(nodes):
            layer = prepared.layers[i]
            inputs = [values[j] for j in node.inputs]
            try:
                if built.reuse[i]:
                    z, pullback = layer.linearize(*inputs)
                    records[i] = (z, pullback)
                    out = z if layer.activation is None else layer.activation.forward(z)
                else:
                    out = layer.forward(*inputs)
            except (ValueError, RuntimeError, TypeError, IndexError) as error:
                if isinstance(error, LRPError):
                    raise
                raise _input_error(built.graph, i, shapes, error) from error
            values[i + 1] = out
            shapes[i + 1] = tuple(out.shape)
            for j in node.inputs:  # drop what neither a later layer nor the backward pass needs
                if built.last_reader[j] == i and (not built.keep[j] or built.recompute[j]):
                    values[j] = None
        return values, shapes, records

    @staticmethod
    def _read_back(built: _Build, prepared: _Prepared, values, records, j: int):
        """Value ``j`` for the backward pass: as kept, or recomputed (and kept from now on)
        from the pre-activation that node ``j - 1`` recorded (``_Build.recompute``)."""
        if values[j] is None and built.recompute[j]:
            values[j] = prepared.layers[j - 1].activation.forward(records[j - 1][0])
        return values[j]

    def _read_back_all(self, built: _Build, prepared: _Prepared, values, records, upto: int):
        """Every value up to ``upto`` that was dropped for recomputation, recomputed (for
        :class:`~lrp_core.CRP`, whose concept passes read them after the shared pass)."""
        for j in range(1, upto + 1):
            if records[j - 1] is not None:
                self._read_back(built, prepared, values, records, j)

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

    def _backward(self, built: _Build, prepared, values, shapes, records, relevance, keep_all,
                  stop: int = 0):
        """The backward pass from the output's ``relevance`` through the nodes ``stop`` and above,
        in reverse order: the relevance of each value (all values' with ``keep_all``). With
        ``stop = s`` it ends once the relevance of value ``s`` is complete (every node reading
        it comes after it), where :class:`~lrp_core.CRP` takes over."""
        nodes = built.graph.nodes
        relevances = [None] * (len(nodes) + 1)
        relevances[-1] = relevance
        for i in range(len(nodes) - 1, stop - 1, -1):
            node = nodes[i]
            r = relevances[i + 1]
            if r is None:
                continue
            inputs = tuple(self._read_back(built, prepared, values, records, j)
                           for j in node.inputs)
            hints = StepHints(records[i], built.inputs_nonnegative[i])
            r_inputs = _step(built.rules[i], prepared.layers[i], prepared.modified[i], inputs,
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
        if self._per_shape is not None:
            return (f"LRP({type(self._unread).__name__}, read at its first call for each "
                    f"per-sample input shape; read so far: {sorted(self._per_shape)})")
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
