"""Translations of functional layers applied to the module's own parameters and buffers.

``F.linear``, ``F.conv{1,2,3}d``, ``F.conv_transpose{1,2,3}d``, ``F.batch_norm`` and
``F.layer_norm`` become ``Dense``, ``Conv``, ``ConvTranspose``, ``BatchNorm`` and ``LayerNorm``
when their weights are parameters or buffers (kept as ``parameter.detach()``), not tensors
computed from the input.
"""

from __future__ import annotations

import lrp_core as lrp

from .pooling import spatial_input
from .values import Op, Tensor, as_tensor, fail, param

__all__ = ["linear", "conv_fn", "conv_transpose_fn", "batch_norm", "layer_norm"]


def _weight(value, what):
    if isinstance(value, Tensor):
        fail(f"the {what} is computed from the input; only parameters and buffers are supported")
    return param(value)


def linear(input, weight, bias=None) -> Op:
    """``F.linear(x, weight, bias)``."""
    x = as_tensor(input)
    return Op(lrp.Dense(_weight(weight, "weight"), _weight(bias, "bias")), (x,), x.rank)


def conv_fn(d: int):
    """The translation of ``F.conv{d}d``."""
    def conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Op:
        x = as_tensor(input)
        layer = lrp.Conv(_weight(weight, "weight"), _weight(bias, "bias"), stride=stride,
                         padding=padding, dilation=dilation, groups=groups)
        return Op(layer, (x,), spatial_input(x, d, f"conv{d}d"))
    return conv


def conv_transpose_fn(d: int):
    """The translation of ``F.conv_transpose{d}d``."""
    def conv_transpose(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                       dilation=1) -> Op:
        x = as_tensor(input)
        layer = lrp.ConvTranspose(_weight(weight, "weight"), _weight(bias, "bias"), stride=stride,
                                  padding=padding, output_padding=output_padding,
                                  dilation=dilation, groups=groups)
        return Op(layer, (x,), spatial_input(x, d, f"conv_transpose{d}d"))
    return conv_transpose


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5) -> Op:
    """``F.batch_norm`` with running statistics (inference semantics, whatever ``training``)."""
    x = as_tensor(input)
    if running_mean is None or running_var is None:
        fail("batch_norm without running statistics normalises with batch statistics; "
             "not supported")
    layer = lrp.BatchNorm(_weight(weight, "weight"), _weight(bias, "bias"),
                          _weight(running_mean, "running mean"),
                          _weight(running_var, "running variance"), eps)
    return Op(layer, (x,), x.rank)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5) -> Op:
    """``F.layer_norm`` over the trailing ``normalized_shape``."""
    x = as_tensor(input)
    layer = lrp.LayerNorm(tuple(normalized_shape), _weight(weight, "weight"),
                          _weight(bias, "bias"), eps)
    return Op(layer, (x,), x.rank)
