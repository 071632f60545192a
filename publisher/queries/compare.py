"""Queries comparing one metadata value (at a dotted ``key``) as SQLite compares them: ``eq``,
``noteq``, ``comparison``, ``in``, ``notin``, ``keypresent``. On search columns, a binary search
in the sorted distinct values, then one vectorised test of the codes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import BadRequest
from .base import FLAG, JSON, KeyValue, Query, register
from .regex import shown
from .sqlite import MISSING, compare, lookup, sql

if TYPE_CHECKING:
    from ..formats import Entry

_OPERATORS = ("lt", "le", "gt", "ge")


class _Ordered(Query):
    """``key op value`` for one of eq, noteq, lt, le, gt, ge."""

    key: str
    value: Any

    @property
    def op(self) -> str:
        return self.name

    def on_row(self, entry: Entry) -> bool:
        return compare(self.op, sql(lookup(entry.metadata, self.key)), sql(self.value))

    def on_columns(self, cols: Any) -> Any:
        from .columnar import nothing

        column, value = cols.column(self.key), sql(self.value)
        if column is None or value is None:
            return nothing(cols)  # NULL compares to nothing
        lo, hi = column.equal_range(value)
        if self.op == "eq":
            return column.rows_in(lo, hi)
        if self.op == "noteq":
            return column.rows_in(lo, hi, exclude=True)
        bounds = {"lt": (0, lo), "le": (0, hi), "gt": (hi, column.size), "ge": (lo, column.size)}
        return column.rows_in(*bounds[self.op])


@register
@dataclass
class Eq(_Ordered, KeyValue):
    name = "eq"


@register
@dataclass
class NotEq(_Ordered, KeyValue):
    name = "noteq"


@register
@dataclass
class Comparison(_Ordered):
    name = "comparison"
    operator: str
    key: str
    value: Any = field(metadata=JSON)

    @property
    def op(self) -> str:
        return self.operator

    def validate(self) -> None:
        if self.operator not in _OPERATORS:
            raise BadRequest(f"filter[comparison][condition][operator] must be lt, le, gt or ge, got {shown(self.operator)}")


class _Membership(Query):
    """The value equals one of a list (``in``), or none of them (``notin``, never for a missing key)."""

    key: str
    value: Any
    negate = False

    def validate(self) -> None:
        self.expect("value", list, "a JSON list")

    def on_row(self, entry: Entry) -> bool:
        if not self.value:
            return self.negate  # nothing is in an empty list; everything is not
        value = sql(lookup(entry.metadata, self.key))
        if value is None:
            return False
        found = any(compare("eq", value, sql(o)) for o in self.value)
        return found != self.negate

    def on_columns(self, cols: Any) -> Any:
        from .columnar import nothing

        none = nothing(cols)
        if not self.value:
            return ~none if self.negate else none
        column = cols.column(self.key)
        if column is None:
            return none
        import numpy as np

        chosen = np.zeros(column.size + 1, dtype=bool)
        for option in self.value:
            value = sql(option)
            if value is not None:
                lo, hi = column.equal_range(value)
                chosen[lo:hi] = True
        if self.negate:
            chosen[: column.size] = ~chosen[: column.size]
        return column.rows_where(chosen)


@register
@dataclass
class In(_Membership, KeyValue):
    name = "in"


@register
@dataclass
class NotIn(_Membership, KeyValue):
    name = "notin"
    negate = True


@register
@dataclass
class KeyPresent(Query):
    """The key is there (even holding null), or with ``exists=false`` it is not."""

    name = "keypresent"
    key: str
    exists: bool = field(default=True, metadata=FLAG)

    def on_row(self, entry: Entry) -> bool:
        return (lookup(entry.metadata, self.key) is not MISSING) == self.exists

    def on_columns(self, cols: Any) -> Any:
        from .columnar import nothing

        column = cols.column(self.key)
        present = column.present() if column is not None else nothing(cols)
        return present if self.exists else ~present
