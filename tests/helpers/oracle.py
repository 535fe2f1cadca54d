"""Independent NumPy oracles for the LRP tests (no lrp_core imports here).

Every layer of a (piecewise) linear network is, at a given input, a plain matrix acting on one
flattened sample. So a convolution is built here as its explicit matrix by looping over the
kernel taps (torch's conventions: cross-correlation, ``(out, in/groups, *kernel)`` weights,
``(low, high)`` padding pairs), max pooling as the 0/1 matrix that picks each window's first
maximum, and each LRP rule is written once, from its published equation, for a weight matrix
``W`` (out, in), a bias vector ``b`` (out,), inputs ``a`` (N, in) and upper relevance ``R``
(N, out). Nothing here is taken from the library under test.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


# -- elementary pieces ---------------------------------------------------------------------------
def stab(d, eps=1e-9):
    """``d + eps * sign(d)`` with ``sign(0) = +1``."""
    return np.where(d >= 0, d + eps, d - eps)


def pos(x):
    return np.maximum(x, 0)


def neg(x):
    return np.minimum(x, 0)


def _tuple(v, d):
    return (int(v),) * d if np.isscalar(v) else tuple(int(x) for x in v)


def _pairs(padding, d):
    if np.isscalar(padding):
        return ((int(padding), int(padding)),) * d
    padding = tuple(padding)
    if all(np.isscalar(p) for p in padding):
        return tuple((int(p), int(p)) for p in padding)
    return tuple((int(lo), int(hi)) for lo, hi in padding)


# -- layers as matrices ------------------------------------------------------------------------
def conv_matrix(weight, in_shape, stride=1, padding=0, dilation=1, groups=1):
    """The convolution as a dense matrix acting on one flattened sample of shape ``in_shape``
    ``(C, *L)``: returns ``(M, out_shape)`` with ``M`` of shape
    ``(prod(out_shape), prod(in_shape))``. Only in-bounds taps get an entry (zero padding
    contributes nothing)."""
    weight = np.asarray(weight, dtype=np.float64)
    n_out, c_per_group = weight.shape[:2]
    kernel = weight.shape[2:]
    d = len(kernel)
    channels, *length = in_shape
    stride, dilation, pads = _tuple(stride, d), _tuple(dilation, d), _pairs(padding, d)
    out_len = [(length[i] + pads[i][0] + pads[i][1] - dilation[i] * (kernel[i] - 1) - 1)
               // stride[i] + 1
               for i in range(d)]
    out_per_group = n_out // groups
    m = np.zeros((n_out, *out_len, channels, *length))
    grids = np.meshgrid(*[np.arange(n) for n in out_len], indexing="ij")  # output positions
    for o in range(n_out):
        g = o // out_per_group
        for cl in range(c_per_group):
            c = g * c_per_group + cl
            for tap in itertools.product(*[range(k) for k in kernel]):
                q = [stride[i] * grids[i] - pads[i][0] + dilation[i] * tap[i] for i in range(d)]
                ok = np.ones(grids[0].shape, dtype=bool) if d else True
                for i in range(d):
                    ok &= (q[i] >= 0) & (q[i] < length[i])
                p_idx = tuple(gr[ok] for gr in grids)
                q_idx = tuple(qq[ok] for qq in q)
                np.add.at(m, (o, *p_idx, c, *q_idx), weight[(o, cl, *tap)])
    out_shape = (n_out, *out_len)
    return m.reshape(math.prod(out_shape), math.prod(in_shape)), out_shape


def conv_bias(bias, out_shape):
    """The per-channel bias as a vector over one flattened output sample."""
    return np.repeat(np.asarray(bias, dtype=np.float64), math.prod(out_shape[1:]))


def _windows(x, kernel, stride, pads):
    """All window taps of ``x`` (N, C, *L) padded with -inf: shape (N, C, *out, taps) in
    row-major tap order, plus the flat input index of each tap (-1 for padding)."""
    d = len(kernel)
    n, c, *length = x.shape
    out_len = [(length[i] + pads[i][0] + pads[i][1] - kernel[i]) // stride[i] + 1 for i in range(d)]
    xpad = np.pad(x, ((0, 0), (0, 0), *pads), constant_values=-np.inf)
    index = np.arange(math.prod(length)).reshape(length)
    ipad = np.pad(index, pads, constant_values=-1)
    vals, idxs = [], []
    for tap in itertools.product(*[range(k) for k in kernel]):
        sl = tuple(slice(tap[i], tap[i] + stride[i] * (out_len[i] - 1) + 1, stride[i])
                   for i in range(d))
        vals.append(xpad[(slice(None), slice(None), *sl)])
        idxs.append(ipad[sl])
    return np.stack(vals, -1), np.stack(idxs, -1), out_len


def maxpool_forward(x, kernel_size, stride=None, padding=0):
    d = x.ndim - 2
    kernel = _tuple(kernel_size, d)
    stride = kernel if stride is None else _tuple(stride, d)
    vals, _, _ = _windows(x, kernel, stride, _pairs(padding, d))
    return vals.max(-1)


def maxpool_matrix(x, kernel_size, stride=None, padding=0):
    """For one sample ``x`` (C, *L): the 0/1 matrix sending each window to its first maximum
    (row-major window order), and the output shape."""
    d = x.ndim - 1
    kernel = _tuple(kernel_size, d)
    stride = kernel if stride is None else _tuple(stride, d)
    vals, idxs, out_len = _windows(x[None], kernel, stride, _pairs(padding, d))
    first = vals[0].argmax(-1)  # (C, *out): np.argmax returns the first maximum
    channels = x.shape[0]
    in_size = math.prod(x.shape[1:])
    out_size = math.prod(out_len)
    m = np.zeros((channels * out_size, channels * in_size))
    taps = idxs.reshape(out_size, -1)
    first = first.reshape(channels, out_size)
    for c in range(channels):
        for p in range(out_size):
            m[c * out_size + p, c * in_size + taps[p, first[c, p]]] = 1.0
    return m, (channels, *out_len)


# -- the rules, written from their equations (Montavon et al. 2019; Bach et al. 2015; ...) ------
def lrp_generic(W, b, a, R, eps=1e-9):
    """R_in = a ⊙ Wᵀ(R / stab(W a + b))."""
    z = a @ W.T + b
    return a * ((R / stab(z, eps)) @ W)


def lrp_zero(W, b, a, R):
    return lrp_generic(W, b, a, R)


def lrp_epsilon(W, b, a, R, epsilon=1e-6):
    return lrp_generic(W, b, a, R, eps=epsilon)


def lrp_gamma(W, b, a, R, gamma=0.25):
    return lrp_generic(W + gamma * pos(W), b + gamma * pos(b), a, R)


def lrp_wsquare(W, b, a, R):
    return lrp_generic(W * W, np.zeros_like(b), np.ones_like(a), R)


def lrp_flat(W, b, a, R, mask=None):
    """``mask``: the matrix of in-bounds taps (1) of a convolution; all ones for Dense."""
    ones_w = np.ones_like(W) if mask is None else mask
    return lrp_generic(ones_w, np.zeros_like(b), np.ones_like(a), R)


def lrp_zplus(W, b, a, R):
    Wp, Wn = pos(W), neg(W)
    ap, an = pos(a), neg(a)
    z = ap @ Wp.T + an @ Wn.T + pos(b)
    s = R / stab(z)
    return ap * (s @ Wp) + an * (s @ Wn)


def lrp_alphabeta(W, b, a, R, alpha=2.0, beta=1.0):
    Wp, Wn = pos(W), neg(W)
    ap, an = pos(a), neg(a)
    z_p = ap @ Wp.T + an @ Wn.T + pos(b)
    z_n = an @ Wp.T + ap @ Wn.T + neg(b)
    s_p = R / stab(z_p)
    s_n = R / stab(z_n)
    r_p = ap * (s_p @ Wp) + an * (s_p @ Wn)
    r_n = an * (s_n @ Wp) + ap * (s_n @ Wn)
    return alpha * r_p - beta * r_n


def lrp_zbox(W, b, a, R, low, high):
    low = np.broadcast_to(low, a.shape)
    high = np.broadcast_to(high, a.shape)
    Wp, Wn = pos(W), neg(W)
    z = a @ W.T + b
    z_l = low @ Wp.T + pos(b)
    z_h = high @ Wn.T + neg(b)
    s = R / stab(z - z_l - z_h)
    return a * (s @ W) - low * (s @ Wp) - high * (s @ Wn)


def lrp_generalized_gamma(W, b, a, R, gamma=0.25):
    Wgp = W + gamma * pos(W)
    Wgn = W + gamma * neg(W)
    ap, an = pos(a), neg(a)
    z = a @ W.T + b
    z_l = ap @ Wgp.T + an @ Wgn.T + (b + gamma * pos(b))
    z_r = ap @ Wgn.T + an @ Wgp.T + (b + gamma * neg(b))
    s_l = R * (z > 0) / stab(z_l)
    s_r = R * (z < 0) / stab(z_r)
    return ap * (s_l @ Wgp + s_r @ Wgn) + an * (s_l @ Wgn + s_r @ Wgp)


def lrp_layernorm(a, R, gamma=None, beta=None, eps=1e-5):
    """Ali et al. 2022 on flattened normalised axes: ``a``, ``R`` of shape (N, D)."""
    n_feat = a.shape[1]
    mu = a.mean(1, keepdims=True)
    x_hat = (a - mu) / np.sqrt(((a - mu) ** 2).mean(1, keepdims=True) + eps)
    if gamma is None and beta is None:
        r_hat = R
    else:
        g = np.ones(n_feat) if gamma is None else gamma
        bb = np.zeros(n_feat) if beta is None else beta
        r_hat = g * x_hat * R / stab(g * x_hat + bb)
    out = np.empty_like(a)
    centering = np.eye(n_feat) - 1.0 / n_feat          # (δ_ij − 1/N)
    for n in range(a.shape[0]):
        M = a[n][:, None] * centering                   # M_ij = a_i (δ_ij − 1/N)
        denom = M.sum(0)                                # Σ_l a_l (δ_lj − 1/N) = a_j − μ
        out[n] = M @ (r_hat[n] / stab(denom))
    return out


def oracle_rule(rule, W, b, a, R, mask=None):
    """Dispatch on the rule's class name and its public parameters."""
    name = type(rule).__name__
    if name == "ZeroRule":
        return lrp_zero(W, b, a, R)
    if name == "EpsilonRule":
        return lrp_epsilon(W, b, a, R, rule.epsilon)
    if name == "GammaRule":
        return lrp_gamma(W, b, a, R, rule.gamma)
    if name == "WSquareRule":
        return lrp_wsquare(W, b, a, R)
    if name == "FlatRule":
        return lrp_flat(W, b, a, R, mask)
    if name == "PassRule":
        return R.copy()
    if name == "ZPlusRule":
        return lrp_zplus(W, b, a, R)
    if name == "AlphaBetaRule":
        return lrp_alphabeta(W, b, a, R, rule.alpha, rule.beta)
    if name == "GeneralizedGammaRule":
        return lrp_generalized_gamma(W, b, a, R, rule.gamma)
    if name == "ZBoxRule":
        return lrp_zbox(W, b, a, R, rule.low, rule.high)
    raise NotImplementedError(name)


def conv_step(weight, bias, in_shape, relu, **geometry):
    """An OracleChain step for a convolution (bias ``None`` means zero), and its output shape."""
    m, out_shape = conv_matrix(weight, in_shape, **geometry)
    mask, _ = conv_matrix(np.ones_like(weight), in_shape, **geometry)
    b = np.zeros(m.shape[0]) if bias is None else conv_bias(bias, out_shape)
    return ("linear", m, b, relu, out_shape, mask), out_shape


def dense_step(weight, bias, relu):
    weight = np.asarray(weight, dtype=np.float64)
    b = np.zeros(weight.shape[0]) if bias is None else np.asarray(bias, dtype=np.float64)
    return ("linear", weight, b, relu, (weight.shape[0],), np.ones_like(weight))


# -- a tiny network interpreter for chains of matrices -------------------------------------------
class OracleChain:
    """A chain of steps on flattened samples: ``("linear", M, b, relu, out_shape, mask)``
    (``mask``: the 0/1 matrix of the taps that exist, for FlatRule), ``("maxpool", kernel,
    stride, padding)`` or ``("flatten",)``; shapes tracked per sample."""

    def __init__(self, in_shape, steps):
        self.in_shape = tuple(in_shape)
        self.steps = steps

    def forward_sample(self, x):
        """Returns the list of (flat input, matrix, bias, relu-flag) per step and the output."""
        shape = self.in_shape
        v = np.asarray(x, dtype=np.float64).reshape(-1)
        records = []
        for step in self.steps:
            kind = step[0]
            if kind == "linear":
                _, m, bias, relu, out_shape, mask = step
                z = m @ v + bias
                records.append((v, m, bias, mask))
                v = np.maximum(z, 0) if relu else z
                shape = out_shape
            elif kind == "maxpool":
                _, k, s, p = step
                m, out_shape = maxpool_matrix(v.reshape(shape), k, s, p)
                records.append((v, m, np.zeros(m.shape[0]), None))
                v = m @ v
                shape = out_shape
            elif kind == "flatten":
                records.append(None)
                shape = (math.prod(shape),)
            else:
                raise ValueError(kind)
        return records, v

    def forward(self, x):
        return np.stack([self.forward_sample(xi)[1] for xi in x])

    def lrp(self, x, rules, output_relevance):
        """``rules``: one per step (the rule of a flatten step is ignored)."""
        out = []
        for n, xi in enumerate(x):
            records, _ = self.forward_sample(xi)
            r = np.asarray(output_relevance[n], dtype=np.float64).reshape(1, -1)
            for rec, rule in zip(reversed(records), reversed(rules)):
                if rec is None:
                    continue
                v, m, bias, mask = rec
                r = oracle_rule(rule, m, bias, v[None], r, mask=mask)
            out.append(r.reshape(np.shape(xi)))
        return np.stack(out)
