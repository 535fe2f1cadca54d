"""``lrp.explain_dataset`` on a real ``distributed.LocalCluster`` (two worker processes, one
thread each): the same numbers as the plain analyzer on the same inputs, for the NumPy and torch
backends, uneven chunks, a chunk of one sample and per-sample output selections.

The oracle is the analyzer itself, called in this process: on each chunk's samples (equal
exactly, in float64 and float32: the same arithmetic on the same arrays), and on the whole
array at once (1e-6 relative in float32; in float64 the batch size changes BLAS's summation
order, a few 1e-17, so 1e-12 relative).
"""

import warnings

import numpy as np
import pytest

dask = pytest.importorskip("dask", reason="explain_dataset needs Dask (lrp-core[dataset])")
da = pytest.importorskip("dask.array")
pytest.importorskip("distributed", reason="the tests run on a distributed.LocalCluster")

import lrp_core as lrp
from lrp_core.dataset import NonBatchChunkingWarning
from lrp_core.models import random_lenet5

from helpers import dask_cluster
from helpers.dask_cluster import CountingLRP

client = dask_cluster.local_cluster_fixture()

UNEVEN = (3, 5, 1, 4)  # uneven chunks, one of them a single sample


def digits(n: int, dtype, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, 28, 28)).astype(dtype)


def analyzer_for(dtype, cls=lrp.LRP, composite=None):
    return cls(random_lenet5(dtype=dtype), composite or lrp.EpsilonPlusFlat())


def per_chunk(analyzer, x, chunks, selection=None):
    """The plain analyzer called on each chunk's samples in this process."""
    vals, outs, sels, start = [], [], [], 0
    for size in chunks:
        part = None if selection is None or np.ndim(selection) == 0 else \
            selection[start:start + size]
        expl = analyzer(x[start:start + size], selection if part is None else part)
        vals.append(expl.val)
        outs.append(expl.output)
        sels.extend(expl.output_selection)
        start += size
    return np.concatenate(vals), np.concatenate(outs), np.asarray(sels)


def assert_matches_whole(got, want, dtype):
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    scale = np.abs(want).max()
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_equals_the_plain_analyzer_on_uneven_chunks(client, dtype):
    x = digits(sum(UNEVEN), dtype)
    analyzer = analyzer_for(dtype)
    expl = lrp.explain_dataset(analyzer, da.from_array(x, chunks=(UNEVEN, 1, 28, 28)))
    assert expl.val.chunks[0] == UNEVEN == expl.output.chunks[0] == expl.output_selection.chunks[0]
    assert expl.val.dtype == dtype and expl.output_selection.dtype == np.int64
    val, out, sel = dask.compute(expl.val, expl.output, expl.output_selection)
    want_val, want_out, want_sel = per_chunk(analyzer, x, UNEVEN)
    np.testing.assert_array_equal(val, want_val)  # the same arithmetic on the same samples
    np.testing.assert_array_equal(out, want_out)
    whole = analyzer(x)
    np.testing.assert_array_equal(sel, whole.output_selection)
    np.testing.assert_array_equal(sel, want_sel)
    assert_matches_whole(val, whole.val, dtype)
    assert_matches_whole(out, whole.output, dtype)
    assert val.dtype == dtype and val.shape == x.shape and out.shape == (len(x), 10)


def test_per_sample_selections_as_numpy_and_as_dask_arrays(client):
    x = digits(9, np.float64, seed=1)
    chunks = (4, 1, 4)
    analyzer = analyzer_for(np.float64)
    selection = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5])
    xd = da.from_array(x, chunks=(chunks, 1, 28, 28))
    want = per_chunk(analyzer, x, chunks, selection)
    for given in (selection, da.from_array(selection, chunks=2)):  # rechunked to the batch's
        expl = lrp.explain_dataset(analyzer, xd, given)
        val, out, sel = dask.compute(expl.val, expl.output, expl.output_selection)
        np.testing.assert_array_equal(sel, selection)
        np.testing.assert_array_equal(val, want[0])
        np.testing.assert_array_equal(out, want[1])
    # one int for every sample
    expl = lrp.explain_dataset(analyzer, xd, 7)
    val, sel = dask.compute(expl.val, expl.output_selection)
    np.testing.assert_array_equal(sel, [7] * 9)
    np.testing.assert_array_equal(val, per_chunk(analyzer, x, chunks, 7)[0])
    assert not np.array_equal(val, want[0])


def test_torch_backend_on_the_workers_equals_torch_in_process(client):
    torch = pytest.importorskip("torch")
    x = digits(7, np.float32, seed=2)
    chunks = (2, 1, 4)
    analyzer = analyzer_for(np.float32)
    expl = lrp.explain_dataset(analyzer, da.from_array(x, chunks=(chunks, 1, 28, 28)),
                               backend="torch")
    val, out = dask.compute(expl.val, expl.output)
    assert isinstance(val, np.ndarray)  # the workers hand back NumPy
    start, parts = 0, []
    for size in chunks:
        parts.append(analyzer(torch.from_numpy(x[start:start + size])).val.numpy())
        start += size
    np.testing.assert_array_equal(val, np.concatenate(parts))
    whole = analyzer(torch.from_numpy(x))
    assert_matches_whole(val, whole.val.numpy(), np.float32)
    assert_matches_whole(out, whole.output.numpy(), np.float32)
    # and the torch backend agrees with NumPy's within float32
    assert_matches_whole(val, analyzer(x).val, np.float32)


def test_a_torch_model_travels_to_the_workers(client):
    torch = pytest.importorskip("torch")
    from helpers.torch_models import LeNet5, reinitialise

    module = reinitialise(LeNet5(), seed=3).eval()
    analyzer = lrp.LRP(module, lrp.EpsilonPlus())
    x = digits(6, np.float32, seed=3)
    expl = lrp.explain_dataset(analyzer, da.from_array(x, chunks=((1, 5), 1, 28, 28)))
    val = expl.val.compute()  # NumPy chunks: the workers convert the torch weights to NumPy
    np.testing.assert_array_equal(val, per_chunk(analyzer, x, (1, 5))[0])
    with_torch = analyzer(torch.from_numpy(x)).val.numpy()
    np.testing.assert_allclose(val, with_torch, rtol=1e-4, atol=1e-5 * np.abs(with_torch).max())


def test_the_analyzer_is_one_key_and_reaches_each_worker_once(client):
    x = digits(12, np.float64, seed=4)
    analyzer = analyzer_for(np.float64, CountingLRP)
    expl = lrp.explain_dataset(analyzer, da.from_array(x, chunks=(1, 1, 28, 28)))
    graph = {}
    for array in (expl.val, expl.output, expl.output_selection):
        graph.update(dict(array.__dask_graph__()))
    holding = [key for key in graph if "lrp-analyzer" in str(key)]
    assert len(holding) == 1  # one key holds the analyzer ...
    explain = [key for key in graph if isinstance(key, tuple) and key[0].startswith("lrp-explain")]
    assert len(explain) == 12
    for key in explain:  # ... and every chunk's task depends on it
        assert holding[0] in dask.core.get_dependencies(graph, key)
    client.run(dask_cluster.reset_unpickled_count)
    val = expl.val.compute()
    counts = client.run(dask_cluster.unpickled_count)
    # 12 tasks; the analyzer reaches each of the 2 workers once (a worker that emptied its queue
    # and then stole a task may fetch it again: at most twice each, never once per task)
    assert 1 <= sum(counts.values()) <= 4, counts
    np.testing.assert_array_equal(val, per_chunk(analyzer, x, (1,) * 12)[0])


def test_non_batch_chunking_warns_and_is_rechunked(client):
    x = digits(6, np.float64, seed=5)
    analyzer = analyzer_for(np.float64)
    xd = da.from_array(x, chunks=(3, 1, 14, 28))
    with pytest.warns(NonBatchChunkingWarning, match="axis 2"):
        expl = lrp.explain_dataset(analyzer, xd)
    assert expl.val.chunks == ((3, 3), (1,), (28,), (28,))
    np.testing.assert_array_equal(expl.val.compute(), per_chunk(analyzer, x, (3, 3))[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lrp.explain_dataset(analyzer, da.from_array(x, chunks=(3, 1, 28, 28)))  # no warning


def test_mistakes_are_named_before_anything_runs():
    analyzer = analyzer_for(np.float64)
    x = da.from_array(digits(4, np.float64), chunks=(2, 1, 28, 28))
    with pytest.raises(TypeError, match="Dask array"):
        lrp.explain_dataset(analyzer, digits(4, np.float64))
    with pytest.raises(ValueError, match="out of range: the model has 10 outputs"):
        lrp.explain_dataset(analyzer, x, 10)
    with pytest.raises(ValueError, match="out of range"):
        lrp.explain_dataset(analyzer, x, np.array([0, 1, 2, 12]))
    with pytest.raises(ValueError, match=r"one index per sample, shape \(4,\)"):
        lrp.explain_dataset(analyzer, x, np.array([0, 1]))
    with pytest.raises(TypeError, match="integers"):
        lrp.explain_dataset(analyzer, x, np.array([0.0, 1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="cannot run on this input"):
        lrp.explain_dataset(analyzer, da.zeros((4, 1, 20, 20), chunks=(2, -1, -1, -1)))
    with pytest.raises(TypeError, match="floating-point"):
        lrp.explain_dataset(analyzer, da.zeros((4, 1, 28, 28), dtype=np.int32,
                                               chunks=(2, -1, -1, -1)))
