"""A TIFF of pages of mixed shapes grouped into series in linear time, and a bound on their number.

A TIFF of no known layout whose pages differ (not "uniform": tifffile samples pages 1, 7 and the
last) is grouped by tifffile's ``TiffFile._series_generic``: pages of one shape and type form a
series. Its check for a page listed twice walks the series' pages so far, for each page: 40,000
pages alternating 8x8 and 8x9 (10 MB) took 230 s, before a frame was read (200,000 uniform
pages: 12 s). Here the same grouping keeps each series' offsets in a set; and each series is
compared with each other (``pyramidize_series``, which finds a pyramid's levels), so a file of
more than :data:`MAX_SERIES` shapes is refused as it is found to be one.

:func:`install` replaces the method on one open TiffFile only (tifffile 2026.3.3's, the same
steps); ``tests/test_tiff_hostile.py`` compares the two, for a tifffile that changes it.
"""

from __future__ import annotations

import sys
from typing import Any

from ..errors import UnsupportedError

#: Series (kinds of page: shape, type, compression...) a TIFF of no known layout may hold. The
#: reader publishes the first and lists the others; a pyramid's search compares each pair.
MAX_SERIES = 1000


def install(tif: Any, name: str) -> None:
    """Group ``tif``'s pages (a file called ``name``) with :func:`series_generic`, when tifffile
    finds no layout it knows (an attribute of the instance, found before the class's method)."""
    tif._series_generic = lambda: series_generic(tif, name)


def series_generic(tif: Any, name: str) -> list[Any] | None:
    """tifffile's generic series of ``tif``, each page once (by its offset), in linear time."""
    tifffile = sys.modules[type(tif).__module__]
    pages = tif.pages
    pages._clear(fully=False)
    pages.useframes = False
    if pages.cache:
        pages._load()
    groups: dict[int, list[Any]] = {}
    offsets: dict[int, set[int]] = {}

    def add(page: Any) -> None:
        if not page.shape:
            return
        seen = offsets.setdefault(page.hash, set())
        if page.offset in seen:
            return  # (a page listed twice)
        seen.add(page.offset)
        groups.setdefault(page.hash, []).append(page)
        if len(groups) > MAX_SERIES:
            raise UnsupportedError(f"{name}: its pages are of more than {MAX_SERIES} shapes or types (by page {page.index}): "
                                   f"as many image series, each compared with each other")

    for page in pages:
        add(page)
        for i, offset in enumerate(page.subifds or ()):
            if offset < 8:
                continue
            try:
                tif._fh.seek(offset)
                subifd = tifffile.TiffPage(tif, (page.index, i))
            except Exception as exc:  # noqa: BLE001 (as tifffile: a SubIFD it cannot read is logged and left out)
                tifffile.logger().warning(f"{tif!r} generic series raised {exc!r:.128}")
            else:
                add(subifd)
    series = []
    for pagelist in groups.values():
        page = pagelist[0]
        shape, axes = (len(pagelist), *page.shape), "I" + page.axes
        if "S" not in axes:
            shape, axes = (*shape, 1), axes + "S"
        series.append(tifffile.TiffPageSeries(pagelist, shape, page.dtype, axes, kind="generic"))
    tif.is_uniform = len(series) == 1
    if not tif.is_agilent:
        tifffile.pyramidize_series(series)
    return series or None
