"""One streamed pass over a sheet's XML: what the reader must know before its first rows.

A sheet is read in chunks of rows (openpyxl's read-only rows, as pandas reads them), so a column's
type cannot wait for its last cell: a note under a million counts would come after the counts were
written as numbers. This pass finds, per column below the header row, which kinds of cell it holds
(text, numbers, booleans, errors) and whether any number has a fraction, the sheet's width, and
the cells pandas reads wrong (``excel_cells``). It reads the part's XML in pieces cut at row ends,
so its memory is a piece's, whatever the sheet's size; openpyxl would take ~10 µs a cell for what
a regular expression over the piece finds in ~1 µs (measured: 1.8 M cells, 86 MB of XML, 11.8 s
for openpyxl's rows against ~2 s here).
"""

from __future__ import annotations

import functools
import html
import re
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any
from xml.etree import ElementTree

from ..errors import SourceError
from .excel_cells import CELL_TYPE, NS, LostCells, scan_formulas, sheet_parts
from .excel_encoding import sheet_xml

#: How much XML is searched at once (a piece grows to the end of the row it cuts).
PIECE_BYTES = 2**20
#: A cell written as Excel, openpyxl, xlsxwriter and LibreOffice write them: its reference first.
#: Groups: column letters; the other attributes (ending in "/" when it closes itself: no value);
#: its value's first character (none: no value, or an empty one, as a formula's "" result); "." or
#: "E" when the value is a number with a fraction (``2.5``, ``1E-3``; after its formula if any);
#: "i" for an inline string. One pattern for all: the distinct tuples of a piece are few.
_PLAIN_CELL = re.compile(rb'<c r="([A-Z]{1,3})[0-9]+"([^>]*)>(?:<f\b[^>]*(?:/>|>[^<]*</f>))?'
                         rb'(?:<v>(?=([^<]))(?:-?[0-9]*(\.(?=[0-9]*[1-9])|(?=(?:\.[0-9]*)?[Ee]-)[.Ee]))?|<(i)s>)?')
_ANY_CELL = re.compile(rb"<c\b")
_PREFIXED_CELL = re.compile(rb"<[A-Za-z_][\w.-]*:c\b")
#: Any row or cell, for pieces the plain form does not cover (prefixed elements, cells without a
#: reference, attributes in another order).
_TOKEN = re.compile(rb"<" + NS + rb"(?:(row)\b([^>]*)>|c\b([^>]*?)(?:/>|>(.*?)</" + NS + rb"c>))", re.DOTALL)
_REF = re.compile(rb"""\br=["']([A-Z]{1,3})?([0-9]+)["']""")
_HAS_VALUE = re.compile(rb"<" + NS + rb"(?:v>[^<]|is\b)")  # (not <v/> or <v></v>: pandas reads no value)
_FRACTION = re.compile(rb"<" + NS + rb"v>-?[0-9]*(?:\.[0-9]*[1-9]|(?:\.[0-9]+)?[Ee]-)")
_ROW_END = re.compile(rb"</" + NS + rb"row>")
#: Cell types (the ``t`` attribute) that hold text; no ``t`` is a number (dates are numbers too).
TEXT_TYPES = frozenset({"s", "str", "inlineStr"})


@functools.lru_cache(maxsize=20_000)
def column_number(letters: bytes) -> int:
    """``A`` -> 0, ``AA`` -> 26."""
    n = 0
    for ch in letters:
        n = n * 26 + ch - 64
    return n - 1


@dataclass
class SheetScan:
    """What one sheet's XML says: per column (0-based) the kinds of its cells below the header row
    (``n`` number or date, ``b`` boolean, ``e`` error, ``s``/``str``/``inlineStr`` text), the
    columns holding numbers with a fraction, the width (columns up to the last holding a value),
    and the cells pandas reads wrong."""

    part: str = ""  # the archive member holding the sheet
    kinds: dict[int, set[str]] = field(default_factory=dict)
    fractions: set[int] = field(default_factory=set)
    width: int = 0
    lost: LostCells = field(default_factory=LostCells)

    def text_columns(self) -> set[int]:
        return {c for c, kinds in self.kinds.items() if kinds & TEXT_TYPES}

    def mixed_columns(self) -> set[int]:
        """Columns holding text and numbers or booleans: published as text, with a warning."""
        return {c for c, kinds in self.kinds.items() if kinds & TEXT_TYPES and kinds - TEXT_TYPES - {"e"}}


class _Scanner:
    def __init__(self, recalculate: bool) -> None:
        self.recalculate = recalculate
        self.scan = SheetScan()
        self.row = 0  # the row being read, for cells without a reference
        self.column = -1
        self.header_done = False

    def _kind(self, column: int, attributes: bytes, fraction: bool) -> None:
        kind = CELL_TYPE.search(attributes)
        self.scan.kinds.setdefault(column, set()).add(kind.group(1).decode() if kind else "n")
        if fraction:
            self.scan.fractions.add(column)

    def tokens(self, xml: bytes) -> None:
        """Row by row and cell by cell: any form of the XML (~4 µs a cell)."""
        for match in _TOKEN.finditer(xml):
            if match.group(1):
                ref = _REF.search(match.group(2))
                self.row, self.column = (int(ref.group(2)) if ref else self.row + 1), -1
                continue
            attributes, content = match.group(3), match.group(4)
            ref = _REF.search(attributes)
            self.column = column_number(ref.group(1)) if ref and ref.group(1) else self.column + 1
            if not content or not _HAS_VALUE.search(content):
                continue
            self.scan.width = max(self.scan.width, self.column + 1)
            if self.row > 1:
                self._kind(self.column, attributes, bool(_FRACTION.search(content)))

    def plain(self, xml: bytes) -> bool:
        """The piece's cells by their distinct (column, attributes), when every cell has the plain
        form; False, having read nothing, when not."""
        found = _PLAIN_CELL.findall(xml)
        if len(found) != len(_ANY_CELL.findall(xml)) or _PREFIXED_CELL.search(xml):
            return False
        for letters, attributes, first, fraction, inline in set(found):
            if (first or inline) and not attributes.endswith(b"/"):
                column = column_number(letters)
                self.scan.width = max(self.scan.width, column + 1)
                self._kind(column, attributes, bool(fraction))
        last = _REF.search(xml, xml.rfind(b"<row")) if b"<row" in xml else None
        if last:
            self.row = int(last.group(2))
        return True

    def piece(self, xml: bytes) -> None:
        self.scan.lost.extend(scan_formulas(xml, self.recalculate))
        if not self.header_done:  # the header row (row 1) read token by token: its cells are not the columns' kinds
            first = _ROW_END.search(xml)
            if first is None:
                self.tokens(xml)
                return
            self.tokens(xml[: first.end()])
            xml = xml[first.end():]
            self.header_done = True
        if not self.plain(xml):
            self.tokens(xml)


_SELF_CLOSED_ROW = re.compile(rb"<" + NS + rb"row\b[^>]*/>")


def _row_cut(buffer: bytes) -> int:
    """Where the last complete row of ``buffer`` ends (0: none does): after a ``</row>``, or a row
    with no cells (``<row r="9" ht="30"/>``: a million of them, formatted, were one piece)."""
    at, cut = len(buffer), 0
    while True:
        at = buffer.rfind(b"row>", 0, at)
        if at < 1:
            break
        start = buffer.rfind(b"<", 0, at)
        if buffer[start + 1: start + 2] == b"/" and _ROW_END.fullmatch(buffer, start, at + 4):
            cut = at + 4
            break
    for empty in _SELF_CLOSED_ROW.finditer(buffer, cut):
        cut = empty.end()
    return cut


#: The most XML one row may take: a row past it (a cell of 2 GiB of text in a 2 MB workbook)
#: is a failure naming it, where the growing row was searched again at every piece (hours).
MAX_ROW_BYTES = 64 * 2**20
#: A sheet part's XML past this many times its compressed size is refused: a zip bomb. Deflate
#: gives at most ~1030:1 and empty rows (``<row/>``) ~685:1, read at ~1 s a MiB; real sheets,
#: their rows numbered, compress 10-18:1 even when every row is the same (openpyxl, xlsxwriter:
#: numbers, shared texts, formulas, formatted empty rows), LibreOffice's empty rows 45:1.
MAX_RATIO = 100
#: ... from this size on (a small part may be mostly repeats: at most some 8 s of work).
RATIO_FROM_BYTES = 8 * 2**20


def sheet_pieces(stream: IO[bytes], size: int = PIECE_BYTES) -> Iterator[bytes]:
    """A sheet part's XML in pieces of about ``size`` bytes, each cut after a row's end (the
    last: the rest), so no row is split between two."""
    tail = b""
    while True:
        piece = stream.read(size)
        buffer = tail + piece
        if not piece:
            if buffer:
                yield buffer
            return
        cut = _row_cut(buffer)
        if cut:
            yield buffer[:cut]
        tail = buffer[cut:]
        if len(tail) > MAX_ROW_BYTES:
            raise ValueError(f"a row of the sheet takes more than {MAX_ROW_BYTES // 2**20} MiB of XML: refused")


def bounded_part(book: zipfile.ZipFile, part: str) -> zipfile.ZipExtFile:
    """A part (a sheet, the shared strings) opened, once its stated size is within :data:`MAX_RATIO`
    of its compressed one."""
    info = book.getinfo(part)
    if info.file_size > RATIO_FROM_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise ValueError(f"{part} expands {info.file_size // max(info.compress_size, 1):,} times ({info.file_size:,} bytes from "
                         f"{info.compress_size:,}): a zip bomb, refused")
    return book.open(part)


def scan_sheet(stream: IO[bytes], recalculate: bool) -> SheetScan:
    """Read a sheet part's XML from ``stream``, a piece at a time."""
    scanner = _Scanner(recalculate)
    for piece in sheet_pieces(stream):
        scanner.piece(piece)
    return scanner.scan


#: A text cell (shared, a formula's text result, or inline): its attributes and content.
_TEXT_CELL = re.compile(rb"<" + NS + rb"c\b([^>]*?\bt=[\"'](?:s|str|inlineStr)[\"'][^>]*?)(?:/>|>(.*?)</" + NS + rb"c>)", re.DOTALL)
_CELL_REF = re.compile(rb"""\br=["']([A-Z]{1,3})([0-9]+)["']""")
_V_TEXT = re.compile(rb"<" + NS + rb"v>([^<]*)</")
_T_TEXT = re.compile(rb"<" + NS + rb"t\b[^>]*>([^<]*)</")


def missing_word_columns(stream: IO[bytes], columns: set[int], strings: Sequence[str], words: frozenset[str]) -> set[int]:
    """Of ``columns`` (holding numbers and text), those whose text cells below the header all
    read as one of ``words`` (``NA``, ``N/A``, ``null``: what pandas takes for missing), so the
    column is numbers with gaps, not text. A second pass over the sheet, only for sheets with such
    columns, ending once each column has shown a text of its own; a cell it cannot place (no
    reference) leaves every column as it was (text)."""
    open_columns = set(columns)
    for piece in sheet_pieces(stream):
        for match in _TEXT_CELL.finditer(piece):
            ref = _CELL_REF.search(match.group(1))
            if ref is None:
                return set()
            column = column_number(ref.group(1))
            if column not in open_columns or ref.group(2) == b"1":  # (row 1: the header)
                continue
            text = _cell_text(match.group(1), match.group(2) or b"", strings)
            if text and text not in words:  # ("": a text cell without text, blank as pandas reads it)
                open_columns.discard(column)
                if not open_columns:
                    return set()
    return open_columns


def _cell_text(attributes: bytes, content: bytes, strings: Sequence[str]) -> str | None:
    kind = CELL_TYPE.search(attributes)
    if kind and kind.group(1) == b"s":
        value = _V_TEXT.search(content)
        try:
            return strings[int(value.group(1))] if value else None
        except (ValueError, IndexError):
            return None
    found = _V_TEXT.findall(content) if kind and kind.group(1) == b"str" else _T_TEXT.findall(content)
    return html.unescape(b"".join(found).decode("utf-8", "replace"))


def scan_workbook(path: str) -> dict[str, SheetScan | None]:
    """Each worksheet (by name) scanned (chart sheets have no cells: not there); None for one
    whose part is not where the workbook's relations say. A damaged workbook is a SourceError."""
    found: dict[str, SheetScan | None] = {}
    try:
        with zipfile.ZipFile(path) as book:
            parts, recalculate = sheet_parts(book)
            for name, part in parts.items():
                try:
                    with bounded_part(book, part) as stream:
                        found[name] = scan_sheet(sheet_xml(stream, part), recalculate)
                        found[name].part = part
                except KeyError:
                    found[name] = None
    except (KeyError, ElementTree.ParseError, zipfile.BadZipFile, OSError, EOFError, zlib.error, ValueError) as exc:
        if isinstance(exc, zipfile.BadZipFile) and _ole(path):
            raise SourceError(f"{path}: not a readable Excel workbook: it is encrypted (password-protected), or an old .xls "
                              "workbook named .xlsx: save it unprotected, as .xlsx") from exc
        raise SourceError(f"{path}: not a readable Excel workbook: {type(exc).__name__}: {exc}") from exc
    return found


def _ole(path: Any) -> bool:
    """Whether the file is an OLE compound document (an encrypted workbook's container, or .xls)."""
    with open(path, "rb") as f:
        return f.read(8) == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
