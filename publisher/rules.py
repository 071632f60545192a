"""Apply pipeline rules to a node tree: skip, chunks, codec, metadata, access tags, group-as-table."""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from .config.models import Rule
from .errors import RuleError
from .nodes import ArrayNode, ContainerNode, LinkNode, Node, SparseNode, TableNode, batch_rows


@lru_cache(maxsize=256)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """``*`` matches within one path segment, ``**`` across segments, ``?`` one character."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        out.append({"*": "[^/]*", "?": "[^/]"}.get(c, re.escape(c)))
        i += 1
    return re.compile("".join(out) + r"\Z")


def matching(rules: list[Rule], path: str) -> list[Rule]:
    return [r for r in rules if glob_regex(r.match.strip("/")).match(path)]


def group_as_table(node: ContainerNode) -> TableNode:
    """A group of equal-length 1-D datasets as one table; anything else in it is an error."""
    import pyarrow as pa

    resolved = [c.target if isinstance(c, LinkNode) and isinstance(c.target, ArrayNode) else c for c in node.children]
    keys = [c.key for c in node.children]  # a linked column keeps the name it has in this group
    columns = [c for c in resolved if isinstance(c, ArrayNode)]
    names = [k for k, c in zip(keys, resolved) if isinstance(c, ArrayNode)]
    others = [k for k, c in zip(keys, resolved) if not isinstance(c, ArrayNode)]
    bad = [f"{c.key} {list(c.shape)}" for c in columns if len(c.shape) != 1]
    lengths = {c.shape[0] for c in columns if len(c.shape) == 1}
    if others or bad or len(lengths) > 1 or not columns:
        detail = "; ".join(
            filter(None, [f"not datasets: {', '.join(others)}" if others else "", f"not 1-D: {', '.join(bad)}" if bad else "",
                          f"lengths differ: {sorted(lengths)}" if len(lengths) > 1 else "", "no datasets" if not columns else ""])
        )
        raise RuleError(f"rule 'table: true' needs a group of equal-length 1-D datasets: {detail}")
    n = lengths.pop()

    def column(c: ArrayNode, sel: slice) -> pa.Array:
        values = c.read((sel,))  # type: ignore[misc]
        return pa.array(values if values.dtype.kind != "O" else values.tolist())

    rows = batch_rows(sum(c.element_bytes for c in columns), most=262_144)

    def batches():  # type: ignore[no-untyped-def]
        for start in range(0, n, rows):
            sel = slice(start, min(n, start + rows))
            yield pa.RecordBatch.from_arrays([column(c, sel) for c in columns], names=names)

    schema = pa.schema([pa.field(k, pa.string() if c.dtype.kind == "O" else pa.from_numpy_dtype(np.dtype(c.dtype))) for k, c in zip(names, columns)])
    metadata = dict(node.metadata)
    metadata["columns"] = {k: c.metadata for k, c in zip(names, columns) if c.metadata}
    return TableNode(key=node.key, metadata=metadata, specs=[s for s in node.specs if s != "xarray_dataset"], source_path=node.source_path, notes=node.notes,
                     schema=schema, batches=batches, num_rows=n)


def folder_rules(rules: list[Rule], path: str) -> list[Rule]:
    """The rules of the folders above ``path``: a folder is a container as an in-file group is, so
    a ``skip`` matching it skips all below it and its ``metadata`` is its own (both were ignored:
    a folder meant to be left out was published)."""
    parts = path.split("/")
    return [r for i in range(1, len(parts)) for r in matching(rules, "/".join(parts[:i]))]


def apply_rules(node: Node, path: str, rules: list[Rule]) -> Node | None:
    """Return the node with rules applied (None when skipped); recurses into containers."""
    applied = matching(rules, path)
    if any(r.skip for r in applied):
        return None
    layout = next((r.sparse for r in applied if r.sparse), None)
    if layout is not None:
        from .readers.sparse import SparseError, by_rule

        try:
            node = by_rule(node, layout)
        except SparseError as exc:
            raise RuleError(f"rule 'sparse: {layout}' on {path}: {exc}") from None
    for rule in applied:
        node.metadata.update(rule.metadata)
        if rule.access_tags is not None:
            node.access_tags = list(rule.access_tags)
        if isinstance(node, ArrayNode):
            if rule.chunks is not None:
                if len(rule.chunks) != len(node.shape):
                    raise RuleError(f"rule {rule.match!r}: chunks {rule.chunks} have {len(rule.chunks)} dimensions, {path} has {len(node.shape)}")
                node.chunks = tuple(-1 if c is None else c for c in rule.chunks)
            if rule.codec is not None:
                node.codec = rule.codec
            if rule.pyramid is not None:
                node.pyramid = rule.pyramid
            if rule.labels:
                node.labels = True
        if isinstance(node, SparseNode) and rule.chunks is not None:  # the block shape
            if len(rule.chunks) != len(node.shape):
                raise RuleError(f"rule {rule.match!r}: chunks {rule.chunks} have {len(rule.chunks)} dimensions, {path} has {len(node.shape)}")
            node.chunks = tuple(n if c in (None, -1) else c for c, n in zip(rule.chunks, node.shape))
            node.grid = None
    if isinstance(node, ContainerNode):
        if any(r.table for r in applied):
            return group_as_table(node)
        if any(r.ragged for r in applied):
            from .readers.hdf5_ragged import group_as_ragged

            return group_as_ragged(node)
        kept = []
        for child in node.children:
            new = apply_rules(child, f"{path}/{child.key}" if path else child.key, rules)
            if new is not None:
                kept.append(new)
        node.children = kept
    return node
