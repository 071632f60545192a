"""Damaged or unusual sources (an adversarial helper's cases, 2026-12-06): each is either
published with the values it holds or fails naming the file and the reason; never published
wrong, never a 500 when it is served."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from publisher.build import build
from publisher.config import load_pipeline
from publisher.errors import BuildFailed

from .conftest import remove_deep, run_build, served, write_pipeline


def _failures(folder: Path, config: dict) -> tuple[dict[str, str], dict[str, str]]:
    """Build with ``on_error: skip``: (failures, skipped) by node path."""
    pipeline = load_pipeline(write_pipeline(folder, {"output": {"store": str(folder / "site")}, "on_error": "skip", **config}))
    try:
        report = build(pipeline, workers=2)
    except BuildFailed as exc:
        report = exc.args[0]
    return {p.path: p.reason for p in report.failures}, {p.path: p.reason for p in report.skipped}


def test_a_truncated_npy_fails_naming_it(tmp_path: Path) -> None:
    """numpy's "mmap length is greater than file size" was taken for an object array: the file
    was skipped ("need pickle") and the build published without it, exit 0, even with on_error: fail."""
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "cut.npy", np.arange(1000, dtype="<f8"))
    data = (tmp_path / "in" / "cut.npy").read_bytes()
    (tmp_path / "in" / "cut.npy").write_bytes(data[: len(data) // 2])
    np.save(tmp_path / "in" / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    failures, skipped = _failures(tmp_path, {"sources": [{"path": "in", "into": "d"}]})
    assert "truncated" in failures["d/cut"] and "cut.npy" in failures["d/cut"], failures
    assert "need pickle" in skipped["d/objects"], skipped


def _npy(header: str, body: bytes) -> bytes:
    """An .npy of version 1.0 with ``header`` (padded as numpy pads it) and ``body``."""
    text = header.encode("latin-1")
    text += b" " * (-(10 + len(text) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + body


def test_npy_headers_that_lie_fail_naming_the_file(tmp_path: Path) -> None:
    """A review helper's cases: a shape whose size wraps 64 bits (np.prod in int64: 0 bytes, so
    no truncation was seen, then a MemoryError with no message), negative sizes (whose product
    matched the bytes), and a header whose brace is gone (numpy's tokenize error, raw)."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "huge.npy").write_bytes(_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4), }", b""))
    (tmp_path / "in" / "negative.npy").write_bytes(_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (-2, -3), }", bytes(48)))
    np.save(tmp_path / "whole.npy", np.arange(6.0))
    (tmp_path / "in" / "brace.npy").write_bytes((tmp_path / "whole.npy").read_bytes().replace(b"}", b" ", 1))
    failures, _ = _failures(tmp_path, {"sources": [{"path": "in", "into": "d"}]})
    assert "huge.npy: truncated: its header states more data than the file holds" in failures["d/huge"], failures
    assert "negative.npy: not a readable .npy file: its header's shape (-2, -3) has a negative size" in failures["d/negative"], failures
    assert "brace.npy: not a readable .npy file" in failures["d/brace"], failures


def test_an_npy_truncated_while_read_fails_naming_it_and_is_read_in_regions(tmp_path: Path) -> None:
    """An .npy was memory-mapped: a file cut while the build read it killed the process (SIGBUS),
    and its pages read counted as the process's memory. Regions are read where they lie: a short
    read is an error naming the file; C and Fortran order, big-endian and text read as numpy does."""
    from publisher.errors import SourceError
    from publisher.readers.npy import NpyReader

    rng = np.random.default_rng(3)
    arrays = {"c": rng.random((30, 20, 3)), "f": np.asfortranarray(rng.random((30, 20))),
              "be": np.arange(600, dtype=">i4").reshape(30, 20), "text": np.array([["ab", "c"], ["déf", ""]])}
    for name, array in arrays.items():
        np.save(tmp_path / f"{name}.npy", array)
        with NpyReader().open(tmp_path / f"{name}.npy", name, None) as node:
            whole = tuple(slice(0, n) for n in array.shape)
            assert np.array_equal(node.read(whole), array), name
            part = (slice(1, 2), slice(1, 2)) + whole[2:]
            assert np.array_equal(node.read(part), array[part]), name
    with NpyReader().open(tmp_path / "c.npy", "c", None) as node:
        os.truncate(tmp_path / "c.npy", 4096)
        assert node.read((slice(0, 1), slice(0, 20), slice(0, 3))).shape == (1, 20, 3)  # (still in the file)
        with pytest.raises(SourceError, match=r"c\.npy: the file ends before its data does"):
            node.read((slice(20, 30), slice(0, 20), slice(0, 3)))


def test_csv_comment_characters_inside_values_and_row_names(tmp_path: Path) -> None:
    """``comment: '#'`` skips lines that start with it (anywhere in the file); pandas' own option
    also cut every line at a ``#`` inside it (``1,#ff0000,red`` was 1, null, null). A header a
    field short (R's write.csv: row names) kept its row names as pandas' index, and dropped them."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "colors.csv").write_text("# exported 2026\nx,color,name\n1,#ff0000,red\n  # a note\n2,x#y,blue # not a comment\n")
    (tmp_path / "in" / "rnames.csv").write_text('"a","b"\n"r1",1,2\n"r2",3,4\n')
    (tmp_path / "in" / "rwrite.csv").write_text('"x","y"\n"1",0.5,"a"\n"2",0.7,"b"\n')  # R's own: row names 1..n
    # pandas counts records (a quoted field's line break is inside one), any of \n, \r\n, \r ends a line,
    # a BOM comes before the first comment, and in a TSV an empty first cell is no blank before a comment
    (tmp_path / "in" / "quoted.csv").write_text('id,note,v\n1,"line one\n# not a comment",10\n2,b,20\n# real\n3,c,30\n')
    (tmp_path / "in" / "mixed.csv").write_bytes(b"id,v\n1,10\r2,20\r# c\r\n3,30\n")
    (tmp_path / "in" / "bom.csv").write_bytes("\ufeff# from the instrument, run 7\nid,name\n1,a\n".encode())
    (tmp_path / "in" / "cells.tsv").write_text("a\tb\n1\t#ff0000\n\t#00ff00\n# note\n3\t#0000ff\n")
    (tmp_path / "in" / "wide.csv").write_bytes("# a\nid,name\n1,a\n# mid\n2,b\n".encode("utf-16"))
    published = run_build(tmp_path, {"sources": [{"path": "in", "into": "d", "exclude": ["wide.csv"]},
                                                 {"path": "in/wide.csv", "into": "e", "options": {"encoding": "utf-16"}}]})
    table = lambda name: pd.read_parquet(published.url(name)).to_dict("list")
    assert table("d/colors") == {"x": [1, 2], "color": ["#ff0000", "x#y"], "name": ["red", "blue # not a comment"]}
    assert table("d/rnames") == {"index": ["r1", "r2"], "a": [1, 3], "b": [2, 4]}
    assert table("d/rwrite") == {"index": [1, 2], "x": [0.5, 0.7], "y": ["a", "b"]}
    assert table("d/quoted") == {"id": [1, 2, 3], "note": ["line one\n# not a comment", "b", "c"], "v": [10, 20, 30]}
    assert table("d/mixed") == {"id": [1, 2, 3], "v": [10, 20, 30]} and table("d/bom") == {"id": [1], "name": ["a"]}
    cells = table("d/cells")
    assert cells["b"] == ["#ff0000", "#00ff00", "#0000ff"] and cells["a"][::2] == [1.0, 3.0] and np.isnan(cells["a"][1])
    assert table("e/wide") == {"id": [1, 2], "name": ["a", "b"]}


def test_csv_integers_past_64_bits_are_published_as_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """20-digit ids failed the file with a bare "OverflowError: Python int too large to convert to
    C long"; as text they keep every digit (a later chunk's such value still names its column)."""
    from publisher.readers import csv

    (tmp_path / "in").mkdir()
    ids = [str(2**64 + i) for i in range(3)]
    (tmp_path / "in" / "ids.csv").write_text("id,v\n" + "".join(f"{n},{i}\n" for i, n in enumerate(ids)))
    published = run_build(tmp_path, {"sources": [{"path": "in", "into": "d"}]})
    assert pd.read_parquet(published.url("d/ids"))["id"].tolist() == ids
    assert "'id' hold integers past 64 bits: published as text" in published.problems("warnings")["d/ids"]
    monkeypatch.setattr(csv, "CHUNK_TEXT_BYTES", 64)
    (tmp_path / "in" / "ids.csv").write_text("id,v\n" + "".join(f"{i},{i}\n" for i in range(40)) + f"{2**70},1\n")
    failures, _ = _failures(tmp_path, {"sources": [{"path": "in", "into": "d"}], "output": {"store": str(tmp_path / "s2")}})
    assert "column 'id' (int64 -> " in failures["d/ids"] and "chunk_rows" in failures["d/ids"], failures


def test_csv_free_text_above_the_header_with_commas(tmp_path: Path) -> None:
    """A preamble line with more fields than the rows ("Title: run, with commas, here") was taken
    for the header: the real header became a row, and a column of nulls was added."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "pre.csv").write_text("Title: run, with commas, here\na,b\n1,x\n2,y\n3,z\n4,w\n")
    published = run_build(tmp_path, {"sources": [{"path": "in", "into": "d"}]})
    assert pd.read_parquet(published.url("d/pre")).to_dict("list") == {"a": [1, 2, 3, 4], "b": ["x", "y", "z", "w"]}
    assert published.node("d/pre")["metadata"]["preamble"].startswith("Title: run")


def test_comment_lines_are_counted_across_blocks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The scan reads the file in blocks: a line break split by a block's end (``\\r`` | ``\\n``)
    is one, and the lines are numbered as pandas numbers them, whatever the block size."""
    import random

    from publisher.readers import csv_lines
    from publisher.readers.csv import CSVOptions

    rng = random.Random(1)
    for size in (7, 64, 1000):
        monkeypatch.setattr(csv_lines, "SCAN_BYTES", size)
        lines = ["#c" if rng.random() < 0.1 else "  #d" if rng.random() < 0.05 else f"{i},#x" for i in range(3000)]
        ends = [rng.choice(["\n", "\r", "\r\n"]) for _ in lines]
        (tmp_path / "c.csv").write_text("".join(line + end for line, end in zip(lines, ends, strict=True)), newline="")
        found = csv_lines.comment_lines(tmp_path / "c.csv", CSVOptions(), ",", 0)
        assert set(found.numbers()) == {i for i, line in enumerate(lines) if line.lstrip().startswith("#")}, size
        # notes only at the top (read from the bytes) and '#' inside values below, across block ends
        top = ["# a", "", "  # b", "x,y"] + [f"{i},#{i}" for i in range(500)]
        (tmp_path / "c.csv").write_text("\r\n".join(top) + "\r\n", newline="")
        assert set(csv_lines.comment_lines(tmp_path / "c.csv", CSVOptions(), ",", 0).numbers()) == {0, 2}, size


def test_ordinary_csvs_read_as_before(tmp_path: Path) -> None:
    """What a review of the fixes above found they broke (each published by the reader before):
    booleans with blanks past the first chunk (pinned as text), a later chunk of blank dates
    (seconds, not microseconds), ``header: 1`` below a title, a title above a header a field short."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "flags.csv").write_text("id,passed\n" + "".join(f"{i},{['True', 'False', ''][i % 3]}\n" for i in range(3000)))
    (tmp_path / "in" / "ended.csv").write_text("id,ended\n" + "".join(f"{i},{'2024-01-02 03:04:05' if i < 1500 else ''}\n" for i in range(3000)))
    (tmp_path / "in" / "titled.csv").write_text("Run 42 counts\nchannel,counts\n1,10\n2,20\n")
    (tmp_path / "in" / "named.csv").write_text("Exported by lab script\na,b\n" + "".join(f"r{i},{i},x{i}\n" for i in range(5)))
    sources = [{"path": f"in/{name}.csv", "into": "d", "options": options} for name, options in
               (("flags", {"chunk_rows": 1000}), ("ended", {"chunk_rows": 1000}), ("titled", {"header": 1}), ("named", {}))]
    published = run_build(tmp_path, {"sources": sources})
    flags = pd.read_parquet(published.url("d/flags"))["passed"]
    assert flags.tolist()[:3] == [True, False, None] and len(flags) == 3000
    ended = pd.read_parquet(published.url("d/ended"))["ended"]
    assert ended.notna().sum() == 1500 and str(ended[0]) == "2024-01-02 03:04:05"
    assert pd.read_parquet(published.url("d/titled")).to_dict("list") == {"channel": [1, 2], "counts": [10, 20]}
    named = pd.read_parquet(published.url("d/named"))
    assert list(named.columns) == ["index", "a", "b"] and named["index"].tolist() == [f"r{i}" for i in range(5)]


def test_a_parquet_page_failing_its_crc_fails_and_repeated_columns_are_renamed(tmp_path: Path) -> None:
    """A page whose CRC fails was published with its flipped bit (pyarrow checks CRCs only when
    asked); a file with two columns ``a`` published and then failed every table route (500)."""
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"v": np.arange(300)}), tmp_path / "in" / "crc.parquet", write_page_checksum=True, compression="none")
    data = bytearray((tmp_path / "in" / "crc.parquet").read_bytes())
    data[data.find((239).to_bytes(8, "little")) + 5] ^= 1
    (tmp_path / "in" / "crc.parquet").write_bytes(bytes(data))
    pq.write_table(pa.Table.from_arrays([pa.array([1, 2]), pa.array([3, 4]), pa.array(["x", "y"])], names=["a", "a", "b"]),
                   tmp_path / "in" / "dup.parquet")
    failures, _ = _failures(tmp_path, {"sources": [{"path": "in", "into": "d"}]})
    assert "CRC checksum verification failed" in failures["d/crc"], failures
    assert list(failures) == ["d/crc"]
    with served(str(tmp_path / "site")) as url:
        answer = httpx.get(f"{url}/api/v1/table/full/d/dup", params={"format": "csv"})
        assert answer.status_code == 200 and answer.text.splitlines() == ['"a","a.1","b"', '1,3,"x"', '2,4,"y"']


def test_hdf5_chunks_that_decode_short_fail(tmp_path: Path) -> None:
    """A gzip chunk that inflates to fewer bytes than a chunk (or one stored raw and short, its
    filter marked skipped): HDF5 reads the rest from uninitialised memory, other values each time,
    and those were published. One that inflates long is read as HDF5 reads it (its first bytes)."""
    import zlib

    (tmp_path / "in").mkdir()
    for name, body, mask in (("short", zlib.compress(np.arange(8, dtype="<i4").tobytes()), 0),
                             ("skipped", zlib.compress(np.full(16, 7, "<i4").tobytes()), 1),
                             ("long", zlib.compress(np.arange(32, dtype="<i4").tobytes()), 0)):
        with h5py.File(tmp_path / "in" / f"{name}.h5", "w") as f:
            f.create_dataset("x", shape=(16,), dtype="<i4", chunks=(16,), compression="gzip").id.write_direct_chunk((0,), body, mask)
    failures, _ = _failures(tmp_path, {"sources": [{"path": "in", "into": "d"}]})
    assert "chunk at [0] is corrupt: its filters give 32 bytes, not a chunk's 64" in failures["d/short/x"], failures
    assert "its filters give" in failures["d/skipped/x"] and "d/long/x" not in failures, failures
    import zarr

    (long,) = (tmp_path / "site" / "releases").glob("*/data/d/long.zarr/x")
    np.testing.assert_array_equal(zarr.open_array(str(long), mode="r")[...], np.arange(16))


def test_a_netcdf3_header_stating_more_than_the_file_holds_fails(tmp_path: Path) -> None:
    """netCDF-C reads past a classic file's end as fill values: a dimension patched from 10 to
    1,000 published 10 values and 990 zeros."""
    netCDF4 = pytest.importorskip("netCDF4")
    (tmp_path / "in").mkdir()
    with netCDF4.Dataset(tmp_path / "in" / "big.nc", "w", format="NETCDF3_CLASSIC") as ds:
        ds.createDimension("x", 10)
        ds.createVariable("v", "f4", ("x",))[:] = np.arange(10)
    data = bytearray((tmp_path / "in" / "big.nc").read_bytes())
    at = data.find(b"x\x00\x00\x00") + 4  # the dimension's length follows its name (padded to 4 bytes)
    assert int.from_bytes(data[at:at + 4], "big") == 10
    data[at:at + 4] = (1000).to_bytes(4, "big")
    (tmp_path / "in" / "big.nc").write_bytes(bytes(data))
    failures, _ = _failures(tmp_path, {"sources": [{"path": "in", "into": "d"}]})
    assert "bytes but the file holds" in failures["d/big"] and "big.nc" in failures["d/big"], failures


@pytest.mark.parametrize("form", ["NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET", "NETCDF3_64BIT_DATA"])
def test_a_netcdf3_file_missing_its_last_bytes_fails(tmp_path: Path, form: str) -> None:
    """A classic file cut short by less than its header's length (an interrupted copy) passed the
    variables' sizes summed and published zeros for its last values. The header's offsets say
    where each variable ends: fixed ones, several record variables (padded), one (not padded)."""
    netCDF4 = pytest.importorskip("netCDF4")
    (tmp_path / "in").mkdir()
    for name, records in (("fixed", ()), ("several", ("r", "s")), ("one", ("r",))):
        with netCDF4.Dataset(tmp_path / "in" / f"{name}.nc", "w", format=form) as ds:
            ds.history = "a header longer than the bytes cut " * 4
            ds.createDimension("x", 7)
            ds.createDimension("t", None)
            ds.createVariable("a", "i2", ("x",))[:] = np.arange(7)
            if "r" in records:
                ds.createVariable("r", "i1", ("t", "x"))[:] = np.ones((5, 7))
            if "s" in records:
                ds.createVariable("s", "f8", ("t",))[:] = np.arange(5.0)
        whole = (tmp_path / "in" / f"{name}.nc").read_bytes()
        (tmp_path / "in" / f"{name}_whole.nc").write_bytes(whole)
        cut = 5 if name == "fixed" else 1  # (a fixed variable's last 4-byte padding may be absent)
        (tmp_path / "in" / f"{name}.nc").write_bytes(whole[:-cut])
    failures, _ = _failures(tmp_path, {"sources": [{"path": "in", "into": "d"}]})
    assert set(failures) == {"d/fixed", "d/several", "d/one"}, failures
    for name, reason in failures.items():
        assert f"{name[2:]}.nc: its variables need" in reason and "bytes but the file holds" in reason, reason


@pytest.mark.parametrize("form", ["NETCDF3_CLASSIC", "NETCDF3_64BIT_DATA"])
def test_a_netcdf3_file_cut_inside_its_header_fails(tmp_path: Path, form: str) -> None:
    """netCDF-C opens a classic file cut inside its header as one of no variables: it was
    published as an empty dataset, no failure (a review helper cut files at every byte)."""
    netCDF4 = pytest.importorskip("netCDF4")
    (tmp_path / "in").mkdir()
    with netCDF4.Dataset(tmp_path / "whole.nc", "w", format=form) as ds:
        ds.createDimension("x", 10_000)
        ds.createVariable("v", "f8", ("x",))[:] = np.arange(10_000)
    whole = (tmp_path / "whole.nc").read_bytes()
    for cut in (12, 40):
        (tmp_path / "in" / f"cut{cut}.nc").write_bytes(whole[:cut])
    failures, _ = _failures(tmp_path, {"sources": [{"path": "in", "into": "d"}]})
    assert set(failures) == {"d/cut12", "d/cut40"}, failures
    assert all("truncated: the file ends inside its header" in reason for reason in failures.values()), failures


def test_integers_written_with_leading_zeros_are_named_and_can_stay_text(tmp_path: Path) -> None:
    """Sample IDs '007' and '07' both published as 7, silently. As pandas, pyarrow, polars and
    DuckDB read them they stay numbers, with a warning naming the column and the option that
    keeps them as written (``text_columns``, which later chunks keep too); naming a column the
    file lacks fails naming it. Times ('09:30') and decimals ('0.5') are not such codes."""
    (tmp_path / "in").mkdir()
    rows = "".join(f"{code},{i},09:3{i % 10},0.{i}\n" for i, code in enumerate(["007", "07", "123", "0042", "5"] * 3))
    for name in ("plain", "kept", "wrong"):
        (tmp_path / "in" / f"{name}.csv").write_text("sample,count,time,ratio\n" + rows)
    (tmp_path / "in" / "clean.csv").write_text("run,time\n1,09:30\n20,10:00\n")
    sources = [{"path": f"in/{name}.csv", "into": "d", "options": options} for name, options in
               (("plain", {}), ("kept", {"text_columns": ["sample"], "chunk_rows": 4}), ("wrong", {"text_columns": ["sampel"]}),
                ("clean", {}))]
    pipeline = load_pipeline(write_pipeline(tmp_path, {"output": {"store": str(tmp_path / "site")}, "on_error": "skip", "sources": sources}))
    report = build(pipeline, workers=2)
    failures = {p.path: p.reason for p in report.failures}
    assert set(failures) == {"d/wrong"} and "text_columns names 'sampel', not among its columns ('sample', 'count'" in failures["d/wrong"]
    warnings = {p.path: p.reason for p in report.warnings}
    assert set(warnings) == {"d/plain"}, warnings
    assert "'sample' ('007') holds integers written with leading zeros" in warnings["d/plain"]
    assert "{text_columns: [sample]}" in warnings["d/plain"]
    release = next((tmp_path / "site" / "releases").glob("*/data/d"))
    assert pd.read_parquet(release / "plain.parquet")["sample"].tolist()[:5] == [7, 7, 123, 42, 5]
    kept = pd.read_parquet(release / "kept.parquet")
    assert kept["sample"].tolist() == ["007", "07", "123", "0042", "5"] * 3 and kept["count"].tolist() == list(range(15))


def test_text_columns_by_number_over_dates_and_padded_codes_among_blanks(tmp_path: Path) -> None:
    """Review cases: without a header the warning's own advice (``text_columns: [0]``) was refused
    by the config; a named date column was still read as dates; a padded column with a blank (read
    as floats) published '007' as 7.0 with no warning; a separator of two characters failed with a
    TypeError. And times ('09:30') are not taken for padded codes."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bare.csv").write_text("007,2024-01-05\n010,2024-01-06\n")
    (tmp_path / "in" / "blank.csv").write_text("id,x,at\n007,1,09:30\n,2,10:00\n12,3,11:00\n")
    (tmp_path / "in" / "colons.csv").write_text("a::b\n1::2\n3::4\n")
    sources = [{"path": "in/bare.csv", "into": "d", "options": {"header": None, "text_columns": [0, "1"]}},
               {"path": "in/blank.csv", "into": "d"}, {"path": "in/colons.csv", "into": "d", "options": {"delimiter": "::"}}]
    pipeline = load_pipeline(write_pipeline(tmp_path, {"output": {"store": str(tmp_path / "site")}, "on_error": "skip", "sources": sources}))
    report = build(pipeline, workers=2)
    assert report.failures == [], report.failures
    warnings = {p.path: p.reason for p in report.warnings}
    assert set(warnings) == {"d/blank"} and "'id' ('007') holds integers written with leading zeros" in warnings["d/blank"], warnings
    release = next((tmp_path / "site" / "releases").glob("*/data/d"))
    bare = pd.read_parquet(release / "bare.parquet")
    assert bare.to_dict("list") == {"0": ["007", "010"], "1": ["2024-01-05", "2024-01-06"]}
    assert pd.read_parquet(release / "colons.parquet").to_dict("list") == {"a": [1, 3], "b": [2, 4]}


def test_nodes_named_dot_or_dot_dot_are_skipped(tmp_path: Path) -> None:
    """Excel sheets named ``.`` and ``..`` were published as nodes search listed and no route reached."""
    (tmp_path / "in").mkdir()
    with pd.ExcelWriter(tmp_path / "in" / "n.xlsx") as writer:
        for sheet in (".", "..", "ok"):
            pd.DataFrame({"a": [1]}).to_excel(writer, sheet_name=sheet, index=False)
    failures, skipped = _failures(tmp_path, {"sources": [{"path": "in", "into": "d"}]})
    assert not failures and "cannot name a node" in skipped["d/n/.."] and "cannot name a node" in skipped["d/n/."], skipped
    with served(str(tmp_path / "site")) as url:
        listed = httpx.get(f"{url}/api/v1/search/d/n").json()["data"]
        assert [e["id"] for e in listed] == ["ok"]


def test_flat_exports_of_nested_binary_and_1d_data(tmp_path: Path) -> None:
    """CSV and Excel of a table with a nested, binary or control-character column, and TIFF of a
    1-D array, were 500s: nested values go out as JSON text, binary as UTF-8, control characters
    Excel cannot hold as U+FFFD, a 1-D array as one row (as the PNG)."""
    import io

    import openpyxl
    import tifffile

    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"l": pa.array([[1, 2], None]), "s": pa.array([{"a": 1}, {"a": 2}]), "b": pa.array([b"\xff", b"ab"]),
                             "c": pa.array(["a\x01b", "ok"])}), tmp_path / "in" / "t.parquet")
    np.save(tmp_path / "in" / "line.npy", np.arange(5, dtype="<u2"))
    run_build(tmp_path, {"sources": [{"path": "in", "into": "d"}]})
    with served(str(tmp_path / "site")) as url:
        csv = httpx.get(f"{url}/api/v1/table/full/d/t", params={"format": "csv"})
        assert csv.status_code == 200 and csv.text.splitlines()[1:] == ['"[1,2]","{""a"":1}","\ufffd","a\x01b"', ',"{""a"":2}","ab","ok"']
        xlsx = httpx.get(f"{url}/api/v1/table/full/d/t", params={"format": "xlsx"})
        assert xlsx.status_code == 200
        rows = list(openpyxl.load_workbook(io.BytesIO(xlsx.content)).active.values)
        assert rows[1] == ("[1,2]", '{"a":1}', "\ufffd", "a\ufffdb")
        tiff = httpx.get(f"{url}/api/v1/array/full/d/line", params={"format": "tiff"})
        assert tiff.status_code == 200
        np.testing.assert_array_equal(tifffile.imread(io.BytesIO(tiff.content)), [np.arange(5)])


def test_names_that_are_not_utf8_are_failures_of_their_own(tmp_path: Path) -> None:
    """A file or folder whose name is not UTF-8 (Latin-1 names from an old instrument PC) cannot be
    published under its name: each is a failure naming it, escaped; the rest builds. It used to end
    the whole build with a traceback (UnicodeEncodeError), on_error: skip or not."""
    folder = os.fsencode(tmp_path / "in")
    os.mkdir(folder)
    for name in (b"ok.csv", b"bad\xff.csv", os.path.join(b"run\xe9", b"a.csv"), os.path.join(b"fine", b"b.csv")):
        os.makedirs(os.path.dirname(os.path.join(folder, name)), exist_ok=True)
        with open(os.path.join(folder, name), "w") as f:
            f.write("x\n1\n")
    failures, skipped = _failures(tmp_path, {"sources": [{"path": "in", "into": "d"}]})
    assert failures == {"d/bad\\xff.csv": "its name is not valid UTF-8 (bad\\xff.csv): a published name must be; rename it (e.g. convmv -f "
                                          "latin1 -t utf8)",
                        "d/run\\xe9": "its name is not valid UTF-8 (run\\xe9): a published name must be; rename it (e.g. convmv -f "
                                      "latin1 -t utf8)"}, failures
    assert not skipped
    nodes = pd.read_parquet(tmp_path / "site" / json.loads((tmp_path / "site" / "catalog.json").read_text())["index"])
    assert {"d/ok", "d/fine/b"} <= set(nodes["path"]) and not any("\\x" in p for p in nodes["path"])


def test_trees_deeper_than_the_recursion_limit_are_walked_and_globbed(tmp_path: Path) -> None:
    """The walk and a ``**`` glob's matching recursed once per level: a folder source ended the
    build with RecursionError at ~1,000 levels, a ``**`` glob at ~330. A glob through 400 levels
    now builds, and the walk goes down 1,100 (a conversion that deep still fails that item alone:
    RecursionError beyond the walk, reported as its failure)."""
    from publisher.source_walk import walk

    try:
        folder = os.fsencode(tmp_path / "in")
        os.mkdir(folder)
        for level in range(1, 1101):  # (os.makedirs recurses once per level too)
            folder += b"/a"
            os.mkdir(folder)
            if level in (400, 1100):
                with open(folder + b"/f.csv", "w") as f:
                    f.write(f"x\n{level}\n")
        files = [e for e in walk(tmp_path / "in") if isinstance(e, str)]
        assert sorted(f.count("/a") for f in files) == [400, 1100]
        failures, _ = _failures(tmp_path, {"sources": [{"path": "in/a/**/f.csv", "into": "d"}]})
        assert failures == {"d" + "/a" * 1099 + "/f": "RecursionError: maximum recursion depth exceeded"} or not failures, failures
        nodes = pd.read_parquet(tmp_path / "site" / json.loads((tmp_path / "site" / "catalog.json").read_text())["index"])
        assert "d" + "/a" * 399 + "/f" in set(nodes["path"])
    finally:  # (pytest's own clean-up, shutil.rmtree, recurses once per level too: it ended the session)
        for child in tmp_path.iterdir():
            remove_deep(os.fsencode(child))
