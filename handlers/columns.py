"""Which table and column a node path names (``<table path>/<column>``), for the metadata and
tables functions alike. A column's name may hold '/': the tiled client puts it in the path
unquoted, and ``a%2Fb`` arrives decoded the same, so the split is not simply at the last '/'."""

from __future__ import annotations

from publisher.auth.view import View
from publisher.errors import NotFound
from publisher.formats import Entry
from publisher.structures import TableStructure


def table_column(catalog: View, path: str) -> tuple[Entry, str, str] | None:
    """(the table's entry, its path, the column), or None when ``path`` names no table's column.
    The table is the longest prefix of the path that is a node (a table has no nodes below it)."""
    parent, _, column = path.rpartition("/")
    while parent:
        try:
            entry = catalog.entry(parent)
        except NotFound:
            parent, _, head = parent.rpartition("/")
            column = f"{head}/{column}"
            continue
        found = isinstance(entry.structure, TableStructure) and column in entry.structure.columns
        return (entry, parent, column) if found else None
    return None
