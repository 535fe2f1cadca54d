"""``nn.MultiheadAttention`` and ``F.scaled_dot_product_attention`` translated into primitives:
Dense, Reshape, Permute, MatMul, AddConstant (a constant mask), Softmax, ConcatConstant
(``add_bias_kv``, ``add_zero_attn``).

For ``mha(query, key, value)`` on batch-first tensors (``E`` the embedding, ``H`` heads of
``d = E / H``, ``L``/``S`` the query/key lengths)::

    q = Affine(1/√d)(Dense(W_q, b_q)(query)) -> Reshape(L, H, d) -> Permute(0, 2, 1, 3) (N,H,L,d)
    k = Dense(W_k, b_k)(key)              -> Reshape(S, H, d) -> Permute(0, 2, 3, 1)  (N,H,d,S)
    v = Dense(W_v, b_v)(value)            -> Reshape(S, H, d) -> Permute(0, 2, 1, 3)  (N,H,S,d)
    attention = Softmax(-1)(AddConstant(mask)(MatMul(q, k)))                          (N,H,L,S)
    out = Dense(W_o, b_o)(Reshape(L, E)(Permute(0, 2, 1, 3)(MatMul(attention, v))))    (N,L,E)

The scale ``1/√d`` of the scores is an ``Affine`` scale after the query projection (exactly
torch's ``q·kᵀ/√d``), so the softmax reads the scaled scores, as AttnLRP's softmax rule expects;
the projection weights stay views of the module's parameters (an in-place change is noticed).
Dropout on the attention weights is the identity at inference. The module returns
``(out, weights)``; the weights (``need_weights=True``) are refused where something reads them.

**Masks.** A mask that is a constant of the model (a buffer, a parameter, a tensor computed from
them, ``is_causal=True``) is an ``AddConstant`` on the scaled scores before the softmax: a float
mask is added as it is; a boolean mask is ``-inf`` where masked (``nn.MultiheadAttention``:
``True`` masks a position; ``F.scaled_dot_product_attention``: ``True`` lets it take part, as in
torch). ``is_causal=True`` masks the keys after each query (``j > i``); for
``nn.MultiheadAttention`` it is torch's hint that ``attn_mask`` is causal (torch then applies the
causal mask where ``need_weights=False``, ``attn_mask`` otherwise; so does the reader). Its
relevance: the mask is a bias (it keeps its share); a masked score (``-inf``) has softmax output
0 and relevance 0. A mask computed from the model input (``key_padding_mask`` derived from
``x``) is a second input of the explained function and is refused: lrp-core explains models of
one input.

**add_bias_kv / add_zero_attn** append a learned key and value (and a zero one) to every
sequence; attention does not depend on the order of the keys (the mask's columns follow them),
so they are ``ConcatConstant``\\ s before the projected keys and values (a constant token: its
cells keep their relevance), the mask padded with 0 columns for them, as torch pads it.

**batch_first=False** is read where the reader follows the batch axis (:mod:`.layout`): the
walk hands this translation the batch-first tensors under a transposed ``(L, N, E)`` value.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

import lrp_core as lrp

from .arithmetic import core_layer
from .values import Op, Tensor, as_tensor, describe, fail, known_shape, param

__all__ = ["multihead_attention", "scaled_dot_product_attention", "attention_block",
           "constant_mask", "causal_mask", "BATCH_FIRST_ADVICE"]

BATCH_FIRST_ADVICE = (
    "lrp-core explains models whose input has the batch axis first; a module with "
    "batch_first=False reads (length, batch, embedding) tensors, and here it reads a tensor "
    "whose batch axis is first (the model input, or a value computed from it without moving "
    "the batch axis): a model whose input is (length, batch, embedding) has its batch axis "
    "second. Give the model (batch, length, embedding) inputs: wrap it in a module whose "
    "forward(x) returns model(x.transpose(0, 1)).transpose(0, 1) (the reader follows the "
    "transposes), or build the module with batch_first=True")


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


# -- masks -------------------------------------------------------------------------------------
def causal_mask(length: int, source: int) -> torch.Tensor:
    """``(L, S)``: 0 where key ``j <= i``, ``-inf`` after (torch's ``is_causal``: the lower
    triangle, aligned top-left), float64."""
    allowed = torch.ones(length, source, dtype=torch.bool).tril()
    return torch.zeros(length, source, dtype=torch.float64).masked_fill(~allowed, -math.inf)


def constant_mask(mask, what: str, true_masks: bool) -> torch.Tensor:
    """``mask`` (a constant of the model) as an additive float mask: a float mask as it is, a
    boolean one ``-inf`` where masked (``true_masks``: ``True`` masks, else ``True`` keeps)."""
    if isinstance(mask, Tensor) or not isinstance(mask, torch.Tensor):
        origin = ("is computed from the model input, so it is a second input of the explained "
                  "function" if isinstance(mask, Tensor) else f"is {describe(mask)}")
        fail(f"{what} {origin}; lrp-core explains models of one input: a mask must be a "
             "constant of the model (a buffer or parameter, a tensor computed from them, or "
             "is_causal=True)")
    if mask.dtype == torch.bool:
        masked = mask if true_masks else ~mask
        return torch.zeros(mask.shape, dtype=torch.float64).masked_fill(masked.cpu(), -math.inf) \
            .to(mask.device)
    if not mask.is_floating_point():
        fail(f"{what} of dtype {mask.dtype} is not supported (a float or boolean mask)")
    return mask.detach()


def _per_sample_mask(mask: torch.Tensor, rank: int, what: str) -> torch.Tensor:
    """A mask broadcast against the full scores of rank ``rank`` (batch first), without a batch
    axis: a leading axis of size 1 of a full-rank mask is dropped; one of another size (a mask
    per sample) is refused."""
    if mask.dim() > rank:
        fail(f"{what} of shape {tuple(mask.shape)} has more axes than the scores ({rank})")
    if mask.dim() == rank:
        if mask.shape[0] != 1:
            fail(f"{what} of shape {tuple(mask.shape)} differs per sample (its batch axis has "
                 f"size {mask.shape[0]}); a constant mask is one for all samples")
        mask = mask[0]
    return mask


# -- nn.MultiheadAttention ---------------------------------------------------------------------
def _head_split(x, length, h, d, axes, part, prefix):
    heads = Op(lrp.Reshape((length, h, d)), (x,), 4, name=f"{prefix}{part}_heads")
    return Op(lrp.Permute(axes), (heads,), 4, name=f"{prefix}{part}_perm")


def attention_block(m: nn.MultiheadAttention, q_in, k_in, v_in, length: int, source: int,
                    mask: torch.Tensor | None, prefix: str = "") -> Op:
    """The output of ``m`` on batch-first ``q_in``, ``k_in``, ``v_in`` (tensors or
    :class:`~.values.Op`\\ s of per-sample lengths ``length``, ``source``), ``mask`` an additive
    ``(L, S)`` mask or ``None``; inner layers named ``prefix + "q_proj"`` and so on."""
    e, h = m.embed_dim, m.num_heads
    d = e // h
    (wq, wk, wv), (bq, bk, bv) = _projections(m)
    scale = torch.tensor(1.0 / math.sqrt(d), dtype=torch.float64)
    q = Op(lrp.Dense(wq, bq), (q_in,), 3, name=f"{prefix}q_proj")
    q = Op(lrp.Affine(scale=scale), (q,), 3, name=f"{prefix}q_scale")
    k = Op(lrp.Dense(wk, bk), (k_in,), 3, name=f"{prefix}k_proj")
    v = Op(lrp.Dense(wv, bv), (v_in,), 3, name=f"{prefix}v_proj")
    extra = 0
    if m.bias_k is not None:  # torch appends them; the order of the keys does not matter
        k = Op(core_layer("ConcatConstant")(param(m.bias_k).reshape(1, e), 1), (k,), 3,
               name=f"{prefix}bias_k")
        v = Op(core_layer("ConcatConstant")(param(m.bias_v).reshape(1, e), 1), (v,), 3,
               name=f"{prefix}bias_v")
        extra += 1
    if m.add_zero_attn:
        zeros = torch.zeros(1, e, dtype=wk.dtype, device=wk.device)
        k = Op(core_layer("ConcatConstant")(zeros, 1), (k,), 3, name=f"{prefix}zero_k")
        v = Op(core_layer("ConcatConstant")(zeros, 1), (v,), 3, name=f"{prefix}zero_v")
        extra += 1
    if extra and mask is not None:
        mask = torch.cat([torch.zeros(*mask.shape[:-1], extra, dtype=mask.dtype,
                                      device=mask.device), mask], -1)
    source += extra
    q = _head_split(q, length, h, d, (0, 2, 1, 3), "q", prefix)
    k = _head_split(k, source, h, d, (0, 2, 3, 1), "k", prefix)
    v = _head_split(v, source, h, d, (0, 2, 1, 3), "v", prefix)
    scores = Op(core_layer("MatMul")(), (q, k), 4, name=f"{prefix}scores")
    if mask is not None:
        scores = Op(core_layer("AddConstant")(mask.contiguous()), (scores,), 4,
                    name=f"{prefix}mask")
    weights = Op(lrp.Softmax(-1), (scores,), 4, name=f"{prefix}softmax")
    mixed = Op(core_layer("MatMul")(), (weights, v), 4, name=f"{prefix}mix")
    merged = Op(lrp.Reshape((length, e)), (Op(lrp.Permute((0, 2, 1, 3)), (mixed,), 4,
                                                name=f"{prefix}mix_perm"),), 3,
                name=f"{prefix}merge")
    return Op(lrp.Dense(param(m.out_proj.weight), param(m.out_proj.bias)), (merged,), 3,
              name=f"{prefix}out_proj", shape=(length, m.out_proj.out_features))


def attention_mask(m: nn.MultiheadAttention, attn_mask, key_padding_mask, need_weights: bool,
                   is_causal: bool, length: int, source: int, what: str):
    """The additive ``(L, S)`` mask of a call of ``m`` (``None``: no mask), as torch applies it:
    ``is_causal`` (which needs ``attn_mask``, as in torch) is the causal mask where
    ``need_weights=False``, ``attn_mask`` otherwise."""
    if key_padding_mask is not None:
        constant_mask(key_padding_mask, f"the key_padding_mask of {what}", True)
        fail(f"the key_padding_mask of {what} is a constant: a padding mask per sample is not "
             "supported (give a 2-D attn_mask (L, S) that is one for all samples)")
    if is_causal and attn_mask is None:
        fail(f"{what} with is_causal=True needs attn_mask (torch's own rule: is_causal is a "
             "hint that attn_mask is the causal mask)")
    if is_causal and not need_weights:
        return causal_mask(length, source)
    if attn_mask is None:
        return None
    mask = constant_mask(attn_mask, f"the attn_mask of {what}", True)
    if mask.dim() != 2:
        fail(f"the attn_mask of {what} has shape {tuple(mask.shape)}: a 3-D mask (batch · "
             "heads, L, S) differs per sample; give a 2-D (L, S) mask")
    if tuple(mask.shape) != (length, source):
        fail(f"the attn_mask of {what} has shape {tuple(mask.shape)}, not (L, S) = "
             f"({length}, {source})")
    return mask


def multihead_attention(m: nn.MultiheadAttention, query, key, value, key_padding_mask=None,
                        need_weights=True, attn_mask=None, average_attn_weights=True,
                        is_causal=False, *, batch_moved: bool = False):
    """``(out, weights)`` of ``m(query, key, value, ...)`` as primitives. ``batch_moved``: the
    walk unwrapped ``(L, N, E)`` values of a module with ``batch_first=False`` into their
    batch-first tensors (:mod:`.layout`)."""
    what = "nn.MultiheadAttention"
    if not m.batch_first and not batch_moved:
        fail(BATCH_FIRST_ADVICE)
    q_in, k_in, v_in = (as_tensor(t, name) for t, name in
                        ((query, "query"), (key, "key"), (value, "value")))
    length = known_shape(q_in, what)[0]
    source = known_shape(k_in, what)[0]
    if known_shape(v_in, what)[0] != source:
        fail("key and value differ in length")
    mask = attention_mask(m, attn_mask, key_padding_mask, need_weights, is_causal, length,
                          source, what)
    return attention_block(m, q_in, k_in, v_in, length, source, mask), _WeightsNotRead()


# -- F.scaled_dot_product_attention ------------------------------------------------------------
def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, enable_gqa=False):
    """``F.scaled_dot_product_attention(q, k, v)`` of tensors ``(N, ..., L, d)``: ``MatMul(q /
    √d, kᵀ)``, a constant mask (``AddConstant``), ``Softmax(-1)``, ``MatMul`` with ``v``
    (dropout: the identity at inference)."""
    what = "scaled_dot_product_attention"
    if enable_gqa:
        fail("grouped-query attention (enable_gqa=True) is not supported")
    q, k, v = (as_tensor(t, name) for t, name in
               ((query, "query"), (key, "key"), (value, "value")))
    shape = known_shape(q, what)
    k_shape = known_shape(k, what)
    if len(shape) < 2 or len(k_shape) != len(shape):
        fail("scaled_dot_product_attention reads query, key and value of one rank (>= 3 with "
             "the batch axis)")
    rank = len(shape) + 1
    mask = None
    if is_causal:
        if attn_mask is not None:
            fail("scaled_dot_product_attention with both attn_mask and is_causal=True (torch "
                 "refuses it too)")
        mask = causal_mask(shape[-2], k_shape[-2])
    elif attn_mask is not None:
        mask = _per_sample_mask(constant_mask(attn_mask, f"the attn_mask of {what}", False),
                                rank, f"the attn_mask of {what}")
    factor = float(scale) if scale is not None else 1.0 / math.sqrt(shape[-1])
    scaled = Op(lrp.Affine(scale=torch.tensor(factor, dtype=torch.float64)), (q,), rank,
                name="q_scale")
    axes = tuple(range(rank - 2)) + (rank - 1, rank - 2)
    k_t = Op(lrp.Permute(axes), (k,), rank, name="k_perm")
    scores = Op(core_layer("MatMul")(), (scaled, k_t), rank, name="scores")
    if mask is not None:
        scores = Op(core_layer("AddConstant")(mask.contiguous()), (scores,), rank, name="mask")
    weights = Op(lrp.Softmax(-1), (scores,), rank, name="softmax")
    return Op(core_layer("MatMul")(), (weights, v), rank)
