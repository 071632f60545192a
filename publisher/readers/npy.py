"""NumPy ``.npy`` → one array, memory-mapped so blocks are read on demand."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SourceError, UnsupportedError
from ..nodes import ArrayNode, Node
from .base import Reader, register_reader


@register_reader
class NpyReader(Reader):
    name = "npy"
    extensions = (".npy",)
    magic = (b"\x93NUMPY",)
    stackable = True

    @contextlib.contextmanager
    def open(self, path: Path, key: str, options: Any) -> Iterator[Node]:
        try:
            data = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise UnsupportedError(f"{path.name}: object arrays in .npy need pickle, which is never loaded") from exc
        except Exception as exc:
            raise SourceError(f"{path}: not a readable .npy file: {exc}") from exc
        if data.dtype.names or data.dtype.kind not in "biufcU":
            raise UnsupportedError(f"{path.name}: dtype {data.dtype} is not supported")
        native = np.dtype(object) if data.dtype.kind == "U" else data.dtype.newbyteorder("=") if data.dtype.byteorder == ">" else data.dtype
        yield ArrayNode(key=key, dtype=native, shape=data.shape,
                        read=lambda sel: np.asarray(data[sel], dtype=native, order="C"),
                        dims=[f"dim_{i}" for i in range(data.ndim)])
