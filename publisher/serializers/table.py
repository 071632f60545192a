"""Table serializers (pyarrow tables in): Arrow IPC file, Parquet, CSV, JSON, JSON-seq, Excel, HTML."""

from __future__ import annotations

import datetime
import html
import io
import shutil
import zipfile
from collections.abc import Iterator
from typing import Any

from ..parallel import cores, map_parts, spans
from .arrow_text import clean, dumps, flat
from .base import register


def _pa() -> Any:
    import pyarrow as pa

    return pa


@register("table", "application/vnd.apache.arrow.file", ("arrow", "feather"), ".arrow")
def to_arrow(table: Any, **_: Any) -> bytes:
    """An IPC file holds one dictionary a column, but each Parquet row group (and partition) read
    has its own: they are unified first (the writer refused a second one: a 500)."""
    pa = _pa()
    sink = pa.BufferOutputStream()
    if any(pa.types.is_dictionary(f.type) or pa.types.is_nested(f.type) for f in table.schema):
        table = table.unify_dictionaries()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


@register("table", "application/x-parquet", ("parquet",), ".parquet")
def to_parquet(table: Any, **_: Any) -> bytes:
    import pyarrow.parquet as pq

    sink = _pa().BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


#: Tables with at least this many rows are written as CSV in row ranges on all cores.
CSV_PARALLEL_ROWS = 20_000
#: Rows per piece, at least: smaller pieces cost more in per-call overhead than they overlap.
CSV_PIECE_ROWS = 2_500


def csv_parts(table: Any, **_: Any) -> Iterator[bytes]:
    """pyarrow's CSV writer over row ranges, several at once for big tables (it releases the
    GIL), yielded in order as they finish. The pieces join into exactly the one-piece output."""
    import pyarrow.csv as pacsv

    table = flat(table)

    def write(span: tuple[int, int]) -> bytes:
        sink = _pa().BufferOutputStream()
        options = pacsv.WriteOptions(include_header=span[0] == 0, batch_size=65_536)  # fewer, larger batches: ~3% less CPU
        pacsv.write_csv(table.slice(span[0], span[1] - span[0]), sink, options)
        return sink.getvalue().to_pybytes()

    if table.num_rows < CSV_PARALLEL_ROWS or cores() < 2:
        yield write((0, table.num_rows))
        return
    # many pieces, so compressing the first ones overlaps writing the rest (50,000 rows, 2 cores,
    # CSV + zstd: 18.3 ms in two steps, 14.6 ms in 16 pieces)
    yield from map_parts(write, spans(table.num_rows, min(8 * cores(), table.num_rows // CSV_PIECE_ROWS)))


@register("table", "text/csv", ("csv",), ".csv", parts=csv_parts)
def to_csv(table: Any, **_: Any) -> bytes:
    """The CSV in one piece (50,000 rows on 2 cores: 17.6 -> 10.7 ms, see :func:`csv_parts`)."""
    return b"".join(csv_parts(table))


def _records(table: Any) -> list[dict[str, Any]]:
    return [{k: clean(v) for k, v in row.items()} for row in table.to_pylist()]


@register("table", "application/json", ("json",), ".json")
def to_json(table: Any, **_: Any) -> bytes:
    """Column-oriented, as Tiled's JSON for tables: ``{column: [values...]}``."""
    rows = _records(table)
    return dumps({name: [r[name] for r in rows] for name in table.column_names}).encode()


@register("table", "application/json-seq", ("json-seq", "jsonl"), ".jsonl")
def to_json_seq(table: Any, **_: Any) -> bytes:
    """RFC 7464: each record is RS + JSON + LF."""
    return b"".join(b"\x1e" + dumps(r).encode() + b"\n" for r in _records(table))


@register("table", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ("xlsx", "excel"), ".xlsx")
def to_xlsx(table: Any, **_: Any) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    def cell(value: Any) -> Any:  # control characters a worksheet cannot hold (IllegalCharacterError: a 500) as U+FFFD
        return ILLEGAL_CHARACTERS_RE.sub("\ufffd", value) if isinstance(value, str) else value

    from openpyxl.writer.excel import ExcelWriter

    book = Workbook(write_only=True)
    book.properties.created = book.properties.modified = _ZIP_EPOCH
    sheet = book.create_sheet("data")
    sheet.append([cell(name) for name in table.column_names])
    for row in _records(flat(table)):
        sheet.append([cell(v) for v in row.values()])
    buf = io.BytesIO()
    with _FixedTimeZip(buf, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        ExcelWriter(book, archive).save()  # (openpyxl's save_workbook, but into this archive and without "modified: now")
    return buf.getvalue()


#: The time a workbook says it was made, and its parts' times: one answer's bytes are the same
#: whenever it is made, as its ETag promises (openpyxl writes the time of saving into both: two
#: requests two seconds apart had one ETag and two bodies).
_ZIP_EPOCH = datetime.datetime(1980, 1, 1)


class _FixedTimeZip(zipfile.ZipFile):
    """A zip archive whose every member is dated :data:`_ZIP_EPOCH` (zipfile dates them now, or by their file)."""

    def writestr(self, name: Any, data: Any, compress_type: int | None = None, compresslevel: int | None = None) -> None:
        super().writestr(self._dated(name), data, compress_type, compresslevel)

    def write(self, filename: Any, arcname: Any = None, compress_type: int | None = None, compresslevel: int | None = None) -> None:
        with open(filename, "rb") as source, self.open(self._dated(arcname or filename), "w") as target:
            shutil.copyfileobj(source, target, 2**20)

    def _dated(self, name: Any) -> zipfile.ZipInfo:
        if isinstance(name, zipfile.ZipInfo):
            name.date_time = _ZIP_EPOCH.timetuple()[:6]
            return name
        info = zipfile.ZipInfo(str(name), date_time=_ZIP_EPOCH.timetuple()[:6])
        info.compress_type, info.external_attr = self.compression, 0o600 << 16
        return info


@register("table", "text/html", ("html",), ".html")
def to_html(table: Any, **_: Any) -> bytes:
    rows = _records(table.slice(0, 1000))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.column_names)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values()) + "</tr>" for r in rows)
    more = f"<p>{table.num_rows - 1000} more rows not shown</p>" if table.num_rows > 1000 else ""
    return f"<!doctype html><meta charset=utf-8><table><tr>{head}</tr>{body}</table>{more}".encode()
