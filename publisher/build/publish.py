"""Step three of a build, publishing: the release's node tree, its index, report and manifest,
the check that the store holds everything they reference, and the switch of ``catalog.json``
to the release in one final (atomic) write.

A catalog with access rules publishes two views of the release: the full one (every node, the
manifest and report) under ``private/``, which the handlers read, and the public one (the nodes
anyone may read, their containers counting only those) at the usual keys, for direct readers.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, CancelledError, Future
from datetime import UTC, datetime
from typing import Any

from .. import browse
from ..auth.principal import ANONYMOUS, chain_id
from ..auth.tags import AccessRules
from ..auth.view import CHILD_ACCESS, tag_key
from ..config.models import Pipeline
from ..errors import NotFound
from ..formats import BUILD_REPORT, CATALOG_KEY, MANIFEST, BuildReport, CatalogDocument, Entry
from ..index.layout import INDEX_COLUMNS
from ..index.table import NodeTable, NodeView
from ..index.write import write_index
from ..releases import InProgress, switch
from ..rules import matching
from ..stores import Store
from ..structures import ContainerStructure
from .check import IncompleteRelease, Keys, missing_objects
from .manifests import RecordSpill

log = logging.getLogger("skyshelf.build")

#: :func:`.check.check_data` elsewhere (check table's path, node table's path, the data roots written).
Early = Callable[[str, str, list[str]], "Future[tuple[dict[str, int], list[str]]]"]


class Tree:
    """The release's nodes, added in item order, kept in a node table on disk (:mod:`..index.table`:
    a million nodes are a file, not gigabytes of objects): entries by path, each container's
    children, the folders above each item (containers with no data of their own), and in a tagged
    catalog each node's tag set, whether anyone may read it, and the access classes met."""

    def __init__(self, pipeline: Pipeline, report: BuildReport, access: AccessRules | None = None, folder: str | None = None) -> None:
        self.pipeline, self.report = pipeline, report
        self.access = access or AccessRules([])
        self.table = NodeTable(folder, lambda i: pipeline.line_of("sources", i))  # (a clash names its sources' lines)
        #: Each private access class met, with the chain of tag sets a reader needs.
        self.classes: dict[str, list[list[str]]] = {}
        self.private = False  # some node is not for everyone
        self._last_parent: str | None = None  # the folder last made sure of

    def close(self) -> None:
        self.table.close()

    def ensure_folders(self, node_path: str, source: int | None = None) -> None:
        """The folders above ``node_path`` (made for the pipeline's source number ``source``)."""
        parent = node_path.rpartition("/")[0]
        if parent == self._last_parent:  # (items come folder by folder; a folder, once added, stays)
            return
        self._last_parent = parent
        parts = node_path.split("/")[:-1]
        for depth in range(len(parts) + 1):
            path = "/".join(parts[:depth])
            if not self.table.has(path):
                metadata = dict(self.pipeline.metadata) if path == "" else {}
                if path == "":
                    metadata.update({k: v for k, v in (("name", self.pipeline.name), ("description", self.pipeline.description)) if v})
                for rule in matching(self.pipeline.rules, path) if path else ():  # (a folder's rules, as a group's: ignored)
                    metadata.update(rule.metadata)
                self.add(Entry(path, parts[depth - 1] if depth else "", "container", [], metadata, ContainerStructure(0), None, None, None), source)

    def add(self, entry: Entry, source: int | None = None) -> None:
        self.add_row(entry.to_json(), source)

    def add_row(self, row: dict[str, Any], source: int | None = None) -> None:
        """One node's index row (:meth:`Entry.to_json`, as an item's record holds it: a million
        reused records are not turned into entries and back), made by the pipeline's source number
        ``source`` (None: not known, a previous release's record)."""
        if tuple(row) != INDEX_COLUMNS:  # (a row of another shape: as an entry makes it)
            row = Entry.from_json(row).to_json()
        tags, shown = None, True
        if self.access.tagged:  # the effective tags (inherited), whatever the item's rules said
            row = {**row, "access_tags": self.access.tags(row["path"])}
            chain = self.access.chain(row["path"])
            shown = ANONYMOUS.can_read_chain(chain)
            self.private |= not shown
            name = chain_id(chain)
            if name is not None and name not in self.classes:
                self.classes[name] = [sorted(set(t)) for t in chain]
            tags = tag_key(row["access_tags"])
        self.table.add(row, folder=row["family"] == "container" and row["data_url"] is None, tags=tags, shown=shown, source=source)
        self.report.nodes[row["family"]] += 1

    def count_folders(self) -> None:
        """Count every container's children (folders publish the count; a tagged catalog's
        containers also count them by tag set)."""
        self.table.finish(by_tags=self.access.tagged)

    def ordered(self) -> NodeView:
        """Every node, depth first, children in the order added: the index's order."""
        return self.table.view(False, self._full)

    def _full(self, row: dict[str, Any], folder: bool, count: int, by_tags: dict[str, int] | None) -> dict[str, Any]:
        if folder:
            row["structure"] = ContainerStructure(count).to_json()
        if self.access.tagged:  # how many children each tag set has: a caller's count, without listing
            row["notes"] = {**row["notes"], CHILD_ACCESS: by_tags or {}}
        return row

    def public(self) -> NodeView:
        """The view anyone may read: nodes readable along their whole path, containers counting
        only those children, links only to those targets."""
        return self.table.view(True, self._public)

    def _public(self, row: dict[str, Any], folder: bool, count: int, by_tags: dict[str, int] | None) -> dict[str, Any]:
        row["structure"] = ContainerStructure(count).to_json()
        links = row["notes"].get("links")
        if links:  # targets are paths in the source file: kept when their node is shown
            top = _file_top(Entry.from_json(row))
            row["notes"] = {**row["notes"], "links": {k: t for k, t in links.items() if top is not None and self.table.is_shown(_join(top, t))}}
        return row

    def has_private(self) -> bool:
        """Whether some node is not for everyone (then the release is published in two views)."""
        return self.private


def _file_top(entry: Entry) -> str | None:
    """The catalog path of the file an entry was read from (its path less its path in the file)."""
    inner = (entry.source_path or "").strip("/")
    if not inner:
        return entry.path if entry.source_file else None
    return entry.path[: -len(inner)].rstrip("/") if entry.path.endswith(inner) else None


def _join(top: str, inner: str) -> str:
    inner = inner.strip("/")
    return f"{top}/{inner}" if top and inner else top or inner


def discard(store: Store, prefix: str, in_progress: InProgress, others: list[str] | tuple[str, ...] = ()) -> None:
    """Delete a release that will not be published (and stop marking it in progress), with its
    private index and the private data roots (``others``) it wrote."""
    in_progress.stop(remove=False)
    store.delete_prefix(prefix)
    for root in {f"private/{prefix}", *others} - {prefix}:
        if _size(store, root):
            store.delete_prefix(root)


def _size(store: Store, prefix: str) -> int:
    try:
        return store.size(prefix)
    except (FileNotFoundError, NotFound):
        return 0


def publish(store: Store, pipeline: Pipeline, tree: Tree, records: RecordSpill, release: str, catalog_settings: str, report: BuildReport,
            in_progress: InProgress, previous: str | None, started: float, min_children: int, roots: list[str] | tuple[str, ...] = (),
            confirm: Callable[[], None] = lambda: None, early: Early | None = None) -> CatalogDocument:
    """Write the index (search columns for containers of at least ``min_children`` children),
    report, manifest (``records``) and the release's entry point, check the release is whole, then
    switch ``catalog.json`` to it (``started``: the build's start, for the report; ``confirm``
    raises unless the store's lock is still the build's, called right before the switch).
    ``early``: lists and checks the release's data elsewhere (an idle worker process) while this
    one writes the index (1,000 small files: ~0.1 s of 1.2 s)."""
    prefix = f"releases/{release}"
    tagged = tree.has_private()
    own_prefix = f"private/{prefix}" if tagged else prefix  # the full index, report and manifest
    if not in_progress.started:  # every item reused (some were removed): still marked while written
        in_progress.start()
    keys = Keys(pipeline.output.zarr_format)
    try:
        written = sorted({prefix, *roots})
        entries = tree.ordered()  # (the node table final, for a worker to read)
        listing = early(keys.path, tree.table.path, written) if early is not None else None
        index = write_index(store, f"{own_prefix}/index", entries, min_children)
        report.published = True
        checked = _listed(listing, keys) if listing is not None else None
        data = [f"{root}/data" for root in written]
        report.bytes_out = sum(checked[0][d] for d in data) if checked else sum(_size(store, d) for d in data)
        report.bytes_out += _size(store, f"{own_prefix}/index")
        report.seconds = time.perf_counter() - started
        store.write_bytes(f"{own_prefix}/{BUILD_REPORT}", json.dumps(_published(report, pipeline, store), indent=1).encode())
        records.write_to(store, f"{own_prefix}/{MANIFEST}", release, catalog_settings)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        catalog = CatalogDocument(release, index, created, pipeline.name, pipeline.output.zarr_format, f"{own_prefix}/{BUILD_REPORT}",
                                  f"{own_prefix}/{MANIFEST}", access=_access(pipeline, tree, tagged) if tree.access.tagged else None)
        views = [(catalog, entries, own_prefix)]
        if tagged:
            shown = tree.public()
            public = CatalogDocument(release, write_index(store, f"{prefix}/index", shown, min_children),
                                     created, pipeline.name, pipeline.output.zarr_format)
            views.append((public, shown, prefix))
        page = browse.publish(store, release)  # the browse page this release is served with (public)
        store.flush()
        missing = list(checked[1]) if checked else []
        for view, listed, at in views:
            own = [view.index_key, *(k for k in (view.report, view.manifest) if k), *(page if at == prefix else ())]
            missing += missing_objects(store, view, listed, own, min_children, keys, data_checked=checked is not None)
    except BaseException:
        report.published = False  # (not switched: an unpublished build's journal is kept for the next)
        raise
    finally:
        keys.close()
    if missing:  # refuse to switch to a release that lacks objects it references; the catalog stays
        discard(store, prefix, in_progress, roots)
        raise IncompleteRelease(release, store.url, missing, previous)
    # Only now the release's own entry point (what makes `publish releases` list it complete and
    # `rollback` accept it): a build killed before here, in the durable flush or the check, leaves
    # an unfinished release, never one listed as complete that nothing checked. Each is durable
    # on its own (atomic: written in full, synced, renamed), so no second flush of the store.
    try:
        confirm()  # (raising leaves the release unfinished: its journal lets the next build resume it)
    except Exception:
        report.published = False  # (so the journal's last records are flushed, not dropped)
        raise
    for view, _, at in views:
        store.write_bytes(f"{at}/{CATALOG_KEY}", json.dumps(view.to_json(), indent=1).encode(), atomic=True)
    switch(store, views[-1][0].to_json(), catalog.to_json() if tagged else None)  # the switch, last
    return catalog


def _listed(listing: Future[tuple[dict[str, int], list[str]]], keys: Keys) -> tuple[dict[str, int], list[str]] | None:
    """The early check's bytes per prefix listed and missing data, its prefixes marked listed;
    None when it could not be made (its worker process gone, maybe midway): the check then starts
    afresh here. What the check itself raised (the store's errors) is the build's."""
    try:
        sizes, missing = listing.result()
    except (BrokenExecutor, CancelledError, sqlite3.OperationalError) as exc:  # (SQLite: its files as a worker cannot read them)
        log.warning("the check of the release on a worker process was not made (%s): the build's process checks it itself", exc)
        keys.clear()
        return None
    keys.listed.update(sizes)
    return sizes, missing


def _published(report: BuildReport, pipeline: Pipeline, store: Store) -> dict[str, Any]:
    """The report as the release publishes it: no absolute path of the build host (a local store
    and the sources relative to pipeline.yml's folder, also inside messages)."""
    doc = report.to_json()
    if store.is_local:
        doc["store"] = pipeline.shown(store.url)
    for kind in ("warnings", "skipped", "failures"):
        doc[kind] = [{k: pipeline.unrooted(v) if isinstance(v, str) else v for k, v in problem.items()} for problem in doc[kind]]
    return doc


def _access(pipeline: Pipeline, tree: Tree, private: bool) -> dict[str, object]:
    """The private catalog's ``access`` section: what the handlers need to decide who reads what,
    and each access class (its private prefix ``private/<class>/``) with the chain of tag sets a
    reader needs (the credentials endpoint grants exactly the prefixes a caller's tags reach)."""
    return {"default": "public" if tree.access.default else "private", "private_nodes": private,
            "classes": dict(sorted(tree.classes.items())), **pipeline.access.published()}
