"""Compression codecs by name, for Zarr v3 (zarr.codecs) and v2 (numcodecs)."""

from __future__ import annotations

from typing import Any

from ..config.models import Codec


def zarr_compressors(codec: Codec, zarr_format: int, itemsize: int = 1) -> Any:
    """The ``compressors=`` argument of ``zarr.create_array`` for a codec setting."""
    name, level = codec.name, codec.level
    if name == "none":
        return None
    if zarr_format == 3:
        from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

        if name == "zstd":
            return ZstdCodec(level=3 if level is None else level)
        if name == "gzip":
            return GzipCodec(level=6 if level is None else level)
        if name in ("blosc-lz4", "blosc-zstd", "lz4"):
            cname = "zstd" if name == "blosc-zstd" else "lz4"
            return BloscCodec(cname=cname, clevel=5 if level is None else level, shuffle="shuffle" if itemsize > 1 else "noshuffle", typesize=max(itemsize, 1))
    else:
        import numcodecs

        if name == "zstd":
            return numcodecs.Zstd(level=3 if level is None else level)
        if name == "gzip":
            return numcodecs.GZip(level=6 if level is None else level)
        if name in ("blosc-lz4", "blosc-zstd", "lz4"):
            cname = "zstd" if name == "blosc-zstd" else "lz4"
            return numcodecs.Blosc(cname=cname, clevel=5 if level is None else level, shuffle=numcodecs.Blosc.SHUFFLE if itemsize > 1 else numcodecs.Blosc.NOSHUFFLE)
    raise ValueError(f"unknown codec {name!r}")


def numcodecs_compressor(codec: Codec, itemsize: int = 1) -> Any:
    """The numcodecs compressor that encodes chunks for either Zarr format (same bytes as zarr's codecs)."""
    return zarr_compressors(codec, 2, itemsize)
