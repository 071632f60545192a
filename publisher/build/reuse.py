"""Items a build reuses as they were: counted while every one so far is the previous release's,
in its order (:class:`Deferred`), and the plan's watch that decides a no-change build without
writing or reading the plan back (:class:`AsBefore`, :class:`.items.Ahead`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..formats import ManifestItem, Problem
from ..sources import WorkItem
from .plan import Planner
from .publish import Tree


@dataclass
class Deferred:
    """What items reused as they were, in the previous release's order, would add to the report:
    while every item so far is, the build adds only their folders to its tree, since nothing may
    change (else their records are merged then, :meth:`publisher.build._Build.replay`)."""

    count: int = 0
    nodes: Counter[str] = field(default_factory=Counter)
    warnings: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)

    def add(self, tree: Tree, node_path: str, old: ManifestItem) -> None:
        """One more item as it was: its nodes counted, its folders in ``tree``."""
        if old.entries:
            tree.ensure_folders(node_path)
        for data in old.entries:
            self.nodes[data["family"]] += 1
        self.warnings += old.warnings
        self.skipped += old.skipped
        self.count += 1


class AsBefore:
    """Watches the plan as it is written (:class:`.items.Ahead`): is every item so far the previous
    release's next, with the same settings and files (size and mtime)? Those are counted, not
    written to the plan's table, and nothing is looked up: the previous records are read in
    order. A build that changes nothing is decided there (a no-change rebuild of 100,000 files:
    5.95 s -> 3.12 s); otherwise the items it held are the first deferred ones (:class:`Deferred`).
    Compared as :meth:`.plan.Planner.unchanged_by_stat` compares; the first difference ends it."""

    def __init__(self, planner: Planner, tree: Tree) -> None:
        assert planner.previous is not None
        self.planner, self.previous, self.tree = planner, planner.previous, tree
        self.records: Iterator[ManifestItem] | None = self.previous.in_order()
        self.seen = Deferred()

    @property
    def count(self) -> int:
        return self.seen.count

    @property
    def holds(self) -> bool:
        return self.records is not None

    def __call__(self, item: WorkItem) -> bool:
        if self.records is None:
            return False
        old = next(self.records, None)
        if old is None or old.node_path != item.node_path or not self.planner.stat_matches(item, old):
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
