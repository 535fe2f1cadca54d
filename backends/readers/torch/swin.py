"""torchvision's Swin Transformer (V1 and V2): ``shifted_window_attention`` and
``_patch_merging_pad``, two functions torchvision wraps for fx (one opaque call each), translated
into primitives that keep the batch axis alone (torchvision's code merges it with the windows:
``B * num_windows``).

For an input ``(N, H, W, C)``, window ``(a, b)``, ``h`` heads of ``d = C / h``, ``T = a·b``::

    ZeroPad (to multiples of the window)
    -> roll by -shift (Slice + Slice + Concat per axis; only a shifted window)
    -> Reshape (H/a, a, W/b, b, C) -> Permute (0,1,3,2,4,5) -> Reshape (windows, T, C)
    -> q, k, v: Dense (q then scaled by 1/√d) -> Reshape (windows, T, h, d) -> Permute
    -> MatMul (scores, per window and head) -> AddConstant (relative position bias, plus the
       shifted window's mask of -100, one constant) -> Softmax(-1) -> MatMul (with v)
    -> Permute -> Reshape (windows, T, C) -> Dense (projection)
    -> the window partition reversed -> roll by +shift -> Slice to (H, W)

Swin V2 (``logit_scale`` given) uses cosine attention instead of the scaled dot product::

    q, k: Dense (k without bias: torchvision zeroes it) -> Reshape -> L2Normalize(-1) -> Permute
    -> MatMul (cosine similarities) -> Affine (× exp(min(logit_scale, log 100)) per head, a
       constant) -> AddConstant (16·sigmoid(cpb_mlp(...)), already a constant: the walk
       evaluates every call on parameters and buffers alone when it reads the model, so the
       position-bias MLP never enters the graph) -> Softmax ... as above

The roll is a permutation of positions: relevance follows it back.
"""

from __future__ import annotations

import math

import torch

import lrp_core as lrp

from .arithmetic import core_layer
from .values import Op, Tensor, as_tensor, fail, known_shape, param

__all__ = ["shifted_window_attention", "patch_merging_pad"]


def _roll(x, shifts: tuple, axes: tuple, shape: tuple, name: str):
    """``torch.roll(x, shifts, axes)`` as Slices and a Concat per axis."""
    for shift, axis in zip(shifts, axes):
        length = shape[axis - 1]
        shift %= length
        if shift == 0:
            continue
        # roll by s: out[i] = x[(i - s) % L] = cat(x[L - s:], x[:L - s])
        tail = Op(lrp.Slice(axis, length - shift, None), (x,), None, name=f"{name}{axis}_tail")
        head = Op(lrp.Slice(axis, 0, length - shift), (x,), None, name=f"{name}{axis}_head")
        x = Op(lrp.Concat(axis), (tail, head), None, name=f"{name}{axis}")
    return x


def _shift_mask(pad_h: int, pad_w: int, window: tuple, shift: tuple, dtype) -> torch.Tensor:
    """torchvision's attention mask of a shifted window: ``(windows, T, T)``, 0 or -100."""
    mask = torch.zeros((pad_h, pad_w), dtype=dtype)
    h_slices = ((0, -window[0]), (-window[0], -shift[0]), (-shift[0], None))
    w_slices = ((0, -window[1]), (-window[1], -shift[1]), (-shift[1], None))
    count = 0
    for h in h_slices:
        for w in w_slices:
            mask[h[0]:h[1], w[0]:w[1]] = count
            count += 1
    windows = (pad_h // window[0]) * (pad_w // window[1])
    mask = mask.view(pad_h // window[0], window[0], pad_w // window[1], window[1])
    mask = mask.permute(0, 2, 1, 3).reshape(windows, window[0] * window[1])
    mask = mask.unsqueeze(1) - mask.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


def shifted_window_attention(input, qkv_weight, proj_weight, relative_position_bias, window_size,
                             num_heads, shift_size, attention_dropout=0.0, dropout=0.0,
                             qkv_bias=None, proj_bias=None, logit_scale=None, training=True):
    """torchvision's ``shifted_window_attention`` (inference: dropout is the identity)."""
    x = as_tensor(input)
    height, width, channels = known_shape(x, "shifted_window_attention")
    for value, what in ((qkv_weight, "qkv weight"), (proj_weight, "projection weight"),
                        (relative_position_bias, "relative position bias"),
                        (logit_scale, "logit scale")):
        if value is None and what == "logit scale":
            continue
        if isinstance(value, Tensor) or not isinstance(value, torch.Tensor):
            fail(f"the {what} must be a parameter or a constant")
    window = tuple(int(w) for w in window_size)
    shift = [int(s) for s in shift_size]
    heads = int(num_heads)
    d = channels // heads
    pad_r = (window[1] - width % window[1]) % window[1]
    pad_b = (window[0] - height % window[0]) % window[0]
    pad_h, pad_w = height + pad_b, width + pad_r
    if window[0] >= pad_h:
        shift[0] = 0
    if window[1] >= pad_w:
        shift[1] = 0
    h_windows, w_windows = pad_h // window[0], pad_w // window[1]
    windows, tokens = h_windows * w_windows, window[0] * window[1]
    shape = (pad_h, pad_w, channels)

    h = x
    if pad_r or pad_b:
        h = Op(lrp.ZeroPad(((0, pad_b), (0, pad_r), (0, 0))), (h,), 4, name="pad")
    if sum(shift) > 0:
        h = _roll(h, (-shift[0], -shift[1]), (1, 2), shape, "roll")
    h = Op(lrp.Reshape((h_windows, window[0], w_windows, window[1], channels)), (h,), 6,
           name="windows")
    h = Op(lrp.Permute((0, 1, 3, 2, 4, 5)), (h,), 6, name="windows_perm")
    h = Op(lrp.Reshape((windows, tokens, channels)), (h,), 4, name="tokens")

    w = param(qkv_weight)
    b = None if qkv_bias is None else param(qkv_bias)
    cosine = logit_scale is not None  # Swin V2
    scale = float(d) ** -0.5
    parts = []
    for i, (part, axes) in enumerate((("q", (0, 1, 3, 2, 4)), ("k", (0, 1, 3, 4, 2)),
                                       ("v", (0, 1, 3, 2, 4)))):
        weight = w[i * channels:(i + 1) * channels]
        bias = None if b is None else b[i * channels:(i + 1) * channels]
        if cosine and part == "k":
            bias = None  # torchvision zeroes the key bias of cosine attention
        p = Op(lrp.Dense(weight, bias), (h,), 4, name=f"{part}_proj")
        if part == "q" and not cosine:
            p = Op(lrp.Affine(scale=torch.tensor(scale, dtype=torch.float64)), (p,), 4,
                   name="q_scale")
        p = Op(lrp.Reshape((windows, tokens, heads, d)), (p,), 5, name=f"{part}_heads")
        if cosine and part != "v":
            p = Op(core_layer("L2Normalize")(-1), (p,), 5, name=f"{part}_normalize")
        parts.append(Op(lrp.Permute(axes), (p,), 5, name=f"{part}_perm"))
    q, k, v = parts
    scores = Op(core_layer("MatMul")(), (q, k), 5, name="scores")  # (N, windows, h, T, T)
    if cosine:  # the learned temperature of each head, a constant: (h, 1, 1)
        temperature = torch.clamp(param(logit_scale), max=math.log(100.0)).exp()
        scores = Op(lrp.Affine(scale=temperature.reshape(heads, 1, 1)), (scores,), 5,
                    name="logit_scale")
    bias = param(relative_position_bias)
    if bias.dim() == 4 and bias.shape[0] == 1:
        bias = bias[0]
    constant = bias.expand(windows, heads, tokens, tokens)
    if sum(shift) > 0:
        mask = _shift_mask(pad_h, pad_w, window, tuple(shift), bias.dtype)
        constant = constant + mask.unsqueeze(1)
    scores = Op(core_layer("AddConstant")(constant.contiguous()), (scores,), 5, name="bias")
    weights = Op(lrp.Softmax(-1), (scores,), 5, name="softmax")
    mixed = Op(core_layer("MatMul")(), (weights, v), 5, name="mix")  # (N, windows, h, T, d)
    mixed = Op(lrp.Permute((0, 1, 3, 2, 4)), (mixed,), 5, name="mix_perm")
    mixed = Op(lrp.Reshape((windows, tokens, channels)), (mixed,), 4, name="merge")
    out = Op(lrp.Dense(param(proj_weight), None if proj_bias is None else param(proj_bias)),
             (mixed,), 4, name="proj")
    out = Op(lrp.Reshape((h_windows, w_windows, window[0], window[1], channels)), (out,), 6,
             name="unwindows")
    out = Op(lrp.Permute((0, 1, 3, 2, 4, 5)), (out,), 6, name="unwindows_perm")
    out = Op(lrp.Reshape(shape), (out,), 4, name="unpartition")
    if sum(shift) > 0:
        out = _roll(out, (shift[0], shift[1]), (1, 2), shape, "unroll")
    if pad_r or pad_b:
        out = Op(lrp.Slice(1, 0, height), (out,), 4, name="unpad_h")
        out = Op(lrp.Slice(2, 0, width), (out,), 4, name="unpad_w")
    if isinstance(out, Op):
        out.shape = (height, width, channels)
    return out


def patch_merging_pad(x):
    """torchvision's ``_patch_merging_pad``: pad H and W to even sizes, then the four
    interleaved quarters concatenated along the channels."""
    x = as_tensor(x)
    height, width, channels = known_shape(x, "_patch_merging_pad")
    h = x
    if height % 2 or width % 2:
        h = Op(lrp.ZeroPad(((0, height % 2), (0, width % 2), (0, 0))), (h,), 4, name="pad")
    quarters = []
    for i, (row, col) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1))):
        part = Op(lrp.Slice(1, row, None, 2), (h,), 4, name=f"rows{i}")
        quarters.append(Op(lrp.Slice(2, col, None, 2), (part,), 4, name=f"quarter{i}"))
    return Op(lrp.Concat(-1), tuple(quarters), 4,
              shape=(math.ceil(height / 2), math.ceil(width / 2), 4 * channels))
