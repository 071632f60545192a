"""Multiscale pyramids (OME-Zarr 0.5) of large images, computed from level 0's blocks as they stream.

Layout (docs/catalog.md, "Image pyramids"): the OME-Zarr image group is the image's parent Zarr
group, whose ``ome.multiscales`` entry (named after the image) lists the image's own array as
level 0 and ``<name>.levels/<k>`` for the others, so level 0 is stored once and every reader of
the array (tiled client, Zarr route, ``xarray.open_zarr`` of the file) sees it as before. An
image that is a file of its own has no parent group: ``data/<path>.zarr`` becomes that group,
the array its member ``<name>``. Zarr 3 only (OME-Zarr 0.5 is Zarr 3).

Level 1 is level 0 reduced 4x4 (a quarter of each side: 1/15 more pixels in all rather than the
1/3 of a 2x first level, which cost ~40 % of an uncompressed build), each further level halves the
one below (2x2), until both of the last two sides are at most :func:`stop_size`; a side's rows or
columns short of a whole block are dropped. The writer's threads reduce each level-0 slab while
it is in memory (no second read of the source); a level's chunk row is encoded and written as
soon as the reduced blocks complete it, then halved for the next level (:class:`_Level`), so the
levels are written while level 0 is, with level 0's chunk shape and codec, and memory holds only
the rows in progress.
"""

from __future__ import annotations

import itertools
import math
import threading
from typing import Any

import numpy as np

from ..nodes import ArrayNode
from ..structures import ArrayStructure, DataType, regular_chunks
from .base import Written
from .chunking import auto_chunks, slabs, tiles

MEAN, NEAREST = "mean", "nearest"
#: Preview size the smallest level aims at (the browse page's PNG ``max_size``).
PREVIEW = 1024
#: OME-Zarr axis types of leading dimensions, by name; the last two are always ``space``.
_TYPES = {"t": "time", "time": "time", "c": "channel", "ch": "channel", "channel": "channel", "channels": "channel",
          "band": "channel", "bands": "channel", "sample": "channel", "samples": "channel", "rgb": "channel", "rgba": "channel",
          "z": "space"}
#: The units OME-Zarr 0.5 takes for an axis of each type (UDUNITS-2 names).
UNITS = {
    "space": frozenset({"angstrom", "attometer", "centimeter", "decimeter", "exameter", "femtometer", "foot", "gigameter",
                        "hectometer", "inch", "kilometer", "megameter", "meter", "micrometer", "mile", "millimeter", "nanometer",
                        "parsec", "petameter", "picometer", "terameter", "yard", "yoctometer", "yottameter", "zeptometer", "zettameter"}),
    "time": frozenset({"attosecond", "centisecond", "day", "decisecond", "exasecond", "femtosecond", "gigasecond", "hectosecond",
                       "hour", "kilosecond", "megasecond", "microsecond", "millisecond", "minute", "nanosecond", "petasecond",
                       "picosecond", "second", "terasecond", "yoctosecond", "yottasecond", "zeptosecond", "zettasecond"}),
}
DESCRIPTIONS = {
    MEAN: "block mean of the last two dimensions (4x4 of level 0 for level 1, then 2x2 of the level below): "
          "integers exact (wider integer sum, round half up), floats in their own dtype, NaN left out "
          "(a block of NaN alone stays NaN)",
    NEAREST: "block's top-left value (4x4 of level 0 for level 1, then 2x2 of the level below; labels and booleans)",
}


def stop_size(min_size: int) -> int:
    """Levels stop once the last two dimensions are both at most this: the preview size, or a
    quarter of the pipeline's threshold when that is smaller (small test images)."""
    return max(1, min(PREVIEW, min_size // 4))


def method_for(node: ArrayNode) -> str:
    return NEAREST if node.labels or node.dtype.kind == "b" else MEAN


def axes_for(dims: list[str]) -> list[dict[str, str]] | None:
    """OME-Zarr axes named after the array's dimensions, or None when they cannot be typed validly
    (2 to 5 axes, unique names, time first, at most one untyped axis)."""
    if not 2 <= len(dims) <= 5 or len(set(dims)) != len(dims):
        return None
    if any(_TYPES.get(d.lower(), "space") != "space" for d in dims[-2:]):
        # a colour image's channels last (y, x, band: PNG, TIFF), a variable's time last: the
        # last two are not the picture's sides (they were reduced together), and OME-Zarr wants
        # channel and time before space: no pyramid
        return None
    lead = [_TYPES.get(d.lower()) for d in dims[:-2]]
    if "space" in lead[:-1] or lead.count(None) > 1 or lead.count("time") > 1 or lead.count("channel") > 1:
        return None
    if "time" in lead and lead[0] != "time":
        return None
    return [{"name": d, **({"type": t} if t else {})} for d, t in zip(dims, [*lead, "space", "space"])]


#: Reduction of level 1 from level 0 (each side); the levels above halve.
FIRST = 4


def levels_of(shape: tuple[int, ...], stop: int, forced: bool) -> list[tuple[int, tuple[int, ...]]]:
    """(factor, shape) of level 0 and each level above it, until the last two dimensions are at
    most ``stop`` (at least one level when ``forced`` and the image can be reduced). Level k's
    side is level 0's ``// factor`` (floors compose); the first factor is 2 for a side under 4."""
    out = [(1, tuple(shape))]
    while min(out[-1][1][-2:]) >= 2 and (max(out[-1][1][-2:]) > stop or (forced and len(out) == 1)):
        f = out[-1][0] * (2 if len(out) > 1 or min(shape[-2:]) < FIRST else FIRST)
        out.append((f, (*shape[:-2], shape[-2] // f, shape[-1] // f)))
    return out


def crowded(key: str, siblings: set[str]) -> bool:
    """Whether an image ``key`` beside ``siblings`` (its group's other children) has no room for a
    pyramid: a ``labels`` child (OME-Zarr's label group: found after the image, it made the group
    invalid), or a child named as its levels group (``<key>.levels``: its levels went inside it)."""
    return "labels" in siblings or f"{key}.levels" in siblings


def wanted(node: ArrayNode, min_size: int) -> bool:
    """Whether ``node`` gets a pyramid: an image (2-5 dims, numbers or booleans) whose last or
    second-last dimension reaches ``min_size``, unless a rule forces or forbids it."""
    if node.pyramid is False or node.dtype.kind not in "biufc" or not 2 <= len(node.shape) <= 5 or min(node.shape[-2:]) < 2:
        return False
    return bool(node.pyramid) or max(node.shape[-2:]) >= min_size


#: Rows of output a band of :func:`down` computes at once: its temporaries stay in the CPU's cache
#: (8192 x 8192 uint16 halved: 40 ms against 71 ms for the whole image at once).
BAND = 32


def down(x: np.ndarray, method: str, f: int = 2, out: np.ndarray | None = None) -> np.ndarray:
    """``x`` reduced ``f`` x ``f`` (a power of 2) along its last two dimensions (floor), by
    ``method``, into ``out`` (a new array when None), band by band; no float64 temporaries."""
    h, w = x.shape[-2] // f * f, x.shape[-1] // f * f
    if out is None:
        out = np.empty((*x.shape[:-2], h // f, w // f), x.dtype)
    band = max(1, BAND * 2 // f)
    for a in range(0, h, f * band):
        b = min(a + f * band, h)
        out[..., a // f : b // f, :] = _down(x[..., a:b, :w], method, f)
    return out


def _down(x: np.ndarray, method: str, f: int) -> np.ndarray:
    """One band of :func:`down` (sides multiples of ``f``)."""
    if method == NEAREST:
        return x[..., 0::f, 0::f]
    if x.dtype.kind in "iu":
        return _mean_int(x, f)
    if x.dtype.kind in "fc" and _has_nan(x):
        return _nanmean(x, f)
    work = np.float32 if x.dtype == np.float16 else x.dtype  # float16 sums overflow at 65504
    rows = _pairwise([x[..., i::f, :] for i in range(f)], work)  # pairwise: fewer roundings than a running sum
    s = _pairwise([rows[..., j::f] for j in range(f)], work)
    s *= 1 / (f * f)
    return s


def _pairwise(parts: list[np.ndarray], work: Any) -> np.ndarray:
    """The sum of ``parts`` (a power of 2 of them) in ``work``, added in pairs."""
    while len(parts) > 1:
        parts = [np.add(a, b, dtype=work) for a, b in zip(parts[0::2], parts[1::2])]
    return parts[0]


def _has_nan(x: np.ndarray) -> bool:
    return bool(np.isnan(np.min(x.real)) or (x.dtype.kind == "c" and np.isnan(np.min(x.imag)))) if x.size else False


def _mean_int(x: np.ndarray, f: int) -> np.ndarray:
    """Exact mean rounded half up: a sum in a wider integer, ``(s + n/2) >> log2(n)`` for ``n = f*f``
    values (an arithmetic shift floors, so negative halves round up too). 64-bit integers:
    ``n``-ths and remainders apart."""
    n, bits = f * f, 2 * (f.bit_length() - 1)
    if x.dtype.itemsize <= 4:
        wide = np.dtype(f"{x.dtype.kind}{8 if x.dtype.itemsize == 4 else 4}")
        r = np.add(x[..., 0::f, :], x[..., 1::f, :], dtype=wide)
        for i in range(2, f):
            r += x[..., i::f, :]
        s = r[..., 0::f] + r[..., 1::f]
        for j in range(2, f):
            s += r[..., j::f]
        s += n // 2
        s >>= bits
        return s
    parts = [x[..., i::f, j::f] for i in range(f) for j in range(f)]
    shares = sum(p >> bits for p in parts)
    rest = sum(p & (n - 1) for p in parts) + n // 2
    return shares + (rest >> bits)


def _nanmean(x: np.ndarray, f: int) -> np.ndarray:
    parts = [x[..., i::f, j::f] for i in range(f) for j in range(f)]
    work = np.float32 if x.dtype == np.float16 else x.dtype
    count = sum((~np.isnan(p)).astype(np.uint8) for p in parts)
    total = sum(np.where(np.isnan(p), 0, p).astype(work) for p in parts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count.astype(work)


def _aligned(chunks: tuple[int, ...], shape: tuple[int, ...], f: int) -> tuple[int, ...]:
    """Chunks whose last two sides are multiples of ``f`` (short of the whole side), so every slab
    starts on such a row and column and each ``f`` x ``f`` block of level 1 lies in one slab."""
    return (*chunks[:-2], *(c + -c % f if c < n else c for c, n in zip(chunks[-2:], shape[-2:])))


def write_pyramid(writer: Any, node: ArrayNode, zarr_path: str, documents: dict[str, Any], min_size: int) -> Written | None:
    """Write ``node`` with its pyramid (``writer``: the :class:`~.zarr_array.ZarrWriter`), or None
    when it needs none after all (too small to halve, axes OME-Zarr cannot type)."""
    dims = node.dims if node.dims is not None else [f"dim_{i}" for i in range(len(node.shape))]
    axes = axes_for(dims)
    levels = levels_of(tuple(node.shape), stop_size(min_size), bool(node.pyramid))
    factors, shapes = [f for f, _ in levels], [s for _, s in levels]
    if axes is None or len(shapes) < 2:
        return None
    parent, _, name = zarr_path.rpartition("/")
    in_group = (documents.get(parent) or {}).get("node_type") == "group"
    if not in_group:  # a file of its own: its .zarr becomes the image group
        parent, name = zarr_path, zarr_path.rpartition("/")[2].removesuffix(".zarr") or "0"
    if name == "labels":  # OME-Zarr's name for an image's label group (a labels sibling: pyramid.crowded, before the write)
        return None
    method = method_for(node)
    chunks = _aligned(auto_chunks(node.shape, node.dtype.itemsize, writer.target_bytes, node.source_chunks, node.chunks), tuple(node.shape), factors[1])
    following: _Level | None = None
    for k in range(len(shapes) - 1, 0, -1):  # the smallest first: each level hands its chunks to the next
        level = ArrayNode(str(k), dtype=node.dtype, shape=shapes[k], read=lambda sel: None, dims=dims, attrs={}, fill_value=node.fill_value)
        path = f"{parent}/{name}.levels/{k}"
        layout = writer.begin(path, level, node.codec, documents, tuple(min(c, n) for c, n in zip(chunks, shapes[k])))
        following = _Level(writer, path, layout, method, factors[k] // factors[k - 1], following)
    assert following is not None
    written = writer.array(f"{parent}/{name}", node, node.codec, documents, chunks=chunks, on_block=following.add_reduced,
                           order=tiles if _in_tiles(node) else slabs)
    following.check_done()
    paths = [name, *(f"{name}.levels/{k}" for k in range(1, len(shapes)))]
    physical = node.metadata.get("physical_sizes") if isinstance(node.metadata.get("physical_sizes"), dict) else {}
    # (a size whose unit its axis's type does not take, from metadata a rule or sidecar set: left out, the group stays valid)
    stated = {a["name"]: found for a in axes if (found := _physical(physical.get(a["name"]))) and found[1] in UNITS.get(a.get("type", ""), ())}
    sizes = [stated[d][0] if d in stated else 1.0 for d in dims]
    axes = [{**a, "unit": stated[a["name"]][1]} if a["name"] in stated else a for a in axes]
    multiscale = {"name": name, "axes": axes, "datasets": [_dataset(p, f, sizes, method) for f, p in zip(factors, paths)],
                  "type": method, "metadata": {"description": DESCRIPTIONS[method], "writer": "skyshelf"}}
    _groups(writer, parent, name, multiscale, documents, in_group)
    node.metadata["pyramid"] = {"type": method, "levels": [{"path": p, "shape": list(s)} for p, s in zip(paths, shapes)]}
    node.notes["pyramid_levels"] = len(shapes)  # what the PNG preview trusts (metadata can come from the source)
    node.notes["pyramid_factors"] = factors
    structure = ArrayStructure(DataType.from_numpy(node.dtype, written.max_chars), list(node.shape), regular_chunks(node.shape, written.chunks), node.dims)
    return Written(structure, f"{writer.prefix}/{parent}/{name}", written.bytes_in)


def _in_tiles(node: ArrayNode) -> bool:
    """Whether the source stores the image in tiles narrower than it (HDF5 or Zarr chunks, a tiled
    TIFF): then it is read in squares of chunks in Z order (:func:`.chunking.tiles`) and each level
    holds a few chunks in progress, whatever the image's width. A source in rows as wide as the
    image (strips, whole frames, contiguous storage) is read in rows, as reading it costs least;
    each level then holds a chunk row in progress, which grows with the width as the rows read do."""
    source = node.source_chunks
    return source is not None and len(source) == len(node.shape) and source[-1] < node.shape[-1]


class _Level:
    """One level above 0, assembled from the blocks of the level below, reduced ``factor`` x
    ``factor``, as they arrive (in any order, from the writer's threads): each of its chunks is
    encoded and written once complete, then handed to the next level. At most the chunks in
    progress are held: a few per level when level 0 comes in squares in Z order
    (:func:`.chunking.tiles`), a chunk row when it comes in rows."""

    def __init__(self, writer: Any, path: str, layout: Any, method: str, factor: int, following: _Level | None) -> None:
        self.writer, self.path, self.layout, self.method, self.following = writer, path, layout, method, following
        self.factor = factor
        self.shape, self.chunks = tuple(layout.shape), tuple(layout.chunks)
        self.lock = threading.Lock()
        self.held: dict[tuple[int, ...], list[Any]] = {}  # chunk index -> [buffer, values still missing, one value]
        self.bytes = self.most = 0  # bytes of the buffers held, and the most at once (tests/test_pyramid.py)

    def add_reduced(self, sel: tuple[slice, ...], block: np.ndarray) -> None:
        """A block of the level below at ``sel`` (starts on the last two dimensions multiples of
        the factor), reduced straight into this level's chunks."""
        f = self.factor
        h, w = block.shape[-2] // f, block.shape[-1] // f
        if h and w:
            y, x = sel[-2].start // f, sel[-1].start // f
            self.add((*sel[:-2], slice(y, y + h), slice(x, x + w)), block, reduce=True)

    def _chunk(self, index: tuple[int, ...]) -> tuple[slice, ...]:
        """Chunk ``index``'s region."""
        return tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(index, self.chunks, self.shape))

    def add(self, sel: tuple[slice, ...], data: np.ndarray, reduce: bool = False) -> None:
        """Values for region ``sel`` of this level: ``data``, or ``data`` reduced (``factor`` times the size).
        A chunk that has been given one value alone (a region the source stores nothing in: the
        value broadcast, :func:`~.zarr_array.read_region`) holds no buffer; it is written as that
        value broadcast, and so is what it hands to the next level."""
        f = self.factor
        value = _one_value(data)
        if value is not None and reduce:  # each window's reduction is the same: one window's, computed as every window's is
            if data.shape[-2] >= f and data.shape[-1] >= f:
                window = np.ascontiguousarray(data[(0,) * (data.ndim - 2) + (slice(0, f), slice(0, f))])
                value = np.array(down(window, self.method, f).flat[0]).astype(data.dtype)  # (cast as a chunk's buffer casts)
            else:
                value = None
        ranges = [range(s.start // c, -(-s.stop // c)) for s, c in zip(sel, self.chunks)]
        for index in itertools.product(*ranges):
            region = self._chunk(index)
            inter = tuple(slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(sel, region))
            src = [slice(i.start - s.start, i.stop - s.start) for i, s in zip(inter, sel)]
            dst = tuple(slice(i.start - r.start, i.stop - r.start) for i, r in zip(inter, region))
            with self.lock:
                held = self.held.get(index)
                if held is None:  # [buffer (None while one value is all it was given), values still missing, that value]
                    held = self.held[index] = [None, math.prod(b.stop - b.start for b in region), value]
                if held[0] is None and (value is None or held[2] is None or held[2].tobytes() != value.tobytes()):
                    buffer = np.empty(tuple(r.stop - r.start for r in region), data.dtype)
                    if held[2] is not None:  # what it was given so far, all one value (the rest is overwritten)
                        buffer[...] = held[2]
                    held[0] = buffer
                    self.bytes += buffer.nbytes
                    self.most = max(self.most, self.bytes)
                buffer = held[0]
            if buffer is not None:  # outside the lock: the regions of different blocks never overlap
                if value is not None:
                    buffer[dst] = value
                elif reduce:
                    src[-2:] = [slice(f * t.start, f * t.stop) for t in src[-2:]]
                    down(data[tuple(src)], self.method, f, buffer[dst])
                else:
                    buffer[dst] = data[tuple(src)]
            with self.lock:
                held[1] -= math.prod(i.stop - i.start for i in inter)
                done = held[1] == 0
                if done:
                    del self.held[index]
                    self.bytes -= held[0].nbytes if held[0] is not None else 0
            if done:  # outside the lock: other chunks keep filling while this one is encoded
                shape = tuple(r.stop - r.start for r in region)
                whole, constant = (held[0], False) if held[0] is not None else (np.broadcast_to(held[2], shape), True)
                self.writer.put_region(self.path, self.layout, region, whole, constant)
                if self.following is not None:
                    self.following.add_reduced(region, whole)

    def check_done(self) -> None:
        """Every chunk of every level was written (a block missing would leave chunks unwritten)."""
        if self.held:
            raise RuntimeError(f"{self.path}: {len(self.held)} chunks incomplete")
        if self.following is not None:
            self.following.check_done()


def _one_value(data: np.ndarray) -> np.ndarray | None:
    """The value of a block that is one value broadcast (no strides), as a 0-d array; else None."""
    if data.size and not any(data.strides):
        return np.array(data.flat[0], dtype=data.dtype)
    return None


def _physical(stated: Any) -> tuple[float, str] | None:
    """A dimension's (pixel size, unit) from the ``physical_sizes`` metadata (a reader's: an
    OME-TIFF's), None where it states none usable."""
    if not isinstance(stated, dict) or not isinstance(stated.get("unit"), str):
        return None
    size = stated.get("size")
    if isinstance(size, bool) or not isinstance(size, (int, float)) or not math.isfinite(size) or size <= 0:
        return None
    return float(size), stated["unit"]


def _dataset(path: str, f: int, sizes: list[float], method: str) -> dict[str, Any]:
    """A level reduced ``f`` x ``f``: scale ``f`` times each axis's pixel size (``sizes``: an
    OME-TIFF's physical sizes, else 1) and, for block means, the shift of a block's centre (as
    ome-zarr's writer); a nearest level keeps each block's top-left pixel, so none (it was given
    the centre's shift too: labels sat (f-1)/2 pixels off their image)."""
    shift = (f - 1) / 2 if method == MEAN else 0.0
    lead = sizes[:-2]
    return {"path": path, "coordinateTransformations": [
        {"type": "scale", "scale": [*lead, *(float(f) * s for s in sizes[-2:])]},
        {"type": "translation", "translation": [0.0] * len(lead) + [shift * s for s in sizes[-2:]]}]}


def _groups(writer: Any, parent: str, name: str, multiscale: dict[str, Any], documents: dict[str, Any], in_group: bool) -> None:
    """The image group's ``ome`` attributes (merged into a file group's, which the file's
    consolidation writes later) and the ``<name>.levels`` group."""
    plain = {"attributes": {}, "zarr_format": 3, "node_type": "group"}
    documents[f"{parent}/{name}.levels"] = plain
    writer.put_json(f"{parent}/{name}.levels/zarr.json", plain)
    if in_group:
        doc = documents[parent]
        ome = dict(doc["attributes"].get("ome") or {"version": "0.5"})
        ome["multiscales"] = [*ome.get("multiscales", []), multiscale]
        documents[parent] = {**doc, "attributes": {**doc["attributes"], "ome": ome}}
    else:
        writer.put_json(f"{parent}/zarr.json", {"attributes": {"ome": {"version": "0.5", "multiscales": [multiscale]}},
                                                "zarr_format": 3, "node_type": "group"})


__all__ = ["FIRST", "MEAN", "NEAREST", "down", "levels_of", "method_for", "stop_size", "wanted", "write_pyramid"]
