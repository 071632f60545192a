"""Built packages kept by what went into them, so an unchanged function is not zipped again.

A package is its third-party part (made once per pins, runtime and architecture: the ``deps``
folder's name says which) and our part: the handler's modules, the Swagger UI files and the
plug-ins, staged into a small folder first. Their files' bytes, the deps folder's name, the
interpreter that compiles them and this packaging code name the zip; a deploy with nothing
changed then copies three zips (~0.2 s) instead of compressing ~200 MB into them (~25 s a deploy,
as AWS CDK and SAM skip an asset whose source hash they have built). The zips are deterministic,
so a reused one is byte for byte the one a build would make.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Zips kept per function (the newest by use): a few code versions back and forth.
KEEP = 3
_CODE = [Path(__file__).with_name(name) for name in ("package.py", "plugins.py", "built.py")]


def fingerprint(ours: Path, deps: Path, python: str | None) -> str:
    """What a package is made of: every file staged in ``ours`` (path, executable bit, bytes),
    the third-party part (its folder's name, the pins, and each file's path, size and time: a
    folder installed again, or changed, is another), the compiling interpreter and the packaging code."""
    digest = hashlib.sha256(json.dumps([deps.name, os.path.realpath(python) if python else None]).encode())
    for code in _CODE:
        digest.update(hashlib.sha256(code.read_bytes()).digest())
    for path in sorted(p for p in deps.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(deps).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    for path in sorted(p for p in ours.rglob("*") if p.is_file()):
        digest.update(path.relative_to(ours).as_posix().encode() + b"\0" + bytes([os.access(path, os.X_OK)]))
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:32]


def _record(value: Any) -> dict[str, Any] | None:
    """A kept record as written by :func:`keep`, or None (damaged: the zip is built again)."""
    if isinstance(value, dict) and isinstance(value.get("sha256"), str) and all(
            isinstance(value.get(k), int) for k in ("unzipped", "files")):
        return value
    return None


def reuse(cache: Path, function: str, key: str, destination: Path) -> dict[str, Any] | None:
    """Copy the zip built from ``key`` to ``destination``; what was recorded of it, or None if none
    was kept (or it cannot be read, or its bytes changed since)."""
    zip_path, record = cache / f"{function}-{key}.zip", cache / f"{function}-{key}.json"
    try:
        recorded = _record(json.loads(record.read_text()))
        if recorded is None:
            return None
        shutil.copyfile(zip_path, destination)
    except (OSError, ValueError):
        return None
    if hashlib.sha256(destination.read_bytes()).hexdigest() != recorded["sha256"]:
        destination.unlink()  # a kept zip changed on disk since: build it again
        return None
    with contextlib.suppress(OSError):  # (a read-only cache is used as it is)
        os.utime(record)  # the newest by use stays
    return recorded


def keep(cache: Path, function: str, key: str, zip_path: Path, recorded: dict[str, Any]) -> None:
    """Keep a new zip by its key (the record written last: a zip without one is never reused),
    and drop the function's zips beyond the newest ``KEEP``. Best effort: a cache that cannot be
    written (read-only, full) keeps nothing, and the deploy goes on."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
        _replace(cache / f"{function}-{key}.zip", lambda partial: shutil.copyfile(zip_path, partial))
        _replace(cache / f"{function}-{key}.json", lambda partial: Path(partial).write_text(json.dumps(recorded)))
        records = sorted(cache.glob(f"{function}-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in records[KEEP:]:
            old.unlink(missing_ok=True)
            old.with_suffix(".zip").unlink(missing_ok=True)
    except OSError:
        return


def _replace(path: Path, write: Callable[[str], object]) -> None:
    """Write ``path`` through a file of its own beside it, then rename: two deploys keeping the
    same zip at once each write their own, and a reader never sees half of one."""
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
