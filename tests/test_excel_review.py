"""Workbooks a review helper found read wrong: whole doubles past int64 (6.02E+23: published as
text of 24 digits, with a false "mixed" warning), text cells such as "None" or "NA" (made null by
pandas' default list: a control named "None" lost; in a column of numbers they are gaps, as
pandas reads them), a column with no value in the first chunk (a
float column: the first date below failed the sheet), a sheet whose compressed XML is damaged (a
bare zlib.error) and an encrypted workbook (said to be "not a zip file")."""

from __future__ import annotations

import datetime
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow as pa
import pytest

from publisher.errors import SourceError
from publisher.readers.excel import ExcelOptions, ExcelReader


def _read(path: Path, chunk_rows: int | None = None) -> tuple[pa.Table, Any]:
    with ExcelReader().open(path, "k", ExcelOptions(chunk_rows=chunk_rows)) as node:
        return pa.Table.from_batches(list(node.batches()), schema=node.schema), node.notes.get("warnings")


def _book(path: Path, rows: list[list[Any]]) -> Path:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    book.save(path)
    return path


def test_whole_doubles_past_int64_stay_numbers(tmp_path: Path) -> None:
    table, warnings = _read(_book(tmp_path / "b.xlsx", [["n"], [6.02e23], [1e20], [3e25], [5]]))
    assert table.schema.field("n").type == pa.float64() and table.column("n").to_pylist() == [6.02e23, 1e20, 3e25, 5.0]
    assert not warnings


def test_text_cells_are_as_written(tmp_path: Path) -> None:
    table, _ = _read(_book(tmp_path / "t.xlsx", [["treatment", "code", "n"], ["None", "NA", 1], ["DrugA", "n/a", None], ["null", "N/A", 3]]))
    assert table.column("treatment").to_pylist() == ["None", "DrugA", "null"]
    assert table.column("code").to_pylist() == ["NA", "n/a", "N/A"]
    assert table.column("n").to_pylist() == [1, None, 3]  # (a blank cell is null)


def test_missing_words_in_a_column_of_numbers_are_gaps(tmp_path: Path) -> None:
    rows: list[list[Any]] = [["n", "flag", "x", "label"], [1, True, 0.5, "NA"], ["NA", "null", "N/A", "n/a"], [3, False, None, "x"],
                             [4, True, "#N/A", "NA"], ["n/a", None, 2.25, "None"], [6, False, 1.0, 7]]
    for path in (_book(tmp_path / "shared.xlsx", rows), tmp_path / "inline.xlsx"):  # (openpyxl: shared strings; pandas: inline)
        if path.name == "inline.xlsx":
            import pandas as pd

            pd.DataFrame(rows[1:], columns=rows[0]).to_excel(path, index=False)
        for chunk_rows in (None, 2):  # (the words also below the first chunk)
            table, warnings = _read(path, chunk_rows)
            assert table.schema.field("n").type == pa.float64() and table.column("n").to_pylist() == [1, None, 3, 4, None, 6]
            assert table.column("flag").to_pylist() == [True, None, False, True, None, False]
            assert table.column("x").to_pylist() == [0.5, None, None, None, 2.25, 1.0]
            # text of its own beside the words: the column is text, every cell as written
            assert table.column("label").to_pylist() == ["NA", "n/a", "x", "NA", "None", "7"]
            assert [w for w in warnings if "mix numbers and text" in w] == [f"sheet {table_sheet(path)!r}: column 'label' mix numbers and text: published as text"]


def table_sheet(path: Path) -> str:
    return openpyxl.load_workbook(path, read_only=True).sheetnames[0]


def test_columns_blank_in_the_first_chunk_take_the_type_of_their_values_below(tmp_path: Path) -> None:
    rows: list[list[Any]] = [["id", "followup", "at", "took", "note", "score"]]
    for i in range(20):
        later = i >= 12
        rows.append([i, datetime.datetime(2024, 1, 1 + i) if later else None, datetime.time(9, i) if later else None,
                     datetime.timedelta(hours=30 + i) if later else None, f"n{i}" if i == 15 else None, 1.5 * i if later else None])
    path = _book(tmp_path / "f.xlsx", rows)
    whole, _ = _read(path)
    chunked, warnings = _read(path, chunk_rows=5)
    assert chunked.schema == whole.schema and chunked.to_pylist() == whole.to_pylist()
    assert pa.types.is_timestamp(chunked.schema.field("followup").type) and chunked.column("note").to_pylist()[15] == "n15"
    assert not warnings


def test_a_damaged_sheet_names_the_workbook(tmp_path: Path) -> None:
    path = _book(tmp_path / "d.xlsx", [["a"], *([i] for i in range(100))])
    body = bytearray(path.read_bytes())
    info = zipfile.ZipFile(path).getinfo("xl/worksheets/sheet1.xml")
    body[info.header_offset + 30 + len(info.filename) + len(info.extra)] = 0xFF  # an invalid deflate block type
    path.write_bytes(bytes(body))
    with pytest.raises(SourceError, match=r"d\.xlsx: not a readable Excel workbook: error: Error -3 while decompressing data"):
        _read(path)


def test_an_encrypted_workbook_is_said_to_be(tmp_path: Path) -> None:
    """Excel encrypts a workbook into an OLE compound document (as .xls files are)."""
    path = tmp_path / "secret.xlsx"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(4096))
    with pytest.raises(SourceError, match="it is encrypted \\(password-protected\\), or an old .xls workbook named .xlsx"):
        _read(path)


def test_a_row_past_the_bound_and_a_zip_bomb_sheet_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A row of the sheet's XML growing without end (one cell of 2 GiB of text in a 2 MB workbook)
    was searched again at every piece, for hours; a sheet part of 3 GB of empty rows from 4.5 MB
    took as long (and 64 MiB from 99 KB, 85 s: under the bound's 100 MB it was never checked). Both
are refused, naming why (a hostile-input review's repros, scaled down)."""
    from publisher.readers import excel_scan

    monkeypatch.setattr(excel_scan, "MAX_ROW_BYTES", 2**20)
    wide = _book(tmp_path / "wide.xlsx", [["x" * 30000] * 80, [1] * 80])  # (a row of ~2.4 MB of XML)
    with pytest.raises(SourceError, match="a row of the sheet takes more than 1 MiB of XML"):
        _read(wide)
    bomb = tmp_path / "bomb.xlsx"  # (12 MiB of empty rows from 18 KB: ~686:1; the bound's own default, not one set here)
    with zipfile.ZipFile(_book(tmp_path / "base.xlsx", [[1]])) as base, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for item in base.infolist():
            data = base.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                head, _, rest = data.partition(b"<sheetData>")
                data = head + b"<sheetData>" + b"<row/>" * (2 * 2**20) + rest.partition(b"</sheetData>")[1] + rest.partition(b"</sheetData>")[2]
            out.writestr(item, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    with pytest.raises(SourceError, match=r"bomb\.xlsx: not a readable Excel workbook: ValueError: xl/worksheets/sheet1\.xml "
                                          r"expands 6[0-9]{2} times \(12,58[0-9,]+ bytes from 18,[0-9]{3}\): a zip bomb, refused"):
        _read(bomb)
    assert _read(_book(tmp_path / "fine.xlsx", [["a", "b"], [1, 2]]))[0].num_rows == 1
