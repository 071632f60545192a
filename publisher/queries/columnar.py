"""Helpers for queries answered on search columns (:mod:`publisher.index.columns_read`): numpy
masks from a column's distinct values. Imported only when a query runs on columns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .regex import TextTest
from .sqlite import like_text


def nothing(cols: Any) -> np.ndarray:
    """No row."""
    return np.zeros(cols.n, dtype=bool)


def text_rows(column: Any, test: TextTest, strings_only: bool) -> np.ndarray:
    """Rows whose value's text passes ``test``: strings only (``regex``), or numbers written out
    too (SQL ``LIKE``), never objects and arrays' JSON text for ``regex``."""
    chosen = np.zeros(column.size + 1, dtype=bool)
    nn = len(column.numbers)
    hit = column.texts.matching(test)
    if strings_only:
        hit &= ~column.text_json
    chosen[nn : column.size] = hit
    if not strings_only:  # numbers are matched by their text (SQL LIKE on a number)
        chosen[:nn] = [test.test(like_text(column.value(i))) for i in range(nn)]  # type: ignore[arg-type]
    return column.rows_where(chosen)


def per_value(column: Any, test: Callable[[Any], bool]) -> np.ndarray:
    """Rows whose decoded value passes ``test`` (for the entry fields: few distinct values)."""
    chosen = np.zeros(column.size + 1, dtype=bool)
    chosen[: column.size] = [test(column.decoded(i)) for i in range(column.size)]
    chosen[-1] = test(None)
    return column.rows_where(chosen)


def field_rows(cols: Any, field: str, test: Callable[[Any], bool]) -> np.ndarray:
    """Rows whose entry ``field`` (``key``, ``family``, ``specs``, ``access_tags``) passes ``test``."""
    column = cols.column(field, "fields")
    return per_value(column, test) if column is not None else nothing(cols)
