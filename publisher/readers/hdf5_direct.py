"""Read HDF5 chunks raw and decode them outside h5py's global lock.

h5py serialises every call under one lock, so decompression inside h5py runs on one core.
Reading the stored bytes (``read_direct_chunk``) is quick I/O under the lock; decoding them
(zlib, zstd and blosc release the GIL) then runs in parallel on the writer's threads. Used
when a block is made of whole source chunks and every filter has a decoder here; otherwise
the reader falls back to h5py's own path. Fletcher32 checksums are verified here as HDF5
verifies them: a chunk that fails is that dataset's failure (:class:`CorruptChunk`), never
published.
"""

from __future__ import annotations

import itertools
import math
import threading
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

DEFLATE, SHUFFLE, FLETCHER32, ZSTD, BLOSC = 1, 2, 3, 32015, 32001


class _Mismatch(Exception):
    """A chunk's Fletcher32 checksum differs from the one HDF5 stored with it."""


def _decoder(code: int, itemsize: int) -> Callable[[bytes], bytes] | None:
    if code == DEFLATE:
        return zlib.decompress
    if code == SHUFFLE:
        import numcodecs

        shuffle = numcodecs.Shuffle(elementsize=itemsize)
        return lambda raw: bytes(shuffle.decode(raw))
    if code == FLETCHER32:  # the checksum trails the data; numcodecs computes it as HDF5 does
        import numcodecs

        checksum = numcodecs.Fletcher32()

        def verify(raw: bytes) -> bytes:
            try:
                return bytes(checksum.decode(raw))
            except RuntimeError as exc:
                raise _Mismatch(str(exc).splitlines()[0]) from exc

        return verify
    if code == ZSTD:
        import numcodecs

        return numcodecs.Zstd().decode
    if code == BLOSC:
        import numcodecs

        return numcodecs.Blosc().decode
    return None


class NotDirect(Exception):
    """This block cannot be read raw; use h5py's own path."""


class CorruptChunk(ValueError):
    """A stored chunk fails its Fletcher32 checksum: the dataset cannot be published."""


class DirectChunks:
    """Decode whole chunks of one dataset outside the h5py lock."""

    def __init__(self, ds: Any, lock: threading.Lock, reopen: Callable[[], Any]) -> None:
        plist = ds.id.get_create_plist()
        self.decoders = []
        for i in range(plist.get_nfilters()):
            decoder = _decoder(plist.get_filter(i)[0], ds.dtype.itemsize)
            if decoder is None:
                raise LookupError("filter without a decoder here")
            self.decoders.append(decoder)
        self.chunks = tuple(ds.chunks)
        self.shape = tuple(ds.shape)
        self.dtype = ds.dtype
        self.fill = ds.fillvalue
        self.lock = lock
        self.reopen = reopen

    @classmethod
    def for_dataset(cls, ds: Any, lock: threading.Lock, reopen: Callable[[], Any]) -> DirectChunks | None:
        if ds.chunks is None or ds.dtype.hasobject or ds.dtype.names or ds.dtype.subdtype or ds.is_virtual or ds.external:
            return None
        try:
            return cls(ds, lock, reopen)
        except (LookupError, RuntimeError):
            return None

    def aligned(self, sel: tuple[slice, ...]) -> bool:
        return len(sel) == len(self.shape) and all(
            s.start % c == 0 and (s.stop % c == 0 or s.stop == n) for s, c, n in zip(sel, self.chunks, self.shape)
        )

    def _decode(self, raw: bytes, mask: int) -> np.ndarray:
        for i in range(len(self.decoders) - 1, -1, -1):  # filters apply in order; undo them in reverse
            if not mask & (1 << i):
                raw = self.decoders[i](raw)
        return np.frombuffer(raw, dtype=self.dtype).reshape(self.chunks)

    def _judge(self, origin: tuple[int, ...], exc: Exception) -> None:
        """HDF5 reads a chunk that failed here: it also accepts the byte-swapped checksums of
        HDF5 before 1.6.3; when it refuses the chunk too, the chunk is corrupt."""
        region = tuple(slice(o, min(o + c, n)) for o, c, n in zip(origin, self.chunks, self.shape))
        try:
            with self.lock:
                self.reopen()[region]
        except Exception as h5_exc:
            raise CorruptChunk(f"chunk at {list(origin)} fails its Fletcher32 checksum: the stored data is corrupt ({exc})") from h5_exc

    def read(self, sel: tuple[slice, ...]) -> np.ndarray:
        """The block ``sel`` (whole chunks); raises :class:`NotDirect` when it must be read by h5py."""
        sel = tuple(slice(*s.indices(n)) for s, n in zip(sel, self.shape))
        if not self.aligned(sel):
            raise NotDirect
        out = np.empty(tuple(s.stop - s.start for s in sel), dtype=self.dtype)
        ranges = [range(s.start // c, math.ceil(s.stop / c)) for s, c in zip(sel, self.chunks)]
        for index in np.ndindex(*[len(r) for r in ranges]):
            origin = tuple(r[i] * c for r, i, c in zip(ranges, index, self.chunks))
            with self.lock:
                try:
                    dsid = self.reopen().id
                    written = dsid.get_chunk_info_by_coord(origin).byte_offset is not None
                    mask, raw = dsid.read_direct_chunk(origin) if written else (0, None)
                except Exception as exc:  # e.g. chunks larger than h5py's direct-read buffer
                    raise NotDirect from exc
            dest = tuple(slice(o - s.start, min(o + c, s.stop) - s.start) for o, c, s in zip(origin, self.chunks, sel))
            if raw is None:
                out[dest] = self.fill
                continue
            try:
                chunk = self._decode(raw, mask)
            except _Mismatch as exc:
                self._judge(origin, exc)
                raise NotDirect from exc
            except Exception as exc:  # a decoder that disagrees with this chunk: let HDF5 decide
                raise NotDirect from exc
            out[dest] = chunk[tuple(slice(0, d.stop - d.start) for d in dest)]
        return out


def unwritten(ds: Any, lock: threading.Lock, dtype: np.dtype) -> Callable[[tuple[slice, ...]], np.ndarray | None] | None:
    """For a chunked dataset some of whose chunks were never written (HDF5 allocates chunks as
    data comes: a preallocated detector stack whose scan stopped early stores a few frames of
    its shape): the :attr:`~publisher.nodes.ArrayNode.constant` of its regions, its fill value
    (as ``dtype``) where no chunk is stored. None when every chunk is stored (nothing to skip)
    or the fill value is undefined. The stored chunks are listed once (``H5Dchunk_iter``, or one
    ``H5Dget_chunk_info`` each on HDF5 before 1.14), a set of chunk indices: O(stored chunks)."""
    if ds.chunks is None or ds.is_virtual or ds.external or ds.dtype.hasobject or ds.dtype.subdtype or 0 in ds.shape:
        return None
    chunks = tuple(ds.chunks)
    with lock:
        try:
            stored = ds.id.get_num_chunks()
            fill = np.asarray(ds.fillvalue, dtype=dtype)
        except (RuntimeError, ValueError, TypeError):  # "fill value is undefined" in some old files
            return None
        if stored >= math.prod(math.ceil(n / c) for n, c in zip(ds.shape, chunks)):
            return None
        found: set[tuple[int, ...]] = set()

        def add(info: Any) -> None:
            found.add(tuple(o // c for o, c in zip(info.chunk_offset, chunks)))

        if hasattr(ds.id, "chunk_iter"):
            ds.id.chunk_iter(add)
        else:
            for i in range(stored):
                add(ds.id.get_chunk_info(i))

    def constant(sel: tuple[slice, ...]) -> np.ndarray | None:
        if not found:
            return fill
        ranges = [range(s.start // c, math.ceil(s.stop / c)) for s, c in zip(sel, chunks)]
        return None if any(index in found for index in itertools.product(*ranges)) else fill

    return constant
