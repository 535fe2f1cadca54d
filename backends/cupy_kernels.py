"""The kernels for CuPy arrays: the pure array-API reference runs on CuPy unchanged.

Registered for the ``cupy`` namespace in :mod:`lrp_core.kernels`. The reference loops over
kernel taps only (never pixels or samples), so on a GPU each tap is one strided slice and one
batched matmul. A CuPy port of the NumPy backend's im2col kernels is the faster follow-up; until
then this module only adds what the reference lacks: host and device conversions.
Not exercised in CI (no GPU); ``tests/test_cupy_kernels.py`` runs where CuPy and a GPU are present.
"""

from __future__ import annotations

import cupy
import numpy as np

from lrp_core.kernels.reference import (avg_pool, avg_pool_transpose, conv, conv_transpose, max_pool,
                                        max_pool_transpose)

__all__ = ["conv", "conv_transpose", "max_pool", "max_pool_transpose", "avg_pool", "avg_pool_transpose",
           "to_numpy", "from_numpy"]


def to_numpy(x) -> np.ndarray:
    """A host NumPy copy of a CuPy array."""
    return cupy.asnumpy(x)


def from_numpy(x: np.ndarray):
    """A NumPy array copied to the current GPU (for ``lrp explain --backend cupy``)."""
    return cupy.asarray(x)
