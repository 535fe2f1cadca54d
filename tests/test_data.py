"""The shipped data (``lrp_core.data``) resolve against the package only: a file of the same name
in the current folder never shadows them."""

from __future__ import annotations

import numpy as np
import pytest

from lrp_core.data import DATA_DIR, load_npz, read_npz, sample_digits
from lrp_core.demo import run_demo
from lrp_core.models import lenet5_digits


def packaged(name: str) -> dict:
    with np.load(DATA_DIR / name, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


@pytest.fixture
def decoys(tmp_path, monkeypatch):
    """The current folder holds a ``digits.npz`` and a ``lenet5_digits.npz`` with the shipped
    keys and shapes but other values (and a held-out accuracy of 12.5%)."""
    rng = np.random.default_rng(0)
    fakes = {}
    for name in ("digits.npz", "lenet5_digits.npz"):
        arrays = {key: value.copy() for key, value in packaged(name).items()}
        for key, value in arrays.items():
            if np.issubdtype(value.dtype, np.floating) and value.ndim > 0:
                arrays[key] = rng.standard_normal(value.shape).astype(value.dtype) + 5
        if name == "digits.npz":
            arrays["labels"] = arrays["labels"][::-1].copy()
        else:
            arrays["heldout_accuracy"] = np.asarray(0.125, arrays["heldout_accuracy"].dtype)
        np.savez(tmp_path / name, **arrays)
        fakes[name] = arrays
    monkeypatch.chdir(tmp_path)
    return fakes


def test_sample_digits_ignore_a_digits_npz_in_the_current_folder(decoys):
    images, labels = sample_digits()
    shipped = packaged("digits.npz")
    np.testing.assert_array_equal(images, shipped["images"])
    np.testing.assert_array_equal(labels, shipped["labels"])
    assert not np.array_equal(labels, decoys["digits.npz"]["labels"])


def test_demo_model_ignores_a_lenet5_digits_npz_in_the_current_folder(decoys):
    shipped = packaged("lenet5_digits.npz")
    for name, value in load_npz("lenet5_digits.npz").items():
        np.testing.assert_array_equal(value, shipped[name])
    model = lenet5_digits()
    np.testing.assert_array_equal(model[0].weight, shipped["conv1.weight"])
    np.testing.assert_array_equal(model[-1].bias, shipped["fc3.bias"])
    images, labels = sample_digits()
    np.testing.assert_array_equal(np.argmax(model.forward(images), axis=1), labels)


def test_demo_ignores_the_decoys(decoys, tmp_path):
    lines = []
    result = run_demo(tmp_path / "out", echo=lines.append)
    assert result["difference"] == 0.0
    text = "\n".join(lines)
    assert "99.1%" in text and "12.5%" not in text
    assert result["predicted"] == result["labels"]


def test_an_explicit_path_reads_that_file(decoys, tmp_path):
    fake = decoys["lenet5_digits.npz"]
    read = read_npz("lenet5_digits.npz")  # relative to the current folder
    np.testing.assert_array_equal(read["conv1.weight"], fake["conv1.weight"])
    model = lenet5_digits(path=tmp_path / "lenet5_digits.npz")
    np.testing.assert_array_equal(model[0].weight, fake["conv1.weight"])


@pytest.mark.parametrize("name", ["./digits.npz", "sub/digits.npz", str(DATA_DIR / "digits.npz"),
                                  ""])
def test_load_npz_takes_only_a_shipped_file_name(name):
    with pytest.raises(ValueError, match="read_npz"):
        load_npz(name)


def test_load_npz_names_a_missing_file():
    with pytest.raises(FileNotFoundError, match="no-such.npz"):
        load_npz("no-such.npz")
