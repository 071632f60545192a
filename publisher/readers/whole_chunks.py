"""Reads that cut a source's big compressed chunks, served from chunks decoded once.

HDF5 and NetCDF decode a compressed chunk whole to return any part of it, and a chunk larger
than the library's chunk cache is decoded again at every read. When the writer cuts such a
chunk into output chunks (one over ``2 * chunk_target_bytes`` is split: writers/chunking.py),
each slab read decoded the whole chunk once more: a dataset stored as one 256 MiB gzip chunk
took 32 decodes of it (33 s for two such datasets; memory one decoded chunk per thread). Here a
read that does not cover whole big chunks takes its values from chunks decoded once and kept
until every value of theirs has been read (the writer reads each value once), shared by an open
file's datasets and threads (a thread that needs a chunk another is decoding waits for it).
What is kept is bounded by the chunks a slab can span across the trailing dimensions (the band
the writer's slabs sweep, in C order) plus one, at most :data:`BAND_BYTES` plus one chunk.
h5py's or netCDF-C's chunk caches cannot do this: a cache as large as the chunk would be one per
open dataset (per variable), kept until it closes.
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
BIG_CHUNK_BYTES = 4 * 2**20
#: Decoded chunks kept for one dataset at most (beyond one chunk): a slab sweeping a band of
#: chunks across the trailing dimensions needs all of them, else it decodes each once a slab.
BAND_BYTES = 256 * 2**20

Read = Callable[[tuple[slice, ...]], np.ndarray]


class DecodedChunks:
    """Chunks decoded in one open file and not yet read through, by key, within a byte limit."""

    def __init__(self) -> None:
        #: key -> [chunk, values of it not yet read]
        self._chunks: OrderedDict[Hashable, list] = OrderedDict()
        self._loading: dict[Hashable, int] = {}
        self._changed = threading.Condition()

    def get(self, key: Hashable, decode: Callable[[], np.ndarray], nbytes: int, take: int, limit: int) -> np.ndarray:
        """The chunk ``key`` (decoded by ``decode`` if not kept), of which the caller reads ``take``
        values; kept within ``limit`` bytes (``nbytes`` each) until all its values have been read."""
        with self._changed:
            while key in self._loading:
                self._changed.wait()
            entry = self._chunks.get(key)
            if entry is not None:
                entry[1] -= take
                if entry[1] <= 0:  # read through: not needed again
                    del self._chunks[key]
                else:
                    self._chunks.move_to_end(key)
                return entry[0]
            self._loading[key] = nbytes
            self._trim(limit)  # before decoding: the chunks going out are not held through this one's decoding
        try:
            chunk = decode()
        except BaseException:
            with self._changed:
                del self._loading[key]
                self._changed.notify_all()
            raise
        with self._changed:  # kept and no longer loading at once: a waiting thread finds it, never decodes it again
            del self._loading[key]
            if chunk.size > take:
                self._chunks[key] = [chunk, chunk.size - take]
                self._trim(limit)
            self._changed.notify_all()
        return chunk

    def _trim(self, limit: int) -> None:
        held = sum(c.nbytes for c, _ in self._chunks.values()) + sum(self._loading.values())
        while self._chunks and held > limit:
            _, (chunk, _) = self._chunks.popitem(last=False)
            held -= chunk.nbytes


def covers_whole_chunks(sel: tuple[slice, ...], chunks: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """Whether ``sel`` (normalised slices, one a dimension) starts and ends on chunk borders (or the end)."""
    return all(s.start % c == 0 and (s.stop % c == 0 or s.stop == n) for s, c, n in zip(sel, chunks, shape))


def decoded_once(read: Read, shape: tuple[int, ...], chunks: tuple[int, ...] | None, itemsize: int, cache: DecodedChunks, name: Hashable) -> Read:
    """``read``, except that reads cutting chunks of :data:`BIG_CHUNK_BYTES` or more are put
    together from whole chunks read by ``read`` once each (kept in ``cache`` under ``name``)."""
    if not chunks or len(chunks) != len(shape) or 0 in shape or math.prod(chunks) * itemsize < BIG_CHUNK_BYTES:
        return read
    chunk_bytes = math.prod(chunks) * itemsize
    band = math.prod(math.ceil(n / c) for n, c in zip(shape[1:], chunks[1:]))
    limit = min(band * chunk_bytes, max(BAND_BYTES, chunk_bytes)) + chunk_bytes

    def read_cut(sel: tuple[slice, ...]) -> np.ndarray:
        if len(sel) != len(shape):
            return read(sel)
        sel = tuple(slice(*s.indices(n)) for s, n in zip(sel, shape))
        if any(s.step != 1 or s.stop <= s.start for s in sel) or covers_whole_chunks(sel, chunks, shape):
            return read(sel)
        out: np.ndarray | None = None
        ranges = [range(s.start // c, math.ceil(s.stop / c)) for s, c in zip(sel, chunks)]
        for index in product(*ranges):
            origin = tuple(i * c for i, c in zip(index, chunks))
            region = tuple(slice(o, min(o + c, n)) for o, c, n in zip(origin, chunks, shape))
            lo = [max(s.start, o) for s, o in zip(sel, origin)]
            hi = [min(s.stop, r.stop) for s, r in zip(sel, region)]
            chunk = cache.get((name, index), lambda region=region: read(region), chunk_bytes, math.prod(b - a for a, b in zip(lo, hi)), limit)
            if out is None:
                out = np.empty(tuple(s.stop - s.start for s in sel), dtype=chunk.dtype)
            out[tuple(slice(a - s.start, b - s.start) for a, b, s in zip(lo, hi, sel))] = chunk[tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, origin))]
        assert out is not None  # a non-empty selection meets at least one chunk
        return out

    return read_cut
