"""A real ``distributed.LocalCluster`` for the dataset tests (two worker processes of one thread
each, no mocks), and analyzers that misbehave on the workers in ways a test can check.

The analyzers are ``lrp.LRP`` subclasses defined here, so that the workers (which start with
this process's ``sys.path``) unpickle them by reference.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

import lrp_core as lrp

#: how many times an analyzer was unpickled in this process (read on the workers by client.run)
UNPICKLED = {"count": 0}


def local_cluster_fixture():
    """A module-scoped fixture: ``distributed.Client`` on a 2-process ``LocalCluster``; skips
    when Dask is not installed."""

    @pytest.fixture(scope="module")
    def client():
        pytest.importorskip("dask", reason="the dataset tests need Dask (lrp-core[dataset])")
        distributed = pytest.importorskip("distributed",
                                          reason="the dataset tests need dask[distributed]")
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
        client = distributed.Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()

    return client


def unpickled_count(dask_worker=None) -> int:
    return UNPICKLED["count"]


def reset_unpickled_count(dask_worker=None) -> None:
    UNPICKLED["count"] = 0


class CountingLRP(lrp.LRP):
    """An analyzer that counts, per process, how often it is unpickled."""

    def __setstate__(self, state):
        super().__setstate__(state)
        UNPICKLED["count"] += 1


class FailingLRP(lrp.LRP):
    """Raises (a simulated crash) on any chunk that holds a sample at row ``fail_from`` or later
    of its dataset, identified by a marker value in the first pixel: ``x[:, 0, 0, 0] >= 2``."""

    def __call__(self, x, *args, **kwargs):
        if float(x[:, 0, 0, 0].max()) >= 2.0:
            raise RuntimeError("simulated crash while explaining a chunk")
        return super().__call__(x, *args, **kwargs)


class KillingLRP(lrp.LRP):
    """Kills its own worker process (SIGKILL, no cleanup) in the middle of the first chunk it
    explains on a worker, once: the marker file says it happened."""

    def __init__(self, model, rules=None, *, marker: Path, **options):
        super().__init__(model, rules, **options)
        self.marker = str(marker)
        self.parent = os.getpid()

    def __call__(self, x, *args, **kwargs):
        expl = super().__call__(x, *args, **kwargs)  # the chunk is explained, not yet returned
        if os.getpid() != self.parent and int(x.shape[0]) > 1:
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return expl
            os.write(fd, f"killed worker process {os.getpid()}\n".encode())
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
        return expl
