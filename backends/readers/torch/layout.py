"""Values whose batch axis is not first: the reader follows a moved batch axis instead of
emitting a permutation that moves it (lrp-core keeps the batch axis first and never moves it).

A model built for ``batch_first=False`` modules (``nn.MultiheadAttention``,
``nn.TransformerEncoderLayer``, ``nn.TransformerEncoder``, which read ``(length, batch,
embedding)``) typically transposes its batch-first input before them and back after them. A
permutation that moves the batch axis gives a :class:`~.routing.BatchMoved` value (the
batch-first tensor and the permutation ``axes``: the model's tensor is ``x.permute(axes)``);
nothing is emitted. On such a value the reader follows:

* a further permutation (composed; one that brings the batch axis back to the front is an
  ordinary ``Permute``, or nothing), and taking entries of its leading axis (``x[0]``: the first
  token of a ``(length, batch, embedding)`` tensor);
* the modules with ``batch_first=False`` when the value is ``(L, N, E)`` (``axes == (1, 0, 2)``):
  translated on the batch-first tensor, their output again a moved value;
* calls that act on each cell or on the last axes only, whose result is again a moved value:
  elementwise activations, dropout, identity, ``contiguous``, additions and products of two
  values moved alike, products with numbers, constants of at most one axis broadcast along an
  unmoved last axis; ``nn.Linear``/``F.linear`` and ``nn.LayerNorm``/``F.layer_norm`` where the
  axes they read are not moved.

Any other call on a moved value (one that would mix or reduce the batch axis, or that the
reader does not follow), a call that mixes a moved value with a batch-first tensor, and a
moved value as the model's output are refused, naming the call and the user's line.
"""

from __future__ import annotations

import operator

import torch
import torch.nn as nn
import torch.nn.functional as F

from .modules import activation_module
from .routing import BatchMoved
from .values import Tensor, fail, leaves

__all__ = ["moved_values", "follows_itself", "unwrap", "wrap", "underlying_shape",
           "OUTPUT_MOVED"]

# calls that read a moved value themselves (routing.BatchMoved): permutations, taking entries
_ROUTING_FUNCTIONS = {torch.permute, torch.transpose, torch.swapaxes, torch.movedim,
                      torch.moveaxis, operator.getitem, torch.unbind}
_ROUTING_METHODS = {"permute", "transpose", "swapaxes", "movedim", "moveaxis", "__getitem__",
                    "unbind"}

_ELEMENTWISE_FUNCTIONS = {
    F.relu, torch.relu, torch.relu_, F.relu_, F.relu6, F.hardtanh, F.leaky_relu, F.gelu, F.silu,
    F.elu, torch.tanh, F.tanh, torch.sigmoid, F.sigmoid, F.hardswish, F.hardsigmoid, F.mish,
    F.dropout, torch.dropout, F.alpha_dropout,
    operator.add, operator.iadd, torch.add, operator.sub, operator.isub, torch.sub,
    operator.mul, operator.imul, torch.mul, operator.truediv, operator.itruediv, torch.div,
    operator.neg, torch.neg,
}
_ELEMENTWISE_METHODS = {"relu", "relu_", "tanh", "tanh_", "sigmoid", "sigmoid_", "contiguous",
                        "add", "add_", "__add__", "__radd__", "mul", "mul_", "__mul__",
                        "__rmul__", "sub", "div", "neg"}
_BY_NAME = {"torchvision.ops.stochastic_depth.stochastic_depth"}

OUTPUT_MOVED = ("the model's output has its batch axis moved (a transpose or permute of the "
                "model's batch-first values that is not undone): lrp-core explains models "
                "whose output has the batch axis first; move it back before returning "
                "(x.transpose(0, 1))")


def moved_values(args, kwargs) -> list:
    """The :class:`BatchMoved` values among the arguments of a call."""
    return [v for v in leaves((args, kwargs)) if isinstance(v, BatchMoved)]


def follows_itself(op: str, target) -> bool:
    """Whether the translation of this call reads moved values itself (permutations, taking
    entries of the leading axis)."""
    if op == "call_method":
        return target in _ROUTING_METHODS
    return op == "call_function" and target in _ROUTING_FUNCTIONS


def _refuse(what: str, axes: tuple, why: str = "") -> None:
    fail(f"{what} reads a tensor whose batch axis is moved (the model's tensor is the "
         f"batch-first value permuted by {axes}, after a transpose or permute that moves the "
         f"batch axis){why}; lrp-core keeps the batch axis first and follows such a tensor only "
         "through elementwise calls, Linear and LayerNorm on unmoved last axes, additions of "
         "two tensors moved alike, nn.MultiheadAttention/nn.TransformerEncoderLayer/"
         "nn.TransformerEncoder with batch_first=False, and the permutation back: move the "
         "batch axis back first (x.transpose(0, 1))")


def _trailing_unmoved(axes: tuple, count: int) -> bool:
    rank = len(axes)
    return tuple(axes[rank - count:]) == tuple(range(rank - count, rank))


def _batch_first_false(module) -> bool:
    if isinstance(module, nn.MultiheadAttention):
        return not module.batch_first
    if isinstance(module, nn.TransformerEncoderLayer):
        return not module.self_attn.batch_first
    if isinstance(module, nn.TransformerEncoder):
        return len(module.layers) > 0 and isinstance(module.layers[0], nn.TransformerEncoderLayer) \
            and not module.layers[0].self_attn.batch_first
    return False


def _module_follows(module, axes: tuple) -> str | None:
    """``None`` if the reader follows ``module`` on a value moved by ``axes``, else why not."""
    name = type(module).__name__
    if isinstance(module, (nn.MultiheadAttention, nn.TransformerEncoderLayer,
                           nn.TransformerEncoder)):
        if not _batch_first_false(module):
            return f" ({name} with batch_first=True reads (batch, length, embedding))"
        if axes != (1, 0, 2):
            return f" ({name} with batch_first=False reads (length, batch, embedding))"
        return None
    if isinstance(module, nn.Linear):
        return None if _trailing_unmoved(axes, 1) else " (its last axis is moved)"
    if isinstance(module, nn.LayerNorm):
        count = len(module.normalized_shape)
        return None if _trailing_unmoved(axes, count) else " (an axis it normalises is moved)"
    if isinstance(module, (nn.modules.dropout._DropoutNd, nn.Identity)):
        return None
    if not isinstance(module, nn.Softmax) and activation_module(module) is not None:
        return None
    return ""


def _function_follows(op: str, target, args, kwargs, axes: tuple) -> str | None:
    if op == "call_method" and target in _ELEMENTWISE_METHODS:
        return _constants_follow(args, kwargs, axes)
    if op != "call_function":
        return ""
    if target in _ELEMENTWISE_FUNCTIONS or \
            f"{getattr(target, '__module__', '')}.{getattr(target, '__name__', '')}" in _BY_NAME:
        return _constants_follow(args, kwargs, axes)
    if target is F.linear:
        return None if _trailing_unmoved(axes, 1) else " (its last axis is moved)"
    if target is F.layer_norm:
        shape = args[1] if len(args) > 1 else kwargs.get("normalized_shape")
        count = 1 if isinstance(shape, int) else len(tuple(shape))
        return None if _trailing_unmoved(axes, count) else " (an axis it normalises is moved)"
    return ""


def _constants_follow(args, kwargs, axes: tuple) -> str | None:
    """Constant tensors broadcast against a moved value: numbers, 0-d tensors, and 1-d ones
    along an unmoved last axis."""
    for v in leaves((args, kwargs)):
        if isinstance(v, torch.Tensor) and v.dim() > 0 and \
                (v.dim() > 1 or not _trailing_unmoved(axes, 1)):
            return (f" (with a constant of shape {tuple(v.shape)}, which would broadcast "
                    "against the moved axes)")
    return None


def _describe_call(op: str, target, module) -> str:
    if module is not None:
        return type(module).__name__
    if op == "call_method":
        return f"Tensor.{target}"
    return getattr(target, "__name__", repr(target))


def unwrap(op: str, target, module, args, kwargs):
    """``(axes, args, kwargs)``: the call's arguments with each moved value replaced by its
    batch-first tensor, where the reader follows the call; otherwise refused."""
    moved = moved_values(args, kwargs)
    axes = moved[0].axes
    what = _describe_call(op, target, module)
    other = next((m.axes for m in moved if m.axes != axes), None)
    if other is not None:
        _refuse(what, axes, f" and another moved by {other}")
    if any(isinstance(v, Tensor) for v in leaves((args, kwargs))):
        _refuse(what, axes, " together with a tensor whose batch axis is first")
    why = _module_follows(module, axes) if module is not None \
        else _function_follows(op, target, args, kwargs, axes)
    if why is not None:
        _refuse(what, axes, why)
    return axes, _replace(args), _replace(kwargs)


def _replace(value):
    if isinstance(value, BatchMoved):
        return value.x
    if isinstance(value, (list, tuple)):
        return type(value)(_replace(v) for v in value)
    if isinstance(value, dict):
        return {k: _replace(v) for k, v in value.items()}
    return value


def wrap(value, axes: tuple):
    """A translation's result on unwrapped arguments, moved again: each tensor in it."""
    if isinstance(value, Tensor):
        if value.rank is not None and value.rank != len(axes):
            fail(f"the result has rank {value.rank}, not the rank {len(axes)} of the moved "
                 "value it was computed from")
        return BatchMoved(value, axes)
    if isinstance(value, (list, tuple)):
        return type(value)(wrap(v, axes) for v in value)
    return value


def underlying_shape(full_shape: tuple, axes: tuple) -> tuple:
    """The per-sample shape of the batch-first tensor under a moved value of full shape
    ``full_shape`` (``full_shape[i]`` is the size of the batch-first axis ``axes[i]``)."""
    shape = [None] * len(axes)
    for i, a in enumerate(axes):
        shape[a] = full_shape[i]
    return tuple(shape[1:])
