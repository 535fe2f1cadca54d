"""Translations of the element-wise operators: arithmetic with a constant (``Add``, ``Sub``,
``Mul``, ``Div`` to an ``Affine`` scale-and-shift) or of two activations (``Add``, ``Sub``,
``Sum``; ``Mul`` of two activations is a ``Mul``, or ``SiLU`` for ``x * sigmoid(x)`` and
``GELU`` for ``x * (1 + erf(x/√2))``, torch's export of GELU; ``Erf`` only there), the
activations (``Relu``, ``LeakyRelu``, ``Elu``, ``Clip``, ``Sigmoid``, ``HardSigmoid``,
``HardSwish``, ``Tanh``, ``Gelu``, ``Softmax``), and the pass-throughs ``Dropout``,
``Identity`` and ``Cast``.

Each translation ``translate(t, n)`` reads the node ``n`` through the translator ``t`` and returns
one entry per node output (see :mod:`lrp_core.backends.readers.onnx.translations`).
"""

from __future__ import annotations

import math

import numpy as np

import lrp_core as lrp
from lrp_core.layers import Affine

from .nodes import axis_in, np_dtype

__all__ = ["ELEMENTWISE"]


def _per_sample_constant(t, n, c, x):
    """``c`` as an array that broadcasts against one sample of ``x`` without changing its
    shape."""
    if not np.issubdtype(c.dtype, np.floating):
        raise t.unsupported(n, f"its constant operand has dtype {c.dtype}")
    if c.ndim == 0:
        return c
    shape = t.shape(n, x, "a constant operand that is not a scalar")
    rank = len(shape) + 1
    if c.ndim > rank:
        raise t.unsupported(n, f"the constant of shape {c.shape} has more axes than the "
                               f"activation {('N',) + shape}")
    full = c.reshape((1,) * (rank - c.ndim) + c.shape)
    if full.shape[0] != 1:
        raise t.unsupported(n, f"the constant of shape {c.shape} differs between samples of the "
                               "batch")
    per = full[0]
    if np.broadcast_shapes(per.shape, shape) != shape:
        raise t.unsupported(n, f"the constant of shape {c.shape} would broadcast the activation "
                               f"{('N',) + shape} to a larger shape")
    return per


def _arithmetic(t, n):
    op = n.op_type
    a_const, b_const = t.is_const(n.input(0)), t.is_const(n.input(1))
    if not a_const and not b_const:
        a, b = t.value(n, 0), t.value(n, 1)
        if op == "Add":
            return [t.add(lrp.Add(), [a, b], n)]
        if op == "Sub":
            minus_one = Affine(scale=np.asarray(-1.0, dtype=np.float32))
            negated = t.add(minus_one, [b], n, suffix="negate")
            return [t.add(lrp.Add(), [a, negated], n)]
        if op == "Mul":
            return [_product(t, n, a, b)]
        raise t.unsupported(n, f"{op} of two activations is not supported (Add, Sub and Mul "
                               "are)")
    x_index = 1 if a_const else 0
    x = t.value(n, x_index)
    c = _per_sample_constant(t, n, t.const(n, 1 - x_index, "the constant operand"), x)
    one = np.asarray(1.0, dtype=c.dtype)
    if op == "Add":
        layer = Affine(shift=c)
    elif op == "Sub":
        layer = Affine(shift=-c) if x_index == 0 else Affine(scale=-one, shift=c)
    elif op == "Mul":
        layer = Affine(scale=c)
    elif x_index == 0:  # Div
        layer = Affine(scale=(one / c).astype(c.dtype))
    else:
        raise t.unsupported(n, "a constant divided by an activation is not linear")
    return [t.add(layer, [x], n)]


def _erf(x):
    from lrp_core.arrays import namespace_of
    from lrp_core.kernels import get_backend

    return get_backend(namespace_of(x)).erf(x)


def _erf_in_gelu(t, n):
    """``Erf`` only where it is part of GELU as torch exports it, ``x * (1 + erf(x / √2))``
    (the ``Mul`` then reads it as ``GELU``); an ``Erf`` elsewhere has no translation."""
    nodes = list(t.graph.node)

    def made_by(name):
        return next((m for m in nodes if name in m.output), None)

    def read_by(name):
        return [m for m in nodes if name in m.input]

    def constant(name, value):
        if t.is_const(name):
            array = t.consts[name]
        else:  # a Constant node later in the graph (exporters place them lazily)
            maker = made_by(name)
            if maker is None or maker.op_type != "Constant":
                return False
            try:
                array = np.asarray(_constant_value(maker))
            except (ValueError, TypeError, KeyError):
                return False
        return array.size == 1 and np.allclose(array, value, rtol=1e-6)

    scaled = made_by(n.input(0))
    x = None
    if scaled is not None and scaled.op_type == "Div" and constant(scaled.input[1],
                                                                    math.sqrt(2.0)):
        x = scaled.input[0]
    elif scaled is not None and scaled.op_type == "Mul" and len(scaled.input) == 2:
        for i in (0, 1):
            if constant(scaled.input[1 - i], 1.0 / math.sqrt(2.0)):
                x = scaled.input[i]
    adds = read_by(n.outputs[0])
    ok = x is not None and len(adds) == 1 and adds[0].op_type == "Add" and any(
        constant(name, 1.0) for name in adds[0].input)
    if ok:
        muls = read_by(adds[0].output[0])
        ok = len(muls) == 1 and muls[0].op_type == "Mul" and x in muls[0].input
    if not ok:
        raise t.unsupported(n, "no translation to an lrp_core layer exists for Erf outside "
                               "GELU's pattern x * (1 + erf(x / sqrt(2))), which is read as GELU")
    return [t.add(lrp.Activation(_erf, "erf"), [t.value(n, 0)], n)]


def _constant_value(node):
    """The value of a ``Constant`` node holding a tensor or a float."""
    from onnx import helper, numpy_helper

    (attribute,) = node.attribute
    value = helper.get_attribute_value(attribute)
    if attribute.name == "value":
        return numpy_helper.to_array(value)
    if attribute.name == "value_float":
        return np.float32(value)
    raise ValueError(f"a Constant with attribute {attribute.name!r}")


def _is_erf(layer) -> bool:
    return isinstance(layer, lrp.Activation) and layer.fn is _erf


def _scalar_affine(layer, scale, shift) -> bool:
    """``layer`` is ``x * scale + shift`` with scalar constants (``shift=None``: no shift)."""
    if not isinstance(layer, Affine) or layer.axis is not None:
        return False
    if np.asarray(layer.scale).size != 1 or not np.allclose(layer.scale, scale, rtol=1e-6):
        return False
    if shift is None:
        return layer.shift is None
    return (layer.shift is not None and np.asarray(layer.shift).size == 1
            and np.allclose(layer.shift, shift, rtol=1e-6))


def _erf_gelu_of(t, value: int):
    """The value ``x`` when ``value`` is ``1 + erf(x / √2)`` (torch's export of GELU), else
    ``None``."""
    chain = []
    for _ in range(3):
        if value == 0:
            return None
        node = t.builder.nodes[value - 1]
        if len(node.inputs) != 1:
            return None
        chain.append(node.layer)
        value = node.inputs[0]
    one_plus, erf, scaled = chain
    if (_scalar_affine(one_plus, 1.0, 1.0) and _is_erf(erf)
            and _scalar_affine(scaled, 1.0 / math.sqrt(2.0), None)):
        return value
    return None


def _sigmoid_of(t, value: int):
    """The value a ``Sigmoid`` layer producing ``value`` reads, else ``None``."""
    if value == 0:
        return None
    node = t.builder.nodes[value - 1]
    return node.inputs[0] if isinstance(node.layer, lrp.Sigmoid) else None


def _product(t, n, a: int, b: int) -> int:
    """``a * b`` of two activations: ``x * sigmoid(x)`` (how SiLU exports) is ``SiLU``, any other
    product a ``Mul`` (a gate, or a product the product rules explain)."""
    if _sigmoid_of(t, b) == a:
        return t.add(lrp.SiLU(), [a], n)
    if _sigmoid_of(t, a) == b:
        return t.add(lrp.SiLU(), [b], n)
    for x, other in ((a, b), (b, a)):
        if _erf_gelu_of(t, other) == x:  # x * (1 + erf(x/√2)) = 2 GELU(x)
            gelu = t.add(lrp.GELU(), [x], n, suffix="gelu")
            return t.add(Affine(scale=np.asarray(2.0, dtype=np.float32)), [gelu], n)
    shape_a, shape_b = t.shapes[a], t.shapes[b]
    if shape_a is not None and shape_b is not None and len(shape_a) != len(shape_b):
        raise t.unsupported(n, f"a product of activations of per-sample shapes {shape_a} and "
                               f"{shape_b}: the batch axes would not line up (only operands of "
                               "one rank are supported)")
    return t.add(lrp.Mul(), [a, b], n)


def _sum(t, n):
    if any(t.is_const(name) for name in n.inputs):
        raise t.unsupported(n, "Sum with a constant operand (use Add)")
    values = [t.value(n, i) for i in range(len(n.inputs))]
    if len(values) == 1:
        return [values[0]]
    return [t.add(lrp.Add(), values, n)]


def _activation(factory):
    def translate(t, n):
        return [t.add(factory(n), [t.value(n, 0)], n)]
    return translate


def _clip(t, n):
    x = t.value(n, 0)
    if t.opset < 11:
        low, high = n.attr("min", -np.inf), n.attr("max", np.inf)
    else:
        low = t.const(n, 1, "min", optional=True)
        high = t.const(n, 2, "max", optional=True)
        low = -np.inf if low is None else float(low)
        high = np.inf if high is None else float(high)
    if low == 0.0 and high == 6.0:
        return [t.add(lrp.ReLU6(), [x], n)]
    if low == 0.0 and high == np.inf:
        return [t.add(lrp.ReLU(), [x], n)]
    raise t.unsupported(n, f"Clip(min={low}, max={high}); only Clip(0, 6) (ReLU6) and Clip(0) "
                           "(ReLU) are supported")


def _softmax(t, n):
    x = t.value(n, 0)
    axis = int(n.attr("axis", 1 if t.opset < 13 else -1))
    if t.opset >= 13 and axis == -1:
        return [t.add(lrp.Softmax(dim=-1), [x], n)]
    shape = t.shape(n, x, "Softmax")
    full = (None,) + shape
    axis = axis_in(t, n, axis, len(full))
    if t.opset < 13:  # the input is coerced to 2-d: softmax over the flattened axes axis..end
        long_axes = [i for i in range(axis, len(full)) if full[i] != 1]
        if axis == 0 or len(long_axes) > 1:
            raise t.unsupported(n, f"Softmax(axis={axis}) at opset {t.opset} of {('N',) + shape} "
                                   "spans several axes")
        axis = long_axes[0] if long_axes else len(full) - 1
    if axis == 0:
        raise t.unsupported(n, "a softmax over the batch axis")
    return [t.add(lrp.Softmax(dim=axis), [x], n)]


def _dropout(t, n):
    if len(n.outputs) > 1 and t.is_used(n.outputs[1]):
        raise t.unsupported(n, "its mask output is used")
    if t.opset >= 12:
        training = t.const(n, 2, "training_mode", optional=True)
        if training is not None and bool(training):
            raise t.unsupported(n, "training_mode=True")
    return [t.value(n, 0), None]


def _identity(t, n):
    return [t.value(n, 0)]


def _cast(t, n):
    if not np.issubdtype(np_dtype(n.attr("to")), np.floating):
        raise t.unsupported(n, "a cast of an activation to a non-floating type")
    return [t.value(n, 0)]  # the analyzer computes in the input's dtype


ELEMENTWISE = {
    "Add": _arithmetic,
    "Sub": _arithmetic,
    "Mul": _arithmetic,
    "Div": _arithmetic,
    "Sum": _sum,
    "Relu": _activation(lambda n: lrp.ReLU()),
    "LeakyRelu": _activation(lambda n: lrp.LeakyReLU(float(n.attr("alpha", 0.01)))),
    "Elu": _activation(lambda n: lrp.ELU(float(n.attr("alpha", 1.0)))),
    "Clip": _clip,
    "Sigmoid": _activation(lambda n: lrp.Sigmoid()),
    "HardSigmoid": _activation(lambda n: lrp.Hardsigmoid(float(n.attr("alpha", 0.2)),
                                                         float(n.attr("beta", 0.5)))),
    "HardSwish": _activation(lambda n: lrp.Hardswish()),
    "Tanh": _activation(lambda n: lrp.Tanh()),
    "Gelu": _activation(lambda n: lrp.GELU(n.attr("approximate", "none"))),
    "Erf": _erf_in_gelu,
    "Softmax": _softmax,
    "Dropout": _dropout,
    "Identity": _identity,
    "Cast": _cast,
}
