"""A build's plan on disk: every work item the walk finds (:func:`publisher.sources.iter_plan`),
written to a SQLite table before anything is converted, then read back in order. While every
item is the previous release's, unchanged and in its order, items are counted, not written: a
build that changes nothing is decided without writing or reading its plan.

Writing it first keeps a build's promise that a wrong configuration (two items at one node path,
bad reader options) fails before anything is written, without a million items in memory (~900
bytes each as objects): the table's unique node paths find the clash.
"""

from __future__ import annotations

import pickle
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from ..config.models import Pipeline
from ..readers import get_reader
from ..scratch import Scratch
from ..sources import duplicate
from ..work_item import WorkItem


class Ahead(Protocol):
    """Decides, item by item from the first, whether the plan so far is the previous release's."""

    def __call__(self, item: WorkItem) -> bool:
        """Whether this item is the previous release's next, unchanged (False from the first that is not)."""

    def taken(self, node_path: str) -> str | None:
        """The label of the leading item at ``node_path``, if one is."""

    @property
    def count(self) -> int:
        """How many leading items it held."""


class ItemTable:
    """The items to build, in plan order; the plan's problems (symlink loops...) go to ``on_problem``."""

    BATCH = 1000

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.scratch = Scratch("items")
        self.db = self.scratch.db
        self.db.execute("CREATE TABLE items(seq INTEGER PRIMARY KEY, node_path TEXT NOT NULL UNIQUE, label TEXT NOT NULL, item BLOB NOT NULL)")
        self.count = 0  # written
        self.ahead: Ahead | None = None  # what held the leading items (not written)
        self._options: dict[tuple[int, str], Any] = {}

    def close(self) -> None:
        self.scratch.close()

    def fill(self, items: Iterable[WorkItem], on_problem: Callable[[WorkItem], None], ahead: Ahead | None = None) -> int:
        """Write the items (raising the plan's :class:`ConfigError` on a clash); return how many
        were planned. ``ahead``: the leading items it holds as the previous release's are counted,
        not written (a no-change build then reads nothing back)."""
        batch: list[WorkItem] = []
        self.db.execute("BEGIN")
        try:
            for item in items:
                if item.problem:
                    on_problem(item)
                    continue
                if ahead is not None:
                    if ahead(item):
                        continue
                    self.ahead, ahead = ahead, None  # the first that is not: this one and all after are written
                batch.append(item)
                if len(batch) >= self.BATCH:
                    self._insert(batch)
            self._insert(batch)
        finally:
            self.db.execute("COMMIT")
        if ahead is not None:  # it held every item
            self.ahead = ahead
        return len(self)

    def _insert(self, batch: list[WorkItem]) -> None:
        if self.ahead is not None:  # the leading items were not written, but their node paths are taken
            for item in batch:
                other = self.ahead.taken(item.node_path)
                if other is not None:
                    raise duplicate(self.pipeline, item, other)
        rows = [(item.node_path, item.label, self._dump(item)) for item in batch]
        self.db.execute("SAVEPOINT batch")
        try:
            self.db.executemany("INSERT INTO items(node_path, label, item) VALUES (?,?,?)", rows)
        except sqlite3.IntegrityError:
            self.db.execute("ROLLBACK TO batch")
            for item, row in zip(batch, rows, strict=True):  # which one: one at a time
                try:
                    self.db.execute("INSERT INTO items(node_path, label, item) VALUES (?,?,?)", row)
                except sqlite3.IntegrityError:
                    (other,) = self.db.execute("SELECT label FROM items WHERE node_path=?", (item.node_path,)).fetchone()
                    raise duplicate(self.pipeline, item, other) from None
        self.db.execute("RELEASE batch")
        self.count += len(batch)
        batch.clear()

    @staticmethod
    def _dump(item: WorkItem) -> bytes:
        # the reader when the plan detected it (a source with options): not detected again
        reader = item._reader.name if item._reader not in (None,) and isinstance(item._reader, type) else None
        return pickle.dumps((item.source_index, [str(p) for p in item.paths], item.metadata, item.warnings, reader), protocol=5)

    def __len__(self) -> int:
        """The items planned: the leading ones held as the previous release's, and those written."""
        return self.count + (self.ahead.count if self.ahead is not None else 0)

    def __iter__(self) -> Iterator[WorkItem]:
        sources = self.pipeline.sources
        cursor = self.db.execute("SELECT node_path, item FROM items ORDER BY seq")
        while rows := cursor.fetchmany(self.BATCH):
            for node_path, blob in rows:
                index, paths, metadata, warnings, reader = pickle.loads(blob)  # written by this build, above
                source = sources[index]
                item = WorkItem(index, source, [Path(p) for p in paths], node_path, get_reader(source.type) if source.type else None,
                                metadata=metadata, warnings=warnings)
                if reader is not None:
                    item._reader = get_reader(reader)
                    if source.options:
                        key = (index, reader)
                        if key not in self._options:  # checked by the plan already
                            self._options[key] = item._reader.parse_options(source.options)
                        item.options = self._options[key]
                yield item
