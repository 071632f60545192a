"""Content-Type of every object Skyshelf writes, by key."""

from __future__ import annotations

import posixpath

_BY_NAME = {"zarr.json": "application/json", ".zarray": "application/json", ".zattrs": "application/json",
            ".zgroup": "application/json", ".zmetadata": "application/json"}
_BY_SUFFIX = {".json": "application/json", ".parquet": "application/vnd.apache.parquet", ".html": "text/html; charset=utf-8",
              ".csv": "text/csv; charset=utf-8", ".png": "image/png", ".tif": "image/tiff", ".tiff": "image/tiff",
              ".arrow": "application/vnd.apache.arrow.file", ".zip": "application/zip", ".yaml": "application/yaml",
              ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}  # the browse page's copy in a release


def content_type(key: str) -> str:
    """``zarr.json`` → application/json, Parquet → application/vnd.apache.parquet, chunks → octet-stream;
    other suffixes as the serializer registry names them (answers spilled to the store: ``.xlsx``, ``.npy``)."""
    name = posixpath.basename(key)
    if name in _BY_NAME:
        return _BY_NAME[name]
    suffix = posixpath.splitext(name)[1].lower()
    if suffix in _BY_SUFFIX:
        return _BY_SUFFIX[suffix]
    if suffix and not suffix[1:].isdigit():  # chunk keys (".0.1") are not file types; the registry loads on first use
        from .serializers import media_type_for

        return media_type_for(suffix) or "application/octet-stream"
    return "application/octet-stream"
