"""A table's record batches hold about ``nodes.BATCH_BYTES`` whatever its rows' width or encoding
(found by an audit: 65,536 rows of 8 KB compound rows were one 512 MiB batch, ~3x that at the
peak; a dictionary-encoded Parquet column of 4 KB strings stated 1.5 bytes a row, so batches
were 262,144 rows, ~1 GB)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from publisher import nodes
from publisher.nodes import TableNode

from .conftest import run_build

ROW = np.dtype([("id", "i8"), ("spectrum", "f8", (1023,))])  # 8 KB a row
LIMIT = 2**20


@pytest.fixture(autouse=True)
def _small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nodes, "BATCH_BYTES", LIMIT)


def _batches_fit(node: TableNode, rows: int) -> None:
    assert node.batches is not None
    seen = 0
    for batch in node.batches():
        assert batch.nbytes <= 1.1 * LIMIT, f"a batch of {batch.num_rows} rows, {batch.nbytes} bytes"
        seen += batch.num_rows
    assert seen == rows


def _rows(n: int) -> np.ndarray:
    values = np.zeros(n, ROW)
    values["id"] = np.arange(n)
    values["spectrum"] = np.arange(1023)
    return values


def test_hdf5_compound_rows_batched_by_bytes(tmp_path: Path) -> None:
    import h5py

    from publisher.readers.hdf5 import HDF5Options, HDF5Reader

    with h5py.File(tmp_path / "t.h5", "w") as f:
        f.create_dataset("events", data=_rows(600), chunks=(64,))
    with HDF5Reader().open(tmp_path / "t.h5", "t", HDF5Options()) as root:
        table = next(c for c in root.children if c.key == "events")
        assert isinstance(table, TableNode)
        _batches_fit(table, 600)


def test_netcdf_compound_rows_batched_by_bytes(tmp_path: Path) -> None:
    from publisher.readers.netcdf import NetCDFReader, import_netcdf4

    netCDF4 = import_netcdf4()
    with netCDF4.Dataset(tmp_path / "t.nc", "w") as ds:
        ds.createDimension("n", 600)
        kind = ds.createCompoundType(ROW, "row")
        ds.createVariable("events", kind, ("n",))[:] = _rows(600)
    with NetCDFReader().open(tmp_path / "t.nc", "t", None) as root:
        table = next(c for c in root.children if c.key == "events")
        assert isinstance(table, TableNode)
        _batches_fit(table, 600)


def test_parquet_dictionary_strings_batched_by_decoded_bytes(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from publisher.readers.parquet import ParquetReader

    words = [c * 4096 for c in "abcd"]
    pq.write_table(pa.table({"text": [words[i % 4] for i in range(3000)], "i": np.arange(3000)}), tmp_path / "t.parquet", use_dictionary=True)
    assert pq.ParquetFile(tmp_path / "t.parquet").metadata.row_group(0).total_byte_size < 100_000  # as encoded: far below 12 MB
    with ParquetReader().open(tmp_path / "t.parquet", "t", None) as table:
        assert isinstance(table, TableNode)
        _batches_fit(table, 3000)


def test_table_rule_batches_by_the_columns_bytes() -> None:
    from publisher.config import Rule
    from publisher.nodes import ArrayNode, ContainerNode
    from publisher.rules import apply_rules

    n = 20_000
    columns = [ArrayNode(key=f"c{i}", dtype=np.dtype("f8"), shape=(n,), read=lambda sel, i=i: np.arange(n, dtype="f8")[sel] + i) for i in range(40)]
    group = ContainerNode(key="g", children=list(columns))
    table = apply_rules(group, "g", [Rule(match="g", table=True)])
    assert isinstance(table, TableNode)
    _batches_fit(table, n)  # 320 bytes a row: 262,144 rows a batch would be all 6.4 MB at once


def test_variable_length_strings_sized_by_a_sample(tmp_path: Path) -> None:
    """Slabs of strings whose width the source does not state were sized by a guess of ~70
    characters: 131,072 strings of 1,000 characters a slab, ~400 MB in memory."""
    import h5py

    from publisher.readers.hdf5 import HDF5Options, HDF5Reader
    from publisher.readers.netcdf import NetCDFReader, import_netcdf4
    from publisher.writers.chunking import slabs

    texts = np.array([f"{i:08d}" * 125 for i in range(5000)], dtype=object)
    with h5py.File(tmp_path / "log.h5", "w") as f:
        f.create_dataset("messages", data=texts, dtype=h5py.string_dtype())
        f.create_dataset("short", data=texts[:100], dtype=h5py.string_dtype())
    with import_netcdf4().Dataset(tmp_path / "log.nc", "w") as ds:
        ds.createDimension("n", 5000)
        ds.createVariable("messages", str, ("n",))[:] = texts
    with HDF5Reader().open(tmp_path / "log.h5", "log", HDF5Options()) as h5, NetCDFReader().open(tmp_path / "log.nc", "log", None) as nc:
        for root in (h5, nc):
            node = next(c for c in root.children if c.key == "messages")
            assert root is nc or node.string_width == 1000
            assert node.element_bytes > 1000  # (xarray gives NetCDF's as fixed-width '<U1000')
            assert all((s[0].stop - s[0].start) * node.element_bytes <= 4 * 2**20 for s in slabs(node.shape, (100,), 4 * 2**20, node.element_bytes))
        assert next(c for c in h5.children if c.key == "short").string_width == 1000  # (a short one too: read whole)


def test_csv_chunks_measure_rows_through_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows' width was taken from the file's first 64 KiB: short rows then long ones, or rows
    longer than 64 KiB, made chunks of hundreds of MB or more."""
    from publisher.readers import csv

    monkeypatch.setattr(csv, "CHUNK_TEXT_BYTES", 2**20)
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("a,b\n" + "".join(f"{i},x\n" for i in range(20_000)) + "".join(f"{i},{'y' * 2000}\n" for i in range(1000)))
    assert csv._rows_per_chunk(mixed, csv.CSVOptions()) <= 2**20 // 1900  # rows of ~2,006 bytes
    long = tmp_path / "long.csv"
    long.write_text("a,b\n" + "".join(f"{i},{'z' * 200_000}\n" for i in range(8)))
    assert csv._rows_per_chunk(long, csv.CSVOptions()) <= 2**20 // 190_000
    short = tmp_path / "short.csv"
    short.write_text("a,b\n" + "".join(f"{i},{i}\n" for i in range(100_000)))
    assert csv._rows_per_chunk(short, csv.CSVOptions()) > 50_000  # narrow rows keep big chunks


def test_parquet_categorical_columns_measured_by_their_indices(tmp_path: Path) -> None:
    """A dictionary-typed column (a pandas Categorical) carries its whole dictionary in each batch:
    measured with it, 64 rows of 50,000 categories made batches of ~95 rows (2,000 row groups,
    each with the dictionary again). Its rows are its indices."""
    import pandas as pd

    from publisher.readers.parquet import ParquetReader

    labels = pd.Categorical([f"label {i % 50_000:06d}" for i in range(200_000)])
    pd.DataFrame({"label": labels, "x": np.arange(200_000, dtype="f4")}).to_parquet(tmp_path / "c.parquet")
    with ParquetReader().open(tmp_path / "c.parquet", "c", None) as table:
        assert isinstance(table, TableNode) and table.batches is not None
        sizes = [batch.num_rows for batch in table.batches()]
    assert sum(sizes) == 200_000 and len(sizes) <= 4  # ~12 bytes a row as the row group states it: ~87,000 rows a batch of 1 MiB


def test_wide_tables_start_a_partition_before_their_footer_grows_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pyarrow's Parquet writer keeps every row group's metadata (~800 bytes a column) until the
    file closes: a table of 116,000 columns held ~95 MB a row group, its memory growing with its
    rows. A partition now ends before that metadata passes ``FOOTER_BYTES``; the table reads back whole."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from publisher.writers import parquet_table

    monkeypatch.setattr(parquet_table, "FOOTER_BYTES", 50 * 1024 * 4)  # four row groups of 50 columns
    (tmp_path / "in").mkdir()
    frame = pd.DataFrame({f"c{i}": np.arange(2000, dtype="f8") * i for i in range(50)})
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "in" / "wide.parquet")
    published = run_build(tmp_path, {"sources": [{"path": "in", "into": "t"}], "output": {"store": str(tmp_path / "site"), "table_row_group_rows": 100}})
    structure = published.node("t/wide")["structure"]
    assert structure["npartitions"] == 5 and structure["partition_rows"] == [400] * 5
    pd.testing.assert_frame_equal(pd.read_parquet(published.url("t/wide")), frame)
    assert all(pq.ParquetFile(part).num_row_groups == 4 for part in Path(published.url("t/wide")).glob("part-*.parquet"))
