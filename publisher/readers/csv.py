"""CSV/TSV → a table: delimiter sniffing, comment lines, NaNs, ISO dates, streamed in chunks.
A header one field short of the rows (R's ``write.csv``: row names) keeps the row names as a
column named ``index``.

The schema is inferred from the first chunk. Later chunks read its text columns as text (pandas
guesses each chunk's types afresh: zero-padded codes below a first chunk of letters came back as
integers, and Arrow's cast to text published ``00042`` as ``42``), and are cast to it only where
the values keep their kind (integers to floats, text to numbers it parses as); any other change
(numbers to text or to booleans, booleans to numbers) is an error that names the column, never a
silent change.
"""

from __future__ import annotations

import contextlib
import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import SourceError
from ..nodes import Node, TableNode
from .base import Reader, register_reader
from .csv_lines import WHITESPACE, comment_lines, commented_header, preamble, row_names
from .tables import as_text, fit, not_arrow, one_batch, unique_names

#: About this much text a chunk, whatever the rows' width: ``chunk_rows`` rows of 500 columns are
#: gigabytes once parsed (800 MB of such a CSV grew a build by 1 GB). Rows of up to ~134 bytes keep
#: ``chunk_rows`` (500,000) a chunk, as before; a ``chunk_rows`` set in the pipeline is kept exactly.
CHUNK_TEXT_BYTES = 64 * 2**20

_LINE_END = re.compile(rb"\r\n?|\n")
#: A field of digits led by a zero ('007', '-0042'; not '09:30'), in the first bytes of a file.
_PADDED = r'(?:^|[{sep}])[ \t]*"?[+-]?0[0-9]+"?[ \t]*(?:[{sep}]|\r?$)'
#: How many rows are read as text to find the integer columns written with leading zeros.
PADDED_ROWS = 2000
#: Of those, how many fields are looked at together (a column's at least).
PADDED_FIELDS = 2**17
_DATE = re.compile(r"^\d{4}([-/])\d{2}\1\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")


class CSVOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    delimiter: str | None = Field(default=None, description="Column separator; sniffed when omitted ('whitespace' for runs of spaces).")
    comment: str | None = Field(default="#", description="Lines starting with this (after blanks) are skipped, anywhere in the file; "
                                                         "inside a line it is text ('#ff0000').")
    header: int | None = Field(default=0, description="Header row number, or null for none.")
    encoding: str = "utf-8"
    parse_dates: list[str] | bool = Field(default=True, description="True: detect ISO date columns; or a list of column names.")
    chunk_rows: int = Field(default=500_000, gt=0)
    text_columns: list[str] = Field(default=[], description="Columns read as text whatever they hold: codes and sample "
                                                            "IDs keep their leading zeros ('007', not 7). By header name, or "
                                                            "by number (from 0) without a header.")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        """An encoding Python has (an unknown one failed every file at build time: LookupError)."""
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown text encoding {value!r} (Python's names: utf-8, latin-1, cp1252, utf-16, ...)") from None
        return value

    @field_validator("text_columns", mode="before")
    @classmethod
    def _numbers_as_names(cls, value: Any) -> Any:
        """Without a header the columns are numbered: ``[0]`` as YAML gives it."""
        if isinstance(value, list):
            return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return value


def _marked(head: bytes) -> str | None:
    """The encoding a UTF-16 or UTF-32 byte-order mark says (UTF-32's little-endian mark begins
    as UTF-16's: read as UTF-16, a UTF-32 file was published as text between NULs)."""
    if head in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"):
        return "utf-32"
    return "utf-16" if head[:2] in (b"\xff\xfe", b"\xfe\xff") else None


def _sniff(path: Path, options: CSVOptions) -> dict[str, Any]:
    with open(path, encoding=options.encoding, errors="replace") as f:
        lines = []
        for line in f:
            if options.comment and line.lstrip().startswith(options.comment):
                continue
            if line.strip():
                lines.append(line)
            if len(lines) >= 50:
                break
    sample = "".join(lines)
    if options.delimiter is not None:
        return {"sep": WHITESPACE if options.delimiter == "whitespace" else options.delimiter}
    sep = _delimiter(sample, lines)
    if sep == " " or (sep == "," and "," not in sample and _aligned(lines)):
        return {"sep": WHITESPACE}
    return {"sep": sep}


def _aligned(lines: list[str]) -> bool:
    """Columns aligned with runs of spaces or tabs: the first lines all split into as many fields
    (two or more), and some line has a run of two. A file of one column whose text holds a
    double space ("not  ok"), or a space at a line's end, is one column (it was split, rows lost)."""
    first = [line.split() for line in lines[:10]]
    return (bool(first) and len(first[0]) >= 2 and all(len(fields) == len(first[0]) for fields in first)
            and any(re.search(r"\S[ \t]{2,}\S", line) for line in lines[:10]))


def _delimiter(sample: str, lines: list[str]) -> str:
    """The delimiter ``csv.Sniffer`` finds in ``sample`` (its ``lines``), else a comma. Without a
    quote in the sample, its first ten lines decide: the candidates found as many times on each
    of them, a comma first, then a tab, a semicolon, a space, a bar (its preferences). Said here
    without its scan of 127 characters a line (~1 ms, a fifth of reading a small CSV) when one
    is; checked against the Sniffer by tests/test_csv_work.py."""
    first = lines[:10]
    if first and '"' not in sample and "'" not in sample:
        for candidate in ",\t; |":
            if (count := first[0].count(candidate)) and all(line.count(candidate) == count for line in first):
                return candidate
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t| ").delimiter
    except csv.Error:
        return ","


def _line_width(f: Any, at: int, end: bytes) -> float:
    """The mean length of the whole lines in 64 KiB of text from ``at``, read on until two line
    ends are in it (a line longer than that is measured, up to :data:`CHUNK_TEXT_BYTES`)."""
    f.seek(at)
    text = bytearray(f.read(2**16))
    ends = text.count(end)
    while ends < 2 and len(text) < CHUNK_TEXT_BYTES:
        more = f.read(2**20)
        if not more:
            break
        text += more
        ends += more.count(end)
    return (text.rfind(end) - text.find(end)) / (ends - 1) if ends >= 2 else max(len(text), 1)


def _line_end(f: Any) -> bytes:
    """``\\r`` for old Mac line ends (the first line end is a ``\\r`` not before a ``\\n``), else
    ``\\n``; read on until a line end, up to :data:`CHUNK_TEXT_BYTES` (a header longer than 64 KiB
    of such a file was measured as one line of 64 MiB, and read a row a chunk)."""
    text, start = bytearray(), 0
    while len(text) < CHUNK_TEXT_BYTES:
        more = f.read(2**16 if not text else 2**20)
        text += more
        found = _LINE_END.search(text, start, len(text) - 1 if more else len(text))  # (a last \r may be a \r\n's)
        if found:
            return b"\r" if found.group() == b"\r" else b"\n"
        if not more:
            break
        start = len(text) - 1
    return b"\n"


def _rows_per_chunk(path: Path, options: CSVOptions) -> int:
    """Rows of about :data:`CHUNK_TEXT_BYTES` of text, at most ``chunk_rows``; exactly that when
    the pipeline set it. The rows' width is the widest of four samples, at the start, a quarter,
    half and three quarters through: measured at the start alone, a file of short rows and then
    long ones was one chunk (800 MB of text grew a build by 1.7 GB)."""
    if "chunk_rows" in options.model_fields_set:
        return options.chunk_rows
    size = path.stat().st_size
    with open(path, "rb") as f:
        end = _line_end(f)
        width = max(_line_width(f, size * i // 4, end) for i in range(4 if size > 2**18 else 1))
    return max(1, min(options.chunk_rows, int(CHUNK_TEXT_BYTES // width)))


def _text_labels(frame: Any) -> list[Any]:
    """The labels of the columns pandas read as text (its string dtypes, or objects holding text:
    not booleans with blanks, which pandas also keeps as objects). Told by the frame's dtypes
    first: a Series made for each column took seconds for a CSV 60,000 columns wide."""
    import pandas as pd

    found = []
    for i, (label, dtype) in enumerate(zip(frame.columns, frame.dtypes, strict=True)):
        if str(dtype) in ("str", "string") or (
                dtype.kind in "OT" and pd.api.types.infer_dtype(frame.iloc[:, i], skipna=True) in ("string", "mixed", "mixed-integer")):
            found.append(label)
    return found


def _date_columns(frame: Any, texts: set[str], options: CSVOptions) -> list[str]:
    """The columns of ISO dates: named in the options, or (``parse_dates: true``) the text
    columns, ``texts``, whose every value is one."""
    if isinstance(options.parse_dates, list):
        return [c for c in options.parse_dates if c in frame.columns and c not in options.text_columns]
    if not options.parse_dates:
        return []
    found = []
    for name in frame.columns:
        if name in options.text_columns or name not in texts:  # (text columns are as written, whatever they hold)
            continue
        values = frame[name].dropna().astype(str)
        # (not ``values.str.match``: pandas parses the pattern again each call, 0.35 ms, and its
        # back-reference sends it value by value through Python anyway; this stops at a non-date)
        if len(values) and all(map(_DATE.match, values)):
            found.append(name)
    return found


def _zero_padded(path: Path, first: Any, read_kwargs: dict[str, Any], options: CSVOptions) -> dict[Any, str]:
    """Integer columns of the first rows written with leading zeros (codes, sample IDs: '007' and
    '07' would both publish as 7), each with an example; as pandas, pyarrow, polars and DuckDB
    read them, they are numbers, and the caller warns. Costs one search of the file's first 64 KiB
    unless such a field is there."""
    import pandas as pd

    integers = [c for c, dtype in zip(first.columns, first.dtypes, strict=True) if dtype.kind in "iuf"]  # (floats: integers with blanks among them)
    if not integers:
        return {}
    sep = read_kwargs["sep"]
    with open(path, encoding=options.encoding, errors="replace") as f:
        head = f.read(65536)
    if not re.search(_PADDED.format(sep=r"\s" if sep == WHITESPACE else re.escape(sep)), head, re.MULTILINE):
        return {}
    # (row names pandas made an index of, from a header fields short, dropped: the fields stack by column)
    text = pd.read_csv(path, nrows=PADDED_ROWS, **{**read_kwargs, "dtype": str, "usecols": integers}).reset_index(drop=True)
    found: dict[Any, str] = {}
    # the fields of many columns at once (a Series a column took seconds for 60,000 columns), up to
    # PADDED_FIELDS of them (stacked, a field takes ~100 bytes: 3,000 columns whole took 619 MB)
    step = max(1, PADDED_FIELDS // max(len(text), 1))
    for start in range(0, text.shape[1], step):
        cells = text.iloc[:, start:start + step].stack().dropna().str.strip()
        firsts = cells[cells.str.fullmatch(r"[+-]?0[0-9]+")].groupby(level=-1, sort=False).first()  # (each column's first row)
        found.update((name, str(firsts[name])) for name in firsts.index)
    return {name: found[name] for name in integers if name in found}


def _blank_types(path: Path, read_kwargs: dict[str, Any], rows: int, blank: list[Any]) -> dict[Any, Any]:
    """The Arrow type of each column in ``blank`` (no value in the first ``rows`` rows) as pandas
    reads the first chunk below that has a value; columns with none are left out. Reads the file
    again (those columns only) until each has one."""
    import pandas as pd
    import pyarrow as pa

    found: dict[Any, Any] = {}
    kwargs = {**read_kwargs, "dtype": {k: v for k, v in read_kwargs["dtype"].items() if k in blank}, "usecols": blank}
    try:
        with pd.read_csv(path, chunksize=rows, **kwargs) as reader:
            next(reader, None)  # (the first rows: blank)
            for frame in reader:
                for label in [label for label in blank if label not in found and frame[label].notna().any()]:
                    found[label] = pa.Array.from_pandas(frame[label]).type
                if len(found) == len(blank):
                    break
    except ValueError as exc:  # (pandas' ParserError, a UnicodeDecodeError): a bad line or byte far down the file
        raise SourceError(f"{path}: cannot parse as delimited text after its first {rows} rows: {exc}") from exc
    return found


def _str_labels(frame: Any) -> None:
    """The frame's column labels as text (numbers without a header), set only when one is not:
    setting them builds a new index (~0.1 ms, a tenth of reading a small file)."""
    if not all(type(c) is str for c in frame.columns):
        frame.columns = [str(c) for c in frame.columns]


@register_reader
class CSVReader(Reader):
    name = "csv"
    alone = True  # (one file, nothing it refers to)
    requires = ("pandas", "pyarrow")
    extensions = (".csv", ".tsv", ".tab", ".psv")
    Options = CSVOptions

    @contextlib.contextmanager
    def open(self, path: Path, key: str, options: CSVOptions) -> Iterator[Node]:  # type: ignore[override]
        import pandas as pd
        import pyarrow as pa

        with open(path, "rb") as file:
            mark = file.read(4)
        if options.encoding.replace("-", "").lower() in ("utf8", "utf_8") and (found := _marked(mark)):
            options = options.model_copy(update={"encoding": found})  # (its byte-order mark says so: it failed as UTF-8)
        kwargs = _sniff(path, options)
        skip, preamble_text = preamble(path, options, kwargs["sep"])
        skiprows = comment_lines(path, options, kwargs["sep"], skip) if options.comment else skip
        read_kwargs: dict[str, Any] = dict(
            skiprows=skiprows, header=options.header, encoding=options.encoding,
            engine="c" if kwargs["sep"] == WHITESPACE or len(kwargs["sep"]) == 1 else "python", skipinitialspace=True, **kwargs,
        )
        extra = row_names(path, options, kwargs["sep"], skiprows)
        if extra:  # named columns for them ("index", as pandas' reset_index names one), read as any other
            header = [str(c) for c in pd.read_csv(path, nrows=0, **read_kwargs).columns]
            read_kwargs["names"] = unique_names(["index" if extra == 1 else f"level_{i}" for i in range(extra)] + header)
        rows = _rows_per_chunk(path, options)
        if options.text_columns:  # (without a header pandas numbers the columns: 0 as well as "0")
            read_kwargs["dtype"] = {k: str for name in options.text_columns for k in ((name, int(name)) if name.isdigit() else (name,))}
        try:
            first = pd.read_csv(path, nrows=rows, **read_kwargs)
        except Exception as exc:
            raise SourceError(f"{path}: cannot parse as delimited text: {exc}") from exc
        missing = [c for c in options.text_columns if c not in {str(label) for label in first.columns}]
        if missing:
            raise SourceError(f"{path}: options.text_columns names {', '.join(map(repr, missing))}, not among its columns "
                              f"({', '.join(map(repr, map(str, first.columns)))})")
        padded = _zero_padded(path, first, read_kwargs, options)
        # later chunks read the first chunk's text columns as text (by pandas' own labels: ints without a header)
        texts = _text_labels(first)
        later_kwargs = {**read_kwargs, "dtype": {c: str for c in first.columns if str(c) in options.text_columns} | dict.fromkeys(texts, str)}
        labels = list(first.columns)  # (pandas' own: ints without a header)
        _str_labels(first)
        dates = _date_columns(first, {str(c) for c in texts}, options)

        as_texts: set[str] = set()  # columns of the first rows Arrow could not take: as text

        def misfit(what: str, why: object) -> SourceError:
            return SourceError(f"{path}: a later chunk does not fit the types of the first {rows} rows (read to decide them): "
                               f"{what}: {why}. Give the source options: {{chunk_rows: N}} to decide them from more rows")

        def to_batch(frame: Any, schema: Any = None) -> Any:
            _str_labels(frame)
            for name in list(dates):
                iso = frame[name].astype("string").str.replace("/", "-", n=2)
                try:
                    frame[name] = pd.to_datetime(iso, format="ISO8601", utc=False)
                except (ValueError, TypeError):
                    # offsets that change (a summer time) are one instant each, in UTC; a value no
                    # calendar has (0000-00-00, 2023-02-29) in the first rows keeps the column as
                    # text, as pandas reads it (it failed the whole file), and below them fails it
                    try:
                        frame[name] = pd.to_datetime(iso, format="ISO8601", utc=True)
                    except (ValueError, TypeError) as exc:
                        if schema is not None:
                            raise misfit(f"column {name!r} (dates in the first rows)", exc) from None
                        dates.remove(name)
            try:
                table = pa.Table.from_pandas(frame, preserve_index=False)
            except (OverflowError, pa.ArrowInvalid, pa.ArrowTypeError):  # integers past 64 bits (ids): as text
                for name in frame.columns:
                    if frame[name].dtype == object and not_arrow(pa, frame[name]):
                        frame[name] = frame[name].map(as_text)
                        as_texts.add(name)
                table = pa.Table.from_pandas(frame, preserve_index=False)
            return one_batch(fit(table, schema, misfit) if schema is not None else table)

        # the file in one chunk: its batch, made once and kept; else read again, chunk by chunk (the
        # first chunk's batch gives the schema). Made twice, it was a third of a small file's reading
        whole = to_batch(first) if len(first) < rows else None
        schema = whole.schema if whole is not None else to_batch(first).schema
        if whole is None and (blank := [labels[i] for i, empty in enumerate(first.isna().all()) if empty and str(labels[i]) not in options.text_columns]):
            # a column with no value in the first rows (a note, an error code, filled in now and
            # then) takes its type from the first chunk below that has one (it was a float column,
            # and the first text below it failed the file)
            for label, kind in _blank_types(path, later_kwargs, rows, blank).items():
                schema = schema.set(schema.get_field_index(str(label)), pa.field(str(label), kind))
                if pa.types.is_string(kind) or pa.types.is_large_string(kind):
                    later_kwargs["dtype"][label] = str  # (text in every chunk, numbers among it too)
        del first

        def batches() -> Iterator[Any]:
            if whole is not None:
                yield whole
                return
            # (columns of integers past 64 bits in the first rows: text in every chunk)
            texts_now = {**later_kwargs["dtype"], **{label: str for label in labels if str(label) in as_texts}}
            try:
                with pd.read_csv(path, chunksize=rows, **{**later_kwargs, "dtype": texts_now}) as reader:
                    for frame in reader:
                        yield to_batch(frame, schema)
            except ValueError as exc:  # (pandas' ParserError, a UnicodeDecodeError): a bad line or byte far down the file
                raise SourceError(f"{path}: cannot parse as delimited text after its first {rows} rows: {exc}") from exc

        metadata: dict[str, Any] = {"delimiter": "whitespace" if kwargs["sep"] == WHITESPACE else kwargs["sep"]}
        if preamble_text:
            metadata["preamble"] = preamble_text
        node = TableNode(key=key, metadata=metadata, schema=schema, batches=batches)
        if as_texts:
            node.warn(f"column{'s' if len(as_texts) > 1 else ''} {', '.join(map(repr, sorted(as_texts)))} hold integers "
                      "past 64 bits: published as text")
        if (commented := commented_header(path, options, kwargs["sep"])) is not None:
            node.warn(f"the comment line {commented[:200]!r} looks like the header, and the first row taken for the header like "
                      "data: set options: {comment: null} (or another comment character) to read that line as the header")
        if padded:
            node.warn(f"column{'s' if len(padded) > 1 else ''} {', '.join(f'{str(c)!r} ({v!r})' for c, v in padded.items())} "
                      f"hold{'s' if len(padded) == 1 else ''} integers written with leading zeros: published as numbers; "
                      f"options: {{text_columns: [{', '.join(map(str, padded))}]}} keeps them as written")
        yield node
