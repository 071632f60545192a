"""Which names a published node may have: a node is a path segment, a folder in a store and a
Zarr group's child, so some names a source allows (HDF5 takes any, Excel ``..``) cannot be one."""

from __future__ import annotations

#: Names a Zarr group keeps for its metadata (v3 and v2): no child may take them.
ZARR_DOCUMENTS = frozenset({"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"})
#: The longest node name, in UTF-8 bytes: a node is a folder or file named by it, with ``.parquet``
#: (a table), ``.zarr`` (a file's group) or ``.levels`` (a pyramid) after it at most, in at most 255
#: bytes on a local store's file system (and a release is the same on any store).
MAX_NAME_BYTES = 255 - len(".parquet")


def unnamable(key: str) -> str | None:
    """Why ``key`` cannot name a node, or None. An Excel sheet named '..' was listed and never
    reachable; a dataset named zarr.json took its group's own document (the build failed); an HDF5
    group of a 300-byte name failed its whole file on a local store ("File name too long")."""
    if key in ("", ".", "..") or "/" in key:
        return "'.', '..', '' and names with '/' are not path segments"
    if key in ZARR_DOCUMENTS:
        return "it is the name of a Zarr group's metadata document"
    if (n := len(key.encode("utf-8", "surrogateescape"))) > MAX_NAME_BYTES:
        return f"it is {n} bytes long (UTF-8), more than the {MAX_NAME_BYTES} a node's name may have (a folder's name in a store)"
    return None
