"""Before a build switches ``catalog.json``: is every object its index and manifest reference there?

Something may have deleted objects while the build wrote them (``publish gc`` with a stale view,
a lifecycle rule, a person); switching to such a release would publish nodes that answer 404 or
read as fill values. One listing per referenced release: chunk keys are counted per array, other
keys are kept, so memory grows with the number of nodes, not of chunks.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator

from ..errors import StoreError
from ..formats import CatalogDocument, release_root
from ..index.layout import children_page_key, search_prefix
from ..index.table import NodeView
from ..scratch import Scratch
from ..sparse_layout import block_keys
from ..stores import Store
from ..structures import ArrayStructure, SparseStructure, TableStructure, structure_from_json

_V2_CHUNK = re.compile(r"^\d+(\.\d+)*$")


def _listing(store: Store, prefix: str) -> Iterator[str]:
    """Every key under ``prefix`` (relative to the store root), read fresh from the store."""
    root = store.path(prefix)
    if store.is_local:
        root = root.rstrip(os.sep) or root
        base = os.path.relpath(root, store.root).replace(os.sep, "/")
        for folder, _, files in os.walk(root):  # each folder is root + its path below (cheaper than relpath each)
            rel = base + folder[len(root):].replace(os.sep, "/")
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
    """The keys of the listed releases, in a SQLite file (a million nodes list millions of keys):
    chunks counted per array, the rest kept."""

    def __init__(self, store: Store, roots: Iterable[str], zarr_format: int) -> None:
        self.scratch = Scratch("check")
        db = self.db = self.scratch.db
        db.executescript("CREATE TABLE keys(key TEXT PRIMARY KEY) WITHOUT ROWID;"
                         "CREATE TABLE chunks(owner TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;")
        db.execute("BEGIN")
        chunks: Counter[str] = Counter()
        keys: list[tuple[str]] = []
        for root in roots:
            for key in _listing(store, root):
                owner = _chunk_owner(key, zarr_format)
                if owner is not None:
                    chunks[owner] += 1
                else:
                    keys.append((key,))
                if len(keys) >= 10_000 or len(chunks) >= 10_000:
                    self._save(keys, chunks)
        self._save(keys, chunks)
        db.execute("COMMIT")

    def _save(self, keys: list[tuple[str]], chunks: Counter[str]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO keys VALUES (?)", keys)
        self.db.executemany("INSERT INTO chunks VALUES (?, ?) ON CONFLICT(owner) DO UPDATE SET n=n+excluded.n", chunks.items())
        keys.clear()
        chunks.clear()

    def close(self) -> None:
        self.scratch.close()

    def __contains__(self, key: str) -> bool:
        return self.db.execute("SELECT 1 FROM keys WHERE key=?", (key,)).fetchone() is not None

    def chunk_count(self, owner: str) -> int:
        found = self.db.execute("SELECT n FROM chunks WHERE owner=?", (owner,)).fetchone()
        return found[0] if found else 0

    def has_prefix(self, prefix: str) -> bool:
        """Whether some (non-chunk) key is below ``prefix/`` (``0`` sorts right after ``/``)."""
        return self.db.execute("SELECT 1 FROM keys WHERE key > ? AND key < ? LIMIT 1", (prefix + "/", prefix + "0")).fetchone() is not None


def _expected_chunks(structure: ArrayStructure) -> int:
    if any(n == 0 for n in structure.shape):
        return 0
    return math.prod(len(c) for c in structure.chunks)


def _entry_problems(family: str, url: str | None, structure_json: str | None, keys: _Keys, zarr_format: int) -> Iterator[str]:
    """What one node (its family, data URL and structure's JSON) references that ``keys`` lack."""
    if not url:
        return
    if family in ("array", "container"):
        doc = f"{url}/zarr.json" if zarr_format == 3 else f"{url}/{'.zarray' if family == 'array' else '.zgroup'}"
        if doc not in keys:
            if url not in keys:  # a URL naming one object (not Zarr) is whole when it is there
                yield doc
            return
        if family == "array":
            expected, found = _expected_chunks(structure_from_json(family, json.loads(structure_json or "{}"))), keys.chunk_count(url)
            if found < expected:
                yield f"{url}: {expected - found} of {expected} chunks"
        return
    structure = structure_from_json(family, json.loads(structure_json or "{}"))
    if isinstance(structure, TableStructure) and not url.endswith(".parquet"):
        yield from (k for k in (f"{url}/part-{i:05d}.parquet" for i in range(structure.npartitions)) if k not in keys)
    elif isinstance(structure, SparseStructure):  # one Parquet file per block, empty ones too
        yield from (k for k in block_keys(url, structure.chunks) if k not in keys)
    elif url not in keys and not keys.has_prefix(url):
        yield url


def missing_objects(store: Store, catalog: CatalogDocument, view: NodeView, own_keys: Iterable[str], min_children: int) -> list[str]:
    """What the new release (``catalog``, not yet switched to, its rows ``view``) references but
    the store lacks (empty when the release is complete)."""
    zarr_format = catalog.zarr_format
    own_keys = list(own_keys)
    roots = {release_root(k) for k in [catalog.index_key, *own_keys]}
    roots |= {release_root(url) for url in view.data_urls()}
    keys = _Keys(store, sorted(r for r in roots if r), zarr_format)
    try:
        missing = [k for k in own_keys if k not in keys]
        prefix = catalog.index_key.rpartition("/")[0]
        digits = catalog.index_json["shard_digits"]
        missing += [k for k in (f"{prefix}/nodes/{name}.json" for name in view.shard_names(digits)) if k not in keys]
        for parent, count in view.parents():
            if count >= min_children:
                if not keys.has_prefix(search_prefix(prefix, parent)):
                    missing.append(search_prefix(prefix, parent) + "/")
            elif children_page_key(prefix, parent, 0) not in keys:
                missing.append(children_page_key(prefix, parent, 0))
        for family, url, structure in view.briefly():
            missing += _entry_problems(family, url, structure, keys, zarr_format)
        return missing
    finally:
        keys.close()


class IncompleteRelease(StoreError):
    """A build's release lacks objects it references, so the build did not switch to it."""

    def __init__(self, release: str, store: str, missing: list[str], previous: str | None) -> None:
        shown = "; ".join(missing[:5]) + (f"; and {len(missing) - 5} more" if len(missing) > 5 else "")
        super().__init__(f"release {release} is incomplete, so it was not published: objects it references are missing "
                         f"from {store} ({shown}). Were they deleted while the build ran? catalog.json still points at "
                         f"{previous or 'nothing (no release was published before)'}; build again.")
        self.missing = missing
