"""The demo: shipped model and digits (safe formats), its figure, its check, and its imports."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lrp_core as lrp
from lrp_core.data import DATA_DIR, load_npz, sample_digits
from lrp_core.demo import DEFAULT_DIGITS, MyGammaRule, example_rules, run_demo
from lrp_core.models import lenet5_digits

from helpers.cli import run_cli

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["lenet5_digits.npz", "digits.npz"])
def test_shipped_files_load_without_pickle(name):
    with np.load(DATA_DIR / name, allow_pickle=False) as archive:
        for key in archive.files:
            assert archive[key].dtype != object


def test_shipped_model_is_the_trained_lenet5():
    record = load_npz("lenet5_digits.npz")
    assert float(record["heldout_accuracy"]) >= 0.97
    assert int(record["n_heldout"]) == 450
    model = lenet5_digits()
    assert len(lrp.canonize(model)) == 8  # the custom-rule example's eight rules apply as written
    images, labels = sample_digits()
    assert images.shape == (10, 1, 28, 28) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert sorted(labels.tolist()) == list(range(10))
    predicted = np.argmax(model.forward(images), axis=1)
    np.testing.assert_array_equal(predicted, labels)


def test_numpy_lenet5_matches_torch_layout():
    """The hand-built model computes what torch computes with the same state dict."""
    torch = pytest.importorskip("torch")
    params = {k: v for k, v in load_npz("lenet5_digits.npz").items() if "." in k}
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(256, 120), torch.nn.ReLU(), torch.nn.Linear(120, 84), torch.nn.ReLU(),
        torch.nn.Linear(84, 10))
    names = ["0", "3", "7", "9", "11"]
    state = {}
    for torch_name, ours in zip(names, ["conv1", "conv2", "fc1", "fc2", "fc3"]):
        state[f"{torch_name}.weight"] = torch.from_numpy(params[f"{ours}.weight"])
        state[f"{torch_name}.bias"] = torch.from_numpy(params[f"{ours}.bias"])
    net.load_state_dict(state)
    images, _ = sample_digits(np.float64)
    with torch.no_grad():
        expected = net.double()(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(lenet5_digits(np.float64).forward(images), expected,
                               rtol=1e-10, atol=1e-10)


def test_run_demo_writes_the_figure_and_the_check_is_zero(tmp_path):
    lines = []
    result = run_demo(tmp_path, echo=lines.append)
    assert result["difference"] == 0.0
    assert result["predicted"] == result["labels"] == list(DEFAULT_DIGITS)
    text = "\n".join(lines)
    assert "MyGammaRule vs GammaRule: max |difference| = 0\n" in text + "\n"
    assert str(tmp_path / "demo.png") in text
    from PIL import Image

    with Image.open(tmp_path / "demo.png") as png:
        width, height = png.size
        figure = np.asarray(png.convert("RGB"))
    assert width >= 5 * 112 and height >= len(DEFAULT_DIGITS) * 112  # 28x28 cells drawn at 112x112
    red = (figure[..., 0] > 200) & (figure[..., 1] < 80) & (figure[..., 2] < 80)
    blue = (figure[..., 2] > 200) & (figure[..., 0] < 80) & (figure[..., 1] < 80)
    assert red.sum() > 1000 and blue.sum() > 100  # positive and negative relevance both show


def test_custom_rule_equals_gamma_rule_on_the_shipped_model():
    model = lenet5_digits(np.float32)
    x, _ = sample_digits()
    a = lrp.LRP(model, example_rules(MyGammaRule()))(x).val
    b = lrp.LRP(model, example_rules(lrp.GammaRule()))(x).val
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)


def test_demo_command_on_the_base_install_imports_neither_torch_nor_onnx(tmp_path):
    """Through the real entry point: -X importtime lists every module the process imported."""
    done = run_cli("demo", "--out", str(tmp_path), "--digits", "3,8",
                   extra_python_flags=("-X", "importtime"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "MyGammaRule vs GammaRule: max |difference| = 0" in done.stdout
    assert (tmp_path / "demo.png").is_file()
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "numpy" in imported and "lrp_core" in imported  # the listing is there
    for framework in ("torch", "onnx", "onnxruntime", "sklearn", "cupy", "scipy"):
        assert framework not in imported, f"lrp demo imported {framework}"


def test_custom_rules_example_runs(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, str(REPO / "examples" / "custom_rules.py"),
                           "--out", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "MyGammaRule vs GammaRule: max |difference| = 0" in done.stdout
    assert "equals the analyzer's step: True" in done.stdout
    assert "computed by hand: True" in done.stdout
    assert (tmp_path / "custom_rules.png").is_file()
