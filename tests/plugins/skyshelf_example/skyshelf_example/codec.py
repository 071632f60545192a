"""numcodecs' LZ4 as zarr-python writes it (``{"name": "numcodecs.lz4"}``), for the handlers' reader."""

from __future__ import annotations

from typing import Any


def lz4(configuration: dict[str, Any]) -> Any:
    import numcodecs

    return numcodecs.LZ4(**configuration)
