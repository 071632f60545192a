"""HDF5 groups that hold one sparse matrix, recognised by the walker (``hdf5_groups``).

Recognised without a rule: AnnData >= 0.7 (``encoding-type`` csr_matrix/csc_matrix and a
``shape`` attribute), older AnnData (``h5sparse_format``, ``h5sparse_shape``) and 10x Genomics
(``data``/``indices``/``indptr`` beside a ``shape`` dataset, CSC features x barcodes; its
barcodes and features stay published beside the matrix, see :func:`.sparse.fold`). A marked
group whose members contradict each other is skipped with the reason; an unmarked one that
does not fold (a square 10x-like matrix, a mismatch) stays a group of arrays with a warning,
and the rule ``sparse: csr|csc|coo`` chooses.
"""

from __future__ import annotations

from typing import Any

from ..jsonable import attrs_to_json
from ..nodes import ContainerNode, Node, SkippedNode
from .hdf5_groups import GROUPS
from .sparse import COMPRESSED, NOT_SPARSE, SparseError, fold, marker


def interpret(walker: Any, group: Any, key: str, h5path: str) -> Node | None:
    import h5py

    def dataset(name: str) -> bool:
        kind = group.get(name, getclass=True)
        return kind is not None and issubclass(kind, h5py.Dataset)

    if not all(dataset(name) for name in COMPRESSED):
        return None
    layout, _ = marker(attrs_to_json(group.attrs))
    if layout is None and not dataset("shape"):
        return None  # no marker and no shape dataset: an ordinary group
    busy: set[str] = walker.__dict__.setdefault("_sparse_busy", set())
    if h5path in busy:
        return None  # the walker reading this group as a plain group, for fold() below
    busy.add(h5path)
    try:
        container = walker.group(group, key, h5path)
    finally:
        busy.discard(h5path)
    assert isinstance(container, ContainerNode)
    try:
        return fold(container)
    except SparseError as exc:
        if layout is not None:
            return SkippedNode(key=key, source_path=h5path, reason=f"inconsistent sparse matrix: {exc}")
        container.warn(f"{NOT_SPARSE}: {exc}")
        return container


GROUPS.append(interpret)
