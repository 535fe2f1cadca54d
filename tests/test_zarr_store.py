"""``lrp.to_zarr``: the layout, resuming after a killed run (every chunk written once, the same
content as an uninterrupted run), a worker killed in the middle of a chunk (recomputed, nothing
lost), and stores that hold something else (refused, with the reason). On a real
``distributed.LocalCluster`` of two worker processes where a cluster matters, Dask's synchronous
scheduler where the order of the chunks must be known.
"""

import os

import numpy as np
import pytest

dask = pytest.importorskip("dask", reason="to_zarr needs Dask (lrp-core[dataset])")
da = pytest.importorskip("dask.array")
zarr = pytest.importorskip("zarr", reason="to_zarr needs zarr (lrp-core[dataset])")
pytest.importorskip("distributed", reason="the tests run on a distributed.LocalCluster")

import lrp_core as lrp
from lrp_core.models import random_lenet5
from lrp_core.zarr_store import StoreMismatchError, plan_zarr

from helpers import dask_cluster
from helpers.dask_cluster import FailingLRP, KillingLRP

client = dask_cluster.local_cluster_fixture()

CHUNKS = (4, 4, 1, 3)


def dataset(n: int = sum(CHUNKS), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, 28, 28))


def explanation(x, analyzer=None, chunks=CHUNKS, selection=None):
    analyzer = analyzer or lrp.LRP(random_lenet5(), lrp.EpsilonPlusFlat())
    return lrp.explain_dataset(analyzer, da.from_array(x, chunks=(chunks, 1, 28, 28)), selection)


def chunk_files(store) -> dict:
    """Each stored chunk object of the three data arrays: path -> inode (a rewrite, which Zarr
    does through a temporary file and a rename, changes the inode)."""
    found = {}
    for name in ("relevance", "output", "selection"):
        for root, _, files in os.walk(store / name / "c"):
            for file in files:
                path = os.path.join(root, file)
                found[path] = os.stat(path).st_ino
    return found


def test_layout_attributes_and_content(client, tmp_path):
    x = dataset()
    expl = explanation(x)
    names = [f"sample-{i}.png" for i in range(len(x))]
    group = lrp.to_zarr(expl, tmp_path / "out.zarr", inputs=names)
    val, out, sel = dask.compute(expl.val, expl.output, expl.output_selection)
    np.testing.assert_array_equal(group["relevance"][:], val)
    np.testing.assert_array_equal(group["output"][:], out)
    np.testing.assert_array_equal(group["selection"][:], sel)
    np.testing.assert_array_equal(group["complete"][:], [1, 1, 1, 1])
    # uneven chunks 4, 4, 1, 3: Zarr's chunk divides every boundary between them
    assert group["relevance"].chunks == (1, 1, 28, 28)
    assert group["output"].shape == (12, 10) and group["relevance"].dtype == np.float64
    record = group.attrs["lrp_core"]
    assert record["inputs"] == names
    assert record["batch_chunks"] == list(CHUNKS)
    assert record["fingerprint"]["input_shape"] == [12, 1, 28, 28]
    assert record["fingerprint"]["output_selection"] == "argmax"
    assert "EpsilonRule" in record["analyzer"] or "LRP" in record["analyzer"]


def test_regular_chunks_are_zarr_chunks_and_indices_are_the_default_names(client, tmp_path):
    x = dataset(10, seed=1)
    group = lrp.to_zarr(explanation(x, chunks=(4, 4, 2)), tmp_path / "out.zarr")
    assert group["relevance"].chunks == (4, 1, 28, 28)
    assert group["selection"].chunks == (4,)
    assert group.attrs["lrp_core"]["inputs"] == list(range(10))


def test_a_killed_run_resumes_each_chunk_written_once(tmp_path):
    x = dataset(seed=2)
    store = tmp_path / "out.zarr"
    model = random_lenet5()
    plain = lrp.LRP(model, lrp.EpsilonPlusFlat())
    # a run killed after chunks 0 and 2 were written, while chunk 1 was half written (its rows
    # of relevance, not yet its mark)
    result, tasks = plan_zarr(explanation(x, plain), store)
    assert result.pending() == [0, 1, 2, 3] and len(tasks) == 4
    with dask.config.set(scheduler="synchronous"):
        dask.compute(tasks[0], tasks[2])
    zarr.open_array(store, path="relevance", mode="r+")[4:8] = -1.0
    np.testing.assert_array_equal(zarr.open_array(store, path="complete")[:], [1, 0, 1, 0])
    before = chunk_files(store)
    assert before
    written_rows = set(range(0, 4)) | {8}

    result, tasks = plan_zarr(explanation(x, plain), store)
    assert result.pending() == [1, 3] and len(tasks) == 2  # only what is missing
    group = lrp.to_zarr(explanation(x, plain), store)
    np.testing.assert_array_equal(group["complete"][:], [1] * len(CHUNKS))
    after = chunk_files(store)
    for path, inode in before.items():  # the complete chunks were not written again
        row = int(path.split(os.sep + "c" + os.sep, 1)[1].split(os.sep)[0])
        if row in written_rows:
            assert after[path] == inode, path
    uninterrupted = lrp.to_zarr(explanation(x, plain), tmp_path / "once.zarr")
    for name in ("relevance", "output", "selection"):
        np.testing.assert_array_equal(group[name][:], uninterrupted[name][:])


def test_a_crash_in_a_chunk_leaves_it_uncounted_and_a_rerun_completes(tmp_path):
    x = dataset(seed=5)
    x[9:, 0, 0, 0] = 2.0  # FailingLRP crashes on the chunk holding these rows: chunk 3
    store = tmp_path / "out.zarr"
    model = random_lenet5()
    with dask.config.set(scheduler="synchronous"), pytest.raises(RuntimeError, match="simulated"):
        lrp.to_zarr(explanation(x, FailingLRP(model, lrp.EpsilonPlusFlat())), store)
    assert zarr.open_array(store, path="complete")[3] == 0
    with dask.config.set(scheduler="synchronous"):
        group = lrp.to_zarr(explanation(x, lrp.LRP(model, lrp.EpsilonPlusFlat())), store)
    np.testing.assert_array_equal(group["complete"][:], [1] * len(CHUNKS))
    assert (group["selection"][:] >= 0).all()


def test_a_worker_killed_mid_chunk_loses_nothing(client, tmp_path):
    x = dataset(seed=3)
    marker = tmp_path / "killed.txt"
    model = random_lenet5()
    killer = KillingLRP(model, lrp.EpsilonPlusFlat(), marker=marker)
    group = lrp.to_zarr(explanation(x, killer), tmp_path / "out.zarr")
    assert marker.is_file(), "no worker was killed"
    assert "killed worker process" in marker.read_text()
    np.testing.assert_array_equal(group["complete"][:], [1] * len(CHUNKS))
    plain = explanation(x, lrp.LRP(model, lrp.EpsilonPlusFlat()))
    np.testing.assert_array_equal(group["relevance"][:], plain.val.compute())
    np.testing.assert_array_equal(group["selection"][:], plain.output_selection.compute())


def test_a_store_of_another_model_is_refused_with_the_reason(tmp_path):
    x = dataset(6, seed=4)
    store = tmp_path / "out.zarr"
    with dask.config.set(scheduler="synchronous"):
        lrp.to_zarr(explanation(x, chunks=(3, 3)), store)
        cases = [
            (explanation(x, lrp.LRP(random_lenet5(seed=1), lrp.EpsilonPlusFlat()), (3, 3)),
             "a different model"),
            (explanation(x, lrp.LRP(random_lenet5(), lrp.EpsilonPlus()), (3, 3)),
             "different rules"),
            (explanation(x, chunks=(3, 3), selection=4), "another output selection"),
            (explanation(x.astype(np.float32), lrp.LRP(random_lenet5(), lrp.EpsilonPlusFlat()),
                         (3, 3)), "another dtype"),
            (explanation(dataset(8, seed=4), chunks=(4, 4)), "inputs of another shape"),
            (explanation(x, chunks=(2, 2, 2)), "resume with batch size 3"),
        ]
        for expl, reason in cases:
            with pytest.raises(StoreMismatchError, match=reason) as caught:
                lrp.to_zarr(expl, store)
            assert "give a new store" in str(caught.value)
        with pytest.raises(StoreMismatchError, match="other inputs"):
            lrp.to_zarr(explanation(x, chunks=(3, 3)), store, inputs=list("abcdef"))
        # a Zarr group that lrp-core did not write
        foreign = zarr.open_group(tmp_path / "foreign.zarr", mode="w")
        foreign.create_array("something", shape=(2,), dtype="i4")
        with pytest.raises(StoreMismatchError, match="did not write"):
            lrp.to_zarr(explanation(x, chunks=(3, 3)), tmp_path / "foreign.zarr")
    # the refused attempts changed nothing
    group = zarr.open_group(store, mode="r")
    assert group.attrs["lrp_core"]["batch_chunks"] == [3, 3]


def test_a_creation_cut_short_is_started_again(tmp_path):
    store = tmp_path / "out.zarr"
    cut = zarr.open_group(store, mode="w")  # killed after creating an array, before attributes
    cut.create_array("relevance", shape=(3, 5), dtype="f8")
    x = dataset(6, seed=6)
    with dask.config.set(scheduler="synchronous"):
        group = lrp.to_zarr(explanation(x, chunks=(3, 3)), store)
    assert group["relevance"].shape == (6, 1, 28, 28)
    np.testing.assert_array_equal(group["complete"][:], [1, 1])


class CallRecordingLRP(lrp.LRP):
    """Records the batch size of every call (in this process: the synchronous scheduler)."""

    calls: list = []

    def __call__(self, x, *args, **kwargs):
        self.calls.append(int(x.shape[0]))
        return super().__call__(x, *args, **kwargs)


def test_each_chunk_is_explained_once(tmp_path):
    analyzer = CallRecordingLRP(random_lenet5(), lrp.EpsilonPlusFlat())
    expl = explanation(dataset(), analyzer)
    analyzer.calls.clear()  # the probe on a zero sample
    with dask.config.set(scheduler="synchronous"):
        lrp.to_zarr(expl, tmp_path / "out.zarr")
    assert sorted(analyzer.calls) == sorted(CHUNKS)  # relevance, output and selection share it


def test_only_lazy_dataset_explanations_are_written(tmp_path):
    expl = lrp.LRP(random_lenet5())(dataset(2))
    with pytest.raises(TypeError, match="explain_dataset"):
        lrp.to_zarr(expl, tmp_path / "out.zarr")
    with pytest.raises(ValueError, match="one name per sample"):
        lrp.to_zarr(explanation(dataset(4), chunks=(2, 2)), tmp_path / "o.zarr", inputs=["a"])
