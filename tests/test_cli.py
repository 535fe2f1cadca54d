"""The ``lrp`` command line, through the real entry point (``python -m lrp_core`` in a subprocess).

``lrp explain`` runs on the ONNX Model Zoo's mnist-8 with real MNIST test digits written to PNG
(third-party data from ../shared/data, found through tests/helpers/data.py).
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import lrp_core as lrp

from helpers.cli import run_cli as lrp_cli
from helpers.data import data_path, mnist_test_images


def assert_one_line_error(done, *fragments, code=2):
    assert done.returncode == code, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "error:" in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# -- the command line itself --------------------------------------------------------------------

def test_help_lists_the_commands():
    done = lrp_cli("--help")
    assert done.returncode == 0
    assert "demo" in done.stdout and "explain" in done.stdout
    explain_help = lrp_cli("explain", "--help")
    assert explain_help.returncode == 0
    for option in ("--composite", "--output-selection", "--out", "--backend", "--mean", "--std",
                   "--overlay", "--save-relevance", "epsilon-plus-flat"):
        assert option in explain_help.stdout


def test_demo_through_the_entry_point(tmp_path):
    done = lrp_cli("demo", "--out", tmp_path / "figures")
    assert done.returncode == 0, done.stderr
    assert "MyGammaRule vs GammaRule: max |difference| = 0\n" in done.stdout
    figure = tmp_path / "figures" / "demo.png"
    assert figure.is_file() and str(figure) in done.stdout


@pytest.mark.parametrize("args, fragments", [
    (["bogus"], ["invalid choice"]),
    (["demo", "--digits", "12"], ["0..9"]),
    (["explain", "model.onnx"], ["INPUT"]),
    (["explain", "missing.onnx", "x.png"], ["model file not found", "missing.onnx"]),
    (["explain", "README.md", "x.png"], ["ONNX"]),
])
def test_user_mistakes_are_one_line(args, fragments):
    assert_one_line_error(lrp_cli(*args), *fragments)


@pytest.mark.parametrize("suffix", [".pt", ".pth"])
def test_a_pytorch_pickle_is_refused_without_being_opened(tmp_path, suffix):
    # the file does not even exist: the refusal cannot have come from reading it
    done = lrp_cli("explain", tmp_path / f"model{suffix}", tmp_path / "x.png")
    assert_one_line_error(done, "PyTorch pickle", "torch.onnx.export", "lrp.LRP(")
    assert not (tmp_path / f"model{suffix}").exists()
    # and an existing one (a pickle that would run code) is refused the same way
    evil = tmp_path / f"evil{suffix}"
    evil.write_bytes(b"\x80\x04\x95not a real pickle")
    assert_one_line_error(lrp_cli("explain", evil, tmp_path / "x.png"), "PyTorch pickle")


# -- lrp explain on mnist-8 ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist8():
    path = data_path("onnx-model-zoo", "mnist-8.onnx")
    pytest.importorskip("onnx", reason="lrp explain on an ONNX file needs the onnx package "
                                       "(lrp-core[onnx])")
    if importlib.util.find_spec("onnx") is None:
        pytest.skip("onnx is not installed")
    return path


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The first 10 MNIST test digits as PNG files (grey, 28x28) and as .npy arrays."""
    images, labels = mnist_test_images(10)
    folder = tmp_path_factory.mktemp("mnist")
    pngs, arrays = [], []
    for i, (image, label) in enumerate(zip(images, labels)):
        pngs.append(lrp.save_image(folder / f"mnist{i}_label{label}.png",
                                   np.rint(image[0] * 255).astype(np.uint8)))
        arrays.append(folder / f"mnist{i}.npy")
        np.save(arrays[-1], image)
    return images, labels, pngs, arrays


def read_png(path):
    from PIL import Image

    with Image.open(path) as png:
        return np.asarray(png.convert("RGB"))


def test_explain_mnist8_writes_a_heatmap_per_digit(mnist8, digits, tmp_path):
    images, labels, pngs, _ = digits
    done = lrp_cli("explain", mnist8, *pngs[:3], "--out", tmp_path, "--save-relevance")
    assert done.returncode == 0, done.stderr
    analyzer = lrp.LRP(str(mnist8), lrp.EpsilonPlusFlat())
    expected = analyzer(images[:3])
    assert expected.output_selection == labels[:3].tolist()  # mnist-8 reads these digits right
    for i in range(3):
        stem = Path(pngs[i]).stem
        heat = tmp_path / f"{stem}_lrp_epsilon-plus-flat_out{labels[i]}.png"
        assert heat.is_file(), done.stdout
        image = read_png(heat)
        assert image.shape == (224, 224, 3)  # 28x28, drawn 8x larger
        relevance = np.load(tmp_path / f"{stem}_lrp_epsilon-plus-flat_out{labels[i]}.npy",
                            allow_pickle=False)
        assert relevance.shape == (1, 28, 28)
        np.testing.assert_allclose(relevance, expected.val[i], rtol=1e-5, atol=1e-7)
        # red where the relevance is positive, blue where it is negative, white where it is 0
        big = np.repeat(np.repeat(relevance[0], 8, axis=0), 8, axis=1)
        strong = np.abs(big) > 0.5 * np.abs(big).max()
        positive, negative = strong & (big > 0), strong & (big < 0)
        assert positive.any()
        assert np.all(image[positive][:, 0] > image[positive][:, 2])
        assert np.all(image[negative][:, 2] > image[negative][:, 0])
        assert np.all(image[big == 0] > 240)
    assert "explained output 7" in done.stdout


def test_explain_npy_inputs_equal_png_inputs(mnist8, digits, tmp_path):
    _, labels, pngs, arrays = digits
    a = lrp_cli("explain", mnist8, pngs[0], "--out", tmp_path / "png", "--save-relevance",
                "--composite", "epsilon-plus")
    b = lrp_cli("explain", mnist8, arrays[0], "--out", tmp_path / "npy", "--save-relevance",
                "--composite", "epsilon-plus")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    ra = np.load(next((tmp_path / "png").glob("*.npy")))
    rb = np.load(next((tmp_path / "npy").glob("*.npy")))
    np.testing.assert_array_equal(ra, rb)  # MNIST pixels are k/255: the PNG round trip is exact


@pytest.mark.parametrize("composite", ["epsilon-plus", "epsilon-alpha2-beta1",
                                       "epsilon-alpha2-beta1-flat", "epsilon-gamma-box", "zero"])
def test_explain_every_composite_name(mnist8, digits, tmp_path, composite):
    _, labels, pngs, _ = digits
    done = lrp_cli("explain", mnist8, pngs[1], "--composite", composite, "--out", tmp_path,
                   "--quiet")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert (tmp_path / f"{Path(pngs[1]).stem}_lrp_{composite}_out{labels[1]}.png").is_file()


def test_explain_output_selection_overlay_and_progress_bar(mnist8, digits, tmp_path):
    _, _, pngs, _ = digits
    done = lrp_cli("explain", mnist8, *pngs, "--output-selection", "3", "--overlay",
                   "--out", tmp_path, "--batch-size", "4")
    assert done.returncode == 0, done.stderr
    written = sorted(tmp_path.glob("*.png"))
    assert len(written) == len(pngs)
    assert all(path.stem.endswith("_out3") for path in written)
    assert "10/10" in done.stderr  # tqdm's bar for many inputs
    image = read_png(written[0])
    assert image.shape == (224, 224, 3)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50  # the digit shows through the heatmap


def test_explain_mean_and_std_change_the_input(mnist8, digits, tmp_path):
    _, _, pngs, _ = digits
    plain = lrp_cli("explain", mnist8, pngs[0], "--out", tmp_path / "a", "--save-relevance")
    shifted = lrp_cli("explain", mnist8, pngs[0], "--out", tmp_path / "b", "--save-relevance",
                      "--mean", "0.5", "--std", "0.25")
    assert plain.returncode == 0 and shifted.returncode == 0, plain.stderr + shifted.stderr
    ra = np.load(next((tmp_path / "a").glob("*.npy")))
    rb = np.load(next((tmp_path / "b").glob("*.npy")))
    assert not np.allclose(ra, rb)


def test_explain_torch_backend_agrees_with_numpy(mnist8, digits, tmp_path):
    pytest.importorskip("torch")
    _, _, pngs, _ = digits
    a = lrp_cli("explain", mnist8, pngs[2], "--out", tmp_path / "np", "--save-relevance")
    b = lrp_cli("explain", mnist8, pngs[2], "--out", tmp_path / "torch", "--save-relevance",
                "--backend", "torch")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    np.testing.assert_allclose(np.load(next((tmp_path / "torch").glob("*.npy"))),
                               np.load(next((tmp_path / "np").glob("*.npy"))), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("extra, fragments, code", [
    (["--composite", "nope"], ["unknown composite", "epsilon-plus-flat"], 2),
    (["--mean", "0.1,0.2,0.3"], ["--mean has 3 values", "1 channel"], 2),
    (["--std", "0"], ["--std must not be 0"], 2),
    (["--colormap", "no-such-map"], ["colormap"], 2),
    (["--output-selection", "12"], ["out of range"], 1),
])
def test_explain_mistakes_are_one_line(mnist8, digits, tmp_path, extra, fragments, code):
    _, _, pngs, _ = digits
    assert_one_line_error(lrp_cli("explain", mnist8, pngs[0], "--out", tmp_path, *extra),
                          *fragments, code=code)


def test_explain_input_mistakes_are_one_line(mnist8, tmp_path):
    assert_one_line_error(lrp_cli("explain", mnist8, tmp_path / "missing.png"),
                          "input file not found")
    (tmp_path / "notes.txt").write_text("hello")
    assert_one_line_error(lrp_cli("explain", mnist8, tmp_path / "notes.txt"), "images (PNG, JPEG")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    assert_one_line_error(lrp_cli("explain", mnist8, tmp_path / "broken.png", "--out", tmp_path),
                          "broken.png")
    np.save(tmp_path / "wrong.npy", np.zeros((3, 5)))
    assert_one_line_error(lrp_cli("explain", mnist8, tmp_path / "wrong.npy", "--out", tmp_path),
                          "shape (3, 5)")
    (tmp_path / "fake.onnx").write_bytes(b"\x00garbage")
    assert_one_line_error(lrp_cli("explain", tmp_path / "fake.onnx", tmp_path / "wrong.npy"),
                          "fake.onnx")


# -- lrp explain on a small RGB model (written here with onnx.helper) --------------------------

@pytest.fixture(scope="module")
def rgb_models(tmp_path_factory):
    """Conv 3x3 (3→4) → ReLU → global average pool → flatten → Gemm (5 outputs), saved twice:
    with a fixed input (1, 3, 32, 32) and with an open one (N, 3, H, W); and a 50x40 JPEG."""
    onnx = pytest.importorskip("onnx", reason="lrp explain on an ONNX file needs the onnx package")
    if importlib.util.find_spec("onnx") is None:
        pytest.skip("onnx is not installed")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
               numpy_helper.from_array(0.1 * rng.standard_normal(4).astype(np.float32), "b"),
               numpy_helper.from_array(rng.standard_normal((5, 4)).astype(np.float32), "fw"),
               numpy_helper.from_array(np.zeros(5, np.float32), "fb")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1)]
    folder = tmp_path_factory.mktemp("rgb")
    paths = {}
    for name, dims in (("fixed", [1, 3, 32, 32]), ("open", ["N", 3, "H", "W"])):
        graph = helper.make_graph(nodes, "rgb",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                                 [dims[0], 5])], weights)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        onnx.checker.check_model(model)
        paths[name] = folder / f"rgb_{name}.onnx"
        onnx.save(model, str(paths[name]))
    from PIL import Image

    photo = (np.random.default_rng(1).random((40, 50, 3)) * 255).astype(np.uint8)
    paths["photo"] = folder / "photo.jpg"
    Image.fromarray(photo).save(paths["photo"], quality=95)
    return paths


def test_explain_rgb_jpeg_with_per_channel_mean_std_and_overlay(rgb_models, tmp_path):
    from lrp_core.images import load_image, to_model_input

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    done = lrp_cli("explain", rgb_models["fixed"], rgb_models["photo"], "--out", tmp_path,
                   "--overlay", "--save-relevance", "--mean", ",".join(map(str, mean)),
                   "--std", ",".join(map(str, std)))
    assert done.returncode == 0, done.stderr
    x = to_model_input(load_image(rgb_models["photo"]), 3, (32, 32), mean=mean, std=std)[None]
    expected = lrp.LRP(str(rgb_models["fixed"]), lrp.EpsilonPlusFlat())(x)
    relevance = np.load(next(tmp_path.glob("*.npy")))
    assert relevance.shape == (3, 32, 32)
    np.testing.assert_allclose(relevance, expected.val[0], rtol=1e-5, atol=1e-7)
    image = read_png(next(tmp_path.glob("*.png")))
    assert image.shape == (160, 200, 3)  # the overlay keeps the photo's 40x50, drawn 4x larger


def test_explain_open_input_size_needs_size(rgb_models, tmp_path):
    done = lrp_cli("explain", rgb_models["open"], rgb_models["photo"], "--out", tmp_path)
    assert_one_line_error(done, "--size HxW", "(?, 3, ?, ?)")
    done = lrp_cli("explain", rgb_models["open"], rgb_models["photo"], "--out", tmp_path,
                   "--size", "24x24", "--composite", "epsilon-gamma-box")
    assert done.returncode == 0, done.stderr
    assert read_png(next(tmp_path.glob("*.png"))).shape == (216, 216, 3)  # 24x24, drawn 9x larger


# -- epsilon-gamma-box: the ZBoxRule's bounds are each input's own, or --low/--high ---------------

@pytest.fixture(scope="module")
def far_apart(rgb_models, tmp_path_factory):
    """Two .npy inputs for rgb_fixed.onnx: ``a`` in [0, 1), ``b`` about 100 times larger."""
    rng = np.random.default_rng(5)
    folder = tmp_path_factory.mktemp("bounds")
    arrays = {"a": rng.random((3, 32, 32)).astype(np.float32),
              "b": (100 * rng.standard_normal((3, 32, 32)) + 50).astype(np.float32)}
    paths = {}
    for name, array in arrays.items():
        paths[name] = folder / f"{name}.npy"
        np.save(paths[name], array)
    return arrays, paths


def relevance_of(folder, stem):
    (path,) = folder.glob(f"{stem}_lrp_*.npy")
    return np.load(path, allow_pickle=False)


def test_explain_box_bounds_are_each_inputs_own(rgb_models, far_apart, tmp_path):
    arrays, paths = far_apart
    model, photo = rgb_models["fixed"], rgb_models["photo"]
    box = ("--composite", "epsilon-gamma-box", "--save-relevance", "--quiet")
    runs = {"alone": [paths["a"]], "photo-alone": [photo],
            "together": [photo, paths["a"], paths["b"]],
            "one-at-a-time": [paths["b"], paths["a"], photo, "--batch-size", "1"]}
    for name, args in runs.items():
        done = lrp_cli("explain", model, *args, *box, "--out", tmp_path / name)
        assert done.returncode == 0, done.stderr
    alone = relevance_of(tmp_path / "alone", "a")
    # a's heatmap does not depend on b (whose values are 100 times larger) being explained too
    together = relevance_of(tmp_path / "together", "a")
    np.testing.assert_allclose(together, alone, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(relevance_of(tmp_path / "one-at-a-time", "a"), alone)
    photo_alone = relevance_of(tmp_path / "photo-alone", "photo")
    np.testing.assert_allclose(relevance_of(tmp_path / "together", "photo"), photo_alone, rtol=1e-6,
                               atol=1e-9)
    np.testing.assert_array_equal(relevance_of(tmp_path / "one-at-a-time", "photo"), photo_alone)
    # each .npy input is bounded by its own smallest and largest value
    for name in ("a", "b"):
        x = arrays[name]
        expected = lrp.LRP(str(model), lrp.EpsilonGammaBox(float(x.min()), float(x.max())))(x[None])
        np.testing.assert_allclose(relevance_of(tmp_path / "together", name), expected.val[0],
                                   rtol=1e-5, atol=1e-6 * np.abs(expected.val).max())


def test_explain_low_and_high_bound_every_input(rgb_models, far_apart, tmp_path):
    arrays, paths = far_apart
    model = rgb_models["fixed"]
    box = ("--composite", "epsilon-gamma-box", "--save-relevance", "--quiet", "--low", "-300",
           "--high", "300")
    for name, args in {"alone": [paths["a"]], "together": [paths["b"], paths["a"]]}.items():
        done = lrp_cli("explain", model, *args, *box, "--out", tmp_path / name)
        assert done.returncode == 0, done.stderr
    analyzer = lrp.LRP(str(model), lrp.EpsilonGammaBox(-300.0, 300.0))
    for name in ("a", "b"):
        expected = analyzer(arrays[name][None]).val[0]
        np.testing.assert_allclose(relevance_of(tmp_path / "together", name), expected, rtol=1e-5,
                                   atol=1e-6 * np.abs(expected).max())
    alone = relevance_of(tmp_path / "alone", "a")
    together = relevance_of(tmp_path / "together", "a")
    np.testing.assert_allclose(together, alone, rtol=1e-6, atol=1e-9)
    a = arrays["a"]
    own = lrp.LRP(str(model), lrp.EpsilonGammaBox(float(a.min()), float(a.max())))
    assert not np.allclose(alone, own(a[None]).val[0])
    assert "--low L" in lrp_cli("explain", "--help").stdout


@pytest.mark.parametrize("extra, fragments", [
    (["--low", "0", "--composite", "epsilon-gamma-box"], ["--low and --high together"]),
    (["--high", "1", "--composite", "epsilon-gamma-box"], ["--low and --high together"]),
    (["--low", "1", "--high", "1", "--composite", "epsilon-gamma-box"], ["smaller than --high"]),
    (["--low", "0", "--high", "1", "--composite", "epsilon-plus"],
     ["epsilon-gamma-box", "no bounds"]),
])
def test_explain_low_and_high_mistakes_are_one_line(rgb_models, far_apart, tmp_path, extra,
                                                    fragments):
    _, paths = far_apart
    done = lrp_cli("explain", rgb_models["fixed"], paths["a"], "--out", tmp_path, *extra)
    assert_one_line_error(done, *fragments)
