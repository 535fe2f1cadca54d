"""``nn.TransformerEncoderLayer`` and ``nn.TransformerEncoder`` translated into primitives.

torch's ``forward`` of both cannot be traced by ``torch.fx`` (it branches on the input's rank
for its fast path), so the reader translates the modules as units, exactly as their
inference path computes (the fast path computes the same)::

    post-norm:  x = LN1(x + SA(x));      x = LN2(x + FF(x))
    pre-norm:   x = x + SA(LN1(x));      x = x + FF(LN2(x))      (norm_first=True)
    FF(x) = Dense(linear2)(act(Dense(linear1)(x)))               (dropout: the identity)

``SA`` is the self-attention of :func:`~.attention.attention_block`, with the layer's
``src_mask`` (a constant of the model, or ``is_causal=True`` with it, as in torch) and no
``src_key_padding_mask`` (a mask per sample is refused). ``nn.TransformerEncoder`` is its
layers in order, then its ``norm``. ``batch_first=False`` is read where the reader follows the
batch axis (:mod:`.layout`). Inner layers are named after the submodules
(``encoder.layers.0.self_attn.q_proj``).
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

import lrp_core as lrp

from .attention import BATCH_FIRST_ADVICE, attention_block, attention_mask
from .modules import activation_module
from .values import Op, as_tensor, fail, known_shape, param

__all__ = ["transformer_encoder_layer", "transformer_encoder"]


def _layer_norm(m: nn.LayerNorm, x, name: str) -> Op:
    return Op(lrp.LayerNorm(m.normalized_shape, param(m.weight),
                            param(getattr(m, "bias", None)), m.eps), (x,), 3, name=name)


def _activation(m: nn.TransformerEncoderLayer, prefix: str):
    act = m.activation
    if act is F.relu:
        return lrp.ReLU()
    if act is F.gelu:
        return lrp.GELU()
    if isinstance(act, nn.Module):
        layer = activation_module(act)
        if layer is not None:
            return layer
    fail(f"the activation {act!r} of {prefix.rstrip('.') or 'the layer'} has no translation "
         "(F.relu, F.gelu, or an activation module)")


def _encoder_layer(m: nn.TransformerEncoderLayer, x, length: int, mask, prefix: str):
    def attend(h):
        out = attention_block(m.self_attn, h, h, h, length, length, mask,
                              prefix=f"{prefix}self_attn.")
        out.name = f"{prefix}self_attn.out_proj"
        return out

    def feed_forward(h):
        h = Op(lrp.Dense(param(m.linear1.weight), param(m.linear1.bias)), (h,), 3,
               name=f"{prefix}linear1")
        h = Op(_activation(m, prefix), (h,), 3, name=f"{prefix}activation")
        return Op(lrp.Dense(param(m.linear2.weight), param(m.linear2.bias)), (h,), 3,
                  name=f"{prefix}linear2")

    if m.norm_first:
        x = Op(lrp.Add(), (x, attend(_layer_norm(m.norm1, x, f"{prefix}norm1"))), 3,
               name=f"{prefix}add1")
        return Op(lrp.Add(), (x, feed_forward(_layer_norm(m.norm2, x, f"{prefix}norm2"))), 3,
                  name=f"{prefix}add2")
    x = _layer_norm(m.norm1, Op(lrp.Add(), (x, attend(x)), 3, name=f"{prefix}add1"),
                    f"{prefix}norm1")
    return _layer_norm(m.norm2, Op(lrp.Add(), (x, feed_forward(x)), 3, name=f"{prefix}add2"),
                       f"{prefix}norm2")


def _check_layer(m: nn.TransformerEncoderLayer, batch_moved: bool, what: str) -> None:
    if not m.self_attn.batch_first and not batch_moved:
        fail(BATCH_FIRST_ADVICE)
    if not m.self_attn._qkv_same_embed_dim:
        fail(f"{what}: its self-attention has separate projection weights (not supported)")


def transformer_encoder_layer(m: nn.TransformerEncoderLayer, src, src_mask=None,
                              src_key_padding_mask=None, is_causal=False, *,
                              batch_moved: bool = False) -> Op:
    """``m(src, src_mask, src_key_padding_mask, is_causal)`` as primitives."""
    what = "nn.TransformerEncoderLayer"
    _check_layer(m, batch_moved, what)
    x = as_tensor(src, "src")
    length = known_shape(x, what)[0]
    mask = attention_mask(m.self_attn, src_mask, src_key_padding_mask, False, is_causal,
                          length, length, what)
    out = _encoder_layer(m, x, length, mask, "")
    out.name = None
    return out


def transformer_encoder(m: nn.TransformerEncoder, src, mask=None, src_key_padding_mask=None,
                        is_causal=None, *, batch_moved: bool = False) -> Op:
    """``m(src, mask, src_key_padding_mask, is_causal)``: its layers, then its ``norm``."""
    what = "nn.TransformerEncoder"
    x = as_tensor(src, "src")
    length = known_shape(x, what)[0]
    out = x
    for i, layer in enumerate(m.layers):
        if not isinstance(layer, nn.TransformerEncoderLayer):
            fail(f"{what}: layer {i} is a {type(layer).__name__}, not an "
                 "nn.TransformerEncoderLayer")
        _check_layer(layer, batch_moved, what)
        # torch's is_causal=None detects a causal mask; the mask itself is applied either way
        layer_mask = attention_mask(layer.self_attn, mask, src_key_padding_mask, True,
                                    bool(is_causal), length, length, what)
        out = _encoder_layer(layer, out, length, layer_mask, f"layers.{i}.")
    if m.norm is not None:
        if not isinstance(m.norm, nn.LayerNorm):
            fail(f"{what}: its norm is a {type(m.norm).__name__}, not an nn.LayerNorm")
        out = _layer_norm(m.norm, out, "norm")
    if out is x:
        return Op(None, (x,), x.rank)
    out.name = None
    return out
