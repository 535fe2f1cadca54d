"""The per-call part of the torch reader: what one fx call becomes in the lrp-core graph.

:func:`_module_layer` translates a leaf module of ``torch.nn``; :data:`_FUNCTIONS` (keyed by the
function) and :data:`_METHODS` (keyed by the tensor method's name) hold the translations of
functions and tensor methods. Together they cover the lists in the docstring of
:mod:`lrp_core.backends.readers.torch.reader`, whose ``_Reader`` walks the fx graph and calls them.

The values a translation reads and returns (the translation environment): a :class:`_Tensor` (a
symbol of the lrp graph and its rank), a :class:`_Size` or :class:`_Dim` (``x.size()``,
``x.size(i)``), a :class:`_Failed` (a node that could not be translated) or a plain Python value
(a constant; a parameter or buffer, detached). A function or method translation is called with
the call's translated arguments and returns an :class:`_Op` (a layer applied to tensors) or a
plain value (a size, an int).

Failures: a translation says why it cannot translate a call with :func:`_fail` (which raises
:class:`_Unsupported`); consuming a :class:`_Failed` value raises :class:`_Propagated`. The reader
turns both into an :class:`lrp_core.UnsupportedOperatorError` naming the fx node.

Weights are kept as ``parameter.detach()``: a view, never a copy, and never written into.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

import lrp_core as lrp
from lrp_core.errors import UnsupportedOperatorError


# ---------------------------------------------------------------------------------------------
# values of the translation environment


@dataclass(eq=False)
class _Tensor:
    """A tensor of the lrp graph: its symbol and its rank (``None`` when unknown)."""

    symbol: object
    rank: int | None = None


@dataclass(eq=False)
class _Size:
    """``x.size()`` / ``x.shape``."""

    of: _Tensor


@dataclass(eq=False)
class _Dim:
    """``x.size(i)`` / ``x.shape[i]``: a size known only at run time (``i == 0``: the batch)."""

    of: _Tensor
    index: int

    @property
    def is_batch(self) -> bool:
        return self.index == 0


@dataclass(eq=False)
class _Failed:
    """A node that could not be translated; raised only when something live consumes it."""

    error: UnsupportedOperatorError


class _Unsupported(Exception):
    """Raised by a translator; turned into an UnsupportedOperatorError naming the node."""


class _Propagated(Exception):
    """A node consumed an untranslatable value: it fails with that value's error."""

    def __init__(self, error: UnsupportedOperatorError):
        super().__init__(str(error))
        self.error = error


def _fail(reason: str):
    raise _Unsupported(reason)


@dataclass
class _Op:
    """A translator's result: ``layer`` (``None``: the identity) applied to ``inputs``."""

    layer: object
    inputs: tuple
    rank: int | None = None
    inplace: bool = False


# ---------------------------------------------------------------------------------------------
# helpers


def _param(value):
    """A parameter or buffer as the tensor the graph keeps: detached, never copied."""
    if value is None:
        return None
    if isinstance(value, nn.parameter.UninitializedParameter) or \
            isinstance(value, nn.parameter.UninitializedBuffer):
        _fail("the module has uninitialized (lazy) parameters: run one forward pass first")
    if not isinstance(value, torch.Tensor):
        _fail(f"expected a tensor parameter, got {type(value).__name__}")
    return value.detach()


def _tensor(value, what="input") -> _Tensor:
    if isinstance(value, _Failed):
        raise _Propagated(value.error)
    if not isinstance(value, _Tensor):
        _fail(f"its {what} must be a tensor computed from the model input, got {_short(value)}")
    return value


def _short(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a constant tensor of shape {tuple(value.shape)}"
    if isinstance(value, (_Size, _Dim)):
        return "a tensor size"
    return repr(value)


def _ints(value, name) -> tuple[int, ...] | int:
    if isinstance(value, (list, tuple)):
        if not all(isinstance(v, int) for v in value):
            _fail(f"{name} must be constant ints, got {_short(value)}")
        return tuple(value)
    if not isinstance(value, int):
        _fail(f"{name} must be a constant int, got {_short(value)}")
    return value


def _all_ones(size) -> bool:
    return all(s == 1 for s in size) if isinstance(size, (tuple, list)) else size == 1


def _no_indices(return_indices) -> None:
    if return_indices:
        _fail("return_indices=True is not supported")


def _adaptive_avg_pool(output_size):
    """``AdaptiveAvgPool``, or ``GlobalAvgPool`` when every output size is 1."""
    return lrp.GlobalAvgPool(keepdims=True) if _all_ones(output_size) else lrp.AdaptiveAvgPool(output_size)


def _adaptive_max_pool(output_size):
    """``AdaptiveMaxPool``, or ``GlobalMaxPool`` when every output size is 1."""
    return lrp.GlobalMaxPool(keepdims=True) if _all_ones(output_size) else lrp.AdaptiveMaxPool(output_size)


def _spatial_from_module(m: nn.Module) -> int | None:
    name = type(m).__name__
    match = re.search(r"([123])d$", name)
    return int(match.group(1)) if match else None


# ---------------------------------------------------------------------------------------------
# modules


def _module_layer(m: nn.Module, x: _Tensor):
    """``(layer or None for the identity, output rank)`` for a leaf module of torch.nn."""
    rank = x.rank
    d = _spatial_from_module(m)
    if isinstance(m, nn.Linear):
        return lrp.Dense(_param(m.weight), _param(m.bias)), rank
    if isinstance(m, nn.modules.conv._ConvTransposeNd):
        _zeros_padding(m)
        return lrp.ConvTranspose(_param(m.weight), _param(m.bias), stride=m.stride, padding=m.padding,
                                 output_padding=m.output_padding, dilation=m.dilation,
                                 groups=m.groups), d + 2
    if isinstance(m, nn.modules.conv._ConvNd):
        _zeros_padding(m)
        return lrp.Conv(_param(m.weight), _param(m.bias), stride=m.stride, padding=m.padding,
                        dilation=m.dilation, groups=m.groups), d + 2
    if isinstance(m, nn.modules.pooling._MaxPoolNd):
        _no_indices(m.return_indices)
        return lrp.MaxPool(m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode), d + 2
    if isinstance(m, nn.modules.pooling._AvgPoolNd):
        if getattr(m, "divisor_override", None) is not None:
            _fail("divisor_override is not supported")
        return lrp.AvgPool(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad), d + 2
    if isinstance(m, nn.modules.pooling._AdaptiveAvgPoolNd):
        return _adaptive_avg_pool(m.output_size), d + 2
    if isinstance(m, nn.modules.pooling._AdaptiveMaxPoolNd):
        _no_indices(m.return_indices)
        return _adaptive_max_pool(m.output_size), d + 2
    if isinstance(m, nn.Flatten):
        return _flatten(x, m.start_dim, m.end_dim)
    if isinstance(m, nn.Unflatten):
        return _unflatten(x, m.dim, m.unflattened_size)
    if isinstance(m, nn.modules.dropout._DropoutNd):
        return lrp.Dropout(m.p), rank
    if isinstance(m, nn.Identity):
        return lrp.Identity(), rank
    if isinstance(m, nn.modules.batchnorm._NormBase):
        if isinstance(m, nn.modules.instancenorm._InstanceNorm):
            _fail("InstanceNorm normalises with the statistics of each sample; it is not supported")
        if m.running_mean is None or m.running_var is None:
            _fail("this BatchNorm has track_running_stats=False: it normalises with batch statistics "
                  "even at inference, which LRP cannot explain")
        rank = {2: 4, 3: 5}.get(d, rank) if d != 1 else rank
        return lrp.BatchNorm(_param(m.weight), _param(m.bias), _param(m.running_mean),
                             _param(m.running_var), m.eps), rank
    if isinstance(m, nn.LayerNorm):
        return lrp.LayerNorm(m.normalized_shape, _param(m.weight), _param(getattr(m, "bias", None)),
                             m.eps), rank
    layer = _activation_module(m)
    if layer is not None:
        return layer, rank
    _fail(f"no translation for module type {type(m).__module__}.{type(m).__name__}; mark it with "
          f"lrp.from_torch(model, leaf_modules={{{type(m).__name__}: lambda m: <lrp layer>}}) to translate it yourself")


def _zeros_padding(m) -> None:
    if m.padding_mode != "zeros":
        _fail(f"padding_mode={m.padding_mode!r} is not supported (only 'zeros')")


def _activation_module(m):
    if isinstance(m, nn.ReLU):
        return lrp.ReLU()
    if isinstance(m, nn.ReLU6):
        return lrp.ReLU6()
    if isinstance(m, nn.Hardtanh):
        return _hardtanh(m.min_val, m.max_val)
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
    if isinstance(m, nn.Softmax):
        return lrp.Softmax(1 if m.dim is None else m.dim)
    return None


def _hardtanh(min_val, max_val):
    if (min_val, max_val) != (0.0, 6.0):
        _fail(f"Hardtanh({min_val}, {max_val}) is not supported (only Hardtanh(0, 6), i.e. ReLU6)")
    return lrp.ReLU6()


# ---------------------------------------------------------------------------------------------
# reshaping


def _normalize_dim(dim: int, rank: int | None, what: str) -> int:
    if dim >= 0:
        return dim
    if rank is None:
        _fail(f"{what}: a negative dimension ({dim}) needs the input's rank, which is not known here")
    return dim + rank


def _flatten(x: _Tensor, start_dim=0, end_dim=-1):
    start_dim, end_dim = _ints(start_dim, "start_dim"), _ints(end_dim, "end_dim")
    start = start_dim if start_dim >= 0 or x.rank is None else start_dim + x.rank
    if start == 0:
        _fail("flattening the batch axis is not supported (use torch.flatten(x, 1))")
    if end_dim == -1:
        rank = start + 1
    elif x.rank is not None:
        rank = x.rank - (_normalize_dim(end_dim, x.rank, "flatten") - start)
    else:
        rank = None
    return lrp.Flatten(start_dim, end_dim), rank


def _flatten_call(input, start_dim=0, end_dim=-1) -> _Op:
    """``torch.flatten(x, ...)`` / ``x.flatten(...)``."""
    x = _tensor(input)
    layer, rank = _flatten(x, start_dim, end_dim)
    return _Op(layer, (x,), rank)


def _unflatten(x: _Tensor, dim, sizes):
    dim = _ints(dim, "dim")
    sizes = _ints(tuple(sizes), "unflattened_size")
    if x.rank != 2 or _normalize_dim(dim, x.rank, "unflatten") != 1:
        _fail("unflatten is supported on the feature axis of a (batch, features) tensor only; "
              f"here dim={dim} and the input rank is {x.rank if x.rank is not None else 'unknown'}")
    return lrp.Reshape(sizes), 1 + len(sizes)


def _reshape(x, shape) -> _Op:
    """``x.view(shape)``: the batch entry must be ``x.size(0)`` (or ``-1`` before constants)."""
    x = _tensor(x)
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, _Size)):
        shape = shape[0]
    if isinstance(shape, _Size):
        if shape.of is x:
            return _Op(None, (x,), x.rank)
        _fail("reshaping to the size of another tensor is not supported")
    shape = list(shape)
    if not shape:
        _fail("reshaping to a scalar is not supported")
    for entry in shape:
        if not isinstance(entry, (int, _Dim)):
            _fail(f"the shape must hold ints and sizes of tensors, got {_short(entry)}")
    first, rest = shape[0], shape[1:]
    if isinstance(first, _Dim) and first.is_batch:
        kept = 0  # leading axes kept as they are: x.view(x.size(0), x.size(1), -1)
        while kept < len(rest) and _is_axis(rest[kept], x, kept + 1):
            kept += 1
        tail = rest[kept:]
        if not tail:
            return _Op(None, (x,), len(shape))
        if tail == [-1]:
            return _Op(lrp.Flatten(kept + 1), (x,), kept + 2)
        if kept == 0 and all(isinstance(t, int) for t in tail):
            return _Op(lrp.Reshape(tuple(tail)), (x,), len(shape))
        _fail("only reshapes of the form x.view(x.size(0), ...) with constant sizes, or keeping the "
              "leading axes and flattening the rest with -1, are supported")
    if first == -1 and rest and all(isinstance(t, int) and t != -1 for t in rest):
        return _Op(lrp.Reshape(tuple(rest)), (x,), len(shape))
    if isinstance(first, int):
        _fail(f"the reshape fixes the batch size to {first}; write x.view(x.size(0), ...) or "
              "x.flatten(1) so that any batch size works")
    _fail("the first entry of the shape must be the batch size x.size(0) / x.shape[0]")


def _is_axis(entry, x: _Tensor, axis: int) -> bool:
    """Whether ``entry`` is ``x.size(axis)`` (or the same axis counted from the end)."""
    if not isinstance(entry, _Dim) or entry.of is not x:
        return False
    return entry.index == axis or (x.rank is not None and entry.index + x.rank == axis)


def _view(self, *shape) -> _Op:
    return _reshape(self, shape)


def _mean(x, dim=None, keepdim=False, *, dtype=None, out=None):
    x = _tensor(x)
    if dim is None:
        _fail("a mean over all axes, the batch axis included, is not supported")
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    if not all(isinstance(d, int) for d in dims):
        _fail(f"mean over dims {dim!r}: the dims must be constant ints")
    if x.rank is not None:
        dims = tuple(sorted(d % x.rank for d in dims))
        spatial = tuple(range(2, x.rank))
    else:
        if any(d < 0 for d in dims):
            _fail(f"mean over dims {dim!r}: negative dims need the input's rank, which is not known here")
        dims = tuple(sorted(dims))
        spatial = tuple(range(2, max(dims) + 1))
    if not spatial or dims != spatial:
        _fail(f"mean over dims {dim!r} is supported only over all spatial axes (2, ..., rank-1), "
              "as a global average pooling")
    rank = (len(spatial) + 2) if keepdim else 2
    return _Op(lrp.GlobalAvgPool(keepdims=bool(keepdim)), (x,), rank)


def _size(x, dim=None):
    x = _tensor(x)
    if dim is None:
        return _Size(x)
    return _Dim(x, _ints(dim, "dim"))


def _getattr(obj, name):
    if isinstance(obj, _Tensor):
        if name == "shape":
            return _Size(obj)
        if name == "ndim" and obj.rank is not None:
            return obj.rank
        _fail(f"tensor attribute {name!r} is not supported")
    _fail(f"getattr({_short(obj)}, {name!r}) is not supported")


def _getitem(obj, index):
    if isinstance(obj, _Size):
        if isinstance(index, int):
            return _Dim(obj.of, index)
        _fail(f"indexing a tensor size with {index!r} is not supported")
    if isinstance(obj, (tuple, list)):
        return obj[index]
    if isinstance(obj, _Tensor):
        _fail("indexing or slicing a tensor is not supported")
    _fail(f"indexing {_short(obj)} is not supported")


def _dim(x):
    x = _tensor(x)
    if x.rank is None:
        _fail("the input's rank is not known here")
    return x.rank


# ---------------------------------------------------------------------------------------------
# arithmetic and concatenation


def _add(input, other, *, alpha=1, out=None, inplace=False) -> _Op:
    if alpha != 1:
        _fail(f"torch.add with alpha={alpha} is not supported")
    if not isinstance(input, _Tensor) or not isinstance(other, _Tensor):
        _fail(f"adding {_short(other if isinstance(input, _Tensor) else input)} is not supported; "
              "only the sum of two tensors computed from the input (a residual addition) is")
    rank = input.rank if input.rank is not None else other.rank
    return _Op(lrp.Add(), (input, other), rank, inplace)


def _cat(tensors, dim=0, *, out=None) -> _Op:
    tensors = [_tensor(t) for t in tensors]
    if not tensors:
        _fail("concatenating nothing")
    dim = _ints(dim, "dim")
    rank = next((t.rank for t in tensors if t.rank is not None), None)
    if (dim if dim >= 0 or rank is None else dim + rank) == 0:
        _fail("concatenation along the batch axis is not supported")
    if len(tensors) == 1:
        return _Op(None, tuple(tensors), rank)
    return _Op(lrp.Concat(dim), tuple(tensors), rank)


# ---------------------------------------------------------------------------------------------
# functional layers on the module's own parameters


def _weight(value, what):
    if isinstance(value, _Tensor):
        _fail(f"the {what} is computed from the input; only parameters and buffers are supported")
    return _param(value)


def _linear(input, weight, bias=None) -> _Op:
    x = _tensor(input)
    return _Op(lrp.Dense(_weight(weight, "weight"), _weight(bias, "bias")), (x,), x.rank)


def _conv_fn(d):
    def conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> _Op:
        x = _tensor(input)
        return _Op(lrp.Conv(_weight(weight, "weight"), _weight(bias, "bias"), stride=stride, padding=padding,
                            dilation=dilation, groups=groups), (x,), d + 2)
    return conv


def _conv_transpose_fn(d):
    def conv_transpose(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                       dilation=1) -> _Op:
        x = _tensor(input)
        return _Op(lrp.ConvTranspose(_weight(weight, "weight"), _weight(bias, "bias"), stride=stride,
                                     padding=padding, output_padding=output_padding, dilation=dilation,
                                     groups=groups), (x,), d + 2)
    return conv_transpose


def _batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
                eps=1e-5) -> _Op:
    x = _tensor(input)
    if running_mean is None or running_var is None:
        _fail("batch_norm without running statistics normalises with batch statistics; not supported")
    return _Op(lrp.BatchNorm(_weight(weight, "weight"), _weight(bias, "bias"),
                             _weight(running_mean, "running mean"), _weight(running_var, "running variance"),
                             eps), (x,), x.rank)


def _layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5) -> _Op:
    x = _tensor(input)
    return _Op(lrp.LayerNorm(tuple(normalized_shape), _weight(weight, "weight"), _weight(bias, "bias"), eps),
               (x,), x.rank)


# ---------------------------------------------------------------------------------------------
# functional pooling and dropout


def _default_stride(stride, kernel_size):
    """The functional pools' stride: the kernel size when not given (``None`` or empty)."""
    return kernel_size if stride is None or stride == [] or stride == () else stride


def _max_pool_fn(d):
    def max_pool(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                 return_indices=False) -> _Op:
        _no_indices(return_indices)
        stride = _default_stride(stride, kernel_size)
        return _Op(lrp.MaxPool(_ints(kernel_size, "kernel_size"), _ints(stride, "stride"),
                               _ints(padding, "padding"), _ints(dilation, "dilation"), bool(ceil_mode)),
                   (_tensor(input),), d + 2)
    return max_pool


def _avg_pool_fn(d):
    def avg_pool(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None) -> _Op:
        if divisor_override is not None:
            _fail("divisor_override is not supported")
        stride = _default_stride(stride, kernel_size)
        return _Op(lrp.AvgPool(_ints(kernel_size, "kernel_size"), _ints(stride, "stride"),
                               _ints(padding, "padding"), bool(ceil_mode), bool(count_include_pad)),
                   (_tensor(input),), d + 2)
    return avg_pool


def _adaptive_avg_pool_fn(d):
    def adaptive_avg_pool(input, output_size) -> _Op:
        return _Op(_adaptive_avg_pool(output_size), (_tensor(input),), d + 2)
    return adaptive_avg_pool


def _adaptive_max_pool_fn(d):
    def adaptive_max_pool(input, output_size, return_indices=False) -> _Op:
        _no_indices(return_indices)
        return _Op(_adaptive_max_pool(output_size), (_tensor(input),), d + 2)
    return adaptive_max_pool


def _dropout(input, p=0.5, training=True, inplace=False) -> _Op:
    x = _tensor(input)
    return _Op(lrp.Dropout(p), (x,), x.rank, bool(inplace))


# ---------------------------------------------------------------------------------------------
# functional activations


def _unary(layer_factory, inplace_default=False):
    def translate(input, *args, inplace=inplace_default, **kwargs) -> _Op:
        x = _tensor(input)
        layer, inplace_arg = layer_factory(*args, **kwargs)
        return _Op(layer, (x,), x.rank, bool(inplace or inplace_arg))
    return translate


def _no_options(layer_cls):
    def factory(inplace=False):
        return layer_cls(), inplace
    return factory


def _leaky_factory(negative_slope=0.01, inplace=False):
    return lrp.LeakyReLU(negative_slope), inplace


def _elu_factory(alpha=1.0, inplace=False):
    return lrp.ELU(alpha), inplace


def _gelu_factory(approximate="none"):
    return lrp.GELU(approximate), False


def _hardtanh_factory(min_val=-1.0, max_val=1.0, inplace=False):
    return _hardtanh(min_val, max_val), inplace


def _softmax_factory(dim=None, _stacklevel=3, dtype=None):
    if dtype is not None:
        _fail("softmax with a dtype is not supported")
    return lrp.Softmax(1 if dim is None else dim), False


_RELU = _unary(_no_options(lrp.ReLU))
_RELU_ = _unary(_no_options(lrp.ReLU), inplace_default=True)

# ---------------------------------------------------------------------------------------------
# the translation tables


_FUNCTIONS: dict = {
    # activations
    F.relu: _RELU, torch.relu: _RELU, torch.relu_: _RELU_, F.relu_: _RELU_,
    F.relu6: _unary(_no_options(lrp.ReLU6)),
    F.hardtanh: _unary(_hardtanh_factory), F.hardtanh_: _unary(_hardtanh_factory, inplace_default=True),
    F.leaky_relu: _unary(_leaky_factory), F.leaky_relu_: _unary(_leaky_factory, inplace_default=True),
    F.gelu: _unary(_gelu_factory),
    F.silu: _unary(_no_options(lrp.SiLU)),
    F.elu: _unary(_elu_factory), F.elu_: _unary(_elu_factory, inplace_default=True),
    torch.tanh: _unary(_no_options(lrp.Tanh)), F.tanh: _unary(_no_options(lrp.Tanh)),
    torch.tanh_: _unary(_no_options(lrp.Tanh), inplace_default=True),
    torch.sigmoid: _unary(_no_options(lrp.Sigmoid)), F.sigmoid: _unary(_no_options(lrp.Sigmoid)),
    torch.sigmoid_: _unary(_no_options(lrp.Sigmoid), inplace_default=True),
    F.softmax: _unary(_softmax_factory), torch.softmax: _unary(_softmax_factory),
    # reshaping
    torch.flatten: _flatten_call,
    torch.reshape: lambda input, shape: _reshape(input, (shape,)),
    # arithmetic, concatenation
    operator.add: lambda a, b: _add(a, b), operator.iadd: lambda a, b: _add(a, b, inplace=True),
    torch.add: _add,
    torch.cat: _cat, torch.concat: _cat, torch.concatenate: lambda tensors, axis=0, out=None: _cat(tensors, axis),
    torch.mean: _mean,
    # sizes
    getattr: _getattr, operator.getitem: _getitem,
    # layers on parameters
    F.linear: _linear, F.batch_norm: _batch_norm, F.layer_norm: _layer_norm,
    # dropout
    F.dropout: _dropout, F.dropout1d: _dropout, F.dropout2d: _dropout, F.dropout3d: _dropout,
    F.alpha_dropout: _dropout, F.feature_alpha_dropout: _dropout,
    torch.dropout: lambda input, p, train: _dropout(input, p),
}
for _d in (1, 2, 3):
    _FUNCTIONS[getattr(F, f"conv{_d}d")] = _conv_fn(_d)
    _FUNCTIONS[getattr(torch, f"conv{_d}d")] = _conv_fn(_d)
    _FUNCTIONS[getattr(F, f"conv_transpose{_d}d")] = _conv_transpose_fn(_d)
    _FUNCTIONS[getattr(F, f"max_pool{_d}d")] = _max_pool_fn(_d)
    _FUNCTIONS[getattr(torch, f"max_pool{_d}d")] = _max_pool_fn(_d)
    _FUNCTIONS[getattr(F, f"avg_pool{_d}d")] = _avg_pool_fn(_d)
    _FUNCTIONS[getattr(F, f"adaptive_avg_pool{_d}d")] = _adaptive_avg_pool_fn(_d)
    _FUNCTIONS[getattr(F, f"adaptive_max_pool{_d}d")] = _adaptive_max_pool_fn(_d)
_FUNCTIONS[torch.avg_pool1d] = _avg_pool_fn(1)
_FUNCTIONS[torch.adaptive_avg_pool1d] = _adaptive_avg_pool_fn(1)


_METHODS: dict = {
    "relu": _RELU, "relu_": _RELU_,
    "tanh": _FUNCTIONS[torch.tanh], "tanh_": _FUNCTIONS[torch.tanh_],
    "sigmoid": _FUNCTIONS[torch.sigmoid], "sigmoid_": _FUNCTIONS[torch.sigmoid_],
    "softmax": _FUNCTIONS[torch.softmax],
    "flatten": _flatten_call,
    "view": _view, "reshape": _view,
    "contiguous": lambda self, memory_format=None: _Op(None, (_tensor(self),), _tensor(self).rank),
    "add": _add, "add_": lambda self, other, *, alpha=1: _add(self, other, alpha=alpha, inplace=True),
    "__add__": lambda a, b: _add(a, b), "__radd__": lambda a, b: _add(b, a),
    "mean": _mean,
    "size": _size, "dim": _dim,
}
