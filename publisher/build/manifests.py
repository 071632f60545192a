"""Manifests too big to hold: the previous release's records (and an interrupted build's) looked
up by node path from a SQLite file, and the new release's records spilled to a file as items
merge, then written to the store as one stream.

A manifest is written one record per line inside one JSON document::

    {"release":"...","catalog_settings":"...","nodes":{"array":3,...},"items":[
    {...record...},
    {...record...}
    ]}

so any JSON reader still reads it whole (``publish gc``, :class:`publisher.formats.Manifest`)
while a build reads it a line at a time (a million records: a few hundred MB of JSON, never
parsed at once). Older manifests, one line, are parsed whole. ``nodes`` counts the records'
entries by family: a build that changes nothing reports them without parsing a record.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from json.decoder import scanstring
from typing import IO, Any

from ..errors import NotFound
from ..formats import CATALOG_KEY, PRIVATE_CATALOG_KEY, CatalogDocument, ManifestItem
from ..index.table import dumps
from ..scratch import Scratch
from ..stores import Store

_HEAD_END = '"items":['


def write_manifest(sink: IO[bytes], release: str, catalog_settings: str, lines: Iterable[bytes], nodes: Mapping[str, int] | None = None) -> None:
    """Write a manifest of records (each one compact JSON line, without its newline) to ``sink``;
    ``nodes``: their entries counted by family."""
    head = {"release": release, "catalog_settings": catalog_settings, **({"nodes": dict(nodes)} if nodes is not None else {})}
    sink.write((dumps(head)[:-1] + "," + _HEAD_END).encode())
    first = True
    for line in lines:
        sink.write(b"\n" + line if first else b",\n" + line)
        first = False
    sink.write(b"\n]}")


def copy_manifest(stream: IO[bytes], sink: IO[bytes]) -> tuple[dict[str, Any], int]:
    """Copy a manifest's record lines from ``stream`` to ``sink`` as they are (in large blocks, no
    line parsed: a million records in about a second), for :func:`record_lines` to read back (a
    record is parsed only when used; its node path alone: :func:`node_path`); (its release and
    catalog_settings and, when written, nodes; how many records)."""
    fields, old = _head(stream)
    if old is not None:
        for item in old:
            sink.write(dumps(item).encode() + b"\n")
        return fields, len(old)
    count = 0
    while block := stream.read(2**20):
        count += block.count(b"\n")  # one per record (the last line, "]}", has none)
        sink.write(block)
    return fields, count


def record_lines(lines: Iterable[str]) -> Iterator[str]:
    """The record texts among a manifest's lines after its head (their commas and the end dropped)."""
    for raw in lines:
        line = raw.rstrip("\n").rstrip(",")
        if line and line != "]}":
            yield line


def _head(stream: IO[bytes]) -> tuple[dict[str, Any], list[dict[str, object]] | None]:
    """A manifest's fields, read from its first line; an older manifest (one line) is read whole
    and its items returned too."""
    text = stream.readline().decode()
    if not text.rstrip("\n").endswith(_HEAD_END):  # one line: an older manifest, parsed whole
        data = json.loads(text + stream.read().decode())
        return {"release": data.get("release", ""), "catalog_settings": data.get("catalog_settings", "")}, data["items"]
    return json.loads(text.rstrip("\n")[: -len(_HEAD_END)].rstrip(",") + "}"), None


def folder_of(node_path: str) -> str:
    """The name of the folder a node path's key is in ("" at the top)."""
    return node_path.rpartition("/")[0].rpartition("/")[2]


def node_path(line: str) -> str:
    """A record line's node path, its first field (as :meth:`ManifestItem.to_json` writes it),
    read without parsing the rest (a million records: seconds saved on every build)."""
    if line.startswith(_FIRST):
        path, _ = scanstring(line, len(_FIRST))
        return path  # type: ignore[no-any-return]
    return json.loads(line)["node_path"]  # type: ignore[no-any-return]


_FIRST = '{"node_path":"'
#: A record's head as :meth:`ManifestItem.to_json` writes it: settings, metadata, the first file's path, size and mtime.
_HEAD = re.compile(r'\{"node_path":"(?:[^"\\]|\\.)*","settings":"([^"]*)","metadata":"([^"]*)","files":\[\{"path":"((?:[^"\\]|\\.)*)","size":(\d+),"mtime_ns":(-?\d+),')


def _head_of(line: str) -> tuple[str | None, int | None, int | None, str | None, str | None]:
    """(first file's name, size, mtime, settings, metadata) of a record line, from its head alone
    (None for a record without files, or written otherwise)."""
    head = _HEAD.match(line)
    if head is None:
        return None, None, None, None, None
    settings, metadata, path, size, mtime = head.groups()
    name = (json.loads(f'"{path}"') if "\\" in path else path).rpartition("/")[2]
    return name, int(size), int(mtime), settings, metadata



class RecordSpill:
    """The new release's records, appended as items merge (in plan order) to a file beside the
    build's node table, and whether they are, so far, exactly the previous release's items."""

    def __init__(self, scratch: Scratch, previous: Previous) -> None:
        self.path = f"{scratch.folder}/records.jsonl"
        self._file = open(self.path, "wb")  # noqa: SIM115 (closed by write_to or close)
        self.previous = previous
        self.count = 0
        self.same_order = True  # the node paths so far are the previous release's, in its order
        self.refreshed = 0  # previous records whose files' times changed (same content)
        self.nodes: Counter[str] = Counter()  # the records' entries by family

    def add(self, record: ManifestItem) -> None:
        self._file.write(record.text().encode() + b"\n")
        self.nodes.update(entry["family"] for entry in record.entries)
        if self.same_order:
            self.same_order = record.seq == self.count or self.previous.path_at(self.count) == record.node_path
        self.refreshed += record.refreshed
        self.count += 1

    def same_items(self) -> bool:
        """The previous release's records, as they were: nothing to publish."""
        return self.same_order and self.count == self.previous.count and not self.refreshed

    def write_to(self, store: Store, key: str, release: str, catalog_settings: str) -> None:
        self._file.close()
        with open(self.path, "rb") as lines, store.open_write(key) as sink:
            write_manifest(sink, release, catalog_settings, (line.rstrip(b"\n") for line in lines), self.nodes)

    def close(self) -> None:
        self._file.close()


class Previous:
    """The current release's records and those an interrupted newer build had finished
    (:func:`.journal.resumable`), by node path, in a SQLite file (thread-safe lookups). The
    release's records are first kept as they came, a line each in a file: read in order, they
    decide a no-change build without any lookup; they go into the table on the first lookup."""

    def __init__(self, scratch: Scratch) -> None:
        self.db = scratch.db
        # (name, size, mtime: the record's first file, settings and metadata: for :meth:`like`)
        self.db.executescript("CREATE TABLE old(path TEXT PRIMARY KEY, seq INTEGER NOT NULL, record TEXT NOT NULL, "
                              "name TEXT, size INTEGER, mtime INTEGER, settings TEXT, metadata TEXT, folder TEXT);"
                              "CREATE UNIQUE INDEX old_by_seq ON old(seq);"
                              "CREATE TABLE resumed(path TEXT PRIMARY KEY, record TEXT NOT NULL);")
        self._lines = f"{scratch.folder}/previous.jsonl"
        self._indexed = True  # nothing to index until a manifest is loaded
        self._content = False  # the index of records by file name, size and mtime (:meth:`like`), made on first use
        self._lock = threading.Lock()
        self.release: str | None = None
        self.catalog_settings: str | None = None
        self.nodes: dict[str, int] | None = None  # the records' entries by family (a manifest before 2026-12-05: None)
        self.count = 0
        self.resumed_count = 0

    def load(self, store: Store) -> None:
        """Read the current release's manifest (in its full view: a catalog with private nodes
        keeps it under ``private/``), if any and readable."""
        try:
            key = PRIVATE_CATALOG_KEY if store.exists(PRIVATE_CATALOG_KEY) else CATALOG_KEY
            catalog = CatalogDocument.from_json(json.loads(store.read_bytes(key)))
            if catalog.manifest is not None:
                with store.fs.open(store.path(catalog.manifest), "rb") as stream, open(self._lines, "wb") as lines:
                    fields, count = copy_manifest(stream, lines)
                self.release, self.catalog_settings, self.count, self._indexed = fields["release"], fields["catalog_settings"], count, False
                nodes = fields.get("nodes")  # trusted only as written (else each record is parsed and counted)
                self.nodes = nodes if isinstance(nodes, dict) and all(isinstance(v, int) for v in nodes.values()) else None
        except (NotFound, FileNotFoundError, KeyError, TypeError, ValueError, AttributeError):
            self.release = self.catalog_settings = self.nodes = None  # none, or unreadable: every item is new
            self.count, self._indexed = 0, True

    def in_order(self) -> Iterator[str]:
        """The release's records in its order, as JSON text, read from the file (no table, no lookup)."""
        if not self.count:
            return
        with open(self._lines, encoding="utf-8") as lines:
            yield from record_lines(lines)

    def _index(self) -> None:
        """The release's records into the table, once, on the first lookup (under the lock)."""
        if self._indexed:
            return
        with open(self._lines, encoding="utf-8") as lines:
            rows = ((path, seq, line, *_head_of(line), folder_of(path)) for seq, line in enumerate(record_lines(lines)) for path in (node_path(line),))
            self._insert("INSERT OR REPLACE INTO old VALUES (?,?,?,?,?,?,?,?,?)", rows)
        self._indexed = True

    def load_resumed(self, records: Iterable[ManifestItem]) -> None:
        """The records of interrupted builds, oldest first (a later one of a node path wins)."""
        self._insert("INSERT OR REPLACE INTO resumed(path, record) VALUES (?,?)", ((r.node_path, r.text()) for r in records))
        self.resumed_count = self.db.execute("SELECT count(*) FROM resumed").fetchone()[0]

    def _insert(self, sql: str, rows: Iterator[tuple[object, ...]]) -> None:
        self.db.execute("BEGIN")
        try:
            self.db.executemany(sql, rows)
        finally:
            self.db.execute("COMMIT")

    def _one(self, sql: str, arg: object) -> str | None:
        with self._lock:
            self._index()
            found = self.db.execute(sql, (arg,)).fetchone()
        return found[0] if found else None

    def old(self, node_path: str) -> ManifestItem | None:
        """The previous release's record of a node path, its ``seq`` its place in that release."""
        with self._lock:
            self._index()
            found = self.db.execute("SELECT seq, record FROM old WHERE path=?", (node_path,)).fetchone()
        if found is None:
            return None
        record = ManifestItem.from_json(json.loads(found[1]))
        record.seq = found[0]
        return record

    def resumed(self, node_path: str) -> ManifestItem | None:
        if not self.resumed_count:
            return None
        text = self._one("SELECT record FROM resumed WHERE path=?", node_path)
        return ManifestItem.from_json(json.loads(text)) if text else None

    def like(self, settings: str, metadata: str, name: str, size: int, mtime: int, limit: int, node_path: str) -> list[ManifestItem]:
        """Up to ``limit`` records of the release whose first file has this name, size and mtime (a
        file moved or copied with its times), with these settings and planned metadata (:mod:`.moved`);
        first those in a folder named as ``node_path``'s (a folder above renamed: 100 ``runNNN/image.npy``
        of one size and mtime, as unpacked, were the same 16 candidates for each, 84 converted again)."""
        with self._lock:
            self._index()
            if not self._content:
                self._content = True
                self.db.execute("CREATE INDEX old_by_file ON old(name, size, mtime, folder)")
            same = "SELECT seq, record FROM old WHERE name=? AND size=? AND mtime=? AND settings=? AND metadata=?"
            rows = self.db.execute(f"{same} AND folder=? LIMIT ?", (name, size, mtime, settings, metadata, folder_of(node_path), limit)).fetchall()
            if len(rows) < limit:
                rows += self.db.execute(f"{same} AND folder IS NOT ? LIMIT ?", (name, size, mtime, settings, metadata, folder_of(node_path),
                                                                              limit - len(rows))).fetchall()
        found = []
        for seq, text in rows:
            record = ManifestItem.from_json(json.loads(text))
            record.seq = seq
            found.append(record)
        return found

    def path_at(self, seq: int) -> str | None:
        return self._one("SELECT path FROM old WHERE seq=?", seq)

    def seq_of(self, node_path: str) -> int | None:
        """A node path's place in the release's order, or None."""
        return self._one("SELECT seq FROM old WHERE path=?", node_path)  # type: ignore[return-value]

    def records(self, start: int, stop: int) -> Iterator[ManifestItem]:
        """The previous release's records ``start`` to ``stop`` (plan order), a thousand read at a time."""
        for first in range(start, stop, 1000):
            with self._lock:
                self._index()
                rows = self.db.execute("SELECT record FROM old WHERE seq >= ? AND seq < ? ORDER BY seq",
                                       (first, min(first + 1000, stop))).fetchall()
            yield from (ManifestItem.from_json(json.loads(text)) for (text,) in rows)  # (in order: their seq is not needed)
