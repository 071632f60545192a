"""A pipeline's codec setting (``zstd``, ``gzip:6``, ``blosc-lz4``, ...) as a Zarr codec in zarr's
``{"name": ..., "configuration": {...}}`` form; its numcodecs codec comes from
:mod:`publisher.zarr_layout`, which the handlers read the chunks back with."""

from __future__ import annotations

from typing import Any

from ..config.models import Codec


def compressor_spec(codec: Codec, itemsize: int = 1) -> dict[str, Any] | None:
    """The v3 ``codecs`` entry of a codec setting (exactly as zarr's codec classes write it); None for ``none``."""
    name, level = codec.name, codec.level
    if name == "none":
        return None
    if name == "zstd":
        return {"name": "zstd", "configuration": {"level": 3 if level is None else level, "checksum": False}}
    if name == "gzip":
        return {"name": "gzip", "configuration": {"level": 6 if level is None else level}}
    if name in ("blosc-lz4", "blosc-zstd", "lz4"):
        return {"name": "blosc", "configuration": {
            "typesize": max(itemsize, 1), "cname": "zstd" if name == "blosc-zstd" else "lz4", "clevel": 5 if level is None else level,
            "shuffle": "shuffle" if itemsize > 1 else "noshuffle", "blocksize": 0}}
    raise ValueError(f"unknown codec {name!r}")

