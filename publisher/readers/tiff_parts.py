"""A large TIFF frame read region by region, so a build's memory stays bounded whatever the
image's size (a mosaic, a whole-slide or satellite image; issue 16).

- Uncompressed, contiguous data (tifffile's ``dataoffset``): a region's rows are read where they
  lie, with ``os.preadv`` into the block (no lock, no seek). ``numpy.memmap`` would do the same,
  but a source truncated while mapped kills the process (SIGBUS), where a short read is an error
  that names the file.
- Tiles or strips: through tifffile's own zarr store (``aszarr``), which decodes only those a
  region touches. Its chunks of a stack's page are grouped into bands of one page (``_band``), so
  the writer's chunks do not span pages (a frame would need every chunk read).
- A tile or strip over :data:`PART_BYTES` (an uncompressed image tifffile wrote as one strip a
  page, say) is not worth it: each block would decode it again. Those frames are read whole.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SourceError
from .base import MAX_WHOLE_BYTES

#: A frame (a page) of more bytes than this is read in parts; smaller ones whole, at once (one
#: read and decode: the cheapest for the many small files of a detector's scans).
LAZY_FRAME_BYTES = 64 * 2**20
#: A stored tile or strip of more bytes than this: the frame is read whole after all.
PART_BYTES = 16 * 2**20
#: A frame that cannot be read in parts is decoded whole up to this many bytes (with a warning
#: past LAZY_FRAME_BYTES), and refused past it: the readers' one bound on what is decoded whole.
MAX_WHOLE_FRAME = MAX_WHOLE_BYTES
#: A stack's tiles or strips are grouped into bands of one page of about this many bytes.
BAND_BYTES = 8 * 2**20


@dataclass(frozen=True)
class Parts:
    """How to read regions of the series (values in the file's byte order), and the chunks the
    writer should follow (None: the writer chooses, as for any contiguous array)."""

    read: Callable[[tuple[slice, ...]], np.ndarray]
    chunks: tuple[int, ...] | None


def in_parts(tif: Any, series: Any, shape: tuple[int, ...], dtype: np.dtype, path: Path, lead: int) -> Parts | str | None:
    """The series read in parts; ``None`` when its stored pieces are too big to gain from it; or
    the reason tifffile cannot, as a string."""
    if series.dataoffset is not None:
        stored = np.dtype(series.dtype).newbyteorder(tif.byteorder)
        claimed, size = math.prod(shape) * stored.itemsize, tif.filehandle.size
        if series.dataoffset + claimed > size:  # (said at once: a header claiming 300000² pixels in 16 bytes went on to allocate them)
            raise SourceError(f"{path}: the file ends before its image data does ({claimed:,} bytes from byte "
                              f"{series.dataoffset:,}; the file holds {size:,}): cut short or damaged")
        return Parts(contiguous(tif.filehandle.fileno(), series.dataoffset, shape, stored, path, "image data"), None)
    import zarr

    try:
        store = zarr.open_array(series.aszarr(level=0), mode="r")
    except Exception as exc:  # a layout tifffile's store does not map (its own words)
        return f"{type(exc).__name__}: {exc}"
    if tuple(store.shape) != shape:
        return f"tifffile's store has shape {tuple(store.shape)}, the series {shape}"
    chunks = tuple(store.chunks)
    if math.prod(chunks) * dtype.itemsize > PART_BYTES:
        return None
    return Parts(lambda sel: store[sel], _band(chunks, shape, dtype.itemsize, lead) if lead else chunks)


def _band(chunks: tuple[int, ...], shape: tuple[int, ...], itemsize: int, lead: int = 1) -> tuple[int, ...]:
    """A stack's stored pieces (one page deep: ``lead`` dimensions index the pages) grown within
    the page, by whole pieces, to about :data:`BAND_BYTES`: rows first, then columns."""
    grown = list(chunks)
    for d in range(lead, len(grown)):
        while grown[d] < shape[d] and math.prod(grown) * itemsize * 2 <= BAND_BYTES:
            grown[d] = min(shape[d], grown[d] * 2)
    return tuple(grown)


def contiguous(fd: int, offset: int, shape: tuple[int, ...], stored: np.dtype, path: Path,
               what: str = "data") -> Callable[[tuple[slice, ...]], np.ndarray]:
    """Regions of a C-ordered array of ``shape`` at ``offset`` of the open file ``fd``: each run
    of contiguous bytes a region holds (a row segment; whole rows in one read) read once. (Also
    the NPY reader's: no memory map, whose pages count as the process's and whose file truncated
    meanwhile kills it.)"""
    strides = [math.prod(shape[d + 1:]) * stored.itemsize for d in range(len(shape))]

    def read(sel: tuple[slice, ...]) -> np.ndarray:
        bounds = [s.indices(n)[:2] for s, n in zip(sel, shape)]
        box = tuple(max(0, b - a) for a, b in bounds)
        out = np.empty(box, stored)
        if not out.size:
            return out
        k = len(shape) - 1  # the dimensions after k are whole: within one index of those before, a run
        while k > 0 and box[k] == shape[k]:
            k -= 1
        runs = out.reshape(math.prod(box[:k]), -1)
        length = runs.shape[1] * stored.itemsize
        for row, index in zip(runs, itertools.product(*(range(a, b) for a, b in bounds[:k]))):
            at = offset + sum(i * s for i, s in zip(index, strides)) + bounds[k][0] * strides[k]
            if os.preadv(fd, [row], at) != length:
                raise SourceError(f"{path}: the file ends before its {what} does (truncated since it was opened?)")
        return out

    return read
