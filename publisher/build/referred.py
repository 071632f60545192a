"""The files a source refers to (HDF5 external storage, external links, virtual datasets' sources)
under the rule its symbolic links follow (``symlinks_outside``), checked once the file is open and
before a value of them is read: external storage naming ``/proc/self/environ`` published the
build's environment, and ``/etc/passwd`` was published with no word, whatever the rule."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..config.models import Pipeline
from ..errors import UnsupportedError
from ..source_walk import within

#: Never data: whatever the rule, a file there is not read.
SYSTEM = ("/proc/", "/sys/", "/dev/")


def referred_outside(pipeline: Pipeline, folder: str, referred: Iterable[Path], source_file: str) -> list[str]:
    """The warnings for the referred files outside the source ``folder`` (``symlinks_outside:
    warn``); :class:`UnsupportedError` (the file skipped, nothing of it read) for one outside it
    under ``refuse``, and for a /proc, /sys or /dev file under any rule."""
    warnings = []
    for path in sorted(referred, key=str):
        real = os.path.realpath(path)
        shown = pipeline.unrooted(real)
        if real.startswith(SYSTEM):  # (/proc files look regular, of size 0: FIFOs and devices elsewhere the readers refuse each)
            raise UnsupportedError(f"{source_file} refers to {shown}, which is no file of data (a /proc, /sys or /dev file): "
                                   "refused, not read")
        if within(real, folder) or pipeline.symlinks_outside == "allow":
            continue
        if pipeline.symlinks_outside == "refuse":
            raise UnsupportedError(f"{source_file} refers to {shown}, outside the source folder: refused, not read "
                                   "(symlinks_outside: refuse)")
        warnings.append(f"{source_file} refers to {shown}, outside the source folder: read (symlinks_outside: warn; "
                        "refuse leaves such files out)")
    return warnings
