"""The kernels for NumPy: the strided kernels of :mod:`.strided` (sliding-window views and one
batched BLAS matmul per convolution; depthwise convolutions per plane or tap by tap, streamed in
cache-sized blocks) bound to ``numpy``.

Same functions, signatures and semantics as :mod:`lrp_core.kernels.reference`, which is the
oracle they are tested against.
"""

from __future__ import annotations

import functools

import numpy as np

from lrp_core.kernels import Backend

from . import strided

__all__ = ["NumpyBackend", "BACKEND", "conv", "conv_transpose", "max_pool", "max_pool_transpose",
           "avg_pool", "avg_pool_transpose"]

#: The working set of one block of the depthwise kernels: a CPU's L2 cache holds it, so columns
#: and accumulators are written and read there across the taps, not in memory (1-2 MiB timed
#: best among 0.5-4 MiB on EfficientNet-B0's layers at batch 16; one block was 2-3x slower).
DEPTHWISE_BLOCK_BYTES = 1024 * 1024

conv = functools.partial(strided.conv, np, block_bytes=DEPTHWISE_BLOCK_BYTES)
conv_transpose = functools.partial(strided.conv_transpose, np, block_bytes=DEPTHWISE_BLOCK_BYTES)
max_pool = functools.partial(strided.max_pool, np)
max_pool_transpose = functools.partial(strided.max_pool_transpose, np)
avg_pool = functools.partial(strided.avg_pool, np)
avg_pool_transpose = functools.partial(strided.avg_pool_transpose, np)


class NumpyBackend(Backend):
    """NumPy: the kernels above; ``erf`` and the rest from the array-API reference."""

    name = "numpy"
    framework = "numpy"
    conv = staticmethod(conv)
    conv_transpose = staticmethod(conv_transpose)
    max_pool = staticmethod(max_pool)
    max_pool_transpose = staticmethod(max_pool_transpose)
    avg_pool = staticmethod(avg_pool)
    avg_pool_transpose = staticmethod(avg_pool_transpose)


BACKEND = NumpyBackend()
