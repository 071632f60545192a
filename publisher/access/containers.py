"""A published container's subtree, for answers that hold a whole container (``container/full``):
walked from the catalog, bounded in nodes and in decoded bytes before any data is read, its
arrays and tables loaded only when a serializer writes them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import BadRequest
from ..formats import Entry
from ..stores import Store
from ..structures import ArrayStructure, AwkwardStructure, SparseStructure, TableStructure
from .tables import PublishedTable

if TYPE_CHECKING:
    from ..catalog import Catalog


@dataclass
class Tree:
    """One node of the subtree: a container (``children``), an array (``load`` gives a numpy
    array), a table (``load`` gives a pyarrow table) or an awkward array (an ``awkward.Array``)."""

    family: str
    metadata: dict[str, Any]
    children: dict[str, Tree] = field(default_factory=dict)
    load: Callable[[], Any] | None = None
    columns: list[str] = field(default_factory=list)


class TooManyNodes(Exception):
    """The subtree holds more nodes than allowed (the caller says what to do instead)."""


def data_bytes(store: Store, entry: Entry) -> int:
    """Decoded bytes of an array or table, from its structure alone."""
    structure = entry.structure
    if isinstance(structure, ArrayStructure):
        return math.prod(structure.shape) * max(structure.data_type.itemsize, 1)
    if isinstance(structure, TableStructure):
        return PublishedTable(store, entry.data_url or "", structure).nbytes()
    if isinstance(structure, AwkwardStructure):  # at least its stored size (the structure has no byte count)
        return (store.stat(entry.data_url or "") or (0, 0.0))[0]
    if isinstance(structure, SparseStructure):  # its nonzeros, as the build counted them (else the dense size)
        nnz = (entry.notes or {}).get("sparse", {}).get("nnz", math.prod(structure.shape))
        return int(nnz) * (8 * len(structure.shape) + max(structure.data_type.itemsize, 1))
    return 0


def _leaf(store: Store, child: Entry) -> Tree:
    url, structure = child.data_url or "", child.structure
    if isinstance(structure, ArrayStructure):
        def load() -> Any:
            from .arrays import published_array

            return published_array(store, url).read()
        columns: list[str] = []
    elif isinstance(structure, AwkwardStructure):
        def load() -> Any:
            from .awkward import PublishedAwkward

            return PublishedAwkward(store, url, structure).read()
        columns = []
    elif isinstance(structure, SparseStructure):
        def load() -> Any:  # (coords, data, shape)
            from .sparse import PublishedSparse

            return PublishedSparse(store, url, structure).read(())
        columns = []
    else:
        def load() -> Any:
            return PublishedTable(store, url, structure).read()
        columns = list(structure.columns)
    return Tree(child.family, child.metadata, load=load, columns=columns)


def subtree(catalog: Catalog, store: Store, entry: Entry, fields: list[str] | None, max_nodes: int,
            with_data: bool) -> tuple[Tree, int]:
    """(the container ``entry``'s subtree, the decoded bytes of its data when ``with_data``).
    ``fields`` keeps some of the top container's children (an unknown one is a 400); past
    ``max_nodes`` nodes, :class:`TooManyNodes`."""
    nodes, total = 0, 0

    def build(node: Entry, keep: list[str] | None = None) -> Tree:
        nonlocal nodes, total
        children = list(catalog.entries(node.path))
        if keep is not None:
            known = {c.key for c in children}
            missing = [k for k in keep if k not in known]
            if missing:
                raise BadRequest(f"no such field(s) {missing} in {node.path!r}")
            children = [c for c in children if c.key in keep]
        tree = Tree("container", node.metadata)
        for child in children:
            nodes += 1
            if nodes > max_nodes:
                raise TooManyNodes(max_nodes)
            if child.family == "container":
                tree.children[child.key] = build(child)
                continue
            total += data_bytes(store, child) if with_data else 0
            tree.children[child.key] = _leaf(store, child)
        return tree

    return build(entry, fields), total
