"""The pass after translation: :func:`build_graph` runs :func:`lrp_core.rewrite.rewrite` over the
translated nodes, folding a constant ``Add``/``Mul``/``Sub``/``Div`` (an ``Affine``) that follows
a Dense or Conv into its weight and bias, merging consecutive scale-and-shifts
(:func:`fold_affine`; a shift that is left is an ``AddConstant``), and making a zero ``Pad``
before a Conv or an average pooling their padding (:func:`absorb_pad`).
"""

from __future__ import annotations

import numpy as np

import lrp_core as lrp
from lrp_core.canonize import scale_outputs
from lrp_core.graph import Graph, Node
from lrp_core.kernels.shapes import normalize_padding
from lrp_core.layers import Affine, ZeroPad
from lrp_core.rewrite import absorb, fuse, keep, rewrite

__all__ = ["build_graph", "fold_affine", "absorb_pad"]


def build_graph(nodes, shapes, output: int) -> Graph:
    """The graph of the translated ``nodes`` that computes the value ``output``, with constant
    scale-and-shifts folded into their producer and zero pads absorbed (``shapes``: the
    per-sample shape of each value, ``None`` where unknown)."""

    def decide(site):
        layer = site.node.layer
        if site.producer is None:
            return keep()
        if isinstance(layer, Affine):
            merged = fold_affine(site.producer, layer, shapes[site.producer_value])
            if merged is not None:
                return fuse(merged)
        if isinstance(site.producer, ZeroPad):
            absorbed = absorb_pad(site.producer, layer)
            if absorbed is not None:
                return absorb(absorbed)
        return keep()

    graph = rewrite(nodes, decide, output=output)
    if graph is None:  # the output is the input (a graph of Identity/Dropout only)
        return Graph.from_nodes([Node(lrp.Identity(), (0,), "identity")])
    return graph.with_layers([_as_add_constant(layer) for layer in graph])


def _as_add_constant(layer):
    """A shift alone (``x + c``: a positional embedding, a bias after a concatenation) that no
    producer took in is an ``AddConstant``, a bias inside the network, as the torch reader reads
    it; a scale-and-shift stays an ``Affine``."""
    if (isinstance(layer, Affine) and layer.axis is None and layer.shift is not None
            and np.all(np.asarray(layer.scale) == 1)):
        return lrp.AddConstant(layer.shift)
    return layer


def _channel_vector(c, out_shape, axis: int, channels: int):
    """A per-sample constant as a vector over the output channels (``axis`` of one sample), or
    ``None`` if it varies along another axis."""
    if c.ndim == 0:
        return np.full(channels, c, dtype=c.dtype)
    if out_shape is None or c.ndim > len(out_shape):
        return None
    full = c.reshape((1,) * (len(out_shape) - c.ndim) + c.shape)
    axis %= full.ndim
    if any(size != 1 for i, size in enumerate(full.shape) if i != axis):
        return None
    vector = full.reshape(-1)
    if vector.size == 1:
        return np.full(channels, vector[0], dtype=c.dtype)
    return vector if vector.size == channels else None


def fold_affine(producer, affine: Affine, out_shape):
    """``producer`` followed by the constant scale-and-shift ``affine`` as one layer, or
    ``None``."""
    if isinstance(producer, Affine):
        if producer.axis is not None or affine.axis is not None:
            return None
        s1, t1, s2, t2 = producer.scale, producer.shift, affine.scale, affine.shift
        scale = s1 if s2 is None else (s2 if s1 is None else s1 * s2)
        shift = t1 if t1 is None or s2 is None else t1 * s2
        shift = t2 if shift is None else (shift if t2 is None else shift + t2)
        return Affine(scale, shift)
    if (not isinstance(producer, (lrp.Dense, lrp.Conv, lrp.ConvTranspose))
            or producer.activation is not None):
        return None
    w = producer.weight
    if isinstance(producer, lrp.ConvTranspose):
        channels, axis = w.shape[1] * producer.groups, 0
    else:
        channels, axis = w.shape[0], (-1 if isinstance(producer, lrp.Dense) else 0)
    scale = shift = None
    if affine.scale is not None:
        scale = _channel_vector(affine.scale, out_shape, axis, channels)
    if affine.shift is not None:
        shift = _channel_vector(affine.shift, out_shape, axis, channels)
    if (affine.scale is not None and scale is None) or (affine.shift is not None and shift is None):
        return None
    if scale is None:
        scale = np.ones(channels, dtype=w.dtype)
    return scale_outputs(producer, np.asarray(scale, dtype=w.dtype),
                         None if shift is None else np.asarray(shift, dtype=w.dtype))


def absorb_pad(pad: ZeroPad, layer):
    """A Conv or average pooling that takes the zero padding ``pad`` of its input as its own, or
    ``None`` (max pooling never: its padding cells never win, zeros can)."""
    if pad.pads[0] != (0, 0):
        return None
    spatial = pad.pads[1:]
    if isinstance(layer, lrp.Conv) and not isinstance(layer.padding, str):
        if len(spatial) != len(layer.padding):
            return None
        return layer.replace(padding=_add_padding(layer.padding, spatial))
    if isinstance(layer, lrp.AvgPool):
        own = normalize_padding(layer.padding, len(spatial))
        if not layer.count_include_pad and any(p != (0, 0) for p in own):
            return None
        return lrp.AvgPool(layer.kernel_size, stride=layer.stride,
                           padding=_add_padding(own, spatial),
                           ceil_mode=layer.ceil_mode, count_include_pad=True)
    return None


def _add_padding(own, extra):
    """The ``(low, high)`` pairs ``own`` widened by ``extra``."""
    return tuple((lo + a, hi + b) for (lo, hi), (a, b) in zip(own, extra))
