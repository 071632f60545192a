"""The writer contract and registry (imported by the writers themselves; the package re-exports it)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from ..config.models import Output
from ..errors import StoreError
from ..nodes import Node
from ..registry import Registry
from ..stores import Store


@dataclass(frozen=True)
class WriteContext:
    """What every writer of one build shares: the store, the release prefix, the output settings, the pool."""

    store: Store
    prefix: str
    output: Output
    pool: ThreadPoolExecutor
    #: Slabs in flight across all writers (bounded memory).
    slots: int
    #: On a cluster worker: writes a big array's slabs as tasks of their own (:class:`Spread`); None: here.
    spread: Spread | None = None
    #: Set when the build ends early (Ctrl-C, a failure that stops it): chunks not yet encoded are not.
    stop: threading.Event | None = None


class Spread(Protocol):
    """Writes the chunk-aligned ``regions`` of a big array somewhere else (other cluster workers):
    each region read from the node at index path ``node_path``, encoded by ``layout``, stored at
    ``zarr_path`` under ``prefix``; returns (bytes read, longest text or None) per region."""

    min_bytes: int

    def __call__(self, node_path: str, prefix: str, zarr_path: str, layout: Any, regions: list[tuple[slice, ...]]) -> list[tuple[int, int | None]]: ...


@dataclass
class Written:
    """One written node: its structure (``ArrayStructure``, ``TableStructure``, ...), where its data lives, bytes read."""

    structure: Any
    data_url: str
    bytes_in: int


class Writer(Protocol):
    def write(self, node: Node, path: str, zarr_path: str, documents: dict[str, Any]) -> Written:
        """Write ``node`` (index path ``path``; ``zarr_path`` inside its file's Zarr hierarchy, whose
        metadata documents collect in ``documents``) below the context's prefix."""
        ...


def discard(store: Store, keys: list[str]) -> None:
    """Delete what a node's failed write left (each key an object or a folder): a writer that
    fails takes its objects with it, so a reader of the release's data (``xarray.open_zarr`` of a
    file's group, a listing of its Parquet) never finds a failed node half written (an array whose
    chunks never came read as its fill value). The write's own error is what the build reports:
    a delete that fails too is only logged."""
    for key in keys:
        try:
            store.delete_prefix(key)
        except Exception as exc:  # (the store's own error says it all; another's traceback is kept)
            logging.getLogger("skyshelf.build").warning("could not delete %s after its node failed: %s", key, exc,
                                                        exc_info=not isinstance(exc, StoreError))


#: By structure family; the package's ``_builtins`` imports the built-in ones.
WRITERS: Registry[Callable[[WriteContext], Writer]] = Registry("skyshelf.writers", "writer")


def register(family: str) -> Callable[[Callable[[WriteContext], Writer]], Callable[[WriteContext], Writer]]:
    """Register a writer (a class made from a :class:`WriteContext`) for a structure family."""
    return WRITERS.register(family)


def writers_for(context: WriteContext) -> dict[str, Writer]:
    """One writer per registered family, for one build."""
    return {family: make(context) for family, make in WRITERS.items().items()}


__all__ = ["WRITERS", "Spread", "WriteContext", "Writer", "Written", "discard", "register", "writers_for"]
