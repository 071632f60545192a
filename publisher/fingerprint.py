"""Fingerprints for incremental builds: a file is unchanged if its size and mtime match, or
(when those moved) if its content hash matches; settings are hashed as canonical JSON."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from . import __version__


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * 2**20):
            h.update(block)
    return h.hexdigest()


def file_record(path: Path, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{path, size, mtime_ns, sha256}``; the hash is reused when size and mtime did not move."""
    stat = os.stat(path)
    record = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if previous and previous.get("path") == record["path"] and previous["size"] == stat.st_size and previous["mtime_ns"] == stat.st_mtime_ns:
        record["sha256"] = previous["sha256"]
    else:
        record["sha256"] = sha256_file(path)
    return record


def settings_hash(*parts: Any) -> str:
    """Hash of the settings that shape an item's output (with Skyshelf's version: formats may change)."""
    text = json.dumps([__version__, *parts], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def same_content(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> bool:
    return [(r["path"], r["sha256"]) for r in old] == [(r["path"], r["sha256"]) for r in new]
