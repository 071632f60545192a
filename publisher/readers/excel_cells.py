"""Cells of a workbook whose values pandas reads wrong: formula errors and formulas never computed.

pandas (through openpyxl) turns a cell holding ``#DIV/0!`` or ``#N/A`` into NaN, and a formula
saved without its computed value (as openpyxl writes them: only a spreadsheet program calculates)
into NaN too; xlsxwriter stores 0 for each and asks for a recalculation when the file is opened
(``fullCalcOnLoad``), so pandas reads 0. The published table would have silent gaps or zeros. The
reader cannot recompute formulas, but it says which cells and why. openpyxl's read-only
cells would tell the same at ~10 µs a cell on every sheet; this reads the sheets' XML once and
looks only where a formula or an error is (``<f``, ``t="e"``), so a sheet without any costs one
byte search. A sheet is searched in pieces (``excel_scan``); a warning names the first cells
and counts the rest.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

from ..errors import SourceError, UnsupportedError

_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PACKAGE_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
#: The namespaces of ISO 29500 Strict (Excel's "Strict Open XML Spreadsheet"): openpyxl reads none
#: of it (rows, strings, styles), and a Strict workbook was published as no sheets, silently.
STRICT = "http://purl.oclc.org/ooxml/"
NS = rb"(?:[A-Za-z_][\w.-]*:)?"  # an element's namespace prefix, if any (``<x:c>``: the Open XML SDK's)
#: One cell element: its attributes, and its content unless it closes itself.
_CELL = re.compile(rb"<" + NS + rb"c\b([^>]*?)(?:/>|>(.*?)</" + NS + rb"c>)", re.DOTALL)
_FORMULA = re.compile(rb"<" + NS + rb"f\b")
#: A cell's value: None when it closes itself (``<v/>``), else its text (maybe empty).
_VALUE = re.compile(rb"<" + NS + rb"v\b[^>]*?(?:/>|>([^<]*)</" + NS + rb"v>)")
_REF = re.compile(rb"""\br=["']([A-Z]+[0-9]+)["']""")
CELL_TYPE = re.compile(rb"""\bt=["'](\w+)["']""")
_ERROR = re.compile(rb"""\bt=["']e["']""")
#: How many cells a warning names before it counts the rest.
SHOWN = 5


class Few(list):
    """The first ``SHOWN`` of some cells, and how many there were: a sheet of a million errors
    keeps five (its length is the count)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def append(self, item: Any) -> None:
        self.count += 1
        if super().__len__() < SHOWN:
            super().append(item)

    def extend(self, other: Any) -> None:  # type: ignore[override]
        for item in other[:SHOWN]:
            if super().__len__() < SHOWN:
                super().append(item)
        self.count += len(other)

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0


@dataclass
class LostCells:
    """A sheet's cells pandas reads as empty."""

    errors: Few = field(default_factory=Few)  # (cell, error code)
    uncomputed: Few = field(default_factory=Few)
    #: Formulas with a value no spreadsheet program computed: the workbook asks to be recalculated
    #: when opened (``fullCalcOnLoad``), as xlsxwriter's do, storing 0 unless told the result.
    stored: Few = field(default_factory=Few)

    def warnings(self, sheet: str) -> list[str]:
        out = []
        if self.errors:
            shown = ", ".join(f"{ref} ({code})" for ref, code in self.errors[:SHOWN])
            out.append(f"sheet {sheet!r}: {_count(self.errors, 'cell')} hold{'s' if len(self.errors) == 1 else ''} "
                       f"a formula error ({shown}{_more(self.errors)}): published as empty")
        if self.uncomputed:
            out.append(f"sheet {sheet!r}: {_count(self.uncomputed, 'formula')} ({', '.join(self.uncomputed[:SHOWN])}"
                       f"{_more(self.uncomputed)}) {'has' if len(self.uncomputed) == 1 else 'have'} no computed value "
                       "(the workbook was saved by a program that does not calculate): published as empty; "
                       "open and save it in a spreadsheet program to compute them")
        if self.stored:
            out.append(f"sheet {sheet!r}: {_count(self.stored, 'formula')} ({', '.join(self.stored[:SHOWN])}{_more(self.stored)}) "
                       f"{'has its value' if len(self.stored) == 1 else 'have their values'} marked to be recalculated when "
                       "the workbook is opened (xlsxwriter stores 0 for each unless given the result): published as stored, "
                       "which may not be computed; open and save it in a spreadsheet program to compute them")
        return out

    def extend(self, other: LostCells) -> None:
        """Add a later piece's cells (the sheet is read in pieces)."""
        self.errors.extend(other.errors)
        self.uncomputed.extend(other.uncomputed)
        self.stored.extend(other.stored)

    def __bool__(self) -> bool:
        return bool(self.errors or self.uncomputed or self.stored)


def _count(items: list, noun: str) -> str:
    return f"{len(items):,} {noun}{'' if len(items) == 1 else 's'}"


def _more(items: list) -> str:
    return f" and {len(items) - SHOWN:,} more" if len(items) > SHOWN else ""


def _parsed(book: zipfile.ZipFile, part: str) -> ElementTree.Element:
    """A small part of the workbook parsed, naming it when it is not XML (the error named the file
    only: "ParseError: not well-formed (invalid token): line 1, column 934")."""
    try:
        return ElementTree.fromstring(book.read(part))
    except ElementTree.ParseError as exc:
        raise SourceError(f"{book.filename}: its {part} is not well-formed XML ({exc}): damaged?") from None


def sheet_parts(book: zipfile.ZipFile) -> tuple[dict[str, str], bool]:
    """Each worksheet's name → the archive member holding its cells; and whether the workbook asks to
    be recalculated when opened (its formulas' stored values were not computed)."""
    targets = {rel.get("Id"): rel.get("Target", "")
               for rel in _parsed(book, "xl/_rels/workbook.xml.rels").iter(f"{_PACKAGE_REL}Relationship")
               if rel.get("Type", "").endswith("/worksheet")}  # (a chart sheet has no cells)
    workbook = _parsed(book, "xl/workbook.xml")
    if workbook.tag.startswith("{" + STRICT):
        raise UnsupportedError(f"{book.filename}: a Strict Open XML workbook (xl/workbook.xml is in {workbook.tag[1:].partition('}')[0]}): "
                               "not supported; save it as an Excel Workbook (.xlsx)")
    parts = {}
    for sheet in workbook.iter(f"{_MAIN}sheet"):
        target = targets.get(sheet.get(f"{_REL}id"))
        if target:
            parts[sheet.get("name", "")] = target.lstrip("/") if target.startswith("/") else posixpath.normpath(f"xl/{target}")
    recalculate = any(calc.get("fullCalcOnLoad") in ("1", "true") for calc in workbook.iter(f"{_MAIN}calcPr"))
    return parts, recalculate


def scan_formulas(xml: bytes, recalculate: bool) -> LostCells:
    """The cells of ``xml`` (whole rows of a sheet) that hold a formula error or a formula with no computed value."""
    lost = LostCells()
    formulas = (b"<f" in xml or b":f" in xml) and _FORMULA.search(xml)  # (a byte search first: 3x faster than the pattern's)
    if not formulas and not ((b'"e"' in xml or b"'e'" in xml) and _ERROR.search(xml)):
        return lost
    for cell in _CELL.finditer(xml):
        attributes, content = cell.group(1), cell.group(2) or b""
        ref = _REF.search(attributes)
        where = ref.group(1).decode() if ref else "?"
        value = _VALUE.search(content)
        text = value.group(1) if value else None
        if _ERROR.search(attributes):
            lost.errors.append((where, text.decode(errors="replace") if text else "error"))
        elif _FORMULA.search(content):
            kind = CELL_TYPE.search(attributes)
            if text is None or (text == b"" and not (kind and kind.group(1) == b"str")):  # ("" computed is <v></v> of a str)
                lost.uncomputed.append(where)
            elif recalculate:
                lost.stored.append(where)
    return lost
