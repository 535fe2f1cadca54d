"""``lrp explain MODEL INPUTS... --zarr OUT.zarr [--dask local:2]`` through the real entry point,
on the ONNX Model Zoo's mnist-8 and a folder of real MNIST test digits (../shared/data), read
back and compared with what ``lrp explain --save-relevance`` writes for the same files.
"""


import numpy as np
import pytest

zarr = pytest.importorskip("zarr", reason="lrp explain --zarr needs zarr (lrp-core[dataset])")

import lrp_core as lrp

from helpers.cli import mnist8_model
from helpers.cli import run_cli as lrp_cli
from helpers.data import mnist_test_images

COUNT = 10


@pytest.fixture(scope="module")
def mnist8():
    return mnist8_model()


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory):
    """The first 10 MNIST test digits as PNG files in one folder (names sort in order)."""
    images, labels = mnist_test_images(COUNT)
    folder = tmp_path_factory.mktemp("mnist") / "digits"
    folder.mkdir()
    paths = [lrp.save_image(folder / f"digit{i:02d}.png", np.rint(image[0] * 255).astype(np.uint8))
             for i, image in enumerate(images)]
    return folder, paths, images, labels


@pytest.fixture(scope="module")
def reference(mnist8, digit_folder, tmp_path_factory):
    """``lrp explain --save-relevance`` on the same PNGs: one relevance .npy per digit."""
    folder, paths, _, labels = digit_folder
    out = tmp_path_factory.mktemp("reference")
    done = lrp_cli("explain", mnist8, *paths, "--out", out, "--save-relevance", "--quiet")
    assert done.returncode == 0, done.stderr
    return np.stack([np.load(out / f"digit{i:02d}_lrp_epsilon-plus-flat_out{labels[i]}.npy")
                     for i in range(COUNT)])


def check_store(store, paths, labels, reference):
    group = zarr.open_group(store, mode="r")
    np.testing.assert_allclose(group["relevance"][:], reference, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(group["selection"][:], labels)  # mnist-8 reads them right
    np.testing.assert_array_equal(group["complete"][:], [1, 1, 1])  # batches of 4, 4, 2
    assert group["output"].shape == (COUNT, 10)
    assert group.attrs["lrp_core"]["inputs"] == [str(p) for p in paths]
    assert group["relevance"].chunks == (4, 1, 28, 28)
    return group


def test_in_one_process_then_resumed(mnist8, digit_folder, reference, tmp_path):
    folder, paths, _, labels = digit_folder
    store = tmp_path / "out.zarr"
    done = lrp_cli("explain", mnist8, folder, "--zarr", store, "--batch-size", "4")
    assert done.returncode == 0, done.stderr
    assert "10/10" in done.stderr  # the progress bar
    assert "3 chunks computed" in done.stdout
    check_store(store, paths, labels, reference)
    again = lrp_cli("explain", mnist8, folder, "--zarr", store, "--batch-size", "4")
    assert again.returncode == 0, again.stderr
    assert "3 of 3 chunks already complete" in again.stdout
    assert "0 chunks computed" in again.stdout


def test_on_a_local_dask_cluster(mnist8, digit_folder, reference, tmp_path):
    pytest.importorskip("distributed", reason="--dask needs dask[distributed]")
    folder, paths, _, labels = digit_folder
    store = tmp_path / "out.zarr"
    done = lrp_cli("explain", mnist8, folder, "--zarr", store, "--batch-size", "4",
                   "--dask", "local:2")
    assert done.returncode == 0, done.stderr
    assert "Dask: 2 workers" in done.stdout and "dashboard" in done.stdout
    assert "10/10" in done.stderr
    group = check_store(store, paths, labels, reference)
    # the one-process run writes the same store: the two are interchangeable for resuming
    plain = tmp_path / "plain.zarr"
    assert lrp_cli("explain", mnist8, folder, "--zarr", plain, "--batch-size", "4",
                   "--quiet").returncode == 0
    np.testing.assert_array_equal(group["relevance"][:],
                                  zarr.open_array(plain, path="relevance")[:])


@pytest.mark.parametrize("kind", ["npy", "zarr"])
def test_one_array_of_many_inputs(mnist8, digit_folder, reference, tmp_path, kind):
    _, _, images, labels = digit_folder
    # (10, 1, 28, 28), read 3 at a time: a .npy through a memory map, or a Zarr array
    if kind == "npy":
        array = tmp_path / "digits.npy"
        np.save(array, images)
    else:
        array = tmp_path / "digits.zarr"
        zarr.create_array(array, shape=images.shape, chunks=(5, 1, 28, 28),
                          dtype=images.dtype)[:] = images
    store = tmp_path / "out.zarr"
    done = lrp_cli("explain", mnist8, array, "--zarr", store, "--batch-size", "3", "--quiet")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""
    group = zarr.open_group(store, mode="r")
    # MNIST pixels are k/255: the PNG round trip of the reference is exact
    np.testing.assert_allclose(group["relevance"][:], reference, rtol=1e-5, atol=1e-7)
    assert group.attrs["lrp_core"]["inputs"] == list(range(COUNT))
    assert group.attrs["lrp_core"]["batch_chunks"] == [3, 3, 3, 1]


def test_a_store_of_other_rules_is_refused(mnist8, digit_folder, tmp_path):
    folder, _, _, _ = digit_folder
    store = tmp_path / "out.zarr"
    assert lrp_cli("explain", mnist8, folder, "--zarr", store, "--quiet").returncode == 0
    done = lrp_cli("explain", mnist8, folder, "--zarr", store, "--composite", "epsilon-plus")
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "different rules" in lines[0] and "give a new store" in lines[0]


@pytest.mark.parametrize("extra, fragment", [
    (["--dask", "local"], "--dask runs the explanation into a Zarr store"),
    (["--zarr", "{tmp}/o.zarr", "--dask", "local:0"], "positive number of workers"),
    (["--zarr", "{tmp}/o.zarr", "--dask", "nowhere"], "scheduler address"),
])
def test_option_mistakes_are_one_line(mnist8, digit_folder, tmp_path, extra, fragment):
    folder, _, _, _ = digit_folder
    extra = [e.format(tmp=tmp_path) for e in extra]
    done = lrp_cli("explain", mnist8, folder, *extra)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert len(done.stderr.strip().splitlines()) == 1 and fragment in done.stderr
