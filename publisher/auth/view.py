"""A published catalog as one caller sees it: the nodes its tags reach, and nothing of the rest.

Every route reads the catalog through this view, so access is decided in one place: a node the
caller may not read (or one under a container it may not read) raises the very ``NotFound`` a
missing node raises, a container lists and counts only readable children, and searches carry
an access filter that the row and column engines apply like any query. A catalog without
private nodes is passed through untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..catalog import Catalog
from ..errors import NotFound, Unauthorized
from ..formats import Entry
from ..queries.base import Query
from .principal import ANONYMOUS, Principal

#: Where the build counts a container's children by their tag sets (``"a|b"``: ``n``).
CHILD_ACCESS = "child_access"


def tag_key(tags: list[str] | None) -> str:
    return "|".join(sorted(set(tags or [])))


class View:
    def __init__(self, catalog: Catalog, principal: Principal = ANONYMOUS) -> None:
        self.catalog, self.principal = catalog, principal
        access = catalog.info.access
        #: Whether anything is hidden from anyone (without private nodes nothing is filtered). Fails
        #: closed: a catalog with an access section is filtered unless it says nothing is private.
        self.restricted = access is not None and access.get("private_nodes", True) is not False
        self._readable: dict[str, bool] = {"": True}

    def __getattr__(self, name: str) -> Any:  # release, info, store, search_columns, ...
        return getattr(self.catalog, name)

    # -- nodes ---------------------------------------------------------------------------
    def entry(self, path: str) -> Entry:
        """The node, or the ``NotFound`` of a missing one when the caller may not read it or
        anything above it (the same message, so the two cannot be told apart)."""
        path = path.strip("/")
        entry = self.catalog.entry(path)
        if self.restricted and not self._path_readable(path, entry):
            raise NotFound(f"no node at path {path!r}")
        return entry

    def _path_readable(self, path: str, entry: Entry | None = None) -> bool:
        found = self._readable.get(path)
        if found is None:
            parent = path.rpartition("/")[0]
            own = entry if entry is not None else self.catalog.entry(path)
            found = self.principal.can_read(own.access_tags) and self._path_readable(parent)
            self._readable[path] = found
        return found

    def entries(self, path: str, offset: int = 0, limit: int | None = None) -> Iterator[Entry]:
        """The readable children of a readable container, ``offset`` and ``limit`` counted among them."""
        if not self.restricted or self.reads_all_children(self.entry(path)):
            yield from self.catalog.entries(path, offset, limit)
            return
        shown = 0
        for child in self.catalog.entries(path):
            if not self.principal.can_read(child.access_tags):
                continue
            if shown >= offset:
                if limit is not None and shown - offset >= limit:
                    return
                yield child
            shown += 1

    def reads_all_children(self, entry: Entry) -> bool:
        """Whether the caller reads every child of this container (its listing and searches then
        need no filter: the index pages a page needs, as for a public container)."""
        return self.count(entry) == getattr(entry.structure, "count", None)

    def search_columns(self, path: str, count: int) -> Any:
        """A large container's search columns, chosen by how many children it has, not how many
        the caller sees (its index holds columns, not pages, whatever the caller reads of it)."""
        if self.restricted:
            count = getattr(self.catalog.entry(path).structure, "count", count)
        return self.catalog.search_columns(path, count)

    def count(self, entry: Entry) -> int:
        """How many children of a container the caller sees."""
        total = getattr(entry.structure, "count", 0)
        if not self.restricted:
            return total
        counts: dict[str, int] = entry.notes.get(CHILD_ACCESS) or {}
        return sum(n for key, n in counts.items() if self.principal.can_read(key.split("|") if key else []))

    # -- searches ------------------------------------------------------------------------
    def scoped(self, queries: list[Query], children_of: Entry | None = None) -> list[Query]:
        """The caller's queries and, in a catalog with private nodes, the access filter. For a
        search of ``children_of``'s children only, none when the caller reads every child: a
        filter makes a search scan all children, where a plain page reads only its index pages."""
        if not self.restricted:
            return queries
        if children_of is not None and self.reads_all_children(children_of):
            return queries
        from ..queries.fields import AccessTagsFilter

        return [*queries, AccessTagsFilter(tags=sorted(self.principal.reach))]

    def require_some_access(self) -> None:
        """An anonymous caller of a catalog it can read nothing of must sign in (a 401)."""
        if self.restricted and self.principal.anonymous and self.count(self.catalog.entry("")) == 0:
            raise Unauthorized("this catalog is private: send an API key (Authorization: Apikey ...) or a token (Authorization: Bearer ...)")
