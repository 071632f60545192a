"""Cells of a workbook whose values pandas reads as empty: formula errors and formulas never computed.

pandas (through openpyxl) turns a cell holding ``#DIV/0!`` or ``#N/A`` into NaN, and a formula
saved without its computed value (as openpyxl, xlsxwriter and other libraries write them: only a
spreadsheet program calculates) into NaN too: the published table would have silent gaps. The
reader cannot recompute formulas, but it says which cells were lost and why. openpyxl's read-only
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
#: One cell element: its attributes, and its content unless it closes itself.
_CELL = re.compile(rb"<c\b([^>]*?)(?:/>|>(.*?)</c>)", re.DOTALL)
_REF = re.compile(rb"""\br=["']([A-Z]+[0-9]+)["']""")
_ERROR = re.compile(rb"""\bt=["']e["']""")
_VALUE = re.compile(rb"<v>([^<]+)</v>")
#: How many cells a warning names before it counts the rest.
SHOWN = 5


@dataclass
class LostCells:
    """A sheet's cells pandas reads as empty."""

    errors: list[tuple[str, str]] = field(default_factory=list)  # (cell, error code)
    uncomputed: list[str] = field(default_factory=list)

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
        return out


def _count(items: list, noun: str) -> str:
    return f"{len(items):,} {noun}{'' if len(items) == 1 else 's'}"


def _more(items: list) -> str:
    return f" and {len(items) - SHOWN:,} more" if len(items) > SHOWN else ""


def _sheet_parts(book: zipfile.ZipFile) -> dict[str, str]:
    """Each sheet's name → the archive member holding its cells."""
    targets = {rel.get("Id"): rel.get("Target", "")
               for rel in ElementTree.fromstring(book.read("xl/_rels/workbook.xml.rels")).iter(f"{_PACKAGE_REL}Relationship")}
    parts = {}
    for sheet in ElementTree.fromstring(book.read("xl/workbook.xml")).iter(f"{_MAIN}sheet"):
        target = targets.get(sheet.get(f"{_REL}id"))
        if target:
            parts[sheet.get("name", "")] = target.lstrip("/") if target.startswith("/") else posixpath.normpath(f"xl/{target}")
    return parts


def _scan(xml: bytes) -> LostCells:
    lost = LostCells()
    if b"<f" not in xml and not _ERROR.search(xml):
        return lost
    for cell in _CELL.finditer(xml):
        attributes, content = cell.group(1), cell.group(2) or b""
        value = _VALUE.search(content)
        ref = _REF.search(attributes)
        where = ref.group(1).decode() if ref else "?"
        if _ERROR.search(attributes):
            lost.errors.append((where, value.group(1).decode(errors="replace") if value else "error"))
        elif b"<f" in content and value is None:
            lost.uncomputed.append(where)
    return lost


def lost_cells(path: str) -> dict[str, LostCells]:
    """Each sheet (by name) with cells read as empty that held a formula error or an uncomputed
    formula. A workbook whose parts are not where the standard puts them gives nothing: pandas
    has read it already, and this only explains gaps."""
    found = {}
    try:
        with zipfile.ZipFile(path) as book:
            for name, part in _sheet_parts(book).items():
                try:
                    lost = _scan(book.read(part))
                except KeyError:
                    continue
                if lost.errors or lost.uncomputed:
                    found[name] = lost
    except (KeyError, ElementTree.ParseError, zipfile.BadZipFile):
        return {}
    return found
