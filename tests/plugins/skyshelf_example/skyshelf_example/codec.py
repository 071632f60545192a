"""Two codecs for the ``skyshelf.codecs`` registry (each entry point: configuration → numcodecs codec).

``lz4``: numcodecs' LZ4 under the name zarr-python writes it (``numcodecs.lz4``), so the handlers
read arrays zarr wrote with it. ``delta_zlib``: a codec of this package's own, which zarr-python
does not know: the bytes' differences, deflated; ``output.codec: example.delta-zlib`` writes it.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_bytes, ensure_contiguous_ndarray, ndarray_copy


def lz4(configuration: dict[str, Any]) -> Any:
    import numcodecs

    return numcodecs.LZ4(**configuration)


class DeltaZlib(Codec):
    """A numcodecs codec: each byte minus the one before it (modulo 256), then zlib at ``level``."""

    codec_id = "example.delta-zlib"

    def __init__(self, level: int = 6) -> None:
        if not 0 <= level <= 9:
            raise ValueError(f"level must be 0-9, got {level}")
        self.level = level

    def encode(self, buf: Any) -> bytes:
        data = ensure_contiguous_ndarray(buf).view(np.uint8).reshape(-1)
        return zlib.compress(np.diff(data, prepend=np.uint8(0)).tobytes(), self.level)

    def decode(self, buf: Any, out: Any = None) -> Any:
        deltas = np.frombuffer(zlib.decompress(ensure_bytes(buf)), dtype=np.uint8)
        return ndarray_copy(np.cumsum(deltas, dtype=np.uint8), out)


def delta_zlib(configuration: dict[str, Any]) -> DeltaZlib:
    return DeltaZlib(**configuration)
