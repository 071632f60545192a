"""Where a published table's Parquet lives (docs/catalog.md): one file ``<key>.parquet``, or
partitions ``<key>/part-NNNNN.parquet``. Shared by the writer, the reader, the build check and
the handlers' ``data_sources``, so they never disagree. Standard library only."""

from __future__ import annotations


def partition_key(key: str, index: int) -> str:
    """Partition ``index`` of the table whose partitions are below ``key`` (a folder)."""
    return f"{key}/part-{index:05d}.parquet"


def partition_keys(data_url: str, npartitions: int) -> list[str]:
    """Every Parquet file of a table published at ``data_url`` (its one file, or its partitions)."""
    return [data_url] if data_url.endswith(".parquet") else [partition_key(data_url, i) for i in range(npartitions)]
