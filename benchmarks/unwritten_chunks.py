"""A preallocated HDF5 stack whose scan stopped early: most chunks were never written.

The source: one ``--side`` x ``--side`` float64 image (default 100,000: 80 GB as an array), chunked
1000 x 1000 with NaN as its fill value, of which two regions were written (1.3 MB on disk). The
build skips the regions where no chunk is stored (``publisher/readers/hdf5_direct.py``
``unwritten``): their chunks are encoded once and written as they are, and the pyramid reduces
one window of them. The baseline, measured in the same run and interleaved: the same build with
that turned off (every region read, every chunk compressed), as builds were before 2026-12-05.
Both write the same release, object for object (checked here). Each build runs in a new process;
printed: seconds of each, peak RSS, and the median of each pair's baseline / skipping.

Usage: python benchmarks/unwritten_chunks.py [--side 100000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUILD = """
import sys, time
import publisher.readers.hdf5 as reader
from publisher.build import build
from publisher.config import load_pipeline
if sys.argv[2] == "baseline":
    reader.unwritten = lambda *args: None
start = time.perf_counter()
build(load_pipeline(sys.argv[1]))
seconds = time.perf_counter() - start
# VmHWM: a child's ru_maxrss keeps its parent's high-water mark across exec
print(seconds, next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


def source(folder: Path, side: int) -> Path:
    import h5py
    import numpy as np

    path = folder / f"stopped-{side}.h5"
    if not path.exists():
        with h5py.File(path, "w") as f:
            image = f.create_dataset("image", shape=(side, side), dtype="f8", chunks=(1000, 1000), compression="gzip", fillvalue=np.nan)
            image[0:1000, 0:1000] = np.arange(10**6).reshape(1000, 1000)
            image[side // 2 : side // 2 + 500, side * 7 // 10 : side * 7 // 10 + 100] = 3.0
    return path


def run(pipeline: Path, mode: str) -> tuple[float, int]:
    done = subprocess.run([sys.executable, "-c", BUILD, str(pipeline), mode], check=True, capture_output=True, text=True)
    seconds, rss = done.stdout.split()[-2:]
    return float(seconds), int(rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    cache = Path(os.environ.get("SKYSHELF_BENCH", "/tmp/skyshelf-bench")) / "unwritten"
    (cache / "src").mkdir(parents=True, exist_ok=True)
    src = source(cache / "src", args.side)
    work = Path(tempfile.mkdtemp(prefix="skyshelf-unwritten-"))
    try:
        (work / "src").mkdir()
        shutil.copy(src, work / "src" / src.name)  # 1.3 MB
        runs: dict[str, list[tuple[float, int]]] = {"skipping": [], "baseline": []}
        stores = {}
        for i in range(args.repeat):
            for mode in (("skipping", "baseline") if i % 2 == 0 else ("baseline", "skipping")):
                store = work / mode
                shutil.rmtree(store, ignore_errors=True)
                pipeline = work / f"{mode}.yml"
                pipeline.write_text(f"sources:\n  - path: src\noutput:\n  store: {store}\n")
                runs[mode].append(run(pipeline, mode))
                print(f"{mode}: {runs[mode][-1][0]:.1f} s", flush=True)
                if i == 0:
                    from publisher.stores import Store
                    from tests.test_cluster_build import release_objects

                    stores[mode] = release_objects(Store(str(store)))
        same = stores["skipping"] == stores["baseline"]
        ratio = statistics.median(b[0] / s[0] for s, b in zip(runs["skipping"], runs["baseline"]))
        print(f"\n{args.side} x {args.side} float64 ({args.side**2 * 8 / 1e9:.0f} GB as an array), {src.stat().st_size / 1e6:.1f} MB on disk")
        for mode, results in runs.items():
            print(f"{mode:<9} {min(r[0] for r in results):7.1f} s  peak RSS {max(r[1] for r in results) / 2**20:6.0f} MB")
        print(f"baseline / skipping: {ratio:.1f}x (median of {args.repeat} pairs); the same release object for object: {same}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
