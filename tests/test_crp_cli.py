"""``lrp explain MODEL INPUT --crp LAYER --top N`` (lrp_core/crp_cli.py), through the real entry
point, on the ONNX Model Zoo's mnist-8 (third-party data from ../shared/data)."""

from pathlib import Path

import numpy as np
import pytest

import lrp_core as lrp

from helpers.cli import mnist8_model
from helpers.cli import run_cli as lrp_cli
from helpers.data import mnist_test_images


@pytest.fixture(scope="module")
def mnist8():
    return mnist8_model()


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory):
    images, labels = mnist_test_images(2)
    folder = tmp_path_factory.mktemp("digits")
    paths = []
    for i, image in enumerate(images):
        paths.append(folder / f"digit{i}.npy")
        np.save(paths[-1], image)
    return images, labels, paths


def read_png(path):
    from PIL import Image

    with Image.open(path) as png:
        return np.asarray(png.convert("RGB"))


def test_crp_writes_a_concept_grid_per_input(mnist8, digit_files, tmp_path):
    images, labels, paths = digit_files
    done = lrp_cli("explain", mnist8, *paths, "--crp", "Convolution110", "--top", "3",
                   "--out", tmp_path, "--save-relevance")
    assert done.returncode == 0, done.stderr
    expected = lrp.CRP(lrp.LRP(str(mnist8), lrp.EpsilonPlusFlat()), "Convolution110",
                       lrp.TopNFeatures(3))(images)
    assert expected.output_selection == labels.tolist()
    for i, path in enumerate(paths):
        stem = f"{Path(path).stem}_crp_Convolution110_top3_out{labels[i]}"
        grid = read_png(tmp_path / f"{stem}.png")
        assert grid.shape[0] > 112 and grid.shape[1] > 4 * 112  # input and three concepts
        relevance = np.load(tmp_path / f"{stem}.npy", allow_pickle=False)
        assert relevance.shape == (3, 1, 28, 28)
        np.testing.assert_allclose(relevance, expected.val[i], rtol=1e-4,
                                   atol=1e-6 * np.abs(expected.val[i]).max())
        features = ", ".join(map(str, expected.extras["concepts"][i]))
        assert f"through features {features} of layer 2 (Convolution110" in done.stdout


def test_a_layer_by_index_is_the_same(mnist8, digit_files, tmp_path):
    _, labels, paths = digit_files
    done = lrp_cli("explain", mnist8, paths[0], "--crp", "2", "--out", tmp_path, "--quiet")
    assert done.returncode == 0 and done.stdout == "", done.stderr
    assert (tmp_path / f"digit0_crp_2_top4_out{labels[0]}.png").is_file()  # --top: 4


@pytest.mark.parametrize("options, fragments", [
    (["--crp", "conv2"], ["--crp conv2: the model has no such layer", "0 Convolution28",
                          "2 Convolution110", "5 Times212"]),
    (["--crp", "6"], ["--crp 6: the model has no such layer"]),
    (["--crp", "Convolution110", "--top", "17"], ["--top 17", "has only 16 features"]),
    (["--crp", "Convolution110", "--top", "0"], ["--top is a number of features, 1 or more"]),
    (["--top", "3"], ["--top N chooses the concepts of --crp LAYER"]),
])
def test_crp_mistakes_are_one_line(mnist8, digit_files, tmp_path, options, fragments):
    done = lrp_cli("explain", mnist8, digit_files[2][0], "--out", tmp_path, *options)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0], done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_help_lists_crp():
    done = lrp_cli("explain", "--help")
    assert done.returncode == 0
    assert "--crp LAYER" in done.stdout and "--top N" in done.stdout
