"""The kernels for NumPy: the strided kernels of :mod:`.strided` (sliding-window views and one
batched BLAS matmul per convolution) bound to ``numpy``.

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

conv = functools.partial(strided.conv, np)
conv_transpose = functools.partial(strided.conv_transpose, np)
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
