"""Builds on a Dask cluster (``publish build --scheduler``): how they scale and what a task costs.

1. Speed-up: a CPU-bound build (``--items`` arrays of 8 MiB, zstd level 12, so compression is the
   work) on a LocalCluster of 2 worker processes against one of 1 worker process, each worker one
   thread (one core). Both clusters are started before the clock, the stores are new each run, and
   the two alternate (1, 2, 2, 1, ...) so a host that slows down charges both; printed: the median of
   each pair's t(1 worker) / t(2 workers). Target (issue 16): at least 1.7x on 2 cores. The floor,
   measured in the same run, interleaved: the same files read and compressed by 1 and by 2 plain
   processes (``ProcessPoolExecutor``), nothing written: what the machine's two cores give at best.
2. Per-task overhead: ``--tiny`` items of a few bytes each (all overhead, no work) built in this
   process (``workers=1``, the baseline) and on the 1-worker cluster, alternating; printed: the
   median extra milliseconds per item of the Dask path.

Sources are generated once into $SKYSHELF_BENCH or /tmp/skyshelf-bench.
Usage: python benchmarks/cluster_build.py [--items 24] [--tiny 400] [--repeat 3]
(``python benchmarks/build.py --cluster`` runs this.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def sources(items: int, tiny: int) -> tuple[Path, Path]:
    folder = Path(os.environ.get("SKYSHELF_BENCH", "/tmp/skyshelf-bench")) / "cluster"
    heavy, small = folder / f"heavy-{items}", folder / f"tiny-{tiny}"
    if not heavy.exists():
        tmp = heavy.with_suffix(".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(16)
        yy, xx = np.mgrid[0:2048, 0:2048]
        field = (2000 + 1000 * np.sin(xx / 37.0) * np.cos(yy / 53.0)).astype("<u2")
        for i in range(items):  # smooth field plus noise: compressible, so zstd works for its ratio
            np.save(tmp / f"frame_{i:03d}.npy", field + rng.integers(0, 64, size=field.shape, dtype="<u2"))
        tmp.rename(heavy)
    if not small.exists():
        tmp = small.with_suffix(".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        for i in range(tiny):
            np.save(tmp / f"v_{i:04d}.npy", np.arange(4) + i)
        tmp.rename(small)
    return heavy, small


def _encode(path: Path) -> int:
    import numcodecs

    return len(numcodecs.Zstd(level=12).encode(np.load(path)))


def floor(source: Path, processes: int) -> float:
    from concurrent.futures import ProcessPoolExecutor

    files = sorted(source.glob("*.npy"))
    with ProcessPoolExecutor(processes) as pool:
        list(pool.map(_encode, files[:processes]))  # started and imported before the clock
        start = time.perf_counter()
        list(pool.map(_encode, files))
        return time.perf_counter() - start


def timed_build(source: Path, work: Path, scheduler: str | None, level: int) -> float:
    from publisher.build import build
    from publisher.config import load_pipeline

    store = Path(tempfile.mkdtemp(dir=work))
    pipeline = work / f"{store.name}.yml"
    pipeline.write_text(f"sources:\n  - path: {source}\n    into: ''\noutput:\n  store: {store}\n  codec: 'zstd:{level}'\n")
    loaded = load_pipeline(pipeline)
    start = time.perf_counter()
    build(loaded, workers=1, scheduler=scheduler)
    seconds = time.perf_counter() - start
    shutil.rmtree(store, ignore_errors=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=24)
    parser.add_argument("--tiny", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from distributed import LocalCluster

    heavy, small = sources(args.items, args.tiny)
    work = Path(tempfile.mkdtemp(prefix="skyshelf-cluster-bench-"))
    kwargs = {"threads_per_worker": 1, "processes": True, "dashboard_address": None, "host": "127.0.0.1", "silence_logs": 50}
    try:
        with LocalCluster(n_workers=1, **kwargs) as one, LocalCluster(n_workers=2, **kwargs) as two:
            timed_build(heavy, work, one.scheduler_address, 12)  # warm both (imports on the workers, page cache)
            timed_build(heavy, work, two.scheduler_address, 12)
            ones, twos, floor1, floor2 = [], [], [], []
            for r in range(args.repeat):
                runs = [lambda: ones.append(timed_build(heavy, work, one.scheduler_address, 12)),
                        lambda: twos.append(timed_build(heavy, work, two.scheduler_address, 12)),
                        lambda: floor1.append(floor(heavy, 1)), lambda: floor2.append(floor(heavy, 2))]
                for run in runs if r % 2 == 0 else runs[::-1]:
                    run()
            speedup = statistics.median(a / b for a, b in zip(ones, twos))
            best = statistics.median(a / b for a, b in zip(floor1, floor2))
            print(f"CPU-bound build of {args.items} x 8 MiB (zstd 12): 1 worker {', '.join(f'{t:.2f}' for t in ones)} s; "
                  f"2 workers {', '.join(f'{t:.2f}' for t in twos)} s")
            print(f"floor (read + compress, nothing written): 1 process {', '.join(f'{t:.2f}' for t in floor1)} s; "
                  f"2 processes {', '.join(f'{t:.2f}' for t in floor2)} s")
            print(f"speed-up of 2 worker processes over 1 (median of pairs): {speedup:.2f}x (target >= 1.7x); "
                  f"the floor's: {best:.2f}x; build / floor speed-up {speedup / best:.2f}")

            locals_, dasks = [], []
            timed_build(small, work, None, 3)
            for r in range(args.repeat):
                order = [(None, locals_), (one.scheduler_address, dasks)] if r % 2 == 0 else [(one.scheduler_address, dasks), (None, locals_)]
                for scheduler, into in order:
                    into.append(timed_build(small, work, scheduler, 3))
            extra = statistics.median((d - lo) / args.tiny * 1e3 for d, lo in zip(dasks, locals_))
            print(f"{args.tiny} tiny items: this process {', '.join(f'{t:.2f}' for t in locals_)} s; "
                  f"1-worker cluster {', '.join(f'{t:.2f}' for t in dasks)} s")
            print(f"per-task overhead of the Dask path: {extra:+.2f} ms per item (median of pairs; cluster / local "
                  f"{statistics.median(d / lo for d, lo in zip(dasks, locals_)):.2f}x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
