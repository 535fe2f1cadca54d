"""Explain a whole dataset: a Dask array chunked along the batch, one chunk per task.

    import dask.array as da
    x = da.from_zarr("images.zarr")                  # (N, C, H, W), chunked along N only
    expl = lrp.explain_dataset(analyzer, x)          # lazy: nothing is computed yet
    lrp.to_zarr(expl, "relevance.zarr")              # computes, chunk by chunk, resumably

Each chunk is explained by the analyzer itself, on whichever scheduler is active (a
``distributed.Client`` on a ``LocalCluster`` or a cluster's scheduler, Dask's threads, or the
synchronous scheduler), with the array namespace of the chunk (NumPy, CuPy) or of ``backend``
(``"torch"``: NumPy chunks go through torch on the worker and come back as NumPy).

How the analyzer reaches the workers: it is **one key of the graph** (``lrp-analyzer-<model
fingerprint>``) that every chunk's task depends on. The distributed scheduler computes that key
once, on one worker, and a worker running a chunk fetches the value once and keeps it while its
dependents run, so the analyzer (its weights) is sent to each worker once, not once per task,
and its modified layers are prepared once per worker (the analyzer's own cache). This works on
every scheduler and needs no client when the graph is built; ``client.scatter(analyzer,
broadcast=True)`` would need a client at that moment and ties the graph to it.

Importing this module imports neither Dask nor Zarr; calling :func:`explain_dataset` does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import operator
import warnings

import numpy as np

from .arrays import to_numpy
from .explanation import Explanation
from .layers import Layer

__all__ = ["explain_dataset", "model_fingerprint", "NonBatchChunkingWarning"]


class NonBatchChunkingWarning(UserWarning):
    """The Dask array was chunked along an axis other than the batch, and was rechunked."""


def _require_dask():
    try:
        import dask
        import dask.array as da
    except ImportError as error:  # pragma: no cover - exercised without dask only
        raise ImportError("explaining a dataset needs Dask: pip install 'lrp-core[dataset]' "
                          f"(dask[distributed] and zarr) ({error})") from None
    return dask, da


# -- the fingerprint of what is explained ---------------------------------------------------------

def _hash_array(digest, array) -> None:
    host = np.ascontiguousarray(to_numpy(array))
    digest.update(f"{host.dtype.str}{host.shape}".encode())
    digest.update(host.tobytes())


def _hash_value(digest, value) -> None:
    """Feed a rule field or layer attribute into ``digest``: arrays by their bytes, layers by
    their type and arrays, everything else by its repr."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        _hash_array(digest, value)
    elif isinstance(value, Layer):
        _hash_layer(digest, value)
    elif isinstance(value, (tuple, list)):
        digest.update(b"[")
        for item in value:
            _hash_value(digest, item)
        digest.update(b"]")
    else:
        digest.update(repr(value).encode())


def _hash_layer(digest, layer: Layer) -> None:
    digest.update(f"{type(layer).__module__}.{type(layer).__qualname__}:".encode())
    digest.update(layer.describe().encode())
    for name in layer._arrays:
        value = getattr(layer, name, None)
        digest.update(name.encode())
        if value is not None:
            _hash_array(digest, value)
    activation = getattr(layer, "activation", None)
    if isinstance(activation, Layer):
        _hash_layer(digest, activation)


def _hash_rule(digest, rule) -> None:
    digest.update(f"{type(rule).__module__}.{type(rule).__qualname__}:".encode())
    if dataclasses.is_dataclass(rule):
        fields = [(f.name, getattr(rule, f.name)) for f in dataclasses.fields(rule)]
    else:
        fields = sorted(vars(rule).items())
    for name, value in fields:
        digest.update(name.encode())
        _hash_value(digest, value)


def model_fingerprint(analyzer) -> dict:
    """What identifies an analyzer's results: SHA-256 digests of its model (the canonized
    graph: each layer's type, description, wiring and parameter bytes) and of its rules (type
    and fields, array fields by their bytes), and ``normalize_output_relevance``.

    A custom rule is identified by its class name and fields, not its code: a store written
    with an edited rule class of the same name is not told apart.
    """
    model, rules = hashlib.sha256(), hashlib.sha256()
    for node in analyzer.model.nodes:
        model.update(f"{node.inputs}".encode())
        _hash_layer(model, node.layer)
    for rule in analyzer.rules:
        _hash_rule(rules, rule)
    return {"model": model.hexdigest(), "rules": rules.hexdigest(),
            "normalize_output_relevance": bool(analyzer.normalize_output_relevance)}


# -- the chunk task -----------------------------------------------------------------------------

def _explain_block(x, selection, analyzer, backend):
    """Explain one chunk on the worker: ``(relevance, output, selection)``; with ``backend``
    the chunk goes through that backend and the results come back as NumPy."""
    if backend is not None:
        from .kernels import backend_named

        x = backend_named(backend).from_numpy(np.ascontiguousarray(x))
    if isinstance(selection, np.ndarray) and selection.ndim == 0:
        selection = int(selection)
    expl = analyzer(x, selection)
    val, output = expl.val, expl.output
    if backend is not None:
        val, output = to_numpy(val), to_numpy(output)
    return val, output, np.asarray(expl.output_selection, dtype=np.int64)


def _pick(parts, index):
    return parts[index]


def _selection_fingerprint(selection) -> str:
    """The output selection, for the fingerprint: ``"argmax"``, an int, or a digest of one index
    per sample (a Dask array by its deterministic name)."""
    if selection is None:
        return "argmax"
    if isinstance(selection, (int, np.integer)):
        return str(int(selection))
    name = getattr(selection, "name", None)
    if name is not None and hasattr(selection, "dask"):
        return "per-sample " + str(name)
    array = np.ascontiguousarray(np.asarray(selection, dtype=np.int64))
    return "per-sample " + hashlib.sha256(array.tobytes()).hexdigest()


# -- explain_dataset ----------------------------------------------------------------------------

def _batch_chunked(da, x):
    """``x`` with every axis but the first in one chunk (rechunked, with a warning)."""
    if any(math.isnan(c) for c in x.chunks[0]):
        raise ValueError("x has unknown chunk sizes along the batch (NaN): call "
                         "x.compute_chunk_sizes() first, or build it with known sizes")
    if all(len(c) == 1 for c in x.chunks[1:]):
        return x
    split = [axis for axis in range(1, x.ndim) if len(x.chunks[axis]) > 1]
    warnings.warn(f"x is chunked along axis {', '.join(map(str, split))} as well as the batch "
                  f"(chunks {tuple(len(c) for c in x.chunks)} per axis); a sample must be in one "
                  "chunk to be explained, so x is rechunked along the batch only. Build x with "
                  "chunks=(B, -1, ...) to avoid the copy.", NonBatchChunkingWarning, stacklevel=3)
    return x.rechunk((x.chunks[0],) + tuple((size,) for size in x.shape[1:]))


def _probe_output_shape(analyzer, x) -> tuple:
    """The model output's shape for one sample, from one pass on a zero sample (host NumPy):
    it also reports a model that cannot take ``x``'s samples before any task runs."""
    dtype = np.dtype(x.dtype)
    probe = analyzer(np.zeros((1, *x.shape[1:]), dtype=dtype))
    return tuple(int(d) for d in probe.output.shape[1:])


def _selection(da, output_selection, x, n_outputs: int):
    """``(argument, index)`` for the chunk task: a constant (``None``, an int) with index
    ``None``, or a 1-d integer Dask array chunked like the batch with index ``"i"``."""
    if output_selection is None:
        return None, None
    if isinstance(output_selection, bool):
        raise TypeError("output_selection must be an int, one int per sample, or None; got a bool")
    try:
        k = operator.index(output_selection)
    except TypeError:
        pass
    else:
        if not 0 <= k < n_outputs:
            raise ValueError(f"output_selection {k} is out of range: the model has {n_outputs} "
                             f"outputs (0..{n_outputs - 1})")
        return k, None
    n = x.shape[0]
    if isinstance(output_selection, da.Array):
        selection = output_selection
    else:
        selection = np.asarray(output_selection)
        if selection.ndim == 1 and selection.shape[0] == n and selection.dtype.kind in "iu":
            bad = selection[(selection < 0) | (selection >= n_outputs)]
            if bad.size:
                raise ValueError(f"output_selection {int(bad[0])} is out of range: the model "
                                 f"has {n_outputs} outputs (0..{n_outputs - 1})")
    if selection.ndim != 1 or selection.shape[0] != n:
        raise ValueError(f"output_selection must be one index per sample, shape ({n},); got "
                         f"shape {tuple(selection.shape)}")
    if np.dtype(selection.dtype).kind not in "iu":
        raise TypeError(f"output_selection must hold integers, got dtype {selection.dtype}")
    if isinstance(selection, np.ndarray):
        selection = da.from_array(selection.astype(np.int64), chunks=(x.chunks[0],))
    elif selection.chunks[0] != x.chunks[0]:
        selection = selection.rechunk((x.chunks[0],))
    return selection, "i"


def explain_dataset(analyzer, x, output_selection=None, *, backend: str | None = None
                    ) -> Explanation:
    """Explain a Dask array ``x`` ``(N, ...)`` chunk by chunk: a lazy :class:`Explanation`.

    ``x`` is chunked along the first axis only (otherwise it is rechunked so, with a
    :class:`NonBatchChunkingWarning`). ``output_selection``: ``None`` (each sample's argmax), an
    int, or one index per sample as a NumPy or Dask array. ``backend``: ``None`` (each chunk in
    its own namespace: NumPy, or CuPy for a CuPy-backed Dask array) or a backend name
    (``"torch"``, ``"cupy"``, ``"numpy"``) that NumPy chunks are converted to on the worker; the
    results of a named backend come back as NumPy.

    Returns an :class:`Explanation` whose ``val`` (relevance, chunked like ``x``), ``output``
    (the model outputs) and ``output_selection`` (int64, the explained index of each sample) are
    Dask arrays with the same chunks along the batch; ``input`` is ``x``; ``extras`` holds what
    :func:`lrp_core.to_zarr` records: ``"fingerprint"`` (:func:`model_fingerprint`),
    ``"analyzer"`` (its repr) and ``"output_selection_spec"``. Computing the
    three together (``dask.compute(e.val, e.output, e.output_selection)`` or ``to_zarr``)
    explains each chunk once. One pass on a zero sample, on the host, runs first: it finds the
    output's shape and reports a model that cannot take ``x``'s samples.
    """
    dask, da = _require_dask()
    if not isinstance(x, da.Array):
        raise TypeError(f"x must be a Dask array chunked along the batch, like "
                        f"dask.array.from_array(x, chunks=(64, -1, -1, -1)); got a "
                        f"{type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"x must be batch first, (N, ...); got shape {x.shape}")
    if backend is not None:
        from .kernels import backend_named

        backend_named(backend)  # an unknown name fails here, not on a worker
    x = _batch_chunked(da, x)
    output_shape = _probe_output_shape(analyzer, x)
    n_outputs = math.prod(output_shape)
    fingerprint = model_fingerprint(analyzer)
    selection, selection_index = _selection(da, output_selection, x, n_outputs)

    # one key per analyzer object (two analyzers never share one, even of equal fingerprints)
    kind = f"{type(analyzer).__module__}.{type(analyzer).__qualname__}"
    analyzer_name = f"lrp-analyzer-{dask.base.tokenize(fingerprint, kind, id(analyzer))}"
    analyzer_key = dask.delayed(analyzer, name=analyzer_name, pure=True, traverse=False)
    token = dask.base.tokenize(analyzer_name, x.name, backend)
    sample_index = "".join(chr(ord("j") + axis) for axis in range(x.ndim - 1))
    parts = da.blockwise(_explain_block, "i", x, "i" + sample_index, selection, selection_index,
                         analyzer_key, None, backend, None, dtype=object,
                         meta=np.empty((0,), dtype=object), concatenate=True,
                         name=f"lrp-explain-{dask.base.tokenize(token, selection)}")
    meta = np.empty((0,) * x.ndim, dtype=x.dtype) if backend is not None else x._meta
    val = _from_parts(da, parts, 0, x.shape[1:], x.dtype, meta)
    output = _from_parts(da, parts, 1, output_shape, x.dtype,
                         _meta_like(meta, len(output_shape) + 1, x.dtype))
    chosen = _from_parts(da, parts, 2, (), np.int64, np.empty((0,), dtype=np.int64))
    return Explanation(val=val, input=x, output=output, output_selection=chosen,
                       extras={"fingerprint": fingerprint, "analyzer": repr(analyzer),
                               "output_selection_spec": _selection_fingerprint(output_selection)})


def _meta_like(meta, ndim: int, dtype):
    return meta.reshape((0,) * ndim).astype(dtype) if hasattr(meta, "reshape") else meta


def _from_parts(da, parts, index: int, sample_shape: tuple, dtype, meta):
    """The ``index``-th array of each chunk's result, as a Dask array ``(N, *sample_shape)``.

    A plain (materialised) graph layer, not a blockwise one: Dask would fuse a blockwise pick
    with the explaining task into each of the three arrays, and a graph that holds two of them
    (``to_zarr``'s writes) would explain every chunk more than once."""
    from dask.highlevelgraph import HighLevelGraph

    names = ("relevance", "output", "selection")
    name = f"lrp-{names[index]}-{parts.name.split('-')[-1]}"
    rest = (0,) * len(sample_shape)
    layer = {(name, i, *rest): (_pick, (parts.name, i), index) for i in range(parts.numblocks[0])}
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[parts])
    chunks = (parts.chunks[0], *((int(s),) for s in sample_shape))
    return da.Array(graph, name, chunks=chunks, dtype=dtype,
                    meta=_meta_like(meta, len(sample_shape) + 1, dtype))
