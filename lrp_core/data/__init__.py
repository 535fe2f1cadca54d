"""Files shipped with lrp-core: the demo's trained LeNet-5 and a few sample digits.

Both are ``.npz`` archives of plain arrays, read with ``allow_pickle=False``; see README.md here
and ``scripts/train_demo_lenet5.py``, which wrote them.
"""

from __future__ import annotations

import pathlib

import numpy as np

__all__ = ["DATA_DIR", "load_npz", "sample_digits"]

DATA_DIR = pathlib.Path(__file__).resolve().parent


def load_npz(name_or_path) -> dict:
    """The arrays of an ``.npz`` file of this folder (or of a path), loaded without unpickling."""
    path = pathlib.Path(name_or_path)
    if not path.is_absolute() and not path.exists():
        path = DATA_DIR / path
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def sample_digits(dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)``: ten held-out digits 0..9 of scikit-learn's ``load_digits``, upsampled
    to 28x28: ``images`` is ``(10, 1, 28, 28)`` in [0, 1] (white on black), ``labels`` ``(10,)``."""
    arrays = load_npz("digits.npz")
    return arrays["images"].astype(dtype), arrays["labels"].astype(np.int64)
