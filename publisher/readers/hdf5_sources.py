"""HDF5 datasets whose values live in other files: virtual datasets (views of datasets in other
files, or of this one) and external raw storage. What such a file publishes depends on the files
beside it, so a build does not take it, moved, for its converted self (publisher/build/moved.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def in_other_files(ds: Any) -> bool:
    """Whether the dataset's raw data is in other files (external storage) or it is a view of
    datasets in other files (virtual)."""
    return bool(ds.external) or (ds.is_virtual and any(vs.file_name != "." for vs in ds.virtual_sources()))


def other_files(ds: Any, file_dir: Path) -> list[Path]:
    """The files the dataset's values come from besides its own (:func:`in_other_files`)."""
    found = [file_dir / (name.decode() if isinstance(name, bytes) else name) for name, _, _ in ds.external or ()]
    if ds.is_virtual:
        found += [file_dir / vs.file_name for vs in ds.virtual_sources() if vs.file_name != "."]
    return found


def missing_virtual_sources(ds: Any, file_dir: Path) -> list[dict[str, str]]:
    """A virtual dataset's sources that are not there (a file beside it, or a dataset of its own)."""
    missing = []
    for vs in ds.virtual_sources():
        if vs.file_name == ".":  # this file: the source dataset may itself be a dangling link
            try:
                ds.file[vs.dset_name]
            except (KeyError, OSError):
                missing.append({"file": ds.file.filename, "dataset": vs.dset_name})
            continue
        candidate = Path(vs.file_name)
        if not candidate.is_absolute():
            candidate = file_dir / candidate
        if not candidate.exists():
            missing.append({"file": vs.file_name, "dataset": vs.dset_name})
    return missing
