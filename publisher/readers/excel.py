"""Excel workbooks (.xlsx) → a table per sheet (one sheet: the table itself), read in chunks of rows.

A sheet is read as pandas reads it (openpyxl's read-only rows, each cell converted as pandas'
openpyxl reader converts it, pandas' ``TextParser`` typing the columns), but in chunks of half a
million cells (fewer where their text passes 16 MiB), so a worker's memory is a chunk's whatever
the sheet's size (read whole, a 22 MB workbook of 200,000 × 9 cells took 530 MB). A sheet of one
chunk is typed as pandas types it; a chunk its text ended early is typed as its full number of
rows would be (they are read again for their types, their text left out).
Before its rows, one streamed pass over the sheet's XML (``excel_scan``) tells what the first
chunk cannot: which columns hold text (read as text in every chunk: codes such as ``007`` and a
note under a column of counts stay as written), which mix text with numbers (a warning), which
numbers have fractions (integers in the first rows do not make a column of floats integers),
which hold booleans alone (booleans with nulls in every chunk, where pandas makes booleans with a
blank floats), the width, and the cells pandas reads wrong. Integers and dates are decided by the
first chunk, as for CSV (integers with a blank below it stay integers, with nulls); a later
chunk that does not fit is an error naming the column. Chart sheets (no cells) are left out.
"""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import SourceError, UnsupportedError
from ..nodes import ContainerNode, Node, TableNode
from .base import Reader, register_reader
from .excel_encoding import sheet_xml
from .excel_rows import sheet_rows
from .excel_scan import TEXT_TYPES, SheetScan, missing_word_columns, scan_workbook
from .excel_strings import DiskStrings, shared_strings
from .tables import as_text, fit, not_arrow, one_batch, unique_names

#: Cells read at once (a chunk's rows are this over the sheet's width): ~100 MB as Python objects and frames.
CHUNK_CELLS = 500_000
#: A chunk also ends once its cells' text takes this many bytes (as UTF-8, at most): counted in cells
#: alone, 20,000 cells naming one shared string of 32,767 characters (a 105 KB file) took 1.4 GB,
#: pandas and Arrow copying the string for each (~70 KB a cell), and a chunk's 500,000 ~35 GB. A
#: chunk costs ~5 times its text (pandas' Arrow strings, the batch): a read of such cells grew by
#: 120-150 MB however many (1.4 GB for 20,000), about what a chunk of short cells costs.
CHUNK_TEXT_BYTES = 16 * 2**20


#: Text pandas reads as missing (its ``na_values`` default, blank included): null in a column of numbers or booleans.
MISSING_WORDS = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
                           "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})


class ExcelOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chunk_rows: int | None = Field(default=None, gt=0, description="Rows read at once (fewer where their text passes "
                                                                   "16 MiB); the first this many decide the types of "
                                                                   "columns of numbers, dates and booleans. Default: "
                                                                   "about half a million cells' worth.")


class _Unfit(Exception):
    """Columns of a chunk below the first whose cells mix kinds the first chunk's did not."""

    def __init__(self, columns: list[str]) -> None:
        super().__init__(columns)
        self.columns = columns


class _SheetReader:
    """One sheet's chunks as record batches of one schema (the first chunk's)."""

    def __init__(self, path: Path, book: _Book, name: str, scan: SheetScan, chunk_rows: int | None) -> None:
        from pandas.io.parsers import TextParser

        self.path, self.book, self.part, self.name, self.width = path, book, scan.part, name, scan.width
        self.rows_per_chunk = chunk_rows or max(1, CHUNK_CELLS // max(1, scan.width))
        rows = self._rows()
        header = next(rows, None)
        self.names: list[str] = []
        if header is not None:
            labels = TextParser([self._padded(header, 1)], header=0, skip_blank_lines=False).read().columns
            self.names = unique_names([str(c) for c in labels])
        self.gaps = self._missing_words(scan)
        self.text_at = sorted(c for c in scan.text_columns() if c < len(self.names))
        self.text = {self.names[c]: str for c in self.text_at}
        self.fractions = [self.names[c] for c in scan.fractions if c < len(self.names)]
        # booleans alone (errors read as blanks): booleans with nulls in every chunk (pandas makes
        # booleans with a blank floats: a blank below the first chunk failed the sheet)
        self.booleans = [self.names[c] for c, kinds in scan.kinds.items() if c < len(self.names) and kinds - {"e"} == {"b"}]
        self.mixed = [self.names[c] for c in sorted(scan.mixed_columns()) if c < len(self.names)]
        self.as_text: list[str] = []  # columns the first chunk shows Arrow cannot take as they are
        self.schema = None
        self.read_to = 1
        self._chunks_left: Iterator[tuple[int, list[list[Any]], bool]] | None = self._chunks(rows)
        start, chunk, cut = next(self._chunks_left, (2, [], False))
        typed: Any = None
        if cut and self.names:  # (ended by its text: the types are still those of the first rows_per_chunk rows)
            typed = self._table(self._typing_rows())
            self.schema = typed.schema
        self._first = self._batch(start, chunk)
        typed = self._first if typed is None else typed
        if blank := [name for c, name in enumerate(self.names) if scan.kinds.get(c, set()) - {"e"} and typed.num_rows
                     and typed.column(name).null_count == typed.num_rows]:
            self._type_blanks(blank)

    def _missing_words(self, scan: SheetScan) -> list[str]:
        """Columns of numbers (or booleans) whose only text cells say missing (``NA``, ``n/a``:
        pandas' words) keep their type, those cells null (published as text, a column of counts
        with one ``N/A`` lost its numbers' type); taken off the scan's text kinds for the rest."""
        mixed = {c for c in scan.mixed_columns() if c < len(self.names)}
        if not mixed:
            return []
        with self.book.archive.open(self.part) as stream:
            found = missing_word_columns(sheet_xml(stream, self.part), mixed, self.book.strings, MISSING_WORDS)
        for c in found:
            scan.kinds[c] -= TEXT_TYPES
        return [self.names[c] for c in sorted(found)]

    def _rows(self) -> Iterator[list[Any]]:
        with self.book.archive.open(self.part) as stream:
            yield from sheet_rows(self.book.wb, self.book.strings, sheet_xml(stream, self.part))

    def _padded(self, row: list[Any], number: int) -> list[Any]:
        if len(row) > self.width:
            raise SourceError(f"{self.path}: sheet {self.name!r}: row {number} holds {len(row)} cells where its XML showed "
                              f"at most {self.width}")
        return row + [""] * (self.width - len(row))

    def _chunks(self, rows: Iterator[list[Any]]) -> Iterator[tuple[int, list[list[Any]], bool]]:
        """The rows below the header: (the sheet's row number of a chunk's first row, its rows
        padded to the sheet's width, whether its text's bytes ended it before ``rows_per_chunk`` rows)."""
        chunk: list[list[Any]] = []
        start, size = 2, 0
        for number, row in enumerate(rows, 2):
            chunk.append(self._padded(row, number))
            self.read_to = number
            size += sum(len(v) if v.isascii() else 4 * len(v) for v in row if isinstance(v, str))
            if len(chunk) == self.rows_per_chunk or size >= CHUNK_TEXT_BYTES:
                yield start, chunk, len(chunk) < self.rows_per_chunk
                chunk, start, size = [], number + 1, 0
        if chunk:
            yield start, chunk, False

    def _typing_rows(self) -> list[list[Any]]:
        """The first ``rows_per_chunk`` rows below the header read again, each text column's cells
        one short text (a text column is text whatever it holds, the scan says so; the other
        columns hold no text but pandas' missing words): the rows that decide the types of the
        others, as a chunk of them read at once decides them, at a small chunk's memory."""
        rows: list[list[Any]] = []
        with contextlib.closing(self._rows()) as read:  # (left early: the sheet's member closed now)
            next(read, None)
            for number, row in enumerate(read, 2):
                padded = self._padded(row, number)
                for c in self.text_at:
                    if isinstance(padded[c], str) and padded[c]:
                        padded[c] = "t"
                rows.append(padded)
                if len(rows) == self.rows_per_chunk:
                    break
        return rows

    def _misfit(self, start: int, count: int) -> Callable[[str, object], SourceError]:
        def misfit(what: str, why: object) -> SourceError:
            return SourceError(f"{self.path}: sheet {self.name!r}: rows {start}-{start + count - 1} do not fit the types its "
                               f"first {self.rows_per_chunk:,} rows gave: {what}: {why}. Give the source options: "
                               "{chunk_rows: N} to decide them from more rows")
        return misfit

    def _type_blanks(self, blank: list[str]) -> None:
        """Columns with no value in the first chunk (a follow-up date, a note filled in later)
        take their types from their first values below, found by reading the sheet again up to
        them (they were floats, and the first date below failed the sheet)."""
        import pyarrow as pa

        columns = {self.names.index(name): name for name in blank}
        sample: list[list[Any]] = []
        with contextlib.closing(self._rows()) as rows:  # (left early: the sheet's member closed now, not when collected)
            next(rows, None)
            for number, row in enumerate(rows, 2):
                hit = [c for c in columns if c < len(row) and row[c] != "" and row[c] == row[c]]  # (a value: not blank, not an error's NaN)
                if number >= 2 + self.rows_per_chunk and hit:
                    sample.append(self._padded(row, number))
                    for c in hit:
                        del columns[c]
                if not columns:
                    break
        if not sample:
            return
        try:
            table = self._table(sample)
        except _Unfit:  # (their first values mix kinds with the first chunk's: the chunk below says so, naming its rows)
            return
        schema = self.schema
        for name in blank:
            if table.column(name).null_count < len(sample):
                schema = schema.set(schema.get_field_index(name), pa.field(name, table.schema.field(name).type))
        self.schema = schema
        self._first = one_batch(fit(pa.Table.from_batches([self._first]), schema, self._misfit(2, self._first.num_rows)))

    def _table(self, chunk: list[list[Any]]) -> Any:
        """Rows as a table, each column as the sheet's scan and the first chunk decided."""
        import pyarrow as pa
        from pandas.io.parsers import TextParser

        # only a blank cell is null: text is as written ("None" a control's name, "NA" a code;
        # pandas' default list made them null), but in a column of numbers pandas' missing words too
        blank = {name: [""] for name in self.names} | {name: MISSING_WORDS for name in self.gaps}
        frame = TextParser(chunk, header=None, names=self.names, dtype=self.text, skip_blank_lines=False,
                           keep_default_na=False, na_values=blank).read()
        for name in self.as_text:  # (first: a chunk of its whole numbers alone made floats, "3.0" where one chunk had "3")
            frame[name] = frame[name].map(as_text)
        for name in self.fractions:
            if frame[name].dtype.kind in "iu":
                frame[name] = frame[name].astype("float64")
        for name in self.booleans:
            frame[name] = frame[name].astype("boolean")
        unfit = [name for name in frame.columns if frame[name].dtype == object and not_arrow(pa, frame[name])]
        if unfit and self.schema is not None:
            raise _Unfit(unfit)
        for name in unfit:  # (numbers and dates in one column: text, as pandas would leave them mixed)
            frame[name] = frame[name].map(as_text)
            self.as_text.append(name)
        return pa.Table.from_pandas(frame, preserve_index=False)

    def _batch(self, start: int, chunk: list[list[Any]]) -> Any:
        import pyarrow as pa

        if not self.names:  # no rows at all: no columns (as pandas reads it)
            return pa.RecordBatch.from_pylist([])
        misfit = self._misfit(start, len(chunk))
        try:
            table = self._table(chunk)
        except _Unfit as unfit:
            raise misfit(f"column {', '.join(map(repr, unfit.columns))}", "its cells mix kinds the first rows did not") from None
        if self.schema is None:
            self.schema = table.schema
            return one_batch(table)
        return one_batch(fit(table, self.schema, misfit))

    def batches(self) -> Iterator[Any]:
        """The first chunk (kept from deciding the schema), then the rest as read; a second
        reading starts again from the sheet's XML. An error below the first chunk names the sheet
        and the rows read (the XML parser's own line is a piece's)."""
        try:
            yield from self._batches()
        except SourceError:
            raise
        except Exception as exc:
            raise SourceError(f"{self.path}: sheet {self.name!r}: not readable past row {self.read_to:,}: "
                              f"{type(exc).__name__}: {exc}") from exc

    def _batches(self) -> Iterator[Any]:
        chunks, self._chunks_left = self._chunks_left, None
        if chunks is None:
            rows = self._rows()
            next(rows, None)
            chunks = self._chunks(rows)
            yield self._batch(*next(chunks, (2, [], False))[:2])
        else:
            yield self._first
        for start, chunk, _ in chunks:
            yield self._batch(start, chunk)

    def table(self, key: str) -> TableNode:
        node = TableNode(key=key, metadata={"sheet": self.name}, schema=self._first.schema, batches=self.batches)
        mixed = self.mixed + [n for n in self.as_text if n not in self.mixed]
        if mixed:
            node.warn(f"sheet {self.name!r}: column{'s' if len(mixed) > 1 else ''} {', '.join(map(repr, mixed))} "
                      "mix numbers and text: published as text")
        return node


@dataclass
class _Book:
    """What a sheet's cells need of the workbook, as openpyxl's own reader reads it: the workbook
    (date styles, epoch), the shared strings, its sheets in order, and the archive."""

    wb: Any
    strings: Sequence[str]
    sheets: list[str]
    archive: zipfile.ZipFile

    def close(self) -> None:
        self.archive.close()
        if isinstance(self.strings, DiskStrings):
            self.strings.close()


def _workbook(path: Path) -> _Book:
    """Not ``load_workbook``: it also opens every sheet, and one without a ``<dimension>`` (as
    many writers save them) was parsed whole to find none, holding an element per row (+69 MB
    for a million rows)."""
    from openpyxl.reader.excel import ExcelReader as Book
    from openpyxl.styles.stylesheet import apply_stylesheet
    from openpyxl.xml.constants import SHARED_STRINGS

    book = Book(str(path), read_only=True, keep_links=False, data_only=True)
    strings: Sequence[str] = []
    try:
        book.read_manifest()
        found = book.package.find(SHARED_STRINGS)
        strings = shared_strings(book.archive, found.PartName[1:] if found is not None else None)  # not read_strings(): a list
        book.read_workbook()
        apply_stylesheet(book.archive, book.wb)
    except BaseException:
        book.archive.close()
        if isinstance(strings, DiskStrings):
            strings.close()
        raise
    return _Book(book.wb, strings, [sheet.name for sheet in book.parser.sheets], book.archive)


def _no_sheets(path: Path, sheets: list[str]) -> Exception:
    """A workbook with no sheet of cells fails or is skipped, saying why (it was published as an
    empty container, silently)."""
    if sheets:
        return UnsupportedError(f"{path}: no worksheet: its sheets ({', '.join(map(repr, sheets))}) are chart or other "
                                "sheets without cells")
    return SourceError(f"{path}: not a readable Excel workbook: xl/workbook.xml lists no sheet")


@register_reader
class ExcelReader(Reader):
    name = "excel"
    alone = True  # (one file, nothing it refers to)
    requires = ("pandas", "openpyxl")
    extensions = (".xlsx", ".xlsm")
    magic = (b"PK\x03\x04",)
    Options = ExcelOptions

    @classmethod
    def claims(cls, path: Path, head: bytes) -> bool:
        try:
            with zipfile.ZipFile(path) as z:
                return "xl/workbook.xml" in z.namelist()
        except zipfile.BadZipFile:
            return False

    @contextlib.contextmanager
    def open(self, path: Path, key: str, options: ExcelOptions) -> Iterator[Node]:  # type: ignore[override]
        scans = scan_workbook(str(path))
        try:
            book = _workbook(path)
        except Exception as exc:
            raise SourceError(f"{path}: not a readable Excel workbook: {exc}") from exc
        try:
            sheets = [name for name in book.sheets if name in scans]  # (chart sheets have no cells)
            if not sheets:
                raise _no_sheets(path, book.sheets)
            tables = []
            for name in sheets:
                scan = scans[name]
                if scan is None:
                    raise SourceError(f"{path}: sheet {name!r}: its cells are not where the workbook's relations say")
                try:
                    table = _SheetReader(path, book, name, scan, options.chunk_rows).table(key if len(sheets) == 1 else name)
                except SourceError:
                    raise
                except Exception as exc:
                    raise SourceError(f"{path}: sheet {name!r}: not readable: {exc}") from exc
                for message in scan.lost.warnings(name):
                    table.warn(message)
                tables.append(table)
            if len(tables) == 1:
                yield tables[0]
            else:
                yield ContainerNode(key=key, metadata={"sheets": list(sheets)}, children=tables)
        finally:
            book.close()
