"""Expand pipeline sources into work items: which file (or stack of files) goes to which node path.

Handles globs, folders, typed file-name patterns (``{sample}_{temperature:d}K_{scan:05d}.tif``),
sidecar metadata files and stacks of frames.
"""

from __future__ import annotations

import enum
import glob
import itertools
import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .config.models import Pipeline, Source
from .errors import ConfigError
from .readers import Reader, detect, get_reader
from .source_walk import Kind, Policy, Walk, outside_target, walk

_GLOB_CHARS = re.compile(r"[*?\[]")
_SEPARATORS = "_-. "


class _Unset(enum.Enum):
    """Not detected yet: an enum member, so it is still itself after pickling (items go to Dask workers)."""

    UNSET = "unset"


_UNSET: Any = _Unset.UNSET


@dataclass
class WorkItem:
    """One node to read: a file, or a stack of files that becomes one array."""

    source_index: int
    source: Source
    paths: list[Path]
    node_path: str
    forced_reader: type[Reader] | None = None  # the source's `type:`
    options: Any = None  # parsed reader options; None until needed when the source has none
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: (kind, reason) of a path found but not to be read: "failure" (a symlink loop), "skipped"
    #: (a refused or dangling link) or "warning" (a link leaving the source folder, followed)
    problem: tuple[Kind, str] | None = None
    _reader: Any = field(default=_UNSET, repr=False)

    @property
    def reader(self) -> type[Reader] | None:
        """Detected on first use: an unchanged file reused by an incremental build is never opened."""
        if self._reader is _UNSET:
            self._reader = self.forced_reader or detect(self.paths[0])
        return self._reader

    def reader_options(self) -> Any:
        if self.options is None and self.reader is not None:
            self.options = self.reader.parse_options(self.source.options)
        return self.options

    @property
    def key(self) -> str:
        return self.node_path.rpartition("/")[2]

    @property
    def label(self) -> str:
        return str(self.paths[0]) if len(self.paths) == 1 else f"{self.paths[0]} (+{len(self.paths) - 1} stacked)"


def _expand(base_dir: Path, source: Source, policy: Policy) -> tuple[Path, Walk]:
    """The source's base folder, the files it names and the problems met finding them."""
    pattern = source.path
    if _GLOB_CHARS.search(pattern):
        parts = PurePosixPath(pattern).parts
        fixed = list(itertools.takewhile(lambda part: not _GLOB_CHARS.search(part), parts))
        base = (base_dir / Path(*fixed)) if fixed else base_dir
        return base, walk(base, policy, tuple(parts[len(fixed):]))
    target = base_dir / pattern
    if target.is_dir():
        return target, walk(target, policy)
    # one file: its folder's walk for that one name, so a looping or outside link is reported alike
    return target.parent, walk(target.parent, policy, (glob.escape(target.name),))


def _default_into(base: Path, base_dir: Path) -> str:
    """The folder part of a source's path, as published (its own name when it is outside base_dir)."""
    try:
        resolved = base.resolve()
    except (OSError, RuntimeError):  # a looping base folder (Python 3.11 raises RuntimeError)
        return base.name
    return resolved.relative_to(base_dir).as_posix() if resolved.is_relative_to(base_dir) else base.name


def _sidecar_names(source: Source, path: Path) -> list[str]:
    own, stem = path.name, path.stem
    return [n for n in (t.format(name=own, stem=stem) for t in source.sidecars) if n != own]


def _load_sidecar(path: Path) -> dict[str, Any]:
    from .config.loader import load_yaml

    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else load_yaml(text)
    if not isinstance(data, dict):
        raise ValueError(f"sidecar {path} holds a {type(data).__name__}, expected a mapping")
    return data


def _unique_keys(files: list[Path]) -> dict[Path, str]:
    """Node key per file: the stem, or the full name where it would clash with another file's
    stem or with a folder of published files (``a.csv`` next to ``a/``) in the same folder."""
    by_stem: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for f in files:
        by_stem[(os.path.dirname(f), f.stem)].append(f)
    folders = {os.path.split(os.path.dirname(f)) for f in files}
    return {f: (stem if len(group) == 1 and (folder, stem) not in folders else f.name)
            for (folder, stem), group in by_stem.items() for f in group}


def _stack_key(name: str, spans: dict[str, tuple[int, int]], field_name: str) -> str:
    start, stop = spans[field_name]
    stem = PurePosixPath(name[:start] + "\x00" + name[stop:]).stem if "." in name[stop:] else name[:start] + "\x00" + name[stop:]
    left, _, right = stem.partition("\x00")
    key = left.rstrip(_SEPARATORS) + (("_" + right.lstrip(_SEPARATORS)) if right.strip(_SEPARATORS) and left.strip(_SEPARATORS) else right.lstrip(_SEPARATORS))
    return key or "stack"


def plan(pipeline: Pipeline) -> list[WorkItem]:
    """Every work item of the pipeline, in source order then path order."""
    import parse

    items: list[WorkItem] = []
    for index, source in enumerate(pipeline.sources):
        where = pipeline.line_of("sources", index)
        base, found = _expand(pipeline.base_dir, source, pipeline.symlinks_outside)
        if not found.files and not found.problems:
            raise ConfigError(f"{where}: source path {source.path!r} matches no file under {pipeline.base_dir}")
        cut = len(str(base)) + 1

        def visible(path: Path) -> bool:
            rel = str(path)[cut:]  # posix, below base (files come from base)
            return not any(part.startswith(".") for part in rel.split("/")) and not any(PurePosixPath(rel).match(x) for x in source.exclude)

        relative = {f: str(f)[cut:] for f in found.files}
        files = [f for f in found.files if visible(f)]
        # one listing per folder instead of a stat per candidate; a folder with no name that could
        # be a sidecar (ending as a template does, e.g. ".json") needs no per-file candidates at all
        tails = tuple(t.rpartition("}")[2] for t in source.sidecars)
        listings: dict[str, set[str] | None] = {}
        sidecars_of: dict[Path, list[Path]] = {}
        for f in files:
            folder = os.path.dirname(f)
            if folder not in listings:
                names = set(os.listdir(folder))
                listings[folder] = names if any(n.endswith(tails) for n in names) else None
            names = listings[folder]
            sidecars_of[f] = [Path(folder, n) for n in _sidecar_names(source, f) if n in names] if names else []
        sidecars = {s for group in sidecars_of.values() for s in group}
        real_base = os.path.realpath(base)
        problems = [p for p in found.problems if visible(p.path) and p.path not in sidecars]  # a sidecar's own, below
        files = [f for f in files if f not in sidecars]
        into = source.into if source.into is not None else _default_into(base, pipeline.base_dir)
        into = "" if into == "." else into
        for problem in problems:  # each reported as its own path's problem; the rest goes on
            node_path = "/".join(p for p in (into, str(problem.path)[cut:]) if p)
            items.append(WorkItem(index, source, [problem.path], node_path, problem=(problem.kind, problem.reason), _reader=None))
        reader_cls = get_reader(source.type) if source.type else None
        pattern = parse.compile(source.name_pattern) if source.name_pattern else None
        keys = _unique_keys(files)
        stacks: dict[tuple[str, tuple[Any, ...]], list[tuple[Any, Path, dict[str, Any]]]] = defaultdict(list)
        for f in files:
            rel = relative[f]
            folder = "/".join(p for p in (into, rel.rpartition("/")[0]) if p)
            metadata: dict[str, Any] = {}
            warnings: list[str] = []
            for sidecar in sidecars_of[f]:
                target = outside_target(sidecar, real_base)
                if target and pipeline.symlinks_outside != "allow":  # metadata from outside the source folder
                    refuse = pipeline.symlinks_outside == "refuse"
                    warnings.append(f"{sidecar}: sidecar {'ignored' if refuse else 'read'}: symlink to {target} leaves the source "
                                    f"folder {base}" + (" (symlinks_outside: refuse)" if refuse else ""))
                    if refuse:
                        continue
                try:
                    metadata.update(_load_sidecar(sidecar))
                except Exception as exc:
                    warnings.append(f"{sidecar}: sidecar ignored: {exc}")
            if pattern is not None:
                match = pattern.parse(rel if "/" in source.name_pattern else f.name)  # type: ignore[operator]
                if match is None:
                    warnings.append(f"{f}: file name does not match name_pattern {source.name_pattern!r}")
                else:
                    fields = dict(match.named)
                    if source.stack is not None:
                        frame = fields.pop(source.stack)
                        key = _stack_key(f.name, match.spans, source.stack)
                        stacks[(folder, tuple(sorted(fields.items())))].append((frame, f, {"key": key, **fields}))
                        continue
                    metadata.update(fields)
            metadata.update(source.metadata)
            node_path = "/".join(p for p in (folder, keys[f]) if p)
            items.append(WorkItem(index, source, [f], node_path, reader_cls, metadata=metadata, warnings=warnings))
        for (folder, _), frames in stacks.items():
            frames.sort(key=lambda t: t[0])
            fields = dict(frames[0][2])
            key = fields.pop("key")
            fields[f"{source.stack}_values"] = [t[0] for t in frames]
            paths = [t[1] for t in frames]
            node_path = "/".join(p for p in (folder, key) if p)
            items.append(WorkItem(index, source, paths, node_path, reader_cls, metadata={**fields, **source.metadata}))
    parsed: dict[tuple[int, str], Any] = {}
    for item in items:  # reader options are checked before anything is written (sources without options need no check)
        if item.source.options and item.reader is not None:
            i = item.source_index
            if (i, item.reader.name) not in parsed:
                parsed[(i, item.reader.name)] = item.reader.parse_options(item.source.options, lambda *loc, i=i: pipeline.line_of("sources", i, "options", *loc))
            item.options = parsed[(i, item.reader.name)]
    seen: dict[str, WorkItem] = {}
    for item in items:
        if item.problem:
            continue
        if item.node_path in seen:
            other = seen[item.node_path]
            raise ConfigError(
                f"{pipeline.line_of('sources', item.source_index)}: {item.label} and {other.label} would both be published "
                f"at {item.node_path!r}; give one source a different 'into'"
            )
        seen[item.node_path] = item
    return items
