"""One node's index entry, as the build writes it and the index holds it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Entry:
    path: str
    key: str
    family: str
    specs: list[str]
    metadata: dict[str, Any]
    structure: dict[str, Any]
    data_url: str | None
    source_file: str | None
    source_path: str | None
    access_tags: list[str] | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def parent(self) -> str | None:
        if self.path == "":
            return None
        return self.path.rpartition("/")[0]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        """The inverse of :meth:`to_json` (``parent`` is derived from ``path``)."""
        return cls(**{k: v for k, v in data.items() if k != "parent"})

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path, "key": self.key, "parent": self.parent, "family": self.family,
            "specs": self.specs, "metadata": self.metadata, "structure": self.structure,
            "data_url": self.data_url, "source_file": self.source_file, "source_path": self.source_path,
            "access_tags": self.access_tags, "notes": self.notes,
        }
