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
from collections.abc import Iterable
from dataclasses import dataclass
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


def known(tif: Any, companions: set[Path]) -> set[Path]:
    """The files beside it its series will read or look for, known before it is read (so a failure
    one of them causes is tried again once it changes): an OME-TIFF's ``companions``, an NDTiff
    acquisition's index and the files it lists, an MMStack's folder."""
    own, folder = tif.filehandle.name, Path(tif.filehandle.dirname)
    found = set(companions)
    if tif.is_ndtiff:
        found |= {folder / "NDTiff.index", *(folder / name for name in _ndtiff_files(folder / "NDTiff.index") if name != own)}
    if tif.is_mmstack:
        found.add(folder)
    return found


def spans(tif: Any, series: Any, stacked: bool = False) -> set[Path]:
    """The files other than its own that its series was read from or looked for (for
    :attr:`.Reader.referred`); raises :class:`PartOfSeries` when another of them publishes it:
    the first by name of those beside it that read as the whole series (not "BinaryOnly" ones,
    which read as their own pixels; for OME, only those whose OME-XML names this file; not those
    of other folders, which resolve the names from there). ``stacked``: one frame of a stack the
    pipeline asked for, published as read."""
    own, here = tif.filehandle.name, tif.filehandle.dirname
    folder = Path(here)
    holders = {(page.parent.filehandle.dirname, page.parent.filehandle.name): page.parent
               for page in series.pages if page is not None} if getattr(series, "is_multifile", False) or tif.is_ndtiff or tif.is_mmstack else {}
    companions = named(tif)
    found = known(tif, companions) | {Path(where, name) for where, name in holders if (where, name) != (here, own)}
    if stacked:
        return found
    if (tif.is_ndtiff or tif.is_mmstack) and holders and (here, own) not in holders:
        raise SourceError(f"the {series.kind} series read beside it (its index, its stack's files) does not hold this file's frames: "
                          "a file of another acquisition copied into this one's folder?")

    def publishes(name: str, parent: Any) -> bool:  # (asked in name order, up to the first: its own file first, once)
        return name == own or (_Seen.of(parent).publishes(own) if tif.is_ome else not _binary_only(parent))

    beside = sorted(((name, parent) for (where, name), parent in holders.items() if where == here), key=lambda pair: pair[0])
    first = next((name for name, parent in beside if publishes(name, parent)), own)
    if first != own:  # (its record names that file, and those before it: n files record ~n, not n^2)
        raise _part(series.kind, len(holders), folder, first, _beside(tif, folder) if tif.is_ome else ())
    master = _binary_only_master(tif, folder, own)
    if master is not None:
        raise PartOfSeries(f"its pixels are part of the OME-TIFF series published from {master.name}", {master})
    return found


def part_early(tif: Any, stacked: bool = False) -> None:
    """Raise :class:`PartOfSeries` for a part of a multi-file OME-TIFF or NDTiff series known from
    names alone, as :func:`spans` would after reading the series: the first by name of the
    series' files beside it that reads as the whole series is another file. Undecided cases (its
    own file first, a "BinaryOnly" file itself, an index not listing it, its first file not
    readable, MMStack) return, and the series read decides them. (Names, not paths: n paths
    made and compared by each of n parts took 400 parts 2.2 s, their names 0.3 s.)"""
    if stacked:
        return
    own, folder = tif.filehandle.name, Path(tif.filehandle.dirname)
    if tif.is_ome and not _binary_only(tif):
        names = _beside(tif, folder)
        for name in names:
            if name >= own or os.path.islink(folder / name):  # (a link: tifffile reads it from its target's folder, spans() decides)
                return
            seen = _seen(folder / name)
            if seen is not None and seen.publishes(own):  # (its pages read into the series, which it reads whole too)
                raise _part("ome", len(ome_files(tif.ome_metadata) | {own}), folder, name, names)
    elif tif.is_ndtiff:
        listed = _ndtiff_files(folder / "NDTiff.index")
        first = min(listed, default=own)
        if own in listed and first != own and not os.path.islink(folder / first) and (seen := _seen(folder / first)) is not None and seen.readable:
            raise _part("ndtiff", len(listed), folder, first, ())


def _beside(tif: Any, folder: Path) -> list[str]:
    """The names of the files beside it its OME-XML names (not those of other folders), sorted."""
    own, found = tif.filehandle.name, set()
    for name in ome_files(tif.ome_metadata):
        if "/" in name or os.sep in name:  # (tifffile joins the name to its folder: "./x.tif" is beside it, "sub/x.tif" not)
            path = folder / name
            if path.parent != folder:
                continue
            name = path.name
        if name != own:
            found.add(name)
    return sorted(found)


def _part(kind: str, count: int, folder: Path, first: str, beside: Iterable[str]) -> PartOfSeries:
    """A part of the series ``first`` publishes: it refers to that file and to the files named
    ``beside`` it that sort before it (missing, unreadable, or reading as another series: one
    arriving or changing may publish the series instead, named in this part's report)."""
    return PartOfSeries(f"part of the {kind} series of {count} files published from {first}",
                        {folder / first, *(folder / name for name in beside if name < first)})


def _stat_key(path: Path) -> tuple[str, int, int, int] | None:
    """What a cached answer about a file is keyed by (a file that changed is asked again); None
    for one not there or not a regular file (a FIFO is never opened)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns) if stat.S_ISREG(st.st_mode) else None


@dataclass(frozen=True)
class _Seen:
    """What a file of a series is, as the other files of it ask (each part about the same few)."""

    readable: bool  # a TIFF with an image tifffile reads
    binary_only: bool
    names: frozenset[str]  # the files its OME-XML names (none: not an OME-TIFF)

    def publishes(self, own: str) -> bool:
        """Whether it reads as the whole OME series file ``own`` belongs to (and so publishes it)."""
        return self.readable and not self.binary_only and own in self.names

    @classmethod
    def of(cls, tif: Any) -> _Seen:
        """What an open TiffFile is."""
        if not len(tif.pages):
            return cls(False, False, frozenset())
        xml = tif.ome_metadata if tif.is_ome else None
        return cls(True, _BINARY_ONLY.search(xml or "") is not None, frozenset(ome_files(xml)))


def _seen(path: Path) -> _Seen | None:
    """:class:`_Seen` of a file, kept per process by its stat; None when not there (or not a
    regular file: never opened)."""
    key = _stat_key(path)
    return _seen_cached(key) if key is not None else None


@lru_cache(maxsize=64)
def _seen_cached(key: tuple[str, int, int, int]) -> _Seen:
    import tifffile

    try:
        with tifffile.TiffFile(key[0]) as other:
            return _Seen.of(other)
    except Exception:  # noqa: BLE001 (whatever tifffile raises: a file of 6 bytes, half-copied, raised struct.error)
        return _Seen(False, False, frozenset())


#: What a file of a series must be named to be asked whether tifffile can read it.
_TIFF = (".tif", ".tiff", ".tf8", ".btf")


def first_series(tif: Any, spanned: set[Path]) -> Any:
    """The file's first image series, or a :class:`SourceError` saying why not, naming the files
    of the series (:func:`known`) that tifffile cannot read (it raised ``KeyError: 0`` for one)."""
    try:
        return tif.series[0]
    except (OSError, UnsupportedError):
        raise  # (naming its file: one missing is tried again once there, see publisher.build.lasting)
    except Exception as exc:
        own = tif.filehandle.name
        if not len(tif.pages):
            raise SourceError(f"{own}: not a readable TIFF file: no image in it") from exc
        bad = sorted(p.name for p in spanned if p.name.lower().endswith(_TIFF) and (seen := _seen(p)) is not None and not seen.readable)
        why = f": {', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}, of its series, holds no image tifffile reads" if bad else ""
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
    except Exception:  # noqa: BLE001 (then the series read says what is wrong)
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
    if master.name == own or not master.name.lower().endswith(_TIFF):
        return None  # (a .companion.ome: XML, which no TIFF reader here publishes)
    seen = _seen(master)  # (gone or unreadable: publish this one's own pixels)
    return master if seen is not None and seen.readable and own in seen.names else None
