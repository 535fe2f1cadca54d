"""Relevance comparisons for the tests: relevance maps have many tiny entries, so they are
compared relative to each entry and to the largest relevance."""

from __future__ import annotations

import numpy as np


def as_numpy(x) -> np.ndarray:
    """``x`` as a NumPy array; a torch tensor (any device, with or without grad) is copied to
    the CPU."""
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        return x.detach().cpu().numpy()
    return np.asarray(x)


def assert_relevance_close(actual, expected, rtol: float) -> None:
    """Equal up to ``rtol``, relative to each entry and to the largest relevance (relevance maps
    have many tiny entries). NumPy arrays or torch tensors."""
    actual, expected = as_numpy(actual), as_numpy(expected)
    scale = float(np.abs(expected).max())
    assert scale > 0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)
