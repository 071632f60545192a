"""Reads that cut a source's big compressed chunks, served from chunks decoded once.

HDF5 and NetCDF decode a compressed chunk whole to return any part of it, and a chunk larger
than the library's chunk cache is decoded again at every read. When the writer cuts such a
chunk into output chunks (one over ``2 * chunk_target_bytes`` is split: writers/chunking.py),
each slab read decoded the whole chunk once more: a dataset stored as one 256 MiB gzip chunk
took 32 decodes of it (33 s for two such datasets; memory one decoded chunk per thread). Here a
read that does not cover whole big chunks takes its values from chunks decoded once and kept,
the last of an open file, shared by its datasets and threads (a thread that needs a
chunk another is decoding waits for it). h5py's chunk cache cannot do this: a cache as large as
the chunk would be one per open dataset, kept until the dataset closes.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from itertools import product

import numpy as np

#: Chunks of at least this many bytes are decoded once for reads that cut them; smaller ones are
#: read by the library as asked (a border chunk decoded twice costs little).
BIG_CHUNK_BYTES = 16 * 2**20
#: Decoded chunks kept per open file: the one being read (the writer's slabs go through an array
#: in order; a thread still copying from the chunk before holds it until its slab is done).
KEEP = 1

Read = Callable[[tuple[slice, ...]], np.ndarray]


class DecodedChunks:
    """The last :data:`KEEP` chunks decoded in one open file, by key."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._chunks: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._loading: set[Hashable] = set()
        self._changed = threading.Condition()

    def get(self, key: Hashable, decode: Callable[[], np.ndarray]) -> np.ndarray:
        with self._changed:
            while key in self._loading:
                self._changed.wait()
            if key in self._chunks:
                self._chunks.move_to_end(key)
                return self._chunks[key]
            self._loading.add(key)
            self._trim()  # before decoding: the chunk going out is not held through the next one's decoding
        try:
            chunk = decode()
        finally:
            with self._changed:
                self._loading.discard(key)
                self._changed.notify_all()
        with self._changed:
            self._chunks[key] = chunk
            self._trim()
        return chunk

    def _trim(self) -> None:
        while self._chunks and len(self._chunks) + len(self._loading) > self.keep:
            self._chunks.popitem(last=False)


def _covers_whole_chunks(sel: tuple[slice, ...], chunks: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    return all(s.start % c == 0 and (s.stop % c == 0 or s.stop == n) for s, c, n in zip(sel, chunks, shape))


def decoded_once(read: Read, shape: tuple[int, ...], chunks: tuple[int, ...] | None, itemsize: int, cache: DecodedChunks, name: Hashable) -> Read:
    """``read``, except that reads cutting chunks of :data:`BIG_CHUNK_BYTES` or more are put
    together from whole chunks read by ``read`` once each (kept in ``cache`` under ``name``)."""
    if not chunks or len(chunks) != len(shape) or 0 in shape or math.prod(chunks) * itemsize < BIG_CHUNK_BYTES:
        return read

    def read_cut(sel: tuple[slice, ...]) -> np.ndarray:
        if len(sel) != len(shape):
            return read(sel)
        sel = tuple(slice(*s.indices(n)) for s, n in zip(sel, shape))
        if any(s.step != 1 or s.stop <= s.start for s in sel) or _covers_whole_chunks(sel, chunks, shape):
            return read(sel)
        out: np.ndarray | None = None
        ranges = [range(s.start // c, math.ceil(s.stop / c)) for s, c in zip(sel, chunks)]
        for index in product(*ranges):
            origin = tuple(i * c for i, c in zip(index, chunks))
            region = tuple(slice(o, min(o + c, n)) for o, c, n in zip(origin, chunks, shape))
            chunk = cache.get((name, index), lambda region=region: read(region))
            if out is None:
                out = np.empty(tuple(s.stop - s.start for s in sel), dtype=chunk.dtype)
            lo = [max(s.start, o) for s, o in zip(sel, origin)]
            hi = [min(s.stop, r.stop) for s, r in zip(sel, region)]
            out[tuple(slice(a - s.start, b - s.start) for a, b, s in zip(lo, hi, sel))] = chunk[tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, origin))]
        assert out is not None  # a non-empty selection meets at least one chunk
        return out

    return read_cut
