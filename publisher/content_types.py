"""Content-Type of every object Skyshelf writes, by key."""

from __future__ import annotations

import posixpath

_BY_NAME = {"zarr.json": "application/json", ".zarray": "application/json", ".zattrs": "application/json",
            ".zgroup": "application/json", ".zmetadata": "application/json"}
_BY_SUFFIX = {".json": "application/json", ".parquet": "application/vnd.apache.parquet", ".html": "text/html; charset=utf-8",
              ".csv": "text/csv; charset=utf-8", ".png": "image/png", ".tif": "image/tiff", ".tiff": "image/tiff",
              ".arrow": "application/vnd.apache.arrow.file", ".zip": "application/zip", ".yaml": "application/yaml"}


def content_type(key: str) -> str:
    """``zarr.json`` → application/json, Parquet → application/vnd.apache.parquet, chunks → octet-stream."""
    name = posixpath.basename(key)
    if name in _BY_NAME:
        return _BY_NAME[name]
    return _BY_SUFFIX.get(posixpath.splitext(name)[1].lower(), "application/octet-stream")
