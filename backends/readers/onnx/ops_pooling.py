"""Translations of the pooling operators: ``MaxPool``, ``AveragePool``, ``GlobalAveragePool`` and
``GlobalMaxPool``, to :class:`lrp_core.MaxPool`, :class:`lrp_core.AvgPool`,
:class:`lrp_core.GlobalAvgPool` and :class:`lrp_core.GlobalMaxPool`.

Each translation ``translate(t, n)`` reads the node ``n`` through the translator ``t`` and returns
one entry per node output (see :mod:`lrp_core.backends.readers.onnx.translations`).
"""

from __future__ import annotations

import lrp_core as lrp

from .nodes import explicit_padding, spatial_attrs

__all__ = ["POOLING"]


def _compact(padding):
    """``0`` for no padding (for a shorter description), else the ``(low, high)`` pairs."""
    return 0 if all(p == (0, 0) for p in padding) else padding


def _max_pool(t, n):
    x = t.value(n, 0)
    if len(n.outputs) > 1 and t.is_used(n.outputs[1]):
        raise t.unsupported(n, "its Indices output is used")
    kernel = [int(k) for k in n.attr("kernel_shape")]
    strides, dilations = spatial_attrs(t, n, len(kernel))
    padding = explicit_padding(t, n, x, kernel, strides, dilations)
    layer = lrp.MaxPool(tuple(kernel), stride=tuple(strides), padding=_compact(padding),
                        dilation=tuple(dilations), ceil_mode=bool(n.attr("ceil_mode", 0)))
    return [t.add(layer, [x], n), None]


def _average_pool(t, n):
    x = t.value(n, 0)
    kernel = [int(k) for k in n.attr("kernel_shape")]
    strides, dilations = spatial_attrs(t, n, len(kernel))
    if any(dl != 1 for dl in dilations):
        raise t.unsupported(n, f"dilations {dilations} (average pooling has no dilation in "
                               "lrp_core)")
    padding = explicit_padding(t, n, x, kernel, strides, dilations)
    layer = lrp.AvgPool(tuple(kernel), stride=tuple(strides), padding=_compact(padding),
                        ceil_mode=bool(n.attr("ceil_mode", 0)),
                        count_include_pad=bool(n.attr("count_include_pad", 0)))
    return [t.add(layer, [x], n)]


def _global_pool(layer_type):
    def translate(t, n):
        return [t.add(layer_type(keepdims=True), [t.value(n, 0)], n)]
    return translate


POOLING = {
    "MaxPool": _max_pool,
    "AveragePool": _average_pool,
    "GlobalAveragePool": _global_pool(lrp.GlobalAvgPool),
    "GlobalMaxPool": _global_pool(lrp.GlobalMaxPool),
}
