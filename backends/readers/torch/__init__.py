"""Read a ``torch.nn.Module`` into an lrp-core graph, with ``torch.fx``; the module is never
modified, not even temporarily.

``from_torch(module)`` traces ``module`` symbolically (through a small wrapper module that holds
it, so the module itself is never traced as the root, patched or given attributes) and
translates every node the output depends on into an lrp-core layer:

* **modules** (leaf modules of ``torch.nn``): Linear, Conv1-3d, ConvTranspose1-3d, MaxPool1-3d,
  AvgPool1-3d, AdaptiveAvgPool1-3d, AdaptiveMaxPool1-3d, Flatten, Unflatten, Dropout (all
  kinds), Identity, BatchNorm1-3d (and SyncBatchNorm), LayerNorm, ReLU, ReLU6, Hardtanh(0, 6),
  LeakyReLU, GELU, SiLU, ELU, Tanh, Sigmoid, Softmax; Sequential and any other container are
  traced through.
* **functions and tensor methods**: ``F.relu``/``torch.relu``/``x.relu()`` and their in-place
  forms, the other activations, ``torch.flatten``/``x.flatten``, ``x.view``/``x.reshape``/
  ``torch.reshape`` with ``x.size(0)``/``x.shape[0]`` (or ``-1``) as the batch size,
  ``x.contiguous()``, ``+``/``+=``/``torch.add``/``x.add(_)`` of two tensors, ``torch.cat``,
  ``F.max_pool*``, ``F.avg_pool*``, ``F.adaptive_avg_pool*``, ``F.adaptive_max_pool*``,
  ``F.dropout*``, ``x.mean(dim=(2, 3))`` (all spatial axes), and ``F.linear``/``F.conv*``/
  ``F.conv_transpose*``/``F.batch_norm``/``F.layer_norm`` on the module's own parameters.

**With an input shape** (``from_torch(module, input_shape=(3, 224, 224))`` or an example batch;
:mod:`.propagation` propagates the per-sample shape of every tensor on fake tensors, the batch
kept symbolic), also: permutations (``permute``/``transpose``/``mT``/``movedim``), slicing and
indexing, ``narrow``/``select``/``split``/``chunk``/``unbind``, ``torch.stack``, ``view``/
``reshape`` with computed sizes, ``squeeze``/``unsqueeze``, products of two activations
(``a * b``, ``a @ b``, ``bmm``, two-operand ``einsum``), softmax inside the network, constants
(``x + c``, ``x * c``, a class token concatenated), Hardswish/Hardsigmoid/Mish, torchvision's
stochastic depth, ``nn.MultiheadAttention``, ``nn.TransformerEncoderLayer``/
``nn.TransformerEncoder`` (constant masks, ``batch_first=False`` between transposes) and
torchvision's Swin window attention (:mod:`.routing`, :mod:`.arithmetic`, :mod:`.attention`,
:mod:`.transformer`, :mod:`.layout`, :mod:`.swin`). Calls on parameters
alone are computed once, as constants. Without an input shape, a call that needs shapes raises
:class:`lrp_core.InputShapeNeededError` (``lrp.LRP(model)`` then reads the model at its first
call, per input shape).

The modules of this package, one concern each:

* :mod:`.tracing`: the wrapper, the fx tracer, :class:`UntraceableModelError`, hook warnings;
* :mod:`.propagation`: the per-sample shapes, propagated on fake tensors;
* :mod:`.walk`: the walk over the fx graph that builds the lrp-core graph (and folds constants);
* :mod:`.locations`: errors that name the fx node and the user's source line;
* :mod:`.values`: the values of the translation environment and how a translation fails;
* :mod:`.modules`: translations of leaf modules;
* :mod:`.layout`: values whose batch axis a permutation moved (``batch_first=False``);
* :mod:`.transformer`: ``nn.TransformerEncoderLayer`` and ``nn.TransformerEncoder`` as units;
* :mod:`.functions`: the tables of functional calls and tensor methods, translated by family in
  :mod:`.activations`, :mod:`.shapes`, :mod:`.routing`, :mod:`.arithmetic`, :mod:`.pooling`,
  :mod:`.weighted`, :mod:`.attention`, :mod:`.swin`.

Semantics:

* A module called twice becomes two graph nodes sharing one layer. Node names are the module's
  qualified name (``"features.0"``; a second call is ``"features.0@1"``, fx's own convention)
  or, for a function or method, the fx node's name (``"add_3"``).
* Inference semantics whatever the training flag: BatchNorm reads its running statistics,
  Dropout is the identity. The module is not put in eval mode; a ``forward`` that branches on
  ``self.training`` is traced along the branch of its current flag.
* In-place operations (``x.relu_()``, ``F.relu(x, inplace=True)``, ``nn.ReLU(inplace=True)``,
  ``x.add_(y)``) rebind every name of the mutated tensor, as eager execution does. fx itself
  traces ``a += b`` as ``a + b`` (a new tensor), so an alias of ``a`` taken before ``+=`` keeps
  the old value; views of a mutated tensor are not tracked either.
* Ranks are never guessed. The reader knows a tensor's rank only after a layer that fixes it (a
  convolution, a pooling, a flatten; not the model input): a call whose meaning depends on the
  rank (``x.mean((2, 3))``, ``x.flatten(-2)``, a softmax without ``dim``) is translated exactly
  where the rank is known and refused where it is not.
* Weights stay torch tensors on their device: ``parameter.detach()`` (a view, never a copy, and
  nothing is ever written into it). Build a new analyzer after changing the weights: an
  analyzer caches the rules' modified weights.
* Hooks registered on the module are not part of ``forward`` and are neither run nor modified
  (a warning names the modules that have forward hooks).

A node that has no translation raises :class:`lrp_core.UnsupportedOperatorError` naming the fx
node, its target and the line of the user's code that called it. Dead code (results the output
does not depend on) is never translated. A model ``torch.fx`` cannot trace raises
:class:`UntraceableModelError` (an :class:`lrp_core.LRPError`) that says what to do.
"""

from __future__ import annotations

import torch.nn as nn

import lrp_core as lrp

from .propagation import per_sample_shape, propagate_shapes
from .tracing import UntraceableModelError, trace, warn_about_hooks
from .walk import GraphWalk

__all__ = ["from_torch", "UntraceableModelError"]


def from_torch(module: nn.Module, *, leaf_modules: dict | None = None,
               input_shape=None) -> lrp.Graph:
    """The lrp-core graph of ``module`` (traced with torch.fx; the module is not modified).

    ``leaf_modules``: ``{ModuleType: translate}`` for modules to treat as one unit instead of
    tracing through them (parts fx cannot trace, or layers without a built-in translation);
    ``translate(module)`` returns an lrp-core layer or graph.

    ``input_shape``: the per-sample input shape (``(3, 224, 224)``, the batch axis left out) or
    an example input tensor (batch first; only its shape, dtype and device are read). With it,
    the reader knows the shape of every tensor (propagated on fake tensors, nothing computed)
    and reads permutations, slicing, views with computed sizes and attention; the graph then
    declares that per-sample input shape. Without it, the model is read with ranks only, and a
    call that needs shapes raises :class:`lrp_core.InputShapeNeededError` (``lrp.LRP(model)``
    catches it and reads the model at its first call, once per input shape).

    Raises :class:`UntraceableModelError` when fx cannot trace the model and
    :class:`lrp_core.UnsupportedOperatorError` for a call with no translation.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"from_torch reads a torch.nn.Module, got {type(module).__name__}")
    custom = dict(leaf_modules or {})
    for kind, translate in custom.items():
        if not (isinstance(kind, type) and issubclass(kind, nn.Module)) or not callable(translate):
            raise TypeError("leaf_modules maps nn.Module subclasses to functions module -> lrp "
                            f"layer, got {kind!r}: {translate!r}")
    warn_about_hooks(module)
    graph, wrapper = trace(module, tuple(custom))
    if input_shape is None:
        return GraphWalk(graph, wrapper, custom).read()
    full_shapes: dict = {}
    shapes = propagate_shapes(graph, wrapper, input_shape, full_shapes)
    read = GraphWalk(graph, wrapper, custom, shapes, full_shapes).read()
    return read.with_input_shape(per_sample_shape(input_shape))
