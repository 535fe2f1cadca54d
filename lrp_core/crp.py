"""Concept Relevance Propagation (CRP): which concepts a layer has learned matter for a decision,
and where in the input each of them lies.

    crp = lrp.CRP(analyzer, "features.8", lrp.TopNFeatures(4))   # or a layer index, 5
    expl = crp(x)                     # expl.val: (N, n_concepts, *x.shape[1:])
    expl.val[0, 2]                    # sample 0, its third concept: relevance shaped like x[0]
    expl.extras["concepts"]           # [[c0, c1, c2, c3], ...]: the channels of each sample
    images = lrp.heatmap(expl)        # [one labelled grid: samples x concepts]

Reference: R. Achtibat, M. Dreyer, I. Eisenbraun, S. Bosse, T. Wiegand, W. Samek and
S. Lapuschkin, *From attribution maps to human-understandable explanations through Concept
Relevance Propagation*, Nature Machine Intelligence 5 (2023); RelevancePropagation.jl's ``CRP``.

What is computed, for a layer ``ℓ`` whose output ``A`` has its features along axis 1 (channels of
a convolution, neurons of a dense layer):

1. the analyzer's forward pass and its LRP backward pass from the output down to ``A``, once:
   the relevance ``R_A`` of every feature at the layer, exactly as plain LRP has it there;
2. the selector (:class:`~lrp_core.IndexedFeatures`, :class:`~lrp_core.TopNFeatures`) chooses
   the concepts ``c`` of each sample from the feature relevances ``Σ_space R_A[:, c]``;
3. for each concept ``c``, the backward pass continues from ``A`` to the input with only that
   concept's relevance kept, ``R_A ⊙ 1[channel = c]`` (the same rules, the same activations):
   ``val[n, k]`` is the input relevance of concept ``concepts[n][k]`` of sample ``n``.

**In a DAG** a concept pass propagates only the relevance that flows *through* the layer's
output: the pass starts from the masked ``R_A`` alone, so relevance that reaches the input along
paths around ``A`` (a residual connection skipping the layer) belongs to no concept. Every rule
step is linear in the relevance it is given (the activations fixed), so the concept relevances
summed over all features of the layer equal the part of plain LRP that passes through ``A``;
for a chain, where every path passes through ``A``, that is all of plain LRP's relevance.

**Efficiency.** Steps 1 and 2 run once for the batch. The concept passes of all
``(sample, concept)`` pairs run as one batched backward pass: each layer below ``ℓ`` reads its
saved inputs replicated along the batch, one row per pair (gathered per layer, when it is
reached). ``max_memory`` (bytes, default 1 GiB) bounds a batched pass: a pass holds about
``CONCEPT_PASS_ARRAYS`` (4) arrays of the largest layer below ``ℓ`` per pair (its gathered
inputs and output, the rule's modified input and denominator), so the pairs are split into chunks
of ``max(1, max_memory // (itemsize · 4 · largest))`` pairs and run one chunk after another
(``max_memory=None``: one chunk). A rule that reuses the forward pass's linearisation for plain
LRP (``ZeroRule``, ``EpsilonRule``) recomputes it on the replicated inputs, so a concept pass
costs about three convolution-equivalents per layer and pair.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

from .analyzer import _compute_context, _step
from .arrays import namespace_of, to_numpy
from .concepts import FeatureSelector
from .explanation import Explanation
from .graph import Graph
from .layers import PassThroughLayer
from .rules import StepHints

__all__ = ["CRP", "resolve_layer", "DEFAULT_MAX_MEMORY", "CONCEPT_PASS_ARRAYS"]

#: the default bound, in bytes, on the memory of one batched concept pass (1 GiB)
DEFAULT_MAX_MEMORY = 2**30
#: arrays of a layer's size alive per (sample, concept) pair in a step of a concept pass
CONCEPT_PASS_ARRAYS = 4


def resolve_layer(graph: Graph, layer) -> int:
    """The index (topological order, from 0) of ``layer`` in ``graph``: an index (negative ones
    count from the end) or a node's name (a torch module's qualified name such as
    ``"features.8"``, an ONNX node's name). An unknown one is a ``ValueError`` listing the
    layers."""
    n = len(graph)
    if isinstance(layer, str):
        for i, node in enumerate(graph.nodes):
            if node.name == layer:
                return i
        raise ValueError(f"the model has no layer named {layer!r}; {_valid_layers(graph)}")
    if isinstance(layer, bool):
        raise TypeError(f"layer is an index or a layer name, got {layer!r}")
    try:
        index = operator.index(layer)
    except TypeError:
        raise TypeError(f"layer is an index (topological order, from 0) or a layer name, got "
                        f"{layer!r}") from None
    if not -n <= index < n:
        raise ValueError(f"layer {index} is out of range for a model of {n} layers; "
                         f"{_valid_layers(graph)}")
    return index % n


def _valid_layers(graph: Graph) -> str:
    named = [(i, node.name) for i, node in enumerate(graph.nodes) if node.name]
    listing = "\n".join(f"  {i}  {graph.label(i).split(' ', 2)[2][1:-1]}"
                        for i in range(len(graph)))
    names = (f"valid names: {', '.join(repr(name) for _, name in named)}; " if named else "")
    return f"{names}valid indices 0..{len(graph) - 1}:\n{listing}"


class CRP:
    """Concept Relevance Propagation with an LRP ``analyzer`` at ``layer`` (an index in the
    topological order of ``analyzer.model``, counted from 0, or a layer's name) for the concepts
    chosen by ``features`` (:class:`~lrp_core.IndexedFeatures` or
    :class:`~lrp_core.TopNFeatures`); see the module docstring for what is computed, the
    meaning in a DAG and the memory bound ``max_memory`` (bytes; ``None``: no bound).

    ``crp(x, output_selection=None)`` returns an :class:`~lrp_core.Explanation` with
    ``analyzer="CRP"``, ``val`` shaped ``(N, n_concepts, *x.shape[1:])`` (``val[n, k]``: the
    input relevance of concept ``k`` of sample ``n``), ``input``, ``output`` and
    ``output_selection`` of the batch as for LRP, and ``extras``:

    - ``"layer"``, ``"layer_name"``, ``"layer_label"``: the concept layer's index, its name
      (or ``None``) and how messages name it (``"layer 5 (features.8: Conv(...))"``);
    - ``"feature_kind"``: ``"channel"`` (the layer's output has axes after the features) or
      ``"neuron"``;
    - ``"concepts"``: the chosen features, one list of ints per sample;
    - ``"concept_relevance"``: ``(N, n_concepts)``, each concept's relevance at the layer
      (its ``R_A`` summed over space); in ``x``'s namespace and dtype;
    - ``"feature_relevance"``: ``(N, C)``, the relevance of every feature of the layer;
    - ``"concept_share"``: ``(N, n_concepts)`` NumPy floats, each concept's relevance over the
      absolute relevance of all the layer's features, ``R_c / Σ_f |R_f|`` (zennit-crp's
      ``abs_norm``); the heatmap grid prints it.
    """

    def __init__(self, analyzer, layer, features: FeatureSelector, *,
                 max_memory: int | None = DEFAULT_MAX_MEMORY):
        # a torch model read per input shape (lrp.InputShapeNeededError): the layer is resolved
        # in the graph read for each shape, at the first call with it
        self._per_shape = {} if getattr(analyzer, "_per_shape", None) is not None else None
        if self._per_shape is None and (not hasattr(analyzer, "model") or
                                        not isinstance(analyzer.model, Graph) or
                                        not hasattr(analyzer, "rules")):
            raise TypeError(f"CRP takes an LRP analyzer, lrp.CRP(lrp.LRP(model, rules), layer, "
                            f"features); got {analyzer!r}")
        if not isinstance(features, FeatureSelector):
            raise TypeError(f"features must be lrp.IndexedFeatures(...) or lrp.TopNFeatures(n), "
                            f"got {features!r}")
        if max_memory is not None:
            if isinstance(max_memory, bool) or operator.index(max_memory) < 1:
                raise ValueError(f"max_memory is a number of bytes, 1 or more (or None), got "
                                 f"{max_memory!r}")
            max_memory = operator.index(max_memory)
        self.analyzer = analyzer
        self._layer = layer
        self.layer = None if self._per_shape is not None else resolve_layer(analyzer.model, layer)
        self.features = features
        self.max_memory = max_memory

    @property
    def layer_name(self) -> str | None:
        if self.layer is None:
            return self._layer if isinstance(self._layer, str) else None
        return self.analyzer.model.nodes[self.layer].name

    def __repr__(self) -> str:
        where = (f"{self._layer!r}, read at the first call" if self.layer is None
                 else self.analyzer.model.label(self.layer))
        return f"CRP({where}, {self.features!r}, max_memory={self.max_memory})"

    def _for_shape(self, x) -> CRP:
        """The CRP of the analyzer read for ``x``'s per-sample shape (built once per shape)."""
        analyzer = self.analyzer._for_shape(x)
        crp = self._per_shape.get(id(analyzer))
        if crp is None:
            crp = CRP(analyzer, self._layer, self.features, max_memory=self.max_memory)
            self._per_shape[id(analyzer)] = crp
        return crp

    def __call__(self, x, output_selection=None) -> Explanation:
        if self._per_shape is not None:
            return self._for_shape(x)(x, output_selection)
        analyzer = self.analyzer
        value = self.layer + 1  # the layer's output value
        run = _shared_pass(analyzer, x, output_selection, value)
        xp, graph = run.xp, run.built.graph
        where = graph.label(self.layer)
        relevance = run.relevance  # R_A: (N, C, ...), the compute dtype
        if len(relevance.shape) < 2:
            raise ValueError(f"CRP needs a layer whose output has features along axis 1, "
                             f"(N, C, ...); {where} outputs shape {tuple(relevance.shape)}")
        n, c = int(relevance.shape[0]), int(relevance.shape[1])
        with run.context():
            feature_relevance = relevance
            if len(relevance.shape) > 2:
                feature_relevance = xp.sum(relevance, axis=tuple(range(2, len(relevance.shape))))
            host = np.asarray(to_numpy(feature_relevance), dtype=np.float64)
            concepts = np.array(self.features.select(host, where), dtype=np.int64)  # a copy
            if concepts.ndim != 2 or concepts.shape[0] != n:
                raise ValueError(f"{self.features!r} returned an array of shape {concepts.shape}; "
                                 f"a selector returns (N, n_concepts) = ({n}, ...)")
            k = int(concepts.shape[1])
            device = run.device
            one_hot = xp.astype(
                xp.asarray(concepts, device=device)[:, :, None]
                == xp.arange(c, device=device)[None, None, :], relevance.dtype)  # (N, K, C)
            concept_relevance = xp.sum(one_hot * feature_relevance[:, None, :], axis=2)
            val = self._concept_passes(run, concepts.reshape(-1), n, k, c)
        total = np.abs(host).sum(axis=1, keepdims=True)
        share = np.take_along_axis(host, concepts, axis=1) / np.where(total > 0, total, 1.0)
        dtype = x.dtype
        extras = {
            "layer": self.layer,
            "layer_name": graph.nodes[self.layer].name,
            "layer_label": where,
            "feature_kind": "channel" if len(relevance.shape) > 2 else "neuron",
            "concepts": concepts.tolist(),
            "concept_relevance": xp.astype(concept_relevance, dtype, copy=False),
            "feature_relevance": xp.astype(feature_relevance, dtype, copy=False),
            "concept_share": share,
        }
        return Explanation(val=xp.astype(val, dtype, copy=False), input=x,
                           output=xp.astype(run.output, dtype, copy=False),
                           output_selection=run.selection, analyzer="CRP", extras=extras)

    # -- the concept passes ----------------------------------------------------------------------
    def _chunk_size(self, run, value: int, pairs: int) -> int:
        """Pairs per batched concept pass under :attr:`max_memory`."""
        if self.max_memory is None:
            return pairs
        graph = run.built.graph
        largest = _per_sample(run.shapes[value])
        for i in range(value):
            node = graph.nodes[i]
            size = _per_sample(run.shapes[i + 1]) + sum(_per_sample(run.shapes[j])
                                                        for j in node.inputs)
            largest = max(largest, size)
        itemsize = _itemsize(run.relevance)
        per_pair = itemsize * CONCEPT_PASS_ARRAYS * largest
        return max(1, min(pairs, self.max_memory // per_pair))

    def _concept_passes(self, run, channels: np.ndarray, n: int, k: int, c: int):
        """The input relevance of each pair ``p = sample · k + concept``: ``(n, k, *x[1:])``."""
        xp, value = run.xp, self.layer + 1
        pairs = n * k
        chunk = self._chunk_size(run, value, pairs)
        rest = (1,) * (len(run.relevance.shape) - 2)
        out = []
        for start in range(0, pairs, chunk):
            stop = min(pairs, start + chunk)
            rows = xp.asarray(np.arange(start, stop) // k, dtype=xp.int64, device=run.device)
            chosen = xp.asarray(channels[start:stop], dtype=xp.int64, device=run.device)
            mask = xp.astype(chosen[:, None] == xp.arange(c, device=run.device)[None, :],
                             run.relevance.dtype)
            seed = xp.take(run.relevance, rows, axis=0) * xp.reshape(mask, (stop - start, c, *rest))
            out.append(_propagate_down(run, value, seed, rows))
        val = out[0] if len(out) == 1 else xp.concat(out, axis=0)
        return xp.reshape(val, (n, k, *run.shapes[0][1:]))


@dataclass
class _Run:
    """The shared part of a CRP call: the forward pass and the relevance at the layer."""

    xp: object
    device: object
    built: object
    prepared: object
    values: list
    shapes: list
    relevance: object  # at the concept layer's output value
    output: object
    selection: list

    def context(self):
        return _compute_context(self.xp)


def _shared_pass(analyzer, x, output_selection, value: int) -> _Run:
    """The forward pass and the backward pass from the output down to ``value``, once."""
    xp, built, device, compute_dtype, prepared = analyzer._setup(x)
    with _compute_context(xp):
        values, shapes, records = analyzer._forward(built, prepared,
                                                    xp.astype(x, compute_dtype, copy=False))
        output = values[-1]
        relevance, selection = analyzer._output_relevance(xp, output, output_selection)
        relevances = analyzer._backward(built, prepared, values, shapes, records, relevance,
                                        False, stop=value)
        analyzer._read_back_all(built, prepared, values, records, value)
    return _Run(xp, device, built, prepared, values, shapes, relevances[value], output, selection)


def _propagate_down(run, value: int, relevance, rows):
    """The backward pass from the relevance of ``value`` (a batch of pairs) to the input: node
    ``value - 1`` down to node 0, each reading its inputs of the shared forward pass replicated
    to the pairs' samples (``rows``). Nodes that the relevance does not reach are skipped."""
    xp = run.xp
    graph, rules = run.built.graph, run.built.rules
    layers, modified = run.prepared.layers, run.prepared.modified
    relevances = {value: relevance}
    for i in range(value - 1, -1, -1):
        r = relevances.pop(i + 1, None)
        if r is None:
            continue
        node = graph.nodes[i]
        layer = layers[i]
        batch = int(r.shape[0])
        shapes = [(batch, *run.shapes[j][1:]) for j in node.inputs]
        if isinstance(layer, PassThroughLayer):
            inputs = ()
        else:
            inputs = tuple(xp.take(run.values[j], rows, axis=0) for j in node.inputs)
        hints = StepHints(None, run.built.inputs_nonnegative[i])
        r_inputs = _step(rules[i], layer, modified[i], inputs, shapes, r, hints)
        for j, r_j in zip(node.inputs, r_inputs):
            relevances[j] = r_j if j not in relevances else relevances[j] + r_j
    result = relevances.get(0)
    if result is None:  # the layer does not depend on the input (cannot happen after pruning)
        result = xp.zeros((int(relevance.shape[0]), *run.shapes[0][1:]), dtype=relevance.dtype,
                          device=run.device)
    return result


def _per_sample(shape) -> int:
    size = 1
    for d in shape[1:]:
        size *= int(d)
    return size


def _itemsize(array) -> int:
    xp = namespace_of(array)
    return max(1, xp.finfo(array.dtype).bits // 8)

