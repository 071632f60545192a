"""Builds on a Dask cluster (``publish build --scheduler``, pipeline.yml ``build.scheduler``;
docs/scale.md): each planned item is one task on Dask's distributed scheduler, which reruns the
tasks of a worker that dies. A task fingerprints its item, converts it and writes its chunks
straight to the store, and returns what the client merges (the item's index entries, problems
and manifest record); the client plans, merges in plan order and publishes exactly as a local
build does, so the release is the same whichever ran it. Writes are idempotent (the same item
writes the same keys with the same bytes), so a rerun task cannot spoil a release.

Each worker process keeps one :class:`Converter` per build (its writer threads), made by the first
task of that build it runs; the ``distributed`` package is imported only when a scheduler is given.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from ..auth.tags import AccessRules
from ..config.models import Pipeline
from ..errors import ClusterLost, SkyshelfError, StoreError, WorkerRefused
from ..formats import ManifestItem
from ..readers.base import REGISTRY as READERS
from ..readers.hdf5_sources import look_beside
from ..settings import BuildSettings
from ..work_item import WorkItem
from . import slab_tasks, worker_state
from .convert import Converter, ItemResult, passing_failure
from .journal import Journal
from .plan import Planner
from .reach import installed_version, worker_name, worker_store
from .worker_state import Stopped

if TYPE_CHECKING:
    from distributed import Future

#: What a task returns: the reused record, or the conversion, its record and the data roots written.
Remote = ManifestItem | tuple[ItemResult, ManifestItem, list[str]]


@dataclass(frozen=True)
class Job:
    """What a worker needs to convert items of one build (sent with every task; small)."""

    pipeline: Pipeline
    store_url: str  # opened on the worker as the client opened it (output.storage's variables read there)
    settings: BuildSettings
    prefix: str  # releases/<id>
    threads: int
    version: str = field(default_factory=installed_version)  # the client's Skyshelf
    readers: tuple[str, ...] = field(default_factory=lambda: tuple(READERS.items()))  # the client's, plug-ins' too
    #: Workers on the build's own machine (``build.processes``): they see what it sees
    local: bool = False

    def open(self) -> tuple[Converter, Planner]:
        """This worker's state for the build (its first task): one of another version, without a reader
        the client has, or (off the build's machine) not seeing the sources or store is refused."""
        if self.version != installed_version():
            raise WorkerRefused(f"{worker_name()} has Skyshelf {installed_version()}, the build's client {self.version}: install the same version "
                              "on both (a worker that joined the cluster after the build checked its workers?). Nothing was published")
        look_beside()  # (a worker that joined later, or started again: its HDF5 not loaded yet)
        if missing := sorted(set(self.readers) - set(READERS.items())):  # (its files skipped as of no reader, else)
            raise WorkerRefused(f"{worker_name()} has no {', '.join(missing)} reader, which the build's client has: install it in the workers' "
                              "environment too (a worker that joined the cluster after the build checked its workers?). Nothing was published")
        store = worker_store(self.pipeline, self.store_url, self.settings, self.local, self.prefix)
        access = AccessRules(self.pipeline.rules, self.pipeline.access.default)
        spread = slab_tasks.SlabTasks(self) if self.settings.spread_bytes else None
        converter = Converter(self.pipeline, store, self.prefix, self.threads, access, threads=self.threads, spread=spread)
        return converter, Planner(self.pipeline, None)


#: A local cluster (``local:N``) without any worker this long has lost them for good (its nannies
#: stop starting new ones after workers kept dying): the build stops instead of waiting forever.
NO_WORKERS_SECONDS = 60.0


def _state(job: Job) -> contextlib.AbstractContextManager[tuple[Converter, Planner]]:
    """This worker's converter and planner of ``job``'s build, while a task of it runs (:mod:`.worker_state`)."""
    return worker_state.state(job.prefix, job.open)


def convert_item(job: Job, item: WorkItem, old: ManifestItem | None) -> Remote:
    """On a worker: the item's previous record when its content is unchanged, else its conversion."""
    with _state(job) as (converter, planner):
        slab_tasks.current.item = item  # what a slab task of its big arrays re-opens
        done = converter.process(planner, item, old)
    if isinstance(done, ManifestItem):
        return done
    out, record = done
    out.documents = {}  # the item's Zarr documents served its own consolidation; the client needs none
    out.entries = []  # the record holds them, as rows
    return out, record, converter.roots()


#: A batch that read at least this much makes its writes durable itself (a sync per batch of tiny
#: files would cost more than it overlaps); smaller ones are left to the client's final flush.
FLUSH_BYTES = 4 * 2**20


def convert_batch(job: Job, batch: list[tuple[WorkItem, ManifestItem | None]], flush: bool) -> list[Remote] | Stopped:
    """On a worker: a batch of items, one after the other (small files: one task, not one each).
    Its writes are made durable before it returns (a local store's ``sync``, while other workers
    still compute), so the client's flush before the switch has little left to wait for."""
    try:
        results = [convert_item(job, item, old) for item, old in batch]
        if flush:  # the client measured the batch's sources (FLUSH_BYTES or more): no second stat here
            with _state(job) as (converter, _):
                converter.store.flush()
    except (StoreError, WorkerRefused) as exc:
        return Stopped.of(exc)
    return results


def check_data(job: Job, path: str, nodes: str, written: list[str]) -> tuple[dict[str, int], list[str]]:
    """On a worker process of the build's machine, idle at the build's end: the release's data
    listed and checked (:func:`.check.check_data`) while the build's process writes the index."""
    from . import check

    with _state(job) as (converter, _):
        return check.check_data(path, nodes, converter.store, written, job.pipeline.output.zarr_format)


@dataclass
class _Batch:
    items: list[tuple[WorkItem, ManifestItem | None]]
    future: Future | None = None
    results: list[Remote] | None = None
    taken: int = 0
    #: Its records are in the journal. Set under ``lock`` by whichever comes first: the task's
    #: done-callback (another thread) or the build taking its results, which releases the future
    #: only then (released before the callback ran, the callback's ``result()`` failed with a
    #: traceback and the batch's records never reached the journal).
    journaled: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: What the done-callback fetched (the task's results, or its :class:`Stopped`), the one fetch of
    #: them: the build fetching them too raced it, and its release of the future while the
    #: callback's fetch was under way had Dask log "Couldn't gather keys ... forgotten" and try again
    fetched: Any = None
    #: Set by the done-callback as it ends, whatever the task's end (so :attr:`fetched` is final).
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Handle:
    """Where one item's outcome will be: its batch and its place in it."""

    batch: _Batch
    index: int


class ClusterItems:
    """The client's side: submits items as tasks, small ones batched (at most ``batch_items`` items
    or ``batch_bytes`` of source files a task: a task costs the scheduler a few milliseconds, a
    million one-file tasks would cost hours), and hands back their outcomes as a local build's.
    ``submit(fn, *args, key=...)`` runs a task: a Dask client's (:func:`.dask_client.dask_tasks`) or a local
    process pool's (:mod:`.processes`); ``lost`` turns the exception of a task that could not run
    (the scheduler or a worker process gone) into the build's error."""

    def __init__(self, submit: Callable[..., Any], job: Job, journal: Journal, lost: Callable[[BaseException], Exception],
                 batch_items: int = 32, batch_bytes: int = 8 * 2**20, lost_errors: tuple[type[BaseException], ...] = (),
                 died: tuple[type[BaseException], ...] = (), alone: int = 1, blame: bool = True,
                 alive: Callable[[], bool] | None = None) -> None:
        self.submit_task, self.job, self.journal, self.lost = submit, job, journal, lost
        #: What a task raises when the cluster, not the item, failed (beyond a cancelled task):
        #: Dask's lost connections (OSErrors)
        self.lost_errors = (CancelledError, *lost_errors)
        #: What a task raises when the worker running it died (a broken process pool; Dask's
        #: ``KilledWorker``, once the workers running it died more than its allowed failures)
        self.died = died
        self.alone = alone  # times an item's own task may die before it is a failure of that item
        #: Whether an item whose own task died is a failure of that item (worker processes: the
        #: pool broke, so nothing else ran beside it), or the build's end naming it (Dask: other
        #: tasks ran on that worker meanwhile, so it may be innocent)
        self.blame = blame
        #: Whether the cluster still has workers (a local cluster's; None: one that may scale
        #: to none and back, an HPC queue's); waits give up after NO_WORKERS_SECONDS without any
        self.alive = alive
        self.batch_items, self.batch_bytes = batch_items, batch_bytes
        self.roots: set[str] = set()
        self._open: _Batch | None = None
        self._open_bytes = 0
        self._count = 0
        self.slots, self.left = 1, 0  # see expect()

    def expect(self, slots: int, items: int) -> None:
        """``slots`` tasks run at once (worker processes, or the cluster's threads) and at most
        ``items`` more will come: the last batches shrink (to an eighth of what is left per slot,
        down to one item), so the workers finish together rather than one waiting on another's
        last full batch (32 small TIFFs: ~50 ms of one core)."""
        self.slots, self.left = max(1, slots), items

    def submit(self, item: WorkItem, old: ManifestItem | None, size: int | None = None) -> Handle:
        """Add the item to the batch being filled (``size``: its sources' bytes, when known)."""
        if size is None:
            try:
                size = sum(p.stat().st_size for p in item.paths)
            except OSError:  # gone since the plan: the worker reports it as any unreadable file
                size = 0
        limit = max(1, min(self.batch_items, self.left // (8 * self.slots))) if self.left else self.batch_items
        self.left = max(0, self.left - 1)
        if self._open is not None and (len(self._open.items) >= limit or self._open_bytes + size > self.batch_bytes):
            self.flush()
        if self._open is None:
            self._open, self._open_bytes = _Batch([]), 0
        self._open.items.append((item, old))
        self._open_bytes += size
        return Handle(self._open, len(self._open.items) - 1)

    def flush(self) -> None:
        """Send the batch being filled (the plan's end, or before waiting on it)."""
        batch, self._open, size = self._open, None, self._open_bytes
        if batch is None or not batch.items:
            return
        self._count += 1
        batch.future = self.submit_task(convert_batch, self.job, batch.items, size >= FLUSH_BYTES, key=f"skyshelf-items-{self._count}-{self.job.prefix}")
        batch.future.add_done_callback(partial(self._finished, batch))

    def _finished(self, batch: _Batch, future: Any) -> None:
        """As each task finishes (in any order): fetch its results and journal its records, so a
        killed client loses nothing finished; the build takes them from here (:meth:`outcome`)."""
        try:
            status = getattr(future, "status", None)  # a Dask future's; a concurrent.futures one has none
            if not (status == "finished" if status is not None else not future.cancelled() and future.exception() is None):
                return
            try:
                results = future.result()
            except Exception:  # noqa: BLE001 (cancelled since, as a client closes: the build is ending; it asks the future itself)
                return
            with batch.lock:
                batch.fetched = results
                if not isinstance(results, Stopped) and not batch.journaled:
                    self._journal(batch, results)
        finally:
            batch.done.set()

    def _journal(self, batch: _Batch, results: list[Remote]) -> None:
        for result in results:
            if not isinstance(result, ManifestItem) and result[0].recorded:
                self.journal.add(result[1])
        batch.journaled = True

    def one_by_one(self, batch: _Batch) -> list[Remote]:
        """The items of a task whose worker died (killed, out of memory, or a file that crashes its
        reader), each as a task of its own, one at a time, so a worker killed once costs nothing
        more. The one whose own task kills its worker again is a failure of that item (not
        recorded: the next build tries it again) and the others convert (``blame``), or it ends
        the build naming it (where other tasks ran beside it: it may be innocent)."""
        return [self._alone(item, old) for item, old in batch.items]

    def _alone(self, item: WorkItem, old: ManifestItem | None) -> Remote:
        died: BaseException | None = None
        for _ in range(self.alone):
            self._count += 1
            future = self.submit_task(convert_batch, self.job, [(item, old)], False, key=f"skyshelf-alone-{self._count}-{self.job.prefix}")
            try:
                return self._result(future)[0]  # type: ignore[no-any-return]
            except self.died as exc:
                died = exc
                if not self.blame:
                    raise ClusterLost(f"the workers converting {self.job.pipeline.shown(item.paths[0])} died, also when it ran as a task of "
                                      f"its own ({type(exc).__name__}): probably a file that crashes its reader or needs more memory than "
                                      "a worker has. Nothing was published; leave it out (the source's exclude: the other items are "
                                      "reused) or mend it, and build again to resume") from None
            except self.lost_errors as exc:
                if isinstance(exc, SkyshelfError):
                    raise
                raise self.lost(exc) from None
            finally:
                if hasattr(future, "release"):
                    future.release()
        return self._died_on(item, died)

    def _result(self, future: Any, batch: _Batch | None = None) -> Any:
        """The task's result (its :class:`Stopped` raised); with ``alive``, a ClusterLost once the
        cluster had no worker for NO_WORKERS_SECONDS."""
        result = self._wait(future, batch)
        if isinstance(result, Stopped):
            raise result.error()
        return result

    def _wait(self, future: Any, batch: _Batch | None = None) -> Any:
        """The future's result; for a ``batch``'s, what its done-callback fetched, the future asked
        only when that fetched nothing (the task failed: its exception)."""
        idle = 0.0
        while True:
            if batch is not None:
                if batch.done.wait(5):
                    return future.result() if batch.fetched is None else batch.fetched
            elif self.alive is None:
                return future.result()
            else:
                with contextlib.suppress(TimeoutError):
                    return future.result(timeout=5)
            idle = 0.0 if self.alive is None or self.alive() else idle + 5
            if idle >= NO_WORKERS_SECONDS:
                raise ClusterLost(f"the build's cluster has had no worker for {NO_WORKERS_SECONDS:.0f} s (they kept dying: a file that crashes "
                                  "its reader, or memory?). Nothing was published; the items finished are kept: build again to "
                                  "resume") from None

    def _died_on(self, item: WorkItem, exc: BaseException | None) -> Remote:
        shown = self.job.pipeline.shown
        reason = (f"the worker process converting it died ({type(exc).__name__}: {exc}), also when it ran alone: a file that crashes its "
                  "reader (a corrupt file?), or that needs more memory than a worker has")
        return (*passing_failure(item, reason, shown(item.paths[0])), [])

    def outcome(self, handle: Handle) -> ManifestItem | tuple[ItemResult, ManifestItem]:
        batch = handle.batch
        if batch.future is None:
            self.flush()
        if batch.results is None:
            assert batch.future is not None
            try:
                batch.results = self._result(batch.future, batch)
            except self.died:  # a worker died running it: each of its items again, alone
                batch.results = self.one_by_one(batch)
            except self.lost_errors as exc:  # the scheduler is gone
                if isinstance(exc, SkyshelfError):  # (a StoreError, an OSError too: the build's error as it is)
                    raise
                raise self.lost(exc) from None
            with batch.lock:
                if not batch.journaled:
                    self._journal(batch, batch.results)
            if hasattr(batch.future, "release"):
                batch.future.release()
        result = batch.results[handle.index]
        batch.taken += 1
        if batch.taken == len(batch.items):
            batch.results = batch.future = batch.fetched = None  # merged: let it go (the future's done-callback holds the batch: no cycle left)
        if isinstance(result, ManifestItem):
            return result
        out, record, roots = result
        self.roots.update(roots)
        return out, record
