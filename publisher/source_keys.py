"""Node keys of a folder's files: a file's name without its extension, unless that clashes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import PurePosixPath

_SEPARATORS = "_-. "


def stem_of(name: str) -> str:
    """:attr:`pathlib.PurePath.stem` of a file name, without making a path (a million files)."""
    i = name.rfind(".")
    return name[:i] if 0 < i < len(name) - 1 else name


def no_folder(stem: str) -> bool:
    """A folder with no subfolders: no file clashes with one."""
    return False


def unique_keys(names: list[str], publishes: Callable[[str], bool]) -> dict[str, str]:
    """Node key per file name of one folder: the stem, or the full name where it would clash with
    another file's stem or with a folder of published files (``a.csv`` next to ``a/``, or to
    ``a.parquet/``, a pyarrow dataset, where its data would be: ``publishes("a")`` says)."""
    by_stem: dict[str, list[str]] = defaultdict(list)
    for name in names:
        by_stem[stem_of(name)].append(name)
    return {name: (stem if len(group) == 1 and not publishes(stem) else name) for stem, group in by_stem.items() for name in group}


def stack_key(name: str, spans: dict[str, tuple[int, int]], field_name: str) -> str:
    start, stop = spans[field_name]
    stem = PurePosixPath(name[:start] + "\x00" + name[stop:]).stem if "." in name[stop:] else name[:start] + "\x00" + name[stop:]
    left, _, right = stem.partition("\x00")
    key = left.rstrip(_SEPARATORS) + (("_" + right.lstrip(_SEPARATORS)) if right.strip(_SEPARATORS) and left.strip(_SEPARATORS) else right.lstrip(_SEPARATORS))
    return key or "stack"
