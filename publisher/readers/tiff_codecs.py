"""Whether tifffile can decode a TIFF page's compression, known when the file is opened.

tifffile opens a file of any compression and fails only when a page is decoded, with a
ValueError the reader took for damage ("cannot read its image data (damaged or cut short?)"):
a file of SGILOG (34676), of a code no one assigned, or of a codec imagecodecs lacks here is
not damaged but not supported, skipped with the compression named, its bytes never read.
"""

from __future__ import annotations

from typing import Any

#: Electron-event codes tifffile decodes only in an EER file (elsewhere: "COMPRESSION.EER_V0: 65000").
_EER = frozenset({65000, 65001, 65002})
#: Old-style JPEG: tifffile decodes it as JPEG, which works only for files whose strips are whole
#: JPEG streams, so it is tried, and a failure to decode it is :func:`partly`'s to name.
OJPEG = 6


def _name(code: int) -> str:
    from tifffile import COMPRESSION

    try:
        return f"{COMPRESSION(code).name} (TIFF compression {code})"
    except ValueError:
        return f"TIFF compression {code} (a code of no known scheme)"


def undecodable(page: Any) -> str | None:
    """Why tifffile cannot decode ``page``'s compression here, or None when it can (or may)."""
    from tifffile import TIFF

    if page is None:  # (a multi-file series' first page in a file not there: its planes are zeros)
        return None
    code = int(page.compression)
    if code == 1:
        return None
    if code in _EER and not page.parent.is_eer:
        return f"its images are compressed as {_name(code)}, which tifffile decodes only in an EER file"
    if code not in TIFF.DECOMPRESSORS:  # (a KeyError within: no such codec, or imagecodecs without it)
        return f"its images are compressed as {_name(code)}, which tifffile cannot decode (with the imagecodecs installed here)"
    return None


def partly(code: int, exc: Exception) -> str | None:
    """Why a page of ``code`` that failed to decode (``exc``) is unsupported rather than damaged."""
    if code == OJPEG:
        return (f"its images are compressed as {_name(code)}, which tifffile decodes only when its strips are whole JPEG "
                f"streams, not these: {type(exc).__name__}: {exc}")
    return None
