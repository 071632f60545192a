"""Conversion streams: peak memory stays far below the size of the source."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from .conftest import write_pipeline

SCRIPT = """
import resource, sys
from publisher.build import build
from publisher.config import load_pipeline
report = build(load_pipeline(sys.argv[1]), workers=2)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, report.bytes_in)
"""


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
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(pipeline)], capture_output=True, text=True, check=True)
    peak, bytes_in = map(int, out.stdout.split()[-2:])
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
