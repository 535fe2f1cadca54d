"""Where the third-party test data lives (``../shared/data``; never copied into the repo).

``LRP_EXTERNAL_DATA`` (set by ``.ci/run``) names the folder; without it, ``<repo>/../shared/data``.
A missing file skips the test with a reason on a user's machine, and fails it when the variable
is set (CI promised the data).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

_REPO = Path(__file__).resolve().parents[2]  # tests/helpers/data.py -> the repository


def data_root() -> Path:
    return Path(os.environ.get("LRP_EXTERNAL_DATA", _REPO.parent / "shared" / "data"))


def data_path(*parts: str) -> Path:
    """The path of a shared data file; skips (or, under CI's variable, fails) if it is missing."""
    path = data_root().joinpath(*parts)
    if not path.is_file():
        message = f"third-party test data not found: {path}"
        if "LRP_EXTERNAL_DATA" in os.environ:
            pytest.fail(message + " (LRP_EXTERNAL_DATA is set, so it must exist)")
        pytest.skip(message + " (set LRP_EXTERNAL_DATA to the shared data folder)")
    return path


def mnist_test_images(count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` MNIST test images as float32 (count, 1, 28, 28) in [0, 1], and labels."""
    with gzip.open(data_path("mnist", "t10k-images-idx3-ubyte.gz"), "rb") as f:
        header = np.frombuffer(f.read(16), dtype=">i4")
        assert header[0] == 2051, "not an IDX image file"
        rows, cols = int(header[2]), int(header[3])
        pixels = np.frombuffer(f.read(count * rows * cols), dtype=np.uint8)
    with gzip.open(data_path("mnist", "t10k-labels-idx1-ubyte.gz"), "rb") as f:
        header = np.frombuffer(f.read(8), dtype=">i4")
        assert header[0] == 2049, "not an IDX label file"
        labels = np.frombuffer(f.read(count), dtype=np.uint8)
    images = pixels.reshape(count, 1, rows, cols).astype(np.float32) / 255.0
    return images, labels.astype(np.int64)
