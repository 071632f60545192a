"""Conversion streams: peak memory stays far below the size of the source."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from .conftest import run_build, write_pipeline
from .memory import GrowthMeter


@pytest.fixture(scope="module")
def growth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrowthMeter]:
    """A build's memory growth, each build in a process of its own forked from one that made a
    build's imports once (tests/memory.py); the tests compare two builds' growth."""
    meter = GrowthMeter(tmp_path_factory.mktemp("growth") / "builds.log")
    try:
        yield meter
    finally:
        meter.close()


def _peak_rss(folder: Path, frames: int, growth: GrowthMeter) -> tuple[int, int]:
    import h5py

    folder.mkdir()
    ny = nx = 1024
    with h5py.File(folder / "big.h5", "w") as f:
        ds = f.create_dataset("stack", shape=(frames, ny, nx), dtype="f4", chunks=(1, ny, nx))
        ramp = np.arange(ny * nx, dtype="f4").reshape(ny, nx)
        for i in range(frames):
            ds[i] = ramp + i
    pipeline = write_pipeline(folder, {"sources": [{"path": "big.h5"}], "output": {"store": str(folder / "site")}})
    peak, report = growth(pipeline)
    bytes_in = report["bytes_in"]
    assert bytes_in == frames * ny * nx * 4
    assert json.loads((folder / "site" / "catalog.json").read_text())["node_count"] == 3  # root, the file, its dataset
    return peak, bytes_in


def test_peak_memory_does_not_grow_with_the_source(tmp_path: Path, growth: GrowthMeter) -> None:
    small_peak, small = _peak_rss(tmp_path / "small", 32, growth)  # 128 MiB: past steady state (slabs in flight, chunk cache)
    large_peak, large = _peak_rss(tmp_path / "large", 128, growth)  # 512 MiB
    grew = large_peak - small_peak
    assert grew < 96 * 2**20, (
        f"peak RSS grew by {grew / 2**20:.0f} MiB ({small_peak / 2**20:.0f} → {large_peak / 2**20:.0f} MiB) "
        f"for {(large - small) / 2**20:.0f} MiB more source"
    )


def _flat(growth: GrowthMeter, tmp_path: Path, write: Callable[[Path, int], None], family: str, small: int, large: int, limit: int) -> None:
    """Sources of ``small`` and ``large`` MiB made by ``write(folder, mib)``, each built in a process
    of its own: the larger grows the build's memory by less than ``limit`` MiB more."""
    grown = {}
    for mib in (small, large):
        folder = tmp_path / f"{mib}"
        (folder / "in").mkdir(parents=True)
        write(folder / "in", mib)
        grown[mib], report = growth(write_pipeline(folder, {"sources": [{"path": "in", "into": "t"}], "output": {"store": str(folder / "site")}}))
        assert report["nodes"][family] == 1
    assert grown[large] - grown[small] < limit * 2**20, (
        f"the build's memory grew {grown[small] / 2**20:.0f} MiB for {small} MiB of source, {grown[large] / 2**20:.0f} MiB for {large} MiB")


def _parquet(folder: Path, mib: int) -> None:
    """Float64 in one row group (as pandas' ``to_parquet`` writes up to a million rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = mib * 2**20 // 80
    values = np.random.default_rng(mib).random((rows, 10))
    pq.write_table(pa.table({f"c{i}": values[:, i] for i in range(10)}), folder / "scan.parquet", row_group_size=rows)


def test_parquet_streams_whatever_its_size(tmp_path: Path, growth: GrowthMeter) -> None:
    """pyarrow's defaults read a whole Parquet file ahead (pre_buffer): 300 MB took ~470 MB of memory,
    800 MB ~1 GB. Read a column chunk's pages at a time, in batches sized by bytes, the growth stays."""
    # read ahead whole (pre_buffer) or in one batch, 128 MiB more of it grew a build by 110-180 MiB more;
    # streamed, by -30 to +15 MiB
    _flat(growth, tmp_path, _parquet, "table", 128, 256, 64)


def _wide_csv(folder: Path, mib: int) -> None:
    """500 numeric columns."""
    line = ",".join(f"{(i * 7919) % 100000 / 7:.6f}" for i in range(500)) + "\n"
    with open(folder / "wide.csv", "w") as f:
        f.write(",".join(f"c{i}" for i in range(500)) + "\n")
        f.write(line * (mib * 2**20 // len(line)))


def test_wide_csv_streams_whatever_its_size(tmp_path: Path, growth: GrowthMeter) -> None:
    """Chunks of ``chunk_rows`` (500,000) rows hold a 500-column file whole: 160 MiB of it grew a
    build by ~340 MiB. Chunks of ~64 MiB of text keep the growth flat: both sizes past one chunk
    (a file in one chunk, 40 MiB, is made into Arrow once and grows it less: 91 MiB, 173 for both)."""
    _flat(growth, tmp_path, _wide_csv, "table", 80, 160, 64)


def test_csv_chunks_by_bytes_publish_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of a few rows (their text's size, lowered here) give the table pandas reads at once;
    a column that changes type after the first chunk is an error naming the rows the types came from."""
    import pandas as pd
    import pyarrow.parquet as pq

    from publisher.readers import csv

    monkeypatch.setattr(csv, "CHUNK_TEXT_BYTES", 4096)
    (tmp_path / "in").mkdir()
    frame = pd.DataFrame({f"c{i}": np.arange(1000) * (i + 1) / 3 for i in range(40)})  # ~5 rows a chunk: ~200 chunks
    frame["label"] = [f"row {i}" for i in range(1000)]
    frame.to_csv(tmp_path / "in" / "wide.csv", index=False)
    site = run_build(tmp_path, {"sources": [{"path": "in", "into": "t"}]})
    published = pq.read_table(site.url("t/wide")).to_pandas()  # (a folder of partitions reads as one table)
    pd.testing.assert_frame_equal(published, pd.read_csv(tmp_path / "in" / "wide.csv"), check_dtype=False)

    lines = (tmp_path / "in" / "wide.csv").read_text().splitlines()
    lines[800] = "oops" + lines[800][lines[800].index(","):]  # text in a numeric column, far below the first chunk
    (tmp_path / "in" / "wide.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(AssertionError, match=r"a later chunk does not fit the types of the first \d+ rows .*column 'c0' \(double -> (large_)?string\).*chunk_rows"):
        run_build(tmp_path, {"sources": [{"path": "in", "into": "t"}], "output": {"store": str(tmp_path / "site2")}})
    # the pipeline's own chunk_rows is kept exactly, whatever the rows' bytes: types from every row here
    site = run_build(tmp_path, {"sources": [{"path": "in", "into": "t", "options": {"chunk_rows": 5000}}], "output": {"store": str(tmp_path / "site3")}})
    assert pq.read_table(site.url("t/wide")).column("c0")[799].as_py() == "oops"


def test_csv_later_chunks_keep_the_first_chunks_kinds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pandas guesses each chunk's types afresh: zero-padded codes below a first chunk of letters
    came back as integers and Arrow's cast to text published ``00042`` as ``42``, a later ``2`` in
    a column of booleans as ``True``. Text columns are read as text; a change of kind is an error
    naming the column, as is a later non-date in a column of dates."""
    import pandas as pd
    import pyarrow.parquet as pq

    from publisher.readers import csv

    monkeypatch.setattr(csv, "CHUNK_TEXT_BYTES", 4096)
    (tmp_path / "in").mkdir()
    n = 3000
    codes = [f"A{i:05d}" if i < 100 else f"{i:05d}" for i in range(n)]  # letters in the first chunk only
    frame = pd.DataFrame({"i": np.arange(n), "code": codes, "when": [f"2024-01-{1 + i % 28:02d}" for i in range(n)]})
    frame.to_csv(tmp_path / "in" / "codes.csv", index=False)
    site = run_build(tmp_path, {"sources": [{"path": "in", "into": "t"}]})
    published = pq.read_table(site.url("t/codes")).to_pandas()
    assert list(published["code"].astype(str)) == codes
    assert str(published["when"].dtype).startswith("datetime64")

    def fails(lines: list[str], match: str, store: str) -> None:
        (tmp_path / "in" / "codes.csv").write_text("\n".join(lines) + "\n")
        with pytest.raises(AssertionError, match=match):
            run_build(tmp_path, {"sources": [{"path": "in", "into": "t"}], "output": {"store": str(tmp_path / store)}})

    flags = ["i,flag"] + [f"{i},{'True' if i % 2 else 'False'}" for i in range(n)]
    flags[2001:] = [f"{i},{2 + i % 2}" for i in range(2000, n)]  # numbers far below the first chunk's booleans
    fails(flags, r"first \d+ rows .*column 'flag' \(bool -> (int64|(large_)?string)\): its values would change kind.*chunk_rows", "s2")
    numbers = ["i,x"] + [f"{i},{i}" for i in range(n)]
    numbers[2001:] = [f"{i},{i % 2 == 0}" for i in range(2000, n)]
    fails(numbers, r"column 'x' \(int64 -> \w+\): ", "s3")
    dates = ["i,when"] + [f"{i},2024-01-02" for i in range(n)]
    dates[2500] = "2499,soon"
    fails(dates, r"column 'when' \(dates in the first rows\).*soon", "s4")


def _strings(folder: Path, mib: int) -> None:
    """An HDF5 dataset of fixed-width 1,000-byte strings."""
    import h5py

    count, block = mib * 2**20 // 1000, 20_000
    values = np.array([(b"%08d" % i) * 125 for i in range(block)], dtype="S1000")
    with h5py.File(folder / "log.h5", "w") as f:
        ds = f.create_dataset("messages", (count,), "S1000", chunks=(block,))
        for start in range(0, count, block):
            ds[start:start + block] = values[: count - start]


def test_string_arrays_stream_whatever_their_size(tmp_path: Path, growth: GrowthMeter) -> None:
    """Slabs of strings were sized by the 8-byte pointer of each: 2 million 1,000-byte strings a
    slab, the whole dataset here (300 MB grew a build by ~970 MB). Sized by the source's width."""
    _flat(growth, tmp_path, _strings, "array", 64, 192, 64)


def _ragged(folder: Path, mib: int) -> None:
    """An HDF5 variable-length dataset, rows of ~1,000 float64."""
    import h5py

    count, block = mib * 2**20 // 8000, 2000
    rows = np.empty(block, dtype=object)
    for i in range(block):
        rows[i] = np.arange(997 + i % 7, dtype="f8") + i  # (unequal lengths: h5py would read equal ones as 2-D)
    with h5py.File(folder / "spectra.h5", "w") as f:
        ds = f.create_dataset("spectra", (count,), h5py.vlen_dtype("f8"), chunks=(block,))
        for start in range(0, count, block):
            ds[start:start + block] = rows[: count - start]


def test_ragged_rows_stream_whatever_their_length(tmp_path: Path, growth: GrowthMeter) -> None:
    """Pieces of 65,536 variable-length rows held a file of long rows whole (192 MiB grew a build by
    789 MiB); pieces sized by the bytes of the rows read so far keep the growth flat."""
    _flat(growth, tmp_path, _ragged, "awkward", 96, 192, 48)


def test_csv_with_old_mac_line_ends_keeps_whole_chunks(tmp_path: Path) -> None:
    """Rows ended by ``\\r`` alone are measured by those ends: 100,000 short rows are one chunk, one
    row group (taken for one 64 KiB line each, they were 196)."""
    import pyarrow.parquet as pq

    from publisher.readers.csv import CSVOptions, _rows_per_chunk

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "old.csv").write_bytes(b"a,b\r" + b"".join(b"%d,%d\r" % (i, 2 * i) for i in range(100_000)))
    site = run_build(tmp_path, {"sources": [{"path": "in", "into": "t"}]})
    table = pq.ParquetFile(site.url("t/old"))
    assert table.metadata.num_rows == 100_000 and table.num_row_groups == 1
    # a header longer than the 64 KiB first looked at: still measured by its \r ends (it was read a row a chunk)
    names = [f"column_{i:05d}" for i in range(8000)]
    (tmp_path / "in" / "old.csv").write_bytes(",".join(names).encode() + b"\r" + b"".join(b",".join([b"%d" % i] * 8000) + b"\r" for i in range(40)))
    assert _rows_per_chunk(tmp_path / "in" / "old.csv", CSVOptions()) > 1000


def test_compound_rows_of_long_strings_are_batched_by_their_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A compound table's batches were sized by each row's stored part (16 bytes for a string):
    65,536 rows of 64 KiB strings a batch, so a 1 GB file was read whole (it grew a build by
    3.7 GB). Sized by the longest rows of a sample, a batch is about the bytes it should be."""
    import h5py

    from publisher import nodes
    from publisher.readers.hdf5 import HDF5Reader

    monkeypatch.setattr(nodes, "BATCH_BYTES", 2**20)
    dtype = np.dtype([("id", "i8"), ("text", h5py.string_dtype())])
    with h5py.File(tmp_path / "log.h5", "w") as f:
        f.create_dataset("log", data=np.array([(i, f"{i:05d}" * 13_000) for i in range(200)], dtype=dtype))
    reader = HDF5Reader()
    with reader.open(tmp_path / "log.h5", "log", reader.Options()) as root:
        (table,) = [node for node in root.children if node.key == "log"]
        batches = list(table.batches())
    assert sum(b.num_rows for b in batches) == 200 and batches[-1].column("text")[-1].as_py() == "00199" * 13_000
    assert max(b.nbytes for b in batches) <= 2**20 + 65_000 * 2, [b.nbytes for b in batches]


def test_a_large_hdf5_attribute_is_named_not_copied(tmp_path: Path) -> None:
    """A 256 MiB attribute grew a build by 5.9 GB (its values as JSON lists) and put 1.4 GB of
    metadata in the store; one over 1 MiB is now described in the metadata, others kept."""
    import h5py

    with h5py.File(tmp_path / "scan.h5", "w", libver="latest") as f:  # (dense attribute storage: past 64 KiB)
        f.attrs["calibration"] = np.zeros(300_000)
        f.attrs["energy"] = 12.5
        f.create_dataset("frames", data=np.arange(6).reshape(2, 3))
    published = run_build(tmp_path, {"sources": [{"path": "scan.h5"}]})
    metadata = published.node("scan")["metadata"]
    assert metadata["energy"] == 12.5
    assert metadata["calibration"] == "<attribute of shape (300000,) float64 (2.3 MiB): too large for metadata>"
    assert sum(p.stat().st_size for p in (tmp_path / "site").rglob("*") if p.is_file()) < 2**20


def test_csv_comment_lines_among_rows_are_skipped_in_every_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Comment lines under the rows are skipped by a bitmap pandas asks row by row (a set of their
    numbers took ~70 bytes a line, and pandas copied it: a note under every row of 256 MB grew a
    build by 1.5 GB); numbered as pandas numbers rows, in every chunk."""
    import pandas as pd

    from publisher.readers import csv, csv_lines

    monkeypatch.setattr(csv, "CHUNK_TEXT_BYTES", 4096)
    lines = ["# exported by the beamline", "a,b,c"]
    for i in range(3000):
        lines.append(f"{i},{i / 2},y{i}")
        if i % 3 == 0:
            lines.append(f"  # note {i}, with a comma")
    (tmp_path / "notes.csv").write_text("\n".join(lines) + "\n")
    found = csv_lines.comment_lines(tmp_path / "notes.csv", csv.CSVOptions(), ",", 0)
    assert isinstance(found, csv_lines.Lines) and len(found) == 1001 and len(found.bits) < 1000
    published = run_build(tmp_path, {"sources": [{"path": "notes.csv"}]})
    table = pd.read_parquet(published.url("notes"))
    assert table["a"].tolist() == list(range(3000)) and table["c"].iloc[2999] == "y2999"
