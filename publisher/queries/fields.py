"""Queries on an entry's own fields rather than its metadata: ``lookup`` and ``keys_filter`` (its
key), ``structure_family``, ``specs`` and ``access_tags_filter``. On search columns each field is
a column of few distinct values, tested one value at a time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .base import JSON, Query, register

if TYPE_CHECKING:
    from ..formats import Entry

_STRINGS = "a JSON list of strings"


@register
@dataclass
class Lookup(Query):
    name = "lookup"
    key: str

    def on_row(self, entry: Entry) -> bool:
        return entry.key == self.key

    def on_columns(self, cols: Any) -> Any:
        from .columnar import field_rows

        return field_rows(cols, "key", lambda v: v == self.key)


@register
@dataclass
class Specs(Query):
    """Every spec of ``include`` and none of ``exclude``."""

    name = "specs"
    include: Any = field(metadata=JSON)
    exclude: Any = field(metadata=JSON)

    def validate(self) -> None:
        self.expect("include", list, _STRINGS, str)
        self.expect("exclude", list, _STRINGS, str)

    def holds(self, specs: Any) -> bool:
        return set(self.include) <= set(specs or ()) and not (set(self.exclude) & set(specs or ()))

    def on_row(self, entry: Entry) -> bool:
        return self.holds(entry.specs)

    def on_columns(self, cols: Any) -> Any:
        from .columnar import field_rows

        return field_rows(cols, "specs", self.holds)


@register
@dataclass
class StructureFamily(Query):
    name = "structure_family"
    value: str

    def on_row(self, entry: Entry) -> bool:
        return entry.family == self.value

    def on_columns(self, cols: Any) -> Any:
        from .columnar import field_rows

        return field_rows(cols, "family", lambda v: v == self.value)


@register
@dataclass
class KeysFilter(Query):
    name = "keys_filter"
    keys: Any = field(metadata=JSON)

    def validate(self) -> None:
        self.expect("keys", list, _STRINGS, str)

    def on_row(self, entry: Entry) -> bool:
        return entry.key in self.keys

    def on_columns(self, cols: Any) -> Any:
        from .columnar import field_rows

        return field_rows(cols, "key", lambda v: v in self.keys)


@register
@dataclass
class AccessTagsFilter(Query):
    """Any of ``tags`` among the entry's access tags."""

    name = "access_tags_filter"
    tags: Any = field(metadata=JSON)

    def validate(self) -> None:
        self.expect("tags", list, _STRINGS, str)

    def on_row(self, entry: Entry) -> bool:
        return bool(set(entry.access_tags or []) & set(self.tags))

    def on_columns(self, cols: Any) -> Any:
        from .columnar import field_rows

        return field_rows(cols, "access_tags", lambda v: bool(set(v or ()) & set(self.tags)))
