"""Read a published catalog: ``catalog.json`` → node entries and child pages.

Uses only the JSON index and the standard library, so Lambda handlers can use it cheaply.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from .errors import NotFound, StoreError
from .index import children_page_key, node_shard_key
from .stores import Store

CATALOG_KEY = "catalog.json"
CATALOG_FORMAT = "skyshelf-catalog"
CATALOG_VERSION = 1


class Catalog:
    def __init__(self, store: Store, document: dict[str, Any]) -> None:
        self.store = store
        self.document = document
        self._prefix = document["index"].rpartition("/")[0]

    @classmethod
    def open(cls, store: Store) -> Catalog:
        try:
            document = json.loads(store.read_bytes(CATALOG_KEY))
        except NotFound:
            raise NotFound(f"{store.url} has no {CATALOG_KEY}: nothing has been published there yet") from None
        if document.get("format") != CATALOG_FORMAT:
            raise StoreError(f"{store.url}/{CATALOG_KEY} is not a Skyshelf catalog (format={document.get('format')!r})")
        return cls(store, document)

    @property
    def release(self) -> str:
        return self.document["release"]

    def node(self, path: str) -> dict[str, Any]:
        path = path.strip("/")
        digits = self.document["index_json"]["shard_digits"]
        try:
            shard = json.loads(self.store.read_bytes(node_shard_key(self._prefix, path, digits)))
        except NotFound:
            shard = {}
        if path not in shard:
            raise NotFound(f"no node at path {path!r}")
        return shard[path]

    def children(self, path: str, offset: int = 0, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Children of a container in order, reading only the pages that cover the range."""
        path = path.strip("/")
        size = self.document["index_json"]["page_size"]
        page = offset // size
        skip = offset - page * size
        yielded = 0
        while limit is None or yielded < limit:
            try:
                body = json.loads(self.store.read_bytes(children_page_key(self._prefix, path, page)))
            except NotFound:
                return
            for entry in body["entries"][skip:]:
                if limit is not None and yielded >= limit:
                    return
                yield entry
                yielded += 1
            if body["offset"] + len(body["entries"]) >= body["count"]:
                return
            page, skip = page + 1, 0
