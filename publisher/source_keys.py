"""Node keys of a folder's files: a file's name without its extension, unless that clashes; a
stack's frames in order."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Collection
from pathlib import PurePosixPath
from typing import Any

_SEPARATORS = "_-. "


def stem_of(name: str) -> str:
    """:attr:`pathlib.PurePath.stem` of a file name, without making a path (a million files)."""
    i = name.rfind(".")
    return name[:i] if 0 < i < len(name) - 1 else name


def no_folder(stem: str) -> bool:
    """A folder with no subfolders: no file clashes with one."""
    return False


def unique_keys(names: list[str], publishes: Callable[[str], bool], taken: Collection[str] = ()) -> dict[str, str]:
    """Node key per file name of one folder: the stem, or the full name where it would clash with
    another file's key (``a.csv`` beside ``a.txt``; then also ``a.csv.gz``, whose stem is
    ``a.csv``), with a stack's key (``taken``), or with a folder of published files (``a.csv``
    next to ``a/``, or to ``a.parquet/``, a pyarrow dataset, where its data would be:
    ``publishes("a")`` says, asked only of stems no file clashes with: it may walk the folder)."""
    stems = {name: stem_of(name) for name in names}
    full = {name for name, stem in stems.items() if stem in taken}
    asked: set[str] = set()
    while True:
        keys = {name: name if name in full else stems[name] for name in names}
        counts = Counter(keys.values())
        clashing = {name for name, key in keys.items() if counts[key] > 1 and name not in full}
        if not clashing:  # (file names are unique: only a stem can clash, and a file given its name settles it)
            published = {name for name in names if name not in full and name not in asked and publishes(stems[name])}
            asked.update(name for name in names if name not in full)
            if not published:
                return keys
            clashing = published
        full |= clashing


def stack_key(name: str, spans: dict[str, tuple[int, int]], field_name: str) -> str:
    start, stop = spans[field_name]
    stem = PurePosixPath(name[:start] + "\x00" + name[stop:]).stem if "." in name[stop:] else name[:start] + "\x00" + name[stop:]
    left, _, right = stem.partition("\x00")
    key = left.rstrip(_SEPARATORS) + (("_" + right.lstrip(_SEPARATORS)) if right.strip(_SEPARATORS) and left.strip(_SEPARATORS) else right.lstrip(_SEPARATORS))
    return key or "stack"


def frame_order(value: Any) -> tuple[Any, ...]:
    """A stack frame's place: a typed field's value (``{frame:d}``) as it is; an untyped one in
    natural order, its digit runs as numbers (frames 1, 2, 10, not 1, 10, 2)."""
    if not isinstance(value, str):
        return (0, value)
    return (1, *(int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", value))))
