"""Tables whose sources publish wrong values or fail for what they legitimately hold (review
helpers' repros): Parquet's legacy INT96 timestamps outside 1677-2262, a dataset's ``_metadata``
sidecars, a compound whose flattened field names collide."""

from __future__ import annotations

import datetime
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .conftest import run_build


def test_int96_timestamps_keep_their_dates(tmp_path: Path) -> None:
    """Read as nanoseconds (pyarrow's default) 1500-01-01 was published as 2084-07-20 and
    9999-12-31 as 1816-03-29, with no word."""
    (tmp_path / "src").mkdir()
    dates = [datetime.datetime(1500, 1, 1), datetime.datetime(2024, 5, 6, 7, 8, 9, 123456), datetime.datetime(9999, 12, 31)]
    pq.write_table(pa.table({"t": pa.array(dates, pa.timestamp("us"))}), tmp_path / "src" / "legacy.parquet",
                   use_deprecated_int96_timestamps=True)
    published = run_build(tmp_path, {"sources": [{"path": "src", "into": ""}]})
    table = pq.read_table(published.url("legacy"))
    assert table.column("t").to_pylist() == dates


def test_a_datasets_sidecars_are_skipped_and_its_files_published(tmp_path: Path) -> None:
    """``_metadata`` (its files' footers) failed the whole build ("Couldn't deserialize thrift");
    ``_common_metadata`` was published as an empty table."""
    table = pa.table({"v": [1.5, 2.5, 3.5], "k": ["a", "b", "c"]})
    collector: list[pq.FileMetaData] = []
    pq.write_to_dataset(table, tmp_path / "ds", metadata_collector=collector)
    pq.write_metadata(table.schema, tmp_path / "ds" / "_common_metadata")
    pq.write_metadata(table.schema, tmp_path / "ds" / "_metadata", metadata_collector=collector)
    published = run_build(tmp_path, {"sources": [{"path": "ds", "into": ""}], "on_error": "fail"})
    skipped = published.problems("skipped")
    assert set(skipped) == {"_metadata", "_common_metadata"}, skipped
    assert all("sidecar (its files' footers, no rows of its own): not published; the dataset's files are" in r for r in skipped.values())
    (data,) = [e["path"] for e in published.entries() if e["family"] == "table"]
    assert pq.read_table(published.url(data)).to_pydict() == table.to_pydict()


def test_compound_fields_whose_flattened_names_collide_are_all_published(tmp_path: Path) -> None:
    """A field ``in.a`` beside a compound ``in`` with a field ``a``: both flattened to the column
    ``in.a``, the second overwrote the first (2 columns of 3, the field's values gone)."""
    (tmp_path / "src").mkdir()
    dt = np.dtype([("in.a", "i4"), ("in", [("a", "i2"), ("b", "f4")])])
    values = np.zeros(3, dt)
    values["in.a"] = [1, 2, 3]
    values["in"]["a"] = [10, 20, 30]
    values["in"]["b"] = [0.5, 0.25, 1.0]
    with h5py.File(tmp_path / "src" / "f.h5", "w") as f:
        f["t"] = values
    published = run_build(tmp_path, {"sources": [{"path": "src", "into": ""}]})
    assert pq.read_table(published.url("f/t")).to_pydict() == {"in.a": [1, 2, 3], "in.a.1": [10, 20, 30], "in.b": [0.5, 0.25, 1.0]}


def test_a_header_wider_than_its_rows_stays_the_header(tmp_path: Path) -> None:
    """Trailing empty fields left out of every row (or a file of a few rows): the header, wider
    than the rows, was taken for free text above the table and the first row for its header (a
    row lost, the columns misnamed, no word)."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "omitted.csv").write_text("name,value,comment\nx,1\ny,2\nz,3\nw,4\n")
    (tmp_path / "src" / "short.csv").write_text("a,b,c\n1,2\n3,4\n5,6\n")
    (tmp_path / "src" / "titled.csv").write_text("Run 5: sample A, 300 K, calibrated, v2\nx,y\n1,2\n3,4\n5,6\n")  # free text, still
    published = run_build(tmp_path, {"sources": [{"path": "src", "into": ""}]})
    assert pq.read_table(published.url("omitted")).to_pydict() == {"name": ["x", "y", "z", "w"], "value": [1, 2, 3, 4],
                                                                   "comment": [None] * 4}
    assert pq.read_table(published.url("short")).to_pydict() == {"a": [1, 3, 5], "b": [2, 4, 6], "c": [None] * 3}
    assert pq.read_table(published.url("titled")).to_pydict() == {"x": [1, 3, 5], "y": [2, 4, 6]}
    assert published.node("titled")["metadata"]["preamble"] == "Run 5: sample A, 300 K, calibrated, v2"


def test_a_header_written_as_a_comment_is_said(tmp_path: Path) -> None:
    """``#id,value`` over numbers (BED's ``#chrom``): skipped as a comment, the first row of data
    became the header without a word."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "ids.csv").write_text("#id,value\n1,10\n2,20\n3,30\n")
    (tmp_path / "src" / "notes.csv").write_text("# exported 2024-05-06\nid,value\n1,10\n2,20\n")  # a comment, a header: nothing said
    published = run_build(tmp_path, {"sources": [{"path": "src", "into": ""}]})
    warned = published.problems("warnings")
    assert warned == {"ids": "the comment line '#id,value' looks like the header, and the first row taken for the header like data: "
                             "set options: {comment: null} (or another comment character) to read that line as the header"}, warned


def test_int96_timestamps_within_nanoseconds_keep_their_nanoseconds(tmp_path: Path) -> None:
    """INT96 holds nanoseconds (Impala writes them): read as microseconds for every file, a file
    whose dates nanoseconds hold lost its last three digits."""
    (tmp_path / "src").mkdir()
    stamps = pa.array([1_700_000_000_123_456_789, None, 0], pa.timestamp("ns"))
    pq.write_table(pa.table({"t": stamps, "n": [1, 2, 3]}), tmp_path / "src" / "impala.parquet", use_deprecated_int96_timestamps=True)
    published = run_build(tmp_path, {"sources": [{"path": "src", "into": ""}]})
    table = pq.read_table(published.url("impala"))
    assert table.schema.field("t").type == pa.timestamp("ns") and table.column("t").cast(pa.int64()).to_pylist() == stamps.cast(pa.int64()).to_pylist()
