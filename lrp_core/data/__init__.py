"""Files shipped with lrp-core: the demo's trained LeNet-5 and a few sample digits.

Both are ``.npz`` archives of plain arrays, read with ``allow_pickle=False``; see README.md here
and ``scripts/train_demo_lenet5.py``, which wrote them.
"""

from __future__ import annotations

import pathlib
from importlib import resources

import numpy as np

__all__ = ["DATA_DIR", "load_npz", "read_npz", "sample_digits"]

DATA_DIR = pathlib.Path(__file__).resolve().parent


def load_npz(name: str) -> dict:
    """The arrays of the shipped ``.npz`` file ``name`` (a file name of this package, like
    ``"digits.npz"``), loaded without unpickling. Only the package is looked in: a file of the
    same name in the current folder is never read. :func:`read_npz` reads a file of any path."""
    if not isinstance(name, str) or name in ("", ".", "..") or pathlib.PurePath(name).name != name:
        raise ValueError(f"load_npz takes the name of a file shipped in lrp_core/data, like "
                         f"'digits.npz'; got {name!r} (read_npz reads a file of any path)")
    resource = resources.files(__name__).joinpath(name)
    if not resource.is_file():
        raise FileNotFoundError(f"lrp_core/data ships no file {name!r} (read_npz reads a file of "
                                "any path)")
    with resource.open("rb") as file:
        return _arrays(file)


def read_npz(path) -> dict:
    """The arrays of the ``.npz`` file at ``path`` (relative to the current folder, as usual),
    loaded without unpickling."""
    with open(path, "rb") as file:
        return _arrays(file)


def _arrays(file) -> dict:
    with np.load(file, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def sample_digits(dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)``: ten held-out digits 0..9 of scikit-learn's ``load_digits``, upsampled
    to 28x28: ``images`` is ``(10, 1, 28, 28)`` in [0, 1] (white on black), ``labels`` ``(10,)``."""
    arrays = load_npz("digits.npz")
    return arrays["images"].astype(dtype), arrays["labels"].astype(np.int64)
