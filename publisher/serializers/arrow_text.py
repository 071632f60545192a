"""Arrow values as the text and JSON values that formats without Arrow's types hold (CSV, Excel,
JSON, a table column served as an array of text). One rendering for all of them, so a value
reads the same in every format: nested values as JSON, binary as UTF-8, the rest as Python
prints them (a UUID as ``8-4-4-4-12`` hex)."""

from __future__ import annotations

import json
import math
from typing import Any


def clean(value: Any) -> Any:
    """A value as JSON holds it: NaN and infinities as null at any depth (a list's or struct's
    too: ``json.dumps`` wrote them as NaN and Infinity, which no JSON parser takes), bytes as
    UTF-8 text, dates and times as ISO text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def dumps(value: Any) -> str:
    """A :func:`clean` value as strict JSON, compact (``allow_nan=False``: a NaN left is a bug, not bad JSON)."""
    return json.dumps(value, separators=(",", ":"), default=str, allow_nan=False)


def text(value: Any) -> str | None:
    """One value as text (None stays None): lists, structs and maps as JSON, bytes as UTF-8
    (U+FFFD where they are not), anything else as ``str`` gives it."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, dict)):
        return dumps(clean(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def is_plain(kind: Any) -> bool:
    """Whether pyarrow's CSV writer writes this type as it is (others it refuses: "Unsupported
    Type", or cannot cast to text: extension types, views, intervals, nested, binary)."""
    import pyarrow.types as t

    if t.is_dictionary(kind):
        return is_plain(kind.value_type)
    return any(check(kind) for check in (t.is_null, t.is_boolean, t.is_integer, t.is_floating, t.is_decimal, t.is_date,
                                         t.is_time, t.is_timestamp, t.is_duration, t.is_string, t.is_large_string))


def as_text(column: Any) -> Any:
    """A column (an Arrow array or chunked array) as Arrow strings: :func:`text` of its values,
    or the CSV writer's text for the types it writes (:func:`is_plain`)."""
    import pyarrow as pa

    if is_plain(column.type) or pa.types.is_string_view(column.type):  # Arrow's own text (a time's nanoseconds too), no Python loop
        return column.cast(pa.string())
    return pa.array([text(v) for v in column.to_pylist()], pa.string())


def flat(table: Any) -> Any:
    """The table with every column that is not :func:`is_plain` as text: what CSV and Excel can
    hold (they failed on the others: a 500 for a table with one such column)."""
    import pyarrow as pa

    for i, field in enumerate(table.schema):
        if not is_plain(field.type):
            table = table.set_column(i, pa.field(field.name, pa.string()), as_text(table.column(i)))
    return table
