"""Tiled's ``data_sources`` (answered when asked with ``include_data_sources=true``): where a
node's published object lives, so a reader can skip the API (``xarray.open_zarr(data_uri)``,
``pandas.read_parquet(data_uri)``) and the page can show the address.

One data source per node with data: its Zarr group/array or Parquet object, ``management:
"external"`` (the API never writes it), ``parameters`` naming the source file and the path in it.
The address starts with ``SKYSHELF_DIRECT_URL`` (a deploy's public bucket URL), else the store's
own ``s3://`` URL, else (``publish serve``) the server's ``/files/``. A private node's object is
under ``private/``: readable with scoped credentials (``/api/v1/auth/credentials``) or a signature,
never by the bare URL; ``properties.access`` says so.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from publisher.formats import Entry

from . import common, settings

__all__ = ["data_sources", "direct_base", "wanted"]

PRIVATE_NOTE = ("private: this address answers only with scoped credentials (GET /api/v1/auth/credentials "
                "on an S3 store) — read it through the API (/api/v1/zarr/v3/..., array/full, table/full) otherwise")


def wanted(params: dict[str, list[str]]) -> bool:
    """``include_data_sources=true`` (or 1), as the tiled client sends it."""
    return common.boolean(params, "include_data_sources")


def direct_base(base_url: str) -> str:
    """Where the store's objects are read directly (no trailing slash); ``base_url`` is the API's."""
    current = settings.current()
    if current.direct_url:
        return current.direct_url.rstrip("/")
    store = common.store()
    if store.is_s3:
        return store.url.rstrip("/")
    return (current.files_url or f"{base_url.removesuffix(common.API)}/files").rstrip("/")


def object_uri(base: str, key: str) -> str:
    """An object's address under ``base``: percent-encoded in an HTTP URL (a node named ``scan #1``
    or ``rate 100%``), as is under ``s3://`` (fsspec, boto3 and the AWS CLI take keys unquoted)."""
    return f"{base}/{quote(key) if base.startswith(('http://', 'https://')) else key}"


def _mimetype(entry: Entry, data_url: str) -> str | None:
    if entry.family == "sparse":  # Tiled's name for its one-Parquet-file-per-block layout
        return "application/x-parquet;structure=sparse"
    if ".zarr" in data_url:
        return "application/x-zarr"
    if data_url.endswith(".parquet") or entry.family == "table":
        return "application/x-parquet"
    return None


def data_sources(entry: Entry, base_url: str) -> list[dict[str, Any]]:
    """The node's data sources as Tiled's ``DataSource`` JSON: one, or none for a node without an
    object of its own (a container folder)."""
    data_url = entry.data_url
    if not data_url:
        return []
    mimetype = _mimetype(entry, data_url)
    folder = mimetype == "application/x-zarr" or not data_url.endswith(".parquet")  # a Zarr tree, partitioned Parquet
    assets = [{"data_uri": object_uri(direct_base(base_url), data_url), "is_directory": folder, "parameter": "data_uri", "num": None, "id": None}]
    keys: list[str] | None = None
    if entry.family == "sparse":  # one asset per block file, as Tiled's SparseBlocksParquetAdapter takes them
        from publisher.sparse_layout import block_keys

        keys = block_keys(data_url, entry.structure_json()["chunks"])
    elif entry.family == "table" and folder:
        # one per partition, as Tiled's Parquet adapter takes them (a folder over HTTPS cannot be listed: its address read nothing)
        from publisher.table_layout import partition_keys

        keys = partition_keys(data_url, int(entry.structure_json().get("npartitions") or 0))
    if keys is not None:
        assets = [{"data_uri": object_uri(direct_base(base_url), k), "is_directory": False, "parameter": "data_uris", "num": i, "id": None}
                  for i, k in enumerate(keys)]
    return [{
        "id": None,
        "structure_family": entry.family,
        "structure": None if entry.family == "container" else entry.structure_json(),
        "mimetype": mimetype,
        "parameters": {"source_file": entry.source_file, "source_path": entry.source_path},
        "properties": {"access": PRIVATE_NOTE} if data_url.startswith("private/") else {},
        "assets": assets,
        "management": "external",
    }]
