"""A tree of many small files (issue 16, "many files"): memory, and a no-change rebuild's cost.

Generates ``--files`` small CSV files (two columns, one row) in folders of ``--per-folder``
(default 100,000 in folders of 1,000) under $SKYSHELF_BENCH or /tmp/skyshelf-bench, once, then in
a child process each:

1. the full build into a new store, sampling the process's resident memory (``/proc/self/statm``)
   every 0.5 s: printed, its peak while converting, at the end, and the baseline (after imports);
   and its worker processes' own memory (USS), and CPU time with theirs;
2. the same build again, nothing changed (the baseline of a rebuild is the full build): printed,
   its time and its ratio to the full build's. Target: at most 2% at a million files.

With ``--broken`` the tree holds one corrupt file too, built with ``on_error: skip``: its
failure is recorded, so the rebuild is still a no-change one (it used to convert the file again
and publish a release, a full build's publishing each time).

Usage: python benchmarks/many_files.py [--files 100000] [--per-folder 1000] [--keep] [--broken]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import json, resource, sys, threading, time
import psutil
from publisher.build import build
from publisher.config import load_pipeline

def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

def workers_mb():  # the worker processes' own memory (USS: what forking did not share)
    total = 0
    for child in psutil.Process().children(recursive=True):
        try:
            total += child.memory_full_info().uss
        except psutil.Error:
            pass
    return total / 2**20

pipeline = load_pipeline(sys.argv[1])
base, samples, phase, count, at = rss_mb(), [], ["plan"], {"items": 0, "done": 0}, {}
def sample():
    while True:
        samples.append((phase[0], rss_mb(), workers_mb()))
        time.sleep(0.5)
def progress(event, info):
    if event == "start":
        phase[0], count["items"], at["convert"] = "convert", info["items"], time.perf_counter()
    elif event == "reused" and not count["done"]:  # a no-change build: nothing converted, no worker
        threading.Thread(target=sample, daemon=True).start()
    elif event == "done":
        count["done"] += 1
        if count["done"] == 1:  # sampled from here: the build forks its workers only while it has one thread
            threading.Thread(target=sample, daemon=True).start()
        if count["done"] == count["items"]:
            phase[0], at["publish"] = "publish", time.perf_counter()  # the index, manifest and check
usage, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
cpu0 = usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime
started = time.perf_counter()
report = build(pipeline, progress=progress)
seconds = time.perf_counter() - started
usage, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
end = time.perf_counter()
samples.append((phase[0], rss_mb(), 0))
print(json.dumps({"seconds": seconds, "plan_seconds": at.get("convert", end) - started,
                  "publish_seconds": end - at.get("publish", end), "converted": report.converted,
                  "cpu_seconds": usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime - cpu0,
                  "reused": report.reused, "unchanged": report.unchanged, "rss_base_mb": base,
                  "rss_peak_convert_mb": max((m for p, m, _ in samples if p == "convert"), default=0),
                  "rss_peak_publish_mb": max((m for p, m, _ in samples if p == "publish"), default=0),
                  "workers_peak_mb": max(w for _, _, w in samples), "rss_peak_mb": max(m for _, m, _ in samples), "rss_end_mb": rss_mb()}))
"""


def make_tree(files: int, per_folder: int, broken: bool = False) -> Path:
    """``broken``: one more file, a corrupt HDF5 one, in the first folder (its failure is recorded:
    a no-change rebuild stays one)."""
    root = Path(os.environ.get("SKYSHELF_BENCH", "/tmp/skyshelf-bench")) / f"many-{files}-{per_folder}{'-broken' if broken else ''}"
    if root.exists():
        return root
    partial = root.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for i in range(files):
        folder = partial / f"run{i // per_folder:05d}"
        if i % per_folder == 0:
            folder.mkdir(parents=True)
        (folder / f"scan_{i:07d}.csv").write_text(f"x,y\n{i},{2 * i}\n")
    if broken:
        (partial / "run00000" / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)  # HDF5's signature, then nothing
    partial.rename(root)
    return root


def run(pipeline: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(pipeline)], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--per-folder", type=int, default=1000)
    parser.add_argument("--keep", action="store_true", help="keep the store (printed) for a later look")
    parser.add_argument("--broken", action="store_true", help="add a corrupt file (built with on_error: skip)")
    args = parser.parse_args()
    started = time.perf_counter()
    tree = make_tree(args.files, args.per_folder, args.broken)
    print(f"tree: {args.files} files in {tree} ({time.perf_counter() - started:.0f} s to make or find)", flush=True)
    work = Path(tempfile.mkdtemp(prefix="skyshelf-many-"))
    try:
        pipeline = work / "pipeline.yml"
        pipeline.write_text(f"sources:\n  - path: {tree}\n    into: ''\noutput:\n  store: {work / 'store'}\n"
                            + ("on_error: skip\n" if args.broken else ""))
        full = run(pipeline)
        print(f"full build: {full['seconds']:.1f} s ({1000 * full['seconds'] / args.files:.2f} ms a file; CPU {full['cpu_seconds']:.0f} s; "
              f"planning {full['plan_seconds']:.1f} s, publishing after the last item {full['publish_seconds']:.1f} s), "
              f"resident memory: {full['rss_base_mb']:.0f} MB after imports, peak {full['rss_peak_convert_mb']:.0f} MB converting, "
              f"peak {full['rss_peak_publish_mb']:.0f} MB publishing (index, manifest, check), {full['rss_end_mb']:.0f} MB at the end; "
              f"worker processes' own memory (USS) at most {full['workers_peak_mb']:.0f} MB together", flush=True)
        again = run(pipeline)
        assert again["unchanged"] and again["reused"] == args.files + args.broken, again
        print(f"no-change rebuild: {again['seconds']:.2f} s = {100 * again['seconds'] / full['seconds']:.2f}% of the full build "
              f"(CPU {again['cpu_seconds']:.1f} s = {100 * again['cpu_seconds'] / full['cpu_seconds']:.2f}%; target: at most 2% at a "
              f"million files), peak {again['rss_peak_mb']:.0f} MB")
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
