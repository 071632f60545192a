"""An OME-TIFF's OME-XML declaring more frames than its file holds, refused before tifffile
builds its series.

tifffile trusts the OME-XML's sizes: the frames it declares beyond the file's pages are zeros
("OME series is missing 48 frames. Missing data are zeroed", a log line only). A file of 2
frames declaring 50 was published as 50, 48 of them zeros, with a clean report; declaring
30,000 x 30,000, tifffile's list of the declared frames took 13.8 GB and 2 minutes before a
byte of image data was read. The frames each image declares (as tifffile counts them: its
sizes over its first page's, and each TiffData's first plane and count) are checked against
what the file holds: its pages, for one file; for a multi-file series (whose companions'
planes are zeros while they are missing) what the bytes of the files there could hold.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SourceError

#: The fewest bytes a page takes in its file (a classic TIFF's IFD with no tags: its count of
#: tags and its next-IFD offset): the most pages a file's bytes can hold, without opening it.
MIN_PAGE_BYTES = 6


@dataclass(frozen=True)
class Claim:
    """The frames one image of the OME-XML declares: what tifffile would list for it."""

    image: int
    frames: int
    reach: int  # the pages of this file its TiffData place its frames in, counted from the first
    sizes: str  # (as the XML gives them, for the message)


def check(tif: Any, path: Path, companions: set[Path]) -> None:
    """Raise :class:`SourceError` when an image's declared frames are more than the file holds
    (one file: its pages) or than the bytes of its series' files there could hold (several)."""
    if not tif.is_ome:
        return
    claims = claimed(tif)
    if not claims:
        return
    size = tif.filehandle.size
    worst = max(claims, key=lambda c: c.frames)
    if not companions:
        pages = len(tif.pages)  # (the chain's offsets only: tifffile walks it too, to build any series)
        if worst.frames > pages:
            raise SourceError(f"{path}: cut short or damaged ({size} bytes): its OME-XML declares {worst.frames} frames in image "
                              f"{worst.image} ({worst.sizes}), the file holds {pages} pages")
        far = max(claims, key=lambda c: c.reach)
        if far.reach > pages:
            raise SourceError(f"{path}: cut short or damaged ({size} bytes): its OME-XML places frames of image {far.image} in its "
                              f"first {far.reach} pages, the file holds {pages}")
        return
    there = [size, *(n for n in map(_size, companions) if n is not None)]
    most = sum(there) // MIN_PAGE_BYTES
    if worst.frames > most:
        raise SourceError(f"{path}: its OME-XML declares {worst.frames} frames in image {worst.image} ({worst.sizes}), more than the "
                          f"{len(there)} files of its series here ({sum(there)} bytes) can hold: damaged?")


def _size(path: Path) -> int | None:
    """A companion's size, None when it is not there (its planes are zeros, and hold nothing)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def claimed(tif: Any) -> list[Claim]:
    """The frames each image with TiffData declares, as tifffile's OME series would count them
    (none when the XML does not parse or its numbers are not numbers: tifffile decides then)."""
    from xml.etree import ElementTree

    try:
        root = ElementTree.fromstring(tif.ome_metadata)
    except (ElementTree.ParseError, TypeError, ValueError):
        return []
    out: list[Claim] = []
    index = 0
    for element in root:
        if element.tag.endswith("BinaryOnly"):
            break  # (as tifffile: its images are in the file it names)
        if not element.tag.endswith("Image"):
            continue
        for pixels in element:
            if pixels.tag.endswith("Pixels"):
                try:
                    claim = _frames(tif, pixels, index)
                except (KeyError, ValueError, IndexError, OverflowError):
                    claim = None
                if claim is not None:
                    out.append(claim)
                index += 1
    return out


def _frames(tif: Any, pixels: Any, index: int) -> Claim | None:
    """One Pixels element's :class:`Claim` (None without TiffData: tifffile skips it)."""
    import numpy as np

    attr = pixels.attrib
    axes = "".join(reversed(attr["DimensionOrder"]))
    shape = [int(attr["Size" + ax]) for ax in axes]
    channels = [c for c in pixels if c.tag.endswith("Channel")]
    spp = int(channels[0].attrib.get("SamplesPerPixel", 1)) if channels else 1
    if spp > 1:
        shape = [n // spp if ax == "C" else n for ax, n in zip(axes, shape)]
    data = [d for d in pixels if d.tag.endswith("TiffData")]
    if not data:
        return None
    listed, reach, first = 0, 0, None
    own = tif.filehandle.name
    for d in data:
        a = d.attrib
        ifd = int(a.get("IFD", 0))
        num = int(a.get("PlaneCount", a.get("NumPlanes", 1 if "IFD" in a else 0)))
        try:
            idx = int(np.ravel_multi_index([int(a.get("First" + ax, 0)) for ax in axes[:-2]], shape[:-2]))
        except (ValueError, OverflowError):
            continue  # (tifffile skips it too)
        uuid = next((u for u in d if u.tag.endswith("UUID")), None)
        other = uuid is not None and uuid.attrib.get("FileName", own) not in ("", own)
        if not other and first is None:
            first = ifd
        listed = max(listed, idx + num)
        reach = reach if other else max(reach, ifd + num)
    try:
        page = tif.pages[first if first is not None else 0]
    except IndexError:
        page = tif.pages.first
    if (int(attr["SizeY"]), int(attr["SizeX"])) != (page.imagelength, page.imagewidth):
        return None  # (stale sizes: tifffile reads such a file as its pages, not as the OME-XML says; it was refused here)
    frames = max(math.prod(shape) * spp // max(page.size, 1), 1)  # (tifffile: the series' size over its first page's)
    sizes = ", ".join(f"{ax} {n}" for ax, n in zip(axes[:-2], shape[:-2]))
    return Claim(index, max(frames, listed), reach, sizes)
