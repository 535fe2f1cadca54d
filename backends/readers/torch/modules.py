"""Translations of leaf modules of ``torch.nn``: :func:`module_layer`.

Linear, Conv1-3d, ConvTranspose1-3d, MaxPool1-3d, AvgPool1-3d, AdaptiveAvgPool1-3d,
AdaptiveMaxPool1-3d, Flatten, Unflatten, Dropout (all kinds), Identity, BatchNorm1-3d (and
SyncBatchNorm), LayerNorm, ReLU, ReLU6, Hardtanh(0, 6), LeakyReLU, GELU, SiLU, ELU, Tanh,
Sigmoid and Softmax. Any other module type is refused with the advice to translate it through
``leaf_modules``. Weights are kept as ``parameter.detach()``: a view, never a copy, never written.
"""

from __future__ import annotations

import re

import torch.nn as nn

import lrp_core as lrp

from .activations import hardtanh_layer, softmax_layer
from .arithmetic import core_layer
from .pooling import adaptive_avg_pool_layer, adaptive_max_pool_layer, no_indices, spatial_input
from .shapes import flatten_layer, unflatten_layer
from .values import Tensor, fail, param

__all__ = ["module_layer", "activation_module"]


def _spatial_from_module(m: nn.Module) -> int | None:
    match = re.search(r"([123])d$", type(m).__name__)
    return int(match.group(1)) if match else None


def module_layer(m: nn.Module, x: Tensor):
    """``(layer or None for the identity, output rank)`` for a leaf module of torch.nn."""
    rank = x.rank
    d = _spatial_from_module(m)
    what = type(m).__name__
    if isinstance(m, nn.Linear):
        return lrp.Dense(param(m.weight), param(m.bias)), rank
    if isinstance(m, nn.modules.conv._ConvTransposeNd):
        _zeros_padding(m)
        return lrp.ConvTranspose(param(m.weight), param(m.bias), stride=m.stride,
                                 padding=m.padding, output_padding=m.output_padding,
                                 dilation=m.dilation, groups=m.groups), spatial_input(x, d, what)
    if isinstance(m, nn.modules.conv._ConvNd):
        _zeros_padding(m)
        return lrp.Conv(param(m.weight), param(m.bias), stride=m.stride, padding=m.padding,
                        dilation=m.dilation, groups=m.groups), spatial_input(x, d, what)
    if isinstance(m, nn.modules.pooling._MaxPoolNd):
        no_indices(m.return_indices)
        return lrp.MaxPool(m.kernel_size, m.stride, m.padding, m.dilation,
                           m.ceil_mode), spatial_input(x, d, what)
    if isinstance(m, nn.modules.pooling._AvgPoolNd):
        if getattr(m, "divisor_override", None) is not None:
            fail("divisor_override is not supported")
        return lrp.AvgPool(m.kernel_size, m.stride, m.padding, m.ceil_mode,
                           m.count_include_pad), spatial_input(x, d, what)
    if isinstance(m, nn.modules.pooling._AdaptiveAvgPoolNd):
        return adaptive_avg_pool_layer(m.output_size), spatial_input(x, d, what)
    if isinstance(m, nn.modules.pooling._AdaptiveMaxPoolNd):
        no_indices(m.return_indices)
        return adaptive_max_pool_layer(m.output_size), spatial_input(x, d, what)
    if isinstance(m, nn.Flatten):
        return flatten_layer(x, m.start_dim, m.end_dim)
    if isinstance(m, nn.Unflatten):
        return unflatten_layer(x, m.dim, m.unflattened_size)
    if isinstance(m, nn.modules.dropout._DropoutNd):
        return lrp.Dropout(m.p), rank
    if isinstance(m, nn.Identity):
        return lrp.Identity(), rank
    if isinstance(m, nn.modules.batchnorm._NormBase):
        if isinstance(m, nn.modules.instancenorm._InstanceNorm):
            fail("InstanceNorm normalises with the statistics of each sample; it is not supported")
        if m.running_mean is None or m.running_var is None:
            fail("this BatchNorm has track_running_stats=False: it normalises with batch "
                 "statistics even at inference, which LRP cannot explain")
        rank = {2: 4, 3: 5}.get(d, rank) if d != 1 else rank
        return lrp.BatchNorm(param(m.weight), param(m.bias), param(m.running_mean),
                             param(m.running_var), m.eps), rank
    if isinstance(m, nn.LayerNorm):
        return lrp.LayerNorm(m.normalized_shape, param(m.weight),
                             param(getattr(m, "bias", None)), m.eps), rank
    if isinstance(m, nn.Softmax):
        return softmax_layer(m.dim, rank), rank
    layer = activation_module(m)
    if layer is not None:
        return layer, rank
    fail(f"no translation for module type {type(m).__module__}.{type(m).__name__}; mark it "
         f"with lrp.from_torch(model, leaf_modules={{{type(m).__name__}: lambda m: <lrp layer>}}) "
         "to translate it yourself")


def _zeros_padding(m) -> None:
    if m.padding_mode != "zeros":
        fail(f"padding_mode={m.padding_mode!r} is not supported (only 'zeros')")


def activation_module(m):
    if isinstance(m, nn.ReLU):
        return lrp.ReLU()
    if isinstance(m, nn.ReLU6):
        return lrp.ReLU6()
    if isinstance(m, nn.Hardtanh):
        return hardtanh_layer(m.min_val, m.max_val)
    if isinstance(m, nn.LeakyReLU):
        return lrp.LeakyReLU(m.negative_slope)
    if isinstance(m, nn.GELU):
        return lrp.GELU(m.approximate)
    if isinstance(m, nn.SiLU):
        return lrp.SiLU()
    if isinstance(m, nn.ELU):
        return lrp.ELU(m.alpha)
    if isinstance(m, nn.Tanh):
        return lrp.Tanh()
    if isinstance(m, nn.Sigmoid):
        return lrp.Sigmoid()
    if isinstance(m, nn.Hardswish):
        return core_layer("Hardswish")()
    if isinstance(m, nn.Hardsigmoid):
        return core_layer("Hardsigmoid")()
    if isinstance(m, nn.Mish):
        return core_layer("Mish")()
    return None
