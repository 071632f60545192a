"""Multi-file TIFF series (Micro-Manager's NDTiff and MMStack, OME-TIFF): one series, published once.

tifffile reads a multi-file series whole from any of its files: an NDTiff acquisition of three
files opened at any of them is the same 60 frames (from its ``NDTiff.index``). Converted file by
file, each published the whole series again (three copies). The series is published from the
first by name of its files beside the one read that read as the whole series (not a "BinaryOnly"
OME-TIFF, which reads as its own pixels); the others are skipped as parts of it. The publishing
file records the files the series spans (and NDTiff.index, an MMStack's folder), so one arriving,
changing or going converts it again; each part records the publishing file alone (n files record
n, not n^2). Files a ``stack:`` rule stacks are read each as it reads alone.

A part is known as one before its series is read (:func:`part_early`), from the names its OME-XML
or the acquisition's NDTiff.index gives: reading the series opens every file of it, so n parts
each reading it opened n^2 files (an OME-TIFF of 100 planes, one a file: 2.0 s, of 1,000 ~200 s).
"""

from __future__ import annotations

import html
import os
import re
import stat
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import SourceError, UnsupportedError
from ..source_walk import not_regular

#: The files of a multi-file OME-TIFF, as its OME-XML names them (``<UUID FileName="...">``).
OME_FILES = re.compile(r"""FileName=(?:"([^"]+)"|'([^']+)')""")
#: An OME-TIFF holding only pixels: its metadata (and the series) are in this other file.
_BINARY_ONLY = re.compile(r"""<(?:\w+:)?BinaryOnly\b[^>]*\bMetadataFile=(?:"([^"]+)"|'([^']+)')""")


def ome_files(xml: str | None) -> set[str]:
    """The file names an OME-XML's ``<UUID FileName=...>`` elements give (either quote)."""
    return {html.unescape(a or b) for a, b in OME_FILES.findall(xml or "")}


class PartOfSeries(UnsupportedError):
    """A file whose pixels another file of its series publishes (skipped, with where they are)."""

    def __init__(self, message: str, referred: set[Path]) -> None:
        super().__init__(message)
        self.referred = referred  # the series' other files: one changing may make this file the one to publish it


def named(tif: Any) -> set[Path]:
    """The companions an OME-TIFF's OME-XML names, there or not (missing ones read as zeros), as
    tifffile looks for them: beside the file it opened (a symlink's target, given its path). Known
    before its series is read, which a companion half-copied fails: retried once that one changes."""
    if not tif.is_ome:
        return set()
    own, folder = tif.filehandle.name, Path(tif.filehandle.dirname)
    return {folder / name for name in ome_files(tif.ome_metadata) if name != own}


def check_named(companions: set[Path]) -> None:
    """A companion that is a FIFO, socket or device is not read (tifffile opening a FIFO would
    wait for a writer forever): the file fails, naming it (and is tried again once it changes)."""
    for path in sorted(companions):
        if (kind := not_regular(path)) is not None:
            raise SourceError(f"{path.name}, which its OME-XML names, is {kind}: not read")


def spans(tif: Any, series: Any, stacked: bool = False) -> set[Path]:
    """The files other than its own that its series was read from or looked for (for
    :attr:`.Reader.referred`); raises :class:`PartOfSeries` when another of them publishes it:
    the first by name of those beside it that read as the whole series (not "BinaryOnly" ones,
    which read as their own pixels; not those of other folders, which resolve the names from
    there). ``stacked``: one frame of a stack the pipeline asked for, published as read."""
    own, here = tif.filehandle.name, tif.filehandle.dirname
    folder = Path(here)
    holders = {(page.parent.filehandle.dirname, page.parent.filehandle.name): page.parent
               for page in series.pages if page is not None} if getattr(series, "is_multifile", False) or tif.is_ndtiff or tif.is_mmstack else {}
    found = named(tif) | {Path(where, name) for where, name in holders if (where, name) != (here, own)}
    if tif.is_ndtiff:  # the frames' places in every file, appended to as an acquisition goes on (one file or more)
        found.add(folder / "NDTiff.index")
    if tif.is_mmstack:
        found.add(folder)  # the stack's files are those named <prefix>_MMStack*.tif here: one more changes the folder
    if stacked:
        return found
    if (tif.is_ndtiff or tif.is_mmstack) and holders and (here, own) not in holders:
        raise SourceError(f"the {series.kind} series read beside it (its index, its stack's files) does not hold this file's frames: "
                          "a file of another acquisition copied into this one's folder?")
    beside = sorted(name for (where, name), parent in holders.items() if where == here and not _binary_only(parent))
    if beside and beside[0] != own:  # (its record names that file alone: a series of n files records n files, not n^2)
        raise PartOfSeries(f"part of the {series.kind} series of {len(holders)} files published from {beside[0]}", {folder / beside[0]})
    master = _binary_only_master(tif, folder, own)
    if master is not None:
        raise PartOfSeries(f"its pixels are part of the OME-TIFF series published from {master.name}", {master})
    return found


def part_early(tif: Any, companions: set[Path], stacked: bool = False) -> None:
    """Raise :class:`PartOfSeries` for a part of a multi-file OME-TIFF or NDTiff series known from
    names alone, as :func:`spans` would after reading the series: the first by name of the
    series' files beside it that reads as the whole series is another file. Undecided cases (its
    own file first, a "BinaryOnly" file itself, an index not listing it, MMStack) return, and
    :func:`spans` decides them from the series read."""
    if stacked:
        return
    own, folder = tif.filehandle.name, Path(tif.filehandle.dirname)
    if tif.is_ome and not _binary_only(tif):
        names = sorted(p.name for p in companions if p.parent == folder)
        first = next((name for name in names if name < own and _reads_whole(folder / name)), None)
        if first is not None:  # (its pages read from that file: a holder, as spans() would find it)
            raise PartOfSeries(f"part of the ome series of {len(ome_files(tif.ome_metadata) | {own})} files published from {first}",
                               {folder / first})
    elif tif.is_ndtiff:
        listed = _ndtiff_files(folder / "NDTiff.index")
        if own in listed and (first := min(listed)) != own:
            raise PartOfSeries(f"part of the ndtiff series of {len(listed)} files published from {first}", {folder / first})


def _stat_key(path: Path) -> tuple[str, int, int, int] | None:
    """What a cached answer about a file is keyed by (a file that changed is asked again); None
    for one not there or not a regular file (a FIFO is never opened)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns) if stat.S_ISREG(st.st_mode) else None


def _reads_whole(path: Path) -> bool:
    """Whether the file beside a part would be read into its OME series and publish it: a TIFF
    (a holder of its pages) that is not "BinaryOnly"."""
    return _kind(path) == "whole"


def _kind(path: Path) -> str | None:
    """"whole", "binary-only" or "unreadable" (no image tifffile can read): asked by each part
    of a series about the same few files, so kept per process, by their stat; None when not there
    (or not a regular file: never opened)."""
    key = _stat_key(path)
    return _kind_cached(key) if key is not None else None


@lru_cache(maxsize=64)
def _kind_cached(key: tuple[str, int, int, int]) -> str:
    import tifffile

    try:
        with tifffile.TiffFile(key[0]) as other:
            if not len(other.pages):
                return "unreadable"
            return "binary-only" if _binary_only(other) else "whole"
    except (OSError, ValueError, tifffile.TiffFileError):
        return "unreadable"


def first_series(tif: Any, companions: set[Path]) -> Any:
    """The file's first image series, or a :class:`SourceError` saying why not, naming the files
    its OME-XML names that tifffile cannot read (it raised ``KeyError: 0`` for one)."""
    try:
        return tif.series[0]
    except Exception as exc:
        own = tif.filehandle.name
        if not len(tif.pages):
            raise SourceError(f"{own}: not a readable TIFF file: no image in it") from exc
        bad = sorted(p.name for p in companions if _kind(p) == "unreadable")
        why = f": {', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}, which its OME-XML names, holds no image tifffile reads" if bad else ""
        raise SourceError(f"{own}: its image series could not be read ({type(exc).__name__}: {exc}){why}") from exc


def _ndtiff_files(index: Path) -> frozenset[str]:
    """The files an acquisition's NDTiff.index lists frames in (empty when it is not readable):
    parsed once per process while it is unchanged, not once per file of the acquisition."""
    key = _stat_key(index)
    return _ndtiff_files_cached(key) if key is not None else frozenset()


@lru_cache(maxsize=8)
def _ndtiff_files_cached(key: tuple[str, int, int, int]) -> frozenset[str]:
    from tifffile import read_ndtiff_index

    try:
        return frozenset(entry[1] for entry in read_ndtiff_index(key[0]))
    except (OSError, ValueError, KeyError, IndexError):  # (then the series read says what is wrong)
        return frozenset()


def _binary_only(tif: Any) -> bool:
    """Whether an OME-TIFF holds only pixels, its metadata (and the series) in another file."""
    return bool(tif.is_ome and _BINARY_ONLY.search(tif.ome_metadata or ""))


def _binary_only_master(tif: Any, folder: Path, own: str) -> Path | None:
    """The OME-TIFF beside a "BinaryOnly" file that holds its metadata and names it, reading its
    pixels as part of its series; None when there is none (then this file is published alone)."""
    if not tif.is_ome:
        return None
    found = _BINARY_ONLY.search(tif.ome_metadata or "")
    if found is None:
        return None
    master = folder / html.unescape(found.group(1) or found.group(2))
    if master.name == own or not master.name.lower().endswith((".tif", ".tiff", ".tf8", ".btf")):
        return None  # (a .companion.ome: XML, which no TIFF reader here publishes)
    import tifffile

    try:
        with tifffile.TiffFile(master) as other:
            names = ome_files(other.ome_metadata)
    except (OSError, ValueError, tifffile.TiffFileError):  # gone or unreadable: publish this one's own pixels
        return None
    return master if own in names else None
