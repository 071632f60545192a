"""Step two of a build, conversion: read one item's sources into a node tree, apply the rules and
write its arrays as Zarr and its tables as Parquet, collecting its index entries and problems."""

from __future__ import annotations

import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..auth.tags import AccessRules
from ..config.models import Pipeline
from ..errors import NoRoom, SkyshelfError, StoreError, UnsupportedError, WorkerRefused
from ..fingerprint import referred_record
from ..formats import Entry, FileRecord, ManifestItem, Problem
from ..nodes import ArrayNode, ContainerNode, LinkNode, Node, SkippedNode
from ..readers import NO_READER
from ..readers.nexus import unnamed
from ..rules import apply_rules, folder_rules
from ..source_walk import within
from ..sources import source_folder
from ..stacks import stack_arrays
from ..stores import Store
from ..stores.faults import refused_name, store_trouble
from ..structures import ContainerStructure
from ..work_item import WorkItem
from ..writers import WriteContext, pyramid, writers_for
from ..writers.base import Spread, discard
from ..writers.zarr_array import ZarrWriter
from .lasting import lasting
from .names import unnamable
from .plan import Fingerprint, Planner
from .referred import referred_outside

log = logging.getLogger("skyshelf.build")


@dataclass
class ItemResult:
    """What converting one item produced; filled on a worker thread, merged on the main one."""

    entries: list[Entry] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    failures: list[Problem] = field(default_factory=list)
    #: Its failures are all the file's own (:func:`lasting`): recorded, and reported again while the
    #: file is unchanged; else (one passing, or the file unreadable) it is tried again next build.
    lasting: bool = False
    #: Its reader read its one file alone (:attr:`publisher.readers.base.Reader.alone`).
    alone: bool = False
    #: Other files its reader read or looked for (:attr:`publisher.readers.base.Reader.referred`), as
    #: they were when first known (before their data was read: one changing while read shows next build).
    referred: list[FileRecord] = field(default_factory=list)
    bytes_in: int = 0
    #: Data prefixes outside the release's public one: the private islands it wrote.
    private_prefixes: list[str] = field(default_factory=list)
    documents: dict[str, Any] = field(default_factory=dict)  # Zarr metadata, for consolidation

    @property
    def recorded(self) -> bool:
        """Whether the item's record goes into the manifest (and journal): no failures, or only lasting ones."""
        return not self.failures or self.lasting


@dataclass
class _Island:
    """Nodes of one item that share an access class, written as one Zarr hierarchy under that
    class's prefix: a group's consolidated metadata then lists only what its readers may read."""

    access_class: str | None
    writers: dict[str, Any]
    file_zarr: str
    groups: list[str] = field(default_factory=list)

    @property
    def zarr(self) -> ZarrWriter:
        return self.writers["array"]  # type: ignore[no-any-return]


def data_root(release_prefix: str, access_class: str | None) -> str:
    """Where a release's data of one access class lives: ``releases/<id>`` for what anyone may
    read, ``private/<class>/releases/<id>`` for the rest (one prefix per class, to grant by)."""
    return release_prefix if access_class is None else f"private/{access_class}/{release_prefix}"


def passing_failure(item: WorkItem, reason: str, source: str) -> tuple[ItemResult, ManifestItem]:
    """An item's failure that is not its file's (unreadable, refused, its worker dead): an outcome
    with no record, so the next build tries it again."""
    return ItemResult(failures=[Problem(item.node_path, reason, source)]), ManifestItem(item.node_path, "", "", [], [], [])


def _failed(out: ItemResult, problem: Problem, exc: BaseException) -> None:
    """A failure of the item: recorded only while every one of its failures is :func:`lasting`."""
    out.lasting = lasting(exc) and (out.lasting or not out.failures)
    out.failures.append(problem)


class Converter:
    """Writes items into ``prefix`` (``releases/<id>``) of the store, on a shared writer pool;
    nodes only some may read go under their access class's private prefix."""

    def __init__(self, pipeline: Pipeline, store: Store, prefix: str, workers: int, access: AccessRules | None = None,
                 threads: int | None = None, spread: Spread | None = None) -> None:
        self.pipeline, self.store, self.prefix = pipeline, store, prefix
        self.access = access or AccessRules([])
        # twice as many writer threads as cores: big chunks go to disk with O_DIRECT, which blocks
        # a thread while the device writes, and the other threads keep the cores compressing
        # (1 GiB uncompressed source: 1.28x -> 1.17x the floor); slabs in flight stay 2 per core.
        # ``threads``: exactly so many (a cluster worker keeps to the cores it was given)
        self.pool = ThreadPoolExecutor(max_workers=threads or 2 * workers, thread_name_prefix="skyshelf-write")
        self.slots = threads or 2 * workers
        self.spread = spread  # a cluster worker's: big arrays' slabs as tasks of their own
        self.stopping = threading.Event()  # set as the build ends early: the writers encode no more chunks
        # one writer per structure family (publisher.writers) per data root; the array one also writes the groups
        self._writers: dict[str, dict[str, Any]] = {}
        self._source_folders: dict[int, str] = {}  # (symlinks_outside: refuse) each source's resolved folder

    def stop(self) -> None:
        """The build ends early: the slabs not begun are not, nor the chunks left of those begun (an
        item converting a big array read and wrote all of it before the build's exit joined its thread)."""
        self.stopping.set()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def writers_at(self, root: str) -> dict[str, Any]:
        found = self._writers.get(root)
        if found is None:
            found = self._writers[root] = writers_for(WriteContext(self.store, root, self.pipeline.output, self.pool, slots=self.slots,
                                                                   spread=self.spread, stop=self.stopping))
        return found

    def roots(self) -> list[str]:
        """The data roots this build wrote under (its release prefix, and a private one per class)."""
        return list(self._writers)

    def island(self, path: str) -> _Island:
        """A new island for the subtree at ``path``, under its access class's data root."""
        access_class = self.access.access_class(path)
        return _Island(access_class, self.writers_at(data_root(self.prefix, access_class)), f"data/{path}.zarr")

    def record(self, item: WorkItem, fingerprint: Fingerprint, out: ItemResult) -> ManifestItem:
        """The manifest's record of a converted item: what the next build compares and reuses."""
        base = f"{self.prefix}/data/{item.node_path}"
        files = fingerprint.records()
        for path in fingerprint.changed:
            out.warnings.append(Problem(item.node_path, f"{path} changed while it was read (its size or times moved): published as it "
                                        "was read; the next build converts it again", path))
        record = ManifestItem(item.node_path, Planner.recorded_settings(fingerprint.settings, item.reader), fingerprint.metadata, files,
                              [e.to_json() for e in out.entries], [f"{base}.zarr", f"{base}.parquet", base, *out.private_prefixes],
                              out.warnings, out.skipped, out.failures if out.recorded else [],
                              out.referred, out.alone)
        record.text()  # here, on the worker
        return record

    def process(self, planner: Planner, item: WorkItem, old: ManifestItem | None) -> ManifestItem | tuple[ItemResult, ManifestItem]:
        """On a worker (thread, process or Dask's): the item's previous record when its settings and
        content are unchanged (compared with ``old``), else its conversion and new record."""
        if self.pipeline.symlinks_outside == "refuse" and (left := self.left_source(item)) is not None:
            return left
        try:  # the files, looked at again: they may have gone since the plan (or go while we read)
            found = planner.fingerprint_against(item, old, self.pool)
            if isinstance(found, ManifestItem):
                return found
            item.reader_options()  # detects the reader: opens the file
            out = self.convert(item)
            if out.warnings or out.skipped or out.failures:  # as published: no path of the build host (readers name their files)
                for problems in (out.warnings, out.skipped, out.failures):
                    problems[:] = [replace(p, reason=self.pipeline.unrooted(p.reason)) for p in problems]
            return out, self.record(item, found, out)  # a big item's hash, made meanwhile, is taken here
        except OSError as exc:
            if isinstance(exc, SkyshelfError):  # (a StoreError: the build's, not the item's)
                raise
            return self.unreadable(item, exc)

    def left_source(self, item: WorkItem) -> tuple[ItemResult, ManifestItem] | None:
        """With ``symlinks_outside: refuse``, an item whose file now resolves outside its source's
        folder (swapped for a link, or a folder above it, after the plan refused such links: a
        build of millions of files plans hours before it converts the last one) as a failure, not
        recorded, and not read; None for the others (one ``realpath`` a file)."""
        folder = self.source_folder(item)
        for path in item.paths:
            real = os.path.realpath(path)
            if not within(real, folder):
                shown = self.pipeline.shown(path)
                reason = (f"{shown} resolves to {real}, outside the source folder, since the build planned it (a file or folder "
                          "swapped for a symbolic link): refused, not read (symlinks_outside: refuse)")
                return passing_failure(item, self.pipeline.unrooted(reason), shown)
        return None

    def source_folder(self, item: WorkItem) -> str:
        """The item's source folder, resolved (once per source)."""
        folder = self._source_folders.get(item.source_index)
        if folder is None:
            folder = self._source_folders[item.source_index] = source_folder(self.pipeline, item.source)
        return folder

    def unreadable(self, item: WorkItem, exc: OSError) -> tuple[ItemResult, ManifestItem]:
        """An item whose files cannot even be looked at (deleted or made unreadable since the plan):
        a failure of that item, never recorded, so the next build tries it again."""
        where = self.pipeline.shown(exc.filename or item.paths[0])
        gone = " (deleted since the build planned it?)" if isinstance(exc, (FileNotFoundError, NotADirectoryError)) else ""
        return passing_failure(item, f"cannot read {where}: {exc.strerror or exc}{gone}", self.pipeline.shown(item.paths[0]))

    def convert(self, item: WorkItem) -> ItemResult:
        out = ItemResult()
        source_file = ", ".join(self.pipeline.shown(p) for p in item.paths[:1]) + (f" (+{len(item.paths) - 1})" if len(item.paths) > 1 else "")
        for w in item.warnings:
            out.warnings.append(Problem(item.node_path, w, source_file))
        if item.reader is None:
            out.skipped.append(Problem(item.node_path, NO_READER, source_file))
            return out
        options = item.reader_options()
        try:
            if len(item.paths) > 1 or item.is_stack:  # (a stack of one frame keeps its axis: its rank the others')
                root = stack_arrays(item.reader, item.paths, item.key, options)
                self.write_tree(item, root, source_file, out)
            else:
                reader = item.reader()
                seen: dict[Path, FileRecord] = {}

                def look() -> None:  # the files it refers to, stat'ed once known: opened, before their arrays are read
                    seen.update({p: referred_record(p, self.pipeline.shown(p)) for p in reader.referred if p not in seen})

                try:
                    with reader.open(item.paths[0], item.key, options) as root:
                        look()
                        refused = referred_outside(self.pipeline, self.source_folder(item), reader.referred, source_file)
                        out.warnings += [Problem(item.node_path, w, source_file) for w in refused]  # (raised: refused, before a value is read)
                        self.write_tree(item, root, source_file, out)
                finally:  # also for a file skipped or failed for what it referred to (a part of a series)
                    look()
                    out.alone, out.referred = reader.read_alone(), [seen[p] for p in sorted(seen, key=str)]
        except UnsupportedError as exc:
            self._unwrite(out)  # (none of a tree cut short: nothing of the file published, rather than nodes missing their data)
            out.skipped.append(Problem(item.node_path, str(exc), source_file))
        except Exception as exc:
            if _the_builds(exc):
                raise
            log.debug("failure in %s", source_file, exc_info=True)
            self._unwrite(out)  # (a group's metadata, written last, not written: its entry would block the release)
            _failed(out, Problem(item.node_path, f"{type(exc).__name__}: {exc}", source_file), exc)
        return out

    def _unwrite(self, out: ItemResult) -> None:
        """An item that failed as a whole publishes none of its nodes: their entries dropped and
        their objects deleted (a file's Zarr group and the arrays already written were left in the
        release, where ``xarray.open_zarr`` of its data read a file that failed)."""
        discard(self.store, [e.data_url for e in out.entries if e.data_url])
        out.entries.clear()
        out.documents.clear()

    def write_tree(self, item: WorkItem, root: Node, source_file: str, out: ItemResult) -> None:
        root.metadata.update(item.metadata)
        if (why := unnamable(item.node_path.rpartition("/")[2])) is not None:  # (a file's name: it failed as "File name too long")
            raise UnsupportedError(f"{item.node_path.rpartition('/')[2][:100]!r} cannot name a node: {why}")
        above = any(r.skip for r in folder_rules(self.pipeline.rules, item.node_path))
        kept = None if above else apply_rules(root, item.node_path, self.pipeline.rules)
        if kept is None:
            out.skipped.append(Problem(item.node_path, "skipped by a rule", source_file))
            return
        self.write_island(self.island(item.node_path), kept, item.node_path, source_file, out)

    def write_island(self, island: _Island, node: Node, path: str, source_file: str, out: ItemResult) -> bool:
        """Write a subtree whose top starts an island, then consolidate the island's groups."""
        if island.access_class is not None:
            base = f"{data_root(self.prefix, island.access_class)}/data/{path}"
            out.private_prefixes += [f"{base}.zarr", f"{base}.parquet", base]
        written = self.write_node(node, path, island, "", source_file, out)
        if island.groups:
            island.zarr.consolidate_tree(island.groups[0], island.groups, out.documents)
        return written

    def write_node(self, node: Node, path: str, island: _Island, inner: str, source_file: str, out: ItemResult) -> bool:
        """Write one node (and its subtree); return False when it was skipped or failed. A child of
        another access class than its island starts an island of its own."""
        for message in node.notes.pop("warnings", []):
            out.warnings.append(Problem(path, message, source_file))
        if isinstance(node, SkippedNode):
            out.skipped.append(Problem(path, node.reason, source_file))
            return False
        if isinstance(node, LinkNode):
            return False
        zarr_path = f"{island.file_zarr}/{inner}" if inner else island.file_zarr
        if self.access.tagged and (refused := self._across_classes(node, path)):
            out.skipped.append(Problem(path, refused, source_file))
            return False
        try:
            if isinstance(node, ContainerNode):
                # each child's access class, asked once (its own island when not this one's)
                classes = {c.key: self.access.access_class(f"{path}/{c.key}") for c in node.children} if self.access.tagged else {}
                if hidden := {key for key, access_class in classes.items() if access_class != island.access_class}:
                    # a private child's value copied into its public parent, or its name in the parent's NeXus attributes
                    node.metadata = _without(node.metadata, hidden, node.copied)
                    if isinstance(node.metadata.get("attrs"), dict):  # (an xarray dataset's Zarr attributes, copied from them)
                        node.metadata["attrs"] = _without(node.metadata["attrs"], hidden, node.copied)
                    if node.attrs is not None:
                        node.attrs = _without(node.attrs, hidden, node.copied)
                    for child in node.children:  # (xarray dimensions named after a private axis: dim_N, as an axis NeXus leaves unnamed)
                        if isinstance(child, ArrayNode) and child.key not in hidden and child.dims and set(child.dims) & hidden:
                            child.dims = [f"dim_{i}" if d in hidden else d for i, d in enumerate(child.dims)]
                island.zarr.group(zarr_path, node.attrs if node.attrs is not None else node.metadata, out.documents)
                island.groups.append(zarr_path)
                entry = self.entry(node, path, source_file, f"{island.zarr.prefix}/{zarr_path}", ContainerStructure(0))
                out.entries.append(entry)
                count = 0
                siblings = {c.key for c in node.children}
                for child in node.children:
                    if isinstance(child, ArrayNode) and pyramid.crowded(child.key, siblings):  # (whatever the order they come in)
                        child.pyramid = False
                    child_path, child_inner = f"{path}/{child.key}", f"{inner}/{child.key}" if inner else child.key
                    if (why := unnamable(child.key)) is not None:
                        out.skipped.append(Problem(child_path, f"{child.key[:100]!r} cannot name a node: {why}", source_file))
                        continue
                    if child.key in hidden:
                        done = self.write_island(self.island(child_path), child, child_path, source_file, out)
                    else:
                        done = self.write_node(child, child_path, island, child_inner, source_file, out)
                    if done:
                        count += 1
                    elif isinstance(child, SkippedNode):
                        node.notes.setdefault("skipped", {})[child.key] = {"reason": child.reason, **child.notes}
                    elif isinstance(child, LinkNode):
                        node.notes.setdefault("links", {})[child.key] = child.target_path
                entry.structure = ContainerStructure(count)
                entry.notes = self.unrooted(node.notes)
                return True
            writer = island.writers.get(node.family.value)
            if writer is not None:
                written = writer.write(node, path, zarr_path, out.documents)
                out.entries.append(self.entry(node, path, source_file, written.data_url, written.structure))
                out.bytes_in += written.bytes_in
                return True
        except UnsupportedError as exc:
            out.skipped.append(Problem(path, str(exc), source_file))
            return False
        except Exception as exc:
            if _the_builds(exc):
                raise
            log.debug("failure at %s", path, exc_info=True)
            _failed(out, Problem(path, f"{type(exc).__name__}: {exc}", source_file), exc)
            return False
        raise TypeError(f"unknown node type {type(node).__name__}")

    def _across_classes(self, node: Node, path: str) -> str | None:
        """Why a hard-linked object is not published: its other paths in the file (its aliases)
        are of another access class than this one (published here, its data was readable at a
        public path while its private path answered 404)."""
        aliases = node.notes.get("aliases") or []
        inner = (node.source_path or "").strip("/")
        if not aliases or not inner or not path.endswith(inner):
            return None
        top = path[: -len(inner)].rstrip("/")
        mine = self.access.access_class(path)
        other = next((a for a in aliases if self.access.access_class(f"{top}/{a.strip('/')}" if top else a.strip("/")) != mine), None)
        if other is None:
            return None
        return (f"hard-linked in its file at {other} too, whose access rules differ from this path's: published at neither; "
                "give both paths the same access tags")

    def entry(self, node: Node, path: str, source_file: str, data_url: str | None, structure: Any) -> Entry:
        return Entry(path, node.key, node.family.value, list(node.specs), dict(node.metadata), structure, data_url,
                     source_file, node.source_path, node.access_tags, self.unrooted(node.notes))

    def unrooted(self, notes: dict[str, Any]) -> dict[str, Any]:
        """Notes as published: the build host's paths below pipeline.yml's folder made relative, as
        in problems (a virtual dataset's missing source is noted by its file's name, which h5py
        gives absolute)."""
        if not notes:
            return notes
        text = json.dumps(notes, ensure_ascii=False)
        unrooted = self.pipeline.unrooted(text)
        return notes if unrooted == text else json.loads(unrooted)  # type: ignore[no-any-return]


def _without(mapping: dict[str, Any], hidden: set[str], copied: set[str]) -> dict[str, Any]:
    """A group's attributes without what they copy of or say about its ``hidden`` children."""
    return unnamed({k: v for k, v in mapping.items() if k not in hidden & copied}, hidden)


def _the_builds(exc: BaseException) -> bool:
    """An error of the build's, not the item's: a worker refused, no room, the store failing or
    refusing writes (left out, the item would be missing from a release whose last one had it);
    the cluster's (a big array's slab tasks whose workers died: Dask's KilledWorker was the node's
    failure, and the release was published without it; the item's task now fails as its worker
    dying, and runs again alone); but a key too long for the store is the item's (a name its file holds)."""
    return (isinstance(exc, WorkerRefused | NoRoom) or (isinstance(exc, StoreError) and not refused_name(exc))
            or type(exc).__module__.split(".")[0] == "distributed"
            or store_trouble(exc) is not None)  # (a store unreachable or without credentials, whichever library said it)
