"""Conversion streams: peak memory stays far below the size of the source."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .conftest import write_pipeline
from .memory import build_growth


def _peak_rss(folder: Path, frames: int) -> tuple[int, int]:
    import h5py

    folder.mkdir()
    ny = nx = 1024
    with h5py.File(folder / "big.h5", "w") as f:
        ds = f.create_dataset("stack", shape=(frames, ny, nx), dtype="f4", chunks=(1, ny, nx))
        ramp = np.arange(ny * nx, dtype="f4").reshape(ny, nx)
        for i in range(frames):
            ds[i] = ramp + i
    pipeline = write_pipeline(folder, {"sources": [{"path": "big.h5"}], "output": {"store": str(folder / "site")}})
    peak, report = build_growth(pipeline)
    bytes_in = report["bytes_in"]
    assert bytes_in == frames * ny * nx * 4
    assert json.loads((folder / "site" / "catalog.json").read_text())["node_count"] == 3  # root, the file, its dataset
    return peak, bytes_in


def test_peak_memory_does_not_grow_with_the_source(tmp_path: Path) -> None:
    small_peak, small = _peak_rss(tmp_path / "small", 32)  # 128 MiB: past steady state (slabs in flight, chunk cache)
    large_peak, large = _peak_rss(tmp_path / "large", 128)  # 512 MiB
    growth = large_peak - small_peak
    assert growth < 96 * 2**20, (
        f"peak RSS grew by {growth / 2**20:.0f} MiB ({small_peak / 2**20:.0f} → {large_peak / 2**20:.0f} MiB) "
        f"for {(large - small) / 2**20:.0f} MiB more source"
    )


def _parquet_growth(folder: Path, mib: int) -> int:
    """A Parquet file of ``mib`` MiB of float64 in one row group (as pandas' ``to_parquet`` writes
    up to a million rows), built: how much the build's memory grew."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "in").mkdir(parents=True)
    rows = mib * 2**20 // 80
    values = np.random.default_rng(mib).random((rows, 10))
    pq.write_table(pa.table({f"c{i}": values[:, i] for i in range(10)}), folder / "in" / "scan.parquet", row_group_size=rows)
    del values
    grown, report = build_growth(write_pipeline(folder, {"sources": [{"path": "in", "into": "t"}], "output": {"store": str(folder / "site")}}))
    assert report["nodes"]["table"] == 1
    return grown


def test_parquet_streams_whatever_its_size(tmp_path: Path) -> None:
    """pyarrow's defaults read a whole Parquet file ahead (pre_buffer): 300 MB took ~470 MB of memory,
    800 MB ~1 GB. Read a column chunk's pages at a time, in batches sized by bytes, the growth stays."""
    small = _parquet_growth(tmp_path / "small", 128)
    large = _parquet_growth(tmp_path / "large", 384)
    assert large - small < 96 * 2**20, f"the build's memory grew {small / 2**20:.0f} MiB for 128 MiB, {large / 2**20:.0f} MiB for 384 MiB"
