"""A published Zarr array (v3 or v2, as Skyshelf writes them), read chunk by chunk.

zarr-python would cost ~300 ms to import in a Lambda; Skyshelf's own arrays use a small set
of layouts (regular grid, one serializer, at most one compressor), so reading them needs only
the metadata document, numpy and numcodecs.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import math
from typing import Any

import numpy as np

from ..errors import BadRequest, NotFound, UnsupportedError
from ..stores import Store
from ..zarr_layout import chunk_key, dtype_from_v3, numcodecs_codec
from .cache import DECODED

#: Stored compressors whose output is a valid HTTP body in this Content-Encoding as it is.
_HTTP_ENCODINGS = {"zstd": "zstd", "gzip": "gzip"}


def _little(dtype: np.dtype) -> bool:
    """Plain little-endian (or single-byte) values: their bytes are what octet-stream sends."""
    return dtype.names is None and not dtype.hasobject and dtype.str[0] in "<|"


def _v2_descr(dtype: Any) -> Any:
    """A v2 ``dtype`` as numpy takes it: structured fields (nested ones too) as tuples."""
    if not isinstance(dtype, list):
        return dtype
    return [(f[0], _v2_descr(f[1])) if len(f) == 2 else (f[0], _v2_descr(f[1]), tuple(f[2])) for f in dtype]


@functools.lru_cache(maxsize=512)
def published_array(store: Store, url: str) -> PublishedArray:
    """The array at ``url``, its metadata read once per process (published metadata never changes)."""
    return PublishedArray(store, url)


class PublishedArray:
    """Shape, dtype and chunk grid from the metadata; :meth:`read` assembles any selection."""

    def __init__(self, store: Store, url: str) -> None:
        self.store, self.url = store, url.rstrip("/")
        try:
            doc = json.loads(store.read_bytes(f"{self.url}/zarr.json"))
            self.zarr_format = 3
        except NotFound:
            doc = json.loads(store.read_bytes(f"{self.url}/.zarray"))
            self.zarr_format = 2
        self.shape: tuple[int, ...] = tuple(doc["shape"])
        self.compressor: Any = None
        if self.zarr_format == 3:
            self.chunks = tuple(doc["chunk_grid"]["configuration"]["chunk_shape"])
            self.dtype = dtype_from_v3(doc["data_type"])
            self.separator = doc["chunk_key_encoding"].get("configuration", {}).get("separator", "/")
            serializer, *rest = doc["codecs"]
            self.vlen = serializer["name"] == "vlen-utf8"
            if serializer["name"] == "bytes" and serializer.get("configuration", {}).get("endian") == "big":
                self.dtype = self.dtype.newbyteorder(">")
            if len(rest) > 1:
                raise UnsupportedError(f"{url}: more than one compressor")
            self.compressor = numcodecs_codec(rest[0]) if rest else None
            self.fill = doc.get("fill_value")
            plain = serializer["name"] == "bytes" and _little(self.dtype)
            self.http_encoding = _HTTP_ENCODINGS.get(rest[0]["name"]) if plain and len(rest) == 1 else None
        else:
            import numcodecs

            self.chunks = tuple(doc["chunks"])
            self.dtype = np.dtype(_v2_descr(doc["dtype"]))
            self.separator = doc.get("dimension_separator", ".")
            self.vlen = any(f.get("id") == "vlen-utf8" for f in doc.get("filters") or [])
            if self.vlen:
                self.dtype = np.dtype(object)
            self.compressor = numcodecs.get_codec(doc["compressor"]) if doc.get("compressor") else None
            self.fill = doc.get("fill_value")
            plain = not doc.get("filters") and doc.get("order", "C") == "C" and _little(self.dtype)
            self.http_encoding = _HTTP_ENCODINGS.get((doc.get("compressor") or {}).get("id", "")) if plain else None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def chunk_key(self, index: tuple[int, ...]) -> str:
        return f"{self.url}/{chunk_key(index, self.zarr_format, self.separator)}"

    def grid(self) -> tuple[int, ...]:
        return tuple(math.ceil(n / c) if c else 0 for n, c in zip(self.shape, self.chunks))

    def _chunk(self, index: tuple[int, ...]) -> np.ndarray:
        """One whole stored chunk (edge chunks padded, as Zarr stores them), read-only."""
        key = (self.store.url, self.chunk_key(index))
        chunk = DECODED.get(key)
        if chunk is None:
            chunk = self._decode_chunk(index)
            DECODED.put(key, chunk)
        return chunk

    def _decode_chunk(self, index: tuple[int, ...]) -> np.ndarray:
        try:
            raw: Any = self.store.read_bytes(self.chunk_key(index))
        except NotFound:  # never written: the fill value (a structured one is base64 of its bytes)
            if self.dtype.names:
                fill = np.frombuffer(base64.b64decode(self.fill), self.dtype)[0] if isinstance(self.fill, str) else np.zeros((), self.dtype)
                return np.full(self.chunks, fill, dtype=self.dtype)
            return np.full(self.chunks, self.fill if self.fill is not None else 0, dtype=self.dtype)
        if self.compressor is not None:
            raw = self.compressor.decode(raw)
        if self.vlen:
            import numcodecs

            return numcodecs.VLenUTF8().decode(raw).reshape(self.chunks)
        return np.frombuffer(raw, dtype=self.dtype).reshape(self.chunks)

    def stored_block(self, index: tuple[int, ...], accepted: set[str]) -> tuple[bytes, str] | None:
        """Block ``index`` as its stored bytes and their HTTP ``Content-Encoding``, when those bytes
        already are what ``application/octet-stream`` sends, compressed in an encoding the client
        accepts (a zstd frame or gzip stream of the C-order little-endian values): an interior,
        written chunk of a plain layout. Then nothing is decoded or encoded again."""
        if self.http_encoding not in accepted or len(index) != self.ndim or not self.shape:
            return None
        if any(not 0 <= i or (i + 1) * c > n for i, c, n in zip(index, self.chunks, self.shape)):
            return None  # outside the grid, or an edge chunk (stored padded): the general path answers
        try:
            return self.store.read_bytes(self.chunk_key(index)), self.http_encoding
        except NotFound:
            return None

    def block(self, index: tuple[int, ...]) -> np.ndarray:
        """Chunk ``index``, trimmed at the array's edges (Tiled's ``array/block``)."""
        grid = self.grid()
        if len(index) != self.ndim or any(not 0 <= i < n for i, n in zip(index, grid)):
            raise BadRequest(f"block {list(index)} is outside the chunk grid {list(grid)}")
        sel = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(index, self.chunks, self.shape))
        return self.read(sel)

    def read(self, sel: tuple[slice | int, ...] = ()) -> np.ndarray:
        """A basic-indexing selection (ints and slices, with steps), reading only the chunks it covers."""
        sel = tuple(sel) + (slice(None),) * (self.ndim - len(sel))
        if len(sel) > self.ndim:
            raise BadRequest(f"slice has {len(sel)} dimensions, the array {self.ndim}")
        if not self.shape:
            return self._chunk(())
        spans, post = [], []
        for s, n in zip(sel, self.shape):
            if isinstance(s, int):
                i = s + n if s < 0 else s
                if not 0 <= i < n:
                    raise BadRequest(f"slice index {s} is out of range for a dimension of size {n}")
                spans.append((i, i + 1))
                post.append(0)
            else:
                r = range(*s.indices(n))
                if not r:
                    spans.append((0, 0))
                    post.append(slice(None))
                    continue
                lo, hi = min(r[0], r[-1]), max(r[0], r[-1]) + 1
                end = r[-1] - lo + (1 if r.step > 0 else -1)
                spans.append((lo, hi))
                post.append(slice(r[0] - lo, end if end >= 0 else None, r.step))
        ranges = [range(a // c, math.ceil(b / c)) if b > a else range(0) for (a, b), c in zip(spans, self.chunks)]
        if all(len(r) == 1 for r in ranges):  # inside one chunk: a view of it, no copy (read-only)
            index = tuple(r[0] for r in ranges)
            within = tuple(slice(a - i * c, b - i * c) for i, c, (a, b) in zip(index, self.chunks, spans))
            return self._chunk(index)[within][tuple(post)]
        out = np.empty(tuple(b - a for a, b in spans), dtype=self.dtype)
        for index in itertools.product(*ranges):
            chunk = self._chunk(index)
            src, dst = [], []
            for i, c, (a, b) in zip(index, self.chunks, spans):
                lo, hi = max(a, i * c), min(b, (i + 1) * c)
                src.append(slice(lo - i * c, hi - i * c))
                dst.append(slice(lo - a, hi - a))
            out[tuple(dst)] = chunk[tuple(src)]
        return out[tuple(post)]


def level_factors(levels: int, factors: Any = None) -> list[int]:
    """Each pyramid level's reduction of level 0: the build's note when it is one (1, then
    increasing powers of 2, each dividing the next), else 2**k (stores built before level 1 was 4x)."""
    if (isinstance(factors, list) and len(factors) == levels and factors[:1] == [1]
            and all(type(f) is int and f > 0 and f & (f - 1) == 0 for f in factors)
            and all(b > a for a, b in zip(factors, factors[1:]))):
        return factors
    return [2**k for k in range(levels)]


def preview_level(data_url: str, factors: list[int], shape: tuple[int, ...], sel: tuple[Any, ...], size: int) -> tuple[str, tuple[Any, ...], int]:
    """Where a picture of ``array[sel]`` at most ``size`` pixels a side reads from: the coarsest of
    the image's pyramid levels (docs/catalog.md; level k reduced ``factors[k]`` x ``factors[k]``,
    :func:`level_factors`) still at least ``size`` over the selection, as (its URL, the selection
    in its indices, the level number). A selection that steps its last two dimensions by ``s``
    (the browse page's ``::16`` of a large image) reads level ``k`` with step ``s / factors[k]``,
    for the largest factor dividing both steps: the same number of pixels, each the mean of its
    block rather than one sample. Level 0 (``data_url``, ``sel``) when the last two dimensions are
    indexed, stepped backwards or by steps no level divides. Level paths and shapes follow from
    ``data_url``, ``shape`` and the factors alone (never from metadata, which a source file can set)."""
    levels = len(factors)
    full = tuple(sel) + (slice(None),) * (len(shape) - len(sel))
    if levels < 2 or len(full) != len(shape) or len(shape) < 2 or not all(isinstance(s, slice) and (s.step or 1) > 0 for s in full[-2:]):
        return data_url, sel, 0
    ranges = [range(*s.indices(n)) for s, n in zip(full[-2:], shape[-2:])]
    if not all(ranges):
        return data_url, sel, 0
    steps = [r.step for r in ranges]
    extent = max(r[-1] + 1 - r[0] for r in ranges)
    k = 0
    if max(steps) > 1:  # stepped: the level whose pixels the steps skip over, the sampling kept
        while k + 1 < levels and all(st % factors[k + 1] == 0 for st in steps):
            k += 1
    else:
        while k + 1 < levels and extent // factors[k + 1] >= size:
            k += 1
    if k == 0:
        return data_url, sel, 0
    f = factors[k]
    level_shape = [n // f for n in shape[-2:]]  # each level floors its reduction, and floors compose: n // f
    within = []
    for r, n in zip(ranges, level_shape):
        if r.step == 1:  # the span, its ends rounded outwards, at least one pixel
            a = min(r[0] // f, n - 1)
            within.append(slice(a, max(min(-(-(r[-1] + 1) // f), n), a + 1)))
            continue
        start, step = r[0] // f, r.step // f
        stop = start + (len(r) - 1) * step + 1
        if stop > n:  # the selection's last samples fall in the floored-off edge: no level holds them
            return data_url, sel, 0
        within.append(slice(start, stop, step if step > 1 else None))
    parent, _, name = data_url.rpartition("/")
    return f"{parent}/{name}.levels/{k}", (*full[:-2], *within), k
