"""Read a published catalog: ``catalog.json`` → node entries and child pages.

Uses only the JSON index and the standard library, so Lambda handlers can use it cheaply.
:meth:`Catalog.entry` and :meth:`Catalog.entries` return typed :class:`~publisher.formats.Entry`
objects (structures as the build wrote them, parsed when first read: a search page sends most
of them on as JSON).
"""

from __future__ import annotations

import json
import sys
import threading
from array import array
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from .errors import NotFound, StoreError
from .formats import CATALOG_FORMAT, CATALOG_KEY, PRIVATE_CATALOG_KEY, CatalogDocument, Entry
from .index.layout import children_page_key, node_shard_key, search_prefix
from .stores import Store

__all__ = ["CATALOG_KEY", "Catalog", "Entry"]
#: Containers whose search columns a warm process keeps.
SEARCH_CACHE_CONTAINERS = 16
#: Node shards (~256 entries each) a warm process keeps.
SHARD_CACHE = 256


class Catalog:
    def __init__(self, store: Store, document: dict[str, Any]) -> None:
        self.store = store
        self.document = document
        try:
            self.info = CatalogDocument.from_json(document)
            self.info.index_json["shard_digits"], self.info.index_json["page_size"]  # noqa: B018 (checked here, not mid-request)
        except (KeyError, TypeError, AttributeError) as exc:
            raise StoreError(f"{store.url}/{CATALOG_KEY} is damaged: {_missing(exc)}") from None
        self._prefix = self.info.index_key.rpartition("/")[0]
        self._search: dict[str, Any] = {}
        self._shards: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def open(cls, store: Store, key: str = CATALOG_KEY) -> Catalog:
        """The catalog whose entry point is ``key``: ``catalog.json``, what anyone may read."""
        try:
            document = _parse(store, key, store.read_bytes(key))
        except NotFound:
            raise NotFound(f"{store.url} has no {CATALOG_KEY}: nothing has been published there yet") from None
        if document.get("format") != CATALOG_FORMAT:
            raise StoreError(f"{store.url}/{key} is not a Skyshelf catalog (format={document.get('format')!r})")
        return cls(store, document)

    @classmethod
    def open_full(cls, store: Store) -> Catalog:
        """Every node: a catalog with private nodes keeps its full view under ``private/`` (the
        handlers read it and decide per caller); any other has one view."""
        try:
            return cls.open(store, PRIVATE_CATALOG_KEY)
        except NotFound:
            return cls.open(store)

    @property
    def release(self) -> str:
        return self.info.release

    def entry(self, path: str) -> Entry:
        """One node's entry, from its shard; a warm process keeps the shards it has read (a
        release's objects never change), so a Lambda answers most metadata without an S3 read."""
        return self._typed(self._node_row(path), path)

    def entries(self, path: str, offset: int = 0, limit: int | None = None) -> Iterator[Entry]:
        """Children of a container in order, reading only the pages (or, for a large container,
        the rows) that cover the range."""
        return (self._typed(row, path) for row in self._child_rows(path, offset, limit))

    def _typed(self, row: Any, where: str) -> Entry:
        try:
            return Entry.from_json(row)
        except (KeyError, TypeError, AttributeError) as exc:
            raise StoreError(f"{self.store.url}: the index row of {where!r} (or a child) is damaged: {_missing(exc)}") from None

    def _node_row(self, path: str) -> dict[str, Any]:
        path = path.strip("/")
        key = node_shard_key(self._prefix, path, self.info.index_json["shard_digits"])
        with self._lock:
            shard = self._shards.get(key)
            if shard is not None:
                self._shards.move_to_end(key)
        if shard is None:
            try:
                shard = _parse(self.store, key, self.store.read_bytes(key))
            except NotFound:
                shard = {}
            with self._lock:
                self._shards[key] = shard
                while len(self._shards) > SHARD_CACHE:
                    self._shards.popitem(last=False)
        if path not in shard:
            raise NotFound(f"no node at path {path!r}")
        return shard[path]

    def _child_rows(self, path: str, offset: int = 0, limit: int | None = None) -> Iterator[dict[str, Any]]:
        path = path.strip("/")
        size = self.info.index_json["page_size"]
        page = offset // size
        skip = offset - page * size
        yielded = 0
        while limit is None or yielded < limit:
            try:
                key = children_page_key(self._prefix, path, page)
                body = _parse(self.store, key, self.store.read_bytes(key), "entries", "offset", "count")
            except NotFound:
                if yielded == 0:  # no pages: a large container's rows, or nothing there
                    yield from self._large_rows(path, offset, limit)
                return
            for entry in body["entries"][skip:]:
                if limit is not None and yielded >= limit:
                    return
                yield entry
                yielded += 1
            if body["offset"] + len(body["entries"]) >= body["count"]:
                return
            page, skip = page + 1, 0

    def _large_rows(self, path: str, offset: int, limit: int | None) -> Iterator[dict[str, Any]]:
        """Children from a large container's ``rows.jsonl``: two range reads (their offsets, then
        their lines), with the standard library only."""
        if "search" not in self.info.index_json:  # a catalog from before search folders
            return
        prefix = search_prefix(self._prefix, path)
        try:
            if limit is None:
                raw = self.store.read_bytes(f"{prefix}/rows.offsets")[8 * offset :]
            else:
                raw = self.store.read_range(f"{prefix}/rows.offsets", 8 * offset, 8 * (offset + limit + 1))
        except NotFound:
            return
        offsets = array("q", raw[: len(raw) // 8 * 8])
        if sys.byteorder == "big":
            offsets.byteswap()
        if len(offsets) < 2:
            return
        lines = self.store.read_range(f"{prefix}/rows.jsonl", offsets[0], offsets[-1]).split(b"\n")
        for line in lines[:-1]:
            yield _parse(self.store, f"{prefix}/rows.jsonl", line)

    def search_columns(self, path: str, count: int) -> Any:
        """The search columns of a container with ``count`` children, or None when it has none
        (small containers are searched row by row). Kept by this catalog: a new release is a new
        catalog, so they are never stale."""
        settings = self.info.index_json
        if "search" not in settings or count < settings["search_min_children"] or count == 0:
            return None
        with self._lock:
            cols = self._search.get(path)
            if cols is None:
                from .index.columns_read import SearchColumns

                cols = SearchColumns.open(self.store, search_prefix(self._prefix, path))
                self._search[path] = cols
                while len(self._search) > SEARCH_CACHE_CONTAINERS:
                    self._search.pop(next(iter(self._search)))
            return cols


def _parse(store: Store, key: str, raw: bytes, *required: str) -> dict[str, Any]:
    """An index object (a JSON object holding ``required``); a damaged one is the store's fault
    (a 502 naming it), not a 500 mid-answer."""
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise StoreError(f"{store.url}/{key} is damaged: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise StoreError(f"{store.url}/{key} is damaged: a JSON {type(value).__name__}, not an object")
    missing = [name for name in required if name not in value]
    if missing:
        raise StoreError(f"{store.url}/{key} is damaged: it has no {', '.join(map(repr, missing))}")
    return value


def _missing(exc: Exception) -> str:
    return f"it has no {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)
