"""Throughput of ``lrp.explain_dataset`` + ``lrp.to_zarr`` on a ``distributed.LocalCluster``:
images per second with 1 and 2 worker processes (one thread each), against the same chunks
explained in this one process without Dask (the path ``lrp explain --zarr`` takes without
``--dask``, threads left to NumPy/torch).

Models: the shipped trained LeNet-5 (``lrp.models.lenet5_digits``) on MNIST test digits (read
from ``$LRP_EXTERNAL_DATA/mnist`` when set, else uniform noise of the same shape), and
torchvision's ResNet-18 (random weights, ``weights=None``, eval mode) on 224 x 224 noise, with
the NumPy backend and with the torch backend. Rules: ``lrp.EpsilonPlusFlat()``.

What is timed: from the call of ``explain_dataset`` to the return of ``to_zarr``, with the
cluster already started and its workers having imported torch and lrp_core (as those of a
running cluster have): the pass on a zero sample that finds the output shape, sending the
analyzer to the workers and preparing it there, reading the chunks from a Zarr array on the
local disk, explaining them, and writing relevance, outputs and selections into a fresh Zarr
store. Cluster start-up and the workers' first imports (seconds) are not counted. Each
configuration runs once.

    python benchmarks/dataset_throughput.py [--mnist 2000] [--resnet 16] [--json out.json]

Prints a Markdown table (the one in docs/scale.md) and the machine's load before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # helpers.data reads MNIST from the shared data


def mnist(count: int) -> tuple[np.ndarray, str]:
    if "LRP_EXTERNAL_DATA" in os.environ:
        from helpers.data import mnist_test_images

        return mnist_test_images(count)[0], "MNIST test digits"
    return np.random.default_rng(0).random((count, 1, 28, 28)).astype(np.float32), "noise"


def in_process(analyzer, x, chunk: int, backend: str | None, store: str) -> float:
    """The chunks explained one after the other in this process, written to a Zarr store."""
    import lrp_core as lrp
    from lrp_core.arrays import to_numpy
    from lrp_core.dataset import model_fingerprint
    from lrp_core.zarr_store import ResultStore, store_fingerprint

    start = time.perf_counter()
    chunks = tuple(min(chunk, len(x) - s) for s in range(0, len(x), chunk))
    first = analyzer(x[:1])
    result = ResultStore.open(store, fingerprint=store_fingerprint(
        model_fingerprint(analyzer), x.shape, x.dtype, "argmax"), batch_chunks=chunks,
        input_shape=x.shape[1:], dtype=x.dtype, output_shape=first.output.shape[1:])
    convert = (lambda a: a) if backend is None else lrp.kernels.backend_named(backend).from_numpy
    for index in result.pending():
        rows = result.rows(index)
        expl = analyzer(convert(x[rows]))
        result.write(index, to_numpy(expl.val), to_numpy(expl.output),
                     np.asarray(expl.output_selection))
    return time.perf_counter() - start


def _warm_up():
    import torch  # noqa: F401  (what a worker of a running cluster has imported already)

    import lrp_core  # noqa: F401


def on_cluster(analyzer, x, chunk: int, backend: str | None, folder: str, workers: int) -> float:
    import dask.array as da
    import zarr
    from distributed import Client, LocalCluster

    import lrp_core as lrp

    inputs = f"{folder}/inputs-{workers}.zarr"  # read by the workers, as a dataset would be
    zarr.create_array(inputs, shape=x.shape, chunks=(chunk, *x.shape[1:]), dtype=x.dtype)[:] = x
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(_warm_up)
        start = time.perf_counter()
        expl = lrp.explain_dataset(analyzer, da.from_zarr(inputs), backend=backend)
        lrp.to_zarr(expl, f"{folder}/w{workers}.zarr")
        return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", type=int, default=2000, help="MNIST images (default 2000)")
    parser.add_argument("--resnet", type=int, default=16, help="224x224 images (default 16)")
    parser.add_argument("--json", default=None, help="also write the records here")
    args = parser.parse_args(argv)

    import torch
    import torchvision

    import lrp_core as lrp
    from lrp_core.models import lenet5_digits

    digits, source = mnist(args.mnist)
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None).eval()
    images = np.random.default_rng(1).random((args.resnet, 3, 224, 224)).astype(np.float32)
    cases = [
        ("LeNet-5", f"{len(digits)} {source}, 28x28",
         lrp.LRP(lenet5_digits(), lrp.EpsilonPlusFlat()), digits, 250, None),
        ("ResNet-18", f"{len(images)} noise images, 224x224",
         lrp.LRP(resnet, lrp.EpsilonPlusFlat()), images, 4, None),
        ("ResNet-18", f"{len(images)} noise images, 224x224",
         lrp.LRP(resnet, lrp.EpsilonPlusFlat()), images, 4, "torch"),
    ]
    load_before = os.getloadavg()
    records = []
    for model, data, analyzer, x, chunk, backend in cases:
        row = {"model": model, "data": data, "chunk": chunk, "backend": backend or "numpy"}
        with tempfile.TemporaryDirectory() as folder:
            row["in_process_s"] = in_process(analyzer, x, chunk, backend, f"{folder}/p.zarr")
            for workers in (1, 2):
                row[f"workers{workers}_s"] = on_cluster(analyzer, x, chunk, backend, folder,
                                                        workers)
        for key in ("in_process_s", "workers1_s", "workers2_s"):
            row[key.replace("_s", "_images_per_s")] = len(x) / row[key]
        records.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    load_after = os.getloadavg()

    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"load average (1, 5, 15 min) before {tuple(round(v, 2) for v in load_before)}, "
          f"after {tuple(round(v, 2) for v in load_after)}\n")
    print("| model | inputs | backend | chunk | one process, no Dask | 1 worker | 2 workers |")
    print("|---|---|---|---|---|---|---|")
    for r in records:
        print(f"| {r['model']} | {r['data']} | {r['backend']} | {r['chunk']} | "
              f"{r['in_process_images_per_s']:.1f} img/s | {r['workers1_images_per_s']:.1f} "
              f"img/s | {r['workers2_images_per_s']:.1f} img/s |")
    if args.json:
        Path(args.json).write_text(json.dumps({"load_before": load_before,
                                               "load_after": load_after,
                                               "records": records}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
