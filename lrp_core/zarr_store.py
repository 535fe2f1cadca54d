"""Write a dataset's explanation into a Zarr group, resumably.

Layout of the group (``lrp.to_zarr(expl, "out.zarr")``, and ``lrp explain ... --zarr``)::

    relevance   (N, *input shape)   the relevance, the input's dtype
    output      (N, *output shape)  the model outputs (logits)
    selection   (N,) int64          the explained output of each sample (-1: not written yet)
    complete    (n_chunks,) uint8   1 where a chunk of the computation is complete
    attributes  "lrp_core": {"format", "fingerprint", "batch_chunks", "inputs", "analyzer"}

The arrays are chunked along the batch like the computation (Zarr's chunk is the computation's
chunk, or a divisor of every chunk when their sizes are uneven), so two chunks of the
computation never write the same Zarr chunk and need no lock.

**Resumable.** Each chunk of the computation writes its rows of ``relevance``, ``output`` and
``selection``, then sets its own element of ``complete`` (its own Zarr chunk: one object, which
Zarr's local store writes to a temporary file and renames into place, and an object store puts
whole). A run killed at any moment leaves a chunk either counted with all its rows written, or
not counted (its rows may be partly written; a rerun recomputes and overwrites them). A rerun
on the same store computes only the chunks not marked complete.

**Guarded.** The attribute ``fingerprint`` records what the results are of: the model, the
rules, ``normalize_output_relevance`` (:func:`lrp_core.dataset.model_fingerprint`), the input's
shape and dtype, and the output selection. A store whose fingerprint differs is refused with the
reason; so is one written in other chunks, or for other inputs.

Importing this module imports neither Zarr nor Dask.
"""

from __future__ import annotations

import math
import pathlib

import numpy as np

__all__ = ["to_zarr", "ResultStore", "StoreMismatchError", "FORMAT"]

#: the layout version written to the attributes
FORMAT = 1
ATTRIBUTE = "lrp_core"
ARRAYS = ("relevance", "output", "selection", "complete")


class StoreMismatchError(ValueError):
    """The Zarr store holds results of something else (another model, rules, inputs, ...)."""


def _require_zarr():
    try:
        import zarr
    except ImportError as error:  # pragma: no cover - exercised without zarr only
        raise ImportError("writing explanations to Zarr needs zarr: pip install "
                          f"'lrp-core[dataset]' (dask[distributed] and zarr) ({error})") from None
    return zarr


def _zarr_chunk(batch_chunks: tuple[int, ...]) -> int:
    """The Zarr chunk along the batch: the computation's chunk when all chunks but the last
    are equal (and the last not larger), else the greatest common divisor of the chunks but the
    last, so every boundary between two chunks is a boundary between Zarr chunks."""
    head = batch_chunks[:-1] or batch_chunks
    return max(1, math.gcd(*head))


def _describe_store(store) -> str:
    return str(store) if isinstance(store, (str, pathlib.Path)) else repr(store)


class ResultStore:
    """A Zarr group laid out as in this module's docstring, open for writing chunk by chunk.

    ``ResultStore.open(store, fingerprint=..., batch_chunks=..., input_shape=..., ...)`` creates
    the group, or opens an existing one after checking that it holds the same thing.
    ``write(index, relevance, output, selection)`` writes chunk ``index`` and marks it complete
    (atomically, last). The object pickles (it holds the store and the chunk boundaries only) and
    is what each Dask task writes through.
    """

    def __init__(self, store, batch_chunks: tuple[int, ...]):
        self.store = store
        self.batch_chunks = tuple(int(c) for c in batch_chunks)
        self.starts = tuple(int(s) for s in np.cumsum((0, *self.batch_chunks))[:-1])

    # -- creating or opening ----------------------------------------------------------------
    @classmethod
    def open(cls, store, *, fingerprint: dict, batch_chunks, input_shape, dtype, output_shape,
             inputs=None, description: str = "") -> ResultStore:
        zarr = _require_zarr()
        batch_chunks = tuple(int(c) for c in batch_chunks)
        n = sum(batch_chunks)
        if inputs is not None:
            inputs = [str(name) for name in inputs]
            if len(inputs) != n:
                raise ValueError(f"inputs names {len(inputs)} inputs, but the explanation has "
                                 f"{n} samples: give one name per sample, or None")
        record = {"format": FORMAT, "fingerprint": fingerprint, "batch_chunks": list(batch_chunks),
                  "inputs": inputs if inputs is not None else list(range(n)),
                  "analyzer": description}
        try:
            group = zarr.open_group(store, mode="r")
        except (FileNotFoundError, zarr.errors.GroupNotFoundError):
            group = None
        mode = "a"
        if group is not None:
            names = set(group.keys())
            if ATTRIBUTE in group.attrs or not names <= set(ARRAYS):
                cls._check(group, record, store)
                return cls(store, batch_chunks)
            # only our arrays and no attributes: a creation that was cut short, before any chunk
            # could be written (the attributes come last); start it again
            mode = "w" if names else "a"
        group = zarr.open_group(store, mode=mode)
        g = _zarr_chunk(batch_chunks)
        dtype = np.dtype(dtype)
        group.create_array("relevance", shape=(n, *input_shape), chunks=(g, *input_shape),
                           dtype=dtype, fill_value=0)
        group.create_array("output", shape=(n, *output_shape), chunks=(g, *output_shape),
                           dtype=dtype, fill_value=0)
        group.create_array("selection", shape=(n,), chunks=(g,), dtype=np.int64, fill_value=-1)
        group.create_array("complete", shape=(len(batch_chunks),), chunks=(1,), dtype=np.uint8,
                           fill_value=0, compressors=None)
        group.attrs[ATTRIBUTE] = record  # last: a store without it was never fully created
        return cls(store, batch_chunks)

    @staticmethod
    def _check(group, record: dict, store) -> None:
        where = _describe_store(store)
        held = dict(group.attrs).get(ATTRIBUTE)
        if not isinstance(held, dict) or held.get("format") != FORMAT:
            raise StoreMismatchError(f"{where} is a Zarr group that lrp-core did not write (no "
                                     f"'{ATTRIBUTE}' attributes of format {FORMAT}): give a new "
                                     "store, or delete this one")
        reasons = []
        old, new = held.get("fingerprint", {}), record["fingerprint"]
        words = {"model": "a different model (its layers or weights differ)",
                 "rules": "different rules (or rule parameters)",
                 "normalize_output_relevance": "a different normalize_output_relevance",
                 "input_shape": "inputs of another shape",
                 "dtype": "inputs of another dtype",
                 "output_selection": "another output selection"}
        for key, text in words.items():
            if old.get(key) != new.get(key):
                reasons.append(f"{text}: stored {_short(old.get(key))}, now {_short(new.get(key))}")
        if not reasons and held.get("batch_chunks") != record["batch_chunks"]:
            stored = held.get("batch_chunks") or []
            size = stored[0] if stored else "?"
            reasons.append(f"chunks of another size along the batch: stored {_short(stored)}, "
                           f"now {_short(record['batch_chunks'])} (resume with batch size {size})")
        if not reasons and held.get("inputs") != record["inputs"]:
            reasons.append("other inputs (their names or order differ)")
        if reasons:
            raise StoreMismatchError(f"{where} holds results of {'; '.join(reasons)}: refusing to "
                                     "mix them; give a new store, or delete this one to start "
                                     "over")

    # -- chunks -------------------------------------------------------------------------------
    def _array(self, name: str, mode: str = "r+"):
        zarr = _require_zarr()
        return zarr.open_array(self.store, path=name, mode=mode)

    def complete(self) -> np.ndarray:
        """A boolean per chunk: whether it is written and counted."""
        return self._array("complete", "r")[:].astype(bool)

    def pending(self) -> list[int]:
        """The chunks still to compute."""
        return [int(i) for i in np.flatnonzero(~self.complete())]

    def rows(self, index: int) -> slice:
        start = self.starts[index]
        return slice(start, start + self.batch_chunks[index])

    def write(self, index: int, relevance, output, selection) -> int:
        """Write chunk ``index`` (host arrays, or any array ``numpy.asarray`` takes), then mark
        it complete; returns ``index``."""
        rows = self.rows(index)
        count = rows.stop - rows.start
        values = {"relevance": relevance, "output": output, "selection": selection}
        for name, value in values.items():
            value = _host(value)
            if value.shape[:1] != (count,):
                raise ValueError(f"chunk {index} holds {count} samples; {name} has shape "
                                 f"{value.shape}")
            self._array(name)[rows] = value
        self._array("complete")[index:index + 1] = np.ones(1, dtype=np.uint8)
        return index


def _host(value) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    from .arrays import to_numpy

    try:
        return to_numpy(value)
    except TypeError:
        return np.asarray(value)


def _short(value) -> str:
    text = str(value)
    if isinstance(value, str) and len(value) == 64:  # a digest
        return value[:12] + "..."
    return text if len(text) <= 60 else text[:57] + "..."


def store_fingerprint(model: dict, input_shape, dtype, output_selection: str) -> dict:
    """The fingerprint a store records: the analyzer's (:func:`lrp_core.dataset.model_fingerprint`)
    with the whole input's shape and dtype and the output selection
    (:func:`lrp_core.dataset._selection_fingerprint`)."""
    return dict(model, input_shape=[int(d) for d in input_shape], dtype=str(np.dtype(dtype)),
                output_selection=output_selection)


def _write_chunk(result_store: ResultStore, index: int, relevance, output, selection) -> int:
    return result_store.write(index, relevance, output, selection)


def plan_zarr(explanation, store, *, inputs=None):
    """``(result_store, tasks)``: the store opened (or created, or refused), and one Dask
    ``Delayed`` per chunk still to write (computing them writes those chunks). What
    :func:`to_zarr` computes; the command line computes them with a progress bar."""
    import dask

    from .dataset import _require_dask

    _, da = _require_dask()
    fingerprint = (explanation.extras or {}).get("fingerprint")
    if fingerprint is None or not isinstance(explanation.val, da.Array):
        raise TypeError("to_zarr writes the explanation of lrp.explain_dataset(analyzer, x) "
                        "(lazy Dask arrays with the model's fingerprint); got "
                        f"{explanation!r}")
    val, output, selection = explanation.val, explanation.output, explanation.output_selection
    full = store_fingerprint(fingerprint, val.shape, val.dtype,
                             explanation.extras.get("output_selection_spec", "unknown"))
    batch_chunks = tuple(int(c) for c in val.chunks[0])
    result = ResultStore.open(store, fingerprint=full, batch_chunks=batch_chunks,
                              input_shape=tuple(val.shape[1:]), dtype=val.dtype,
                              output_shape=tuple(output.shape[1:]), inputs=inputs,
                              description=explanation.extras.get("analyzer", ""))
    # cut into blocks unoptimized: the three arrays keep sharing each chunk's explaining task
    # (optimized one by one, each may get its own fused copy of it, and every chunk would be
    # explained three times)
    v, o, s = (a.to_delayed(optimize_graph=False).ravel() for a in (val, output, selection))
    write = dask.delayed(_write_chunk, pure=False)
    tasks = [write(result, i, v[i], o[i], s[i]) for i in result.pending()]
    return result, tasks


def to_zarr(explanation, store, *, inputs=None):
    """Write ``explanation`` (from :func:`lrp_core.explain_dataset`) into the Zarr group
    ``store`` (a path or a Zarr store), computing only the chunks not yet complete there; returns
    the group, open for reading.

    ``inputs``: one name per sample (file names, ids), recorded in the attributes; default the
    indices ``0..N-1``. Runs on the active Dask scheduler (a ``distributed.Client`` if one is
    set). A store holding another model's (rules', inputs', ...) results is refused with a
    :class:`StoreMismatchError` that says what differs.
    """
    import dask

    result, tasks = plan_zarr(explanation, store, inputs=inputs)
    if tasks:
        dask.compute(*tasks)
    zarr = _require_zarr()
    return zarr.open_group(result.store, mode="r")
