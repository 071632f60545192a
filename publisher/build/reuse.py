"""Items a build reuses as they were: counted while every one so far is the previous release's,
in its order (:class:`Deferred`), and the plan's watch that decides a no-change build without
writing or reading the plan back (:class:`AsBefore`, :class:`.items.Ahead`)."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from json.encoder import encode_basestring_ascii as quoted  # as the manifest's json.dumps writes a string

from ..formats import ManifestItem, Problem
from ..work_item import WorkItem
from .plan import Planner
from .publish import Tree


@dataclass
class Deferred:
    """What items reused as they were, in the previous release's order, would add to the report:
    while every item so far is, the build adds only their folders to its tree, since nothing may
    change (else their records are merged then, :meth:`publisher.build._Build.replay`)."""

    count: int = 0
    #: The nodes of the items added as records (those added as text are counted by the manifest's head)
    nodes: Counter[str] = field(default_factory=Counter)
    warnings: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    failures: list[Problem] = field(default_factory=list)

    def add(self, tree: Tree, node_path: str, old: ManifestItem) -> None:
        """One more item as it was: its nodes counted, its folders in ``tree``."""
        if old.entries:
            tree.ensure_folders(node_path)
        for data in old.entries:
            self.nodes[data["family"]] += 1
        self.warnings += old.warnings
        self.skipped += old.skipped
        self.failures += as_recorded(old.failures)
        self.count += 1

    def add_text(self, tree: Tree, node_path: str, has_entries: bool) -> None:
        """One more item as it was, known from its record's text: no problems, its nodes not counted."""
        if has_entries:
            tree.ensure_folders(node_path)
        self.count += 1


class AsBefore:
    """Watches the plan as it is written (:class:`.items.Ahead`): is every item so far the previous
    release's next, with the same settings and files (size, mtime and ctime)? Those are counted, not
    written to the plan's table, and nothing is looked up: the previous records are read in
    order. A build that changes nothing is decided there (a no-change rebuild of 100,000 files:
    5.95 s -> 3.12 s); otherwise the items it held are the first deferred ones (:class:`Deferred`).
    Compared as :meth:`.plan.Planner.unchanged_by_stat` compares; the first difference ends it.

    A record is compared as text first (:func:`unchanged_text`), parsed only when that cannot tell
    or it has problems to report: a record's JSON (~2 KB, most of it its index rows) took a third
    of a no-change rebuild to parse."""

    def __init__(self, planner: Planner, tree: Tree) -> None:
        assert planner.previous is not None
        self.planner, self.previous, self.tree = planner, planner.previous, tree
        self.records: Iterator[str] | None = self.previous.in_order()
        self.seen = Deferred()
        self.as_text = self.previous.nodes is not None  # the head counts the nodes (else each record does)

    @property
    def count(self) -> int:
        return self.seen.count

    @property
    def holds(self) -> bool:
        return self.records is not None

    def __call__(self, item: WorkItem) -> bool:
        if self.records is None:
            return False
        line = next(self.records, None)
        if line is None:
            self.records = None
            return False
        entries = unchanged_text(self.planner, item, line) if self.as_text else -1
        if entries >= 0 and line.endswith(_NO_PROBLEMS):
            self.seen.add_text(self.tree, item.node_path, line[entries] != "]")
            return True
        old = ManifestItem.from_json(json.loads(line))
        # (stat_matches asks read_now too)
        changed = old.node_path != item.node_path or not self.planner.stat_matches(item, old) if entries < 0 else self.planner.read_now(item, old)
        if changed:
            self.records = None  # something changed: the build goes on as ever
            return False
        self.seen.add(self.tree, item.node_path, old)
        return True

    def taken(self, node_path: str) -> str | None:
        """The first file of the held item at ``node_path``, if one is (a clash with a later item)."""
        seq = self.previous.seq_of(node_path) if self.seen.count else None
        if seq is None or seq >= self.seen.count:
            return None
        old = self.previous.old(node_path)
        return old.files[0].path if old is not None and old.files else node_path


def as_recorded(failures: list[Problem]) -> list[Problem]:
    """A reused record's failures as the report says them: recorded, not met again."""
    return [replace(p, reason=f"{p.reason} (recorded: the file is unchanged since it failed, so it was not read again; touch it "
                              "to try again)") for p in failures]


_NO_PROBLEMS = '],"warnings":[],"skipped":[]}'


def unchanged_text(planner: Planner, item: WorkItem, line: str) -> int:
    """Where the index rows start in ``line``, a record as :meth:`ManifestItem.to_json` writes it,
    when it begins as ``item``'s record would if unchanged (its node path, settings, planned
    metadata, and files by path, size, mtime and ctime, whatever their hashes); else -1 (which is not
    "changed": only a parsed record can tell, :meth:`.plan.Planner.stat_matches`). Equal text is
    equal fields, so a match is never wrong."""
    head = f'{{"node_path":{quoted(item.node_path)},"settings":{quoted(planner.settings(item))},"metadata":{quoted(planner.item_metadata(item))},"files":['
    if not line.startswith(head):
        return -1
    at = len(head)
    for i, path in enumerate(item.paths):
        try:
            st = os.stat(path)
        except OSError:
            return -1
        file = f'{"," if i else ""}{{"path":{quoted(planner.shown(path))},"size":{st.st_size},"mtime_ns":{st.st_mtime_ns},"ctime_ns":{st.st_ctime_ns},"hash":'
        if not line.startswith(file, at):
            return -1
        at = line.find("}", at + len(file)) + 1  # past the hash: a string of letters, digits and ":", or null
        if not at:
            return -1
    return at + len(_ENTRIES) if line.startswith(_ENTRIES, at) else -1


_ENTRIES = '],"entries":['


def relative_record(planner: Planner, old: ManifestItem) -> ManifestItem:
    """A record of a release built before 2026-12-05, its files and entries' source paths made
    relative to pipeline.yml's folder as they are published now (then it matches as text)."""
    shown = planner.shown
    entries = [{**e, "source_file": shown(e["source_file"])} if e.get("source_file") and os.path.isabs(e["source_file"]) else e
               for e in old.entries]
    again = replace(old, files=[replace(f, path=shown(f.path)) for f in old.files], entries=entries)
    again.seq = old.seq
    return again
