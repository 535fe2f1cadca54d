"""``nn.MultiheadAttention`` translated into primitives: Dense, Reshape, Permute, MatMul,
Softmax.

For ``mha(query, key, value)`` with ``batch_first=True`` (the batch axis first, as every lrp-core
tensor), ``E`` the embedding, ``H`` heads of ``d = E / H``, ``L``/``S`` the query/key lengths::

    q = Affine(1/√d)(Dense(W_q, b_q)(query)) -> Reshape(L, H, d) -> Permute(0, 2, 1, 3) (N,H,L,d)
    k = Dense(W_k, b_k)(key)              -> Reshape(S, H, d) -> Permute(0, 2, 3, 1)  (N,H,d,S)
    v = Dense(W_v, b_v)(value)            -> Reshape(S, H, d) -> Permute(0, 2, 1, 3)  (N,H,S,d)
    attention = Softmax(-1)(MatMul(q, k))                                              (N,H,L,S)
    out = Dense(W_o, b_o)(Reshape(L, E)(Permute(0, 2, 1, 3)(MatMul(attention, v))))    (N,L,E)

The scale ``1/√d`` of the scores is an ``Affine`` scale after the query projection (exactly
torch's ``q·kᵀ/√d``), so the softmax reads the scaled scores, as AttnLRP's softmax rule expects;
the projection weights stay views of the module's parameters (an in-place change is noticed).
Dropout on the attention weights is the identity at inference. The module returns
``(out, weights)``; the weights (``need_weights=True``) are refused where something reads them.
Masks, ``add_bias_kv``, ``add_zero_attn`` and ``batch_first=False`` (batch not on axis 0) are
refused.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

import lrp_core as lrp

from .arithmetic import core_layer
from .values import Op, as_tensor, fail, known_shape, param

__all__ = ["multihead_attention", "scaled_dot_product_attention"]


class _WeightsNotRead:
    """The attention weights the module returns: refused where they are read."""

    def __repr__(self):
        return "the attention weights of nn.MultiheadAttention (not supported)"


def _projections(m: nn.MultiheadAttention):
    e = m.embed_dim
    if m._qkv_same_embed_dim:
        w = param(m.in_proj_weight)
        weights = (w[:e], w[e:2 * e], w[2 * e:])
    else:
        weights = (param(m.q_proj_weight), param(m.k_proj_weight), param(m.v_proj_weight))
    if m.in_proj_bias is not None:
        b = param(m.in_proj_bias)
        biases = (b[:e], b[e:2 * e], b[2 * e:])
    else:
        biases = (None, None, None)
    return weights, biases


def multihead_attention(m: nn.MultiheadAttention, query, key, value, key_padding_mask=None,
                        need_weights=True, attn_mask=None, average_attn_weights=True,
                        is_causal=False):
    """``(out, weights)`` of ``m(query, key, value, ...)`` as primitives."""
    if key_padding_mask is not None or attn_mask is not None or is_causal:
        fail("attention masks are not supported")
    if not m.batch_first:
        fail("nn.MultiheadAttention with batch_first=False reads (length, batch, embedding) "
             "tensors; lrp-core keeps the batch axis first: build it with batch_first=True")
    if m.bias_k is not None or m.bias_v is not None or m.add_zero_attn:
        fail("add_bias_kv and add_zero_attn are not supported")
    q_in, k_in, v_in = (as_tensor(t, name) for t, name in
                        ((query, "query"), (key, "key"), (value, "value")))
    e, h = m.embed_dim, m.num_heads
    d = e // h
    (wq, wk, wv), (bq, bk, bv) = _projections(m)
    length = known_shape(q_in, "nn.MultiheadAttention")[0]
    source = known_shape(k_in, "nn.MultiheadAttention")[0]
    if known_shape(v_in, "nn.MultiheadAttention")[0] != source:
        fail("key and value differ in length")
    scale = torch.tensor(1.0 / math.sqrt(d), dtype=torch.float64)
    q = Op(lrp.Dense(wq, bq), (q_in,), 3, name="q_proj")
    q = Op(lrp.Affine(scale=scale), (q,), 3, name="q_scale")
    k = Op(lrp.Dense(wk, bk), (k_in,), 3, name="k_proj")
    v = Op(lrp.Dense(wv, bv), (v_in,), 3, name="v_proj")
    q = Op(lrp.Permute((0, 2, 1, 3)), (Op(lrp.Reshape((length, h, d)), (q,), 4, name="q_heads"),),
           4, name="q_perm")
    k = Op(lrp.Permute((0, 2, 3, 1)), (Op(lrp.Reshape((source, h, d)), (k,), 4, name="k_heads"),),
           4, name="k_perm")
    v = Op(lrp.Permute((0, 2, 1, 3)), (Op(lrp.Reshape((source, h, d)), (v,), 4, name="v_heads"),),
           4, name="v_perm")
    scores = Op(core_layer("MatMul")(), (q, k), 4, name="scores")
    weights = Op(lrp.Softmax(-1), (scores,), 4, name="softmax")
    mixed = Op(core_layer("MatMul")(), (weights, v), 4, name="mix")
    merged = Op(lrp.Reshape((length, e)), (Op(lrp.Permute((0, 2, 1, 3)), (mixed,), 4,
                                                name="mix_perm"),), 3, name="merge")
    out = Op(lrp.Dense(param(m.out_proj.weight), param(m.out_proj.bias)), (merged,), 3,
             shape=(length, m.out_proj.out_features))
    return out, _WeightsNotRead()


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, enable_gqa=False):
    """``F.scaled_dot_product_attention(q, k, v)`` of tensors ``(N, ..., L, d)``: ``MatMul(q /
    √d, kᵀ)``, ``Softmax(-1)``, ``MatMul`` with ``v`` (dropout: the identity at inference)."""
    if attn_mask is not None or is_causal:
        fail("attention masks are not supported")
    if enable_gqa:
        fail("grouped-query attention (enable_gqa=True) is not supported")
    q, k, v = (as_tensor(t, name) for t, name in
               ((query, "query"), (key, "key"), (value, "value")))
    shape = known_shape(q, "scaled_dot_product_attention")
    k_shape = known_shape(k, "scaled_dot_product_attention")
    if len(shape) < 2 or len(k_shape) != len(shape):
        fail("scaled_dot_product_attention reads query, key and value of one rank (>= 3 with "
             "the batch axis)")
    rank = len(shape) + 1
    factor = float(scale) if scale is not None else 1.0 / math.sqrt(shape[-1])
    scaled = Op(lrp.Affine(scale=torch.tensor(factor, dtype=torch.float64)), (q,), rank,
                name="q_scale")
    axes = tuple(range(rank - 2)) + (rank - 1, rank - 2)
    k_t = Op(lrp.Permute(axes), (k,), rank, name="k_perm")
    scores = Op(core_layer("MatMul")(), (scaled, k_t), rank, name="scores")
    weights = Op(lrp.Softmax(-1), (scores,), rank, name="softmax")
    return Op(core_layer("MatMul")(), (weights, v), rank)
