"""Where a delimited text file's rows are, for the CSV reader (readers/csv.py): free text above
the header, comment lines (pandas' ``skiprows``, numbered as pandas numbers records) and row
names (a header a field short)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol


class CSVOptions(Protocol):
    """What these read of the reader's options (readers/csv.py ``CSVOptions``; not imported: it imports this)."""

    comment: str | None
    encoding: str
    header: int | None


#: The delimiter of columns aligned with runs of spaces or tabs (``delimiter: whitespace``), as pandas takes it.
WHITESPACE = r"\s+"

#: The comment-line scan reads the file in blocks of this many bytes (characters, decoded).
SCAN_BYTES = 2**24

_LINE = re.compile(rb"([^\r\n]*)(?:\r\n|\r|\n)")


def preamble(path: Path, options: CSVOptions, sep: str) -> tuple[int, str]:
    """Free text above the header (common in exported data): the lines to skip, and the text.

    The header is the first row of the table's usual field count (or one fewer: row names) with
    rows of that count below it. A data row below of another count is one with a field left out
    or added (``4,5`` under ``a,b,c``), unless it is all text (a line of notes). A ``header: N``
    set in the pipeline says where the header is: nothing is looked for.
    """
    if options.header != 0 or len(sep) != 1:  # (whitespace runs, or a separator of several characters: pandas' regex engine)
        return 0, ""
    with open(path, encoding=options.encoding, errors="replace", newline="") as f:
        sample = f.read(65536).removeprefix("\ufeff")  # (a BOM led the free text above the header)
    reader = csv.reader(io.StringIO(sample, newline=""), delimiter=sep)  # (newline="": lines end at \r too, old Mac files)
    rows: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            if row and not (options.comment and row[0].lstrip().startswith(options.comment)):
                rows.append((reader.line_num, row))
    except csv.Error:
        return 0, ""
    if len(rows) < 3:
        return 0, ""
    counts = [len(r) for _, r in rows[len(rows) // 3 :]]
    usual = max(set(counts), key=counts.count)
    if usual < 2:
        return 0, ""
    for i, (_, row) in enumerate(rows[:-1]):
        if _is_header(row, [r for _, r in rows[i + 1 : i + 6]], usual):
            first = rows[0][1]
            if i == 0 or (len(first) > usual and _all_text(first) and not _all_text(row) and not any(f.startswith(" ") for f in first[1:])):
                # (a header of more fields than its rows, trailing empty fields left out: "name,value,comment" over "x,1" was
                # taken for free text, its first row for the header; a title's clauses, "Population, in thousands", stay text)
                return 0, ""
            skip = rows[i - 1][0]
            text = "\n".join(",".join(c for c in r if c) for _, r in rows[:i]).strip()
            return skip, text
    return 0, ""


def commented_header(path: Path, options: CSVOptions, sep: str) -> str | None:
    """The comment line right above the first row when it looks like the table's header and that
    row like data (``#id,value`` over ``1,10``; BED's ``#chrom``): skipped as a comment, it left the
    first row of data to be taken for the header. None otherwise."""
    if not options.comment or options.header != 0 or len(sep) != 1:
        return None
    with open(path, encoding=options.encoding, errors="replace", newline="") as f:
        sample = f.read(65536).removeprefix("\ufeff")
    last = None
    for line in sample.splitlines():
        if not line.strip():
            continue
        if line.lstrip().startswith(options.comment):
            last = line
            continue
        try:
            first = next(csv.reader([line], delimiter=sep))
            above = next(csv.reader([last.lstrip()[len(options.comment):]], delimiter=sep)) if last is not None else None
        except csv.Error:
            return None
        if above is not None and len(above) == len(first) > 1 and _all_text(above) and not _all_text(first):
            return last
        return None
    return None


def _is_header(row: list[str], below: list[list[str]], usual: int) -> bool:
    """Whether ``row`` heads the table, with the rows ``below`` it. A row of the usual count (a
    line of more, "Title: run, with commas", is free text) may have data rows of other counts
    below; one a field short (row names, R's ``write.csv``) must have rows of the usual count
    below, the first of them not a header above data (a title line above a table of two columns
    is one field short as well)."""
    if len(row) == usual:
        return all(len(r) in (usual, usual + 1) or not _all_text(r) for r in below)
    if len(row) != usual - 1 or not all(len(r) in (usual, usual + 1) for r in below):
        return False
    return not (_all_text(below[0]) and not all(_all_text(r) for r in below[1:]))


def _all_text(row: list[str]) -> bool:
    """No field of ``row`` is a number (a header, or a line of notes)."""
    for field in row:
        try:
            float(field)
            return False
        except ValueError:
            continue
    return True


def _breaks(text: str, start: int, stop: int) -> int:
    """Line breaks in ``text[start:stop]`` as pandas' parser counts them: ``\\n``, ``\\r\\n``, ``\\r``."""
    return text.count("\n", start, stop) + text.count("\r", start, stop) - text.count("\r\n", start, stop)


def _blanks(sep: str) -> str:
    """What may precede a comment on its line: spaces and tabs, but not the delimiter (a TSV row
    whose first cell is empty and second ``#00ff00`` is data)."""
    return "".join(c for c in " \t" if c != sep)


class Lines:
    """A set of line numbers as a bitmap, and pandas' ``skiprows`` as a callable of one: a bit a
    line where a set of ints takes ~70 bytes a member (a comment under every row of 256 MB took
    1.1 GB before pandas copied it into a set of its own)."""

    def __init__(self, lines: Iterable[int] = ()) -> None:
        self.bits = bytearray()
        self.count, self.last = 0, -1
        for number in lines:
            self.add(number)

    def add(self, number: int) -> None:
        byte, mask = number >> 3, 1 << (number & 7)
        if byte >= len(self.bits):
            self.bits.extend(bytes(max(byte + 1 - len(self.bits), len(self.bits))))  # (doubling)
        if not self.bits[byte] & mask:
            self.bits[byte] |= mask
            self.count += 1
            self.last = max(self.last, number)

    def __contains__(self, number: object) -> bool:
        if not isinstance(number, int) or number < 0:
            return False
        byte = number >> 3
        return byte < len(self.bits) and bool(self.bits[byte] >> (number & 7) & 1)

    __call__ = __contains__  # (pandas calls it with each row's number)

    def __len__(self) -> int:
        return self.count

    def numbers(self) -> Iterator[int]:
        """The lines in order (not ``__iter__``: pandas would take the object for a list and copy it into a set)."""
        for byte, bits in enumerate(self.bits):
            if bits:
                yield from (byte * 8 + i for i in range(8) if bits >> i & 1)

    def leading(self) -> bool:
        """Whether the lines are the file's first ``len(self)``."""
        return self.last == self.count - 1


def comment_lines(path: Path, options: CSVOptions, sep: str, skip: int) -> int | Lines:
    """The rows to skip (pandas' ``skiprows``): the ``skip`` above the header and those whose
    first text (after :func:`_blanks`) is ``comment``; a count when they all lead the file.
    pandas' own ``comment`` also cuts a line at the character anywhere in it: ``1,#ff0000,red``
    was published as ``1``, null, null. Most files have comment lines only at the top, or none:
    :func:`_top_comments` tells from the bytes (~0.35 s for 200 MB, which pandas parses in ~0.8 s).
    Else one pass over the decoded text with a regular expression, counting line breaks (~1.6 s);
    a file with quotes is then read again as records (:func:`_comment_records`, ~2.7 s more: a
    quoted field's line breaks are inside its record, and pandas counts records)."""
    assert options.comment
    top = _top_comments(path, options, sep)
    if top is not None:
        return _skiprows(Lines([*top, *range(skip)]))
    blanks = _blanks(sep)
    starts = re.compile(r"(?:\r\n|\r|\n)" + (f"[{re.escape(blanks)}]*" if blanks else "") + re.escape(options.comment))
    lines, quoted, first = Lines(range(skip)), False, True
    with open(path, encoding=options.encoding, errors="replace", newline="") as f:
        number, carry = 0, "\n"  # lines before ``carry``; the text not yet scanned, from a line break on
        while True:
            block = f.read(SCAN_BYTES)
            if first:
                block, first = block.removeprefix("\ufeff"), False
            text = carry + block
            cut = max(text.rfind("\n"), text.rfind("\r")) if block else len(text)  # up to the last line break
            if block and cut > 0 and text[cut - 1:cut + 1] == "\r\n":
                cut -= 1
            text, carry = text[:cut], text[cut:]
            quoted = quoted or '"' in text
            counted = 0
            for found in starts.finditer(text):
                number += _breaks(text, counted, found.start())
                counted = found.start()
                lines.add(number)
            number += _breaks(text, counted, len(text))
            if not block:
                break
    if quoted and len(sep) == 1 and not lines.leading():  # (comment lines below the top)
        return _comment_records(path, options, sep, skip)
    return _skiprows(lines)


def _skiprows(lines: Lines) -> int | Lines:
    """pandas' ``skiprows``: a count when the lines all lead the file."""
    return len(lines) if lines.leading() else lines


def _top_comments(path: Path, options: CSVOptions, sep: str) -> set[int] | None:
    """The comment lines of a file whose comment lines all come before its first other line (the
    usual: a block of notes at the top, or none), from its bytes without decoding them. None when a comment line lies below, the top
    is longer than a block, or the encoding does not spell these characters in ASCII (UTF-16)."""
    assert options.comment
    spelled = _blanks(sep) + "\r\n" + options.comment
    try:
        if spelled.encode(options.encoding) != spelled.encode("ascii"):
            return None
    except (UnicodeError, LookupError):
        return None
    marker, blanks = options.comment.encode("ascii"), _blanks(sep).encode("ascii")
    lines: set[int] = set()
    with open(path, "rb") as f:
        text = f.read(SCAN_BYTES).removeprefix(b"\xef\xbb\xbf")
        at = number = 0
        while True:
            line = _LINE.match(text, at)
            if line is None:
                return None  # (the top runs past the block, or the file ends in it: the decoded scan decides)
            stripped = line.group(1).lstrip(blanks)
            if stripped.startswith(marker):
                lines.add(number)
            elif stripped.strip(b" \t"):
                break  # the first other line: the header, or data
            number, at = number + 1, line.end()
        # one expression a line break: each starts with a literal, which the regex engine finds fast
        # (a class "[\r\n]" is tried at every byte: 1.5 s for 200 MB, against 0.2 + 0.13 s)
        after = (b"[" + re.escape(blanks) + b"]*" if blanks else b"") + re.escape(marker)
        below = [re.compile(end + after) for end in (rb"\n", rb"\r")]
        text = text[at:]
        while not any(pattern.search(text) for pattern in below):
            block = f.read(SCAN_BYTES)
            if not block:
                return lines
            cut = max(text.rfind(b"\n"), text.rfind(b"\r"))
            text = (text[cut:] if cut >= 0 else b"") + block  # (from the last line break: a comment line may straddle)
    return None


def _comment_records(path: Path, options: CSVOptions, sep: str, skip: int) -> Lines:
    """:func:`comment_lines` by records, for a file whose quoted fields may hold line breaks."""
    assert options.comment
    blanks, lines = _blanks(sep), Lines(range(skip))
    with open(path, encoding=options.encoding, errors="replace", newline="") as f:
        if f.read(1) != "\ufeff":
            f.seek(0)
        for number, row in enumerate(csv.reader(f, delimiter=sep)):
            if number >= skip and row and row[0].lstrip(blanks).startswith(options.comment):
                lines.add(number)
    return lines


def row_names(path: Path, options: CSVOptions, sep: str, skip: int | Lines) -> int:
    """How many fields the first data row has beyond the header's: row names (R's ``write.csv``
    and ``write.table``), which pandas makes its index, and which were dropped (or, as 1..n, a RangeIndex)."""
    if options.header is None or (len(sep) != 1 and sep != WHITESPACE):
        return 0
    with open(path, encoding=options.encoding, errors="replace", newline="") as f:
        sample = f.read(2**16).removeprefix("\ufeff")
    rows: list[list[str]] = []
    try:
        for number, row in enumerate(_records(sample, sep)):
            if row and not (number < skip if isinstance(skip, int) else number in skip):
                rows.append(row)
            if len(rows) == options.header + 2:  # the header (``header: N``: the N-th row left) and the row below it
                return max(0, len(rows[-1]) - len(rows[-2]))
    except csv.Error:
        pass
    return 0


def _records(sample: str, sep: str) -> Iterator[list[str]]:
    """The records of ``sample`` as pandas' C parser splits them (lines end at ``\\r`` too: old Mac
    files); for :data:`WHITESPACE`, at runs of spaces and tabs, quotes kept together."""
    if sep != WHITESPACE:
        return csv.reader(io.StringIO(sample, newline=""), delimiter=sep)
    lines = (line.replace("\t", " ").strip() for line in io.StringIO(sample, newline=""))
    return (row if row != [""] else [] for row in csv.reader(lines, delimiter=" ", skipinitialspace=True))
