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

from .whole_chunks import covers_whole_chunks

DEFLATE, SHUFFLE, FLETCHER32, ZSTD, BLOSC = 1, 2, 3, 32015, 32001


class _Mismatch(Exception):
    """A chunk's Fletcher32 checksum differs from the one HDF5 stored with it."""


#: A filter's decoding: a bytes-like object in, one out (not copied to ``bytes``: a big chunk's
#: every copy is its size again).
Decoder = Callable[[Any], Any]


#: Inflated from pieces of this many stored bytes, giving at most :data:`INFLATE_PIECE` at a time,
#: into one buffer of the chunk's size: ``zlib.decompress`` gathers its output in blocks and joins
#: them (twice a big chunk's size at its peak), and a stream fed the whole input copies what it
#: has not used yet at every step.
INFLATE_INPUT, INFLATE_PIECE = 2**20, 16 * 2**20


def _inflater(size: int) -> Decoder:
    def inflate(raw: Any) -> Any:
        try:
            return whole(raw)
        except _Enough as enough:  # (its buffer: this call's, whatever other threads decode meanwhile)
            return memoryview(enough.args[0])[: size + SLACK]

    def whole(raw: Any) -> Any:
        stream, out, at = zlib.decompressobj(), bytearray(size), 0
        view = memoryview(raw).cast("B")
        for start in range(0, len(view), INFLATE_INPUT):
            data = view[start : start + INFLATE_INPUT]
            while data and not stream.eof:
                piece = stream.decompress(data, INFLATE_PIECE)
                at = _put(out, at, piece, size)
                data = stream.unconsumed_tail
        while not stream.eof:  # output still held back by INFLATE_PIECE
            piece = stream.decompress(b"", INFLATE_PIECE)
            if not piece:
                raise zlib.error("incomplete or truncated deflate stream")
            at = _put(out, at, piece, size)
        return out if at == size else memoryview(out)[:at]  # (``del out[at:]`` would copy it)

    return inflate


#: Bytes a stream may decode past its chunk's size (a checksum filter applied before deflate adds 4;
#: a long chunk's first bytes are what HDF5 keeps): past them, decoding stops.
SLACK = 4096


class _Enough(Exception):
    """The stream gave its chunk's size and the slack: the rest is never decoded."""


def _put(out: bytearray, at: int, piece: bytes, size: int) -> int:
    """``piece`` into ``out`` at ``at``; a stream that inflates past the chunk's ``size`` and the
    slack stops there (a few MB of zeros said to be a 100-byte chunk took 4 GB: a decompression
    bomb): its first bytes are kept, as HDF5 keeps a long chunk's."""
    room = size + SLACK - at
    out[at : at + min(len(piece), room)] = piece[:room]
    if len(piece) > room:
        raise _Enough(out)
    return at + len(piece)


def _bounded(decode: Decoder, claimed: Callable[[Any], int], size: int, what: str) -> Decoder:
    """``decode``, once the size the stream says it holds (``claimed``) is within the chunk's:
    zstd and blosc allocate what their header claims (a 136 KB zstd frame claiming 4 GiB took 4 GB)."""
    def checked(raw: Any) -> Any:
        if claimed(raw) > size + SLACK:
            raise _WrongSize(f"its {what} stream says {claimed(raw)} bytes, more than a chunk's {size}")
        return decode(raw)

    return checked


def _zstd_size(raw: Any) -> int:
    """The content size a zstd frame's header states (RFC 8878 3.1.1.1; the codecs expose none):
    0 when it states none (then the decoder's own bound holds: HDF5's filter always states it)."""
    head = bytes(memoryview(raw).cast("B")[:18])
    if len(head) < 5 or head[:4] != b"\x28\xb5\x2f\xfd":
        return 0
    descriptor = head[4]
    single = (descriptor >> 5) & 1
    fcs = {0: single, 1: 2, 2: 4, 3: 8}[descriptor >> 6]
    start = 5 + (0 if single else 1) + (0, 1, 2, 4)[descriptor & 3]
    if not fcs or len(head) < start + fcs:
        return 0
    value = int.from_bytes(head[start : start + fcs], "little")
    return value + 256 if fcs == 2 else value


def _blosc_size(raw: Any) -> int:
    """The size a blosc buffer's header states (bytes 4-8, little-endian: its ``nbytes``)."""
    head = bytes(memoryview(raw).cast("B")[:8])
    return int.from_bytes(head[4:8], "little") if len(head) == 8 else 0


def _decoder(code: int, itemsize: int, size: int) -> Decoder | None:
    if code == DEFLATE:
        return _inflater(size)
    if code == SHUFFLE:
        import numcodecs

        shuffle = numcodecs.Shuffle(elementsize=itemsize)
        return shuffle.decode
    if code == FLETCHER32:  # the checksum trails the data; numcodecs computes it as HDF5 does
        import numcodecs

        checksum = numcodecs.Fletcher32()

        def verify(raw: Any) -> Any:
            try:
                return checksum.decode(raw)
            except RuntimeError as exc:
                raise _Mismatch(str(exc).splitlines()[0]) from exc

        return verify
    if code == ZSTD:
        import numcodecs

        return _bounded(numcodecs.Zstd().decode, _zstd_size, size, "zstd")
    if code == BLOSC:
        import numcodecs

        return _bounded(numcodecs.Blosc().decode, _blosc_size, size, "blosc")
    return None


class NotDirect(Exception):
    """This block cannot be read raw; use h5py's own path."""


class _WrongSize(Exception):
    """A chunk whose stored bytes decode (or, with its filters skipped, are) to fewer bytes than a chunk's."""


class CorruptChunk(ValueError):
    """A stored chunk fails its Fletcher32 checksum or decodes short: the dataset cannot be published."""


class DirectChunks:
    """Decode whole chunks of one dataset outside the h5py lock."""

    def __init__(self, ds: Any, lock: threading.Lock, reopen: Callable[[], Any]) -> None:
        plist = ds.id.get_create_plist()
        codes = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
        checked = FLETCHER32 in codes  # the checksum's 4 bytes follow the data it checks
        self.decoders: list[Decoder] = []
        for code in codes:
            decoder = _decoder(code, ds.dtype.itemsize, math.prod(ds.chunks) * ds.dtype.itemsize + 4 * checked)
            if decoder is None:
                raise LookupError("filter without a decoder here")
            self.decoders.append(decoder)
        self.chunks = tuple(ds.chunks)
        self.shape = tuple(ds.shape)
        self.dtype = ds.dtype
        self.fill = ds.fillvalue
        #: Fill time "never": HDF5 leaves chunks never written unfilled, so those are h5py's to read
        self.unfilled = plist.get_fill_time() == 1  # (h5d.FILL_TIME_NEVER)
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
        return len(sel) == len(self.shape) and covers_whole_chunks(sel, self.chunks, self.shape)

    def _decode(self, raw: bytes, mask: int) -> np.ndarray:
        for i in range(len(self.decoders) - 1, -1, -1):  # filters apply in order; undo them in reverse
            if not mask & (1 << i):
                raw = self.decoders[i](raw)
        size, expected = memoryview(raw).nbytes, math.prod(self.chunks) * self.dtype.itemsize
        if size < expected:  # short: HDF5 fills the rest from uninitialised memory, other values at each read
            raise _WrongSize(f"its filters give {size} bytes, not a chunk's {expected}")
        return np.frombuffer(raw, dtype=self.dtype, count=math.prod(self.chunks)).reshape(self.chunks)  # (long: HDF5 keeps a chunk's first bytes)

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
        ranges = [range(s.start // c, math.ceil(s.stop / c)) for s, c in zip(sel, self.chunks)]
        #: One chunk: its decoded buffer as it is (read-only after zstd or blosc), not copied (a big chunk twice over)
        out = None if all(len(r) == 1 for r in ranges) else np.empty(tuple(s.stop - s.start for s in sel), dtype=self.dtype)
        for index in np.ndindex(*[len(r) for r in ranges]):
            origin = tuple(r[i] * c for r, i, c in zip(ranges, index, self.chunks))
            with self.lock:
                try:
                    dsid = self.reopen().id
                    info = dsid.get_chunk_info_by_coord(origin)
                    # into a buffer of the stored size: without ``out`` h5py copies its buffer to bytes
                    mask, raw = dsid.read_direct_chunk(origin, out=bytearray(info.size)) if info.byte_offset is not None else (0, None)
                except Exception as exc:  # e.g. chunks larger than h5py's direct-read buffer
                    raise NotDirect from exc
            dest = tuple(slice(o - s.start, min(o + c, s.stop) - s.start) for o, c, s in zip(origin, self.chunks, sel))
            if raw is None:
                if self.unfilled:
                    raise NotDirect
                if out is None:
                    return np.full(tuple(s.stop - s.start for s in sel), self.fill, dtype=self.dtype)
                out[dest] = self.fill
                continue
            try:
                chunk = self._decode(raw, mask)
            except _Mismatch as exc:
                self._judge(origin, exc)
                raise NotDirect from exc
            except _WrongSize as exc:
                raise CorruptChunk(f"chunk at {list(origin)} is corrupt: {exc}") from None
            except Exception as exc:  # a decoder that disagrees with this chunk: let HDF5 decide
                raise NotDirect from exc
            if out is None:
                return chunk[tuple(slice(0, d.stop - d.start) for d in dest)]
            out[dest] = chunk[tuple(slice(0, d.stop - d.start) for d in dest)]
        assert out is not None
        return out


#: Datasets with at most this many stored chunks have them listed once (``H5Dchunk_iter``: a few
#: microseconds each, then lookups in a set without h5py's lock); more are looked up region by region.
LISTED_CHUNKS = 10_000


#: A virtual dataset of more mappings than this is read throughout (each region is checked against every one).
MAPPINGS = 4096


def _unmapped(ds: Any, lock: threading.Lock, dtype: np.dtype) -> Callable[[tuple[slice, ...]], np.ndarray | None] | None:
    """For a virtual dataset: its fill value in regions no source maps to (HDF5 reads them so),
    unread. A 2 KB file declaring 10**12 values around 3 bytes of source was read and compressed
    whole. None when its mappings cover it (or are too many, or unbounded)."""
    with lock:
        try:
            fill = np.asarray(ds.fillvalue, dtype=dtype)
            boxes = [m.vspace.get_select_bounds() for m in ds.virtual_sources()]
        except (RuntimeError, ValueError, TypeError, OSError):  # (an unlimited mapping has no bounds)
            return None
    if len(boxes) > MAPPINGS or any(b is None for b in boxes):
        return None
    if sum(math.prod(h - lo + 1 for lo, h in zip(*box)) for box in boxes) >= math.prod(ds.shape):
        return None  # (covered, as a stack of frames is: no region to skip)

    def constant(sel: tuple[slice, ...]) -> np.ndarray | None:
        mapped = any(all(s.start <= h and s.stop > lo for s, lo, h in zip(sel, *box)) for box in boxes)
        return None if mapped else fill

    return constant


def unwritten(ds: Any, lock: threading.Lock, reopen: Callable[[], Any], dtype: np.dtype) -> Callable[[tuple[slice, ...]], np.ndarray | None] | None:
    """For a contiguous dataset never written, its fill value throughout; for a virtual one, where
    no source maps (:func:`_unmapped`); for a chunked dataset some of whose chunks were never written (HDF5 allocates chunks as
    data comes: a preallocated detector stack whose scan stopped early stores a few frames of
    its shape): the :attr:`~publisher.nodes.ArrayNode.constant` of its regions, its fill value
    (as ``dtype``) where no chunk is stored. The stored chunks are listed at the first question
    when there are at most :data:`LISTED_CHUNKS` (a region is then a set lookup per chunk), else
    a region's chunks are looked up one by one (``H5Dget_chunk_info_by_coord``) until a stored
    one is found (a dense region: one lookup). None when every chunk is stored, or when what HDF5
    reads there is not the fill value as given (fill value undefined, fill time "never": left
    unfilled; booleans, whose fill byte numpy would turn into 0 or 1)."""
    from h5py import h5d

    if ds.external or ds.dtype.hasobject or ds.dtype.subdtype or ds.dtype.kind == "b" or 0 in ds.shape:
        return None
    if ds.is_virtual:
        return _unmapped(ds, lock, dtype)
    if ds.chunks is None:  # contiguous: all of it is the fill value while its space was never allocated
        with lock:
            try:
                plist = ds.id.get_create_plist()
                if ds.id.get_space_status() != h5d.SPACE_STATUS_NOT_ALLOCATED or plist.get_fill_time() == h5d.FILL_TIME_NEVER:
                    return None
                fill = np.asarray(ds.fillvalue, dtype=dtype)
            except (RuntimeError, ValueError, TypeError):
                return None
        # (read, 10**11 bytes of a 1.4 KB file's fill value took 74 s: a day for the chunk limit's)
        return lambda sel: fill
    chunks = tuple(ds.chunks)
    with lock:
        try:
            if ds.id.get_create_plist().get_fill_time() == h5d.FILL_TIME_NEVER:
                return None
            fill = np.asarray(ds.fillvalue, dtype=dtype)
            stored = ds.id.get_num_chunks()
        except (RuntimeError, ValueError, TypeError):  # "fill value is undefined" in some old files
            return None
    if stored >= math.prod(math.ceil(n / c) for n, c in zip(ds.shape, chunks)):
        return None
    listed: list[set[tuple[int, ...]]] = []  # the stored chunks' indices, once listed

    def stored_chunks() -> set[tuple[int, ...]]:
        with lock:
            if not listed:
                found: set[tuple[int, ...]] = set()
                dsid = reopen().id
                if hasattr(dsid, "chunk_iter"):
                    dsid.chunk_iter(lambda info: found.add(tuple(o // c for o, c in zip(info.chunk_offset, chunks))))
                else:  # HDF5 before 1.14
                    found.update(tuple(o // c for o, c in zip(dsid.get_chunk_info(i).chunk_offset, chunks)) for i in range(stored))
                listed.append(found)
            return listed[0]

    def constant(sel: tuple[slice, ...]) -> np.ndarray | None:
        indices = itertools.product(*[range(s.start // c, math.ceil(s.stop / c)) for s, c in zip(sel, chunks)])
        if stored <= LISTED_CHUNKS:
            found = listed[0] if listed else stored_chunks()
            return None if any(index in found for index in indices) else fill
        with lock:
            dsid = reopen().id
            for index in indices:
                if dsid.get_chunk_info_by_coord(tuple(i * c for i, c in zip(index, chunks))).byte_offset is not None:
                    return None
        return fill

    return constant
