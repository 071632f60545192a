"""Expand pipeline sources into work items: which file (or stack of files) goes to which node path.

Handles globs, folders, typed file-name patterns (``{sample}_{temperature:d}K_{scan:05d}.tif``),
sidecar metadata files and stacks of frames.
"""

from __future__ import annotations

import glob
import itertools
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .config.models import Pipeline, Source
from .errors import ConfigError
from .readers import Reader, get_reader
from .sidecars import load_sidecar, sidecar_names
from .source_keys import frame_order, no_folder, stack_key, unique_keys
from .source_walk import (
    Folder,
    Policy,
    WalkProblem,
    folder_ids,
    glob_matcher,
    outside_target,
    unlistable,
    walk,
)
from .work_item import WorkItem

_GLOB_CHARS = re.compile(r"[*?\[]")


def _expand(base_dir: Path, source: Source, policy: Policy, skip: Callable[[str], bool],
            avoid: frozenset[tuple[int, int]] = frozenset()) -> tuple[Path, Iterator[Folder | str | WalkProblem], tuple[str, ...] | None]:
    """The source's base folder, the walk of the files it names (with the problems met finding
    them) and the glob pattern below the base, if any; ``skip``: folders not to enter (:func:`.source_walk.walk`)."""
    pattern = source.path
    if _GLOB_CHARS.search(pattern) and not os.path.lexists(base_dir / pattern):  # (a folder named run[1] is that folder)
        parts = PurePosixPath(pattern).parts
        fixed = _fixed(pattern)
        base = (base_dir / Path(*fixed)) if fixed else base_dir
        glob_parts = tuple(parts[len(fixed):])
        return base, walk(base, policy, glob_parts, skip, avoid), glob_parts
    target = base_dir / pattern
    if target.is_dir():
        return target, walk(target, policy, skip=skip, avoid=avoid), None
    # one file: its folder's walk for that one name, so a looping or outside link is reported alike
    name = (glob.escape(target.name),)
    return target.parent, walk(target.parent, policy, name, avoid=avoid), name


def source_folder(pipeline: Pipeline, source: Source, resolved: bool = True) -> str:
    """The resolved folder a source is walked from (``symlinks_outside: refuse`` keeps files in it, checked
    again at conversion); not ``resolved``: as its items' paths name it (where a cluster's workers see it)."""
    base = _expand(pipeline.base_dir, source, "allow", lambda rel: True)[0]  # (its walk is not started)
    return os.path.realpath(base) if resolved else str(base)


def _fixed(pattern: str) -> list[str]:
    """A source path's leading parts without glob characters (all of them for a plain path)."""
    return list(itertools.takewhile(lambda part: not _GLOB_CHARS.search(part), PurePosixPath(pattern).parts))


def _dangling(base_dir: Path, pattern: str) -> str | None:
    """Where a source's path (or the fixed folders above its glob) links to, when that is gone."""
    path = base_dir
    for part in _fixed(pattern):
        path = path / part
        if path.is_symlink():
            try:
                path.resolve(strict=True)
            except FileNotFoundError:
                return os.readlink(path)
            except (OSError, RuntimeError):  # a loop: the walk reports it as that path's failure
                return None
    return None


def _default_into(base: Path, base_dir: Path) -> str:
    """The folder part of a source's path, as published (its own name when it is outside base_dir)."""
    try:
        resolved = base.resolve()
    except (OSError, RuntimeError):  # a looping base folder (Python 3.11 raises RuntimeError)
        return base.name
    return resolved.relative_to(base_dir).as_posix() if resolved.is_relative_to(base_dir) else base.name


@dataclass
class _Here:
    """The plan's view of one folder while the walk is in it: its files' keys and sidecars, by name."""

    keys: dict[str, str]
    sidecars_of: dict[str, list[Path]]
    sidecars: set[str]
    path: Path
    node_folder: str  #: its node path (the source's ``into`` and the folder below the base)
    #: With ``stack:``, each file's name_pattern match, made once for the stacks' keys (:meth:`_SourcePlan.matches`)
    matches: dict[str, Any]

    def child(self, name: str) -> Path:
        """The folder's file ``name`` as a Path, without parsing the folder's path again: pathlib's
        own child constructor where it has one (0.3 µs against 2.2 µs, a million files: 2 s of a
        no-change rebuild's 27), else the division."""
        make = getattr(self.path, "_make_child_relpath", None)
        return make(name) if make is not None else self.path / name  # type: ignore[no-any-return]


class _SourcePlan:
    """One source's items, folder by folder as the walk enters them (:func:`.source_walk.walk`)."""

    def __init__(self, pipeline: Pipeline, index: int, source: Source, avoid: frozenset[tuple[int, int]] = frozenset()) -> None:
        import parse

        self.pipeline, self.index, self.source = pipeline, index, source
        gone = _dangling(pipeline.base_dir, source.path)
        if gone is not None:  # (else the walk would report one dangling link and the build publish the rest without it)
            raise ConfigError(f"{pipeline.line_of('sources', index)}: source path {source.path!r} is a symbolic link to {gone}, "
                              "which does not exist (a share not mounted, a disk renamed?)")
        self._folders_excluded: dict[str, bool] = {}  # (:meth:`_excluded_folder`: the walk meets folders in order)
        self._crossing = [glob_matcher(tuple(x.split("/"))) for x in source.exclude if "**" in x]
        self.skipped_folders = 0  # hidden or excluded, not walked: a source of only those plans nothing, as ever
        self.avoid = avoid
        self.base, self.events, glob_parts = _expand(pipeline.base_dir, source, pipeline.symlinks_outside, self._skipped, avoid)
        self.match = glob_matcher(glob_parts) if glob_parts is not None else None
        self.cut = len(str(self.base)) + 1
        self.real_base = os.path.realpath(self.base)
        if (unlisted := unlistable(self.base)) is not None:  # (else the build would publish the rest without this source)
            raise ConfigError(f"{pipeline.line_of('sources', index)}: source path {source.path!r}: cannot list {pipeline.unrooted(str(self.base))}: {unlisted}")
        into = source.into if source.into is not None else _default_into(self.base, pipeline.base_dir)
        self.into = "" if into == "." else into
        self.reader_cls = get_reader(source.type) if source.type else None
        self.pattern = parse.compile(source.name_pattern) if source.name_pattern else None
        # a folder with no name that could be a sidecar (ending as a template does, e.g. ".json")
        # needs no per-file candidates at all
        self.tails = tuple(t.rpartition("}")[2] for t in source.sidecars)
        #: Frames of the stacks of the folders being walked, by (folder path, node folder, other fields)
        self.stacks: dict[tuple[str, str, tuple[Any, ...]], list[tuple[Any, Path, dict[str, Any]]]] = defaultdict(list)
        self.here: dict[str, _Here] = {}  # the folders the walk is in (the current one and its parents)

    def visible(self, path: str | Path) -> bool:
        return self._shown(str(path)[self.cut:])  # posix, below base (files come from base)

    def _shown(self, rel: str) -> bool:
        if any(part.startswith(".") for part in rel.split("/")):
            return False
        return not self.source.exclude or not (self._excluded(rel) or self._excluded_folder(rel.rpartition("/")[0]))

    def _skipped(self, rel: str) -> bool:
        """A subfolder (``rel`` below the base) the walk does not enter: hidden or excluded, it
        publishes nothing (its parents were entered: only its own name and path are looked at)."""
        skipped = rel.rpartition("/")[2].startswith(".") or (bool(self.source.exclude) and self._excluded(rel))
        self.skipped_folders += skipped
        return skipped

    def _excluded(self, rel: str) -> bool:
        """Whether an exclude pattern names this path: matching it from the right (``*.tmp`` in any
        folder), or from the base when it holds ``**`` (``**/scratch/**``: ``**`` crosses folders,
        as in source paths; Python 3.11's ``PurePath.match`` takes it for ``*``)."""
        path, parts = PurePosixPath(rel), tuple(rel.split("/"))
        return any(path.match(x) for x in self.source.exclude) or any(match(parts, False) for match in self._crossing)

    def _excluded_folder(self, rel: str) -> bool:
        """Whether the folder or one above it is excluded: ``scratch``, ``scratch/*`` or ``scratch/**``
        leave out everything below it (only the files' own paths were matched: ``scratch/**`` left
        ``scratch/deep/b.csv`` published). Each folder asked once while its answer is kept; a loop up
        to the nearest folder answered, not a call per level (600 levels deep: RecursionError)."""
        cache, todo = self._folders_excluded, []
        while rel and rel not in cache:
            todo.append(rel)
            rel = rel.rpartition("/")[0]
        answer = bool(rel) and cache[rel]
        if len(cache) > 4096:
            cache.clear()  # (the folders above those met next are asked again: a few)
        for folder in reversed(todo):
            answer = answer or self._excluded(folder)
            cache[folder] = answer
        return answer

    def _visible_names(self, folder: Folder) -> list[str]:
        """The names of the folder's files :meth:`visible` keeps, its folder part decided once."""
        rel = folder.path[self.cut:]
        if any(part.startswith(".") for part in rel.split("/") if part):
            return []  # a hidden folder (exclude patterns match the files' paths: below)
        names = (f.rpartition("/")[2] for f in folder.files)
        if not self.source.exclude:
            return [n for n in names if not n.startswith(".")]
        return [n for n in names if not n.startswith(".") and self._shown(f"{rel}/{n}" if rel else n)]

    def publishes(self, folder: str) -> bool:
        """Whether a subfolder holds, at any depth, a file this source publishes (then a file named
        as it is keyed by its full name, and the folder's node keeps the name): looked at only when
        names would clash, up to the first such file. (Its direct files alone were looked at: with
        ``a/sub/f.csv`` beside ``a.csv`` both became node ``a``, and ``a/sub/f`` left the index.)"""
        below = folder[self.cut:] + "/"
        for event in walk(Path(folder), "allow", skip=lambda rel: self._skipped(below + rel), avoid=self.avoid):  # (iterative, loops cut)
            if isinstance(event, str) and self.visible(event) and (self.match is None or self.match(tuple(event[self.cut:].split("/")), False)):
                return True
        return False

    def enter(self, folder: Folder) -> None:
        for path in [p for p in self.here if not (folder.path + "/").startswith(p + "/")]:
            del self.here[path]  # left behind: the walk never comes back to it
        files = self._visible_names(folder)
        names = folder.names if any(n.endswith(self.tails) for n in folder.names) else None
        sidecars_of: dict[str, list[Path]] = {}
        if names:
            sidecars_of = {f: [Path(folder.path, n) for n in sidecar_names(self.source.sidecars, f) if n in names] for f in files}
        sidecars = {s.name for group in sidecars_of.values() for s in group}
        files = [f for f in files if f not in sidecars]
        subfolders = set(folder.folders)
        matches = self.matches(folder.path, files)
        stack_keys = {stack_key(name, match.spans, self.source.stack) for name, match in matches.items() if match is not None}  # type: ignore[arg-type]
        keys = unique_keys(files, (lambda stem: any(name in subfolders and self.publishes(f"{folder.path}/{name}") for name in (stem, stem + ".parquet")))
                            if subfolders else no_folder, stack_keys)  # (a folder scan.parquet/'s data under data/scan.parquet/, scan.csv's at data/scan.parquet)
        rel = folder.path[self.cut:]
        self.here[folder.path] = _Here(keys, sidecars_of, sidecars, Path(folder.path), "/".join(p for p in (self.into, rel) if p), matches)

    def matches(self, folder: str, files: list[str]) -> dict[str, Any]:
        """With ``stack:``, each file's name_pattern match (None: none), parsed once: the stacks' keys and the frames' fields."""
        if self.pattern is None or self.source.stack is None:
            return {}
        whole = "/" in self.source.name_pattern  # type: ignore[operator]
        return {name: self.pattern.parse(f"{folder}/{name}"[self.cut:] if whole else name) for name in files}

    def items(self) -> Iterator[WorkItem]:
        found = 0
        for event in self.events:
            if isinstance(event, Folder):
                if self.stacks:
                    yield from self.stacked(event.path)
                self.enter(event)
                continue
            found += 1
            if isinstance(event, WalkProblem):  # each reported as its own path's problem; the rest goes on
                here = self.here.get(os.path.dirname(event.path))
                if self.visible(event.path) and not (here and event.path.name in here.sidecars):  # a sidecar's own, below
                    node_path = "/".join(p for p in (self.into, str(event.path)[self.cut:]) if p)
                    yield WorkItem(self.index, self.source, [event.path], node_path, problem=(event.kind, event.reason), _reader=None)
                continue
            folder, _, name = event.rpartition("/")
            here = self.here[folder]
            if name in here.keys:
                item = self.item(here.child(name), name, event[self.cut:], here)
                if item is not None:
                    yield item
        if not found and not self.skipped_folders:
            raise ConfigError(f"{self.pipeline.line_of('sources', self.index)}: source path {self.source.path!r} matches no file "
                              f"under {self.pipeline.base_dir}")
        yield from self.stacked()

    def item(self, f: Path, name: str, rel: str, here: _Here) -> WorkItem | None:
        """The file's work item (``f``, named ``name``, at ``rel`` below the base), or None when it
        is a frame of a stack (:meth:`stacked`)."""
        source, pipeline = self.source, self.pipeline
        folder = here.node_folder
        metadata: dict[str, Any] = {}
        warnings: list[str] = []
        for sidecar in here.sidecars_of.get(name, ()):
            target = outside_target(sidecar, self.real_base)
            if target and pipeline.symlinks_outside != "allow":  # metadata from outside the source folder
                refuse = pipeline.symlinks_outside == "refuse"
                warnings.append(f"{sidecar}: sidecar {'ignored' if refuse else 'read'}: symlink to {target} leaves the source "
                                f"folder {self.base}" + (" (symlinks_outside: refuse)" if refuse else ""))
                if refuse:
                    continue
            try:
                metadata.update(load_sidecar(sidecar))
            except Exception as exc:
                warnings.append(f"{sidecar}: sidecar ignored: {exc}")
        if self.pattern is not None:
            match = here.matches[name] if here.matches else self.pattern.parse(rel if "/" in source.name_pattern else name)  # type: ignore[operator]
            if match is None:
                warnings.append(f"{f}: file name does not match name_pattern {source.name_pattern!r}")
            else:
                fields = dict(match.named)
                if source.stack is not None:
                    frame = fields.pop(source.stack)
                    key = stack_key(name, match.spans, source.stack)
                    self.stacks[(str(here.path), folder, tuple(sorted(fields.items())))].append((frame, f, {"key": key, **fields}))
                    return None
                metadata.update(fields)
        metadata.update(source.metadata)
        node_path = f"{folder}/{here.keys[name]}" if folder else here.keys[name]
        return WorkItem(self.index, source, [f], node_path, self.reader_cls, metadata=metadata, warnings=warnings)

    def stacked(self, entering: str | None = None) -> Iterator[WorkItem]:
        """The stacks of the folders the walk left (``entering`` one not below them; None: all, at its end): a
        stack's frames are files of one folder (held till the source's end, a million frames took 770 MB)."""
        for where in [w for w in self.stacks if entering is None or not (entering + "/").startswith(w[0] + "/")]:
            frames = sorted(self.stacks.pop(where), key=lambda t: frame_order(t[0]))  # (not str(path): a Path keeps its text, 1 KB a stack more)
            fields = dict(frames[0][2])
            key = fields.pop("key")
            fields[f"{self.source.stack}_values"] = [t[0] for t in frames]
            node_path = "/".join(p for p in (where[1], key) if p)
            paths = [t[1] for t in frames]
            if twins := next(((a, b) for a, b in itertools.pairwise(frames) if frame_order(a[0]) == frame_order(b[0])), None):
                # (which came first was the listing's order: one frame silently hidden behind its twin)
                first, second = sorted(str(t[1]) for t in twins)  # (the listing's order: any)
                reason = (f"{first} and {second} are both {self.source.stack} {twins[0][0]!r} of this stack (untyped, "
                          f"{twins[0][0]!r} and {twins[1][0]!r} are one number): one frame each is needed (rename or exclude one)"
                          if twins[0][0] != twins[1][0] else
                          f"{first} and {second} are both {self.source.stack} {twins[0][0]!r} of this stack: one frame "
                          f"each is needed (rename or exclude one)")
                yield WorkItem(self.index, self.source, paths, node_path, problem=("failure", reason), _reader=None)
                continue
            yield WorkItem(self.index, self.source, paths, node_path, self.reader_cls, metadata={**fields, **self.source.metadata})



def iter_plan(pipeline: Pipeline, store: str | None = None) -> Iterator[WorkItem]:
    """Every work item of the pipeline, in source order then path order, as the walk finds them
    (holding a folder's listing per level, never the tree's), reader options checked on first use.
    Two items at one node path are not caught here (:func:`plan` does, a build by its item table).
    The output store's folder (``store``, else pipeline.yml's), when local, is never walked."""
    parsed: dict[tuple[int, str], Any] = {}
    url = store or pipeline.output.store  # (a local store inside a source folder would publish its releases again, private data as public)
    url = url.removeprefix("file://")
    avoid = folder_ids(pipeline.base_dir / url) if "://" not in url else frozenset()
    for index, source in enumerate(pipeline.sources):
        for item in _SourcePlan(pipeline, index, source, avoid).items():
            if not item.problem and item.source.options and _detected(item) is not None:  # checked before anything is written
                i = item.source_index
                if (i, item.reader.name) not in parsed:
                    parsed[(i, item.reader.name)] = item.reader.parse_options(item.source.options, lambda *loc, i=i: pipeline.line_of("sources", i, "options", *loc))
                item.options = parsed[(i, item.reader.name)]
            yield item


def _detected(item: WorkItem) -> type[Reader] | None:
    """The item's reader; None for a file that cannot be opened to tell (its conversion fails it, naming why)."""
    try:
        return item.reader
    except OSError:
        return None


def duplicate(pipeline: Pipeline, item: WorkItem, other_label: str) -> ConfigError:
    """The error of two items published at one node path (or of one file two sources match)."""
    where, label, other = pipeline.line_of("sources", item.source_index), pipeline.unrooted(item.label), pipeline.unrooted(other_label)
    if label == other:
        return ConfigError(f"{where}: {label} is matched by this source and an earlier one, both publishing it at {item.node_path!r}: "
                           "leave it out of one ('exclude'), or give one a different 'into'")
    return ConfigError(f"{where}: {label} and {other} would both be published at {item.node_path!r}; give one source a different 'into' "
                       "(or, within one source, leave one file out with 'exclude')")


def plan(pipeline: Pipeline) -> list[WorkItem]:
    """Every work item of the pipeline, in source order then path order, in memory (a dry run's,
    a small build's); a build of any size reads :func:`iter_plan` into its item table."""
    items = list(iter_plan(pipeline))
    seen: dict[str, WorkItem] = {}
    for item in items:
        if item.problem:
            continue
        if item.node_path in seen:
            raise duplicate(pipeline, item, seen[item.node_path].label)
        seen[item.node_path] = item
    return items
