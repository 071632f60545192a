"""``publish build`` in three steps: plan (:mod:`.plan`: which items the previous release already
holds), convert (:mod:`.convert`: sources to Zarr/Parquet), publish (:mod:`.publish`: the index,
the completeness check of :mod:`.check` and the switch of ``catalog.json``).

A build writes a new release under ``releases/<id>/`` (marked in progress while it does, so
``publish gc`` leaves it alone), checks that everything the release references is in the store,
and switches ``catalog.json`` to it in one final write. With ``on_error: fail`` a build that had
failures deletes its release and leaves the previous catalog untouched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Future, ThreadPoolExecutor
from typing import Any

from ..auth.tags import AccessRules
from ..config.models import Pipeline
from ..errors import BuildFailed
from ..formats import BuildReport, ManifestItem, Problem
from ..index.write import warm_up
from ..readers.hdf5_sources import look_beside
from ..releases import InProgress, finish_switch
from ..scratch import out_of_room
from ..settings import BuildSettings
from ..sources import iter_plan
from ..store_lock import StoreBusy, exclusive
from ..stores import Store
from ..work_item import WorkItem
from ..writers.chunking import no_numpy_hugepages
from . import processes
from .check import IncompleteRelease
from .cluster import ClusterItems, Handle, Job, check_data
from .convert import Converter, ItemResult
from .dask_client import Capacity, check_reach, connect, dashboard_link, dask_tasks
from .items import ItemTable
from .journal import Journal, drop_lost
from .manifests import RecordSpill
from .plan import Planner, new_release_id
from .publish import Early, Tree, discard, publish
from .reuse import AsBefore, Deferred, as_recorded, relative_record
from .target import resolve_store, storage_options

Progress = Callable[[str, dict[str, Any]], None]
#: An item's outcome: its previous record reused, or what converting it produced and its new record.
Outcome = ManifestItem | tuple[ItemResult, ManifestItem]


class _Build:
    """One build's state across its three steps; items convert concurrently and merge in plan
    order, so the index is the same whatever the timing. What grows with the tree (its nodes, the
    previous and the new manifest) is on disk (:class:`.publish.Tree`, :mod:`.manifests`); in
    memory are only the items in flight, at most :attr:`window`."""

    def __init__(self, pipeline: Pipeline, store: Store, progress: Progress | None, workers: int, settings: BuildSettings,
                 confirm: Callable[[], None] = lambda: None) -> None:
        self.pipeline, self.store, self.workers, self.settings = pipeline, store, workers, settings
        self.confirm = confirm  # raises unless the store's lock is still this build's (right before the switch)
        self.progress = progress or (lambda event, info: None)
        self.release = new_release_id()
        self.prefix = f"releases/{self.release}"
        self.report = BuildReport(self.release, store.url)
        self.planner = Planner(pipeline, store)
        self.access = AccessRules(pipeline.rules, pipeline.access.default)
        self.converter = Converter(pipeline, store, self.prefix, workers, self.access)
        self.tree = Tree(pipeline, self.report, self.access)
        self.in_progress = InProgress(store, self.release, self.planner.previous_release)
        self.journal = Journal(store, self.release, private=self.access.tagged, every=settings.journal_seconds)  # finished items, for a resumed build
        assert self.planner.previous is not None and self.planner.scratch is not None
        self.records = RecordSpill(self.planner.scratch, self.planner.previous)
        self.plan_failures = 0  # problems the plan found (symlink loops): not items, never recorded
        self.reused_failures = 0  # those of reused records (a corrupt file, unchanged): nothing new
        #: Items converted as tasks elsewhere: every item on a Dask cluster (:mod:`.cluster`), or the
        #: small ones on worker processes of this machine (:mod:`.processes`, started at the first to convert)
        self.remote: ClusterItems | None = None
        self.remote_all = False
        self.processes = 0  # worker processes to start (decided once the plan's size is known)
        self.pool: processes.Workers | None = None
        #: Items in flight at most: enough to keep every core (or the cluster's) busy
        self.window = 64 * workers
        self.deferred: Deferred | None = Deferred() if self.planner.same_catalog() else None
        self._warming: threading.Thread | None = None
        self.slots = 1  # tasks the cluster runs at once
        self.capacity: Capacity | None = None  # (on a Dask cluster: its workers' threads, as they come)
        self.left = 0  # planned items not yet scheduled

    def on_cluster(self, client: Any, threads: int, local: bool = False) -> None:
        """Convert on ``client``'s cluster: each item a task, its chunks written by the worker."""
        job = Job(self.pipeline, self.store.url, self.settings, self.prefix, threads)
        self.remote, self.remote_all = dask_tasks(client, job, self.journal, local, self.progress), True
        check_reach(client, job, self.store)
        self.capacity = Capacity(client)
        self.grow(self.capacity.slots)
        self.progress("cluster", {"dashboard": dashboard_link(client), "workers": len(client.nthreads())})

    def grow(self, slots: int) -> None:
        """Tasks the cluster runs at once: as many batches in flight, four each."""
        self.slots = slots
        self.window = max(self.window, 4 * self.remote.batch_items * slots)  # type: ignore[union-attr]
        self.remote.slots = max(1, slots)  # type: ignore[union-attr]  (its last batches shrink for them)

    def roots(self) -> list[str]:
        """The data roots written (the release's, and one per private access class), here or on the cluster."""
        here = self.converter.roots()
        return here + sorted(self.remote.roots - set(here)) if self.remote else here

    def run(self) -> BuildReport:
        started = time.perf_counter()
        items = ItemTable(self.pipeline)
        try:
            watch = AsBefore(self.planner, self.tree) if self.deferred is not None else None
            items.fill(iter_plan(self.pipeline, self.store.url if self.store.is_local else None), self.plan_problem, watch)  # the whole plan, checked, before anything is written
            if watch is not None:
                self.deferred = watch.seen  # the leading items, as they were
            self.plan_failures = len(self.report.failures)
            wanted = self.pipeline.build.processes
            if not self.remote_all:
                self.processes = (min(self.workers, os.cpu_count() or 1) if self.workers > 1 and len(items) >= processes.MIN_ITEMS else 0) if wanted is None else wanted
            if self.report.failures and self.pipeline.on_error == "fail":  # nothing is written
                if self.remote_all:  # (but the workers' check at connect: its release's folder goes)
                    with contextlib.suppress(Exception):  # (left, it is an empty folder: the plan's failure is the one said)
                        self.store.delete_prefix(self.prefix)
                self.report.seconds = time.perf_counter() - started
                return self.report
            if watch is not None and watch.holds and watch.count == self.planner.previous.count:  # type: ignore[union-attr]
                self.started(items)
                return self._unchanged(started)  # every item as it was, in the same order: nothing to do
            return self.convert(items, started)
        finally:
            items.close()
            self.close()

    def close(self) -> None:
        """The build's files on disk (its node table, manifests, records)."""
        self.records.close()
        self.tree.close()
        self.planner.close()

    def started(self, items: ItemTable) -> None:
        """Progress: the items planned, and those the plan held as the previous release's."""
        self.progress("start", {"items": len(items), "release": self.release})
        if self.deferred is not None and self.deferred.count:
            self.progress("reused", {"count": self.deferred.count})

    def convert(self, items: ItemTable, started: float) -> BuildReport:
        self.tree.ensure_folders("x")  # the root
        self.started(items)
        self.left = items.count  # those written to the plan's table (the leading ones it held are not scheduled)
        if self.remote_all:
            assert self.remote is not None
            self.remote.expect(self.slots, self.left)
        try:
            with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="skyshelf-item") as items_pool:
                flight: deque[tuple[WorkItem, ManifestItem | Future[Outcome] | Handle]] = deque()
                try:
                    for item in items:  # 1. plan: reuse, or 2. convert on a worker, a window at a time
                        if self.capacity is not None and (more := self.capacity.grown()):
                            self.grow(more)
                        flight.append((item, self.schedule(item, items_pool)))
                        while len(flight) > self.window or (flight and isinstance(flight[0][1], ManifestItem)):
                            self.settle(*flight.popleft())
                    if self.remote:
                        self.remote.flush()
                    while flight:
                        self.settle(*flight.popleft())
                except BaseException:  # (Ctrl-C, a failure that ends the build: the items queued not begun, nor their slabs)
                    items_pool.shutdown(wait=False, cancel_futures=True)
                    self.converter.stop()
                    raise
            self.converter.pool.shutdown(wait=True)
            return self.finish(started)  # 3. publish (or discard)
        finally:
            self.converter.pool.shutdown(wait=True)
            if self.pool is not None:
                self.pool.shutdown()
            self.journal.stop(flush=not self.report.published)  # an unpublished build's finished items stay for the next
            self.in_progress.stop(remove=True)  # a killed build leaves it, and it goes stale

    def plan_problem(self, item: WorkItem) -> None:
        """Report what the plan found but cannot read (symlink loops, refused links)."""
        assert item.problem is not None
        kind, reason = item.problem
        getattr(self.report, {"failure": "failures", "skipped": "skipped", "warning": "warnings"}[kind]).append(
            Problem(item.node_path, self.pipeline.unrooted(reason), self.pipeline.shown(item.paths[0])))

    def process(self, item: WorkItem, old: ManifestItem | None) -> Outcome:
        """On a worker thread: reuse the item when its settings and content are unchanged (compared
        with its ``old`` record), else convert it."""
        done = self.converter.process(self.planner, item, old)
        if not isinstance(done, ManifestItem) and done[0].recorded:
            self.journal.add(done[1])
        return done

    def schedule(self, item: WorkItem, items_pool: ThreadPoolExecutor) -> ManifestItem | Future[Outcome] | Handle:
        """The item's previous record when unchanged by size and mtime (decided here, without a
        thread or a hash), else its processing submitted to the pool (or the cluster)."""
        self.left -= 1
        same, old = self.planner.unchanged_by_stat(item)
        if same:
            assert old is not None
            return old
        if not self._warming:  # something to convert: the index will be written
            if self.processes:  # before this process starts a thread (see processes.start)
                self.tree.table.commit()  # no lock held across the fork (the workers' check reads this table)
                self.pool = processes.Workers(self.processes)
                job = Job(self.pipeline, self.store.url, self.settings, self.prefix, 1)
                self.remote = processes.process_items(self.pool, job, self.journal)
                self.remote.expect(self.processes, self.left + 1)
                self.window = max(self.window, 4 * self.remote.batch_items * self.processes)
                self.progress("processes", {"workers": self.processes})
            self.in_progress.start()  # before the release's first object: gc leaves it alone
            self.journal.start()
            # its pyarrow set-up (~0.2 s) overlaps conversion, whose codecs run off the GIL
            self._warming = threading.Thread(target=warm_up, name="skyshelf-warm-up", daemon=True)
            self._warming.start()
        if self.remote_all:
            assert self.remote is not None
            return self.remote.submit(item, old)
        if self.remote:
            try:
                size = sum(p.stat().st_size for p in item.paths)
            except OSError:  # gone since the plan: a thread reports it as any unreadable file
                size = None
            if size is not None and size <= processes.SMALL_BYTES:
                return self.remote.submit(item, old, size)
        return items_pool.submit(self.process, item, old)

    def settle(self, item: WorkItem, outcome: ManifestItem | Future[Outcome] | Handle) -> None:
        """On the main thread, in plan order: wait for the item's outcome and merge it."""
        self.progress("item", {"path": item.node_path})
        if not isinstance(outcome, ManifestItem):
            outcome = self.remote.outcome(outcome) if isinstance(outcome, Handle) else outcome.result()  # type: ignore[union-attr]
        if self.deferred is not None and isinstance(outcome, ManifestItem) and outcome.seq == self.deferred.count:
            self.defer(item, outcome)  # type: ignore[union-attr]
        else:
            if self.deferred is not None:
                self.replay()
            self.merge(item.node_path, outcome, item.source_index)
        self.progress("done", {"path": item.node_path})

    def defer(self, item: WorkItem, old: ManifestItem) -> None:
        """An item reused as it was, in the previous release's order: counted, not yet merged."""
        assert self.deferred is not None
        self.deferred.add(self.tree, item.node_path, old)

    def replay(self) -> None:
        """Something changed after all: merge the items deferred so far, from the previous records."""
        deferred, self.deferred = self.deferred, None
        assert deferred is not None and self.planner.previous is not None
        for old in self.planner.previous.records(0, deferred.count):
            self.merge(old.node_path, old)

    def finish(self, started: float) -> BuildReport:
        """With every item merged: discard the release (failures under ``on_error: fail``, or
        nothing changed), else publish it."""
        # every item is merged: nothing more to journal (and no batch may land in a release the
        # check then discards); a build killed while publishing loses its last seconds' records
        self.journal.stop(flush=False)
        if self.deferred is not None and self.deferred.count == self.planner.previous.count and len(self.report.failures) == self.plan_failures:  # type: ignore[union-attr]
            return self._unchanged(started)  # every item as it was, in the same order
        if self.deferred is not None:
            self.replay()
        self.tree.count_folders()
        if self.report.failures and self.pipeline.on_error == "fail":
            self.journal.remove()
            discard(self.store, self.prefix, self.in_progress, self.roots())
            self.report.seconds = time.perf_counter() - started
            return self.report
        if (len(self.report.failures) == self.plan_failures + self.reused_failures and self.report.converted == 0
                and self.planner.same_catalog() and self.records.same_items()):
            self.journal.remove()
            discard(self.store, self.prefix, self.in_progress, self.roots())  # nothing changed: at most the in-progress marker
            return self._stands(started)
        try:
            publish(self.store, self.pipeline, self.tree, self.records, self.release, self.planner.catalog_settings(), self.report, self.in_progress,
                    self.planner.previous_release, started, self.settings.search_min_children, self.roots(), self.confirm, self.early())
        except IncompleteRelease as exc:  # resumed items whose data is gone would fail every build after: not resumed again
            if dropped := drop_lost(self.store, exc.missing, self.planner.resumed_releases):
                raise IncompleteRelease(exc.release, exc.store, exc.missing, exc.previous, dropped) from None
            raise
        if self.report.published:
            self.journal.published()  # after the switch: until then a failure leaves it for the next build
        return self.report

    def early(self) -> Early | None:
        """With worker processes on this machine (idle by now): the check of the release's data
        made by one of them while this process writes the index."""
        pool, remote = self.pool, self.remote
        if pool is None or remote is None:
            return None

        def listing(path: str, nodes: str, written: list[str]) -> Future[tuple[dict[str, int], list[str]]]:
            try:
                return pool.submit(check_data, remote.job, path, nodes, written, restart=False)
            except (BrokenExecutor, RuntimeError) as exc:  # a worker died (or the pool shut): the check is made here
                failed: Future[tuple[dict[str, int], list[str]]] = Future()
                failed.set_exception(exc if isinstance(exc, BrokenExecutor) else BrokenExecutor(str(exc)))
                return failed

        return listing

    def merge(self, node_path: str, outcome: Outcome, source: int | None = None) -> None:
        """On the main thread, in item order: add the item's entries and problems to the build
        (``source``: the number of the pipeline's source that planned it; None for a previous record)."""
        if isinstance(outcome, ManifestItem):
            if outcome.files and os.path.isabs(outcome.files[0].path):  # a record written before paths were relative
                outcome = relative_record(self.planner, outcome)
            rows = outcome.entries
            warnings, skipped, failures = list(outcome.warnings), list(outcome.skipped), as_recorded(outcome.failures)
            self.reused_failures += len(failures)
            self.records.add(outcome)
            self.report.reused += 1
            self.report.resumed += self.planner.is_resumed(outcome)
        else:
            out, record = outcome
            rows, warnings, skipped, failures = record.entries, out.warnings, out.skipped, out.failures  # (its entries, as rows)
            self.report.converted += 1
            self.report.unpublished += not rows
            self.report.bytes_in += out.bytes_in
            if out.recorded:  # else (a passing failure) not recorded, so it is converted again next time
                self.records.add(record)
        if rows:
            self.tree.ensure_folders(node_path, source)
        for row in rows:
            self.tree.add_row(row, source)
        self.report.warnings += warnings
        self.report.skipped += skipped
        self.report.failures += failures

    def _unchanged(self, started: float) -> BuildReport:
        """The report of a build that changes nothing, from the previous records alone: no index
        entries are rebuilt and nothing is written (1,000 files: about a third less time)."""
        deferred = self.deferred
        assert deferred is not None
        self.journal.remove()
        discard(self.store, self.prefix, self.in_progress, self.roots())  # at most the in-progress marker
        previous = self.planner.previous
        assert previous is not None
        self.tree.ensure_folders("x")  # the root, as a build counts it (when no item published a node, no item's folders did)
        for family, count in (deferred.nodes if previous.nodes is None else previous.nodes).items():  # every record's
            self.report.nodes[family] = self.report.nodes.get(family, 0) + count  # (the folders are counted already)
        self.report.warnings += deferred.warnings
        self.report.skipped += deferred.skipped
        self.report.failures += deferred.failures
        self.report.reused += deferred.count
        if deferred.failures and self.pipeline.on_error == "fail":  # recorded failures (a corrupt file, unchanged) fail it still
            self.report.seconds = time.perf_counter() - started
            return self.report
        return self._stands(started)

    def _stands(self, started: float) -> BuildReport:
        """Nothing changed: the previous release stands, and nothing is written."""
        self.report.release, self.report.published, self.report.unchanged = self.planner.previous_release, True, True  # type: ignore[assignment]
        self.report.seconds = time.perf_counter() - started
        return self.report

def build(pipeline: Pipeline, store: str | None = None, progress: Progress | None = None, workers: int | None = None,
          settings: BuildSettings | None = None, scheduler: str | None = None, wait: float = 0.0) -> BuildReport:
    """Run a build (plan, convert, publish); raise :class:`BuildFailed` (carrying the report) when
    it published nothing. ``settings``: the build's knobs, by default read from the environment
    here, once per build (``SKYSHELF_SEARCH_MIN_CHILDREN``, ``SKYSHELF_DIRECT_IO``, ``SKYSHELF_S3_BACKEND``).
    ``scheduler`` (else ``build.scheduler``): convert on that Dask cluster (:mod:`.cluster`).
    The build holds the store's lock (:mod:`..store_lock`) from before it reads the current catalog
    until after its switch: when another build or rollback holds it, :class:`StoreBusy` at once,
    or after waiting up to ``wait`` seconds for it."""
    look_beside()  # (HDF5's external storage beside its file, if h5py has not loaded yet; a local:N cluster's workers inherit it)
    settings = settings or BuildSettings.from_env()
    threads = pipeline.build.threads_per_worker
    target = resolve_store(pipeline, store, settings)
    with exclusive(target, "publish build", wait) as lock, no_numpy_hugepages(), connect(scheduler or pipeline.build.scheduler, threads) as client:
        finished = finish_switch(target)  # before the current release is read
        if finished is not None:
            logging.getLogger("skyshelf.build").warning("a switch to release %s was cut short (a killed build or rollback): finished it", finished)
        job = _Build(pipeline, target, progress, workers or os.cpu_count() or 2, settings, lock.confirm)
        if client is not None:
            try:
                job.on_cluster(client, threads, local=(scheduler or pipeline.build.scheduler or "").startswith("local:"))
            except BaseException:  # (a worker refused: nothing ran)
                job.close()
                raise
        try:
            report = job.run()
        except (sqlite3.OperationalError, OSError) as exc:  # a full disk: said as such, naming which
            if (full := out_of_room(exc, target.url if target.is_local else None)) is not None:
                raise full from None
            raise
    if not report.published:
        raise BuildFailed(report)
    return report


__all__ = ["BuildReport", "BuildSettings", "Problem", "StoreBusy", "build", "resolve_store", "storage_options"]
