"""One large single-page TIFF (a mosaic, a whole-slide or satellite image) built read in parts
against read whole.

The sources: a ``--rows`` x ``--cols`` uint16 image (default 16384 x 8192: 256 MiB) of noise on a
smooth field, stored in 512 x 512 tiles and in strips of 16 rows, zstd level 1, and uncompressed
(one strip). The build reads a frame above ``publisher.readers.tiff_parts.LAZY_FRAME_BYTES`` (64 MiB)
in parts: through tifffile's zarr store, decoding only the tiles or strips each block touches, or,
uncompressed, each block's rows read where they lie. The baseline, measured in the same run and
interleaved: the same build with the threshold out of reach (the frame decoded whole, as builds
did before 2026-12-06). Each build runs in a new process, into a store in memory (``/dev/shm``);
printed: seconds, how much the process's peak resident memory grew during the build (VmHWM), and
the median of each pair's whole / parts.

Usage: python benchmarks/large_tiff.py [--rows 16384] [--cols 8192] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BUILD = """
import sys, time
import numpy, tifffile, zarr
from publisher.build import build
from publisher.config import load_pipeline
from publisher.readers import tiff_parts as tiff
if sys.argv[2] == "whole":
    tiff.LAZY_FRAME_BYTES = 2**62

def high_water():  # VmHWM starts anew at exec (ru_maxrss keeps the parent's)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))

base = high_water()
start = time.perf_counter()
build(load_pipeline(sys.argv[1]))
print(time.perf_counter() - start, high_water() - base)
"""


def sources(folder: Path, rows: int, cols: int) -> dict[str, Path]:
    import numpy as np
    import tifffile

    rng = np.random.default_rng(6)
    image = (np.linspace(0, 30000, rows, dtype=np.float32)[:, None] + np.linspace(0, 20000, cols, dtype=np.float32)[None, :]).astype(np.uint16)
    image += rng.integers(0, 64, size=image.shape, dtype=np.uint16)
    made = {}
    zstd = {"compression": "zstd", "compressionargs": {"level": 1}}
    for name, layout in (("tiles", {"tile": (512, 512), **zstd}), ("strips", {"rowsperstrip": 16, **zstd}), ("uncompressed", {})):
        (folder / name).mkdir()
        made[name] = folder / name / "image.tif"
        tifffile.imwrite(made[name], image, **layout)  # uncompressed: one strip (tifffile's default), read where its rows lie
    return made


def run(source: Path, mode: str, work: Path) -> tuple[float, int]:
    store = Path(tempfile.mkdtemp(prefix="large-tiff-", dir="/dev/shm"))
    pipeline = work / f"{source.parent.name}-{mode}.yml"
    pipeline.write_text(f"sources:\n  - path: {source.parent}\n    into: img\noutput:\n  store: {store}\n")
    try:
        done = subprocess.run([sys.executable, "-c", BUILD, str(pipeline), mode], cwd=ROOT, check=True, capture_output=True, text=True)
    finally:
        shutil.rmtree(store, ignore_errors=True)
    seconds, grown = done.stdout.split()[-2:]
    return float(seconds), int(grown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16384)
    parser.add_argument("--cols", type=int, default=8192)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="large-tiff-") as tmp:
        work = Path(tmp)
        made = sources(work, args.rows, args.cols)
        print(f"{args.rows} x {args.cols} uint16 ({args.rows * args.cols * 2 / 2**20:.0f} MiB), zstd 1; "
              f"{', '.join(f'{k} {v.stat().st_size / 2**20:.0f} MiB on disk' for k, v in made.items())}")
        for name, source in made.items():
            pairs = []
            for _ in range(args.repeat):  # interleaved: whole, then parts
                pairs.append((run(source, "whole", work), run(source, "parts", work)))
            ratio = statistics.median(w[0] / p[0] for w, p in pairs)
            print(f"{name}: whole {', '.join(f'{w[0]:.2f}' for w, _ in pairs)} s (peak +{max(w[1] for w, _ in pairs) / 2**20:.0f} MiB); "
                  f"parts {', '.join(f'{p[0]:.2f}' for _, p in pairs)} s (peak +{max(p[1] for _, p in pairs) / 2**20:.0f} MiB); "
                  f"whole / parts {ratio:.2f} (median of pairs)")


if __name__ == "__main__":
    main()
