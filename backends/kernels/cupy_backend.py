"""The backend for CuPy arrays: the pure array-API reference kernels run on CuPy unchanged.

Registered for the ``cupy`` namespace in :mod:`lrp_core.kernels`. The reference loops over
kernel taps only (never pixels or samples), so on a GPU each tap is one strided slice and one
batched matmul. Native CuPy kernels are the faster follow-up; until then this backend only adds
what the reference lacks: host and device conversions.
Not exercised in CI (no GPU); ``tests/test_cupy_kernels.py`` runs where CuPy and a GPU are present.
"""

from __future__ import annotations

import cupy
import numpy as np

from lrp_core.kernels import Backend

__all__ = ["CupyBackend", "BACKEND"]


class CupyBackend(Backend):
    """CuPy: the reference kernels, with host conversions through ``cupy``."""

    name = "cupy"
    framework = "cupy"

    def to_numpy(self, x) -> np.ndarray:
        """A host NumPy copy of a CuPy array."""
        return cupy.asnumpy(x)

    def from_numpy(self, x: np.ndarray):
        """A NumPy array copied to the current GPU (for ``lrp explain --backend cupy``)."""
        return cupy.asarray(x)


BACKEND = CupyBackend()
