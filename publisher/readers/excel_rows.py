"""A sheet's rows as pandas reads them: openpyxl's own cell parser over the sheet's XML, parsed a
piece of rows at a time (openpyxl's read-only sheets keep every row's element: memory grew with
the sheet), each cell converted as pandas' openpyxl reader converts it."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import IO, Any

from .excel_cells import NS
from .excel_scan import sheet_pieces


def _value(cell: dict[str, Any]) -> Any:
    """A cell as pandas' openpyxl reader converts it (``OpenpyxlReader._convert_cell``)."""
    value = cell["value"]
    if value is None:
        return ""
    if cell["data_type"] == "e":
        return math.nan
    if cell["data_type"] == "n":
        if isinstance(value, float) and not -2**63 <= value < 2**63:  # (a double past int64, 6.02E+23: not an int of 24 digits, then text)
            return value
        whole = int(value)
        return whole if whole == value else float(value)
    return value


#: Excel's last row. A row numbered past it, or not after the row before (its ``r``, or one more
#: than the row before when it has none), is refused: rows written 1, 3, 2, 5 were published as 6
#: with values shifted, and ``r="2000000"`` as 1,999,999 rows from a 1.5 KB file.
MAX_ROW = 2**20
#: XML parsed into a tree at once: ~10 MB of elements for cells of short values.
TREE_BYTES = 2**18
#: The sheet's root element's start tag (its namespaces), and its rows' parent's start and end.
_ROOT = re.compile(rb"<(?!\?|!)([\w.:-]+)[^>]*>")
_DATA = re.compile(rb"<" + NS + rb"sheetData\b[^>]*?(/?)>")
_DATA_END = re.compile(rb"</" + NS + rb"sheetData>")


def _row_elements(stream: IO[bytes]) -> Iterator[Any]:
    """The sheet's row elements, parsed a piece of rows at a time (each piece wrapped in the
    sheet's own root and data start tags, so namespaces resolve as in the whole part): openpyxl's
    read-only rows keep every row's emptied element under the sheet's (and a dict for each row of
    a set height), which grew a read by ~170 MB a million rows."""
    from openpyxl.xml.functions import fromstring  # (defusedxml's when installed, as openpyxl parses)

    head = foot = None
    for piece in sheet_pieces(stream, TREE_BYTES):
        if head is None:
            root, data = _ROOT.search(piece), _DATA.search(piece)
            if root is None or data is None:
                continue  # (before the rows: a sheet's views and columns)
            if data.group(1):  # <sheetData/>: no rows
                return
            head = root.group(0) + data.group(0)
            prefix = data.group(0)[1: data.group(0).index(b"sheetData")]
            foot = b"</" + prefix + b"sheetData></" + root.group(1) + b">"
            piece = piece[data.end():]
        end = _DATA_END.search(piece)
        tree = fromstring(head + (piece[: end.start()] if end else piece) + foot)
        yield from tree[0]
        if end:
            return
    if head is None:
        raise ValueError("the sheet's XML has no <sheetData>: no cells")


def sheet_rows(book: Any, strings: Any, stream: IO[bytes]) -> Iterator[list[Any]]:
    """A sheet's rows as pandas' reader makes them, from row 1 (the header): each without its
    trailing empty cells, and no empty rows after the last holding a value. Cells are read by
    openpyxl's own parser (dates, shared and rich strings, booleans), as its read-only sheets read them."""
    from openpyxl.worksheet._reader import (  # (openpyxl's module for its sheet readers)
        ROW_TAG,
        WorkSheetParser,
    )

    parser = WorkSheetParser(stream, strings, data_only=True, epoch=book.epoch,
                             date_formats=book._date_formats, timedelta_formats=book._timedelta_formats)
    done = last = 0
    for element in _row_elements(stream):
        if element.tag != ROW_TAG:
            if element.tag.rpartition("}")[2] == "row":  # (Strict Open XML's, or none: skipped, the sheet was published empty)
                raise ValueError(f"its rows are in namespace {element.tag[1:].partition('}')[0] if '}' in element.tag else '(none)'}, "
                                 f"not in SpreadsheetML's ({ROW_TAG[1:].partition('}')[0]}): not supported")
            continue
        number, cells = parser.parse_row(element)
        if not last < number <= MAX_ROW:
            raise ValueError(_misnumbered(number, last))
        last = number
        parser.row_dimensions.clear()
        values: list[Any] = []
        for cell in cells:
            at = cell["column"] - 1
            if at >= len(values):
                values.extend([""] * (at - len(values)))
                values.append(_value(cell))
            else:
                values[at] = _value(cell)
        while values and values[-1] == "":
            values.pop()
        if not values:
            continue
        for _ in range(number - done - 1):  # rows before it without a value (or not written)
            yield []
        done = number
        yield values


def _misnumbered(number: int, last: int) -> str:
    if number > MAX_ROW:
        return f"row {number:,} is past Excel's last row ({MAX_ROW:,}): refused"
    if number < 1:
        return f"a row numbered {number:,} (rows are numbered from 1): refused"
    return f"row {number:,} comes after row {last:,} (rows are written in increasing order): refused"
