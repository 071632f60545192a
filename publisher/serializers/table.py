"""Table serializers (pyarrow tables in): Arrow IPC file, Parquet, CSV, JSON, JSON-seq, Excel, HTML."""

from __future__ import annotations

import html
import io
import json
from typing import Any

from . import register


def _pa() -> Any:
    import pyarrow as pa

    return pa


@register("table", "application/vnd.apache.arrow.file", ("arrow", "feather"), ".arrow")
def to_arrow(table: Any, **_: Any) -> bytes:
    pa = _pa()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


@register("table", "application/x-parquet", ("parquet",), ".parquet")
def to_parquet(table: Any, **_: Any) -> bytes:
    import pyarrow.parquet as pq

    sink = _pa().BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


@register("table", "text/csv", ("csv",), ".csv")
def to_csv(table: Any, **_: Any) -> bytes:
    import pyarrow.csv as pacsv

    sink = _pa().BufferOutputStream()
    pacsv.write_csv(table, sink)
    return sink.getvalue().to_pybytes()


def _records(table: Any) -> list[dict[str, Any]]:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and v != v:
            return None
        if isinstance(v, bytes):
            return v.decode("utf-8", "replace")
        if hasattr(v, "isoformat"):
            return v.isoformat()
        return v

    return [{k: clean(v) for k, v in row.items()} for row in table.to_pylist()]


@register("table", "application/json", ("json",), ".json")
def to_json(table: Any, **_: Any) -> bytes:
    """Column-oriented, as Tiled's JSON for tables: ``{column: [values...]}``."""
    rows = _records(table)
    return json.dumps({name: [r[name] for r in rows] for name in table.column_names}, separators=(",", ":"), default=str).encode()


@register("table", "application/json-seq", ("json-seq", "jsonl"), ".jsonl")
def to_json_seq(table: Any, **_: Any) -> bytes:
    """RFC 7464: each record is RS + JSON + LF."""
    return b"".join(b"\x1e" + json.dumps(r, separators=(",", ":"), default=str).encode() + b"\n" for r in _records(table))


@register("table", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ("xlsx", "excel"), ".xlsx")
def to_xlsx(table: Any, **_: Any) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("data")
    sheet.append(table.column_names)
    for row in _records(table):
        sheet.append(list(row.values()))
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


@register("table", "text/html", ("html",), ".html")
def to_html(table: Any, **_: Any) -> bytes:
    rows = _records(table.slice(0, 1000))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.column_names)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values()) + "</tr>" for r in rows)
    more = f"<p>{table.num_rows - 1000} more rows not shown</p>" if table.num_rows > 1000 else ""
    return f"<!doctype html><meta charset=utf-8><table><tr>{head}</tr>{body}</table>{more}".encode()
