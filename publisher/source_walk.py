"""Walk a source folder safely: symlink loops, dangling links and unreadable folders become problems
of their own path instead of a traceback, and links that leave the source folder are reported
(and followed or refused, as ``symlinks_outside`` says).

Globs are matched here too (``**`` spans folders, other segments as :mod:`fnmatch`), so a
pattern walks only the folders that could hold a match and never follows a loop.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Kind = Literal["failure", "skipped", "warning"]
Policy = Literal["warn", "refuse", "allow"]


@dataclass
class WalkProblem:
    path: Path
    kind: Kind
    reason: str


@dataclass
class Folder:
    """A folder the walk enters, before any file in it: what the plan needs of its neighbours
    (sidecars, clashing names) without holding the rest of the tree."""

    path: str
    names: set[str]  #: everything it lists
    files: list[str]  #: the regular files in it the walk yields (matching the pattern), in order
    folders: list[str]  #: the subfolders' names it walks into


#: A subfolder to walk: its path, its parts below the root, and the folders above it (loops).
_Subfolder = tuple[str, tuple[str, ...], frozenset[tuple[int, int]]]


def glob_matcher(pattern: tuple[str, ...]) -> Callable[[tuple[str, ...], bool], bool]:
    """``match(parts, partial)``: do path segments match the pattern (``partial``: could a path
    below this folder match it)? The pattern's positions reachable after each segment, in a loop
    (a recursion per segment ended deep trees with RecursionError). A folder the whole pattern
    matches is taken whole (``raw/2024-*`` published the files of that name and dropped the
    folders, without a word)."""
    last = len(pattern)

    def close(states: set[int]) -> set[int]:  # a ** may also match no segment
        todo = list(states)
        while todo:
            i = todo.pop()
            if i < last and pattern[i] == "**" and i + 1 not in states:
                states.add(i + 1)
                todo.append(i + 1)
        return states

    def match(parts: tuple[str, ...], partial: bool) -> bool:
        states = close({0})
        for depth, part in enumerate(parts):
            if depth and last in states and pattern[-1] != "**":
                return True  # below a folder the whole pattern names: all of it, as a folder given as a source path
            states = close({i if pattern[i] == "**" else i + 1 for i in states
                            if i < last and (pattern[i] == "**" or fnmatch.fnmatchcase(part, pattern[i]))})
            if not states:
                return False
        return (any(i < last for i in states) or last in states) if partial else last in states

    return match


def outside_target(path: str | Path, real_root: str) -> str | None:
    """Where a symlink points when that is outside ``real_root`` (a resolved folder); None otherwise."""
    if not os.path.islink(path):
        return None
    target = os.path.realpath(path)
    return None if within(target, real_root) else target


def within(real: str, real_root: str) -> bool:
    """Whether a resolved path is ``real_root`` (a resolved folder) or below it."""
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def folder_ids(*folders: Path) -> frozenset[tuple[int, int]]:
    """The (device, inode) of those of ``folders`` that are there, for :func:`walk`'s ``avoid``."""
    found = set()
    for folder in folders:
        with contextlib.suppress(OSError):
            st = os.stat(folder)
            found.add((st.st_dev, st.st_ino))
    return frozenset(found)


def special(mode: int) -> str | None:
    """What a file of this mode is when it is neither a regular file nor a folder (opening a FIFO
    for reading waits for a writer: forever, for a build), else None."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "not a regular file")


def not_regular(path: Path) -> str | None:
    """:func:`special` of the file at ``path`` (links followed); None when it is not there."""
    try:
        return special(os.stat(path).st_mode)
    except OSError:
        return None


def unlistable(folder: Path) -> str | None:
    """Why a source's own folder cannot be listed (an NFS export squashing this user, its mode), or
    None (listed, or not there: a source matching no file is its own error)."""
    try:
        os.scandir(folder).close()
    except (PermissionError, NotADirectoryError) as exc:
        return f"{exc.strerror or exc} (an NFS export squashing this user, the folder's mode?)"
    except OSError:
        pass
    return None


def walk(root: Path, policy: Policy = "warn", pattern: tuple[str, ...] | None = None,
         skip: Callable[[str], bool] | None = None, avoid: frozenset[tuple[int, int]] = frozenset()) -> Iterator[Folder | str | WalkProblem]:
    """Every regular file below ``root`` (following symlinks, never round a loop), in path order
    (a folder's files and subfolders by name, each subfolder's contents at its place), each folder
    announced before its files, with the problems met on the way at their places; with
    ``pattern``, only what matches it (relative to root); ``skip(rel)``: a subfolder (its posix
    path below root) the walk does not enter (a source's hidden and excluded folders: a NetApp
    ``.snapshot`` holds the whole tree again, per snapshot); ``avoid``: folders (device, inode)
    never entered, however reached (the build's own store inside a source folder: its releases,
    private data too, published again as sources). One folder's listing per level is held at a
    time, never the tree's."""
    match = glob_matcher(pattern) if pattern is not None else None
    real_root = os.path.realpath(root)
    try:
        top = os.stat(root)
    except OSError as exc:
        if os.path.islink(root):
            yield _link_problem(root, exc)
        return
    if not stat.S_ISDIR(top.st_mode) or (top.st_dev, top.st_ino) in avoid:
        return
    # a stack of the folders being walked, not recursion: a tree may be deeper than Python's recursion limit
    stack = [_visit(str(root), (), frozenset({(top.st_dev, top.st_ino)}), root, real_root, policy, match, skip, avoid)]
    while stack:
        for event in stack[-1]:
            if isinstance(event, tuple):  # a subfolder, walked at its place
                stack.append(_visit(*event, root, real_root, policy, match, skip, avoid))
                break
            yield event
        else:
            stack.pop()


def _visit(folder: str, rel: tuple[str, ...], ancestors: frozenset[tuple[int, int]], root: Path, real_root: str, policy: Policy,
           match: Callable[[tuple[str, ...], bool], bool] | None, skip: Callable[[str], bool] | None = None,
           avoid: frozenset[tuple[int, int]] = frozenset()) -> Iterator[Folder | str | WalkProblem | _Subfolder]:
    """One folder: it, then its files, problems and subfolders (which :func:`walk` enters) in name order."""
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        yield WalkProblem(Path(folder), "failure", f"cannot list this folder: {exc.strerror or exc}")
        return
    # each entry: a file's path, a subfolder (path, parts, ancestors), or a problem, in name order
    found: list[str | _Subfolder | WalkProblem] = []
    for entry in entries:
        parts = (*rel, entry.name)
        try:
            if not entry.name.isascii() and _undecodable(entry.name):  # (its node path, the index and report are UTF-8)
                if match is None or match(parts, entry.is_dir()) or match(parts, False):
                    shown = entry.name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                    found.append(WalkProblem(Path(folder, shown), "failure", f"its name is not valid UTF-8 ({shown}): a published name must "
                                             "be; rename it (e.g. convmv -f latin1 -t utf8)"))
                continue
            link = entry.is_symlink()
            if link:
                try:
                    st = os.stat(entry.path)
                except OSError as exc:
                    if match is None or match(parts, False) or match(parts, True):
                        found.append(_link_problem(Path(entry.path), exc))
                    continue
                is_dir, is_file = stat.S_ISDIR(st.st_mode), stat.S_ISREG(st.st_mode)
            else:  # the entry's type without a stat (1,000 files: a stat each would double the walk)
                is_dir, is_file = entry.is_dir(follow_symlinks=False), entry.is_file(follow_symlinks=False)
            if not (match is None or match(parts, is_dir)):
                continue
            if not (is_dir or is_file):  # a FIFO, socket or device: said, never opened (a FIFO would block the build)
                found.append(WalkProblem(Path(entry.path), "skipped", f"{special((st if link else entry.stat(follow_symlinks=False)).st_mode)}, "
                                         "not a regular file: not read"))
                continue
            if is_dir and skip is not None and skip("/".join(parts)):
                continue
            target = outside_target(entry.path, real_root) if link else None
            if target:
                if policy == "refuse":
                    found.append(WalkProblem(Path(entry.path), "skipped",
                                             f"symlink to {target} leaves the source folder {root}; refused (symlinks_outside: refuse)"))
                    continue
                if policy == "warn":
                    found.append(WalkProblem(Path(entry.path), "warning",
                                             f"symlink to {target} leaves the source folder {root}; followed "
                                             "(symlinks_outside: refuse skips such links, allow stops this warning)"))
            if is_dir:
                st = st if link else entry.stat(follow_symlinks=False)
                key = (st.st_dev, st.st_ino)
                if key in avoid:
                    continue
                if key in ancestors:
                    found.append(WalkProblem(Path(entry.path), "failure",
                                             f"symlink loop: it points to {os.path.realpath(entry.path)}, a folder that contains it"))
                    continue
                found.append((entry.path, parts, ancestors | {key}))
            else:
                found.append(entry.path)
        except OSError as exc:
            found.append(WalkProblem(Path(entry.path), "failure", f"cannot read: {exc.strerror or exc}"))
    yield Folder(folder, {e.name for e in entries}, [f for f in found if isinstance(f, str)],
                 [os.path.basename(f[0]) for f in found if isinstance(f, tuple)])
    del entries
    yield from found


def _undecodable(name: str) -> bool:
    """Whether a listed name held bytes that are not UTF-8 (Python gives them as lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _link_problem(path: Path, exc: OSError) -> WalkProblem:
    target = os.readlink(path) if os.path.islink(path) else "?"
    if exc.errno == errno.ELOOP:
        return WalkProblem(path, "failure", f"symlink loop: {path} -> {target} never reaches a file or folder")
    if exc.errno == errno.ENOENT:
        return WalkProblem(path, "skipped", f"dangling symlink to {target}")
    return WalkProblem(path, "failure", f"cannot follow the symlink to {target}: {exc.strerror or exc}")
