"""The translation tables of functional calls and tensor methods.

:data:`FUNCTIONS` maps a function (``F.relu``, ``torch.cat``, ``operator.add``, ...) and
:data:`METHODS` a tensor method's name (``"relu"``, ``"view"``, ...) to its translation, which
the walk calls with the call's translated arguments. The translations live by family in
:mod:`.activations`, :mod:`.shapes`, :mod:`.arithmetic`, :mod:`.pooling` and :mod:`.weighted`.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F

import lrp_core as lrp

from .activations import (
    RELU,
    RELU_,
    dropout,
    elu_options,
    gelu_options,
    hardtanh_options,
    inplace_options,
    leaky_relu_options,
    no_options,
    softmax,
    unary,
)
from .arithmetic import (
    NUMBER_OPS,
    add,
    cat,
    core_layer,
    einsum,
    expand,
    matmul,
    mul,
    neg,
    sub,
    truediv,
)
from .attention import scaled_dot_product_attention
from .normalize import normalize
from .pooling import adaptive_avg_pool_fn, adaptive_max_pool_fn, avg_pool_fn, max_pool_fn, mean
from .routing import (
    chunk,
    getitem,
    movedim,
    narrow,
    pad,
    permute,
    roll,
    select,
    split,
    stack,
    transpose,
    unbind,
)
from .shapes import (
    contiguous,
    dim,
    flatten,
    numel,
    reshape,
    size,
    squeeze,
    tensor_getattr,
    tensor_getitem,
    unsqueeze,
    view,
)
from .swin import patch_merging_pad, shifted_window_attention
from .weighted import batch_norm, conv_fn, conv_transpose_fn, layer_norm, linear

__all__ = ["FUNCTIONS", "METHODS", "function_by_name"]

FUNCTIONS: dict = {
    # activations
    F.relu: RELU, torch.relu: RELU, torch.relu_: RELU_, F.relu_: RELU_,
    F.relu6: unary(no_options(lrp.ReLU6)),
    F.hardtanh: unary(hardtanh_options),
    F.hardtanh_: unary(hardtanh_options, inplace_default=True),
    F.leaky_relu: unary(leaky_relu_options),
    F.leaky_relu_: unary(leaky_relu_options, inplace_default=True),
    F.gelu: unary(gelu_options),
    F.silu: unary(no_options(lrp.SiLU)),
    F.elu: unary(elu_options), F.elu_: unary(elu_options, inplace_default=True),
    torch.tanh: unary(no_options(lrp.Tanh)), F.tanh: unary(no_options(lrp.Tanh)),
    torch.tanh_: unary(no_options(lrp.Tanh), inplace_default=True),
    torch.sigmoid: unary(no_options(lrp.Sigmoid)), F.sigmoid: unary(no_options(lrp.Sigmoid)),
    torch.sigmoid_: unary(no_options(lrp.Sigmoid), inplace_default=True),
    F.softmax: softmax, torch.softmax: softmax,
    F.hardswish: unary(inplace_options(lambda: core_layer("Hardswish")())),
    F.hardsigmoid: unary(inplace_options(lambda: core_layer("Hardsigmoid")())),
    F.mish: unary(inplace_options(lambda: core_layer("Mish")())),
    # reshaping
    torch.flatten: flatten,
    torch.reshape: lambda input, shape: reshape(input, (shape,)),
    # arithmetic, concatenation, products
    operator.add: lambda a, b: add(a, b), operator.iadd: lambda a, b: add(a, b, inplace=True),
    torch.add: add,
    operator.sub: lambda a, b: sub(a, b), operator.isub: lambda a, b: sub(a, b, inplace=True),
    torch.sub: sub,
    operator.mul: lambda a, b: mul(a, b), operator.imul: lambda a, b: mul(a, b, inplace=True),
    torch.mul: mul,
    operator.truediv: lambda a, b: truediv(a, b),
    operator.itruediv: lambda a, b: truediv(a, b, inplace=True), torch.div: truediv,
    operator.neg: neg, torch.neg: neg,
    operator.matmul: lambda a, b: matmul(a, b), torch.matmul: matmul, torch.bmm: matmul,
    **NUMBER_OPS,
    torch.cat: cat, torch.concat: cat,
    torch.stack: stack, torch.einsum: einsum,
    # routing
    torch.permute: permute, torch.transpose: transpose, torch.swapaxes: transpose,
    torch.movedim: movedim, torch.moveaxis: movedim,
    torch.narrow: narrow, torch.select: select,
    torch.split: split, torch.chunk: chunk, torch.unbind: unbind,
    torch.squeeze: squeeze, torch.unsqueeze: unsqueeze,
    torch.roll: roll, F.pad: pad,
    F.scaled_dot_product_attention: scaled_dot_product_attention,
    torch.concatenate: lambda tensors, axis=0, out=None: cat(tensors, axis),
    torch.mean: mean,
    # sizes
    getattr: tensor_getattr, operator.getitem: tensor_getitem,
    # layers on parameters
    F.linear: linear, F.batch_norm: batch_norm, F.layer_norm: layer_norm,
    F.normalize: normalize,
    # dropout
    F.dropout: dropout, F.dropout1d: dropout, F.dropout2d: dropout, F.dropout3d: dropout,
    F.alpha_dropout: dropout, F.feature_alpha_dropout: dropout,
    torch.dropout: lambda input, p, train: dropout(input, p),
}
for _d in (1, 2, 3):
    FUNCTIONS[getattr(F, f"conv{_d}d")] = conv_fn(_d)
    FUNCTIONS[getattr(torch, f"conv{_d}d")] = conv_fn(_d)
    FUNCTIONS[getattr(F, f"conv_transpose{_d}d")] = conv_transpose_fn(_d)
    FUNCTIONS[getattr(F, f"max_pool{_d}d")] = max_pool_fn(_d)
    FUNCTIONS[getattr(torch, f"max_pool{_d}d")] = max_pool_fn(_d)
    FUNCTIONS[getattr(F, f"avg_pool{_d}d")] = avg_pool_fn(_d)
    FUNCTIONS[getattr(F, f"adaptive_avg_pool{_d}d")] = adaptive_avg_pool_fn(_d)
    FUNCTIONS[getattr(F, f"adaptive_max_pool{_d}d")] = adaptive_max_pool_fn(_d)
FUNCTIONS[torch.avg_pool1d] = avg_pool_fn(1)
FUNCTIONS[torch.adaptive_avg_pool1d] = adaptive_avg_pool_fn(1)
del _d

METHODS: dict = {
    "relu": RELU, "relu_": RELU_,
    "tanh": FUNCTIONS[torch.tanh], "tanh_": FUNCTIONS[torch.tanh_],
    "sigmoid": FUNCTIONS[torch.sigmoid], "sigmoid_": FUNCTIONS[torch.sigmoid_],
    "softmax": softmax,
    "flatten": flatten,
    "view": view, "reshape": view,
    "contiguous": contiguous,
    "add": add, "add_": lambda self, other, *, alpha=1: add(self, other, alpha=alpha, inplace=True),
    "__add__": lambda a, b: add(a, b), "__radd__": lambda a, b: add(b, a),
    "mean": mean,
    "size": size, "dim": dim, "numel": numel,
    "mul": mul, "mul_": lambda self, other: mul(self, other, inplace=True),
    "__mul__": lambda a, b: mul(a, b), "__rmul__": lambda a, b: mul(b, a),
    "sub": sub, "div": truediv, "neg": neg,
    "matmul": matmul, "bmm": matmul,
    "permute": permute, "transpose": transpose, "swapaxes": transpose,
    "movedim": movedim, "moveaxis": movedim,
    "narrow": narrow, "select": select, "split": split, "chunk": chunk, "unbind": unbind,
    "squeeze": squeeze, "unsqueeze": unsqueeze, "roll": roll,
    "expand": expand, "__getitem__": getitem,
}

# functions of other libraries, by their qualified name (the library is never imported here):
# torchvision's stochastic depth is the identity at inference, as dropout is
_BY_NAME: dict = {
    "torchvision.ops.stochastic_depth.stochastic_depth":
        lambda input, p, mode, training=True: dropout(input, p),
    "torchvision.models.swin_transformer.shifted_window_attention": shifted_window_attention,
    "torchvision.models.swin_transformer._patch_merging_pad": patch_merging_pad,
}


def function_by_name(fn):
    """The translation of a function of another library (``None`` if it has none)."""
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__name__", None)
    if module is None or name is None:
        return None
    return _BY_NAME.get(f"{module}.{name}")
