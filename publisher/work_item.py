"""The unit of a build's work: one node to read, a file or a stack of files, with its source,
node path and the reader that reads it (detected on first use)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config.models import Source
from .readers import Reader, detect
from .source_walk import Kind


class _Unset(enum.Enum):
    """Not detected yet: an enum member, so it is still itself after pickling (items go to Dask workers)."""

    UNSET = "unset"


_UNSET: Any = _Unset.UNSET


@dataclass
class WorkItem:
    """One node to read: a file, or a stack of files that becomes one array."""

    source_index: int
    source: Source
    paths: list[Path]
    node_path: str
    forced_reader: type[Reader] | None = None  # the source's `type:`
    options: Any = None  # parsed reader options; None until needed when the source has none
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: (kind, reason) of a path found but not to be read: "failure" (a symlink loop), "skipped"
    #: (a refused or dangling link) or "warning" (a link leaving the source folder, followed)
    problem: tuple[Kind, str] | None = None
    #: Records of the previous release at other paths this file may be, moved or copied
    #: (:mod:`publisher.build.moved`), for its worker to compare by content hash.
    moved: list[Any] = field(default_factory=list, repr=False)
    _reader: Any = field(default=_UNSET, repr=False)

    @property
    def is_stack(self) -> bool:
        """Whether it is a stack of its source's ``stack`` field, of one frame or more."""
        return self.source.stack is not None and f"{self.source.stack}_values" in self.metadata

    @property
    def reader(self) -> type[Reader] | None:
        """Detected on first use: an unchanged file reused by an incremental build is never opened."""
        if self._reader is _UNSET:
            self._reader = self.forced_reader or detect(self.paths[0])
        return self._reader

    def reader_options(self) -> Any:
        if self.options is None and self.reader is not None:
            self.options = self.reader.parse_options(self.source.options)
        return self.options

    @property
    def key(self) -> str:
        return self.node_path.rpartition("/")[2]

    @property
    def label(self) -> str:
        return str(self.paths[0]) if len(self.paths) == 1 else f"{self.paths[0]} (+{len(self.paths) - 1} stacked)"
