"""What a build reports: its problems (warnings, skipped, failures) and its numbers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Problem:
    path: str
    reason: str
    source: str | None = None

    def __str__(self) -> str:
        where = f" ({self.source})" if self.source else ""
        return f"{self.path or '/'}{where}: {self.reason}"


@dataclass
class BuildReport:
    release: str
    store: str
    published: bool = False
    nodes: dict[str, int] = field(default_factory=lambda: {"container": 0, "array": 0, "table": 0})
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    warnings: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    failures: list[Problem] = field(default_factory=list)
    #: Items (files or stacks) converted in this build, and reused unchanged from the previous release.
    converted: int = 0
    reused: int = 0
    #: True when nothing changed: no release was written and the catalog still points at ``release``.
    unchanged: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "release": self.release, "store": self.store, "published": self.published, "nodes": self.nodes,
            "converted": self.converted, "reused": self.reused, "unchanged": self.unchanged,
            "bytes_in": self.bytes_in, "bytes_out": self.bytes_out, "seconds": round(self.seconds, 3),
            **{k: [vars(p) for p in getattr(self, k)] for k in ("warnings", "skipped", "failures")},
        }
