"""A node's effective access tags from pipeline.yml's rules, and its access class.

A node takes the tags of the last rule that matches its path and sets ``access_tags``; without
one, its parent's (so a rule on a folder covers everything below it, and a rule further down
overrides it); the top takes the catalog's default: ``public`` or none (private). The default is
private once any rule sets tags, so forgetting a rule never publishes. The tags depend on the path
alone, so the build, ``publish validate`` and the handlers agree without walking a tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..rules import glob_regex
from .principal import PUBLIC, chain_id


class TagRule(Protocol):
    match: str
    access_tags: list[str] | None


class AccessRules:
    def __init__(self, rules: Sequence[TagRule], default: str | None = None) -> None:
        self.rules = [(glob_regex(r.match.strip("/")), sorted(set(r.access_tags))) for r in rules if r.access_tags is not None]
        #: Whether any rule sets tags: a catalog without them publishes as before (tags ``None``).
        self.tagged = bool(self.rules) or default == "private"
        self.default = [PUBLIC] if (default or ("private" if self.rules else "public")) == "public" else []
        self._cache: dict[str, list[str]] = {}

    def tags(self, path: str) -> list[str] | None:
        """The node's effective tags (``None`` in a catalog without access rules)."""
        if not self.tagged:
            return None
        return self._tags(path.strip("/"))

    def _tags(self, path: str) -> list[str]:
        found = self._cache.get(path)
        if found is None:
            own = [tags for pattern, tags in self.rules if pattern.match(path)]
            found = own[-1] if own else (self._tags(path.rpartition("/")[0]) if "/" in path else self.default)
            if path == "":
                found = self.default
            self._cache[path] = found
        return found

    def chain(self, path: str) -> list[list[str]]:
        """The tag sets a reader needs along the path (each ancestor below the root, then the node),
        repeats dropped: a node is readable when every one of them is."""
        if not self.tagged:
            return []
        parts = [p for p in path.strip("/").split("/") if p]
        chain: list[list[str]] = []
        for i in range(1, len(parts) + 1):
            tags = self._tags("/".join(parts[:i]))
            if not chain or chain[-1] != tags:
                chain.append(tags)
        return chain

    def access_class(self, path: str) -> str | None:
        """The private prefix's name for the node's data, or ``None`` for the public prefix."""
        return chain_id(self.chain(path))
