"""Step three of a build, publishing: the release's node tree, its index, report and manifest,
the check that the store holds everything they reference, and the switch of ``catalog.json``
to the release in one final (atomic) write."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from ..config.models import Pipeline
from ..formats import BUILD_REPORT, CATALOG_KEY, MANIFEST, BuildReport, CatalogDocument, Entry, Manifest
from ..index.write import write_index
from ..releases import InProgress
from ..stores import Store
from ..structures import ContainerStructure
from .check import IncompleteRelease, missing_objects


class Tree:
    """The release's nodes, added in item order: entries by path, each container's children, and
    the folders above each item (containers with no data of their own)."""

    def __init__(self, pipeline: Pipeline, report: BuildReport) -> None:
        self.pipeline, self.report = pipeline, report
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
        return out


def discard(store: Store, prefix: str, in_progress: InProgress) -> None:
    """Delete a release that will not be published (and stop marking it in progress)."""
    in_progress.stop(remove=False)
    store.delete_prefix(prefix)


def publish(store: Store, pipeline: Pipeline, tree: Tree, manifest: Manifest, report: BuildReport, in_progress: InProgress,
            previous: str | None, started: float, min_children: int) -> CatalogDocument:
    """Write the index (search columns for containers of at least ``min_children`` children),
    report, manifest and the release's entry point, check the release is whole, then switch
    ``catalog.json`` to it (``started``: the build's start, for the report)."""
    release = manifest.release
    prefix = f"releases/{release}"
    if not in_progress.started:  # every item reused (some were removed): still marked while written
        in_progress.start()
    entries = tree.ordered()
    index = write_index(store, f"{prefix}/index", entries, min_children)  # type: ignore[arg-type]
    report.published = True
    report.bytes_out = store.size(prefix)
    report.seconds = time.perf_counter() - started
    store.write_bytes(f"{prefix}/{BUILD_REPORT}", json.dumps(report.to_json(), indent=1).encode())
    store.write_bytes(f"{prefix}/{MANIFEST}", json.dumps(manifest.to_json(), separators=(",", ":")).encode())
    catalog = CatalogDocument(release, index, datetime.now(UTC).isoformat(timespec="seconds"), pipeline.name,
                              pipeline.output.zarr_format, f"{prefix}/{BUILD_REPORT}", f"{prefix}/{MANIFEST}")
    document = json.dumps(catalog.to_json(), indent=1).encode()
    store.write_bytes(f"{prefix}/{CATALOG_KEY}", document)  # for rollback
    store.flush()
    own = [catalog.index_key, catalog.report, catalog.manifest, f"{prefix}/{CATALOG_KEY}"]
    missing = missing_objects(store, catalog, entries, own, min_children)
    if missing:  # refuse to switch to a release that lacks objects it references; the catalog stays
        discard(store, prefix, in_progress)
        raise IncompleteRelease(release, store.url, missing, previous)
    store.write_bytes(CATALOG_KEY, document, atomic=True)  # the switch, last
    return catalog
