"""PNG preview of a huge image through its pyramid: ``format=png&max_size=1024`` of a 16k x 16k
uint16 image against the same preview of a 1k x 1k image, in one ``publish serve`` process.

One build publishes both (one HDF5 file, smooth field plus noise, chunks 1024 x 1024); the big
one gets its OME-Zarr pyramid (docs/catalog.md), so its preview reads level 3 (16x: 1024 x 1024)
instead of 256 MiB of level 0. Requests alternate big / small (``--repeat`` pairs, the decoded
chunk cache off so every request reads and decodes its chunks); printed: the medians and the
median of the pairs' big / small. Target (issue 15): <= 2.
Usage: python benchmarks/pyramid_preview.py [--size 16384] [--repeat 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _image(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    x = np.linspace(0, 6 * np.pi, cols, dtype="f4")
    y = np.linspace(0, 6 * np.pi, rows, dtype="f4")
    return (20000 + 15000 * np.sin(y)[:, None] * np.cos(x)[None, :] + rng.normal(0, 300, (rows, cols)).astype("f4")).clip(0, 65535).astype("u2")


def publish(folder: Path, size: int) -> str:
    import h5py
    import yaml

    from publisher.build import build
    from publisher.config import load_pipeline

    rng = np.random.default_rng(15)
    with h5py.File(folder / "images.h5", "w") as f:
        big = f.create_dataset("big", (size, size), dtype="u2", chunks=(1024, 1024))
        for row in range(0, size, 1024):
            big[row : row + 1024] = _image(1024, size, rng)
        f.create_dataset("small", data=_image(1024, 1024, rng), chunks=(1024, 1024))
    config = {"sources": [{"path": str(folder / "images.h5")}], "output": {"store": str(folder / "site")}}
    (folder / "pipeline.yml").write_text(yaml.safe_dump(config))
    build(load_pipeline(folder / "pipeline.yml"), workers=os.cpu_count() or 2)
    return str(folder / "site")


def get(url: str) -> tuple[float, str | None]:
    start = time.perf_counter()
    with urllib.request.urlopen(url) as response:
        response.read()
        level = response.headers.get("X-Skyshelf-Level")
    return time.perf_counter() - start, level


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16384, help="the image's side (at least output.pyramid_min_size, 4096: smaller ones get no pyramid)")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    if args.size < 4096:  # (no pyramid: two equal builds, a "met" target for nothing)
        parser.error(f"--size {args.size} gets no pyramid (pyramid_min_size is 4096): give 4096 or more")
    from publisher.access.cache import DECODED
    from tests.servers import local_server

    with tempfile.TemporaryDirectory(prefix="pyramid-preview-") as tmp:
        store = publish(Path(tmp), args.size)
        DECODED.resize(0)  # every request reads and decodes its chunks
        with local_server(store) as base:
            urls = {name: f"{base}/api/v1/array/full/images/{name}?format=png&max_size=1024" for name in ("big", "small")}
            levels = {name: get(url)[1] for name, url in urls.items()}  # warm: imports, metadata
            times: dict[str, list[float]] = {"big": [], "small": []}
            for i in range(args.repeat):
                for name in (("big", "small") if i % 2 == 0 else ("small", "big")):
                    times[name].append(get(urls[name])[0])
    ratio = statistics.median(b / s for b, s in zip(times["big"], times["small"]))
    print(f"PNG max_size=1024: {args.size}x{args.size} uint16 (level {levels['big']}) "
          f"{statistics.median(times['big']) * 1000:.1f} ms, 1024x1024 (level {levels['small']}) "
          f"{statistics.median(times['small']) * 1000:.1f} ms (medians of {args.repeat}); big / small = {ratio:.2f} (target <= 2)")


if __name__ == "__main__":
    main()
