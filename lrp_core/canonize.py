"""Model preparation: canonize, strip the output softmax, check that LRP can explain the model.

Every function returns a new graph; the model passed in is never modified.
"""

from __future__ import annotations

import array_api_compat

from .arrays import namespace_of, to_namespace
from .errors import ModelCheckError
from .graph import Graph
from .layers import (
    ActivationLayer,
    AddConstant,
    Affine,
    BatchNorm,
    Conv,
    ConvTranspose,
    Dense,
    LinearizableLayer,
    PassThroughLayer,
    Softmax,
)
from .readers import as_graph
from .rewrite import drop, fuse, keep, rewrite

__all__ = ["canonize", "strip_softmax", "check_model"]


def _remove_noops(graph: Graph) -> Graph:
    def decide(site):
        return drop() if getattr(site.node.layer, "is_noop", False) else keep()

    return rewrite(graph, decide) or graph  # everything a no-op: keep the graph as it is


def _fuse_pairs(graph: Graph, fuse_pair) -> Graph:
    """Fuse each node into its sole producer where ``fuse_pair(producer_layer, layer)`` gives a
    layer."""
    def decide(site):
        if site.producer is not None:
            merged = fuse_pair(site.producer, site.node.layer)
            if merged is not None:
                return fuse(merged)
        return keep()

    return rewrite(graph, decide)


def fuse_batchnorm(linear, norm):
    """``linear`` followed by BatchNorm ``norm`` as one layer, epsilon included:
    ``scale = γ / sqrt(var + eps)``, ``W' = scale·W``, ``b' = scale·(b − mean) + β``.
    Returns ``None`` when the pair cannot be fused."""
    if not isinstance(norm, BatchNorm) or not isinstance(linear, (Dense, Conv, ConvTranspose)):
        return None
    if linear.activation is not None:
        return None
    w = linear.weight
    xp = namespace_of(w)
    device = array_api_compat.device(w)
    scale, shift = norm.convert(lambda p: to_namespace(p, xp, device, w.dtype)).scale_and_shift()
    out_channels = w.shape[1] * linear.groups if isinstance(linear, ConvTranspose) else w.shape[0]
    if scale.shape[0] != out_channels:
        return None
    return scale_outputs(linear, scale, shift)


def scale_outputs(linear, scale, shift):
    """``linear`` (a Dense, Conv or ConvTranspose) followed by ``y ↦ scale ⊙ y + shift`` per
    output channel, as one layer: ``W' = scale·W`` (per output channel, groups respected),
    ``b' = scale·b + shift``. ``scale`` and ``shift`` are 1-d over the output channels
    (``shift`` may be ``None``) in the weight's namespace."""
    w = linear.weight
    xp = namespace_of(w)
    if isinstance(linear, ConvTranspose):
        groups = linear.groups
        grouped = xp.reshape(w, (groups, w.shape[0] // groups, w.shape[1], *w.shape[2:]))
        s = xp.reshape(scale, (groups, 1, w.shape[1]) + (1,) * (len(w.shape) - 2))
        weight = xp.reshape(grouped * s, w.shape)
    else:
        weight = w * xp.reshape(scale, (-1,) + (1,) * (len(w.shape) - 1))
    bias = None if linear.bias is None else scale * linear.bias
    if shift is not None:
        bias = shift if bias is None else bias + shift
    return linear.replace(weight=weight, bias=bias)


def fuse_activation(linear, activation):
    """A Dense/Conv/ConvTranspose without activation followed by an elementwise activation."""
    if not isinstance(linear, (Dense, Conv, ConvTranspose)) or linear.activation is not None:
        return None
    if not isinstance(activation, ActivationLayer) or isinstance(activation, Softmax):
        return None
    return linear.replace(activation=activation)


def canonize(model) -> Graph:
    """The model in the form the rules expect, as a new graph:

    1. no-op layers removed (Identity, Dropout, a Reshape to the shape it already has), so
       "the first layer" is the first layer that does something;
    2. each BatchNorm that directly follows a Dense/Conv/ConvTranspose (and is its only reader)
       fused into it, epsilon included;
    3. each BatchNorm that is left replaced by the channel-wise :class:`~lrp_core.Affine` of its
       effective map, so that rules see ``γ/σ`` and ``β − μγ/σ``, never γ and β;
    4. each elementwise activation that directly follows a Dense/Conv/ConvTranspose (and is its
       only reader) fused into that layer's ``activation``, as in Flux;
    5. each ``AddConstant`` on the model input (directly, or after other input scale-and-shifts)
       replaced by the shift-only :class:`~lrp_core.Affine`: ``x - mean`` written in the model
       is an input normalisation (``PassRule`` in the presets, ZBox bounds mapped through it),
       not a bias that keeps relevance, as a constant added inside the network is (a constant
       holding ``-inf``, an attention mask on scores given as the input, stays a mask).
    """
    graph = _remove_noops(as_graph(model))
    graph = _fuse_pairs(graph, fuse_batchnorm)
    graph = _unfused_batchnorms_as_affine(graph)
    graph = _fuse_pairs(graph, fuse_activation)
    return _input_shifts_as_affine(graph)


def _input_shifts_as_affine(graph: Graph) -> Graph:
    on_input = []  # per node: it reads the model input through scale-and-shifts only
    for node in graph.nodes:
        source = node.inputs[0] if len(node.inputs) == 1 else None
        on_input.append(source == 0 or (source is not None and on_input[source - 1]
                                        and isinstance(graph.nodes[source - 1].layer, Affine)))

    def decide(site):
        layer = site.node.layer
        if isinstance(layer, AddConstant) and on_input[site.index] \
                and not _holds_mask(layer.value):
            return keep(Affine(shift=layer.value))
        return keep()

    return rewrite(graph, decide)


def _holds_mask(value) -> bool:
    """Whether a constant holds ``-inf`` (a mask, not a shift)."""
    xp = namespace_of(value)
    return bool(xp.any(value == -xp.inf))


def batchnorm_as_affine(norm: BatchNorm) -> Affine:
    """The BatchNorm ``norm`` as the channel-wise ``Affine`` of its effective map,
    ``scale = γ / sqrt(var + eps)`` and ``shift = β − mean · scale``: what the parameter rules
    see of a BatchNorm that could not be fused (never γ and β themselves)."""
    scale, shift = norm.scale_and_shift()
    return Affine(scale, shift, axis=1)


def _unfused_batchnorms_as_affine(graph: Graph) -> Graph:
    def decide(site):
        layer = site.node.layer
        return keep(batchnorm_as_affine(layer)) if isinstance(layer, BatchNorm) else keep()

    return rewrite(graph, decide)


def strip_softmax(model) -> Graph:
    """The model without a softmax on its output (a Softmax layer, or a softmax activation of
    the last layer); unchanged if there is none."""
    graph = as_graph(model)
    last = graph.nodes[-1]
    if isinstance(last.layer, Softmax):
        if len(graph) == 1:
            raise ModelCheckError("the model is only a Softmax; there is nothing to explain")
        return Graph.from_nodes(graph.nodes[: last.inputs[0]])
    if isinstance(getattr(last.layer, "activation", None), Softmax):
        return graph.with_layers(list(graph)[:-1] + [last.layer.replace(activation=None)])
    return graph


def check_model(model) -> bool:
    """``True`` if LRP can explain every layer; otherwise a :class:`ModelCheckError` whose
    message names each unsupported layer or activation and where it is."""
    graph = as_graph(model)
    problems = []
    last = len(graph) - 1
    for i, node in enumerate(graph.nodes):
        layer = node.layer
        softmax = (isinstance(layer, Softmax)
                   or isinstance(getattr(layer, "activation", None), Softmax))
        if softmax and i == last:
            problems.append(f"{graph.label(i)}: a softmax on the output; explain the logits "
                            "instead: model = lrp.strip_softmax(model)")
        elif softmax and not isinstance(layer, Softmax):
            problems.append(f"{graph.label(i)}: a softmax activation inside the model; write it "
                            "as a layer of its own, lrp.Softmax(dim), which the rules "
                            "(lrp.SoftmaxRule) explain")
        elif not isinstance(layer, (LinearizableLayer, PassThroughLayer)):
            problems.append(f"{graph.label(i)}: {type(layer).__name__} is not a supported "
                            "layer type")
    if problems:
        raise ModelCheckError("LRP cannot explain this model as it is:\n" +
                              "\n".join(f"  - {p}" for p in problems) +
                              "\n(lrp.LRP(..., skip_checks=True) skips this check)")
    return True
