"""Small files converted in worker processes on this machine (pipeline.yml ``build.processes``).

A small file costs about as much Python as codec work: for a 128 KB TIFF, ~0.8 ms of reading its
header, writing its Zarr documents and making its record beside 0.3-0.9 ms of decoding and
compressing, so the threads of one process queue on the GIL. Worker processes do not: they run
the tasks a Dask cluster runs (:func:`.cluster.convert_batch`, batches of up to 32 items, the
last ones smaller), while this process plans, merges and publishes as ever. 1,000 small TIFFs
into a memory store: 2.18x the floor on threads, 1.96x on two processes (1.64x since, with a
shorter publishing end, part of it on an idle worker: docs/build-performance.md; benchmarks/build.py;
frames of noise, whose codec work is lighter: 3.1-3.4x -> 1.8-1.9x); 100,000 small CSV files: 403 s -> 144 s. Big items stay
on this process's threads, whose codecs release the GIL and whose slabs of one array spread over
every core.

``concurrent.futures`` and not Dask's scheduler here: a Dask task costs a few milliseconds, a
small file about one. A worker that dies breaks the pool: :class:`Workers` starts it again and
the lost tasks' items run again alone (:meth:`.cluster.ClusterItems.one_by_one`).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import Any

from ..errors import ClusterLost
from ..readers.base import REGISTRY as READERS
from ..writers.base import WRITERS
from ..zarr_layout import CODECS
from .cluster import ClusterItems, Job
from .journal import Journal

#: Items of at most this many source bytes go to the processes; bigger ones stay on threads.
SMALL_BYTES = 8 * 2**20
#: With ``build.processes`` unset, a build of fewer planned items keeps to threads (a pool is
#: not worth its start for a handful of files).
MIN_ITEMS = 16


def start(count: int) -> ProcessPoolExecutor:
    """``count`` worker processes, started now. Forked while this process has no other thread
    (nothing can hold a lock a child would inherit held, and the children start at once with the
    modules already imported); else from a fresh server process that imports the converters once
    (~0.5 s), as Python 3.14 does by default."""
    if threading.active_count() == 1:
        context = multiprocessing.get_context("fork")
        for registry in (READERS, WRITERS, CODECS):  # scanned once here, not by each child (~20 ms of entry points each)
            registry.load_entry_points()
    else:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["publisher.build.cluster"])
    # the environment as it is now: a fork server started by an earlier build kept the one of then
    # (credentials a notebook set since, SKYSHELF_* settings), and its children would inherit that
    pool = ProcessPoolExecutor(count, mp_context=context, initializer=_start, initargs=(dict(os.environ), os.getpid()))
    if context.get_start_method() == "fork":
        for done in [pool.submit(os.getpid) for _ in range(count)]:
            done.result()  # every worker up (all forked at the first task): before this process starts its threads
        return pool
    # from a fork server, a worker starts when a task finds none idle: one fast to start answered
    # two of these tasks, and the build ran on fewer processes than asked (3 of 8 starts: 2 of 3)
    pids: set[int] = set()
    for _ in range(10):
        pids |= {done.result() for done in [pool.submit(_pid_after, 0.05) for _ in range(count)]}
        if len(pids) >= count:
            break
    return pool


def _pid_after(seconds: float) -> int:
    """A worker's pid, after holding it ``seconds`` (busy: the next task starts another worker)."""
    time.sleep(seconds)
    return os.getpid()


class Workers:
    """The build's worker processes: a pool started again when one of its processes died (the
    pool is broken then), so the build goes on (:meth:`.cluster.ClusterItems.one_by_one`)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        try:
            return start(self.count)
        except BrokenProcessPool as exc:
            raise ClusterLost(f"the build's worker processes could not start ({exc}). Nothing was published. From a fork server (a "
                              "process with threads), each worker imports the script that runs the build: guard its code with "
                              "`if __name__ == '__main__':`; or build.processes: 0 converts in the build's own process") from None

    def submit(self, fn: Callable[..., Any], *args: Any, restart: bool = True) -> Future[Any]:
        """``restart`` False: a broken pool's error (the caller has another way)."""
        try:
            return self.pool.submit(fn, *args)
        except BrokenProcessPool:
            if not restart:
                raise
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._start()  # (from a fork server by now: this process has threads)
            return self.pool.submit(fn, *args)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _start(environment: dict[str, str], build: int) -> None:
    """In a worker: the build's ``environment``, Ctrl-C left to the build's process, and exit when the build's process dies (killed)
    instead of waiting forever for tasks that will not come. Its pid, not the worker's parent: a
    worker from a fork server is the fork server's child (the server, whose "alive" pipe the
    workers hold, outlived them all)."""
    if os.environ != environment:
        os.environ.clear()
        os.environ.update(environment)
    # Ctrl-C reaches every process of the terminal's group: the build's process stops on it and
    # shuts the pool down; each worker printed its KeyboardInterrupt's traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    alive = _watcher(build)

    def watch() -> None:
        while alive():
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="skyshelf-parent-watch", daemon=True).start()


def _watcher(pid: int) -> Callable[[], bool]:
    """Whether process ``pid`` still runs: by a pidfd on Linux (a pid used again by another
    process is not taken for it), else by signal 0."""
    try:
        handle = os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux 5.3+ (or the build is gone already: then signal 0 says so)
        def signalled() -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                pass  # (there, another user's)
            return True

        return signalled
    import select

    return lambda: not select.select([handle], [], [], 0)[0]  # (readable once the process has exited)


def process_items(workers: Workers, job: Job, journal: Journal) -> ClusterItems:
    """Items as tasks of ``workers``. Each worker writes its items' arrays itself (one writer thread:
    the processes are the parallelism), so no slab tasks. A task whose worker died has its items
    run again alone, on workers started again (a second death alone fails that item)."""
    job = replace(job, settings=replace(job.settings, spread_bytes=0), threads=1, local=True)

    def submit(fn: Callable[..., Any], *args: Any, key: str) -> Future[Any]:
        return workers.submit(fn, *args)

    def lost(exc: BaseException) -> Exception:  # (a task cancelled: the build is ending anyway)
        return ClusterLost(f"the build's worker processes stopped ({exc!r}). Nothing was published; the items finished are kept: "
                           "run the build again to resume (build.processes: 0 converts in the build's own process)")

    # alone twice: tasks sent before the pool broke may run beside the first rerun (and kill it)
    return ClusterItems(submit, job, journal, lost, died=(BrokenProcessPool,), alone=2)
