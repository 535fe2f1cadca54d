"""Translations of the linear operators: ``Conv``, ``ConvTranspose`` (1-, 2- and 3-d), ``Gemm``
and ``MatMul`` with a constant weight, to :class:`lrp_core.Conv`, :class:`lrp_core.ConvTranspose`
and :class:`lrp_core.Dense`; ``MatMul`` of two activations (attention) to
:class:`lrp_core.MatMul`.

Each translation ``translate(t, n)`` reads the node ``n`` through the translator ``t`` and returns
one entry per node output (see :mod:`lrp_core.backends.readers.onnx.translations`).
"""

from __future__ import annotations

import numpy as np

import lrp_core as lrp

from .nodes import explicit_padding, spatial_attrs

__all__ = ["LINEAR"]


def _conv_operands(t, n):
    """``(x, W, B, d, kernel)`` of a Conv or ConvTranspose node (1-, 2- or 3-d)."""
    x = t.value(n, 0)
    w = t.const(n, 1, "the weight W")
    b = t.const(n, 2, "the bias B", optional=True)
    d = w.ndim - 2
    if d not in (1, 2, 3):
        raise t.unsupported(n, f"a weight of shape {w.shape} (1-, 2- or 3-d convolutions only)")
    groups = n.attr("group", 1)
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise t.unsupported(n, f"group={groups!r}; a positive number of groups is expected")
    out = w.shape[0] if n.op_type == "Conv" else w.shape[1] * int(groups)
    if b is not None and tuple(b.shape) != (out,):
        raise t.unsupported(n, f"the bias B has shape {tuple(b.shape)}, the weight {w.shape} "
                               f"makes {out} output channels")
    return x, w, b, d, [int(k) for k in w.shape[2:]]


def _conv(t, n):
    x, w, b, d, kernel = _conv_operands(t, n)
    if n.attr("kernel_shape") is not None and [int(k) for k in n.attr("kernel_shape")] != kernel:
        raise t.unsupported(n, f"kernel_shape {n.attr('kernel_shape')} does not match the weight "
                               f"{w.shape}")
    strides, dilations = spatial_attrs(t, n, d)
    padding = explicit_padding(t, n, x, kernel, strides, dilations)
    layer = lrp.Conv(w, b, stride=strides, padding=padding, dilation=dilations,
                     groups=int(n.attr("group", 1)))
    return [t.add(layer, [x], n)]


def _conv_transpose(t, n):
    x, w, b, d, kernel = _conv_operands(t, n)
    strides, dilations = spatial_attrs(t, n, d)
    output_padding = [int(p) for p in n.attr("output_padding", [0] * d)]
    auto = n.attr("auto_pad", "NOTSET") or "NOTSET"
    output_shape = n.attr("output_shape")
    if output_shape is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
        lengths = t.shape(n, x, "output_shape or auto_pad=SAME")[1:]
        if output_shape is not None:
            targets = [int(v) for v in output_shape][-d:]
        else:
            targets = [length * s for length, s in zip(lengths, strides)]
        padding = []
        for length, k, s, dl, op, target in zip(lengths, kernel, strides, dilations,
                                                output_padding, targets):
            total = (length - 1) * s + op + (k - 1) * dl + 1 - target
            if total < 0:
                raise t.unsupported(n, f"output_shape {output_shape} is larger than the transposed "
                                       "convolution produces")
            # the spec (and onnxruntime): SAME_UPPER puts the odd cell at the end, SAME_LOWER
            # and an output_shape without auto_pad at the start
            half = total // 2
            padding.append((half, total - half) if auto == "SAME_UPPER" else (total - half, half))
        padding = tuple(padding)
    else:
        padding = explicit_padding(t, n, x, kernel, strides, dilations)
    layer = lrp.ConvTranspose(w, b, stride=strides, padding=padding, output_padding=output_padding,
                              dilation=dilations, groups=int(n.attr("group", 1)))
    return [t.add(layer, [x], n)]


def _gemm(t, n):
    if t.is_const(n.input(0)) or not t.is_const(n.input(1)):
        raise t.unsupported(n, "only Gemm(activation, constant B[, constant C]) is supported")
    x = t.value(n, 0)
    if n.attr("transA", 0):
        raise t.unsupported(n, "transA=1 puts the batch on the second axis")
    shape = t.shapes[x]
    if shape is not None and len(shape) != 1:
        raise t.unsupported(n, f"its input has per-sample shape {shape}; Gemm takes (batch, "
                               "features)")
    return [t.add(gemm_dense(t, n), [x], n)]


def gemm_dense(t, n):
    """The ``Dense`` layer of ``Gemm(A, B, C)`` with constants ``B`` and ``C``, over the last axis
    of ``A`` (``transA=0``; the layout tracker applies it to a ``(L·N, E)`` input too)."""
    if not t.is_const(n.input(1)) or n.attr("transA", 0):
        raise t.unsupported(n, "only Gemm(activation, constant B[, constant C]) with transA=0 is "
                               "supported")
    b = t.const(n, 1, "B")
    c = t.const(n, 2, "C", optional=True)
    alpha, beta = float(n.attr("alpha", 1.0)), float(n.attr("beta", 1.0))
    weight = b if n.attr("transB", 0) else b.T
    if alpha != 1.0:
        weight = weight * np.asarray(alpha, dtype=b.dtype)
    weight = np.ascontiguousarray(weight)
    bias = None
    if c is not None:
        out = weight.shape[0]
        if c.ndim == 2:
            if c.shape[0] != 1:
                raise t.unsupported(n, f"C of shape {c.shape} differs between samples of the "
                                       "batch")
            c = c[0]
        bias = np.broadcast_to(c, (out,)).astype(b.dtype)
        if beta != 1.0:
            bias = bias * np.asarray(beta, dtype=b.dtype)
    return lrp.Dense(weight, bias)


def _matmul(t, n):
    if not t.is_const(n.input(0)) and not t.is_const(n.input(1)):
        a, b = t.value(n, 0), t.value(n, 1)  # two activations: attention's q·kᵀ, A·v
        shape_a, shape_b = t.shapes[a], t.shapes[b]
        if shape_a is not None and shape_b is not None and (
                len(shape_a) != len(shape_b) or len(shape_a) < 2):
            raise t.unsupported(n, f"a product of activations of per-sample shapes {shape_a} and "
                                   f"{shape_b}: only batched matrices of one rank are supported")
        return [t.add(lrp.MatMul(), [a, b], n)]
    if t.is_const(n.input(0)):
        raise t.unsupported(n, "only MatMul(activation, constant matrix) or MatMul of two "
                               "activations is supported (a product with a constant on the left "
                               "is not)")
    x = t.value(n, 0)
    w = t.const(n, 1, "the matrix")
    if w.ndim != 2:
        raise t.unsupported(n, f"the constant operand has shape {w.shape}; only a matrix (K, M) "
                               "is supported")
    shape = t.shapes[x]
    if shape is not None and (len(shape) < 1 or shape[-1] != w.shape[0]):
        raise t.unsupported(n, f"its input has per-sample shape {shape}, the matrix {w.shape}")
    return [t.add(lrp.Dense(np.ascontiguousarray(w.T)), [x], n)]


LINEAR = {
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "Gemm": _gemm,
    "MatMul": _matmul,
}
