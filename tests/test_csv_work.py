"""The CSV reader's work per file and per column: a small file is made into Arrow once, a wide one
is not walked column by column for each of its checks (60,000 columns: 12.9 s -> 5.3 s), and the
delimiter of a regular sample is found without csv.Sniffer's scan, as the Sniffer finds it."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pyarrow import pandas_compat

from publisher.readers.csv import CSVOptions, CSVReader


def _read(path: Path) -> pa.Table:
    with CSVReader().open(path, "t", CSVOptions()) as node:
        return pa.Table.from_batches(list(node.batches()), schema=node.schema)


def test_a_file_in_one_chunk_becomes_arrow_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "log.csv").write_text("time,t,code,sample\n2024-01-01T00:00:00,1.5,007,a\n2024-01-02T00:00:00,2.5,012,b\n")
    made = []
    real = pandas_compat.dataframe_to_arrays  # (what Table.from_pandas calls: Arrow's types cannot be patched)

    def counted(frame: Any, *args: Any, **kwargs: Any) -> Any:
        made.append(frame.shape)
        return real(frame, *args, **kwargs)

    monkeypatch.setattr(pandas_compat, "dataframe_to_arrays", counted)
    table = _read(tmp_path / "log.csv")
    assert made == [(2, 4)]
    assert pa.types.is_timestamp(table.schema.field("time").type)
    assert table.column("t").to_pylist() == [1.5, 2.5]
    assert table.column("code").to_pylist() == [7, 12]  # (warned about: numbers, as every CSV reader reads them)
    assert table.column("sample").to_pylist() == ["a", "b"]
    # a column of dates but one is text; dates with slashes, or some with dashes and some with slashes
    (tmp_path / "mixed.csv").write_text("a,b,c\n2024-01-01,2024/01/01,2024-01-01\nnot yet,2024/01/02,2024/01/02\n")
    mixed = _read(tmp_path / "mixed.csv")
    assert [pa.types.is_timestamp(f.type) for f in mixed.schema] == [False, True, True]


def test_a_wide_file_is_walked_once_per_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    width = 3000
    names = [f"w{i}" for i in range(width)] + ["when", "who", "code"]
    rows = [[f"{r + i / 1000:.3f}" for i in range(width)] + [f"2024-01-0{r + 1}", f"s{r}", f"00{r}"] for r in range(3)]
    (tmp_path / "wide.csv").write_text("\n".join(",".join(row) for row in [names, *rows]) + "\n")
    taken = [0]
    real = pd.DataFrame.__getitem__

    def counted(self: pd.DataFrame, key: Any) -> Any:
        taken[0] += 1
        return real(self, key)

    monkeypatch.setattr(pd.DataFrame, "__getitem__", counted)
    table = _read(tmp_path / "wide.csv")
    # pyarrow's conversion takes each column once; the reader's own checks only the few that may
    # hold text (each check took all 3,003 before, four passes in all)
    assert taken[0] <= len(names) + 10, taken[0]
    assert table.num_columns == len(names)
    assert pa.types.is_float64(table.schema.field("w2999").type)
    assert pa.types.is_timestamp(table.schema.field("when").type)
    assert table.column("who").to_pylist() == ["s0", "s1", "s2"]
    assert table.column("code").to_pylist() == [0, 1, 2]


@pytest.mark.parametrize("fields", [2**17, 3])  # (3: the fields looked at a column or two at a time)
def test_zero_padded_codes_are_found_by_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fields: int) -> None:
    """Two row names before the fields (a header two short: pandas makes them its index) are not
    columns: the warning names the columns whose fields are padded, with the first such value."""
    from publisher.readers import csv as csv_reader

    monkeypatch.setattr(csv_reader, "PADDED_FIELDS", fields)
    (tmp_path / "named.txt").write_text("a b\nr1 a 1 007\nr2 b 02 3\n")
    with CSVReader().open(tmp_path / "named.txt", "t", CSVOptions(delimiter="whitespace")) as node:
        assert node.notes["warnings"] == [("columns 'a' ('02'), 'b' ('007') hold integers written with leading zeros: published as "
                                           "numbers; options: {text_columns: [a, b]} keeps them as written")]
    (tmp_path / "codes.csv").write_text("x,p,q,r\n1,5,0012,7\n2,-03,4,x\n3,6,0099,y\n")
    with CSVReader().open(tmp_path / "codes.csv", "t", CSVOptions()) as node:
        assert node.notes["warnings"] == [("columns 'p' ('-03'), 'q' ('0012') hold integers written with leading zeros: published "
                                           "as numbers; options: {text_columns: [p, q]} keeps them as written")]


def _sniffed(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t| ").delimiter
    except csv.Error:
        return ","


#: Rows of fields joined by one of the candidates, mostly (other candidates inside the fields).
_ROWS = st.sampled_from(",\t; |:").flatmap(lambda sep: st.lists(st.text(alphabet="ab1. -:;|\t,'", max_size=4), min_size=1, max_size=5).map(sep.join))


@settings(max_examples=800, deadline=None)
@given(st.lists(_ROWS | st.text(alphabet="ab1.,;\t| -:'\"", min_size=1, max_size=12), min_size=1, max_size=14))
def test_the_delimiter_is_the_sniffers(rows: list[str]) -> None:
    """The shortcut (a candidate as regular on each of the first ten lines) finds what
    ``csv.Sniffer`` finds, else a comma."""
    from publisher.readers.csv import _delimiter

    lines = [row + "\n" for row in rows if row.strip()]
    assume(lines)
    sample = "".join(lines)
    assert _delimiter(sample, lines) == _sniffed(sample)


@pytest.mark.parametrize("rows", [["a,b", "1,2"] * 6, ["a, b", "1, 2", "3, 4"], ["a;b,c", "1;2,3"], ["x", "1"], ["a,b,c", "1,2", "3,4,5"],
                                  ["a b,c", "1 2,3"], ["a|b,c", "1|2,3"] * 7, ["a\tb", "1\t2"], ["a;b", "1,5;2"], ["a|b c", "1|2 3"],
                                  ["a|b", "1|2"], ["a b", "1 2"], ["a\tb;c", "1\t2;3", "4\t5"],
                                  ["a,b\tc"] * 9 + ["a,b,c,d\tx"], ["a,b\tc"] * 10 + ["a,b,c,d\tx"]])  # (the first ten lines decide)
def test_the_delimiter_of_common_files(rows: list[str]) -> None:
    from publisher.readers.csv import _delimiter

    lines = [row + "\n" for row in rows]
    assert _delimiter("".join(lines), lines) == _sniffed("".join(lines))
