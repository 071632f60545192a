"""HDF5 datasets whose values live in other files: virtual datasets (views of datasets in other
files, or of this one) and external raw storage. What such a file publishes depends on the files
beside it, so a build does not take it, moved, for its converted self (publisher/build/moved.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..source_walk import not_regular


def in_other_files(ds: Any) -> bool:
    """Whether the dataset's raw data is in other files (external storage) or it is a view of
    datasets in other files (virtual)."""
    return bool(ds.external) or (ds.is_virtual and any(vs.file_name != "." for vs in ds.virtual_sources()))


def folder_of(obj: Any) -> Path:
    """The folder of the file an object is in (a linked file's, for an object reached through an
    external link): where HDF5 looks for the files that file names by relative paths."""
    return Path(obj.file.filename).parent


def link_target(group: Any, filename: str) -> tuple[list[Path], str | None]:
    """Where HDF5 looks for an external link's file: beside the file holding the link (a linked
    file's own links too), an absolute name first as it is (each recorded: one appearing changes
    what is read); and why it is not followed: "missing", or what else than a file it is."""
    declared = Path(filename)
    candidates = [declared, folder_of(group) / declared.name] if declared.is_absolute() else [folder_of(group) / declared]
    there = [c for c in candidates if c.exists()]
    return candidates, (not_regular(there[0]) if there else "missing")


#: Source datasets a virtual dataset's chain is followed through at most (per dataset).
CHAIN_SOURCES = 10_000


def other_files(ds: Any) -> list[Path]:
    """The files the dataset's values come from besides its own (:func:`in_other_files`), as HDF5
    finds them: a virtual dataset's beside its file, external storage's where :func:`_raw_folder`
    says, and through them the files their own values come from: a source that is itself virtual,
    an external link or in external storage (a master file over per-detector views over frame
    files: only the views were recorded, and reprocessed frames never reached the release)."""
    found = _external_files(ds)
    if ds.is_virtual:
        file_dir = folder_of(ds)
        sources = [(file_dir / vs.file_name, vs.dset_name) for vs in ds.virtual_sources() if vs.file_name != "."]
        found += [path for path, _ in sources]
        found += _behind(sources)
    return list(dict.fromkeys(found))


def _behind(sources: list[tuple[Path, str]]) -> list[Path]:
    """The files the values of ``sources`` (file, dataset) come from, followed through each."""
    import h5py

    found: list[Path] = []
    seen: set[tuple[Path, str]] = set()
    queue = list(dict.fromkeys(sources))
    while queue and len(seen) < CHAIN_SOURCES:
        path, name = queue.pop()
        if (path, name) in seen or not_regular(path):
            continue
        seen.add((path, name))
        try:
            with h5py.File(path, "r", locking=False) as f:
                link = f.get(name, getlink=True)
                if isinstance(link, h5py.ExternalLink):
                    targets, _ = link_target(f, link.filename)
                    found += targets
                    queue += [(target, link.path) for target in targets]
                    continue
                ds = f.get(name)
                if not isinstance(ds, h5py.Dataset):
                    continue
                found += _external_files(ds)
                if ds.is_virtual:
                    here = folder_of(ds)
                    nested = [(here / vs.file_name if vs.file_name != "." else path, vs.dset_name) for vs in ds.virtual_sources()]
                    found += [p for p, _ in nested if p != path]
                    queue += nested
        except (OSError, KeyError, ValueError, RuntimeError):  # (a source HDF5 cannot open: its file is recorded, as read)
            continue
    return found


def _external_files(ds: Any) -> list[Path]:
    """The files of a dataset's external raw storage, where HDF5 looks for them."""
    external = ds.external
    if not external:
        return []
    folder = _raw_folder(ds)
    return [folder / os.fsdecode(name) for name, _, _ in external]


def _raw_folder(ds: Any) -> Path:
    """Where HDF5 looks for a dataset's external raw storage of relative names: its file's folder
    with ``HDF5_EXTFILE_PREFIX=${ORIGIN}`` (:func:`look_beside`, before h5py loads), another prefix
    set so, or else the process's current folder."""
    prefix = os.fsdecode(ds.id.get_access_plist().get_efile_prefix())
    return Path(prefix.replace("${ORIGIN}", str(folder_of(ds)))) if prefix else Path.cwd()  # (HDF5 shows it expanded)


def external_problem(ds: Any) -> str | None:
    """Why a dataset's external raw storage is not read: a file of it is a FIFO or such, or its files
    are named relative to the process's current folder (HDF5 loaded without ``HDF5_EXTFILE_PREFIX``),
    which would read whatever files of those names the build was started beside. None when it is
    read as named, or the dataset has none (at once: every dataset of a file is asked)."""
    files = _external_files(ds)
    if not files:
        return None
    odd = [f"{path.name} is {kind}" for path in files if (kind := not_regular(path))]
    if odd:
        return f"external raw storage not read: {', '.join(odd)}"
    relative = [os.fsdecode(name) for name, _, _ in ds.external or () if not os.path.isabs(os.fsdecode(name))]
    if not relative or ds.id.get_access_plist().get_efile_prefix() or all(_same(name, folder_of(ds) / name) for name in relative):
        short = _short_files(ds, files)  # (looked for beside its file, or the current folder is its file's)
        return f"external raw storage not read: {', '.join(short)}" if short else None
    return (f"external raw storage in {', '.join(relative)} would be looked for in the build's current folder, not beside "
            "its file: HDF5 was loaded without HDF5_EXTFILE_PREFIX (set it to '${ORIGIN}' before importing h5py, as "
            "`publish build` does, or build from the file's folder)")


def _short_files(ds: Any, files: list[Path]) -> list[str]:
    """The files of a dataset's external raw storage that are missing, or shorter than the bytes
    of the dataset they hold (a half-copied run): HDF5 fails on the first but reads the rest of
    the second as zeros, which would publish them as data."""
    import numpy as np

    remaining = int(np.prod(ds.shape, dtype=np.uint64)) * ds.dtype.itemsize  # laid out over the segments in order
    problems = []
    for path, (_, offset, size) in zip(files, ds.external):
        held = min(size, remaining)
        remaining -= held
        if not held:  # (a segment the dataset's bytes do not reach: room to grow, or an empty dataset)
            continue
        try:
            length = os.stat(path).st_size
        except OSError as exc:
            problems.append(f"{path.name} is missing (looked for in {path.parent})" if isinstance(exc, FileNotFoundError)
                            else f"{path.name}: {exc.strerror or exc}")
            continue
        if length < offset + held:
            problems.append(f"{path.name} holds {length} bytes, its storage ends at byte {offset + held} "
                            "(HDF5 would read zeros for the rest)")
    return problems


def _same(here: str, beside: Path) -> bool:
    """Whether ``here`` (relative to the current folder) is the file ``beside``."""
    try:
        return os.path.samefile(here, beside)
    except OSError:
        return False


def look_beside() -> None:
    """Have HDF5 look for external raw storage beside its file, when it has not loaded yet (it reads
    the variable once): ``publish build``, :func:`publisher.build.build` and a cluster's workers,
    not every importer of publisher (that changed the importer's own reads)."""
    os.environ.setdefault("HDF5_EXTFILE_PREFIX", "${ORIGIN}")


def missing_virtual_sources(ds: Any) -> list[dict[str, str]]:
    """A virtual dataset's sources that are not there (a file beside it, or a dataset of its own),
    or are no HDF5 file (its read failed as "file signature not found", naming neither)."""
    import h5py

    file_dir, missing = folder_of(ds), []
    checked: dict[Path, bool] = {}
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
        if not candidate.exists() or not_regular(candidate):  # (HDF5 opening a FIFO would wait forever)
            missing.append({"file": vs.file_name, "dataset": vs.dset_name})
        elif not checked.setdefault(candidate, bool(h5py.is_hdf5(candidate))):
            missing.append({"file": vs.file_name, "dataset": vs.dset_name, "reason": "not an HDF5 file"})
    return missing

