"""Packaging the three Lambda functions for a deploy with nothing changed.

A deploy packages every function; the zips are deterministic, so an unchanged one is not uploaded
again, but each was compressed again (~200 MB of files). Now a zip is kept by a hash of its
inputs and reused (``publisher/deploy/built.py``). Measured in one run, interleaved: packaging
the three functions with the kept zips (``reuse=True``, what a deploy does) against building
them anew (``reuse=False``, the baseline: every deploy before 2026-12-06). Both give the same
bytes (checked). The third-party part is installed once beforehand (pip) and shared by both.

Usage: python benchmarks/deploy_packages.py [--repeat 3] [--runtime python3.13] [--architecture x86_64]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from publisher.deploy.package import REQUIREMENTS, build_package


def _package_all(runtime: str, architecture: str, reuse: bool) -> tuple[float, list[str]]:
    with tempfile.TemporaryDirectory(prefix="skyshelf-bench-packages-") as out:
        start = time.perf_counter()
        packages = [build_package(f, runtime, architecture, Path(out), reuse=reuse) for f in sorted(REQUIREMENTS)]
        return time.perf_counter() - start, [p.sha256 for p in packages]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--runtime", default="python3.13")
    parser.add_argument("--architecture", default="x86_64")
    args = parser.parse_args()
    _package_all(args.runtime, args.architecture, reuse=True)  # third-party parts installed, zips kept
    ratios = []
    for repeat in range(args.repeat):
        anew, built = _package_all(args.runtime, args.architecture, reuse=False)
        kept, reused = _package_all(args.runtime, args.architecture, reuse=True)
        assert built == reused, "a reused zip differs from one built anew"
        ratios.append(anew / kept)
        print(f"repeat {repeat + 1}: built anew {anew:.2f} s, reused {kept:.2f} s, anew / reused {anew / kept:.1f}x")
    print(f"three packages, {args.runtime} {args.architecture}: built anew / reused, median of {args.repeat}: "
          f"{statistics.median(ratios):.1f}x")


if __name__ == "__main__":
    main()
