"""Cluster faults a review helper found: a worker that does not answer (a suspended job, a frozen
node: the build waited without end at its checks, holding the store's lock, and once the
scheduler dropped the worker blamed the Skyshelf install), and a big array's slab tasks whose
workers died (Dask's KilledWorker was recorded as that array's failure, and the release was
published without it)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from publisher.build import build, dask_client
from publisher.build.convert import _the_builds
from publisher.config import load_pipeline
from publisher.errors import ClusterLost

from .conftest import write_pipeline

distributed = pytest.importorskip("distributed")


def test_a_worker_that_does_not_answer_ends_the_build_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "src").mkdir()
    np.save(tmp_path / "src" / "a.npy", np.arange(10))
    monkeypatch.setattr(dask_client, "ANSWER_SECONDS", 3.0)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1") as cluster, \
            distributed.Client(cluster) as client:
        pids = client.run(os.getpid)
        frozen, pid = min(pids.items())
        os.kill(pid, signal.SIGSTOP)
        try:
            pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(tmp_path / "site")},
                                                               "build": {"scheduler": cluster.scheduler_address}}))
            started = time.monotonic()
            with pytest.raises(ClusterLost) as lost:
                build(pipeline)
            assert time.monotonic() - started < 60
            assert f"the Dask worker {frozen} of {cluster.scheduler_address} did not answer in 3 s" in str(lost.value)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert not (tmp_path / "site" / "catalog.json").exists()
        assert build(pipeline).published  # (the store's lock was let go; the worker answers again)


def test_a_slab_tasks_dead_workers_are_the_builds_not_the_arrays() -> None:
    """Raised through a slab task's ``gather`` into the array's conversion, KilledWorker ends the
    item's task as its worker dying would (Dask's own error), which runs it again alone; recorded
    as the array's failure, the item published without it."""
    killed = distributed.KilledWorker("skyshelf-slabs-x-0", "tcp://127.0.0.1:1", 1)
    assert _the_builds(killed)
    assert _the_builds(distributed.comm.CommClosedError("closed"))
    assert not _the_builds(ValueError("a corrupt chunk"))
