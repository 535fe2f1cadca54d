"""All operator translations in one table, :data:`TRANSLATIONS`, merged from the ``ops_*``
modules (one per operator family), and :data:`SUPPORTED_OPS`.

A translation ``translate(t, n)`` reads the node ``n`` (a
:class:`~lrp_core.backends.readers.onnx.nodes.NodeView`) through the translator ``t``
(:class:`~lrp_core.backends.readers.onnx.translator.Translator`) and returns one entry per node
output: a value index of the lrp_core graph under construction (an activation), a NumPy array
(a constant) or ``None`` (an output nothing reads). Attributes are read the way the node's opset
defines them (``axes`` as an attribute before opset 13 and an input from 13 on, and so on).
"""

from __future__ import annotations

from .ops_elementwise import ELEMENTWISE
from .ops_linear import LINEAR
from .ops_normalization import NORMALIZATION
from .ops_normalize import NORMALIZE
from .ops_pooling import POOLING
from .ops_routing import ROUTING
from .ops_shape import SHAPE

__all__ = ["TRANSLATIONS", "SUPPORTED_OPS"]


def _merge(*tables):
    merged = {}
    for table in tables:
        twice = set(merged) & set(table)
        if twice:
            raise RuntimeError(f"ONNX operators translated twice: {sorted(twice)}")
        merged.update(table)
    return merged


#: The translation of each ONNX operator to lrp_core layers, by op type.
TRANSLATIONS = _merge(LINEAR, ELEMENTWISE, POOLING, SHAPE, NORMALIZATION, ROUTING, NORMALIZE)

#: The operators translated to layers (``Constant`` included); more are folded on constants.
SUPPORTED_OPS = tuple(sorted(set(TRANSLATIONS) | {"Constant"}))
