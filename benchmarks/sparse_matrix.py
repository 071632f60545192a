"""Sparse matrices end to end: ``publish build`` of one AnnData-style CSR matrix, then reads
through ``publish serve``'s server by the tiled client: the whole matrix, a slice of 1 % of the
rows (it reads only the blocks it overlaps) and one block.

Source (generated once, cached in $SKYSHELF_BENCH or /tmp/skyshelf-bench): ``csr-<nnz>.h5``, a
CSR float32 matrix of 100,000 rows x 30,000 columns with ``nnz`` nonzeros spread evenly,
``encoding-type=csr_matrix`` (what AnnData writes), gzip level 4. Printed: build seconds
(wall and CPU), stored bytes, nonzeros per second, and each read's median seconds over repeats.
Usage: python benchmarks/sparse_matrix.py [--nnz 10000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROWS, COLS = 100_000, 30_000


def source(nnz: int) -> Path:
    import h5py

    folder = Path(os.environ.get("SKYSHELF_BENCH", "/tmp/skyshelf-bench"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"csr-{nnz}.h5"
    if not path.exists():
        rng = np.random.default_rng(0)
        per_row = np.full(ROWS, nnz // ROWS)
        per_row[: nnz % ROWS] += 1
        indptr = np.concatenate([[0], np.cumsum(per_row)])
        indices = np.concatenate([np.sort(rng.choice(COLS, n, replace=False)) for n in per_row]).astype(np.int32)
        with h5py.File(path.with_suffix(".tmp"), "w") as f:
            g = f.create_group("X")
            g.attrs["encoding-type"], g.attrs["encoding-version"], g.attrs["shape"] = "csr_matrix", "0.1.0", [ROWS, COLS]
            g.create_dataset("data", data=rng.random(nnz, dtype=np.float32), compression="gzip", compression_opts=4, chunks=(min(1 << 18, nnz),))
            g.create_dataset("indices", data=indices, compression="gzip", compression_opts=4, chunks=(min(1 << 18, nnz),))
            g["indptr"] = indptr.astype(np.int64)
        path.with_suffix(".tmp").rename(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nnz", type=int, default=10_000_000, help="nonzeros of the matrix")
    parser.add_argument("--repeat", type=int, default=3, help="reads of each kind; the median counts")
    args = parser.parse_args()
    src = source(args.nnz)
    with tempfile.TemporaryDirectory(prefix="sparse-bench-") as work:  # (the published store goes with the run)
        run(src, Path(work), args.nnz, args.repeat)


def run(src: Path, folder: Path, nnz: int, repeat: int) -> None:
    from tiled.client import from_uri

    from tests.conftest import run_build
    from tests.servers import local_server

    cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    pub = run_build(folder, {"sources": [{"path": str(src), "into": ""}]})
    wall, cpu1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    node = pub.node(f"{src.stem}/X")
    stored = sum(p.stat().st_size for p in Path(pub.url(f"{src.stem}/X")).iterdir())
    print(f"build: {wall:.1f} s wall, {cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime:.1f} s CPU, "
          f"{nnz / wall / 1e6:.2f} M nonzeros/s; {len(node['structure']['chunks'][0])} blocks, {stored / 2**20:.1f} MiB stored "
          f"(source {src.stat().st_size / 2**20:.1f} MiB)")
    with local_server(pub.store.url) as url:
        matrix = from_uri(f"{url}/api/v1")[f"{src.stem}/X"]
        blocks = len(node["structure"]["chunks"][0])
        for name, read in (("whole", lambda: matrix.read()), ("1% of rows", lambda: matrix[50_000:51_000, :]),
                           ("one block", lambda: matrix.read_block((min(3, blocks - 1), 0)))):  # (a small matrix has fewer)
            times = []
            for _ in range(repeat):
                t = time.perf_counter()
                got = read()
                times.append(time.perf_counter() - t)
            print(f"{name}: {statistics.median(times):.3f} s median ({got.nnz} nonzeros)")


if __name__ == "__main__":
    main()
