"""Build benchmark: Skyshelf against xarray's path and against the floor, measured in one run.

Sources (generated once, cached in $SKYSHELF_BENCH or /tmp/skyshelf-bench):
  gzip.h5          1 GiB uint16 detector stack, chunks (1, 1024, 1024), gzip level 4
  raw.h5           the same data, uncompressed (chunked)
  tiles/           1,000 small TIFF frames (256 x 256 uint16)

The small files build twice: into a store on disk beside the others, and into a store in memory
(``/dev/shm``, where there is one). This VM's disk is ext4 without a journal, where creating a file
or folder right after many were deleted costs 0.1-0.6 ms (the kernel scans past recently deleted
inodes; measured with perf), more than the floor's whole work per file: the memory store shows
Skyshelf's own cost per file, the disk store what this disk adds.

For each: (a) ``xarray.open_dataset(..., engine="h5netcdf", chunks={}).to_zarr(...)`` with the
same codec; (b) the floor: read every source chunk and compress it with the same codec on all
cores, writing nothing; Skyshelf's ``publish build`` in a subprocess (peak RSS measured); and
a no-change rebuild. For the small files also (c) a bare Zarr writer: a process per core reading
each file, compressing its chunk and writing one array per file, nothing else (no metadata,
index, records or completeness check): the least a conversion can do. xarray, floor, build and rebuild run ``--repeat`` times in that order (each
build into a new store), so a host that speeds up or slows down during the run, or is still
busy with what ran before (xarray writes and frees ~0.7 GB), charges the floor and the build
alike: the printed ratio is the median of each repeat's build / floor (measured back to back,
each in a new process with its imports done before its clock starts), and the seconds are the
fastest runs, as timeit does. The build's time is ``build()`` from start to the catalog switch
(durable flush included), after the imports; (process) is the whole command.
Usage: python benchmarks/build.py [--gib 1] [--repeat 3] [--only small]
       python benchmarks/build.py --cluster [...]: builds on a Dask cluster (benchmarks/cluster_build.py)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORES = os.cpu_count() or 2
LEVEL = 3  # zstd level, Skyshelf's default
#: The timed processes' environment: Python's default bytecode cache on (a sandbox that sets
#: PYTHONDONTWRITEBYTECODE would have every build compile the modules it imports lazily, ~40 ms)
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
T = TypeVar("T")


#: The sources each run measures, by name (a run's name is one of these, or "small (memory)").
SOURCES = {"gzip": "gzip.h5", "uncompressed": "raw.h5", "small files": "tiles"}


def generate(folder: Path, gib: float, wanted: set[str]) -> dict[str, Path]:
    """The sources ``wanted`` (names of :data:`SOURCES`), each made once: the small files alone
    take seconds, the HDF5 pair ~100 s."""
    import h5py
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    frames = int(gib * 512)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:1024, 0:1024]
    base = 200 + 3000 * np.exp(-((xx - 512) ** 2 + (yy - 512) ** 2) / (2 * 150.0**2))
    sources = {name: folder / file for name, file in SOURCES.items()}
    if wanted & {"gzip", "uncompressed"} and not (folder / ".done-h5").exists():
        with h5py.File(sources["gzip"], "w") as gz, h5py.File(sources["uncompressed"], "w") as raw:
            a = gz.create_dataset("data", shape=(frames, 1024, 1024), dtype="u2", chunks=(1, 1024, 1024), compression="gzip", compression_opts=4)
            b = raw.create_dataset("data", shape=(frames, 1024, 1024), dtype="u2", chunks=(1, 1024, 1024))
            for i in range(frames):
                frame = rng.poisson(base).astype("u2")
                a[i] = frame
                b[i] = frame
        (folder / ".done-h5").write_text("ok")
    if "small files" in wanted and not (folder / ".done-tiles").exists():
        tiles = np.random.default_rng(1)
        sources["small files"].mkdir(exist_ok=True)
        for i in range(1000):
            tifffile.imwrite(sources["small files"] / f"tile_{i:04d}.tif", tiles.poisson(base[:256, :256]).astype("u2"))
        (folder / ".done-tiles").write_text("ok")
    return {name: path for name, path in sources.items() if name in wanted}


def floor(source: Path) -> float:
    """Read every source chunk (decoded) and compress it with zstd on all cores; write nothing."""
    import h5py
    import numcodecs
    import tifffile

    from publisher.readers.hdf5_direct import DirectChunks

    zstd = numcodecs.Zstd(level=LEVEL)
    start = time.perf_counter()  # imports done, as the build's clock starts after its imports
    if source.is_dir():

        def one(path: Path) -> int:
            return len(zstd.encode(tifffile.imread(path)))

        with ThreadPoolExecutor(CORES) as pool:
            list(pool.map(one, sorted(source.glob("*.tif"))))
        return time.perf_counter() - start
    with h5py.File(source) as f:
        ds = f["data"]
        direct = DirectChunks.for_dataset(ds, threading.Lock(), lambda: ds)
        assert direct is not None

        def chunk(i: int) -> int:
            return len(zstd.encode(direct.read((slice(i, i + 1), slice(0, 1024), slice(0, 1024)))))

        with ThreadPoolExecutor(CORES) as pool:
            list(pool.map(chunk, range(ds.shape[0])))
    return time.perf_counter() - start


def floor_fresh(source: Path) -> float:
    """:func:`floor` in a new process, as the build runs: both start with the same cold heap (a
    long-lived process that already faulted its memory in runs the same work ~5-10% faster on
    this VM, which would flatter the floor)."""
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import build; print(build.floor(build.Path({str(source)!r})))"
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=CHILD_ENV)
    return float(done.stdout.strip().splitlines()[-1])


def bare(source: Path, out: Path) -> float:
    """Small files only: the least a conversion into Zarr can do, on a process per core: read each
    file, compress its one chunk, write the array (its zarr.json, from a template, and its chunk
    as ``c/0/0``) and nothing else (no metadata, index, records or check). What the build's own
    work per release costs on top shows as skyshelf / bare."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    start = time.perf_counter()
    paths = sorted(source.glob("*.tif"))
    out.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(CORES, mp_context=multiprocessing.get_context("fork")) as pool:
        list(pool.map(_bare_batch, [(paths[i:i + 32], out) for i in range(0, len(paths), 32)]))
    return time.perf_counter() - start


def _bare_batch(job: tuple[list[Path], Path]) -> int:
    import json

    import numcodecs
    import tifffile

    zstd = numcodecs.Zstd(level=LEVEL)
    paths, out = job
    for path in paths:
        data = tifffile.imread(path)
        folder = f"{out}/{path.stem}.zarr"
        for made in (folder, f"{folder}/c", f"{folder}/c/0"):  # one mkdir each (os.makedirs would probe first)
            os.mkdir(made)
        doc = {"zarr_format": 3, "node_type": "array", "shape": list(data.shape), "data_type": str(data.dtype),
               "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(data.shape)}},
               "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}}, "fill_value": 0,
               "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "zstd", "configuration": {"level": LEVEL, "checksum": False}}],
               "attributes": {}}
        for name, body in (("zarr.json", json.dumps(doc).encode()), ("c/0/0", zstd.encode(data))):
            fd = os.open(f"{folder}/{name}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, body)
            os.close(fd)
    return len(paths)


def bare_fresh(source: Path, out: Path) -> float:
    """:func:`bare` in a new process, as the floor and the build run."""
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import build; print(build.bare(build.Path({str(source)!r}), build.Path({str(out)!r})))"
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=CHILD_ENV)
    return float(done.stdout.strip().splitlines()[-1])


def xarray_path(source: Path, out: Path) -> float:
    import xarray as xr
    import zarr

    start = time.perf_counter()
    if source.is_dir():
        import tifffile

        for path in sorted(source.glob("*.tif")):
            xr.Dataset({"image": (("y", "x"), tifffile.imread(path))}).to_zarr(
                out / f"{path.stem}.zarr", mode="w", encoding={"image": {"compressors": zarr.codecs.ZstdCodec(level=LEVEL)}})
        return time.perf_counter() - start
    ds = xr.open_dataset(source, engine="h5netcdf", chunks={}, phony_dims="access")
    encoding = {name: {"compressors": zarr.codecs.ZstdCodec(level=LEVEL)} for name in ds.data_vars}
    ds.to_zarr(out, mode="w", encoding=encoding, zarr_format=3)
    return time.perf_counter() - start


def skyshelf(source: Path, store: Path) -> tuple[float, float, int]:
    """``publish build`` in a subprocess: the seconds of ``build()`` (plan to catalog switch), the
    process's wall seconds (with interpreter start-up and imports), and its peak RSS in bytes."""
    pipeline = store.parent / f"{store.name}.yml"
    pipeline.write_text(f"sources:\n  - path: {source}\n    into: ''\noutput:\n  store: {store}\n")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RSS_WRAPPER, str(pipeline)], check=True, capture_output=True, text=True, env=CHILD_ENV)
    wall = time.perf_counter() - start
    peak, seconds, _report = done.stdout.rsplit("\n", 2)[-2].split(" ", 2)
    return float(seconds), wall, int(peak)


# The floor runs in this process, with h5py, numcodecs and tifffile already imported; the build
# starts equally warm (those imports before its clock), and the (process) column counts everything.
RSS_WRAPPER = """
import json, sys, time
import h5py, hdf5plugin, numcodecs, tifffile
from publisher.build import build
from publisher.config import load_pipeline
start = time.perf_counter()
report = build(load_pipeline(sys.argv[1]))
seconds = time.perf_counter() - start
# VmHWM, not ru_maxrss: a child's ru_maxrss keeps its parent's high-water mark across exec (this
# benchmark's, after xarray's run in it: 555 MB reported for a build of 137 MB)
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(peak, seconds, json.dumps(report.to_json()))
"""


def fresh(run: Callable[[], T], output: Path | None) -> T:
    """Run one timed path from a clean slate: no dirty pages of an earlier path's output (a build's
    durable flush would write them too), and ``output`` deleted afterwards. Keeping outputs around
    made writing new files ~4x dearer in system time on this VM (memory the guest had handed back
    to the host is slow to fault in again), which would charge the writing paths, not the floor."""
    os.sync()
    try:
        return run()
    finally:
        if output is not None:
            shutil.rmtree(output, ignore_errors=True)


def main() -> None:
    if "--cluster" in sys.argv:  # the cluster mode: benchmarks/cluster_build.py (its own arguments follow)
        sys.argv.remove("--cluster")
        from cluster_build import main as cluster_main

        return cluster_main()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=1.0, help="size of each HDF5 source")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the floor and of the build; the fastest counts")
    parser.add_argument("--only", default="", help="only the sources whose name contains this (e.g. small)")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    names = [*SOURCES, *(["small (memory)"] if os.access("/dev/shm", os.W_OK) else [])]
    chosen = [name for name in names if args.only in name]
    if not chosen:
        parser.error(f"no source matches {args.only!r} (the sources: {', '.join(names)})")
    cache = Path(os.environ.get("SKYSHELF_BENCH", "/tmp/skyshelf-bench")) / f"{args.gib:g}GiB"
    print(f"generating sources in {cache} (once)...", flush=True)
    sources = generate(cache, args.gib, {"small files" if name == "small (memory)" else name for name in chosen})
    rows, notes = [], []
    runs_of = [(name, sources["small files" if name == "small (memory)" else name], "/dev/shm" if name == "small (memory)" else None)
               for name in chosen]
    for name, source, where in runs_of:
        work = Path(tempfile.mkdtemp(prefix="skyshelf-bench-", dir=where))
        try:
            floor(source)  # warm the page cache so every path reads from memory alike
            floors, xs, runs, rebuilds, bares = [], [], [], [], []
            for _ in range(args.repeat):  # interleaved: xarray, (bare), floor, a full build into a new store, a no-change rebuild
                xs.append(fresh(lambda: xarray_path(source, work / "xarray"), work / "xarray"))
                if source.is_dir():
                    bares.append(fresh(lambda: bare_fresh(source, work / "bare"), work / "bare"))
                floors.append(fresh(lambda: floor_fresh(source), None))  # right before the build it is paired with
                runs.append(fresh(lambda: skyshelf(source, work / "site"), None))
                rebuilds.append(fresh(lambda: skyshelf(source, work / "site"), work / "site"))
            s, wall, _ = min(runs)
            again, again_wall, _ = min(rebuilds)
            paired = statistics.median(r[0] / f for r, f in zip(runs, floors))
            x_paired = statistics.median(x / r[0] for r, x in zip(runs, xs))
            rows.append((name, min(floors), min(xs), s, wall, paired, x_paired, again, again_wall, max(r[2] for r in runs)))
            print(f"{name}: floor {', '.join(f'{f:.2f}' for f in floors)} s; skyshelf {', '.join(f'{r[0]:.2f}' for r in runs)} s", flush=True)
            if bares:
                notes.append(f"{name}: bare Zarr writer {min(bares):.2f} s, bare/floor {statistics.median(b / f for b, f in zip(bares, floors)):.2f}, "
                             f"skyshelf/bare {statistics.median(r[0] / b for r, b in zip(runs, bares)):.2f} (median of paired runs)")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'source':<14}{'floor s':>9}{'xarray s':>10}{'skyshelf s':>12}{'(process)':>11}{'sky/floor':>11}{'xarray/sky':>12}"
          f"{'rebuild/build':>15}{'(process)':>11}{'peak RSS':>10}")
    for name, f, x, s, wall, paired, x_paired, again, again_wall, rss in rows:
        print(f"{name:<14}{f:9.2f}{x:10.2f}{s:12.2f}{wall:11.2f}{paired:11.2f}{x_paired:12.2f}{again / s:15.3f}{again_wall / wall:11.3f}"
              f"{rss / 2**20:7.0f} MB")
    print(f"\ncores: {CORES}; codec: zstd level {LEVEL}; seconds: fastest of {args.repeat} interleaved runs; sky/floor and xarray/sky: median of"
          " each run's ratio. skyshelf s: build() from plan to catalog switch; (process): wall time of `publish build` with"
          " interpreter start-up and imports.")
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
