"""Mistakes a user can fix are reported by ``lrp explain`` and ``lrp demo`` as one line,
``lrp: error: ...``, naming the file or option and what would be right: exit status 2 (1 for
what cannot be done), no traceback, never "an lrp bug?".

Runs the real entry point (``python -m lrp_core`` in a subprocess) on small ONNX models written
here with ``onnx.helper``.
"""

import io
import struct
import zlib

import numpy as np
import pytest

from helpers.cli import run_cli as lrp_cli


def assert_one_line_error(done, *fragments, code=2):
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(("lrp: error: ", "lrp explain: error: ", "lrp demo: error: ")), \
        lines[0]
    assert "lrp bug" not in lines[0], lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# -- small models and inputs -------------------------------------------------------------------

@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """``grey``: (N, 1, 8, 8) → flatten → Gemm, 10 outputs; ``open``: (N, 3, H, W) → global
    average pool → flatten → Gemm, 5 outputs."""
    onnx = pytest.importorskip("onnx", reason="lrp explain on an ONNX file needs onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("models")
    specs = {
        "grey": ([1, 1, 8, 8], [helper.make_node("Flatten", ["x"], ["f"]),
                                helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1)],
                 {"w": rng.standard_normal((10, 64)), "b": np.zeros(10)}),
        "open": (["N", 3, "H", "W"], [helper.make_node("GlobalAveragePool", ["x"], ["g"]),
                                      helper.make_node("Flatten", ["g"], ["f"]),
                                      helper.make_node("Gemm", ["f", "w", "b"], ["y"],
                                                       transB=1)],
                 {"w": rng.standard_normal((5, 3)), "b": np.zeros(5)}),
    }
    paths = {}
    for name, (dims, nodes, inits) in specs.items():
        graph = helper.make_graph(
            nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [dims[0], None])],
            [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        paths[name] = folder / f"{name}.onnx"
        onnx.save(model, str(paths[name]))
    return paths


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A good input for the grey model, as .npy and as PNG."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("good")
    x = np.random.default_rng(1).random((1, 8, 8)).astype(np.float32)
    np.save(folder / "good.npy", x)
    Image.fromarray(np.rint(x[0] * 255).astype(np.uint8)).save(folder / "good.png")
    return {"npy": folder / "good.npy", "png": folder / "good.png"}


def test_the_models_explain(models, good, tmp_path):
    for kind in ("npy", "png"):
        done = lrp_cli("explain", models["grey"], good[kind], "--out", tmp_path / kind)
        assert done.returncode == 0, done.stderr


# -- 1. inputs the user can fix ----------------------------------------------------------------

def bomb_png(path, width, height):
    """A small valid PNG whose header (IHDR) declares ``width`` x ``height`` pixels."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("width, height", [
    (100_000, 100_000),  # Pillow raises DecompressionBombError
    (14_000, 14_000),    # Pillow only warns (DecompressionBombWarning): refused all the same
])
def test_a_decompression_bomb_png_is_refused(models, tmp_path, width, height):
    png = bomb_png(tmp_path / "bomb.png", width, height)
    done = lrp_cli("explain", models["grey"], png, "--out", tmp_path / "out")
    assert_one_line_error(done, "bomb.png", "too large", "smaller image")


def npy(tmp_path, name, array, **kwargs):
    np.save(tmp_path / name, array, **kwargs)
    return tmp_path / name


@pytest.mark.parametrize("name, array, fragments", [
    ("empty.npy", np.zeros((0,), np.float32), ["empty.npy", "empty array", "(0,)", "(1, 8, 8)"]),
    ("empty3.npy", np.zeros((0, 8, 8), np.float32), ["empty3.npy", "empty array", "(1, 8, 8)"]),
    ("wrong.npy", np.zeros((3, 5), np.float32), ["wrong.npy", "shape (3, 5)", "(1, 8, 8)"]),
    ("text.npy", np.array(["a", "b"]), ["text.npy", "numeric", "<U1"]),
    ("flags.npy", np.ones((1, 8, 8), bool), ["flags.npy", "numeric", "bool"]),
    ("complex.npy", np.ones((1, 8, 8), complex), ["complex.npy", "real", "complex128"]),
    ("nan.npy", np.full((1, 8, 8), np.nan, np.float32), ["nan.npy", "NaN or infinite"]),
    ("inf.npy", np.full((1, 8, 8), np.inf, np.float32), ["inf.npy", "NaN or infinite"]),
])
def test_npy_mistakes_are_one_line(models, tmp_path, name, array, fragments):
    done = lrp_cli("explain", models["grey"], npy(tmp_path, name, array), "--out", tmp_path)
    assert_one_line_error(done, *fragments)


class Boom:
    """Unpickling this would write a file: lrp must never do it."""

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_an_object_npy_is_refused_and_never_unpickled(models, tmp_path):
    marker = tmp_path / "unpickled"
    boom = Boom()
    boom.marker = str(marker)
    array = np.empty(1, dtype=object)
    array[0] = boom
    path = npy(tmp_path, "objects.npy", array, allow_pickle=True)
    done = lrp_cli("explain", models["grey"], path, "--out", tmp_path / "out")
    assert_one_line_error(done, "objects.npy", "dtype object", "numeric array")
    assert not marker.exists()


def test_a_file_that_is_not_npy_is_one_line(models, tmp_path):
    (tmp_path / "junk.npy").write_bytes(b"junk, not an array")
    done = lrp_cli("explain", models["grey"], tmp_path / "junk.npy", "--out", tmp_path)
    assert_one_line_error(done, "junk.npy", "not a .npy file", "numpy.save")


def test_an_open_input_size_asks_for_size_for_npy(models, tmp_path):
    path = npy(tmp_path, "rgb.npy", np.ones((3, 6, 7), np.float32))
    done = lrp_cli("explain", models["open"], path, "--out", tmp_path)
    assert_one_line_error(done, "rgb.npy", "--size 6x7")
    done = lrp_cli("explain", models["open"], path, "--out", tmp_path, "--size", "6x7")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("scale, fragments", [
    ("100000", ["--scale 100000", "16384"]),
    ("5000", ["--scale 5000", "40000x40000", "--scale 2048 or less"]),
])
def test_a_huge_scale_is_refused(models, good, tmp_path, scale, fragments):
    done = lrp_cli("explain", models["grey"], good["npy"], "--out", tmp_path, "--scale", scale)
    assert_one_line_error(done, *fragments)
    assert not list(tmp_path.glob("*.png"))


def test_a_moderate_scale_still_works(models, good, tmp_path):
    done = lrp_cli("explain", models["grey"], good["npy"], "--out", tmp_path, "--scale", "64")
    assert done.returncode == 0, done.stderr


# -- 2. the model ------------------------------------------------------------------------------

def test_a_folder_as_the_model_is_named_a_folder(models, good, tmp_path):
    for name in ("models", "models.onnx"):
        folder = tmp_path / name
        folder.mkdir()
        done = lrp_cli("explain", folder, good["npy"], "--out", tmp_path / "out")
        assert_one_line_error(done, name, "is a folder", ".onnx file")
        assert "not found" not in done.stderr


def test_model_file_mistakes_are_one_line(models, good, tmp_path):
    (tmp_path / "notonnx.onnx").write_bytes(b"\x00 this is not a protobuf")
    assert_one_line_error(lrp_cli("explain", tmp_path / "notonnx.onnx", good["npy"]),
                          "notonnx.onnx", "ONNX")
    (tmp_path / "empty.onnx").write_bytes(b"")
    assert_one_line_error(lrp_cli("explain", tmp_path / "empty.onnx", good["npy"]),
                          "empty.onnx", "empty file")
    assert_one_line_error(lrp_cli("explain", tmp_path / "missing.onnx", good["npy"]),
                          "model file not found", "missing.onnx")
    (tmp_path / "model.txt").write_text("hello")
    assert_one_line_error(lrp_cli("explain", tmp_path / "model.txt", good["npy"]),
                          "model.txt", "ONNX")
    (tmp_path / "model.pt").write_bytes(b"\x80\x04\x95 a pickle")
    assert_one_line_error(lrp_cli("explain", tmp_path / "model.pt", good["npy"]),
                          "model.pt", "PyTorch pickle", "torch.onnx.export")


# -- 3. --out ----------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["explain", "demo"])
def test_out_mistakes_name_out(models, good, tmp_path, command):
    blocker = tmp_path / "somefile.txt"
    blocker.write_text("a file, not a folder")
    prefix = ["explain", models["grey"], good["npy"]] if command == "explain" else ["demo"]
    done = lrp_cli(*prefix, "--out", blocker)
    assert_one_line_error(done, "--out", "somefile.txt", "is a file, not a folder")
    done = lrp_cli(*prefix, "--out", blocker / "sub")
    assert_one_line_error(done, "--out", "sub", "cannot create the folder")


def test_a_heatmap_that_cannot_be_written_names_out(models, good, tmp_path):
    for k in range(10):  # a folder where each possible heatmap would go
        (tmp_path / f"good_lrp_epsilon-plus-flat_out{k}.png").mkdir()
    done = lrp_cli("explain", models["grey"], good["npy"], "--out", tmp_path)
    assert_one_line_error(done, "--out", "cannot write", "good_lrp_epsilon-plus-flat_out")


def test_demo_png_that_cannot_be_written_names_out(tmp_path):
    (tmp_path / "demo.png").mkdir()
    assert_one_line_error(lrp_cli("demo", "--out", tmp_path), "--out", "cannot write demo.png")


# -- 4. --mean and --std -----------------------------------------------------------------------

@pytest.mark.parametrize("option", ["--mean", "--std"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0.5,nan"])
def test_mean_and_std_must_be_finite(models, good, tmp_path, option, value):
    # --mean=-inf: a value starting with "-" is joined to its option
    done = lrp_cli("explain", models["grey"], good["png"], "--out", tmp_path, f"{option}={value}")
    assert_one_line_error(done, option, "finite")


# -- 5. the other arguments --------------------------------------------------------------------

@pytest.mark.parametrize("extra, fragments, code", [
    (["--output-selection", "10"], ["--output-selection 10", "out of range", "0..9"], 1),
    (["--output-selection", "-1"], ["--output-selection", "0 or more"], 2),
    (["--output-selection", "x"], ["--output-selection", "invalid int"], 2),
    (["--batch-size", "0"], ["--batch-size", "positive"], 2),
    (["--scale", "0"], ["--scale", "positive"], 2),
    (["--size", "3"], ["--size", "HEIGHTxWIDTH"], 2),
    (["--size", "0x0"], ["--size", "positive"], 2),
    (["--size", "axb"], ["--size", "HEIGHTxWIDTH"], 2),
    (["--colormap", "no-such-map"], ["--colormap", "no-such-map", "seismic"], 2),
    (["--percentile", "150"], ["--percentile", "(0, 100]", "150"], 2),
    (["--percentile", "0"], ["--percentile", "(0, 100]"], 2),
    (["--percentile", "nan"], ["--percentile", "finite"], 2),
    (["--alpha", "2"], ["--alpha", "[0, 1]"], 2),
    (["--alpha", "-0.5"], ["--alpha", "[0, 1]"], 2),
    (["--alpha", "nan"], ["--alpha", "finite"], 2),
    (["--composite", "nope"], ["unknown composite", "epsilon-plus-flat"], 2),
    (["--backend", "jax"], ["--backend", "invalid choice"], 2),
    (["--mean", "0.1,0.2"], ["--mean has 2 values", "1 channel"], 2),
    (["--std", "0"], ["--std must not be 0"], 2),
    (["--low", "nan", "--high", "1", "--composite", "epsilon-gamma-box"], ["--low", "finite"], 2),
    (["--low", "0", "--high", "inf", "--composite", "epsilon-gamma-box"], ["--high", "finite"], 2),
    (["--low", "1", "--high", "0", "--composite", "epsilon-gamma-box"], ["--low", "--high"], 2),
])
def test_explain_option_mistakes_are_one_line(models, good, tmp_path, extra, fragments, code):
    done = lrp_cli("explain", models["grey"], good["png"], "--out", tmp_path, *extra)
    assert_one_line_error(done, *fragments, code=code)


def test_explain_input_file_mistakes_are_one_line(models, good, tmp_path):
    grey = models["grey"]
    assert_one_line_error(lrp_cli("explain", grey, tmp_path / "missing.png"),
                          "input file not found", "missing.png")
    (tmp_path / "notes.txt").write_text("hello")
    assert_one_line_error(lrp_cli("explain", grey, tmp_path / "notes.txt"),
                          "notes.txt", "images (PNG, JPEG")
    (tmp_path / "inputs").mkdir()
    assert_one_line_error(lrp_cli("explain", grey, tmp_path / "inputs"), "inputs", "is a folder")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    assert_one_line_error(lrp_cli("explain", grey, tmp_path / "broken.png", "--out", tmp_path),
                          "broken.png", "not an image")
    # a missing input fails before any work: no heatmap of the good one is written
    done = lrp_cli("explain", grey, good["npy"], tmp_path / "gone.npy", "--out", tmp_path / "out")
    assert_one_line_error(done, "gone.npy")
    assert not list((tmp_path / "out").glob("*.png"))


@pytest.mark.parametrize("digits, fragments", [
    ("12", ["--digits", "0..9"]),
    ("x", ["--digits", "like 0,2,3"]),
    ("", ["--digits"]),
    ("1,,2", ["--digits"]),
])
def test_demo_digits_mistakes_are_one_line(digits, fragments):
    assert_one_line_error(lrp_cli("demo", "--digits", digits), *fragments)
