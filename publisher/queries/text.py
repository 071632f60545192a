"""Queries on text: ``fulltext`` (FTS5's words of the whole metadata document), ``regex`` (Tiled's
in-memory ``re.search`` on string values; SQLite has none), ``contains`` and ``like`` (SQL
``LIKE`` on the value's text). Patterns run on RE2 (:mod:`.regex`); on search columns, one RE2
pass over a column's distinct texts, and posting lists for ``fulltext``."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import BadRequest
from .base import FLAG, JSON, KeyValue, Query, register
from .regex import TextTest, like, regex
from .sqlite import like_text, lookup, sql, tokens

if TYPE_CHECKING:
    from ..formats import Entry


#: FTS5's operators and syntax outside a quoted phrase: OR, AND, NOT, NEAR (upper case), a
#: prefix ``*``, a group's parentheses, a column filter's ``:``, an initial-token ``^``.
_FTS5_SYNTAX = re.compile(r"(?:^|\s)(?:OR|AND|NOT|NEAR)(?=\s|$|\()|[*()^:]")
_QUOTED = re.compile(r'"[^"]*"')


@register
@dataclass
class FullText(Query):
    name = "fulltext"
    text: str

    def validate(self) -> None:
        """FTS5's query syntax (``a OR b``, ``NOT``, ``pre*``, groups) is refused, not read as words
        every node must hold (an empty answer, where Tiled's SQL catalog answers the expression)."""
        outside = _QUOTED.sub(" ", str(self.text))
        if found := _FTS5_SYNTAX.search(outside):
            raise BadRequest(f"filter[fulltext][condition][text]: {found.group(0).strip()!r} is FTS5 query syntax, which fulltext "
                             "here does not take: give the words every result holds (a \"quoted phrase\" too), and several "
                             "searches for OR")

    def on_row(self, entry: Entry) -> bool:
        terms = tokens(str(self.text))
        words = set(tokens(json.dumps(entry.metadata, ensure_ascii=False)))
        return bool(terms) and all(t in words for t in terms)

    def on_columns(self, cols: Any) -> Any:
        import numpy as np

        from .columnar import nothing

        none, terms = nothing(cols), tokens(str(self.text))
        if not terms:
            return none
        lists = sorted((cols.postings(t) for t in set(terms)), key=len)
        rows = lists[0]
        for other in lists[1:]:
            rows = np.intersect1d(rows, other, assume_unique=True)
        none[rows] = True
        return none


@register
@dataclass
class Regex(Query):
    name = "regex"
    key: str
    pattern: str
    case_sensitive: bool = field(default=True, metadata=FLAG)

    def compiled(self) -> TextTest:
        return regex(str(self.pattern), bool(self.case_sensitive))

    def validate(self) -> None:
        try:
            self.compiled()
        except BadRequest as exc:  # the pattern's own fault, said under the parameter's name
            raise BadRequest(f"filter[regex][condition][pattern]: {exc}") from None

    def on_row(self, entry: Entry) -> bool:
        raw = lookup(entry.metadata, self.key)
        return isinstance(raw, str) and self.compiled().test(raw)

    def on_columns(self, cols: Any) -> Any:
        from .columnar import nothing, text_rows

        column = cols.column(self.key)
        return text_rows(column, self.compiled(), strings_only=True) if column is not None else nothing(cols)


class _Like(Query):
    """SQL ``LIKE`` on the value's text (numbers written out; objects and arrays as JSON text)."""

    key: str

    def compiled(self) -> TextTest:
        raise NotImplementedError

    def on_row(self, entry: Entry) -> bool:
        text = like_text(sql(lookup(entry.metadata, self.key)))
        return text is not None and self.compiled().test(text)

    def on_columns(self, cols: Any) -> Any:
        from .columnar import nothing, text_rows

        column = cols.column(self.key)
        return text_rows(column, self.compiled(), strings_only=False) if column is not None else nothing(cols)


@register
@dataclass
class Contains(_Like, KeyValue):
    name = "contains"

    def compiled(self) -> TextTest:
        return like(f"%{like_text(sql(self.value))}%")


@register
@dataclass
class Like(_Like):
    name = "like"
    key: str
    pattern: Any = field(metadata=JSON)

    def validate(self) -> None:
        self.expect("pattern", str, "a JSON string")

    def compiled(self) -> TextTest:
        return like(str(self.pattern))
