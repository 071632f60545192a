"""NumPy ``.npz`` (``np.savez``, ``np.savez_compressed``) → a container of its arrays.

A member stored uncompressed (``np.savez``) is an ``.npy`` lying whole in the file: its regions
are read where they lie, as an ``.npy``'s (:func:`.npy.array_node`). A compressed member
(``np.savez_compressed``) cannot be read in parts: it is decompressed whole when first read, and
kept while its file converts (a warning names one of more than :data:`WHOLE_BYTES`; one of more
than :data:`MAX_WHOLE_BYTES` is skipped, saying why: a zip bomb takes no more). Object arrays
need pickle, which is never loaded: such a member is skipped, naming it.
"""

from __future__ import annotations

import contextlib
import math
import struct
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SourceError, UnsupportedError
from ..nodes import ArrayNode, ContainerNode, Node, SkippedNode
from .base import MAX_WHOLE_BYTES, Reader, register_reader
from .npy import array_node, native_dtype, read_header

#: A compressed member larger than this (decompressed) is warned about: it is held whole while read.
WHOLE_BYTES = 256 * 2**20


def _data_offset(f: Any, info: zipfile.ZipInfo) -> int:
    """Where a stored member's bytes start: after its local header (whose name and extra field
    may differ in length from the central directory's)."""
    f.seek(info.header_offset)
    head = f.read(30)
    if len(head) != 30 or head[:4] != b"PK\x03\x04":
        raise SourceError(f"{f.name}: not a readable .npz file: the local header of {info.filename} is damaged")
    name_length, extra_length = struct.unpack("<HH", head[26:30])
    return info.header_offset + 30 + name_length + extra_length


def _compressed(z: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, key: str) -> ArrayNode:
    """A compressed member: its header read now, its array decompressed whole at its first read."""
    from numpy.lib import format as npy

    with z.open(info) as member:
        shape, _, dtype, _ = read_header(member, path)  # (numpy's parser, one thread at a time, its errors named)
    native = native_dtype(dtype, f"{path.name} ({info.filename})")
    if (size := math.prod(shape) * dtype.itemsize) > MAX_WHOLE_BYTES:
        raise UnsupportedError(f"{path.name} ({info.filename}): compressed, {size / 2**30:.1f} GiB decompressed, which would be "
                               f"read whole (more than {MAX_WHOLE_BYTES / 2**30:.0f} GiB in memory): save it with np.savez "
                               "(uncompressed: read in parts)")
    held: dict[str, np.ndarray] = {}
    lock = threading.Lock()

    def read(sel: tuple[slice, ...]) -> np.ndarray:
        with lock:
            if "all" not in held:
                with zipfile.ZipFile(path) as again, again.open(info) as member:  # (a ZipFile of its own: threads read at once)
                    held["all"] = npy.read_array(member, allow_pickle=False)
        return np.asarray(held["all"][sel], dtype=native, order="C")

    node = ArrayNode(key=key, dtype=native, shape=tuple(shape), read=read, dims=[f"dim_{i}" for i in range(len(shape))],
                     string_width=dtype.itemsize if native.kind == "O" else None)
    if size > WHOLE_BYTES:
        node.warn(f"{path.name} ({info.filename}): compressed, decompressed whole ({size / 2**20:.0f} MiB in memory): "
                  "np.savez (uncompressed) is read in parts")
    return node


@register_reader
class NpzReader(Reader):
    name = "npz"
    alone = True  # (one file, nothing it refers to)
    extensions = (".npz",)

    @contextlib.contextmanager
    def open(self, path: Path, key: str, options: Any) -> Iterator[Node]:
        with open(path, "rb") as f:
            try:
                z = zipfile.ZipFile(f)
            except (zipfile.BadZipFile, OSError) as exc:
                raise SourceError(f"{path}: not a readable .npz file: {exc}") from exc
            container = ContainerNode(key=key, in_file=True)
            taken: set[str] = set()
            for info in z.infolist():
                if info.is_dir():
                    continue
                name = info.filename.removesuffix(".npy").replace("/", "_") or "_"
                while name in taken:  # ("a/b" and "a_b": both keys kept)
                    name += "_"
                taken.add(name)
                try:
                    if info.compress_type == zipfile.ZIP_STORED:
                        f.seek(_data_offset(f, info))
                        container.children.append(array_node(f, path, name, info.filename))
                    else:
                        container.children.append(_compressed(z, info, path, name))
                except UnsupportedError as exc:
                    container.children.append(SkippedNode(key=name, reason=str(exc)))
                except (ValueError, EOFError, zipfile.BadZipFile, NotImplementedError) as exc:  # (a damaged member; a compression zipfile lacks)
                    raise SourceError(f"{path}: not a readable .npz file: {info.filename}: {exc}") from exc
            yield container
