"""The ``lrp`` command line (also ``python -m lrp_core``).

    lrp demo [--out DIR]
    lrp explain MODEL.onnx INPUT... [--composite NAME] [--output-selection K] [--out DIR]
                [--backend numpy|torch|cupy] [--mean M --std S] [--low L --high H] [--overlay]
                [--save-relevance]
    lrp explain MODEL.onnx INPUT... --zarr OUT.zarr [--dask local[:WORKERS] | tcp://HOST:PORT]
    lrp explain MODEL.onnx INPUT... --crp LAYER [--top N]     (one CRP grid per input)

A user's mistake prints one line, ``lrp: error: ...``, and no traceback: exit status 2 for what
was asked (a missing file, an unknown option value, a PyTorch pickle), 1 for what cannot be done
(an unsupported layer, an output index out of range). ``lrp --debug ...`` shows the traceback.
Importing this module imports no framework: ``explain`` reaches onnx, torch and cupy only through
the backends (``lrp_core.backends``), and only when the model or ``--backend`` needs them.
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import sys
import warnings

import numpy as np

from .analyzer import LRP
from .arrays import to_numpy
from .demo import DEFAULT_DIGITS, MyGammaRule, example_rules, run_demo
from .errors import LRPError
from .heatmaps import _colormap, heatmap
from .images import load_image, save_image, to_model_input
from .kernels import backend_named
from .models import random_lenet5
from .presets import NEEDS_BOUNDS, PRESETS, preset

__all__ = ["main", "random_lenet5", "MyGammaRule", "example_rules", "COMPOSITES"]


class UserError(Exception):
    """A mistake in what the user asked for: reported as one line, exit status 2."""


#: ``--composite`` names: the presets of :data:`lrp_core.presets.PRESETS`, in kebab case
COMPOSITES = tuple(name.replace("_", "-") for name in PRESETS)
#: the ``--composite`` names that take the input bounds (``--low``, ``--high``)
BOXED = tuple(name.replace("_", "-") for name in PRESETS if name in NEEDS_BOUNDS)
PICKLE_SUFFIXES = {".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
#: the largest side of a heatmap PNG, in pixels (``--scale`` beyond it is refused)
MAX_HEATMAP_SIDE = 16384


# -- the output folder (both commands) ---------------------------------------------------------

def _out_folder(text: str) -> pathlib.Path:
    """The ``--out`` folder, created if missing; a file there, or a folder that cannot be created
    or written, is the user's to fix."""
    out = pathlib.Path(text)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {text} is a file, not a folder: give a folder (it is created if "
                        "missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"--out {text}: cannot create the folder ({error.strerror or error}): "
                        "give a folder that can be created and written") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"--out {text}: the folder is not writable: give one that is")
    return out


# -- lrp demo ----------------------------------------------------------------------------------

def _digits(text: str) -> tuple[int, ...]:
    try:
        digits = tuple(int(d) for d in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected digits separated by commas, like 0,2,3; "
                                         f"got {text!r}") from None
    if not digits or any(not 0 <= d <= 9 for d in digits):
        raise argparse.ArgumentTypeError(f"digits are 0..9, got {text!r}")
    return digits


def demo(args) -> int:
    _out_folder(args.out)
    try:
        result = run_demo(args.out, args.digits)
    except OSError as error:
        if error.filename is None or not str(error.filename).startswith(str(args.out)):
            raise
        raise UserError(f"--out {args.out}: cannot write demo.png there "
                        f"({error.strerror or error})") from None
    return 0 if result["difference"] == 0.0 else 1


# -- lrp explain -------------------------------------------------------------------------------

def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or numbers separated by commas, "
                                         f"got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
    return values


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH, like 224x224; "
                                         f"got {text!r}") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"height and width are positive, like 224x224; "
                                         f"got {text!r}")
    return height, width


def _check_model_path(path: str) -> pathlib.Path:
    model = pathlib.Path(path)
    if model.suffix.lower() in PICKLE_SUFFIXES:
        # refused without being opened: unpickling runs code
        raise UserError(f"{path} looks like a PyTorch pickle, which lrp explain does not open "
                        "(loading a pickle can run arbitrary code): export the model to ONNX with "
                        "torch.onnx.export(model, example_input, 'model.onnx'), or explain it "
                        "from Python with lrp.LRP(module)")
    if model.is_dir():
        found = sorted(p.name for p in model.glob("*.onnx"))[:3]
        hint = f" (it holds {', '.join(found)})" if found else ""
        raise UserError(f"the model {path} is a folder{hint}: give one ONNX model, a .onnx file")
    if not model.is_file():
        raise UserError(f"model file not found: {path}")
    if model.suffix.lower() != ".onnx":
        raise UserError(f"{path}: lrp explain reads ONNX models (.onnx files)")
    if model.stat().st_size == 0:
        raise UserError(f"the model {path} is an empty file (0 bytes), not an ONNX model")
    return model


def _onnx_input_shape(path: pathlib.Path) -> tuple:
    """The shape of the ONNX model's input (``None`` for a dimension left open)."""
    from .readers import onnx_input_shape

    try:
        return onnx_input_shape(str(path))
    except ImportError as error:
        raise UserError(str(error)) from None
    except (LRPError, ValueError) as error:  # not ONNX, truncated, no input
        raise UserError(str(error)) from None


def _sample_shape(model_shape: tuple, size) -> tuple:
    """The shape of one input, without the batch axis; ``size`` fills in height and width."""
    sample = list(model_shape[1:])
    if size is not None:
        if len(sample) != 3:
            raise UserError(f"--size needs an image model, (N, C, H, W); this one takes "
                            f"{_shape_text(model_shape)}")
        sample[1:] = size
    return tuple(sample)


def _shape_text(shape) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def _normalisation(args, sample_shape) -> tuple[tuple, tuple]:
    """``(mean, std)`` of ``--mean``/``--std`` (defaults 0 and 1), checked against the model's
    channels: one value, or one per channel; no zero std."""
    mean = args.mean if args.mean is not None else (0.0,)
    std = args.std if args.std is not None else (1.0,)
    channels = sample_shape[0] if len(sample_shape) == 3 else None
    for name, values in (("--mean", mean), ("--std", std)):
        if len(values) != 1 and len(values) != channels:
            raise UserError(f"{name} has {len(values)} values, but the model's input has "
                            f"{channels or 'no'} channel{'' if channels == 1 else 's'} "
                            "(give one value, or one per channel)")
    if any(v == 0 for v in std):
        raise UserError("--std must not be 0")
    return mean, std


def _check_input_path(path: str) -> pathlib.Path:
    file = pathlib.Path(path)
    if file.is_dir():
        raise UserError(f"the input {path} is a folder: give its files, images (PNG, JPEG, ...) "
                        "or .npy arrays")
    if not file.is_file():
        raise UserError(f"input file not found: {path}")
    if file.suffix.lower() != ".npy" and file.suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(f"{path}: inputs are images (PNG, JPEG, ...) or .npy arrays")
    return file


def _read_input(path: str, sample_shape: tuple, mean, std) -> tuple[np.ndarray, np.ndarray | None]:
    """One model input ``sample_shape`` from an image file or a ``.npy`` array, and the image to
    draw on (uint8, as read) or ``None``."""
    file = _check_input_path(path)
    suffix = file.suffix.lower()
    if suffix == ".npy":
        array = _load_npy(file, path)
        if array.size == 0:
            raise UserError(f"{path} holds an empty array, of shape {array.shape}; the model takes "
                            f"{_shape_text(sample_shape)} per input")
        if array.shape == sample_shape[1:] and sample_shape[0] == 1:
            array = array[None]
        elif array.shape == (1, *sample_shape):
            array = array[0]
        if array.shape != sample_shape:
            fits = len(array.shape) == len(sample_shape) and all(
                d is None or d == a for d, a in zip(sample_shape, array.shape))
            if fits and len(sample_shape) == 3:
                raise UserError(f"{path}: the model leaves its input size open "
                                f"{_shape_text((None, *sample_shape))}: give --size "
                                f"{array.shape[1]}x{array.shape[2]} for this array")
            raise UserError(f"{path} holds an array of shape {array.shape}; the model takes "
                            f"{_shape_text(sample_shape)} per input "
                            "(.npy inputs are used as they are)")
        if not np.isfinite(array).all():
            raise UserError(f"{path} holds NaN or infinite values: the model takes finite numbers")
        return array.astype(np.float32), None
    if len(sample_shape) != 3 or None in sample_shape:
        raise UserError(f"{path}: an image needs a model input (N, C, H, W) with a fixed height "
                        f"and width; this model takes {_shape_text((None, *sample_shape))} "
                        "(give --size HxW, or .npy inputs)")
    channels, height, width = sample_shape
    image = _load_image(file, path, "L" if channels == 1 else "RGB")
    try:
        x = to_model_input(image, channels, (height, width), mean=mean, std=std)
    except ValueError as error:
        raise UserError(f"{path}: {error}") from error
    return x, image


def _load_npy(file: pathlib.Path, path: str) -> np.ndarray:
    """The array of a ``.npy`` file; never unpickles (``allow_pickle=False``)."""
    with open(file, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY":
        raise UserError(f"{path} is not a .npy file (no NumPy header): save inputs with "
                        "numpy.save")
    try:
        array = np.load(file, allow_pickle=False)
    except ValueError as error:
        if "allow_pickle" in str(error) or "bject" in str(error):
            raise UserError(f"{path} holds Python objects (dtype object), which lrp never "
                            "unpickles: save a numeric array, like numpy.save(path, "
                            "x.astype(numpy.float32))") from None
        raise UserError(f"{path}: not a readable .npy array ({_first_line(error)})") from None
    except (OSError, EOFError) as error:
        raise UserError(f"{path}: not a readable .npy array ({_first_line(error)})") from None
    if array.dtype.kind not in "iuf":
        raise UserError(f"{path}: expected a real numeric array (integers or floats), got dtype "
                        f"{array.dtype}")
    return array


def _load_image(file: pathlib.Path, path: str, mode: str) -> np.ndarray:
    """An image file through Pillow; one larger than Pillow's limit (a decompression bomb, which
    Pillow warns of or refuses) is refused before it is decoded."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return load_image(file, mode)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise UserError(f"{path}: the image is too large to read safely ({_first_line(error)}): "
                        "give a smaller image") from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise UserError(f"{path}: not an image Pillow can read ({_first_line(error)})") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _heatmap_scale(args, shape: tuple) -> int:
    """``--scale``, or up to about 224 pixels; refused when the PNG would be too large."""
    side = max(shape[:2])
    if args.scale is None:
        return max(1, 224 // side)
    if side * args.scale > MAX_HEATMAP_SIDE:
        raise UserError(f"--scale {args.scale} would draw a {shape[0] * args.scale}x"
                        f"{shape[1] * args.scale} pixel heatmap; the limit is "
                        f"{MAX_HEATMAP_SIDE} pixels a side: give --scale "
                        f"{max(1, MAX_HEATMAP_SIDE // side)} or less")
    return args.scale


def _explicit_bounds(args, needs_bounds: bool):
    """``(low, high)`` from ``--low`` and ``--high``, or ``None`` when neither is given."""
    if (args.low is None) != (args.high is None):
        raise UserError("give --low and --high together (or neither)")
    if args.low is None:
        return None
    if not needs_bounds:
        raise UserError(f"--low and --high bound the input for --composite {' or '.join(BOXED)}; "
                        f"{args.composite} takes no bounds")
    if not args.low < args.high:
        raise UserError(f"--low must be smaller than --high; got {args.low} and {args.high}")
    return float(args.low), float(args.high)


def _image_bounds(mean, std, sample_shape: tuple):
    """The bounds of an image input: the pixel range [0, 1] through ``(x − mean) / std`` (per
    channel: arrays of one input's shape)."""
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    low, high = (0.0 - mean) / std, (1.0 - mean) / std
    if low.size == 1:
        return float(low.reshape(())), float(high.reshape(()))
    return (np.broadcast_to(low.reshape(-1, 1, 1), sample_shape).astype(np.float32),
            np.broadcast_to(high.reshape(-1, 1, 1), sample_shape).astype(np.float32))


def _batch_bounds(inputs, images, image_bounds) -> tuple[np.ndarray, np.ndarray]:
    """Each input's own bounds, stacked to arrays ``(B, *sample_shape)``: an image's are
    ``image_bounds``, a ``.npy`` input's its smallest and largest value."""
    lows, highs = [], []
    for x, image in zip(inputs, images):
        low, high = image_bounds if image is not None else (x.min(), x.max())
        lows.append(np.broadcast_to(np.asarray(low, dtype=np.float32), x.shape))
        highs.append(np.broadcast_to(np.asarray(high, dtype=np.float32), x.shape))
    return np.stack(lows), np.stack(highs)


def _analyzer(graph, composite: str, bounds, model_path):
    low, high = bounds if bounds is not None else (None, None)
    try:
        return LRP(graph, preset(composite, low=low, high=high))
    except LRPError as error:
        raise UserError(f"{model_path}: {error}") from error


def _to_backend(x: np.ndarray, backend: str):
    """``x`` as an array of the chosen backend, on its GPU when it has one."""
    if backend == "numpy":
        return x
    try:
        return backend_named(backend).from_numpy(x)
    except ImportError as error:
        raise UserError(f"--backend {backend}: {error}") from None


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="input", desc="explaining", file=sys.stderr)


def _unique_stems(paths: list[str]) -> list[str]:
    stems, seen = [], {}
    for path in paths:
        stem = pathlib.Path(path).stem
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return stems


def explain(args) -> int:
    if args.zarr is not None:  # a dataset into a Zarr store (lrp_core/dataset_cli.py)
        from .dataset_cli import explain_to_zarr

        return explain_to_zarr(args)
    if args.dask is not None:
        raise UserError("--dask runs the explanation into a Zarr store: give --zarr OUT.zarr too")
    model_path = _check_model_path(args.model)
    if args.composite not in COMPOSITES:
        raise UserError(f"unknown composite {args.composite!r}; "
                        f"choose one of: {', '.join(COMPOSITES)}")
    if args.scale is not None and args.scale < 1:
        raise UserError("--scale must be a positive integer")
    if args.scale is not None and args.scale > MAX_HEATMAP_SIDE:
        raise UserError(f"--scale {args.scale} is too large: a heatmap PNG is at most "
                        f"{MAX_HEATMAP_SIDE} pixels a side: give a smaller --scale, like 8")
    if args.batch_size < 1:
        raise UserError("--batch-size must be a positive integer")
    if args.output_selection is not None and args.output_selection < 0:
        raise UserError(f"--output-selection is an output index, 0 or more; "
                        f"got {args.output_selection}")
    if not 0.0 <= args.alpha <= 1.0:
        raise UserError(f"--alpha is an opacity in [0, 1]; got {args.alpha}")
    if args.percentile is not None and not 0.0 < args.percentile <= 100.0:
        raise UserError(f"--percentile must be in (0, 100], like 99.5; got {args.percentile}")
    model_shape = _onnx_input_shape(model_path)
    if len(model_shape) < 2:
        raise UserError(f"{model_path}: the model input has shape {_shape_text(model_shape)}; "
                        "expected a batch axis first")
    sample_shape = _sample_shape(model_shape, args.size)
    graph = _read_model(model_path, None if None in sample_shape else sample_shape)
    mean, std = _normalisation(args, sample_shape)
    try:
        _colormap(args.colormap)
    except ValueError as error:
        raise UserError(f"--colormap: {error}") from None

    needs_bounds = args.composite in BOXED
    bounds = _explicit_bounds(args, needs_bounds)
    for path in args.inputs:  # fail before any work on a missing or unsupported file
        _check_input_path(path)
    # the ZBoxRule's bounds: --low/--high, else each input's own (an image's follow from --mean
    # and --std, a .npy input's are its extrema, so a batch with .npy inputs gets its own analyzer)
    per_input = needs_bounds and bounds is None
    image_bounds = _image_bounds(mean, std, sample_shape) if per_input else None
    analyzer = _analyzer(graph, args.composite, image_bounds if per_input else bounds, model_path)
    from .crp_cli import concept_analyzer, write_concept_grids  # --crp lives in its own module

    concepts = concept_analyzer(args, analyzer)
    out = _out_folder(args.out)
    stems = _unique_stems(args.inputs)
    bar = _progress(len(args.inputs),
                    enabled=len(args.inputs) >= args.progress_from and not args.quiet)
    try:
        # read, explain and write a batch at a time
        for start in range(0, len(args.inputs), args.batch_size):
            paths = args.inputs[start:start + args.batch_size]
            inputs, images = zip(*(_read_input(path, sample_shape, mean, std) for path in paths))
            explainer = analyzer
            if per_input and any(image is None for image in images):
                own = _batch_bounds(inputs, images, image_bounds)
                explainer = _analyzer(graph, args.composite, own, model_path)
            if concepts is not None:  # --crp: one concept grid per input instead of a heatmap
                write_concept_grids(args, concepts, explainer,
                                    _to_backend(np.stack(inputs), args.backend), paths,
                                    stems[start:start + len(paths)], out,
                                    print if bar is None and not args.quiet else None)
                if bar is not None:
                    bar.update(len(paths))
                continue
            try:
                expl = explainer(_to_backend(np.stack(inputs), args.backend),
                                 args.output_selection)
            except ValueError as error:  # cannot be done (exit status 1), named after the option
                if args.output_selection is None or "out of range" not in str(error):
                    raise
                raise ValueError(f"--output-selection {args.output_selection} is out of range: "
                                 f"{_first_line(error).split(': ', 1)[-1]}") from None
            relevance = to_numpy(expl.val)
            overlay = None
            if args.overlay:
                overlay = [image if image is not None else _input_image(x)
                           for x, image in zip(inputs, images)]
            rendered = heatmap(_as_image_batch(relevance), colormap=args.colormap,
                               percentile=args.percentile, overlay=overlay, alpha=args.alpha)
            for k, path in enumerate(paths):
                selected = expl.output_selection[k]
                name = f"{stems[start + k]}_lrp_{args.composite}_out{selected}"
                scale = _heatmap_scale(args, rendered[k].shape)
                try:
                    png = save_image(out / f"{name}.png", rendered[k], scale=scale)
                    if args.save_relevance:
                        np.save(out / f"{name}.npy", relevance[k])
                except OSError as error:
                    raise UserError(f"--out {args.out}: cannot write {name} there "
                                    f"({error.strerror or error})") from None
                if bar is None and not args.quiet:
                    print(f"{path}: explained output {selected} -> {png}")
            if bar is not None:
                bar.update(len(paths))
    finally:
        if bar is not None:
            bar.close()
    if not args.quiet:
        count = len(args.inputs)
        print(f"wrote {count} heatmap{'s' * (count != 1)} to {out}"
              f"{' (and the relevance as .npy)' if args.save_relevance else ''}")
    return 0


def _read_model(path: pathlib.Path, input_shape):
    from .readers import from_onnx

    try:
        return from_onnx(str(path), input_shape=input_shape)
    except ImportError as error:
        raise UserError(str(error)) from None
    except LRPError as error:
        raise UserError(str(error)) from None


def _as_image_batch(relevance: np.ndarray) -> np.ndarray:
    """Relevance as (N, C, H, W) for drawing: (N, F) → one row of F pixels, (N, C, L) →
    (N, C, 1, L)."""
    if relevance.ndim == 4:
        return relevance
    if relevance.ndim == 3:
        return relevance[:, :, None, :]
    return relevance.reshape(len(relevance), 1, 1, -1)


def _input_image(x: np.ndarray) -> np.ndarray:
    """A ``.npy`` input drawn as a grey or RGB image (scaled by its extrema)."""
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise UserError("--overlay needs image-shaped inputs, (C, H, W) with 1 or 3 channels")
    lo, hi = float(x.min()), float(x.max())
    scaled = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    image = np.rint(np.moveaxis(scaled, 0, -1) * 255).astype(np.uint8)
    return image[..., 0] if image.shape[-1] == 1 else image


# -- the parser --------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit status 2 (argparse's own status for usage errors)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lrp", description="Layer-wise Relevance Propagation: heatmaps of what a "
                                            "neural network's decision rests on.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_Parser)

    d = commands.add_parser("demo",
                            help="explain handwritten digits with a custom rule written in "
                                 "two lines",
                            description="Explain sample digits with a shipped LeNet-5: ZeroRule, "
                                        "EpsilonPlus, RelevancePropagation.jl's custom-rule "
                                        "example with the two-line MyGammaRule, and with "
                                        "GammaRule; write one labelled PNG grid (demo.png).")
    d.add_argument("--out", default=".", metavar="DIR",
                   help="folder for demo.png (default: the current one)")
    d.add_argument("--digits", type=_digits, default=DEFAULT_DIGITS, metavar="D,D,...",
                   help=f"which digits to show (default: {','.join(map(str, DEFAULT_DIGITS))})")
    d.set_defaults(run=demo)

    e = commands.add_parser("explain",
                            help="write LRP heatmaps of an ONNX model for image or .npy inputs",
                            description="Explain an ONNX model's output for each INPUT (PNG, JPEG, "
                                        "... or .npy) and write one heatmap PNG per input (red: "
                                        "positive relevance, blue: negative). Images are resized "
                                        "to the model's input, converted to grey or RGB after its "
                                        "channels, scaled to [0, 1], then (x - mean) / std; "
                                        ".npy arrays are used as they are.")
    e.add_argument("model", metavar="MODEL",
                   help="an ONNX model (.onnx); PyTorch pickles are refused")
    e.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image files or .npy arrays, one input each")
    e.add_argument("--composite", default="epsilon-plus-flat", metavar="NAME",
                   help=f"rules: {', '.join(COMPOSITES)} (default: epsilon-plus-flat); "
                        f"{' and '.join(BOXED)} bound{'s' * (len(BOXED) == 1)} the input: "
                        "see --low")
    e.add_argument("--output-selection", type=int, default=None, metavar="K",
                   help="explain output K (default: each input's largest output)")
    e.add_argument("--out", default="lrp-heatmaps", metavar="DIR",
                   help="output folder (default: lrp-heatmaps)")
    e.add_argument("--backend", choices=("numpy", "torch", "cupy"), default="numpy",
                   help="array library to compute with (default: numpy)")
    e.add_argument("--mean", type=_floats, default=None, metavar="M",
                   help="subtracted after scaling pixels to [0, 1]: one value or one per channel, "
                        "0.485,0.456,0.406")
    e.add_argument("--std", type=_floats, default=None, metavar="S",
                   help="divides after --mean (same form)")
    e.add_argument("--low", type=_finite, default=None, metavar="L",
                   help=f"with --high: the bounds of every input for {' and '.join(BOXED)}'s "
                        "ZBoxRule (overriding the defaults: for an image, the pixel range [0, 1] "
                        "through (x - mean) / std; for a .npy input, its own smallest and largest "
                        "value)")
    e.add_argument("--high", type=_finite, default=None, metavar="H", help="with --low: see --low")
    e.add_argument("--size", type=_size, default=None, metavar="HxW",
                   help="input height and width, for models whose graph leaves them open")
    e.add_argument("--overlay", action="store_true", help="draw each heatmap over its input image")
    e.add_argument("--alpha", type=_finite, default=0.6,
                   help="heatmap opacity for --overlay (default: 0.6)")
    e.add_argument("--colormap", default="seismic", metavar="NAME",
                   help="a colormap name of the cmap library (default: seismic)")
    e.add_argument("--percentile", type=_finite, default=None, metavar="P",
                   help="clip the relevance at its P-th percentile of |R| first (e.g. 99.5)")
    e.add_argument("--scale", type=int, default=None, metavar="F",
                   help="enlarge the heatmap PNGs F times (default: up to about 224 pixels)")
    e.add_argument("--save-relevance", action="store_true",
                   help="also write the raw relevance as .npy")
    e.add_argument("--batch-size", type=int, default=16, metavar="B",
                   help="inputs per pass (default: 16)")
    e.add_argument("--progress-from", type=int, default=8, help=argparse.SUPPRESS)
    e.add_argument("--quiet", action="store_true", help="print nothing but errors")
    e.add_argument("--zarr", default=None, metavar="OUT.zarr",
                   help="write relevance, outputs and selections into this Zarr store instead "
                        "of PNGs (INPUTs may be folders, or one .npy/Zarr array of N inputs); "
                        "a rerun resumes; see docs/scale.md")
    e.add_argument("--dask", default=None, metavar="local[:WORKERS]|tcp://HOST:PORT",
                   help="with --zarr: compute on a Dask LocalCluster or a cluster's scheduler")
    from .crp_cli import add_arguments as add_crp_arguments

    add_crp_arguments(e)
    e.set_defaults(run=explain)
    _add_conformance(commands)
    return parser


def _add_conformance(commands) -> None:
    """``lrp conformance`` comes from the conformance suite (``lrp_conformance``), whose command
    imports hypothesis and torch only when it runs."""
    try:
        from lrp_conformance.cli import add_parser
    except ImportError:  # pragma: no cover - the suite ships with the package
        return
    add_parser(commands)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("lrp: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        if args.debug:
            raise
        print("lrp: error: out of memory (a smaller --batch-size, --size or --scale may help)",
              file=sys.stderr)
        return 1
    except Exception as error:
        if args.debug:
            raise
        text = str(error).strip()
        message = text.splitlines()[0] if text else type(error).__name__
        if not isinstance(error, (UserError, LRPError, ValueError, OSError, ImportError)):
            message = (f"{type(error).__name__}: {message} "
                       "(an lrp bug? rerun as lrp --debug ... and report it)")
        print(f"lrp: error: {message}", file=sys.stderr)
        return 2 if isinstance(error, UserError) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
