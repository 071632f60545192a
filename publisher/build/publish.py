"""Step three of a build, publishing: the release's node tree, its index, report and manifest,
the check that the store holds everything they reference, and the switch of ``catalog.json``
to the release in one final (atomic) write.

A catalog with access rules publishes two views of the release: the full one (every node, the
manifest and report) under ``private/``, which the handlers read, and the public one (the nodes
anyone may read, their containers counting only those) at the usual keys, for direct readers.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from .. import browse
from ..auth.principal import ANONYMOUS, chain_id
from ..auth.tags import AccessRules
from ..auth.view import CHILD_ACCESS, tag_key
from ..config.models import Pipeline
from ..formats import BUILD_REPORT, CATALOG_KEY, MANIFEST, BuildReport, CatalogDocument, Entry, Manifest
from ..errors import NotFound
from ..index.write import write_index
from ..releases import InProgress, switch
from ..stores import Store
from ..structures import ContainerStructure
from .check import IncompleteRelease, missing_objects


class Tree:
    """The release's nodes, added in item order: entries by path, each container's children, and
    the folders above each item (containers with no data of their own)."""

    def __init__(self, pipeline: Pipeline, report: BuildReport, access: AccessRules | None = None) -> None:
        self.pipeline, self.report = pipeline, report
        self.access = access or AccessRules([])
        self.entries: dict[str, Entry] = {}
        self.children: dict[str, list[str]] = {}

    def ensure_folders(self, node_path: str) -> None:
        parts = node_path.split("/")[:-1]
        for depth in range(len(parts) + 1):
            path = "/".join(parts[:depth])
            if path not in self.entries:
                metadata = dict(self.pipeline.metadata) if path == "" else {}
                if path == "":
                    metadata.update({k: v for k, v in (("name", self.pipeline.name), ("description", self.pipeline.description)) if v})
                self.add(Entry(path, parts[depth - 1] if depth else "", "container", [], metadata, ContainerStructure(0), None, None, None))

    def add(self, entry: Entry) -> None:
        if self.access.tagged:  # the effective tags (inherited), whatever the item's rules said
            entry.access_tags = self.access.tags(entry.path)
        self.entries[entry.path] = entry
        if entry.family == "container":
            self.children.setdefault(entry.path, [])
        if entry.parent is not None:
            self.children.setdefault(entry.parent, []).append(entry.path)
        self.report.nodes[entry.family] += 1

    def count_folders(self) -> None:
        """Folder containers count their published children."""
        for path, kids in self.children.items():
            entry = self.entries[path]
            if entry.data_url is None:
                entry.structure = ContainerStructure(len(kids))

    def ordered(self) -> list[Entry]:
        """Depth first, children in the order they were added: the index's order."""
        out: list[Entry] = []

        def visit(path: str) -> None:
            out.append(self.entries[path])
            for child in self.children.get(path, []):
                visit(child)

        visit("")
        if self.access.tagged:  # how many children each tag set has: a caller's count, without listing
            for path, kids in self.children.items():
                counts: dict[str, int] = {}
                for kid in kids:
                    key = tag_key(self.entries[kid].access_tags)
                    counts[key] = counts.get(key, 0) + 1
                self.entries[path].notes = {**self.entries[path].notes, CHILD_ACCESS: counts}
        return out

    def public(self, entries: list[Entry]) -> list[Entry]:
        """The view anyone may read: nodes readable along their whole path, copied, containers
        counting only those children, links only to those targets."""
        shown = [Entry.from_json(e.to_json()) for e in entries if ANONYMOUS.can_read_chain(self.access.chain(e.path))]
        paths = {e.path for e in shown}
        counts: dict[str, int] = {}
        for e in shown:
            if e.parent is not None:
                counts[e.parent] = counts.get(e.parent, 0) + 1
        for e in shown:
            if e.family == "container":
                e.structure = ContainerStructure(counts.get(e.path, 0))
                e.notes = {k: v for k, v in e.notes.items() if k != CHILD_ACCESS}
                links = e.notes.get("links")
                if links:  # targets are paths in the source file: kept when their node is shown
                    top = _file_top(e)
                    e.notes = {**e.notes, "links": {k: t for k, t in links.items() if top is not None and _join(top, t) in paths}}
        return shown

    def has_private(self) -> bool:
        """Whether some node is not for everyone (then the release is published in two views)."""
        return self.access.tagged and any(not ANONYMOUS.can_read_chain(self.access.chain(p)) for p in self.entries)


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


def publish(store: Store, pipeline: Pipeline, tree: Tree, manifest: Manifest, report: BuildReport, in_progress: InProgress,
            previous: str | None, started: float, min_children: int, roots: list[str] | tuple[str, ...] = ()) -> CatalogDocument:
    """Write the index (search columns for containers of at least ``min_children`` children),
    report, manifest and the release's entry point, check the release is whole, then switch
    ``catalog.json`` to it (``started``: the build's start, for the report)."""
    release = manifest.release
    prefix = f"releases/{release}"
    tagged = tree.has_private()
    own_prefix = f"private/{prefix}" if tagged else prefix  # the full index, report and manifest
    if not in_progress.started:  # every item reused (some were removed): still marked while written
        in_progress.start()
    entries = tree.ordered()
    index = write_index(store, f"{own_prefix}/index", entries, min_children)  # type: ignore[arg-type]
    report.published = True
    report.bytes_out = sum(_size(store, root) for root in {prefix, own_prefix, *roots})
    report.seconds = time.perf_counter() - started
    store.write_bytes(f"{own_prefix}/{BUILD_REPORT}", json.dumps(report.to_json(), indent=1).encode())
    store.write_bytes(f"{own_prefix}/{MANIFEST}", json.dumps(manifest.to_json(), separators=(",", ":")).encode())
    created = datetime.now(UTC).isoformat(timespec="seconds")
    catalog = CatalogDocument(release, index, created, pipeline.name, pipeline.output.zarr_format, f"{own_prefix}/{BUILD_REPORT}",
                              f"{own_prefix}/{MANIFEST}", access=_access(pipeline, tree, tagged) if tree.access.tagged else None)
    views = [(catalog, entries, own_prefix)]
    if tagged:
        shown = tree.public(entries)
        public = CatalogDocument(release, write_index(store, f"{prefix}/index", shown, min_children),  # type: ignore[arg-type]
                                 created, pipeline.name, pipeline.output.zarr_format)
        views.append((public, shown, prefix))
    for view, _, at in views:
        store.write_bytes(f"{at}/{CATALOG_KEY}", json.dumps(view.to_json(), indent=1).encode())  # for rollback
    page = browse.publish(store, release)  # the browse page this release is served with (public)
    store.flush()
    missing = []
    for view, listed, at in views:
        own = [view.index_key, *(k for k in (view.report, view.manifest) if k), f"{at}/{CATALOG_KEY}", *(page if at == prefix else ())]
        missing += missing_objects(store, view, listed, own, min_children)
    if missing:  # refuse to switch to a release that lacks objects it references; the catalog stays
        discard(store, prefix, in_progress, roots)
        raise IncompleteRelease(release, store.url, missing, previous)
    switch(store, views[-1][0].to_json(), catalog.to_json() if tagged else None)  # the switch, last
    return catalog


def _access(pipeline: Pipeline, tree: Tree, private: bool) -> dict[str, object]:
    """The private catalog's ``access`` section: what the handlers need to decide who reads what,
    and each access class (its private prefix ``private/<class>/``) with the chain of tag sets a
    reader needs (the credentials endpoint grants exactly the prefixes a caller's tags reach)."""
    access = tree.access
    classes: dict[str, list[list[str]]] = {}
    for path in tree.entries:
        chain = access.chain(path)
        name = chain_id(chain)
        if name is not None:
            classes.setdefault(name, [sorted(set(tags)) for tags in chain])
    return {"default": "public" if access.default else "private", "private_nodes": private,
            "classes": dict(sorted(classes.items())), **pipeline.access.published()}
