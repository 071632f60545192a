"""``publish validate --as``: which nodes a caller would read, before anything is published.

The sources are opened as the build opens them (lazily: no data is read) and the rules applied,
so the node paths are the ones the build will publish; each is checked with the tags along its
path, as the handlers will check it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ..config.models import Pipeline
from ..nodes import ContainerNode, LinkNode, Node, SkippedNode
from ..rules import apply_rules
from ..sources import plan
from .principal import Principal, granted
from .tags import AccessRules


@dataclass
class Reach:
    """What one caller would read of a pipeline's catalog."""

    readable: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)
    #: Nodes whose own tags the caller holds but which a container above hides (a rule to fix?).
    blocked: list[str] = field(default_factory=list)
    #: Items that could not be opened (they would be skipped or fail at build): path → reason.
    unopened: dict[str, str] = field(default_factory=dict)


def principal_for(pipeline: Pipeline, tags: list[str] | None = None, groups: list[str] | None = None,
                  subject: str | None = None) -> Principal:
    """A caller from explicit tags, identity-provider groups and a subject, mapped as tokens are."""
    if not (tags or groups or subject):
        return Principal("anonymous")
    mapped = granted(groups or [], subject, pipeline.access.groups, pipeline.access.subjects)
    return Principal("dry-run", subject, mapped | set(tags or []))


def _paths(node: Node, path: str) -> Iterator[str]:
    if isinstance(node, (SkippedNode, LinkNode)):
        return
    yield path
    if isinstance(node, ContainerNode):
        for child in node.children:
            yield from _paths(child, f"{path}/{child.key}")


def reach(pipeline: Pipeline, who: Principal) -> Reach:
    access = AccessRules(pipeline.rules, pipeline.access.default)
    out = Reach()
    seen: set[str] = set()
    for item in plan(pipeline):
        if item.problem or item.reader is None:
            continue
        parts = item.node_path.split("/")
        paths = ["/".join(parts[:i]) for i in range(1, len(parts))]  # the folders above the item
        try:
            if len(item.paths) > 1 or item.is_stack:
                paths.append(item.node_path)  # a stack: one array
            else:
                with item.reader().open(item.paths[0], item.key, item.reader_options()) as root:
                    kept = apply_rules(root, item.node_path, pipeline.rules)
                    paths += list(_paths(kept, item.node_path)) if kept is not None else []
        except Exception as exc:  # what the build would report as this item's failure
            out.unopened[item.node_path] = f"{type(exc).__name__}: {exc}"
            continue
        for path in paths:
            if path in seen:
                continue
            seen.add(path)
            if who.can_read_chain(access.chain(path)) if access.tagged else True:
                out.readable.append(path)
            else:
                out.hidden.append(path)
                if who.can_read(access.tags(path)):
                    out.blocked.append(path)
    return out
