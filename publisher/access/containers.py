"""A published container's subtree, for answers that hold a whole container (``container/full``):
walked from the catalog, bounded in nodes and in decoded bytes before any data is read, its
arrays and tables loaded only when a serializer writes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadRequest
from ..stores import Store
from .tables import PublishedTable


@dataclass
class Tree:
    """One node of the subtree: a container (``children``), an array (``load`` gives a numpy
    array) or a table (``load`` gives a pyarrow table)."""

    family: str
    metadata: dict[str, Any]
    children: dict[str, Tree] = field(default_factory=dict)
    load: Callable[[], Any] | None = None
    columns: list[str] = field(default_factory=list)


class TooManyNodes(Exception):
    """The subtree holds more nodes than allowed (the caller says what to do instead)."""


def data_bytes(store: Store, entry: dict[str, Any]) -> int:
    """Decoded bytes of an array or table, from its structure alone."""
    structure = entry["structure"]
    if entry["family"] == "array":
        count = 1
        for n in structure.get("shape", []):
            count *= int(n)
        return count * max(int(structure["data_type"].get("itemsize", 8)), 1)
    if entry["family"] == "table":
        return PublishedTable(store, entry["data_url"], structure).nbytes()
    return 0


def _leaf(store: Store, child: dict[str, Any]) -> Tree:
    url, structure = child["data_url"], child["structure"]
    if child["family"] == "array":
        def load() -> Any:
            from .arrays import published_array

            return published_array(store, url).read()
    else:
        def load() -> Any:
            return PublishedTable(store, url, structure).read()
    return Tree(child["family"], child["metadata"], load=load, columns=list(structure.get("columns", [])))


def subtree(catalog: Any, store: Store, entry: dict[str, Any], fields: list[str] | None, max_nodes: int,
            with_data: bool) -> tuple[Tree, int]:
    """(the container ``entry``'s subtree, the decoded bytes of its data when ``with_data``).
    ``fields`` keeps some of the top container's children (an unknown one is a 400); past
    ``max_nodes`` nodes, :class:`TooManyNodes`."""
    nodes, total = 0, 0

    def build(node: dict[str, Any], keep: list[str] | None = None) -> Tree:
        nonlocal nodes, total
        children = list(catalog.children(node["path"]))
        if keep is not None:
            known = {c["key"] for c in children}
            missing = [k for k in keep if k not in known]
            if missing:
                raise BadRequest(f"no such field(s) {missing} in {node['path']!r}")
            children = [c for c in children if c["key"] in keep]
        tree = Tree("container", node["metadata"])
        for child in children:
            nodes += 1
            if nodes > max_nodes:
                raise TooManyNodes(max_nodes)
            if child["family"] == "container":
                tree.children[child["key"]] = build(child)
                continue
            total += data_bytes(store, child) if with_data else 0
            tree.children[child["key"]] = _leaf(store, child)
        return tree

    return build(entry, fields), total
