"""NumPy ``.npy`` → one array, its regions read where they lie.

Not a memory map (``np.load(mmap_mode="r")``, as before): its pages read count as the process's
resident memory (a 2 GB file showed 2.3 GB, which a Dask nanny takes for the worker's), and a
file truncated while mapped kills the process with SIGBUS. Each region's runs of contiguous bytes
are read with ``os.preadv`` (``tiff_parts.contiguous``); a short read is an error naming the file.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import tokenize
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SourceError, UnsupportedError
from ..nodes import ArrayNode, Node
from .base import Reader, register_reader
from .tiff_parts import contiguous

#: np.load parses the header with ast.literal_eval, which on CPython 3.11 can fail when two threads
#: build ASTs at once ("SystemError: AST constructor recursion depth mismatch", python/cpython#106905;
#: seen in a full test run): the build opens files on a thread pool, so headers are parsed one at a time.
_HEADER_LOCK = threading.Lock()


def read_header(f: Any, path: Path) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, Fortran order, dtype, where the data starts), by numpy's own header parser."""
    from numpy.lib import format as npy

    try:
        with _HEADER_LOCK:
            version = npy.read_magic(f)
            if version not in ((1, 0), (2, 0)):  # (3.0: field names beyond Latin-1, of a structured dtype)
                raise UnsupportedError(f"{path.name}: .npy format version {version[0]}.{version[1]} is not supported")
            shape, fortran, dtype = (npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0)(f)
    except (ValueError, EOFError, SyntaxError, tokenize.TokenError) as exc:  # (a corrupt header: numpy retries it through tokenize)
        raise SourceError(f"{path}: not a readable .npy file: {exc}") from exc
    if any(n < 0 for n in shape):
        raise SourceError(f"{path}: not a readable .npy file: its header's shape {tuple(shape)} has a negative size")
    if len(shape) > 64:  # (numpy's own limit, said in its words otherwise)
        raise SourceError(f"{path}: not a readable .npy file: its header's shape has {len(shape)} dimensions; numpy takes at most 64")
    return tuple(shape), bool(fortran), dtype, f.tell()


@register_reader
class NpyReader(Reader):
    name = "npy"
    alone = True  # (one file, nothing it refers to)
    extensions = (".npy",)
    magic = (b"\x93NUMPY",)
    stackable = True

    @contextlib.contextmanager
    def open(self, path: Path, key: str, options: Any) -> Iterator[Node]:
        with open(path, "rb") as f:
            yield array_node(f, path, key)


def native_dtype(dtype: np.dtype, what: str) -> np.dtype:
    """The dtype an array of ``dtype`` is published with (text as Python strings, numbers in this
    machine's byte order); UnsupportedError for objects (pickle is never loaded) and records."""
    if dtype.hasobject:
        raise UnsupportedError(f"{what}: object arrays in .npy need pickle, which is never loaded")
    if dtype.names or dtype.kind not in "biufcU":
        raise UnsupportedError(f"{what}: dtype {dtype} is not supported")
    if dtype.itemsize == 0:  # (its size check passes whatever the shape: 10**12 empty strings of a 128-byte file ran for hours)
        raise UnsupportedError(f"{what}: dtype {dtype} is zero bytes wide: its values hold nothing")
    return np.dtype(object) if dtype.kind == "U" else dtype.newbyteorder("=") if dtype.byteorder == ">" else dtype


def array_node(f: Any, path: Path, key: str, name: str | None = None) -> ArrayNode:
    """The array of the .npy that starts at ``f``'s position (a file's start, or a member stored
    uncompressed in an .npz, ``name``), its regions read from ``f`` where they lie while it is open."""
    shape, fortran, dtype, offset = read_header(f, path)
    native = native_dtype(dtype, f"{path.name}{f' ({name})' if name else ''}")
    size = math.prod(shape) * dtype.itemsize  # (Python's ints: np.prod in int64 wrapped a corrupt shape to 0 bytes)
    if os.fstat(f.fileno()).st_size < offset + size:
        raise SourceError(f"{path}: truncated: its header states more data than the file holds{f' ({name})' if name else ''}")
    # a Fortran-ordered array is its reverse's C order on disk: regions read reversed, then transposed
    stored = contiguous(f.fileno(), offset, shape[::-1] if fortran else shape, dtype, path)

    def read(sel: tuple[slice, ...]) -> np.ndarray:
        sel = tuple(sel) + (slice(None),) * (len(shape) - len(sel))
        if not shape:
            box = np.empty((), dtype)
            if os.preadv(f.fileno(), [box.reshape(-1).view(np.uint8)], offset) != dtype.itemsize:
                raise SourceError(f"{path}: the file ends before its data does (truncated since it was opened?)")
        else:
            box = stored(sel[::-1]).transpose() if fortran else stored(sel)
            box = box[tuple(slice(None, None, s.step) for s in sel)] if any(s.step not in (None, 1) for s in sel) else box
        return np.asarray(box, dtype=native, order="C")

    return ArrayNode(key=key, dtype=native, shape=shape, read=read, dims=[f"dim_{i}" for i in range(len(shape))],
                     string_width=dtype.itemsize if native.kind == "O" else None)
