"""Step two of a build, conversion: read one item's sources into a node tree, apply the rules and
write its arrays as Zarr and its tables as Parquet, collecting its index entries and problems."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..config.models import Pipeline
from ..errors import UnsupportedError
from ..formats import Entry, ManifestItem, Problem
from ..nodes import ContainerNode, LinkNode, Node, SkippedNode
from ..rules import apply_rules
from ..sources import WorkItem
from ..stacks import stack_arrays
from ..stores import Store
from ..structures import ContainerStructure
from ..writers import WriteContext, writers_for
from ..writers.zarr_array import ZarrWriter
from .plan import Fingerprint

log = logging.getLogger("skyshelf.build")


@dataclass
class ItemResult:
    """What converting one item produced; filled on a worker thread, merged on the main one."""

    entries: list[Entry] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    failures: list[Problem] = field(default_factory=list)
    bytes_in: int = 0
    documents: dict[str, Any] = field(default_factory=dict)  # Zarr metadata, for consolidation


class Converter:
    """Writes items into ``prefix`` (``releases/<id>``) of the store, on a shared writer pool."""

    def __init__(self, pipeline: Pipeline, store: Store, prefix: str, workers: int) -> None:
        self.pipeline, self.store, self.prefix = pipeline, store, prefix
        # twice as many writer threads as cores: big chunks go to disk with O_DIRECT, which blocks
        # a thread while the device writes, and the other threads keep the cores compressing
        # (1 GiB uncompressed source: 1.28x -> 1.17x the floor); slabs in flight stay 2 per core
        self.pool = ThreadPoolExecutor(max_workers=2 * workers, thread_name_prefix="skyshelf-write")
        # one writer per structure family (publisher.writers); the array one also writes the groups
        self.writers = writers_for(WriteContext(store, prefix, pipeline.output, self.pool, slots=2 * workers))
        self.zarr: ZarrWriter = self.writers["array"]  # type: ignore[assignment]

    def url(self, key: str) -> str:
        return f"{self.prefix}/{key}"

    def record(self, item: WorkItem, fingerprint: Fingerprint, out: ItemResult) -> ManifestItem:
        """The manifest's record of a converted item: what the next build compares and reuses."""
        base = f"{self.prefix}/data/{item.node_path}"
        return ManifestItem(item.node_path, fingerprint.settings, fingerprint.metadata, fingerprint.records(),
                            [e.to_json() for e in out.entries], [f"{base}.zarr", f"{base}.parquet", base], out.warnings, out.skipped)

    def convert(self, item: WorkItem) -> ItemResult:
        out = ItemResult()
        source_file = ", ".join(str(p) for p in item.paths[:1]) + (f" (+{len(item.paths) - 1})" if len(item.paths) > 1 else "")
        for w in item.warnings:
            out.warnings.append(Problem(item.node_path, w, source_file))
        if item.reader is None:
            out.skipped.append(Problem(item.node_path, "no reader for this file type (unknown magic bytes and extension)", source_file))
            return out
        options = item.reader_options()
        try:
            if len(item.paths) > 1:
                root = stack_arrays(item.reader, item.paths, item.key, options)
                self.write_tree(item, root, source_file, out)
            else:
                with item.reader().open(item.paths[0], item.key, options) as root:
                    self.write_tree(item, root, source_file, out)
        except UnsupportedError as exc:
            out.skipped.append(Problem(item.node_path, str(exc), source_file))
        except Exception as exc:
            log.debug("failure in %s", source_file, exc_info=True)
            out.failures.append(Problem(item.node_path, f"{type(exc).__name__}: {exc}", source_file))
        return out

    def write_tree(self, item: WorkItem, root: Node, source_file: str, out: ItemResult) -> None:
        root.metadata.update(item.metadata)
        kept = apply_rules(root, item.node_path, self.pipeline.rules)
        if kept is None:
            out.skipped.append(Problem(item.node_path, "skipped by a rule", source_file))
            return
        file_zarr = f"data/{item.node_path}.zarr"
        groups: list[str] = []
        self.write_node(kept, item.node_path, file_zarr, "", source_file, groups, out)
        if groups:
            self.zarr.consolidate_tree(groups[0], groups, out.documents)

    def write_node(self, node: Node, path: str, file_zarr: str, inner: str, source_file: str, groups: list[str], out: ItemResult) -> bool:
        """Write one node (and its subtree); return False when it was skipped or failed."""
        for message in node.notes.pop("warnings", []):
            out.warnings.append(Problem(path, message, source_file))
        if isinstance(node, SkippedNode):
            out.skipped.append(Problem(path, node.reason, source_file))
            return False
        if isinstance(node, LinkNode):
            return False
        zarr_path = f"{file_zarr}/{inner}" if inner else file_zarr
        try:
            if isinstance(node, ContainerNode):
                self.zarr.group(zarr_path, node.attrs if node.attrs is not None else node.metadata, out.documents)
                groups.append(zarr_path)
                entry = self.entry(node, path, source_file, self.url(zarr_path), ContainerStructure(0))
                out.entries.append(entry)
                count = 0
                for child in node.children:
                    child_inner = f"{inner}/{child.key}" if inner else child.key
                    if self.write_node(child, f"{path}/{child.key}", file_zarr, child_inner, source_file, groups, out):
                        count += 1
                    elif isinstance(child, SkippedNode):
                        node.notes.setdefault("skipped", {})[child.key] = {"reason": child.reason, **child.notes}
                    elif isinstance(child, LinkNode):
                        node.notes.setdefault("links", {})[child.key] = child.target_path
                entry.structure = ContainerStructure(count)
                entry.notes = node.notes
                return True
            writer = self.writers.get(node.family.value)
            if writer is not None:
                written = writer.write(node, path, zarr_path, out.documents)
                out.entries.append(self.entry(node, path, source_file, written.data_url, written.structure))
                out.bytes_in += written.bytes_in
                return True
        except UnsupportedError as exc:
            out.skipped.append(Problem(path, str(exc), source_file))
            return False
        except Exception as exc:
            log.debug("failure at %s", path, exc_info=True)
            out.failures.append(Problem(path, f"{type(exc).__name__}: {exc}", source_file))
            return False
        raise TypeError(f"unknown node type {type(node).__name__}")

    @staticmethod
    def entry(node: Node, path: str, source_file: str, data_url: str | None, structure: Any) -> Entry:
        return Entry(path, node.key, node.family.value, list(node.specs), dict(node.metadata), structure, data_url,
                     source_file, node.source_path, node.access_tags, node.notes)
