"""``lrp explain MODEL INPUTS... --zarr OUT.zarr [--dask local[:WORKERS] | --dask tcp://HOST:PORT]``:
a dataset that need not fit in memory, explained into a Zarr store, resumably.

INPUTS are image files, ``.npy`` files of one input each, folders of those (their files in name
order), or one array of many inputs: a ``.npy`` file shaped ``(N, *input shape)`` (read through
a memory map) or a Zarr array. Images are read and preprocessed as ``lrp explain`` reads them
(``--mean``, ``--std``, ``--size``). Inputs are read ``--batch-size`` at a time, by the process
or worker that explains them; the store has the layout of :mod:`lrp_core.zarr_store`, whichever
way it is run:

* without ``--dask``: in this process, batch after batch (needs zarr, not Dask);
* ``--dask local[:WORKERS]``: on a ``distributed.LocalCluster`` of WORKERS processes (default:
  one per core) of one thread each;
* ``--dask tcp://HOST:PORT``: on a running cluster's scheduler; the workers must see the model,
  the inputs and the store at the same paths (a shared file system or an object store).

A store that exists is resumed: chunks already complete are skipped. One that holds another
model's (rules', inputs', batch size's) results is refused, with what differs.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys

import numpy as np

from . import cli
from .cli import IMAGE_SUFFIXES, UserError

__all__ = ["explain_to_zarr"]


# -- the inputs ---------------------------------------------------------------------------------

class _Files:
    """Inputs that are files (images, ``.npy`` arrays of one input each), read by ``lrp explain``'s
    own reader."""

    def __init__(self, paths: list[str], sample_shape, mean, std):
        # absolute: a cluster's workers need not share this process's working folder
        self.paths = [os.path.abspath(p) for p in paths]
        self.sample_shape, self.mean, self.std = sample_shape, mean, std
        self.names = list(paths)
        self.count = len(paths)

    def read(self, start: int, stop: int) -> np.ndarray:
        inputs = [cli._read_input(path, self.sample_shape, self.mean, self.std)[0]
                  for path in self.paths[start:stop]]
        return np.stack(inputs)

    def part(self, start: int, stop: int) -> _Files:
        """A reader of inputs ``start:stop`` only (what one task carries)."""
        return _Files(self.paths[start:stop], self.sample_shape, self.mean, self.std)


class _Rows:
    """One array of many inputs, a ``.npy`` file (memory-mapped) or a Zarr array, read a batch
    of rows at a time."""

    names = None

    def __init__(self, path: str, kind: str, shape: tuple):
        self.path, self.kind, self.count = os.path.abspath(path), kind, int(shape[0])

    def _open(self):
        if self.kind == "npy":
            return np.load(self.path, mmap_mode="r", allow_pickle=False)
        import zarr

        return zarr.open_array(self.path, mode="r")

    def read(self, start: int, stop: int) -> np.ndarray:
        rows = np.asarray(self._open()[start:stop], dtype=np.float32)
        if not np.isfinite(rows).all():
            bad = start + int(np.flatnonzero(~np.isfinite(rows.reshape(len(rows), -1)).all(1))[0])
            raise UserError(f"{self.path}: input {bad} holds NaN or infinite values: the model "
                            "takes finite numbers")
        return rows

    def part(self, start: int, stop: int) -> _Part:
        return _Part(self, start, stop)


class _Part:
    """Rows ``start:stop`` of a ``_Rows`` source."""

    def __init__(self, rows: _Rows, start: int, stop: int):
        self.rows, self.start, self.stop = rows, start, stop
        self.count = stop - start

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.rows.read(self.start + start, self.start + stop)


def _zarr_array_shape(folder: pathlib.Path):
    """The shape of the Zarr array stored in ``folder``, or ``None`` if it is not one."""
    meta = folder / "zarr.json"
    if meta.is_file():
        try:
            node = json.loads(meta.read_text())
        except (OSError, ValueError):
            return None
        if node.get("node_type") == "group":
            raise UserError(f"the input {folder} is a Zarr group: give the array inside it, like "
                            f"{folder}/images")
        return tuple(node.get("shape", ())) if node.get("node_type") == "array" else None
    meta = folder / ".zarray"  # Zarr format 2
    if meta.is_file():
        try:
            return tuple(json.loads(meta.read_text()).get("shape", ()))
        except (OSError, ValueError):
            return None
    return None


def _npy_shape(path: str) -> tuple:
    try:
        return tuple(np.load(path, mmap_mode="r", allow_pickle=False).shape)
    except (ValueError, OSError, EOFError) as error:
        raise UserError(f"{path}: not a readable .npy array ({cli._first_line(error)})") from None


def _gather(inputs: list[str], sample_shape: tuple, mean, std):
    """The inputs as a reader: ``_Rows`` for one array of many inputs, else ``_Files``."""
    files: list[str] = []
    for text in inputs:
        path = pathlib.Path(text)
        if path.is_dir():
            shape = _zarr_array_shape(path)
            if shape is not None:
                if len(inputs) != 1:
                    raise UserError(f"{text} is a Zarr array of many inputs: give it alone")
                return _checked_rows(_Rows(text, "zarr", shape), shape, sample_shape)
            found = sorted(str(p) for p in path.iterdir() if p.is_file() and (
                p.suffix.lower() in IMAGE_SUFFIXES or p.suffix.lower() == ".npy"))
            if not found:
                raise UserError(f"the folder {text} holds no images (PNG, JPEG, ...) or .npy "
                                "files")
            files.extend(found)
        else:
            cli._check_input_path(text)
            files.append(text)
    if len(files) == 1 and files[0].lower().endswith(".npy") and None not in sample_shape:
        shape = _npy_shape(files[0])
        if len(shape) == len(sample_shape) + 1 and tuple(shape[1:]) == tuple(sample_shape):
            return _checked_rows(_Rows(files[0], "npy", shape), shape, sample_shape)
    return _Files(files, sample_shape, mean, std)


def _checked_rows(rows: _Rows, shape: tuple, sample_shape: tuple) -> _Rows:
    if len(shape) != len(sample_shape) + 1 or any(
            d is not None and d != s for d, s in zip(sample_shape, shape[1:])):
        raise UserError(f"{rows.path} holds an array of shape {shape}; the model takes "
                        f"{cli._shape_text((None, *sample_shape))} (N inputs first)")
    if shape[0] == 0:
        raise UserError(f"{rows.path} holds no inputs (shape {shape})")
    return rows


def _batches(count: int, size: int) -> tuple[int, ...]:
    return tuple(min(size, count - start) for start in range(0, count, size))


# -- the command --------------------------------------------------------------------------------

def _checked_options(args):
    """The options ``lrp explain`` checks, checked the same way: ``(model_path, sample_shape,
    graph, mean, std)``."""
    model_path = cli._check_model_path(args.model)
    if args.composite not in cli.COMPOSITES:
        raise UserError(f"unknown composite {args.composite!r}; "
                        f"choose one of: {', '.join(cli.COMPOSITES)}")
    if args.batch_size < 1:
        raise UserError("--batch-size must be a positive integer")
    if args.output_selection is not None and args.output_selection < 0:
        raise UserError(f"--output-selection is an output index, 0 or more; "
                        f"got {args.output_selection}")
    model_shape = cli._onnx_input_shape(model_path)
    if len(model_shape) < 2:
        raise UserError(f"{model_path}: the model input has shape "
                        f"{cli._shape_text(model_shape)}; expected a batch axis first")
    sample_shape = cli._sample_shape(model_shape, args.size)
    mean, std = cli._normalisation(args, sample_shape)
    graph = cli._read_model(model_path, None if None in sample_shape else sample_shape)
    return model_path, sample_shape, graph, mean, std


def _dask_spec(text: str):
    """``("local", workers or None)`` or ``("address", text)``."""
    if text == "local" or text.startswith("local:"):
        count = text.partition(":")[2]
        if not count:
            return "local", None
        if not count.isdigit() or int(count) < 1:
            raise UserError(f"--dask local:WORKERS takes a positive number of workers; got "
                            f"{text!r}")
        return "local", int(count)
    if "://" in text:
        return "address", text
    raise UserError(f"--dask takes local, local:WORKERS or a scheduler address like "
                    f"tcp://host:8786; got {text!r}")


def explain_to_zarr(args) -> int:
    if getattr(args, "crp", None) is not None:
        raise UserError("--crp draws concept grids; --zarr stores the relevance of a dataset: "
                        "give one of them")
    spec = _dask_spec(args.dask) if args.dask is not None else None
    model_path, sample_shape, graph, mean, std = _checked_options(args)
    source = _gather(args.inputs, sample_shape, mean, std)
    if None in sample_shape:
        raise UserError(f"{model_path}: the model leaves its input size open "
                        f"{cli._shape_text((None, *sample_shape))}: give --size HxW")
    bounds = cli._explicit_bounds(args, args.composite in cli.BOXED)
    if args.composite in cli.BOXED and bounds is None:
        if isinstance(source, _Rows) or any(p.lower().endswith(".npy") for p in source.names):
            raise UserError(f"--composite {args.composite} bounds the input: with --zarr, give "
                            "--low and --high for .npy or Zarr inputs")
        bounds = cli._image_bounds(mean, std, sample_shape)
    analyzer = cli._analyzer(graph, args.composite, bounds, model_path)
    if spec is None:
        return _in_process(args, analyzer, source, sample_shape)
    return _on_dask(args, spec, analyzer, source, sample_shape)


def _open_store(args, analyzer, source, sample_shape, output_shape):
    from .dataset import _selection_fingerprint, model_fingerprint
    from .zarr_store import ResultStore, StoreMismatchError, store_fingerprint

    fingerprint = store_fingerprint(model_fingerprint(analyzer), (source.count, *sample_shape),
                                    np.float32, _selection_fingerprint(args.output_selection))
    try:
        return ResultStore.open(args.zarr, fingerprint=fingerprint,
                                batch_chunks=_batches(source.count, args.batch_size),
                                input_shape=sample_shape, dtype=np.float32,
                                output_shape=output_shape, inputs=source.names,
                                description=repr(analyzer))
    except StoreMismatchError as error:
        raise UserError(f"--zarr {error}") from None
    except ImportError as error:
        raise UserError(f"--zarr: {error}") from None


def _say(args, text: str) -> None:
    if not args.quiet:
        print(text, flush=True)


def _resuming(args, store) -> list[int]:
    pending = store.pending()
    done = len(store.batch_chunks) - len(pending)
    if done:
        _say(args, f"{args.zarr}: {done} of {len(store.batch_chunks)} chunks already complete, "
                   "resuming")
    return pending


def _in_process(args, analyzer, source, sample_shape) -> int:
    from tqdm import tqdm

    from .arrays import to_numpy

    first = analyzer(source.read(0, 1), args.output_selection)
    output_shape = tuple(first.output.shape[1:])
    store = _open_store(args, analyzer, source, sample_shape, output_shape)
    pending = _resuming(args, store)
    total = sum(store.batch_chunks[i] for i in pending)
    with tqdm(total=total, unit="input", desc="explaining", file=sys.stderr,
              disable=args.quiet) as bar:
        for index in pending:
            rows = store.rows(index)
            x = cli._to_backend(source.read(rows.start, rows.stop), args.backend)
            expl = analyzer(x, args.output_selection)
            store.write(index, to_numpy(expl.val), to_numpy(expl.output),
                        np.asarray(expl.output_selection, dtype=np.int64))
            bar.update(rows.stop - rows.start)
    _say(args, f"wrote the relevance of {source.count} inputs to {args.zarr} "
               f"({len(pending)} chunk{'s' * (len(pending) != 1)} computed)")
    return 0


def _read_part(part) -> np.ndarray:
    return part.read(0, part.count)


def _client(spec):
    try:
        from distributed import Client, LocalCluster
    except ImportError as error:
        raise UserError(f"--dask needs Dask: pip install 'lrp-core[dataset]' ({error})") from None
    kind, value = spec
    if kind == "local":
        workers = value or max(1, os.cpu_count() or 1)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True)
        return Client(cluster), cluster
    try:
        return Client(value, timeout="20s"), None
    except (OSError, TimeoutError) as error:
        raise UserError(f"--dask {value}: cannot reach the Dask scheduler "
                        f"({cli._first_line(error)})") from None


def _on_dask(args, spec, analyzer, source, sample_shape) -> int:
    import dask
    import dask.array as da
    from distributed import as_completed
    from tqdm import tqdm

    from .dataset import explain_dataset
    from .zarr_store import StoreMismatchError, plan_zarr

    chunks = _batches(source.count, args.batch_size)
    starts = np.cumsum((0, *chunks))[:-1]
    read = dask.delayed(_read_part, pure=True)
    x = da.concatenate([da.from_delayed(read(source.part(int(s), int(s) + c)),
                                        shape=(c, *sample_shape), dtype=np.float32)
                        for s, c in zip(starts, chunks)], axis=0)
    client, cluster = _client(spec)
    try:
        dashboard = getattr(client, "dashboard_link", None)
        _say(args, f"Dask: {len(client.scheduler_info().get('workers', {}))} workers; "
                   f"dashboard: {dashboard or 'none (install bokeh for one)'}")
        backend = None if args.backend == "numpy" else args.backend
        expl = explain_dataset(analyzer, x, args.output_selection, backend=backend)
        try:
            store, tasks = plan_zarr(expl, os.path.abspath(args.zarr), inputs=source.names)
        except StoreMismatchError as error:
            raise UserError(f"--zarr {error}") from None
        pending = _resuming(args, store)
        sizes = {i: store.batch_chunks[i] for i in pending}
        futures = client.compute(tasks)
        with tqdm(total=sum(sizes.values()), unit="input", desc="explaining", file=sys.stderr,
                  disable=args.quiet) as bar:
            for future in as_completed(futures):
                index = future.result()
                bar.update(sizes[index])
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    _say(args, f"wrote the relevance of {source.count} inputs to {args.zarr} "
               f"({len(pending)} chunk{'s' * (len(pending) != 1)} computed)")
    return 0
