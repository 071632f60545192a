"""A release's index rows on disk while a build makes them, in SQLite (the standard library's).

A tree of a million files has a million index rows: held as Python objects they cost a build
gigabytes (measured: ~14 KB a file, all told), on disk a file, read back in the orders
:mod:`.write` and the completeness check need (depth first, by container, by node shard) with
SQLite's page cache as the only memory. A file's rows cost about what their JSON does.

Two views of one table: every node (``shown=False``) and the nodes anyone may read
(``shown=True``), each with its containers' child counts (a folder's count, and a tagged
catalog's counts by tag set) computed once by :meth:`NodeTable.finish`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..errors import ConfigError
from ..scratch import Scratch

_SCHEMA = """
PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA temp_store=FILE; PRAGMA cache_size=-8192;
CREATE TABLE nodes(seq INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, parent TEXT, folder INTEGER NOT NULL,
                   container INTEGER NOT NULL, tags TEXT, shown INTEGER NOT NULL, shard TEXT NOT NULL, row TEXT NOT NULL,
                   source INTEGER);
CREATE INDEX nodes_by_parent ON nodes(parent, seq);
CREATE TABLE counts(view INTEGER NOT NULL, path TEXT NOT NULL, n INTEGER NOT NULL, by_tags TEXT, PRIMARY KEY(view, path)) WITHOUT ROWID;
"""

#: A container's final row from its stored one: (row, is a folder, child count, counts by tag set or None) -> row.
Finish = Callable[[dict[str, Any], bool, int, dict[str, int] | None], dict[str, Any]]


class NodeClash(ConfigError):
    """Two nodes at one path, or a node inside one that is not a container (an array, a table),
    which the plan could not see: sources whose ``into`` nest (``top`` and ``top/x``, where
    ``top/x`` is a file), a stack named as the folder beside it. Nothing is published (each time,
    one of them was silently left out of the index, its data written but out of reach).
    ``sources``: the pipeline's sources (their numbers) that made the two nodes, where known;
    ``where``: their lines in pipeline.yml, which the build puts first (:meth:`located`)."""

    def __init__(self, path: str, first: dict[str, Any], second: dict[str, Any], inside: bool = False,
                 sources: tuple[int | None, int | None] = (None, None), where: str = "") -> None:
        self.path, self.first, self.second, self.inside, self.sources = path, first, second, inside, sources

        def what(row: dict[str, Any]) -> str:
            if not row.get("source_file"):  # (a folder of the tree, or one an 'into' makes)
                return f"the folder {row['path']!r}"
            return f"the {row['family']} {row['path']!r} (from {row['source_file']})"

        clash = f"is inside {what(first)}, which holds no nodes" if inside else f"would be published twice: as {what(first)} and as {what(second)}"
        super().__init__(f"{where}node path {path!r} {clash}; give one of their sources a different 'into', or rename one")

    def located(self, line_of: Callable[[int], str]) -> NodeClash:
        """The same clash led by the lines (``line_of(source number)``) of the sources that made it."""
        lines = list(dict.fromkeys(line_of(i) for i in self.sources if i is not None))
        if len(lines) == 2 and lines[0].rpartition(":")[0] == lines[1].rpartition(":")[0]:  # one file: "pipeline.yml:2 and line 4"
            lines[1] = f"line {lines[1].rpartition(':')[2]}"
        return NodeClash(self.path, self.first, self.second, self.inside, self.sources, f"{' and '.join(lines)}: " if lines else "")


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def shard_of(path: str) -> str:
    """The first hex digits of ``sha1(path)``, enough for any shard width (:mod:`.layout`)."""
    return hashlib.sha1(path.encode("utf-8")).hexdigest()[:8]


class NodeTable:
    """Index rows, added in order (:meth:`add`), read back once :meth:`finish` has counted children."""

    BATCH = 2000

    def __init__(self, folder: str | None = None, line_of: Callable[[int], str] | None = None) -> None:
        """``line_of``: where a source (by its number) is in pipeline.yml, for a clash's message."""
        self.line_of = line_of
        self.scratch = Scratch("nodes", folder)
        self.db = self.scratch.db
        self.db.executescript(_SCHEMA)
        self.db.execute("BEGIN")
        self._pending: list[tuple[Any, ...]] = []
        self._known: dict[str, None] = {}  # paths added lately (folders are asked for item after item)
        self.finished = False

    def close(self) -> None:
        self.scratch.close()

    def commit(self) -> None:
        """What was added so far made durable in the file, and a new transaction begun: before this
        process forks. A fork inherits SQLite's record of the locks this process holds (not the
        locks), so a child reading the file after the parent's transaction spilled to it (an
        exclusive lock: ~8 MiB of rows) was told "database is locked", however long it waited."""
        self._flush()
        self.db.execute("COMMIT")
        self.db.execute("BEGIN")

    @property
    def path(self) -> str:
        """The SQLite file (another process of the machine may read it once :meth:`finish` ran)."""
        return os.path.join(self.scratch.folder, "nodes.sqlite")

    def add(self, row: dict[str, Any], folder: bool, tags: str | None = None, shown: bool = True, source: int | None = None) -> None:
        """One node's row (:meth:`publisher.formats.Entry.to_json`); ``folder``: a container with no
        data of its own (its count is its children's); ``tags``: its tag set's key, in a tagged catalog;
        ``source``: the number of the pipeline's source that made it (named if it clashes)."""
        path = row["path"]
        self._pending.append((path, row["parent"], folder, row["family"] == "container", tags, shown, shard_of(path), dumps(row), source))
        if len(self._known) > 4096:
            self._known.clear()
        self._known[path] = None
        if len(self._pending) >= self.BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            insert = "INSERT INTO nodes(path, parent, folder, container, tags, shown, shard, row, source) VALUES (?,?,?,?,?,?,?,?,?)"
            before = self.db.total_changes
            try:
                self.db.executemany(insert, self._pending)
            except sqlite3.IntegrityError:  # a path added twice (the rows before it went in): which, and whose
                row = self._pending[self.db.total_changes - before]
                found = self.db.execute("SELECT row, source FROM nodes WHERE path=?", (row[0],)).fetchone()
                raise self._located(NodeClash(row[0], json.loads(found[0]), json.loads(row[7]), sources=(found[1], row[8]))) from None
            self._pending = []

    def _located(self, clash: NodeClash) -> NodeClash:
        """The clash led by its sources' lines in pipeline.yml, when the table knows them (it is
        found when the rows go in, a batch later, or when the folders are counted: another item at hand)."""
        return clash.located(self.line_of) if self.line_of is not None else clash

    def has(self, path: str) -> bool:
        if path in self._known:
            return True
        self._flush()
        return self.db.execute("SELECT 1 FROM nodes WHERE path=?", (path,)).fetchone() is not None

    def is_shown(self, path: str) -> bool:
        self._flush()
        return self.db.execute("SELECT 1 FROM nodes WHERE path=? AND shown", (path,)).fetchone() is not None

    def finish(self, by_tags: bool) -> None:
        """Count each container's children in both views (and, ``by_tags``, by tag set in the full one);
        :class:`NodeClash` when a node's parent is not a container (no client would list it)."""
        self._flush()
        self.db.execute("COMMIT")
        inside = self.db.execute("SELECT child.row, parent.row, parent.source, child.source FROM nodes AS child JOIN nodes AS parent "
                                 "ON child.parent = parent.path WHERE NOT parent.container LIMIT 1").fetchone()
        if inside is not None:
            child, parent = json.loads(inside[0]), json.loads(inside[1])
            raise self._located(NodeClash(child["path"], parent, child, inside=True, sources=(inside[2], inside[3])))
        for view, where in ((0, ""), (1, "WHERE shown")):
            self.db.execute(f"INSERT INTO counts SELECT {view}, path, 0, NULL FROM nodes WHERE container {'AND shown' if view else ''}")
            self.db.execute(f"INSERT INTO counts SELECT {view}, parent, count(*), NULL FROM nodes {where} {'AND' if where else 'WHERE'} "
                            "parent IS NOT NULL GROUP BY parent ON CONFLICT(view, path) DO UPDATE SET n=excluded.n")
        if by_tags:
            current, counts = None, {}
            updates = []
            for parent, tags, n in self.db.execute("SELECT parent, tags, count(*) FROM nodes WHERE parent IS NOT NULL "
                                                   "GROUP BY parent, tags ORDER BY parent"):
                if parent != current and current is not None:
                    updates.append((dumps(counts), current))
                    counts = {}
                current, counts[tags or ""] = parent, n
            if current is not None:
                updates.append((dumps(counts), current))
            self.db.execute("UPDATE counts SET by_tags='{}' WHERE view=0")
            self.db.executemany("UPDATE counts SET by_tags=? WHERE view=0 AND path=?", updates)
        self.finished = True

    def view(self, shown: bool = False, finish: Finish | None = None, depth_first: bool = True) -> NodeView:
        """The rows of every node (or, ``shown``, of those anyone may read) with ``finish`` applied to
        containers; ``depth_first`` False: in the order added."""
        if not self.finished:
            self.finish(by_tags=False)
        return NodeView(self, shown, finish or (lambda row, folder, n, by_tags: row), depth_first)

    @classmethod
    def of(cls, rows: Iterable[dict[str, Any]], folder: str | None = None) -> NodeTable:
        """A table of ``rows`` as given (no folders to count)."""
        table = cls(folder)
        for row in rows:
            table.add(row, folder=False)
        table.finish(by_tags=False)
        return table


#: A view of at most this many nodes keeps the rows it parsed (in their final form, ~4 KB each)
#: for the index's other passes, each in its own order (Parquet, node shards, child pages or search
#: columns): a small catalog's rows are parsed once, not three times (1,000 small TIFFs: ~40 ms of
#: a build's serial end). A bigger one is read in pieces, as ever.
CACHE_ROWS = 5000


class NodeView:
    """One view's final rows (``finish`` applied), as :func:`.write.write_index` reads them (and
    their JSON text, which is the stored text itself for all but containers). Rows handed out are
    shared between passes: read them, do not change them."""

    def __init__(self, table: NodeTable, shown: bool, finish: Finish, depth_first: bool = True) -> None:
        self.db, self.shown, self.finish, self.depth_first = table.db, int(shown), finish, depth_first
        self._where = "AND n.shown" if shown else ""
        self._cache: dict[int, list[Any]] | None = {} if len(self) <= CACHE_ROWS else None

    def _select(self, where: str, order: str) -> str:
        return (f"SELECT n.seq, n.row, n.container, n.folder, c.n, c.by_tags FROM nodes n LEFT JOIN counts c ON c.view={self.shown} "
                f"AND c.path=n.path WHERE {where} {self._where} ORDER BY {order}")

    def _final(self, seq: int, text: str, container: int, folder: int, n: int | None, by_tags: str | None) -> list[Any]:
        """[the row in its final form, its JSON text (None until asked, for a container)]."""
        if self._cache is not None and (found := self._cache.get(seq)) is not None:
            return found
        row = json.loads(text)
        found = [self.finish(row, bool(folder), n or 0, json.loads(by_tags) if by_tags is not None else None), None] if container else [row, text]
        if self._cache is not None:
            self._cache[seq] = found
        return found

    def _rows(self, cursor: Iterable[tuple[Any, ...]]) -> Iterator[dict[str, Any]]:
        for selected in cursor:
            yield self._final(*selected)[0]

    def _pairs(self, cursor: Iterable[tuple[Any, ...]]) -> Iterator[tuple[dict[str, Any], str]]:
        """(the final row, its JSON text) of each row: a container's text made from its final row."""
        for selected in cursor:
            found = self._final(*selected)
            if found[1] is None:
                found[1] = dumps(found[0])
            yield found[0], found[1]

    def _texts(self, cursor: Iterable[tuple[Any, ...]]) -> Iterator[tuple[str, str]]:
        """(path, the final row's JSON text) of each row: parsed only for a container (its counts)."""
        for row, text in self._pairs(cursor):
            yield row["path"], text

    def __len__(self) -> int:
        return self.db.execute(f"SELECT count(*) FROM nodes n WHERE 1 {self._where}").fetchone()[0]  # type: ignore[no-any-return]

    def children(self, parent: str) -> Iterator[dict[str, Any]]:
        """A container's children, in the order added."""
        return self._rows(self.db.execute(self._select("n.parent=?", "n.seq"), (parent,)))

    def children_with_texts(self, parent: str) -> Iterator[tuple[dict[str, Any], str]]:
        """A container's children and their JSON texts, in the order added."""
        return self._pairs(self.db.execute(self._select("n.parent=?", "n.seq"), (parent,)))

    def children_texts(self, parent: str) -> Iterator[str]:
        """A container's children as JSON text, in the order added."""
        return (text for _, text in self._texts(self.db.execute(self._select("n.parent=?", "n.seq"), (parent,))))

    def ordered(self) -> Iterator[dict[str, Any]]:
        """Depth first from the root, children in the order added: the index's order (or every row
        in the order added, for a view that is not ``depth_first``)."""
        if not self.depth_first:
            yield from self._rows(self.db.execute(self._select("1", "n.seq")))
            return
        stack: list[Iterator[dict[str, Any]]] = [self._rows(self.db.execute(self._select("n.path=''", "n.seq")))]
        while stack:
            row = next(stack[-1], None)
            if row is None:
                stack.pop()
                continue
            yield row
            if row["family"] == "container":
                stack.append(self.children(row["path"]))

    def briefly(self) -> Iterator[tuple[str, str | None, str | None]]:
        """Every node's family, data URL and structure (:func:`briefly`)."""
        return briefly(self.db, self._where)

    def data_urls(self) -> Iterator[str]:
        """The distinct data URLs of the nodes (:func:`data_urls`)."""
        return data_urls(self.db, self._where)

    def parents(self) -> Iterator[tuple[str, int]]:
        """Each container with children, and how many."""
        yield from self.db.execute(f"SELECT path, n FROM counts WHERE view={self.shown} AND n > 0 ORDER BY path")

    def shard_names(self, digits: int) -> Iterator[str]:
        """The node shards' names (the first ``digits`` of ``sha1(path)``) that hold rows."""
        yield from (name for (name,) in self.db.execute(f"SELECT DISTINCT substr(n.shard, 1, ?) FROM nodes n WHERE 1 {self._where}", (digits,)))

    def shards(self, digits: int) -> Iterator[list[tuple[str, str]]]:
        """The rows as (path, JSON text) grouped by node shard (the first ``digits`` of ``sha1(path)``)."""
        group: list[tuple[str, str]] = []
        current = None
        cursor = self.db.execute(f"SELECT substr(n.shard, 1, ?), n.seq, n.row, n.container, n.folder, c.n, c.by_tags FROM nodes n LEFT JOIN "
                                 f"counts c ON c.view={self.shown} AND c.path=n.path WHERE 1 {self._where} ORDER BY n.shard, n.seq", (digits,))
        for shard, *rest in cursor:
            if shard != current and group:
                yield group
                group = []
            current = shard
            group.extend(self._texts([rest]))
        if group:
            yield group


def briefly(db: sqlite3.Connection, where: str = "") -> Iterator[tuple[str, str | None, str | None]]:
    """Every node's family, data URL and structure (as JSON text, as stored: a container's count
    not filled in), in the order added, taken out by SQLite without parsing the rows in Python
    (the completeness check's pass over a million rows: a JSON parse of each saved)."""
    yield from db.execute("SELECT json_extract(n.row, '$.family'), json_extract(n.row, '$.data_url'), "
                          f"json_extract(n.row, '$.structure') FROM nodes n WHERE 1 {where} ORDER BY n.seq")


def data_urls(db: sqlite3.Connection, where: str = "") -> Iterator[str]:
    """The distinct data URLs of the nodes (no row parsed in Python)."""
    cursor = db.execute(f"SELECT DISTINCT json_extract(n.row, '$.data_url') FROM nodes n WHERE 1 {where}")
    yield from (url for (url,) in cursor if url)
