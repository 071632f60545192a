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
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator

from ..errors import StoreError
from ..formats import CatalogDocument, release_root
from ..index.layout import children_page_key, search_prefix
from ..index.table import NodeView, briefly, data_urls
from ..scratch import Scratch
from ..sparse_layout import block_keys
from ..stores import Store
from ..structures import ArrayStructure, SparseStructure, TableStructure, structure_from_json
from ..table_layout import partition_key

_V2_CHUNK = re.compile(r"^\d+(\.\d+)*$")


def _listing(store: Store, prefix: str) -> Iterator[tuple[str, int]]:
    """Every key under ``prefix`` (relative to the store root) with its bytes, read fresh from the store."""
    root = store.path(prefix)
    if store.is_local:
        root = root.rstrip(os.sep) or root
        base = os.path.relpath(root, store.root).replace(os.sep, "/")
        folders = [(root, base)]
        while folders:  # os.scandir: the entry's type and one stat, no more (os.walk and a size walk: twice that)
            folder, rel = folders.pop()
            try:
                with os.scandir(folder) as entries:
                    found = list(entries)
            except (FileNotFoundError, NotADirectoryError):  # gone since its parent was listed
                continue
            for entry in found:
                if entry.is_dir(follow_symlinks=False):
                    folders.append((entry.path, f"{rel}/{entry.name}"))
                    continue
                try:
                    size = entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:  # gone since the folder was listed: as if not listed
                    continue
                yield f"{rel}/{entry.name}", size
        return
    base = store.root.split("://", 1)[1].strip("/") + "/"
    store.fs.invalidate_cache(root)
    for path, info in store.fs.find(root, detail=True).items():
        path = path.lstrip("/")
        yield path.removeprefix(base), int(info.get("size") or 0)


def _chunk_owner(key: str, zarr_format: int) -> str | None:
    """The array a chunk key belongs to, or None when the key is not a chunk."""
    parts = key.split("/")
    if zarr_format == 2:
        return "/".join(parts[:-1]) if _V2_CHUNK.match(parts[-1]) else None
    end = len(parts)
    while end > 0 and parts[end - 1].isdigit():
        end -= 1
    return "/".join(parts[: end - 1]) if end > 1 and parts[end - 1] == "c" else None


class _Lookup:
    """Questions to the check's table of listed keys."""

    db: sqlite3.Connection

    def __contains__(self, key: str) -> bool:
        return self.db.execute("SELECT 1 FROM keys WHERE key=?", (key,)).fetchone() is not None

    def chunk_count(self, owner: str) -> int:
        found = self.db.execute("SELECT n FROM chunks WHERE owner=?", (owner,)).fetchone()
        return found[0] if found else 0

    def has_prefix(self, prefix: str) -> bool:
        """Whether some (non-chunk) key is below ``prefix/`` (``0`` sorts right after ``/``)."""
        return self.db.execute("SELECT 1 FROM keys WHERE key > ? AND key < ? LIMIT 1", (prefix + "/", prefix + "0")).fetchone() is not None


class Keys(_Lookup):
    """The keys of the listed releases, in a SQLite file (a million nodes list millions of keys):
    chunks counted per array, the rest kept. The data may be listed and checked by another process
    of this machine (:func:`check_data`, a worker idle at the build's end, while this one writes
    the index)."""

    def __init__(self, zarr_format: int) -> None:
        self.scratch = Scratch("check")
        self.db = self.scratch.db
        self.path = os.path.join(self.scratch.folder, "check.sqlite")
        self.zarr_format = zarr_format
        _tables(self.db)
        self.listed: set[str] = set()  # prefixes listed whole

    def add(self, store: Store, roots: Iterable[str]) -> dict[str, int]:
        """List ``roots`` into the table; their bytes."""
        roots = list(roots)
        self.listed.update(roots)
        return _list(self.db, store, roots, self.zarr_format)

    def close(self) -> None:
        self.scratch.close()

    def clear(self) -> None:
        """Forget what was listed (a listing another process made, in part or whole, before it
        was lost): counted again, its chunks would count twice and hide a missing one."""
        self.db.execute("DELETE FROM keys")
        self.db.execute("DELETE FROM chunks")
        self.listed.clear()

    def covers(self, root: str) -> bool:
        return any(root == p or root.startswith(p + "/") for p in self.listed)


def _tables(db: sqlite3.Connection) -> None:
    db.executescript("CREATE TABLE IF NOT EXISTS keys(key TEXT PRIMARY KEY) WITHOUT ROWID;"
                     "CREATE TABLE IF NOT EXISTS chunks(owner TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;")


def _list(db: sqlite3.Connection, store: Store, roots: list[str], zarr_format: int) -> dict[str, int]:
    """Every key below ``roots`` into ``db`` (chunks counted per array); the bytes below each root."""
    sizes = dict.fromkeys(roots, 0)
    chunks: Counter[str] = Counter()
    keys: list[tuple[str]] = []

    def save() -> None:
        db.executemany("INSERT OR IGNORE INTO keys VALUES (?)", keys)
        db.executemany("INSERT INTO chunks VALUES (?, ?) ON CONFLICT(owner) DO UPDATE SET n=n+excluded.n", chunks.items())
        keys.clear()
        chunks.clear()

    db.execute("BEGIN")
    try:
        for root in roots:
            total = 0
            for key, size in _listing(store, root):
                total += size
                owner = _chunk_owner(key, zarr_format)
                if owner is not None:
                    chunks[owner] += 1
                else:
                    keys.append((key,))
                if len(keys) >= 10_000 or len(chunks) >= 10_000:
                    save()
            sizes[root] = total
        save()
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return sizes


class _Listed(_Lookup):
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db


def check_data(path: str, nodes: str, store: Store, written: list[str], zarr_format: int) -> tuple[dict[str, int], list[str]]:
    """In a worker process of the build's machine: list the data the release references into the
    check's SQLite file at ``path`` (:class:`Keys`; of ``written``, the build's own data roots, their
    ``data/`` folders, since the index is being written beside them), and check every node of the
    node table at ``nodes`` against it. The bytes below each prefix listed, and what is missing."""
    table = sqlite3.connect(f"file:{nodes}?mode=ro", uri=True)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA busy_timeout = 30000")
        _tables(db)
        roots = {release_root(url) for url in data_urls(table)} - {None}
        prefixes = sorted({f"{root}/data" for root in written} | {r for r in roots if r not in written})  # type: ignore[misc]
        sizes = _list(db, store, prefixes, zarr_format)
        keys = _Listed(db)
        return sizes, [problem for row in briefly(table) for problem in _entry_problems(*row, keys, zarr_format)]
    finally:
        db.close()
        table.close()


def _expected_chunks(structure: ArrayStructure) -> int:
    if any(n == 0 for n in structure.shape):
        return 0
    return math.prod(len(c) for c in structure.chunks)


def _entry_problems(family: str, url: str | None, structure_json: str | None, keys: _Lookup, zarr_format: int) -> Iterator[str]:
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
        yield from (k for k in (partition_key(url, i) for i in range(structure.npartitions)) if k not in keys)
    elif isinstance(structure, SparseStructure):  # one Parquet file per block, empty ones too
        yield from (k for k in block_keys(url, structure.chunks) if k not in keys)
    elif url not in keys and not keys.has_prefix(url):
        yield url


def missing_objects(store: Store, catalog: CatalogDocument, view: NodeView, own_keys: Iterable[str], min_children: int,
                    keys: Keys | None = None, data_checked: bool = False) -> list[str]:
    """What the new release (``catalog``, not yet switched to, its rows ``view``) references but
    the store lacks (empty when the release is complete). ``keys``: what was listed already (a
    release's ``data/`` listed once its items were written: then only its ``index/`` is listed
    here, and its other own keys looked up one by one); ``data_checked``: every node's data was
    checked already (:func:`check_data`), only the index and ``own_keys`` are left."""
    zarr_format = catalog.zarr_format
    own_keys = list(own_keys)
    roots = {release_root(k) for k in [catalog.index_key, *own_keys]}
    if not data_checked:
        roots |= {release_root(url) for url in view.data_urls()}
    owned = keys is None
    keys = keys or Keys(zarr_format)
    try:
        early = [r for r in roots if r and not keys.covers(r) and keys.covers(f"{r}/data")]
        keys.add(store, sorted(r for r in roots if r and r not in early and not keys.covers(r)))
        keys.add(store, [f"{r}/index" for r in early if not keys.covers(f"{r}/index")])
        missing = [k for k in own_keys if k not in keys and not (release_root(k) in early and store.exists(k))]
        prefix = catalog.index_key.rpartition("/")[0]
        digits = catalog.index_json["shard_digits"]
        missing += [k for k in (f"{prefix}/nodes/{name}.json" for name in view.shard_names(digits)) if k not in keys]
        for parent, count in view.parents():
            if count >= min_children:
                if not keys.has_prefix(search_prefix(prefix, parent)):
                    missing.append(search_prefix(prefix, parent) + "/")
            elif children_page_key(prefix, parent, 0) not in keys:
                missing.append(children_page_key(prefix, parent, 0))
        if not data_checked:
            for family, url, structure in view.briefly():
                missing += _entry_problems(family, url, structure, keys, zarr_format)
        return missing
    finally:
        if owned:
            keys.close()


class IncompleteRelease(StoreError):
    """A build's release lacks objects it references, so the build did not switch to it."""

    def __init__(self, release: str, store: str, missing: list[str], previous: str | None, dropped: list[str] | None = None) -> None:
        shown = "; ".join(missing[:5]) + (f"; and {len(missing) - 5} more" if len(missing) > 5 else "")
        why = (f"Some are the data of items an interrupted build ({', '.join(dropped)}) had finished (lost in a crash?): its "
               "journal is dropped, so the next build converts them again." if dropped else "Were they deleted while the build ran?")
        super().__init__(f"release {release} is incomplete, so it was not published: objects it references are missing "
                         f"from {store} ({shown}). {why} catalog.json still points at "
                         f"{previous or 'nothing (no release was published before)'}; build again.")
        self.release, self.store, self.missing, self.previous = release, store, missing, previous
