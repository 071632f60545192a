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


def test_a_local_cluster_whose_worker_dies_starting_is_said_so(tmp_path: Path) -> None:
    """``--scheduler local:N`` whose worker process dies as it starts (here: a preload that exits,
    as an out-of-memory kill or a broken install would): a traceback ending in distributed's
    "Nanny failed to start"; now one line saying what happened, and nothing written."""
    import subprocess
    import sys

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "t.csv").write_text("a,b\n1,2\n")
    (tmp_path / "die.py").write_text("import os\nos._exit(3)\n")
    pipeline = write_pipeline(tmp_path, {"sources": [{"path": "src", "into": ""}]})
    done = subprocess.run([sys.executable, "-m", "publisher.cli", "build", "-c", str(pipeline), "--scheduler", "local:1"],
                          env={**os.environ, "DASK_DISTRIBUTED__WORKER__PRELOAD": f'["{tmp_path / "die.py"}"]'},
                          capture_output=True, text=True, timeout=300, check=False)
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in out, out
    assert "could not start the local Dask cluster (local:1)" in out and "Nothing was written" in out, out
    assert not (tmp_path / "site" / "catalog.json").exists()
