"""Items moved or copied since the previous release: a folder renamed, a tree reorganised. A file
at a node path the previous release does not have, whose settings, planned metadata, name, size,
mtime and content hash are those of a record at another path, is that record at its new path: its
entries re-pathed, its data where it was written (releases reuse one another's data already).
Without this, renaming a folder converted everything below it again.

Only where nothing the conversion did depended on the path (:func:`portable`: its reader read
the file alone, the same rules and access tags apply at both places; else it is converted, as
any new file). Single files only (a stack's frames are found by a pattern)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from ..auth.tags import AccessRules
from ..config.models import Pipeline
from ..formats import ManifestItem, Problem
from ..rules import glob_regex
from ..source_walk import glob_matcher

#: At most this many records of one name, size, mtime and settings are compared (hash against hash).
CANDIDATES = 16


def portable(pipeline: Pipeline, access: AccessRules, old: ManifestItem, node_path: str) -> bool:
    """Whether ``old``'s conversion would be the same at ``node_path``: it read its file alone
    (no external link, virtual dataset or series of other files: they may differ beside the new
    path), under the same key, no rule drops nodes inside files (those are not recorded), the
    same rules match each node it published or skipped, with the same access chain, and it has
    no links (their targets are node paths), no failures (converted again wherever they are)
    and no notes or metadata naming its path."""
    if not old.alone or old.failures or len(old.files) != 1 or old.node_path == node_path:
        return False
    if old.node_path.rpartition("/")[2] != node_path.rpartition("/")[2]:  # a key changed (a pyramid's level paths follow it)
        return False
    if any(rule.skip and (_below(rule.match, old.node_path) or _below(rule.match, node_path)) for rule in pipeline.rules):
        return False  # a node it dropped inside the file is in no record to compare
    where = (old.files[0].path, str(pipeline.base_dir / old.files[0].path))
    named = {text for path in where for text in (path, json.dumps(path, ensure_ascii=False)[1:-1])}  # (as JSON writes it: quotes, backslashes)
    texts = (json.dumps([e.get("notes"), e.get("metadata")], ensure_ascii=False) for e in old.entries)
    if any(any(name in text for name in named) for text in texts):
        return False
    patterns = [glob_regex(rule.match.strip("/")) for rule in pipeline.rules]
    paths = [e["path"] for e in old.entries] + [p.path for p in (*old.warnings, *old.skipped)]
    for path in paths:
        if not (path == old.node_path or path.startswith(old.node_path + "/")):
            return False
        new = node_path + path[len(old.node_path):]
        if [bool(p.match(path)) for p in patterns] != [bool(p.match(new)) for p in patterns]:
            return False
        if access.tagged and access.chain(path) != access.chain(new):
            return False
    return not any(isinstance(e.get("notes"), dict) and "links" in e["notes"] for e in old.entries)


def _below(pattern: str, node_path: str) -> bool:
    """Whether a rule's ``match`` could match a node inside the item at ``node_path`` (below it);
    True when its pattern is not one the segment matcher reads as the rule does (``[``, ``**``
    inside a segment)."""
    parts = tuple(pattern.strip("/").split("/"))
    if "[" in pattern or any("**" in part and part != "**" for part in parts):
        return True
    return glob_matcher(parts)(tuple(node_path.split("/")), True)


def moved_to(old: ManifestItem, node_path: str, shown: str) -> ManifestItem:
    """``old`` at ``node_path``, its file shown as ``shown``: entries and problems re-pathed (and
    the file's old name in their texts), its data and data prefixes where they are."""
    was, where = old.files[0].path, old.node_path

    def repath(path: str) -> str:
        return node_path + path[len(where):]

    def entry(e: dict[str, Any]) -> dict[str, Any]:
        path = repath(e["path"])
        parent, _, key = path.rpartition("/")
        source = e.get("source_file")
        return {**e, "path": path, "key": key, "parent": parent, "source_file": shown if source == was else source}

    # the file's old name in the problems' texts, and its folder's (a sidecar beside it): in one pass
    folder, new_folder = (f"{path.rpartition('/')[0]}/" if "/" in path else "" for path in (was, shown))
    named = re.compile(r"(?<![^\s'\"(])(" + "|".join(re.escape(t) for t in (was, folder) if t) + ")") if folder or was else None  # (at a path's start)

    def problem(p: Problem) -> Problem:
        reason = named.sub(lambda m: shown if m.group() == was else new_folder, p.reason) if named else p.reason
        return Problem(repath(p.path), reason, shown if p.source == was else p.source)

    record = replace(old, node_path=node_path, files=[replace(old.files[0], path=shown)], entries=[entry(e) for e in old.entries],
                     warnings=[problem(p) for p in old.warnings], skipped=[problem(p) for p in old.skipped])
    record.seq = -1
    return record
