"""HDF5 groups and datasets that stand for one structure rather than a folder of arrays.

A sparse matrix stored as ``data``/``indices``/``indptr`` (AnnData, 10x Genomics), an AnnData
``awkward-array`` group or a NeXus ``NXevent_data`` group is one node of another family, not
a container of meaningless 1-D arrays; a variable-length dataset is ragged. The HDF5 walker
asks these interpreters first (in order) and falls back to its own group/dataset handling when
each answers ``None``. Each interpreter lives in its own module (``hdf5_sparse``,
``hdf5_ragged``) and registers itself here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ..nodes import Node

#: ``(walker, group, key, h5path) -> Node | None``
GroupInterpreter = Callable[[Any, Any, str, str], "Node | None"]
#: ``(walker, dataset, key, h5path, metadata) -> Node | None`` for datasets the walker cannot map to an array.
DatasetInterpreter = Callable[[Any, Any, str, str, dict[str, Any]], "Node | None"]

GROUPS: list[GroupInterpreter] = []
DATASETS: list[DatasetInterpreter] = []
_loaded = False
_lock = threading.Lock()


def _load() -> None:
    """Register the interpreters once. Marked loaded only once they are: a build reads files on
    several threads, and one that found the mark set while another was still importing them took
    AnnData's sparse matrices for folders and its ragged arrays for unsupported ones."""
    global _loaded
    if _loaded:
        return
    with _lock:
        if _loaded:
            return
        import importlib

        for name in ("hdf5_sparse", "hdf5_ragged"):
            try:
                importlib.import_module(f"{__package__}.{name}")
            except ModuleNotFoundError as exc:  # a module not written yet; never hide a missing dependency
                if exc.name != f"{__package__}.{name}":
                    raise
        _loaded = True


def interpret_group(walker: Any, group: Any, key: str, h5path: str) -> Node | None:
    _load()
    for interpret in GROUPS:
        node = interpret(walker, group, key, h5path)
        if node is not None:
            return node
    return None


def interpret_dataset(walker: Any, ds: Any, key: str, h5path: str, metadata: dict[str, Any]) -> Node | None:
    _load()
    for interpret in DATASETS:
        node = interpret(walker, ds, key, h5path, metadata)
        if node is not None:
            return node
    return None
