"""Excel sheets read in chunks of rows (issue 16: memory per worker bounded whatever the source
sizes): the types the whole sheet implies, not its first rows', and memory that does not grow
with the sheet."""

from __future__ import annotations

import datetime
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .conftest import run_build

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def _cell(ref: str, value: object, shared: list[str] | None = None) -> str:
    if isinstance(value, bool):
        return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>'
    if isinstance(value, (int, float)):
        return f'<c r="{ref}"><v>{value}</v></c>'
    if shared is not None:
        shared.append(str(value))
        return f'<c r="{ref}" t="s"><v>{len(shared) - 1}</v></c>'
    return f'<c r="{ref}" t="inlineStr"><is><t>{value}</t></is></c>'


def write_sheet(path: Path, header: list[str], rows, prefix: str = "", shared: bool = False) -> None:
    """A workbook of one sheet as a streaming writer saves it: inline strings, no styles and no
    ``<dimension>`` (openpyxl's ``load_workbook`` then parsed the whole sheet to find none).
    ``prefix``: elements written ``<x:row>`` as the Open XML SDK writes them; ``shared``: text in
    a shared-strings table, each cell its own entry, as Excel keeps it."""
    strings: list[str] | None = [] if shared else None
    rels = "http://schemas.openxmlformats.org/package/2006/relationships"
    office = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                   '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                   '<Default Extension="xml" ContentType="application/xml"/>'
                   '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
                   '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
                   '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
        z.writestr("_rels/.rels", f'<Relationships xmlns="{rels}"><Relationship Id="rId1" Type="{office}/officeDocument" Target="xl/workbook.xml"/></Relationships>')
        z.writestr("xl/workbook.xml", f'<workbook xmlns="{_MAIN}" xmlns:r="{office}"><sheets><sheet name="data" sheetId="1" r:id="rId1"/></sheets></workbook>')
        z.writestr("xl/_rels/workbook.xml.rels", f'<Relationships xmlns="{rels}"><Relationship Id="rId1" Type="{office}/worksheet" Target="worksheets/sheet1.xml"/>'
                   f'<Relationship Id="rId2" Type="{office}/sharedStrings" Target="sharedStrings.xml"/></Relationships>')
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as f:
            ns = f'xmlns:{prefix[:-1]}="{_MAIN}"' if prefix else f'xmlns="{_MAIN}"'
            f.write(f'<{prefix}worksheet {ns}><{prefix}sheetData>'.encode())
            for number, values in enumerate([header, *rows], 1):
                cells = "".join(_cell(f"{chr(65 + i)}{number}", v, strings) for i, v in enumerate(values) if v is not None)
                if prefix:
                    cells = cells.replace("<c ", f"<{prefix}c ").replace("</c>", f"</{prefix}c>").replace("<v>", f"<{prefix}v>").replace(
                        "</v>", f"</{prefix}v>").replace("<is><t>", f"<{prefix}is><{prefix}t>").replace("</t></is>", f"</{prefix}t></{prefix}is>")
                f.write(f'<{prefix}row r="{number}">{cells}</{prefix}row>'.encode())
            f.write(f"</{prefix}sheetData></{prefix}worksheet>".encode())
        with z.open("xl/sharedStrings.xml", "w", force_zip64=True) as f:
            f.write(f'<sst xmlns="{_MAIN}">'.encode())
            for text in strings or []:
                f.write(f"<si><t>{text}</t></si>".encode())
            f.write(b"</sst>")


def _rows(n: int):
    """Counts with a note far below the first chunk, integers that turn to fractions there,
    codes stored as text, booleans, and blanks."""
    for i in range(n):
        yield [f"note: row {i}" if i == n - 3 else i,
               2.5 if i == n - 10 else i * 2,
               f"{i % 1000:05d}",
               i % 3 == 0,
               None if i % 7 == 0 else i / 4]


@pytest.mark.parametrize("prefix", ["", "x:"])
def test_a_sheet_in_chunks_has_the_types_of_the_whole_sheet(tmp_path: Path, prefix: str) -> None:
    """The first 500 of 3,000 rows would make 'count' and 'twice' integers and 'code' numbers:
    the published table has what the whole sheet holds, in every chunk."""
    write_sheet(tmp_path / "log.xlsx", ["count", "twice", "code", "flag", "quarter"], list(_rows(3000)), prefix)
    published = run_build(tmp_path, {"sources": [{"path": "log.xlsx", "options": {"chunk_rows": 500}}]})
    table = pd.read_parquet(published.url("log"))
    assert len(table) == 3000 and list(table.columns) == ["count", "twice", "code", "flag", "quarter"]
    assert table["count"].tolist()[:3] == ["0", "1", "2"] and table["count"].iloc[2997] == "note: row 2997"
    assert table["twice"].dtype == np.float64 and table["twice"].iloc[2990] == 2.5 and table["twice"].iloc[2999] == 5998.0
    assert table["code"].tolist()[:2] == ["00000", "00001"] and table["code"].iloc[2999] == "00999"
    assert str(table["flag"].dtype) in ("bool", "boolean") and table["flag"].sum() == 1000
    assert table["quarter"].isna().sum() == len(range(0, 3000, 7)) and table["quarter"].iloc[1] == 0.25
    warnings = " | ".join(p.reason for p in published.report.warnings)
    assert "column 'count' mix numbers and text: published as text" in warnings, warnings


def test_one_chunk_and_many_give_the_same_table(tmp_path: Path) -> None:
    """A workbook as openpyxl saves it (shared strings, dates and times by their styles, booleans,
    blanks, a formula's stored value): read in chunks of 7 rows it is the table read at once, and
    that is what pandas reads where a column holds one kind."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["when", "value", "label", "ok", "elapsed", "sum"])
    start = datetime.datetime(2024, 3, 1, 12, 30)
    for i in range(50):
        sheet.append([start + datetime.timedelta(hours=i), None if i % 5 == 0 else i * 1.5, f"sample {i % 4}",
                      i % 2 == 0, datetime.time(0, i % 60), f"=B{i + 2}+1"])
    (tmp_path / "a").mkdir()
    book.save(tmp_path / "a" / "book.xlsx")
    (tmp_path / "b").mkdir()
    book.save(tmp_path / "b" / "book.xlsx")
    published = run_build(tmp_path, {"sources": [{"path": "a", "into": "whole"}, {"path": "b", "into": "chunked", "options": {"chunk_rows": 7}}]})
    whole, chunked = pd.read_parquet(published.url("whole/book")), pd.read_parquet(published.url("chunked/book"))
    pd.testing.assert_frame_equal(whole, chunked)
    read = pd.read_excel(tmp_path / "a" / "book.xlsx")
    for name in ["when", "value", "label", "ok"]:
        pd.testing.assert_series_equal(whole[name], read[name], check_dtype=False, obj=name)
    assert whole["when"].iloc[49] == pd.Timestamp("2024-03-03 13:30")


def test_a_later_chunk_that_changes_a_column_kind_fails_naming_it(tmp_path: Path) -> None:
    """Dates in the first chunk and numbers below (both numbers in the XML: only the styles tell)
    cannot be one column: the sheet fails naming the column, the rows and the option that decides
    from more rows, and nothing is published for it."""
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["t"])
    for i in range(20):
        book.active.append([datetime.datetime(2024, 1, 1 + i) if i < 10 else i])
    book.save(tmp_path / "mixed.xlsx")
    published = run_build(tmp_path, {"sources": [{"path": "mixed.xlsx", "options": {"chunk_rows": 10}}], "on_error": "skip"})
    reasons = " | ".join(p.reason for p in published.report.failures)
    assert "sheet 'Sheet': rows 12-21 do not fit the types its first 10 rows gave" in reasons and "'t'" in reasons, reasons
    assert "chunk_rows" in reasons and not list(published.catalog.entries(""))


_READ_BOTH = """
import sys
from pathlib import Path
from publisher.readers import excel_strings
from publisher.readers.excel import ExcelOptions, ExcelReader
excel_strings.IN_MEMORY_BYTES = 2**16  # both sheets' text on disk: a table this small would stay openpyxl's list

def high_water():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))

peaks = []
for path in sys.argv[1:]:
    with ExcelReader().open(Path(path), "k", ExcelOptions(chunk_rows=5000)) as node:
        rows = sum(batch.num_rows for batch in node.batches())
    peaks.append(high_water())
print(rows, peaks[1] - peaks[0])
"""


def test_memory_does_not_grow_with_the_sheet(tmp_path: Path) -> None:
    """Reading a sheet four times as long, after a short one, raises the process's peak memory by
    little: read whole (and through openpyxl's read-only rows, which keep an element for every
    row read) it grew with the rows (a build: +36 MB for 45,000 more rows); and its text, every cell
    its own shared string, kept as openpyxl's list: +11 MB for these 30,000 more rows."""
    import subprocess
    import sys

    for rows in (10_000, 40_000):
        texts = ([*row, f"sample {i:07d} of the long run, kept as Excel keeps text", f"operator note {i}: beam steady"]
                 for i, row in enumerate(_rows(rows)))
        write_sheet(tmp_path / f"{rows}.xlsx", ["count", "twice", "code", "flag", "quarter", "sample", "note"], texts, shared=True)
    done = subprocess.run([sys.executable, "-c", _READ_BOTH, str(tmp_path / "10000.xlsx"), str(tmp_path / "40000.xlsx")],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    rows, grown = map(int, done.stdout.split())
    assert rows == 40_000 and grown < 8 * 2**20, grown >> 20


def _book(path: Path, rows_xml: str, shared: list[str] | None = None, chart: bool = False) -> None:
    """A workbook of one worksheet ``data`` whose ``<sheetData>`` holds ``rows_xml`` as written,
    with a shared-strings table (as Excel and xlsxwriter keep text) and a chart sheet if asked."""
    rels = "http://schemas.openxmlformats.org/package/2006/relationships"
    office = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                   '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                   '<Default Extension="xml" ContentType="application/xml"/>'
                   '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
                   '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
                   + ('<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>' if shared else "")
                   + ('<Override PartName="/xl/chartsheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.chartsheet+xml"/>' if chart else "")
                   + "</Types>")
        z.writestr("_rels/.rels", f'<Relationships xmlns="{rels}"><Relationship Id="rId1" Type="{office}/officeDocument" Target="xl/workbook.xml"/></Relationships>')
        sheets = '<sheet name="data" sheetId="1" r:id="rId1"/>' + ('<sheet name="plot" sheetId="2" r:id="rId2"/>' if chart else "")
        z.writestr("xl/workbook.xml", f'<workbook xmlns="{_MAIN}" xmlns:r="{office}"><sheets>{sheets}</sheets></workbook>')
        links = (f'<Relationship Id="rId1" Type="{office}/worksheet" Target="worksheets/sheet1.xml"/>'
                 + (f'<Relationship Id="rId2" Type="{office}/chartsheet" Target="chartsheets/sheet1.xml"/>' if chart else "")
                 + (f'<Relationship Id="rId3" Type="{office}/sharedStrings" Target="sharedStrings.xml"/>' if shared else ""))
        z.writestr("xl/_rels/workbook.xml.rels", f'<Relationships xmlns="{rels}">{links}</Relationships>')
        if shared:
            items = "".join(text if text.startswith("<si>") else f"<si><t>{text}</t></si>" for text in shared)
            z.writestr("xl/sharedStrings.xml", f'<sst xmlns="{_MAIN}" count="{len(shared)}" uniqueCount="{len(shared)}">{items}</sst>')
        if chart:
            z.writestr("xl/chartsheets/sheet1.xml", f'<chartsheet xmlns="{_MAIN}"><sheetViews><sheetView workbookViewId="0"/></sheetViews></chartsheet>')
        z.writestr("xl/worksheets/sheet1.xml", f'<worksheet xmlns="{_MAIN}"><dimension ref="A1"/><sheetData>{rows_xml}</sheetData></worksheet>')


def _read(path: Path, chunk_rows: int | None = None) -> tuple[list[str], pd.DataFrame]:
    import pyarrow as pa

    from publisher.nodes import ContainerNode
    from publisher.readers.excel import ExcelOptions, ExcelReader

    with ExcelReader().open(path, "k", ExcelOptions(chunk_rows=chunk_rows)) as node:
        tables = node.children if isinstance(node, ContainerNode) else [node]
        return [t.metadata["sheet"] for t in tables], pa.Table.from_batches(list(tables[0].batches()), schema=tables[0].schema).to_pandas()


def test_shared_strings_empty_formula_results_and_chart_sheets_read_as_pandas_reads_them(tmp_path: Path) -> None:
    """Text kept in the shared-strings table (Excel's and xlsxwriter's way) failed every sheet
    ("list index out of range": the workbook's table was not the one read); a formula's "" result
    (``<v></v>``) and empty cells to the right made a column of numbers text and added columns;
    a chart sheet was published as an empty table."""
    def typed(r: int) -> str:  # (Excel saves a formula's "" result as text, its numbers as numbers)
        return "" if r > 3 else ' t="str"'

    rows = ('<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
            + "".join(f'<row r="{r}"><c r="A{r}" t="s"><v>{2 + r % 2}</v></c>'
                      f'<c r="B{r}"{typed(r)}><f>IF(C{r}&gt;2,C{r}*10,"")</f><v>{r * 10 if r > 3 else ""}</v></c>'
                      f'<c r="C{r}"></c><c r="D{r}"><f>X{r}</f><v/></c></row>' for r in range(2, 40)))
    _book(tmp_path / "shared.xlsx", rows, shared=["sample", "score", "alpha", "beta"], chart=True)
    _book(tmp_path / "plain.xlsx", rows, shared=["sample", "score", "alpha", "beta"])  # (openpyxl fails a chart sheet with no drawing)
    expected = pd.read_excel(tmp_path / "plain.xlsx", sheet_name="data")
    for chunk_rows in (None, 7):
        sheets, table = _read(tmp_path / "shared.xlsx", chunk_rows)
        assert sheets == ["data"]
        assert list(table.columns) == ["sample", "score"] == list(expected.columns), table.columns
        assert table["sample"].tolist()[:2] == ["alpha", "beta"] and table["score"].dtype == np.float64
        pd.testing.assert_series_equal(table["score"], expected["score"], check_dtype=False)


_TEXTS = ["<si><r><rPr><b/></rPr><t>bo</t></r><r><t xml:space=\"preserve\">ld text</t></r></si>",  # rich text: its runs' text
          "<si><t>日本</t><rPh sb=\"0\" eb=\"2\"><t>ニホン</t></rPh></si>",  # a phonetic guide: not the cell's text
          "<si><t>line_x005F_x000D_end</t></si>", "<si><t/></si>", "<si><t xml:space=\"preserve\">  padded  </t></si>",
          "µ€ and 𝄞 (outside the BMP)", "&lt;tag&gt; &amp; more"]


def test_a_big_shared_strings_table_is_read_from_disk_as_openpyxl_reads_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A table past ``IN_MEMORY_BYTES`` is kept on disk (openpyxl's list took ~190 bytes a string:
    a million rows of two texts each held ~400 MB): every cell reads as pandas reads it, rich text,
    phonetic guides, escapes, blanks and characters outside the BMP alike; repeated and
    out-of-order references too, and its files are closed when the read ends."""
    import os

    from publisher.readers import excel_strings

    header = '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
    order = [2 + (r * 5) % len(_TEXTS) for r in range(60)]  # every text, out of order, each many times
    rows = header + "".join(f'<row r="{r + 2}"><c r="A{r + 2}" t="s"><v>{i}</v></c><c r="B{r + 2}"><v>{r}</v></c></row>' for r, i in enumerate(order))
    _book(tmp_path / "text.xlsx", rows, shared=["label", "n", *_TEXTS])
    expected = pd.read_excel(tmp_path / "text.xlsx", sheet_name="data")
    assert expected["label"].iloc[0] == "bold text"  # (what pandas, through openpyxl, reads)
    _, in_memory = _read(tmp_path / "text.xlsx")
    monkeypatch.setattr(excel_strings, "IN_MEMORY_BYTES", 0)
    monkeypatch.setattr(excel_strings, "CACHED", 2)  # most reads from the files, not the cache
    opened = len(os.listdir("/proc/self/fd"))
    for chunk_rows in (None, 7):
        _, on_disk = _read(tmp_path / "text.xlsx", chunk_rows)
        pd.testing.assert_frame_equal(on_disk, in_memory)
        pd.testing.assert_series_equal(on_disk["label"].fillna(""), expected["label"].fillna(""), check_dtype=False)
    assert len(os.listdir("/proc/self/fd")) == opened
    with zipfile.ZipFile(tmp_path / "text.xlsx") as z, z.open("xl/sharedStrings.xml") as source:
        table = excel_strings.DiskStrings(source)
    try:
        assert len(table) == 2 + len(_TEXTS) and table[-1] == "<tag> & more" and table[1:3] == ["n", "bold text"]
        with pytest.raises(IndexError):
            table[len(table)]
    finally:
        table.close()
    with pytest.raises(ValueError, match="closed file"):  # never another file that took its descriptor
        table[5]


_NO_ROOM = """
import resource, signal, sys
from pathlib import Path
from publisher.errors import SourceError
from publisher.readers import excel_strings
from publisher.readers.excel import ExcelOptions, ExcelReader
excel_strings.IN_MEMORY_BYTES = 0
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (2**16, 2**16))  # files of 64 KiB at most: EFBIG, as a full TMPDIR gives ENOSPC
try:
    with ExcelReader().open(Path(sys.argv[1]), "k", ExcelOptions()) as node:
        pass
except SourceError as exc:
    print(exc)
"""


def test_a_failed_workbook_closes_its_strings_files_and_a_full_tmpdir_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A workbook whose styles fail after its shared strings went to disk left their two files
    open (and their room in TMPDIR taken) until a garbage collection; temporary space running out
    was reported as a bad workbook, with no word of the folder."""
    import gc
    import os
    import subprocess
    import sys

    from publisher.errors import SourceError
    from publisher.readers import excel_strings

    header = '<row r="1"><c r="A1" t="s"><v>0</v></c></row>'
    _book(tmp_path / "styles.xlsx", header + '<row r="2"><c r="A2" t="s"><v>1</v></c></row>', shared=["label", "text"])
    with zipfile.ZipFile(tmp_path / "styles.xlsx", "a") as z:
        z.writestr("xl/styles.xml", f'<styleSheet xmlns="{_MAIN}"><cellXfs>')  # cut short
    monkeypatch.setattr(excel_strings, "IN_MEMORY_BYTES", 0)
    gc.disable()  # (as between two collections of a busy worker)
    try:
        opened = len(os.listdir("/proc/self/fd"))
        for _ in range(3):
            with pytest.raises(SourceError, match=r"styles\.xlsx: not a readable Excel workbook"):
                _read(tmp_path / "styles.xlsx")
        assert len(os.listdir("/proc/self/fd")) == opened
    finally:
        gc.enable()
    texts = [f"sample {i} of a long table of texts" for i in range(20_000)]
    _book(tmp_path / "big.xlsx", header + '<row r="2"><c r="A2" t="s"><v>1</v></c></row>', shared=["label", *texts])
    done = subprocess.run([sys.executable, "-c", _NO_ROOM, str(tmp_path / "big.xlsx")], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "big.xlsx: not a readable Excel workbook" in done.stdout and "temporary folder ran out of room" in done.stdout, done.stdout


def test_formatted_empty_rows_end_pieces_and_a_damaged_row_below_the_first_chunk_is_named(tmp_path: Path) -> None:
    """Rows written ``<row r="9" ht="30"/>`` (formatted, no cells) never ended a piece: 300,000 of
    them were read, and parsed, as one (366 MB). A value openpyxl cannot read far below the
    first chunk failed with a bare ValueError naming no sheet."""
    from publisher.errors import SourceError
    from publisher.readers import excel_rows, excel_scan

    header = '<row r="1"><c r="A1" t="inlineStr"><is><t>n</t></is></c><c r="B1" t="inlineStr"><is><t>ok</t></is></c></row>'
    flag = '<c r="B{}" t="b"><v>1</v></c>'
    cells = "".join(f'<row r="{r}"><c r="A{r}"><v>{r}</v></c>{"" if r % 4 else flag.format(r)}</row>' for r in range(2, 500))
    _book(tmp_path / "rows.xlsx", header + cells + "".join(f'<row r="{r}" ht="30" customHeight="1"/>' for r in range(500, 30_000)))
    pieces = []
    with zipfile.ZipFile(tmp_path / "rows.xlsx") as z, z.open("xl/worksheets/sheet1.xml") as stream:
        pieces = [len(p) for p in excel_scan.sheet_pieces(stream, 4096)]
    assert len(pieces) > 100 and max(pieces) < 8192, (len(pieces), max(pieces))
    for chunk_rows in (None, 50):  # (a blank under booleans below the first chunk: booleans with nulls)
        _, table = _read(tmp_path / "rows.xlsx", chunk_rows)
        assert table["n"].tolist() == list(range(2, 500))
        assert [None if pd.isna(v) else bool(v) for v in table["ok"]] == [True if r % 4 == 0 else None for r in range(2, 500)]
    _book(tmp_path / "bad.xlsx", header + cells + '<row r="600"><c r="A600" t="b"><v>yes</v></c></row>')
    with pytest.raises(SourceError, match=r"bad\.xlsx: sheet 'data': not readable past row 499: ValueError"):
        _read(tmp_path / "bad.xlsx", 50)
    assert excel_rows.TREE_BYTES < 2**20
