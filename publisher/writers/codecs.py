"""A pipeline's codec setting (``zstd``, ``gzip:6``, ``blosc-lz4``, a plug-in's name, ...) as a Zarr
codec in zarr's ``{"name": ..., "configuration": {...}}`` form; the mapping and the numcodecs codec
live in :mod:`publisher.zarr_layout`, which the handlers read the chunks back with."""

from __future__ import annotations

from typing import Any

from ..config.models import Codec


def compressor_spec(codec: Codec, itemsize: int = 1) -> dict[str, Any] | None:
    """The v3 ``codecs`` entry of a codec setting (exactly as zarr's codec classes write it); None for ``none``."""
    return codec.spec(itemsize)
