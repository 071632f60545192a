"""Sparse matrices stored as plain arrays (CSR/CSC ``data``/``indices``/``indptr``, COO triplets)
folded into one :class:`~publisher.nodes.SparseNode`, whatever the container format.

The HDF5 reader folds the groups it recognises (``hdf5_sparse``); the rule ``sparse: csr|csc|coo``
folds any group (``publisher.rules``). Both work on the group's :class:`ArrayNode` children, so
reading a region reads only the source rows (CSR) or columns (CSC) it touches, through ``indptr``.
Inconsistent members raise :class:`SparseError` naming them: a sparse node is never built on a
guess that could publish wrong values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import SourceError
from ..nodes import ArrayNode, ContainerNode, Node, SparseNode

#: Nonzeros aimed at per published block (~12 MB decoded for float32 values and int64 coordinates).
BLOCK_NNZ = 1_000_000
#: Rows (CSR; columns for CSC and COO's first dimension) a block spans at most: reading one makes
#: arrays of a value per row (a tall matrix of 26 million rows and few nonzeros was one block: ~640 MB).
MAJOR_PER_BLOCK = 2**21
#: ``indptr`` entries read at once to check it and cut the blocks.
INDPTR_BLOCK = 2**20
#: COO triplets are read this many at a time (they have no index, so every region reads them all).
COO_BATCH = 1_000_000
#: A COO matrix's nonzeros are counted along its first dimension in at most this many bins, to cut
#: its blocks by them (:func:`_grid`): blocks then start at multiples of ``rows / COO_BINS``.
COO_BINS = 65_536
#: How the warning on a group that looked sparse but did not fold begins (a rule folding it drops the warning).
NOT_SPARSE = "not published as a sparse matrix"
#: Members a compressed matrix is made of (``shape`` when it is a dataset, as in 10x files).
COMPRESSED = ("data", "indices", "indptr")


class SparseError(SourceError):
    """The members of a sparse group do not describe one matrix (the message says why)."""


def _array(container: ContainerNode, name: str, ndim: int = 1) -> ArrayNode:
    child = container.child(name)
    if not isinstance(child, ArrayNode) or child.read is None or len(child.shape) != ndim:
        raise SparseError(f"{container.source_path or container.key}: member {name!r} is missing or not a {ndim}-D numeric dataset")
    if child.dtype.kind not in "biuf":
        raise SparseError(f"{container.source_path}: member {name!r} has dtype {child.dtype}, not numeric")
    return child


def _values(node: ArrayNode, start: int = 0, stop: int | None = None) -> np.ndarray:
    assert node.read is not None
    stop = node.shape[0] if stop is None else stop
    if stop <= start:
        return np.empty(0, node.dtype)
    return np.asarray(node.read((slice(start, stop),)))


def marker(metadata: dict[str, Any]) -> tuple[str | None, Any]:
    """``(layout, shape)`` from AnnData's attributes: ``encoding-type`` csr_matrix/csc_matrix with
    ``shape`` (AnnData >= 0.7), or ``h5sparse_format`` with ``h5sparse_shape`` (older AnnData)."""
    encoding = metadata.get("encoding-type")
    if encoding in ("csr_matrix", "csc_matrix"):
        return encoding[:3], metadata.get("shape")
    legacy = metadata.get("h5sparse_format")
    if legacy in ("csr", "csc"):
        return legacy, metadata.get("h5sparse_shape")
    return None, None


def _shape(container: ContainerNode, given: Any) -> tuple[int, ...]:
    where = container.source_path or container.key
    if given is None:
        member = container.child("shape")
        if not isinstance(member, ArrayNode) or len(member.shape) != 1 or member.dtype.kind not in "iu":
            raise SparseError(f"{where}: no shape (neither a 'shape' attribute nor an integer 'shape' dataset)")
        given = _values(member).tolist()
    try:
        shape = tuple(int(n) for n in (given if isinstance(given, (list, tuple)) else np.asarray(given).reshape(-1)))
    except (TypeError, ValueError):
        raise SparseError(f"{where}: shape {given!r} is not a list of integers") from None
    if any(n < 0 for n in shape):
        raise SparseError(f"{where}: shape {list(shape)} has a negative size")
    return shape


def by_rule(node: Node, layout: str) -> Node:
    """The rule ``sparse: csr|csc|coo`` on ``node``: a group folded with that layout; a matrix
    already recognised (a marked AnnData group) must have it."""
    if isinstance(node, SparseNode) or (isinstance(node, ContainerNode) and "data" in node.notes.get("sparse", {})):
        found = (node.notes.get("sparse") or {}).get("layout") if isinstance(node, SparseNode) else node.notes["sparse"]["data"]["layout"]
        if found != layout:
            raise SparseError(f"the group was recognised as {str(found).upper()}, not {layout.upper()}")
        return node
    if not isinstance(node, ContainerNode):
        raise SparseError(f"{node.source_path or node.key} is a {node.family.value}, not a group of sparse members")
    node.notes["warnings"] = [w for w in node.notes.get("warnings", []) if not w.startswith(NOT_SPARSE)]
    return fold(node, layout)


def fold(container: ContainerNode, layout: str | None = None, shape: Any = None) -> Node:
    """The container as a sparse matrix. ``layout`` None reads it from AnnData's marker, else CSC
    for 10x Genomics (a ``shape`` dataset and ``barcodes``), else from ``indptr``'s length (a
    square matrix is then ambiguous: an error). A group holding only the matrix becomes the :class:`SparseNode`;
    one with other members too (10x barcodes and features) stays a container whose ``data``
    member becomes the matrix, the other matrix members folded into it."""
    marked, marked_shape = marker(container.metadata)
    if layout is not None and marked is not None and layout != marked:
        raise SparseError(f"{container.source_path}: the group is marked {marked.upper()}, not {layout.upper()}")
    # 10x Genomics' matrices are CSC by definition; its barcodes say which convention this is
    # (a square one, as Visium 1.0's 100 x 100, would be ambiguous otherwise)
    tenx = isinstance(container.child("shape"), ArrayNode) and container.child("barcodes") is not None
    layout = layout or marked or ("csc" if tenx else None)
    shape = _shape(container, shape if shape is not None else marked_shape if marked else container.metadata.get("shape"))
    node = _coo(container, shape) if layout == "coo" else _compressed(container, layout, shape)
    members = set(COMPRESSED if layout != "coo" else _coo_members(container)) | {"shape"}
    node.notes["sparse"] = {"layout": node.notes.pop("layout", layout), "members": sorted(m for m in members if container.child(m))}
    others = [c for c in container.children if c.key not in members]
    if not others:
        node.key, node.metadata, node.source_path, node.access_tags = container.key, container.metadata, container.source_path, container.access_tags
        node.notes.update(container.notes)
        return node
    data = container.child("data")
    assert data is not None
    node.key, node.metadata, node.source_path = data.key, data.metadata, data.source_path
    container.children = [node if c is data else c for c in container.children if c is data or c.key not in members]
    container.notes.setdefault("sparse", {})["data"] = node.notes["sparse"]
    return container


def _compressed(container: ContainerNode, layout: str | None, shape: tuple[int, ...]) -> SparseNode:
    where = container.source_path or container.key
    data, indices, indptr = (_array(container, name) for name in COMPRESSED)
    if len(shape) != 2:
        raise SparseError(f"{where}: a compressed sparse matrix is 2-D; its shape is {list(shape)}")
    if indices.dtype.kind not in "iu" or indptr.dtype.kind not in "iu":
        raise SparseError(f"{where}: indices ({indices.dtype}) and indptr ({indptr.dtype}) must be integers")
    fits = [name for name, n in (("csr", shape[0]), ("csc", shape[1])) if indptr.shape[0] == n + 1]
    if layout is None:
        if len(fits) != 1:
            raise SparseError(f"{where}: cannot tell CSR from CSC: indptr has {indptr.shape[0]} entries and the shape is {list(shape)}"
                              + (" (square); select the layout with the rule 'sparse: csr' or 'sparse: csc'" if fits else ""))
        layout = fits[0]
    major_axis = 0 if layout == "csr" else 1
    if layout not in fits:
        raise SparseError(f"{where}: indptr has {indptr.shape[0]} entries; {layout.upper()} of shape {list(shape)} needs {shape[major_axis] + 1}")
    if data.shape[0] != indices.shape[0]:
        raise SparseError(f"{where}: data has {data.shape[0]} values but indices has {indices.shape[0]}")
    grid = _scan_indptr(indptr, int(data.shape[0]), shape, major_axis, where)
    n_minor = shape[1 - major_axis]

    def read_coo(region: tuple[slice, ...]) -> tuple[np.ndarray, np.ndarray]:
        major, minor = region[major_axis], region[1 - major_axis]
        ptr = _values(indptr, major.start, major.stop + 1).astype(np.int64)  # the region's own, not the whole index
        lo, hi = int(ptr[0]), int(ptr[-1])
        idx = _values(indices, lo, hi).astype(np.int64)
        vals = _values(data, lo, hi)
        if idx.size and (idx.min() < 0 or idx.max() >= n_minor):
            bad = int(idx.min() if idx.min() < 0 else idx.max())
            raise SparseError(f"{where}: an index ({bad}) is out of range for {n_minor} {'columns' if layout == 'csr' else 'rows'}")
        maj = np.repeat(np.arange(major.start, major.stop, dtype=np.int64), np.diff(ptr))
        keep = (idx >= minor.start) & (idx < minor.stop)
        pair = [maj[keep] - major.start, idx[keep] - minor.start]
        rows, cols = pair if layout == "csr" else pair[::-1]
        order = np.lexsort((cols, rows))
        return np.stack([rows, cols])[:, order], vals[keep][order]

    node = SparseNode(key=container.key, dtype=data.dtype, shape=shape, nnz=int(data.shape[0]), read_coo=read_coo,
                      chunks=_chunks(shape, int(data.shape[0]), major_axis), grid=grid)
    node.notes["layout"] = layout
    return node


def _coo_members(container: ContainerNode) -> list[str]:
    """Coordinates as ``row``/``col``, ``dim0``..``dimN`` (Tiled's names) or one 2-D ``coords``."""
    if container.child("coords") is not None:
        return ["data", "coords"]
    if container.child("row") is not None or container.child("col") is not None:
        return ["data", "row", "col"]
    return ["data", *sorted((c.key for c in container.children if c.key.startswith("dim") and c.key[3:].isdigit()), key=lambda k: int(k[3:]))]


def _coo(container: ContainerNode, shape: tuple[int, ...]) -> SparseNode:
    where = container.source_path or container.key
    names = _coo_members(container)
    data = _array(container, "data")
    if names[1:] == ["coords"]:
        coords = _array(container, "coords", ndim=2)
        if coords.shape[0] != len(shape) or coords.shape[1] != data.shape[0]:
            raise SparseError(f"{where}: coords has shape {list(coords.shape)}; {len(shape)} x {data.shape[0]} were expected")

        def read_coords(start: int, stop: int) -> np.ndarray:
            assert coords.read is not None
            return np.asarray(coords.read((slice(None), slice(start, stop)))).astype(np.int64)
    else:
        parts = [_array(container, n) for n in names[1:]]
        if len(parts) != len(shape):
            raise SparseError(f"{where}: {len(parts)} coordinate members ({', '.join(names[1:]) or 'none'}) for a shape of {len(shape)} dimensions")
        lengths = {p.key: p.shape[0] for p in [data, *parts]}
        if len(set(lengths.values())) != 1:
            raise SparseError(f"{where}: COO members differ in length: {lengths}")

        def read_coords(start: int, stop: int) -> np.ndarray:
            return np.stack([_values(p, start, stop).astype(np.int64) for p in parts]) if parts else np.empty((0, 0), np.int64)
    nnz, limits = int(data.shape[0]), np.asarray(shape, dtype=np.int64)[:, None]

    def read_coo(region: tuple[slice, ...]) -> tuple[np.ndarray, np.ndarray]:
        found_coords, found_data = [np.empty((len(shape), 0), np.int64)], [np.empty(0, data.dtype)]
        lo, hi = np.array([s.start for s in region], np.int64)[:, None], np.array([s.stop for s in region], np.int64)[:, None]
        for start in range(0, nnz, COO_BATCH):
            stop = min(nnz, start + COO_BATCH)
            coords = read_coords(start, stop)
            if coords.size and (coords.min() < 0 or np.any(coords >= limits)):
                raise SparseError(f"{where}: a coordinate is out of range for the shape {list(shape)}")
            keep = np.all((coords >= lo) & (coords < hi), axis=0)
            found_coords.append(coords[:, keep] - lo)
            found_data.append(_values(data, start, stop)[keep])
        coords, values = np.concatenate(found_coords, axis=1), np.concatenate(found_data)
        order = np.lexsort(coords[::-1]) if len(shape) else np.arange(values.size)
        return coords[:, order], values[order]

    node = SparseNode(key=container.key, dtype=data.dtype, shape=shape, nnz=nnz, read_coo=read_coo, chunks=_chunks(shape, nnz, 0))
    if nnz > BLOCK_NNZ and shape:  # where the nonzeros lie along the first dimension: one more pass over its coordinates,
        width = max(1, -(-shape[0] // COO_BINS))  # counted in at most COO_BINS bins (a tall matrix: 2**27 rows were 1 GB a count)
        counts = np.zeros(-(-shape[0] // width), np.int64)
        for start in range(0, nnz, COO_BATCH):
            first = read_coords(start, min(nnz, start + COO_BATCH))[0]
            if first.size and (first.min() < 0 or first.max() >= shape[0]):
                raise SparseError(f"{where}: a coordinate is out of range for the shape {list(shape)}")
            counts += np.bincount(first // width, minlength=counts.size)
        binned = _grid((counts.size, *shape[1:]), np.concatenate([[0], np.cumsum(counts)]), 0)
        if binned is not None:  # cut at bin edges, in rows (the last bin may be short)
            edges = np.minimum(np.cumsum([0, *binned[0]]) * width, shape[0])
            node.grid = [[int(v) for v in np.diff(edges)], *binned[1:]]
    return node


def _scan_indptr(indptr: ArrayNode, nnz: int, shape: tuple[int, ...], axis: int, where: str) -> list[list[int]] | None:
    """Check a compressed matrix's ``indptr`` (from 0, never falling, to ``nnz``) and find its
    :func:`_grid`, reading it :data:`INDPTR_BLOCK` entries at a time: read whole, and kept, it
    was 8 bytes a row for the whole item (a matrix of 100 million rows: 800 MB, ~3x that at once)."""
    n = shape[axis]
    per = _chunks(shape, nnz, axis)[axis]
    edges = np.minimum(np.arange(0, n + per, per), n)
    targets = np.arange(BLOCK_NNZ, nnz, BLOCK_NNZ)
    at_edges, cuts, first, last, falls = [], [], None, -1, False
    for start in range(0, n + 1, INDPTR_BLOCK):
        block = _values(indptr, start, min(n + 1, start + INDPTR_BLOCK)).astype(np.int64)
        first = int(block[0]) if first is None else first
        falls = falls or int(block[0]) < last or bool(np.any(np.diff(block) < 0))
        inside = edges[(edges >= start) & (edges < start + len(block))]
        at_edges.append(block[inside - start])
        due = targets[(targets > last) & (targets <= block[-1])]  # the first index reaching each lies here
        cuts.append(start + np.searchsorted(block, due, side="left"))
        last = int(block[-1])
    if first != 0 or last != nnz or falls:
        raise SparseError(f"{where}: indptr must rise from 0 to {nnz} (the number of values); "
                          f"it goes from {first} to {last}" + (" and falls somewhere" if falls else ""))
    return _grid_of(shape, axis, nnz, np.concatenate(at_edges), np.concatenate(cuts))


def _grid(shape: tuple[int, ...], before: np.ndarray, axis: int) -> list[list[int]] | None:
    """:func:`_grid_of` from ``before[i]``, the nonzeros before index ``i`` along ``axis``."""
    nnz, n = int(before[-1]), shape[axis]
    per = _chunks(shape, nnz, axis)[axis]
    edges = np.minimum(np.arange(0, n + per, per), n)
    return _grid_of(shape, axis, nnz, before[edges], np.searchsorted(before, np.arange(BLOCK_NNZ, nnz, BLOCK_NNZ), side="left"))


def _grid_of(shape: tuple[int, ...], axis: int, nnz: int, at_edges: np.ndarray, cuts: np.ndarray) -> list[list[int]] | None:
    """Blocks along ``axis`` of about :data:`BLOCK_NNZ` nonzeros each when even ones (:func:`_chunks`)
    would hold more than twice that (a skewed matrix: 20 million nonzeros in 1,000 of 100,000 rows
    were one block, read and written at once); ``at_edges``: the nonzeros before each even block's
    start (and the end), ``cuts``: the first index reaching each multiple of ``BLOCK_NNZ``. None:
    the even blocks do. A block holds at most ``BLOCK_NNZ`` plus its last index's nonzeros (a cut
    lands after the index that crosses a multiple of it) and spans at most :data:`MAJOR_PER_BLOCK`."""
    n = shape[axis]
    if nnz <= BLOCK_NNZ or int(np.diff(at_edges).max(initial=0)) <= 2 * BLOCK_NNZ:
        return None
    sizes = np.diff(np.unique(np.concatenate([[0], np.clip(cuts, 0, n), [n]])))
    sizes = [piece for size in sizes.tolist() for piece in [MAJOR_PER_BLOCK] * (size // MAJOR_PER_BLOCK) + ([size % MAJOR_PER_BLOCK] if size % MAJOR_PER_BLOCK else [])]
    return [[int(v) for v in sizes] if i == axis else [max(m, 1)] for i, m in enumerate(shape)]


def _chunks(shape: tuple[int, ...], nnz: int, axis: int) -> tuple[int, ...]:
    """Blocks of about :data:`BLOCK_NNZ` nonzeros, and at most :data:`MAJOR_PER_BLOCK` long, cut
    along the axis the source is compressed on (a block then reads a contiguous run of the
    source), whole along the others."""
    if not shape:
        return ()
    per = shape[axis] if nnz <= BLOCK_NNZ else max(1, math.ceil(shape[axis] * BLOCK_NNZ / nnz))
    per = min(per, MAJOR_PER_BLOCK)
    return tuple(max(1, per if i == axis else n) for i, n in enumerate(shape))
