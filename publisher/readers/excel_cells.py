"""Cells of a workbook whose values pandas reads wrong: formula errors and formulas never computed.

pandas (through openpyxl) turns a cell holding ``#DIV/0!`` or ``#N/A`` into NaN, and a formula
saved without its computed value (as openpyxl writes them: only a spreadsheet program calculates)
into NaN too; xlsxwriter stores 0 for each and asks for a recalculation when the file is opened
(``fullCalcOnLoad``), so pandas reads 0. The published table would have silent gaps or zeros. The
reader cannot recompute formulas, but it says which cells and why. openpyxl's read-only
cells would tell the same at ~10 µs a cell on every sheet; this reads the sheets' XML once and
looks only where a formula or an error is (``<f``, ``t="e"``), so a sheet without any costs one
byte search.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from dataclasses import dataclass, field
from xml.etree import ElementTree

_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PACKAGE_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_NS = rb"(?:[A-Za-z_][\w.-]*:)?"  # an element's namespace prefix, if any (``<x:c>``: the Open XML SDK's)
#: One cell element: its attributes, and its content unless it closes itself.
_CELL = re.compile(rb"<" + _NS + rb"c\b([^>]*?)(?:/>|>(.*?)</" + _NS + rb"c>)", re.DOTALL)
_FORMULA = re.compile(rb"<" + _NS + rb"f\b")
#: A cell's value: None when it closes itself (``<v/>``), else its text (maybe empty).
_VALUE = re.compile(rb"<" + _NS + rb"v\b[^>]*?(?:/>|>([^<]*)</" + _NS + rb"v>)")
_REF = re.compile(rb"""\br=["']([A-Z]+[0-9]+)["']""")
_TYPE = re.compile(rb"""\bt=["'](\w+)["']""")
_ERROR = re.compile(rb"""\bt=["']e["']""")
#: How many cells a warning names before it counts the rest.
SHOWN = 5


@dataclass
class LostCells:
    """A sheet's cells pandas reads as empty."""

    errors: list[tuple[str, str]] = field(default_factory=list)  # (cell, error code)
    uncomputed: list[str] = field(default_factory=list)
    #: Formulas with a value no spreadsheet program computed: the workbook asks to be recalculated
    #: when opened (``fullCalcOnLoad``), as xlsxwriter's do, storing 0 unless told the result.
    stored: list[str] = field(default_factory=list)

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

    def __bool__(self) -> bool:
        return bool(self.errors or self.uncomputed or self.stored)


def _count(items: list, noun: str) -> str:
    return f"{len(items):,} {noun}{'' if len(items) == 1 else 's'}"


def _more(items: list) -> str:
    return f" and {len(items) - SHOWN:,} more" if len(items) > SHOWN else ""


def _sheet_parts(book: zipfile.ZipFile) -> tuple[dict[str, str], bool]:
    """Each sheet's name → the archive member holding its cells; and whether the workbook asks to
    be recalculated when opened (its formulas' stored values were not computed)."""
    targets = {rel.get("Id"): rel.get("Target", "")
               for rel in ElementTree.fromstring(book.read("xl/_rels/workbook.xml.rels")).iter(f"{_PACKAGE_REL}Relationship")}
    workbook = ElementTree.fromstring(book.read("xl/workbook.xml"))
    parts = {}
    for sheet in workbook.iter(f"{_MAIN}sheet"):
        target = targets.get(sheet.get(f"{_REL}id"))
        if target:
            parts[sheet.get("name", "")] = target.lstrip("/") if target.startswith("/") else posixpath.normpath(f"xl/{target}")
    recalculate = any(calc.get("fullCalcOnLoad") in ("1", "true") for calc in workbook.iter(f"{_MAIN}calcPr"))
    return parts, recalculate


def _scan(xml: bytes, recalculate: bool) -> LostCells:
    lost = LostCells()
    if not _FORMULA.search(xml) and not _ERROR.search(xml):
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
            kind = _TYPE.search(attributes)
            if text is None or (text == b"" and not (kind and kind.group(1) == b"str")):  # ("" computed is <v></v> of a str)
                lost.uncomputed.append(where)
            elif recalculate:
                lost.stored.append(where)
    return lost


def lost_cells(path: str) -> dict[str, LostCells]:
    """Each sheet (by name) with cells read as empty that held a formula error or an uncomputed
    formula, or formulas whose stored values no program computed. A workbook whose parts are not
    where the standard puts them gives nothing: pandas has read it already, and this only explains gaps."""
    found = {}
    try:
        with zipfile.ZipFile(path) as book:
            parts, recalculate = _sheet_parts(book)
            for name, part in parts.items():
                try:
                    lost = _scan(book.read(part), recalculate)
                except KeyError:
                    continue
                if lost:
                    found[name] = lost
    except (KeyError, ElementTree.ParseError, zipfile.BadZipFile):
        return {}
    return found
