"""HDF4 is recognised by its magic bytes so that it is reported clearly, not mistaken for something else."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import UnsupportedError
from ..nodes import Node
from .base import Reader, register_reader


@register_reader
class HDF4Reader(Reader):
    name = "hdf4"
    extensions = (".hdf4", ".h4")
    magic = (b"\x0e\x03\x13\x01",)

    @contextlib.contextmanager
    def open(self, path: Path, key: str, options: Any) -> Iterator[Node]:
        raise UnsupportedError(f"{path.name} is an HDF4 file, which Skyshelf cannot read; convert it to HDF5 first (h4toh5)")
        yield  # pragma: no cover
