"""The backend for CuPy arrays: the strided kernels of :mod:`.strided` (the NumPy backend's
formulation: sliding-window views, one batched cuBLAS matmul per convolution, tap loops for
col2im and pooling) bound to ``cupy``; ``erf`` from ``cupyx.scipy.special``; host conversions.

Registered for the ``cupy`` namespace in :mod:`lrp_core.kernels` and imported only when a CuPy
array is seen (importing :mod:`lrp_core` never imports cupy). Arrays move between CuPy and torch
CUDA tensors through DLPack without a copy (:func:`lrp_core.arrays.to_namespace`).
The shared code paths run on NumPy in CI (``tests/test_strided_kernels.py``, with the
``as_strided`` fallback CuPy versions without ``sliding_window_view`` take); the CuPy run itself
is ``tests/test_gpu.py`` (marked ``gpu``) and ``benchmarks/gpu_check.sh`` on a GPU machine.
"""

from __future__ import annotations

import functools

import cupy
import numpy as np

from lrp_core.kernels import Backend

from . import strided

__all__ = ["CupyBackend", "BACKEND"]


def erf(x):
    """The error function, elementwise (``cupyx.scipy.special.erf``)."""
    from cupyx.scipy import special

    return special.erf(x)


class CupyBackend(Backend):
    """CuPy: the strided kernels, cuBLAS matmuls, ``cupyx`` ``erf``, host conversions."""

    name = "cupy"
    framework = "cupy"
    conv = staticmethod(functools.partial(strided.conv, cupy))
    conv_transpose = staticmethod(functools.partial(strided.conv_transpose, cupy))
    max_pool = staticmethod(functools.partial(strided.max_pool, cupy))
    max_pool_transpose = staticmethod(functools.partial(strided.max_pool_transpose, cupy))
    avg_pool = staticmethod(functools.partial(strided.avg_pool, cupy))
    avg_pool_transpose = staticmethod(functools.partial(strided.avg_pool_transpose, cupy))
    erf = staticmethod(erf)

    def to_numpy(self, x) -> np.ndarray:
        """A host NumPy copy of a CuPy array."""
        return cupy.asnumpy(x)

    def from_numpy(self, x: np.ndarray):
        """A NumPy array copied to the current GPU (for ``lrp explain --backend cupy``)."""
        return cupy.asarray(x)


BACKEND = CupyBackend()
