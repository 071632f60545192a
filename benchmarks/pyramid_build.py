"""Pyramid build cost: ``publish build`` of one large image with its OME-Zarr pyramid against the
same build without (rule ``pyramid: false``), paired and interleaved in one process.

Sources (generated once, cached in $SKYSHELF_BENCH or /tmp/skyshelf-bench): ``image-<n>-raw.h5``
and ``image-<n>-gzip.h5``, the same n x n uint16 image (smooth field plus noise), chunks
1024 x 1024, uncompressed and gzip level 4 (how detectors and microscopes usually write). Each repeat builds without, then with (the order alternates
between repeats), each into a new store; printed: the medians of the repeats' with / without,
of wall time and of the process's CPU time (all threads; steadier on a shared host), and the
fastest runs' seconds. Target (issue 15): the pyramid adds < 25 %.
Usage: python benchmarks/pyramid_build.py [--size 16384] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def source(size: int, compression: str | None) -> Path:
    import h5py

    folder = Path(os.environ.get("SKYSHELF_BENCH", "/tmp/skyshelf-bench"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"image-{size}-{compression or 'raw'}.h5"
    if not path.exists():
        rng = np.random.default_rng(15)
        tmp = path.with_suffix(".tmp")
        with h5py.File(tmp, "w") as f:
            data = f.create_dataset("image", (size, size), dtype="u2", chunks=(1024, 1024), compression=compression,
                                    compression_opts=4 if compression else None)
            x = np.linspace(0, 6 * np.pi, size, dtype="f4")
            for row in range(0, size, 1024):
                y = np.linspace(row / size * 6 * np.pi, (row + 1024) / size * 6 * np.pi, 1024, endpoint=False, dtype="f4")
                smooth = 20000 + 15000 * np.sin(y)[:, None] * np.cos(x)[None, :]
                data[row : row + 1024] = (smooth + rng.normal(0, 300, (1024, size)).astype("f4")).clip(0, 65535).astype("u2")
        tmp.rename(path)
    return path


def one_build(image: Path, pyramid: bool) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process: every thread, user and system) of one build."""
    import yaml

    from publisher.build import build
    from publisher.config import load_pipeline

    folder = Path(tempfile.mkdtemp(prefix="pyramid-bench-"))
    try:
        config = {"sources": [{"path": str(image)}], "output": {"store": str(folder / "site")},
                  "rules": [] if pyramid else [{"match": "**", "pyramid": False}]}
        (folder / "pipeline.yml").write_text(yaml.safe_dump(config))
        pipeline = load_pipeline(folder / "pipeline.yml")
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        build(pipeline, workers=os.cpu_count() or 2)
        wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
        return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16384, help="the image's side (at least output.pyramid_min_size, 4096: smaller ones get no pyramid)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.size < 4096:  # (no pyramid: two equal builds, a "met" target for nothing)
        parser.error(f"--size {args.size} gets no pyramid (pyramid_min_size is 4096): give 4096 or more")
    for compression in (None, "gzip"):
        image = source(args.size, compression)
        one_build(image, True)  # warm: imports, page cache
        plain: list[tuple[float, float]] = []
        pyr: list[tuple[float, float]] = []
        for i in range(args.repeat):
            for with_pyramid in ((False, True) if i % 2 == 0 else (True, False)):
                (pyr if with_pyramid else plain).append(one_build(image, with_pyramid))
            print(f"  repeat {i + 1}: without {plain[-1][0]:.2f} s (CPU {plain[-1][1]:.2f} s), with {pyr[-1][0]:.2f} s "
                  f"(CPU {pyr[-1][1]:.2f} s)", flush=True)
        wall = statistics.median(p[0] / q[0] for p, q in zip(pyr, plain))
        cpu = statistics.median(p[1] / q[1] for p, q in zip(pyr, plain))
        print(f"{args.size}x{args.size} uint16, {compression or 'uncompressed'} source ({image.stat().st_size / 2**20:.0f} MiB): "
              f"without pyramid {min(p[0] for p in plain):.2f} s, with {min(p[0] for p in pyr):.2f} s; with / without "
              f"(medians of {args.repeat}): wall {wall:.3f}, CPU {cpu:.3f} (target < 1.25)", flush=True)

if __name__ == "__main__":
    main()
