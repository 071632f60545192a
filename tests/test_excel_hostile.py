"""Workbooks made to cost what their size does not say, or to say what Excel cannot (a
hostile-input review's repros, scaled down): a shared string of megabytes deflated from
kilobytes, rows numbered out of order or past Excel's last."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import openpyxl
import pyarrow as pa
import pytest

from publisher.errors import SourceError, UnsupportedError
from publisher.readers import excel, excel_scan, excel_strings
from publisher.readers.excel import ExcelOptions, ExcelReader

from .test_excel_chunks import write_sheet
from .test_excel_review import _book

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def _read(path: Path) -> pa.Table:
    with ExcelReader().open(path, "k", ExcelOptions()) as node:
        return pa.Table.from_batches(list(node.batches()), schema=node.schema)


def _with_part(path: Path, part: str, data: bytes) -> Path:
    """The workbook at ``path`` with ``part`` replaced by ``data`` (deflated as hard as zip can)."""
    with zipfile.ZipFile(path) as book:
        items = [(item, book.read(item)) for item in book.infolist()]
    with zipfile.ZipFile(path, "w") as out:
        for item, old in items:
            out.writestr(item, data if item.filename == part else old, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return path


@pytest.mark.parametrize("on_disk", [False, True])
def test_a_shared_string_past_the_bound_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, on_disk: bool) -> None:
    """One ``<si>`` of 3 MiB (no cell of Excel's holds more than 32,767 characters) is refused before
    it is read whole, however it hides its end (``si>`` in its text, ``</si>`` in a CDATA section);
    a string of Excel's longest, and one of rich-text runs, are read. (1.5 GiB from 1.5 MB was
    killed at 23 GB: the table's parser kept the string whole.)"""
    if on_disk:
        monkeypatch.setattr(excel_strings, "IN_MEMORY_BYTES", 0)
    path = tmp_path / "fine.xlsx"
    write_sheet(path, ["a", "b"], [["x", "y"]], shared=True)  # (strings: a, b, x, y)
    longest = "x" * 32767
    rich = f'<si><r><rPr><b/></rPr><t>bo</t></r><r><t xml:space="preserve">ld </t></r></si><si><t>{longest}</t></si>'
    _with_part(path, "xl/sharedStrings.xml", f'<sst xmlns="{_MAIN}"><si><t>a</t></si><si><t>b</t></si>{rich}</sst>'.encode())
    assert _read(path).to_pylist() == [{"a": "bold ", "b": longest}]
    text = "A" * 2**20 + "basi>" + "A" * 2**20 + "<![CDATA[</si><si>]]>" + "A" * 2**20
    _with_part(path, "xl/sharedStrings.xml", f'<sst xmlns="{_MAIN}"><si><t>{text}</t></si><si><t>b</t></si></sst>'.encode())
    with pytest.raises(SourceError, match=r"fine\.xlsx: not a readable Excel workbook: xl/sharedStrings\.xml: a shared string "
                                          r"takes more than 2 MiB of XML \(Excel keeps at most 32,767 characters in a cell\): refused"):
        _read(path)


def test_sheets_of_identical_rows_are_no_zip_bomb(tmp_path: Path) -> None:
    """The zip-bomb bound (excel_scan.MAX_RATIO) keeps what writers save, however repetitive, past
    the size it is checked from: rows all alike as openpyxl writes them (~12:1), and empty
    formatted rows as LibreOffice writes them (~45:1, the most compressible real form measured)."""
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    for _ in range(60_000):
        sheet.append([1, "the same text", 2.5, True])
    book.save(tmp_path / "same.xlsx")
    rows = "".join(f'<row r="{i}" customFormat="false" ht="12.8" hidden="false" customHeight="false" outlineLevel="0" '
                   'collapsed="false"></row>' for i in range(2, 100_000))
    body = f'<worksheet xmlns="{_MAIN}"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>a</t></is></c></row>{rows}</sheetData></worksheet>'
    empty = _with_part(_book(tmp_path / "empty.xlsx", [["a"]]), "xl/worksheets/sheet1.xml", body.encode())
    for path in (tmp_path / "same.xlsx", empty):
        with zipfile.ZipFile(path) as archive:
            part = next(name for name in archive.namelist() if name.startswith("xl/worksheets/"))
            assert archive.getinfo(part).file_size > excel_scan.RATIO_FROM_BYTES
            with excel_scan.bounded_part(archive, part) as stream:
                assert stream.read(1) == b"<"


def _sheet(rows: str) -> bytes:
    return f'<worksheet xmlns="{_MAIN}"><sheetData>{rows}</sheetData></worksheet>'.encode()


def _row(number: int | None, value: int | str) -> str:
    cell = f'<c t="inlineStr"><is><t>{value}</t></is></c>' if isinstance(value, str) else f"<c><v>{value}</v></c>"
    return (f'<row r="{number}">' if number is not None else "<row>") + cell + "</row>"


@pytest.mark.parametrize(("rows", "why"), [
    ([3, 2, 5], "row 2 comes after row 3 \\(rows are written in increasing order\\)"),
    ([2, 2], "row 2 comes after row 2 \\(rows are written in increasing order\\)"),
    ([0, 3], "a row numbered 0 \\(rows are numbered from 1\\)"),
    ([2_000_000], "row 2,000,000 is past Excel's last row \\(1,048,576\\)"),
], ids=["backwards", "repeated", "zero", "past-the-last"])
def test_rows_out_of_order_or_past_excels_last_are_refused(tmp_path: Path, rows: list[int], why: str) -> None:
    """A row's number (``r``) was trusted: rows written 1, 3, 2, 5 were published as 6 with values
    shifted, ``r="0"`` added rows, ``r="2000000"`` published 1,999,999 rows from a 1.5 KB file."""
    path = _book(tmp_path / "rows.xlsx", [["a"]])
    _with_part(path, "xl/worksheets/sheet1.xml", _sheet(_row(1, "a") + "".join(_row(n, n) for n in rows)))
    with pytest.raises(SourceError, match=f"rows\\.xlsx: sheet 'Sheet': not readable: {why}: refused"):
        _read(path)


def test_rows_numbered_in_order_or_not_at_all_are_read(tmp_path: Path) -> None:
    """Gaps are blank rows; a row without a number is the one after the row before."""
    path = _book(tmp_path / "rows.xlsx", [["a"]])
    _with_part(path, "xl/worksheets/sheet1.xml", _sheet(_row(1, "a") + _row(3, 3) + _row(None, 4) + _row(6, 6)))
    assert _read(path).column("a").to_pylist() == [None, 3, 4, None, 6]


_TRANSITIONAL_RELATIONS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_STRICT_MAIN = "http://purl.oclc.org/ooxml/spreadsheetml/main"


def _strict(xml: bytes) -> bytes:
    return xml.replace(_MAIN.encode(), _STRICT_MAIN.encode()).replace(
        _TRANSITIONAL_RELATIONS.encode(), b"http://purl.oclc.org/ooxml/officeDocument/relationships")


def test_a_strict_workbook_or_one_without_worksheets_is_never_published_empty(tmp_path: Path) -> None:
    """A Strict Open XML workbook (Excel's "Strict Open XML Spreadsheet": other namespaces) was
    published as an empty container with no word, as was any workbook whose sheets were not found."""
    path = _book(tmp_path / "strict.xlsx", [["a"], [1]])
    with zipfile.ZipFile(path) as book:
        workbook, sheet, relations = (book.read(part) for part in ("xl/workbook.xml", "xl/worksheets/sheet1.xml", "xl/_rels/workbook.xml.rels"))
    _with_part(_with_part(path, "xl/workbook.xml", _strict(workbook)), "xl/worksheets/sheet1.xml", _strict(sheet))
    with pytest.raises(UnsupportedError, match=r"strict\.xlsx: a Strict Open XML workbook \(xl/workbook\.xml is in "
                                               r"http://purl\.oclc\.org/ooxml/spreadsheetml/main\): not supported; save it as an Excel Workbook"):
        _read(path)
    # a Strict sheet in a workbook that is not (or a sheet in no namespace): not an empty table
    for rows in (_strict(sheet), sheet.replace(f' xmlns="{_MAIN}"'.encode(), b"")):
        path = _with_part(_book(tmp_path / "sheet.xlsx", [["a"], [1]]), "xl/worksheets/sheet1.xml", rows)
        with pytest.raises(SourceError, match=r"sheet\.xlsx: sheet 'Sheet': not readable: its rows are in namespace "
                                              r"(http://purl\.oclc\.org/ooxml/spreadsheetml/main|\(none\)), not in SpreadsheetML's"):
            _read(path)
    chart = relations.replace(b"relationships/worksheet", b"relationships/chartsheet")
    path = _with_part(_book(tmp_path / "charts.xlsx", [["a"]]), "xl/_rels/workbook.xml.rels", chart)
    with pytest.raises(UnsupportedError, match=r"charts\.xlsx: no worksheet: its sheets \('Sheet'\) are chart or other sheets without cells"):
        _read(path)
    path = _with_part(_book(tmp_path / "none.xlsx", [["a"]]), "xl/workbook.xml", re.sub(rb"<sheets>.*</sheets>", b"<sheets/>", workbook))
    with pytest.raises(SourceError, match=r"none\.xlsx: not a readable Excel workbook: xl/workbook\.xml lists no sheet"):
        _read(path)


def test_a_sheet_in_utf16_or_another_declared_encoding_is_read(tmp_path: Path) -> None:
    """Open XML allows UTF-16 (pandas reads it); such a sheet failed as having "no <sheetData>".
    A sheet is decoded as it is read, its text across the pieces it is read in (a character of two
    UTF-16 units cut between two reads); an encoding not known is refused naming the part."""
    rows = [["name", "n"], *([f"ü😀 row {i}", i] for i in range(6000))]
    path = _book(tmp_path / "u.xlsx", rows)
    expected = _read(path).to_pylist()
    with zipfile.ZipFile(path) as book:
        sheet = book.read("xl/worksheets/sheet1.xml").decode()
    declared = '<?xml version="1.0" encoding="{}"?>'
    for encoding, data in (("UTF-16", (declared.format("UTF-16") + sheet).encode("utf-16")),  # (little-endian, a byte-order mark)
                           ("UTF-16BE", (declared.format("UTF-16") + sheet).encode("utf-16-be")),  # (no mark)
                           ("ISO-8859-7", (declared.format("ISO-8859-7") + sheet.replace("ü😀", "αβ")).encode("iso-8859-7"))):
        _with_part(path, "xl/worksheets/sheet1.xml", data)
        assert _read(path).to_pylist() == [{"name": row["name"].replace("ü😀", "αβ") if encoding == "ISO-8859-7" else row["name"],
                                            "n": row["n"]} for row in expected], encoding
    _with_part(path, "xl/worksheets/sheet1.xml", (declared.format("x-unknown") + sheet).encode())
    with pytest.raises(SourceError, match=r"u\.xlsx: not a readable Excel workbook: ValueError: xl/worksheets/sheet1\.xml: its XML is "
                                          r"encoded 'x-unknown', an encoding not known here \(Open XML writes UTF-8 or UTF-16\): not supported"):
        _read(path)


_READ_BOTH = """
import sys
from pathlib import Path
from publisher.readers.excel import ExcelOptions, ExcelReader

def high_water():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))

peaks, rows, largest = [], 0, 0
for path in sys.argv[1:]:
    with ExcelReader().open(Path(path), "k", ExcelOptions()) as node:
        for batch in node.batches():
            rows, largest = rows + batch.num_rows, max(largest, batch.nbytes)
    peaks.append(high_water())
print(rows, largest, peaks[1] - peaks[0])
"""


def test_cells_naming_one_long_string_are_read_in_chunks_of_bounded_text(tmp_path: Path) -> None:
    """Cells all naming one shared string of Excel's longest (32,767 characters) cost ~70 KB each
    once read (pandas and Arrow copy the string for each): chunks counted in cells alone made
    20,000 of them (a 105 KB file) 1.4 GB, a chunk's 500,000 ~35 GB. A chunk ends on its text's
    bytes too: after 2,000 such cells, 10,000 raise the peak by little (it was by ~560 MB)."""
    import subprocess
    import sys

    for count in (2_000, 10_000):
        path = tmp_path / f"{count}.xlsx"
        write_sheet(path, ["a"], [["x"]], shared=True)  # (strings: a, x)
        _with_part(path, "xl/sharedStrings.xml", f'<sst xmlns="{_MAIN}"><si><t>a</t></si><si><t>{"x" * 32767}</t></si></sst>'.encode())
        rows = "".join(f'<row r="{n}"><c r="A{n}" t="s"><v>1</v></c></row>' for n in range(2, count + 2))
        _with_part(path, "xl/worksheets/sheet1.xml", _sheet('<row r="1"><c r="A1" t="s"><v>0</v></c></row>' + rows))
    done = subprocess.run([sys.executable, "-c", _READ_BOTH, str(tmp_path / "2000.xlsx"), str(tmp_path / "10000.xlsx")],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    rows, largest, grown = map(int, done.stdout.split())
    assert rows == 12_000 and grown < 64 * 2**20, grown >> 20
    assert largest < 2 * excel.CHUNK_TEXT_BYTES, largest >> 20  # (a batch: ~16 MiB of text, not 330 MB)


def test_chunks_their_text_ends_early_publish_what_one_chunk_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A workbook read in chunks its text ends after a row or two publishes what it does read in one
    chunk: the same values, types, names and warnings. The types of the first chunk's full number of
    rows are kept: integers with a blank among them floats (as pandas reads them), a column of
    numbers and dates text (a chunk of its numbers alone failed the dates below), a column blank
    in the first rows typed by its values below them."""
    import datetime

    import pandas as pd
    import pyarrow.parquet as pq

    from .conftest import run_build

    start = datetime.datetime(2024, 3, 1, 12, 30)
    rows = [["count", "when", "late", "mixed", "code", "note", "flag", "level", "ratio", "elapsed"]]
    for i in range(60):
        rows.append([None if i == 40 else i, None if i % 9 == 0 else start + datetime.timedelta(days=i),
                     None if i < 30 else start - datetime.timedelta(hours=i), i if i < 5 else start, f"{i:03d}",
                     None if i % 4 == 0 else f"{'a long note ' * 30}{i}", None if i == 50 else i % 2 == 0,
                     "NA" if i == 20 else i * 10, i / 8, datetime.time(0, i % 60)])
    published = {}
    for name, text_bytes in (("one", excel.CHUNK_TEXT_BYTES), ("tiny", 100)):
        monkeypatch.setattr(excel, "CHUNK_TEXT_BYTES", text_bytes)
        (tmp_path / name).mkdir()
        _book(tmp_path / name / "book.xlsx", rows)
        published[name] = run_build(tmp_path / name, {"sources": [{"path": "book.xlsx"}]})
    one, tiny = (published[name].url("book") for name in ("one", "tiny"))
    assert pq.ParquetFile(one).num_row_groups == 1 and pq.ParquetFile(tiny).num_row_groups > 30  # (a batch a row group)
    assert pq.read_schema(tiny).equals(pq.read_schema(one), check_metadata=True), (pq.read_schema(tiny), pq.read_schema(one))
    pd.testing.assert_frame_equal(pd.read_parquet(tiny), pd.read_parquet(one))
    assert [w.reason for w in published["tiny"].report.warnings] == [w.reason for w in published["one"].report.warnings]
    table = pd.read_parquet(one)
    assert table["count"].dtype == "float64" and table["mixed"].iloc[4] == "4" and table["late"].dtype.kind == "M"


def test_a_column_of_dates_then_numbers_is_text_not_times(tmp_path: Path) -> None:
    """Arrow takes dates and numbers in one column for times, each number as microseconds since
    1970: 5 was published as 1970-01-01 00:00:00.000005. The column is text, as written."""
    import datetime

    path = _book(tmp_path / "mixed.xlsx", [["when", "n"], [datetime.datetime(2024, 1, 2), 1], [5, 2], [datetime.date(2024, 3, 4), 3]])
    table = _read(path)
    assert pa.types.is_string(table.schema.field("when").type) or pa.types.is_large_string(table.schema.field("when").type), table.schema
    values = table.column("when").to_pylist()
    assert values[0].startswith("2024-01-02") and values[1] == "5" and values[2].startswith("2024-03-04"), values
    assert table.column("n").to_pylist() == [1, 2, 3]


def test_a_workbook_part_that_is_not_xml_is_named(tmp_path: Path) -> None:
    """A damaged xl/workbook.xml failed as ParseError naming neither the part nor what it is."""
    path = tmp_path / "bad.xlsx"
    _with_part(_book(path, [["a"], [1]]), "xl/workbook.xml", b"<workbook><sheets><sheet name='x' </sheets>")
    with pytest.raises(SourceError, match=r"bad\.xlsx: its xl/workbook\.xml is not well-formed XML \(.*\): damaged\?"):
        _read(path)
