"""CSV layouts a review helper found read wrong, silently or with a raw traceback: a title line
above a table of two columns, a row with a field left out near the top, ``header: N`` under free
text, old Mac line ends, columns aligned with spaces, a text file of one column, dates no
calendar has, a column blank in the first chunk, and a bad line or byte far down a file. Each is read as pandas reads it (or, where
pandas is wrong too, as the file means), or stops with an error naming the file and the line."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from publisher.errors import SourceError
from publisher.readers.csv import CSVOptions, CSVReader


def _read(path: Path, **options: Any) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    with CSVReader().open(path, "t", CSVOptions(**options)) as node:
        return pa.Table.from_batches(list(node.batches()), schema=node.schema).to_pydict(), node.metadata


CASES = {
    # one field above two columns was taken for R's row names: the title became a column name, all text
    "title-above-two-columns": (b"Spectrometer run 5\nwavelength,intensity\n400,0.1\n401,0.2\n402,0.3\n", {},
                                {"wavelength": [400, 401, 402], "intensity": [0.1, 0.2, 0.3]}),
    # the short row disqualified the real header: "4,5" became the header, rows 1,2,3 and 4,5 were lost
    "a-field-left-out-near-the-top": (b"a,b,c\n1,2,3\n4,5\n6,7,8\n9,10,11\n12,13,14\n15,16,17\n", {},
                                      {"a": [1, 4, 6, 9, 12, 15], "b": [2, 5, 7, 10, 13, 16], "c": [3, None, 8, 11, 14, 17]}),
    # the free text was skipped, then header: 2 skipped two more lines: the header and a row lost
    "header-n-under-free-text": (b"Instrument X\nOperator: Y\na,b,c\n1,2,3\n4,5,6\n7,8,9\n", {"header": 2},
                                 {"a": [1, 4, 7], "b": [2, 5, 8], "c": [3, 6, 9]}),
    # lone \r line ends: the row names' column was dropped (csv.reader on StringIO saw one line)
    "row-names-old-mac": (b"a,b\rr1,1,2\rr2,3,4\r", {}, {"index": ["r1", "r2"], "a": [1, 3], "b": [2, 4]}),
    "free-text-old-mac": (b"Run 5\ra,b,c\r1,2,3\r4,5,6\r7,8,9\r", {}, {"a": [1, 4, 7], "b": [2, 5, 8], "c": [3, 6, 9]}),
    # columns aligned with spaces went through pandas' python engine: quotes split, a comment after a blank line kept
    "whitespace-quoted": (b'id name value\n1 "wild type" 1.5\n2 "mutant x" 2.5\n', {"delimiter": "whitespace"},
                          {"id": [1, 2], "name": ["wild type", "mutant x"], "value": [1.5, 2.5]}),
    "whitespace-comment-after-blank": (b"x y\n1 2\n\n# calibration\n3 4\n5 6\n", {"delimiter": "whitespace"},
                                       {"x": [1, 3, 5], "y": [2, 4, 6]}),
    # R's write.table: a header a field short, the row names dropped with pandas' index
    "whitespace-row-names": (b"count\nBRCA1 10\nTP53 20\n", {"delimiter": "whitespace"}, {"index": ["BRCA1", "TP53"], "count": [10, 20]}),
    # one column whose text holds a double space (or a space at a line's end) was split at whitespace, rows lost
    "one-column-double-space": (b"note\nok\nnot  ok\nfine\nrecheck  tomorrow\n", {}, {"note": ["ok", "not  ok", "fine", "recheck  tomorrow"]}),
    "one-column-trailing-space": (b"name\nJohn Smith \nJane Doe\nMax Mustermann\n", {}, {"name": ["John Smith ", "Jane Doe", "Max Mustermann"]}),
    # values shaped as ISO dates that no calendar has failed the whole file ("a later chunk does not fit")
    "impossible-dates": (b"id,shipped\n1,0000-00-00\n2,2021-05-01\n3,2023-02-29\n", {}, {"id": [1, 2, 3], "shipped": ["0000-00-00", "2021-05-01", "2023-02-29"]}),
    # offsets across a change to summer time: instants, in UTC
    "dates-across-summer-time": (b"t,v\n2024-03-31T01:30:00+01:00,1\n2024-03-31T03:30:00+02:00,2\n", {},
                                 {"t": [datetime.datetime(2024, 3, 31, 0, 30, tzinfo=datetime.UTC), datetime.datetime(2024, 3, 31, 1, 30, tzinfo=datetime.UTC)],
                                  "v": [1, 2]}),
    # the same below the first chunk (its rows' offsets all one: a later chunk's change was a failure)
    "dates-across-summer-time-later": (b"t,v\n2024-03-31T00:30:00+01:00,1\n2024-03-31T01:30:00+01:00,2\n"
                                       b"2024-03-31T01:59:00+01:00,3\n2024-03-31T03:30:00+02:00,4\n", {"chunk_rows": 2},
                                       {"t": [datetime.datetime(2024, 3, 30, 23, 30, tzinfo=datetime.UTC), datetime.datetime(2024, 3, 31, 0, 30, tzinfo=datetime.UTC),
                                              datetime.datetime(2024, 3, 31, 0, 59, tzinfo=datetime.UTC), datetime.datetime(2024, 3, 31, 1, 30, tzinfo=datetime.UTC)],
                                        "v": [1, 2, 3, 4]}),
    # integers past 64 bits in the first rows are text; later chunks read them as int64 and failed the file
    "big-integers-then-chunks": (b"id,v\n123456789012345678901234,1\n5,2\n6,3\n7,4\n", {"chunk_rows": 2},
                                 {"id": ["123456789012345678901234", "5", "6", "7"], "v": [1, 2, 3, 4]}),
    # a column with no value in the first chunk was a float column, and the first text below it failed the file
    "blank-first-chunk-then-text": (b"a,note,code\n1,,\n2,,\n3,hello,\n4,,7\n5,6,\n", {"chunk_rows": 2},
                                    {"a": [1, 2, 3, 4, 5], "note": [None, None, "hello", None, "6"], "code": [None, None, None, 7, None]}),
}


@pytest.mark.parametrize("case", CASES)
def test_layouts_are_read_as_the_file_means(tmp_path: Path, case: str) -> None:
    data, options, expected = CASES[case]
    (tmp_path / "f.csv").write_bytes(data)
    table, _ = _read(tmp_path / "f.csv", **options)
    got = {k: [v.astimezone(datetime.UTC) if isinstance(v, datetime.datetime) else v for v in vs] for k, vs in table.items()}
    assert got == expected


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_free_text_above_is_kept_as_the_preamble(tmp_path: Path, bom: bytes) -> None:
    (tmp_path / "f.csv").write_bytes(bom + CASES["title-above-two-columns"][0])
    table, metadata = _read(tmp_path / "f.csv")
    assert metadata["preamble"] == "Spectrometer run 5" and list(table) == ["wavelength", "intensity"]


@pytest.mark.parametrize(("data", "said"), [
    (b"a,b\n1,2\n3,4\n5,6\n7,8,9,10\n", "cannot parse as delimited text after its first 2 rows: Error tokenizing data. C error: Expected 2 fields in line 5"),
    (b"a,b\n1,x\n3,y\n5,z\n7,Caf\xe9\n", "cannot parse as delimited text after its first 2 rows: 'utf-8' codec can't decode byte 0xe9"),
])
def test_a_bad_line_or_byte_far_down_names_the_file(tmp_path: Path, data: bytes, said: str) -> None:
    """The first chunk's errors were SourceErrors; a later chunk's escaped as pandas' ParserError
    or a UnicodeDecodeError (a build's traceback, not a failure naming the file)."""
    (tmp_path / "f.csv").write_bytes(data)
    with pytest.raises(SourceError) as caught:
        _read(tmp_path / "f.csv", chunk_rows=2)
    assert str(caught.value).startswith(f"{tmp_path / 'f.csv'}: {said}")


def test_a_table_failing_below_its_first_rows_leaves_no_parquet(tmp_path: Path) -> None:
    """A table whose rows fail after its first batches were written fails alone, its Parquet gone
    from the release (it was a valid file of the rows before the failure, beside the index)."""
    from publisher.build import build
    from publisher.config import load_pipeline

    from .conftest import write_pipeline

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f.csv").write_bytes(b"a,b\n" + b"1,2\n" * 50 + b"7,8,9,10\n")
    (tmp_path / "src" / "ok.csv").write_bytes(b"a,b\n1,2\n")
    pipeline = load_pipeline(write_pipeline(tmp_path, {"output": {"store": str(tmp_path / "site")}, "on_error": "skip",
                                                       "sources": [{"path": "src", "into": "", "options": {"chunk_rows": 10}}]}))
    report = build(pipeline, workers=1)
    assert [p.path for p in report.failures] == ["f"]
    assert [p.name for p in (tmp_path / "site").glob("releases/*/data/*")] == ["ok.parquet"]


def test_a_utf16_file_with_its_byte_order_mark_is_read_as_utf16(tmp_path: Path) -> None:
    """Excel's "Unicode text" and PowerShell write UTF-16 with a byte-order mark: read as UTF-8
    (the default) it failed ("'utf-8' codec can't decode byte 0xff")."""
    path = tmp_path / "u.csv"
    path.write_bytes("a,b\n1,é\n2,ß\n".encode("utf-16"))
    columns, _ = _read(path)
    assert columns == {"a": [1, 2], "b": ["é", "ß"]}


def test_an_unknown_encoding_is_refused_with_the_options() -> None:
    """It failed every file of the source at build time, as a bare LookupError."""
    with pytest.raises(ValueError, match="unknown text encoding 'nope'"):
        CSVOptions(encoding="nope")
    assert CSVOptions(encoding="UTF-16").encoding == "UTF-16"


def test_a_utf32_file_is_not_taken_for_utf16(tmp_path: Path) -> None:
    """UTF-32's little-endian byte-order mark begins as UTF-16's: read as UTF-16, its text was
    published with NULs between its characters."""
    path = tmp_path / "u.csv"
    path.write_bytes("name,value\nx,1\n".encode("utf-32"))
    columns, _ = _read(path)
    assert columns == {"name": ["x"], "value": [1]}


def test_a_title_of_clauses_above_a_header_of_years_stays_free_text(tmp_path: Path) -> None:
    """A title wider than the table ("Population estimates, in thousands, ...") above a header
    holding years was taken for the header once wider headers were kept."""
    path = tmp_path / "p.csv"
    path.write_text("Population estimates, in thousands, by country, mid-year\ncountry,2019,2020\nA,1,2\nB,3,4\nC,5,6\n")
    columns, metadata = _read(path)
    assert columns == {"country": ["A", "B", "C"], "2019": [1, 3, 5], "2020": [2, 4, 6]}
    assert metadata["preamble"] == "Population estimates, in thousands, by country, mid-year"
