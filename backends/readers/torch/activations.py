"""Translations of elementwise calls: activations (and their in-place forms), softmax, dropout.

``F.relu``/``torch.relu``/``x.relu()`` and the other activations become the lrp-core
activation layers; an in-place form (``x.relu_()``, ``F.relu(x, inplace=True)``) is marked so
that the walk rebinds the mutated tensor. Dropout is the identity at inference (``Dropout``).
A softmax without ``dim`` uses torch's implicit axis, which depends on the rank (axis 0, the
batch, for rank 0, 1 and 3; else 1): it is read only where the rank is known and the axis is not
the batch.
"""

from __future__ import annotations

import lrp_core as lrp

from .values import Op, as_tensor, fail

__all__ = ["hardtanh_layer", "softmax_layer", "unary", "no_options", "inplace_options",
           "leaky_relu_options", "elu_options", "gelu_options", "hardtanh_options", "softmax",
           "dropout", "RELU", "RELU_"]


def hardtanh_layer(min_val, max_val):
    """``Hardtanh(0, 6)`` as ``ReLU6``; other bounds are refused."""
    if (min_val, max_val) != (0.0, 6.0):
        fail(f"Hardtanh({min_val}, {max_val}) is not supported (only Hardtanh(0, 6), i.e. ReLU6)")
    return lrp.ReLU6()


def softmax_layer(dim, rank: int | None):
    """``Softmax`` over ``dim``; without ``dim``, over torch's implicit axis for ``rank``."""
    if dim is not None:
        return lrp.Softmax(dim)
    if rank is None:
        fail("a softmax without dim is over an axis torch picks from the input's rank, which is "
             "not known here; pass dim")
    if rank in (0, 1, 3):
        fail(f"a softmax without dim on a rank-{rank} tensor is over axis 0, the batch axis "
             "(torch's implicit choice); not supported")
    return lrp.Softmax(1)


def unary(options, inplace_default=False):
    """The translation of an elementwise call ``f(x, *args, inplace=..., **kwargs)``;
    ``options(*args, **kwargs)`` returns ``(layer, inplace)``."""
    def translate(input, *args, inplace=inplace_default, **kwargs) -> Op:
        x = as_tensor(input)
        layer, inplace_arg = options(*args, **kwargs)
        return Op(layer, (x,), x.rank, bool(inplace or inplace_arg))
    return translate


def no_options(layer_cls):
    """The options of an activation without parameters."""
    def options(inplace=False):
        return layer_cls(), inplace
    return options


def inplace_options(make_layer):
    """The options of an activation whose only option is ``inplace`` (the layer made lazily)."""
    def options(inplace=False):
        return make_layer(), inplace
    return options


def leaky_relu_options(negative_slope=0.01, inplace=False):
    return lrp.LeakyReLU(negative_slope), inplace


def elu_options(alpha=1.0, inplace=False):
    return lrp.ELU(alpha), inplace


def gelu_options(approximate="none"):
    return lrp.GELU(approximate), False


def hardtanh_options(min_val=-1.0, max_val=1.0, inplace=False):
    return hardtanh_layer(min_val, max_val), inplace


def softmax(input, dim=None, _stacklevel=3, dtype=None, *, inplace=False) -> Op:
    """``F.softmax`` / ``torch.softmax`` / ``x.softmax``."""
    x = as_tensor(input)
    if dtype is not None:
        fail("softmax with a dtype is not supported")
    return Op(softmax_layer(dim, x.rank), (x,), x.rank, bool(inplace))


def dropout(input, p=0.5, training=True, inplace=False) -> Op:
    """Every ``F.dropout*``: the identity at inference."""
    x = as_tensor(input)
    return Op(lrp.Dropout(p), (x,), x.rank, bool(inplace))


RELU = unary(no_options(lrp.ReLU))
RELU_ = unary(no_options(lrp.ReLU), inplace_default=True)
