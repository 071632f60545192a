"""Before a build switches ``catalog.json``: is every object its index and manifest reference there?

Something may have deleted objects while the build wrote them (``publish gc`` with a stale view,
a lifecycle rule, a person); switching to such a release would publish nodes that answer 404 or
read as fill values. One listing per referenced release: chunk keys are counted per array, other
keys are kept, so memory grows with the number of nodes, not of chunks.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator

from ..errors import StoreError
from ..formats import CatalogDocument, Entry, release_root
from ..index.layout import children_page_key, node_shard_key, search_prefix
from ..sparse_layout import block_keys
from ..stores import Store
from ..structures import ArrayStructure, SparseStructure, TableStructure

_V2_CHUNK = re.compile(r"^\d+(\.\d+)*$")


def _listing(store: Store, prefix: str) -> Iterator[str]:
    """Every key under ``prefix`` (relative to the store root), read fresh from the store."""
    root = store.path(prefix)
    if store.is_local:
        for folder, _, files in os.walk(root):
            rel = os.path.relpath(folder, store.root).replace(os.sep, "/")
            yield from (f"{rel}/{name}" for name in files)
        return
    base = store.root.split("://", 1)[1].strip("/") + "/"
    store.fs.invalidate_cache(root)
    for path in store.fs.find(root):
        path = path.lstrip("/")
        yield path[len(base):] if path.startswith(base) else path


def _chunk_owner(key: str, zarr_format: int) -> str | None:
    """The array a chunk key belongs to, or None when the key is not a chunk."""
    parts = key.split("/")
    if zarr_format == 2:
        return "/".join(parts[:-1]) if _V2_CHUNK.match(parts[-1]) else None
    end = len(parts)
    while end > 0 and parts[end - 1].isdigit():
        end -= 1
    return "/".join(parts[: end - 1]) if end > 1 and parts[end - 1] == "c" else None


class _Keys:
    """The keys of the listed releases: chunks counted per array, the rest kept."""

    def __init__(self, store: Store, roots: Iterable[str], zarr_format: int) -> None:
        self.chunks: Counter[str] = Counter()
        self.keys: set[str] = set()
        self.prefixes: set[str] = set()
        for root in roots:
            for key in _listing(store, root):
                owner = _chunk_owner(key, zarr_format)
                if owner is not None:
                    self.chunks[owner] += 1
                else:
                    self.keys.add(key)

    def has_prefix(self, prefix: str) -> bool:
        if not self.prefixes:
            self.prefixes = {k.rpartition("/")[0] for k in self.keys}
        return prefix in self.prefixes or any(p.startswith(prefix + "/") for p in self.prefixes)


def _expected_chunks(structure: ArrayStructure) -> int:
    if any(n == 0 for n in structure.shape):
        return 0
    return math.prod(len(c) for c in structure.chunks)


def _entry_problems(entry: Entry, keys: _Keys, zarr_format: int) -> Iterator[str]:
    url = entry.data_url
    if not url:
        return
    if entry.family in ("array", "container"):
        doc = f"{url}/zarr.json" if zarr_format == 3 else f"{url}/{'.zarray' if entry.family == 'array' else '.zgroup'}"
        if doc not in keys.keys:
            if url not in keys.keys:  # a URL naming one object (not Zarr) is whole when it is there
                yield doc
            return
        structure = entry.structure
        expected, found = _expected_chunks(structure) if isinstance(structure, ArrayStructure) else 0, keys.chunks.get(url, 0)
        if found < expected:
            yield f"{url}: {expected - found} of {expected} chunks"
    elif isinstance(entry.structure, TableStructure) and not url.endswith(".parquet"):
        yield from (k for k in (f"{url}/part-{i:05d}.parquet" for i in range(entry.structure.npartitions))
                    if k not in keys.keys)
    elif isinstance(entry.structure, SparseStructure):  # one Parquet file per block, empty ones too
        yield from (k for k in block_keys(url, entry.structure.chunks) if k not in keys.keys)
    elif url not in keys.keys and not keys.has_prefix(url):
        yield url


def missing_objects(store: Store, catalog: CatalogDocument, entries: list[Entry], own_keys: Iterable[str], min_children: int) -> list[str]:
    """What the new release (``catalog``, not yet switched to) references but the store lacks
    (empty when the release is complete)."""
    zarr_format = catalog.zarr_format
    own_keys = list(own_keys)
    roots = {release_root(k) for k in [catalog.index_key, *own_keys, *(e.data_url for e in entries if e.data_url)]}
    keys = _Keys(store, sorted(r for r in roots if r), zarr_format)
    missing = [k for k in own_keys if k not in keys.keys]
    prefix = catalog.index_key.rpartition("/")[0]
    digits = catalog.index_json["shard_digits"]
    missing += sorted({k for k in (node_shard_key(prefix, e.path, digits) for e in entries) if k not in keys.keys})
    children = Counter(e.parent for e in entries if e.parent is not None)
    for parent, count in children.items():
        if count >= min_children:
            if not keys.has_prefix(search_prefix(prefix, parent)):
                missing.append(search_prefix(prefix, parent) + "/")
        elif children_page_key(prefix, parent, 0) not in keys.keys:
            missing.append(children_page_key(prefix, parent, 0))
    for entry in entries:
        missing += _entry_problems(entry, keys, zarr_format)
    return missing


class IncompleteRelease(StoreError):
    """A build's release lacks objects it references, so the build did not switch to it."""

    def __init__(self, release: str, store: str, missing: list[str], previous: str | None) -> None:
        shown = "; ".join(missing[:5]) + (f"; and {len(missing) - 5} more" if len(missing) > 5 else "")
        super().__init__(f"release {release} is incomplete, so it was not published: objects it references are missing "
                         f"from {store} ({shown}). Were they deleted while the build ran? catalog.json still points at "
                         f"{previous or 'nothing (no release was published before)'}; build again.")
        self.missing = missing
