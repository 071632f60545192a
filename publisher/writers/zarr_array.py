"""Arrays → Zarr (v3 by default, v2 selectable), written directly: metadata documents and encoded chunks.

A release prefix is always new and each array is written once, whole, so zarr-python's
general machinery (an event-loop round trip and a metadata read per call, ~4 ms per array)
is not needed: documents come from zarr's own dtype and codec definitions, chunks are
encoded with numcodecs in a thread pool (the codecs release the GIL), and consolidated
metadata is assembled in memory. Memory stays bounded: at most ``2 * workers`` slabs of
``slab_bytes`` are in flight, whatever the array's size. Every chunk is written, even one
equal to the fill value, so values (NaN payloads and sentinels included) read back bit-exact.
"""

from __future__ import annotations

import base64
import bisect
import copy
import functools
import itertools
import json
import math
import struct
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numcodecs
import numpy as np
from zarr.codecs import BytesCodec, VLenUTF8Codec
from zarr.core.dtype import parse_dtype

from ..config.models import Codec
from ..nodes import ArrayNode
from ..stores import Store
from ..structures import ArrayStructure, DataType, regular_chunks
from ..zarr_layout import chunk_key, numcodecs_codec
from . import pyramid
from .base import Spread, WriteContext, Written, discard, register
from .chunking import auto_chunks, bounded, run_slabs, slabs
from .codecs import compressor_spec


@dataclass
class ArrayWritten:
    chunks: tuple[int, ...]
    bytes_in: int
    #: Longest string (in characters) of a variable-length string array: Tiled serves those as fixed-width unicode.
    max_chars: int | None = None


def _xarray_fill_attr(value: Any, dtype: np.dtype) -> Any:
    """``_FillValue`` as xarray's Zarr v3 backend stores it (floats as base64 of a little-endian double)."""
    if dtype.kind == "f" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return base64.standard_b64encode(struct.pack("<d", float(value))).decode()
    return value


def _default_fill(dtype: np.dtype) -> Any:
    if dtype.kind == "O":
        return ""
    if dtype.kind == "S":
        return b""
    if dtype.kind == "b":
        return False
    if dtype.kind in "mM":  # CF times, decoded: zarr's datetime64/timedelta64 data types
        return np.zeros((), dtype)[()]
    return 0


def _dumps(doc: dict[str, Any]) -> bytes:
    # compact: json's C encoder (indent would force the pure-Python one)
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


@functools.lru_cache(maxsize=256)
def _zarr_dtype(dtype: Any, zarr_format: int) -> Any:
    """zarr's data type for a numpy one, looked up once per dtype: the registry walk costs ~50 µs,
    which a tree of small arrays pays per array (zarr's data types are immutable)."""
    if isinstance(dtype, np.dtype) and dtype.kind in "iu" and dtype.fields is None:
        # numpy's long long ('q', 'Q': what tifffile gives for 64-bit samples) is a class of its own
        # beside long ('l', 'L'), though the same type here; zarr 3.1 matches by class and found none
        dtype = np.dtype(dtype.str)
    return parse_dtype(dtype, zarr_format=zarr_format)


class _Layout:
    """How one array is laid out: its dtype, codecs and chunk keys in one Zarr format."""

    def __init__(self, dtype: np.dtype, shape: tuple[int, ...], chunks: tuple[int, ...], fill: Any, codec: Codec, zarr_format: int) -> None:
        self.is_string = dtype.kind == "O"
        self.dtype = dtype if self.is_string or dtype.byteorder in "|<" or dtype.itemsize == 1 else dtype.newbyteorder("<")
        self.zdtype = _zarr_dtype(str if self.is_string else self.dtype, zarr_format)
        self.shape, self.chunks, self.fill, self.zarr_format = shape, chunks, fill, zarr_format
        self.spec = compressor_spec(codec, max(dtype.itemsize, 1))
        self.compressor = numcodecs_codec(self.spec) if self.spec else None
        self._constant: dict[tuple[tuple[int, ...], bytes], bytes] = {}  # encode_constant's, this array's
        # the documents' part every array of this layout shares (all but attributes and dimensions)
        self._v3 = self._documents(None, None)["zarr.json"] if zarr_format == 3 else None

    def for_array(self) -> _Layout:
        """This layout for one more array: shared but for its constant chunks (an array's own:
        kept for the build, 256 layouts' could hold gigabytes of uncompressed chunks)."""
        layout = copy.copy(self)
        layout._constant = {}
        return layout

    def documents(self, attrs: dict[str, Any], dims: list[str]) -> dict[str, dict[str, Any]]:
        if self._v3 is not None:
            return {"zarr.json": {**self._v3, "attributes": attrs, "dimension_names": dims}}
        return self._documents(attrs, dims)

    def _documents(self, attrs: dict[str, Any] | None, dims: list[str] | None) -> dict[str, dict[str, Any]]:
        """The array's metadata documents, from zarr's own data type and codec objects. Written here
        rather than by ``zarr.create_array`` (474 µs an array against 32 µs, measured: a tree of
        10,000 small arrays would pay 4.4 s); ``tests/test_zarr_writer.py`` holds them equal to
        what ``zarr.create_array`` writes."""
        if self.fill is not None and self.dtype.names:
            # zarr's form for a structured fill, base64 of its bytes, made here: zarr's own cast of a
            # sub-array field to raw bytes keeps only the field's first item (or fails, for records)
            fill_json = base64.standard_b64encode(np.asarray(self.fill, self.dtype).tobytes()).decode()
        else:
            fill_json = self.zdtype.to_json_scalar(self.fill, zarr_format=self.zarr_format) if self.fill is not None else None
        if isinstance(fill_json, tuple):
            fill_json = list(fill_json)
        if self.zarr_format == 3:
            serializer = VLenUTF8Codec() if self.is_string else BytesCodec(endian="little" if self.dtype.byteorder in "<>=" else None)
            doc = {
                "shape": list(self.shape), "data_type": self.zdtype.to_json(zarr_format=3),
                "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(self.chunks)}},
                "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
                "fill_value": fill_json,
                "codecs": [serializer.to_dict(), *([self.spec] if self.spec else [])],
                "attributes": attrs, "dimension_names": dims, "zarr_format": 3, "node_type": "array", "storage_transformers": [],
            }
            return {"zarr.json": doc}
        dtype_json = self.zdtype.to_json(zarr_format=2)
        doc = {
            "shape": list(self.shape), "chunks": list(self.chunks), "dtype": dtype_json["name"], "fill_value": fill_json,
            "order": "C", "filters": [{"id": "vlen-utf8"}] if self.is_string else None, "dimension_separator": ".",
            "compressor": self._v2_compressor(), "zarr_format": 2,
        }
        return {".zarray": doc, ".zattrs": attrs}

    def _v2_compressor(self) -> dict[str, Any] | None:
        if self.compressor is None:
            return None
        config = self.compressor.get_config()
        if config.get("checksum") is False:  # zarr leaves Zstd's default out
            config.pop("checksum")
        return config

    def key(self, index: tuple[int, ...]) -> str:
        return chunk_key(index, self.zarr_format)

    def encode_constant(self, block: np.ndarray) -> bytes:
        """:meth:`encode` of a block of one value, remembered by its shape and value."""
        key = (block.shape, np.asarray(block.flat[0] if block.size else 0, self.dtype).tobytes())
        found = self._constant.get(key)
        if found is None:
            found = self._constant[key] = self.encode(np.ascontiguousarray(block))
        return found

    def encode(self, block: np.ndarray) -> bytes:
        """One full chunk: edge chunks are padded with the fill value, as Zarr stores them."""
        if block.shape != self.chunks:
            full = np.full(self.chunks, self.fill if self.fill is not None else _default_fill(self.dtype), dtype=object if self.is_string else self.dtype)
            full[tuple(slice(0, n) for n in block.shape)] = block
            block = full
        if self.is_string:
            raw = numcodecs.VLenUTF8().encode(np.asarray(block, dtype=object).reshape(-1))
        else:
            raw = np.ascontiguousarray(block, dtype=self.dtype)  # no copy when already contiguous
            if not self.compressor:
                return raw.tobytes()
        return bytes(self.compressor.encode(raw))


class ZarrWriter:
    """Arrays (and the groups of their files) as Zarr, below ``prefix``."""

    @classmethod
    def from_context(cls, context: WriteContext) -> ZarrWriter:
        out = context.output
        return cls(context.store, context.prefix, out.zarr_format, out.codec, out.chunk_target_bytes, context.pool, slots=context.slots,
                   pyramid_min_size=out.pyramid_min_size, spread=context.spread, stop=context.stop)

    def write(self, node: ArrayNode, path: str, zarr_path: str, documents: dict[str, Any]) -> Written:  # type: ignore[override]
        """The :class:`~publisher.writers.Writer` contract: the array and its ``ArrayStructure``
        (with a multiscale pyramid when :func:`.pyramid.wanted`)."""
        try:
            if self.zarr_format == 3 and self.pyramid_min_size and pyramid.wanted(node, self.pyramid_min_size):
                done = pyramid.write_pyramid(self, node, zarr_path, documents, self.pyramid_min_size)
                if done is not None:
                    return done
            written = self.array(zarr_path, node, node.codec, documents, node_path=path)
        except BaseException:  # (its zarr.json, written first, made a failed array one of fill values)
            levels = f"{zarr_path}.levels"
            for key in [k for k in documents if k in (zarr_path, levels) or k.startswith((f"{zarr_path}/", f"{levels}/"))]:
                del documents[key]
            discard(self.store, [f"{self.prefix}/{zarr_path}", f"{self.prefix}/{levels}"])
            raise
        structure = ArrayStructure(DataType.from_numpy(node.dtype, written.max_chars), list(node.shape), regular_chunks(node.shape, written.chunks), node.dims)
        return Written(structure, f"{self.prefix}/{zarr_path}", written.bytes_in)

    def __init__(self, store: Store, prefix: str, zarr_format: int, codec: Codec, target_bytes: int, pool: ThreadPoolExecutor,
                 slab_bytes: int = 16 * 2**20, slots: int | None = None, pyramid_min_size: int | None = None,
                 spread: Spread | None = None, stop: threading.Event | None = None) -> None:
        self.store = store
        self.stop = stop
        self.prefix = prefix
        self.zarr_format = zarr_format
        self.codec = codec
        self.target_bytes = target_bytes
        self.pool = pool
        self.slab_bytes = max(slab_bytes, target_bytes)
        #: Slabs in flight across every array being written, whichever item writes it.
        self.slots = threading.BoundedSemaphore(slots or 2 * (pool._max_workers or 1))  # type: ignore[attr-defined]
        self.pyramid_min_size = pyramid_min_size
        self.spread = spread
        self._layouts: dict[tuple[Any, ...], tuple[Codec, _Layout]] = {}

    def _put(self, path: str, data: bytes) -> None:
        self.store.write_bytes(f"{self.prefix}/{path}", data)

    def put_json(self, path: str, doc: dict[str, Any]) -> None:
        self._put(path, _dumps(doc))

    def group(self, path: str, attrs: dict[str, Any], documents: dict[str, Any]) -> None:
        """A group; its metadata also goes into ``documents`` (the file's, for consolidation)."""
        if self.zarr_format == 3:  # written by consolidate_tree, with its consolidated metadata
            documents[path] = {"attributes": attrs, "zarr_format": 3, "node_type": "group"}
        else:
            documents[f"{path}/.zgroup"] = {"zarr_format": 2}
            documents[f"{path}/.zattrs"] = attrs
            self._put(f"{path}/.zgroup", _dumps({"zarr_format": 2}))
            self._put(f"{path}/.zattrs", _dumps(attrs))

    def consolidate_tree(self, root: str, groups: list[str], documents: dict[str, Any]) -> None:
        """Consolidated metadata in every group of a file, so clients open any group without listing."""
        below = {k: v for k, v in documents.items() if k == root or k.startswith(root + "/")}
        keys = sorted(below)

        def under(group: str) -> list[str]:  # the keys below a group are contiguous in sorted order
            start = bisect.bisect_left(keys, group + "/")
            return keys[start : bisect.bisect_left(keys, group + "0", lo=start)]  # "0" sorts right after "/"

        for group in groups:
            rel = len(group) + 1
            if self.zarr_format == 3:
                children = {k[rel:]: below[k] for k in under(group)}
                for child in children.values():
                    if child.get("node_type") == "group":
                        child.setdefault("consolidated_metadata", {"kind": "inline", "must_understand": False, "metadata": {}})
                doc = dict(below[group])
                doc["consolidated_metadata"] = {"kind": "inline", "must_understand": False, "metadata": children}
                self._put(f"{group}/zarr.json", _dumps(doc))
            else:
                own = {k[rel:]: below[k] for k in under(group)}
                self._put(f"{group}/.zmetadata", _dumps({"metadata": own, "zarr_consolidated_format": 1}))

    def _attrs_and_fill(self, node: ArrayNode, dims: list[str]) -> tuple[dict[str, Any], Any]:
        attrs = dict(node.attrs if node.attrs is not None else node.metadata)
        if self.zarr_format == 2:
            attrs["_ARRAY_DIMENSIONS"] = dims
            # xarray reads a v2 array's fill_value as _FillValue (a mask), so only a CF fill may go there.
            return attrs, attrs.pop("_FillValue", None)
        if "_FillValue" in attrs:
            attrs["_FillValue"] = _xarray_fill_attr(attrs["_FillValue"], node.dtype)
        fill = node.fill_value if node.fill_value is not None else _default_fill(node.dtype)
        return attrs, fill

    def begin(self, path: str, node: ArrayNode, codec: Codec | None = None, documents: dict[str, Any] | None = None,
              chunks: tuple[int, ...] | None = None) -> _Layout:
        """Write the array's metadata documents (also into ``documents``); the layout of its chunks."""
        chunks = chunks or auto_chunks(node.shape, node.element_bytes, self.target_bytes, node.source_chunks, node.chunks)
        dims = node.dims if node.dims is not None else [f"dim_{i}" for i in range(len(node.shape))]
        attrs, fill = self._attrs_and_fill(node, dims)
        layout = self._layout(node.dtype, tuple(node.shape), tuple(chunks), fill, codec or self.codec)
        for name, doc in layout.documents(attrs, dims).items():
            if documents is not None:  # (for the file's consolidated metadata: read, never changed)
                documents[path if name == "zarr.json" else f"{path}/{name}"] = doc
            self._put(f"{path}/{name}", _dumps(doc))
        return layout

    def _layout(self, dtype: np.dtype, shape: tuple[int, ...], chunks: tuple[int, ...], fill: Any, codec: Codec) -> _Layout:
        """One layout per form of array (data type, shape, chunks, fill, codec), shared by every
        array of that form: a tree of 1,000 same-shaped frames looks up zarr's data type, its fill
        value's JSON and the codec once, not per frame (~35 µs a frame in a build's loop)."""
        exact = np.asarray(fill).tobytes() if isinstance(fill, (float, np.generic)) else None  # NaN payloads, -0.0
        key = (dtype, shape, chunks, type(fill), repr(fill), exact, id(codec))
        try:
            found = self._layouts.get(key)
        except TypeError:  # an unhashable data type: not shared
            return _Layout(dtype, shape, chunks, fill, codec, self.zarr_format)
        if found is None or found[0] is not codec:  # (the codec itself, not another at its address)
            if len(self._layouts) >= 256:
                self._layouts.clear()
            found = self._layouts[key] = (codec, _Layout(dtype, shape, chunks, fill, codec, self.zarr_format))
        return found[1].for_array()

    def put_region(self, path: str, layout: _Layout, sel: tuple[slice, ...], block: np.ndarray, constant: bool = False) -> None:
        """The encoded chunks of a chunk-aligned region ``sel`` (edge chunks padded; :func:`put_region`)."""
        put_region(self.store, f"{self.prefix}/{path}", layout, sel, block, constant)

    def array(self, path: str, node: ArrayNode, codec: Codec | None = None, documents: dict[str, Any] | None = None,
              chunks: tuple[int, ...] | None = None, on_block: Callable[[tuple[slice, ...], np.ndarray], None] | None = None,
              node_path: str | None = None, order: Callable[..., Iterator[tuple[slice, ...]]] = slabs) -> ArrayWritten:
        """Write ``node`` at ``path``; ``on_block`` sees each block read, in the writer's threads
        (the pyramid's levels are computed from them), the blocks made by ``order`` (``slabs``, or
        :func:`.chunking.tiles`). On a cluster worker an array of at least ``spread.min_bytes``
        (read by index path ``node_path``) is written by slab tasks spread over the cluster
        instead of this worker's threads."""
        assert node.read is not None
        layout = self.begin(path, node, codec, documents, chunks)
        bounded(node.shape, chunks := layout.chunks, node.source_path or path)

        def write(sel: tuple[slice, ...]) -> tuple[int, int | None]:
            block, constant = read_region(node, sel)
            if on_block is not None:
                on_block(sel, block)
            put_region(self.store, f"{self.prefix}/{path}", layout, sel, block, constant, self.stop)
            if block.dtype.kind != "O":
                return block.nbytes, None
            lengths = [len(str(v)) for v in block.flat]
            return sum(lengths), max(lengths, default=0)

        if not node.shape:
            return ArrayWritten((), *write(()))
        regions = order(node.shape, chunks, self.slab_bytes, node.element_bytes)
        first = next(regions, None)
        if first is None:
            return ArrayWritten(chunks, 0, 0 if node.dtype.kind == "O" else None)
        second = next(regions, None)
        if second is None:  # one slab (most small arrays): no hand-off to the pool
            return ArrayWritten(chunks, *write(first))
        if (self.spread is not None and node_path is not None and on_block is None and node.dtype.kind != "O"
                and math.prod(node.shape) * node.dtype.itemsize >= self.spread.min_bytes):
            results = self.spread(node_path, self.prefix, path, layout, [first, second, *regions])
            return ArrayWritten(chunks, sum(n for n, _ in results), None)
        total, longest = run_slabs(self.pool, self.slots, write, itertools.chain((first, second), regions))
        return ArrayWritten(chunks, total, longest)


register("array")(ZarrWriter.from_context)


def read_region(node: ArrayNode, sel: tuple[slice, ...]) -> tuple[np.ndarray, bool]:
    """The block ``sel`` of ``node``, and whether it is one value throughout because the source
    stores nothing there (:attr:`~publisher.nodes.ArrayNode.constant`): then it is not read, and
    the block is that value broadcast (no memory)."""
    expected = tuple(s.stop - s.start for s in sel)
    value = node.constant(sel) if node.constant is not None and sel else None
    if value is not None:
        return np.broadcast_to(value, expected), True
    assert node.read is not None
    block = node.read(sel)
    if block.shape != expected:
        raise ValueError(f"reader returned shape {block.shape} for region {expected}")
    return block, False


def put_region(store: Store, path: str, layout: _Layout, sel: tuple[slice, ...], block: np.ndarray, constant: bool = False,
               stop: threading.Event | None = None) -> None:
    """The encoded chunks of a chunk-aligned region ``sel`` of the array at ``path`` (edge chunks
    padded); also what a cluster's slab task writes (publisher/build/cluster.py). A ``constant``
    block's chunks are encoded once per shape and the same bytes written for each: the chunks a
    build would have read and compressed, byte for byte (an unwritten 80 GB stack: files, not
    80 GB through the codec). Once ``stop`` is set the chunks left are not (a slab of big chunks at
    a high level took ~20 s to end after Ctrl-C)."""
    for index, within in _chunks_in(sel, layout.chunks):
        if stop is not None and stop.is_set():
            raise CancelledError("the build is stopping")
        part = block[within] if within else block
        store.write_bytes(f"{path}/{layout.key(index)}", layout.encode_constant(part) if constant else layout.encode(part))


def _chunks_in(sel: tuple[slice, ...], chunks: tuple[int, ...]) -> list[tuple[tuple[int, ...], tuple[slice, ...]]]:
    """The chunk indices inside a chunk-aligned region, with each chunk's slice of the region."""
    ranges = [range(s.start // c, math.ceil(s.stop / c)) for s, c in zip(sel, chunks)]
    out = []
    for index in np.ndindex(*[len(r) for r in ranges]):
        idx = tuple(r[i] for r, i in zip(ranges, index))
        within = tuple(slice(i * c - s.start, min((i + 1) * c, s.stop) - s.start) for i, c, s in zip(idx, chunks, sel))
        out.append((idx, within))
    return out
