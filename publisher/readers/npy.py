"""NumPy ``.npy`` → one array, memory-mapped so blocks are read on demand."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SourceError, UnsupportedError
from ..nodes import ArrayNode, Node
from .base import Reader, register_reader

#: np.load parses the header with ast.literal_eval, which on CPython 3.11 can fail when two threads
#: build ASTs at once ("SystemError: AST constructor recursion depth mismatch", python/cpython#106905;
#: seen in a full test run): the build opens files on a thread pool, so headers are parsed one at a time.
_HEADER_LOCK = threading.Lock()


@register_reader
class NpyReader(Reader):
    name = "npy"
    extensions = (".npy",)
    magic = (b"\x93NUMPY",)
    stackable = True

    @contextlib.contextmanager
    def open(self, path: Path, key: str, options: Any) -> Iterator[Node]:
        try:
            with _HEADER_LOCK:  # the memory map itself is read without it
                data = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            if "Python objects" in str(exc) or "pickle" in str(exc):  # numpy's words for an object array
                raise UnsupportedError(f"{path.name}: object arrays in .npy need pickle, which is never loaded") from exc
            if "mmap length" in str(exc):  # (any other ValueError was also called an object array, and skipped)
                raise SourceError(f"{path}: truncated: its header states more data than the file holds") from exc
            raise SourceError(f"{path}: not a readable .npy file: {exc}") from exc
        except Exception as exc:
            raise SourceError(f"{path}: not a readable .npy file: {exc}") from exc
        if data.dtype.names or data.dtype.kind not in "biufcU":
            raise UnsupportedError(f"{path.name}: dtype {data.dtype} is not supported")
        native = np.dtype(object) if data.dtype.kind == "U" else data.dtype.newbyteorder("=") if data.dtype.byteorder == ">" else data.dtype
        yield ArrayNode(key=key, dtype=native, shape=data.shape,
                        read=lambda sel: np.asarray(data[sel], dtype=native, order="C"),
                        dims=[f"dim_{i}" for i in range(data.ndim)], string_width=data.dtype.itemsize if native.kind == "O" else None)
