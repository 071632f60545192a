"""Fingerprints for incremental builds: a file is unchanged if its size, mtime and ctime match, or
(when those moved) if its content hash matches; settings are hashed as canonical JSON."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from . import __version__
from .formats import FileRecord


def content_hash(path: Path) -> str:
    """xxh3-128 of the file: change detection needs speed (~10 GB/s), not a cryptographic hash."""
    import xxhash

    h = xxhash.xxh3_128()
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # (a FIFO put in a file's place would block a plain open for a writer)
    with open(fd, "rb", buffering=0) as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO, socket or device put in its place?)", str(path))
        size = st.st_size
        buffer = bytearray(min(size, 8 * 2**20) or 1)  # one buffer, refilled: no allocation per block
        view = memoryview(buffer)
        while n := f.readinto(buffer):
            h.update(view[:n])
    return "xxh3-128:" + h.hexdigest()


def file_record(path: Path, shown: str, previous: FileRecord | None = None) -> FileRecord:
    """The file's record, under the path it is ``shown`` as (relative to pipeline.yml's folder);
    the hash is reused when size, mtime and ctime did not move."""
    st = os.stat(path)
    if previous and same_stat(previous, st):
        return FileRecord(shown, st.st_size, st.st_mtime_ns, previous.hash, st.st_ctime_ns)
    return FileRecord(shown, st.st_size, st.st_mtime_ns, content_hash(path), st.st_ctime_ns)


def referred_record(path: Path, shown: str) -> FileRecord:
    """A file an item's conversion referred to (:attr:`publisher.readers.base.Reader.referred`): its
    stat alone (size -1: it was not there), compared by :func:`still_referred`."""
    try:
        st = os.stat(path)
    except OSError:
        return FileRecord(shown, -1, 0, None, 0)
    return FileRecord(shown, st.st_size, st.st_mtime_ns, None, st.st_ctime_ns)


def still_referred(record: FileRecord, path: Path) -> bool:
    """Whether a referred file is as :func:`referred_record` saw it (there or not)."""
    try:
        return same_stat(record, os.stat(path))
    except OSError:
        return record.size == -1


def same_stat(record: FileRecord, st: os.stat_result) -> bool:
    """Whether the file is as ``record`` saw it: same size, mtime and ctime."""
    return record.size == st.st_size and record.mtime_ns == st.st_mtime_ns and record.ctime_ns == st.st_ctime_ns


def settings_hash(*parts: Any) -> str:
    """Hash of the settings that shape an item's output (with Skyshelf's version: formats may change)."""
    text = json.dumps([__version__, *parts], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def same_content(old: list[FileRecord], new: list[FileRecord]) -> bool:
    return [(r.path, r.hash) for r in old] == [(r.path, r.hash) for r in new]
