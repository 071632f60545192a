"""Where a published sparse array's blocks live (docs/catalog.md): shared by the writer, the
reader and the build check, so the three never disagree. Standard library only."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

#: The schema metadata key of each block file: ``{"shape", "chunks", "dims", "block"}`` as JSON.
METADATA_KEY = "skyshelf"


def block_key(url: str, index: tuple[int, ...]) -> str:
    """Tiled's name for a block's file (``tiled/adapters/sparse_blocks_parquet.py``)."""
    return f"{url}/block-{'.'.join(map(str, index))}.parquet"


def block_grid(chunks: list[list[int]]) -> Iterator[tuple[int, ...]]:
    """Every block index of the grid, row-major."""
    return itertools.product(*(range(len(c)) for c in chunks))


def block_keys(url: str, chunks: list[list[int]]) -> list[str]:
    """Every block's file (the build check expects them all, empty blocks too)."""
    return [block_key(url, index) for index in block_grid(chunks)]
