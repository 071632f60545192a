"""TIFF (single and multi-page, BigTIFF, GeoTIFF) → one array, read page by page; a large frame
(a mosaic, a whole-slide or satellite image) tile by tile or strip by strip."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SourceError, UnsupportedError
from ..jsonable import to_json
from ..nodes import ArrayNode, Node
from . import tiff_codecs, tiff_generic, tiff_ome_claims, tiff_parts, tiff_series
from .base import Reader, register_reader
from .ome_units import physical_sizes

_AXES = {"Y": "y", "X": "x", "Z": "z", "S": "sample", "C": "channel", "T": "time", "I": "frame", "Q": "dim", "E": "lambda", "R": "tile"}
#: Tags larger than this (lookup tables, strip offsets, ...) are not copied into metadata.
_MAX_TAG = 1024


def _dims(axes: str) -> list[str]:
    names: list[str] = []
    for i, axis in enumerate(axes):
        name = _AXES.get(axis, f"dim_{i}")
        names.append(name if name not in names else f"{name}_{i}")
    return names


def _tags(page: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tag in page.tags.values():
        if tag.code in (273, 279, 324, 325):  # strip/tile offsets and byte counts
            continue
        try:
            value = to_json(tag.value.value if hasattr(tag.value, "value") and not isinstance(tag.value, (int, str)) else tag.value)
        except Exception:
            continue
        if len(str(value)) <= _MAX_TAG:
            out[tag.name] = value
    return out


class _Logged(logging.Handler):
    """What tifffile logs (it logs, not raises, a page chain that ends past the file's end, or
    series metadata it cannot follow, and reads on with what it found) while a thread opens a
    file: one handler for the process, each thread's records its own (the build's threads open
    files at once; a handler a file cost its creation and registration, for each small TIFF)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        records = getattr(self.local, "records", None)
        if records is not None:
            records.append((record.levelno, record.getMessage()))


_LOGGED = _Logged()
logging.getLogger("tifffile").addHandler(_LOGGED)


def _listen() -> list[tuple[int, str]]:
    """What tifffile logs on this thread from now until :func:`_unlisten`: (level, message)."""
    records: list[tuple[int, str]] = []
    _LOGGED.local.records = records
    return records


def _unlisten() -> None:
    _LOGGED.local.records = None


#: tifffile's words for a page (or value) past the file's end: ``invalid page offset 102752``.
_OFFSET = re.compile(r"invalid (?:page|value) offset (\d+)")
#: tifffile's errors for a page chain that is not the one the file declares: ImageJ's count of
#: pages more than the bytes hold ("corrupted file"), a chain that loops back to a page already
#: read (it stops there), a tifffile "shaped" description whose shape the pages found do not
#: fill (an acquisition stopped after 6 of 10 pages, the last page's next-IFD offset still 0).
_DAMAGED = ("corrupted file", "invalid circular reference", "shaped series failed to reshape")


def _cut_short(said: list[tuple[int, str]], size: int) -> str | None:
    """The first of tifffile's messages that says the file ends before its own structure does (a
    half-copied file, an acquisition that died, a page chain that loops): its pages, or its
    metadata's count of them, are more than the bytes hold (as an error: ImageJ's counts below 1
    are a warning, metadata tifffile reads on without). tifffile logs these and reads on with the
    pages it found: published, it was an array of the frames before the cut, or one frame."""
    for level, message in sorted(said, key=lambda m: "page offset" not in m[1]):  # (a page past the end says it best)
        found = _OFFSET.search(message)
        if (found and int(found.group(1)) >= size) or (level >= logging.ERROR and any(d in message for d in _DAMAGED)):
            return message.split("> ", 1)[-1]
    return None


def _page_dims(series: Any, shape: tuple[int, ...], npages: int) -> int:
    """How many leading dimensions of the series index its pages (a stack: 1; a hyperstack's
    T, Z, C...: their product is the page count), each page holding the rest (length-1 axes
    aside: tifffile gives a stack of shape (N, Y, X, 1) pages of (Y, X)); 0 when the series is
    not one page per index (one page, or pages that are pieces of one image). A hyperstack taken
    for one image was read whole (32 MiB pages: a 1 GiB series grew a build by ~1 GB)."""
    if npages < 2:
        return 0
    page = [n for n in series.keyframe.shape if n != 1]
    for lead in range(1, len(shape)):
        if math.prod(shape[:lead]) == npages and [n for n in shape[lead:] if n != 1] == page:
            return lead
    return 0


@register_reader
class TiffReader(Reader):
    name = "tiff"
    alone = True  # (a multi-file series says so: ``others``)
    requires = ("tifffile",)
    extensions = (".tif", ".tiff", ".btf", ".tf8")
    magic = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
    stackable = True

    @contextlib.contextmanager
    def open(self, path: Path, key: str, options: Any) -> Iterator[Node]:
        import tifffile

        # an open file, not its path: tifffile resolves a path with os.path.realpath (an lstat per
        # folder above it), 25 of the ~170 us a small TIFF costs to open and read here. A symlink
        # keeps its path: tifffile finds a multi-file series' other files (OME-TIFF, Micro-Manager)
        # beside the file it resolved, which for a handle would be the link's folder
        handle = None
        said = _listen()  # (until its series is found: tifffile reads the page chain then)
        try:
            handle = None if os.path.islink(path) else open(path, "rb")  # noqa: SIM115 (closed below, with the TiffFile)
            tif = tifffile.TiffFile(handle if handle is not None else path)
        except Exception as exc:
            _unlisten()
            if handle is not None:
                handle.close()
            raise SourceError(f"{path}: not a readable TIFF file: {exc}") from exc
        # the build's writer threads read blocks of one image at once: tifffile seeks and reads its one
        # file handle under this lock (without it, by default, two pages read at once were each
        # other's bytes: "failed to read 8388608 bytes, got 3668", or silently wrong values)
        tif.filehandle.set_lock(True)
        whole = threading.Lock()  # one tifffile read at a time (the image read whole once, not by each thread)
        try:
            try:
                tiff_series.part_early(tif, self.stacked)  # (before its series is read: that opens every file of it)
                companions = tiff_series.named(tif)
                spanned = tiff_series.known(tif, companions)
                self.referred = {*self.referred, *spanned}
                tiff_series.check_named(companions)
                tiff_ome_claims.check(tif, path, companions)  # (before its series is read: tifffile lists each frame declared)
                tiff_generic.install(tif, str(path))  # (pages of mixed shapes: grouped in linear time)
                series = tiff_series.first_series(tif, spanned)
                # files beside it read, or looked for (an OME-TIFF's companions: missing, their planes are
                # zeros), or its index (NDTiff), or its stack's other files (Micro-Manager): not alone
                self.others = self.others or tif.is_ome or tif.is_ndtiff or tif.is_mmstack or any(
                    getattr(x, "is_multifile", False) or getattr(x, "kind", "") in ("ndtiff", "mmstack") for x in tif.series)
                # the files its series spans, there or not: a change to one converts it again
                self.referred = {*self.referred, *tiff_series.spans(tif, series, self.stacked)}
            except tiff_series.PartOfSeries as part:  # (skipped: another file publishes the series, the one it records)
                self.others = True
                self.referred = set(part.referred)
                raise
            finally:
                _unlisten()
            if cut := _cut_short(said, tif.filehandle.size):
                raise SourceError(f"{path}: cut short or damaged ({tif.filehandle.size} bytes): tifffile: {cut}")
            if why := tiff_codecs.undecodable(series.keyframe):  # (before a byte of it is read: not damage, and each read would fail)
                raise UnsupportedError(f"{path}: {why}")
            compression = int(getattr(series.keyframe, "compression", 1))
            shape, dtype, axes = tuple(series.shape), np.dtype(series.dtype), series.axes
            metadata = _tags(series.keyframe)  # (its first page may be in a file not there: None)
            if tif.geotiff_metadata:
                metadata["geotiff"] = to_json(tif.geotiff_metadata)
            if tif.imagej_metadata:
                metadata["imagej"] = to_json(tif.imagej_metadata)
            nodata = metadata.get("GDAL_NODATA")
            if isinstance(nodata, str):
                try:
                    value = float(nodata.strip("\x00 "))
                    metadata["nodata"] = value if math.isfinite(value) else str(value)  # "nan", "inf": as STAC's raster extension writes them
                except ValueError:
                    pass
            npages = len(series.pages)
            lead = _page_dims(series, shape, npages)
            paged = lead > 0
            cache: dict[str, np.ndarray] = {}
            native = dtype.newbyteorder("=") if dtype.byteorder == ">" else dtype
            frame = math.prod(shape[lead:]) * dtype.itemsize
            parts = tiff_parts.in_parts(tif, series, shape, dtype, path, lead) if frame > tiff_parts.LAZY_FRAME_BYTES else None
            warning = None
            if frame > tiff_parts.LAZY_FRAME_BYTES and not isinstance(parts, tiff_parts.Parts):  # decoded whole, a frame at a time
                why = parts if isinstance(parts, str) else f"its tiles or strips are over {tiff_parts.PART_BYTES / 2**20:g} MiB each"
                if frame > tiff_parts.MAX_WHOLE_FRAME:  # (tiles of 400 MB in a 49 KB file took 2 GB; no bound at all before)
                    raise UnsupportedError(f"{path.name}: frames of {frame / 2**30:.1f} GiB would be decoded whole ({why}): more than "
                                           f"{tiff_parts.MAX_WHOLE_FRAME // 2**30} GiB in memory; store it with tiles of up to 1024 x 1024")
                warning = f"{path.name}: read whole ({frame / 2**20:.0f} MiB a frame), as it cannot be read in parts: {why}"
                parts = None

            def read(sel: tuple[slice, ...]) -> np.ndarray:
                try:
                    return read_tiff(sel)
                except (ValueError, RuntimeError) as exc:  # tifffile's short reads, imagecodecs' errors (RuntimeErrors)
                    if why := tiff_codecs.partly(compression, exc):
                        raise UnsupportedError(f"{path}: {why}") from exc
                    raise SourceError(f"{path}: cannot read its image data (damaged or cut short?): {type(exc).__name__}: {exc}") from exc

            def read_tiff(sel: tuple[slice, ...]) -> np.ndarray:
                if parts is not None:  # only the rows, tiles or strips this block touches
                    return np.asarray(parts.read(sel), dtype=native, order="C")
                if paged:  # only the pages this block needs
                    ranges = [range(*s.indices(n)) for s, n in zip(sel[:lead], shape)]
                    if not all(ranges):
                        return np.empty((*map(len, ranges), *shape[lead:]), dtype=native)[(*(slice(None),) * lead, *sel[lead:])]
                    pages = [int(i) for i in np.ravel_multi_index(np.ix_(*ranges), shape[:lead]).ravel()]  # C order, as stored
                    with whole:  # TiffFile is not thread-safe: its pages' IFDs load lazily, unlocked
                        data = tif.asarray(series=0, key=pages).reshape(*map(len, ranges), *shape[lead:])
                    return np.asarray(data[(*(slice(None),) * lead, *sel[lead:])], dtype=native, order="C")
                with whole:
                    if "all" not in cache:
                        cache["all"] = series.asarray().reshape(shape)
                return np.asarray(cache["all"][sel], dtype=native, order="C")

            if tif.is_ome and (physical := physical_sizes(tif.ome_metadata, axes, _dims(axes))):
                metadata["physical_sizes"] = physical
            node = ArrayNode(key=key, metadata=metadata, dtype=native, shape=shape, read=read, dims=_dims(axes))
            if len(tif.series) > 1:
                node.notes["other_series"] = [{"shape": list(s.shape), "dtype": str(s.dtype), "axes": s.axes} for s in tif.series[1:]]
                node.warn(f"{path.name}: only the first of {len(tif.series)} image series is published")
            if warning:
                node.warn(warning)
            if missing := sorted(c.name for c in companions if not c.exists()):  # (tifffile logs it only)
                node.warn(f"{path.name}: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}, which its OME-XML names, "
                          f"{'is' if len(missing) == 1 else 'are'} not there: {'its' if len(missing) == 1 else 'their'} planes read as zeros")
            if parts is not None:  # its tiles or strips (in bands of a page): the writer's chunks follow them
                node.source_chunks = parts.chunks
            elif paged:
                node.source_chunks = (*(1,) * lead, *shape[lead:])
            yield node
        finally:
            tif.close()
            if handle is not None:
                handle.close()
