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

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

#: Zips kept per function (the newest by use): a few code versions back and forth.
KEEP = 3
_CODE = [Path(__file__).with_name(name) for name in ("package.py", "plugins.py", "built.py")]


def fingerprint(ours: Path, deps: str, python: str | None) -> str:
    """What a package is made of: every file staged in ``ours`` (path, executable bit, bytes),
    the third-party part's name, the compiling interpreter and the packaging code."""
    digest = hashlib.sha256(json.dumps([deps, os.path.realpath(python) if python else None]).encode())
    for code in _CODE:
        digest.update(hashlib.sha256(code.read_bytes()).digest())
    for path in sorted(p for p in ours.rglob("*") if p.is_file()):
        digest.update(path.relative_to(ours).as_posix().encode() + b"\0" + bytes([os.access(path, os.X_OK)]))
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:32]


def reuse(cache: Path, function: str, key: str, destination: Path) -> dict[str, Any] | None:
    """Copy the zip built from ``key`` to ``destination``; what was recorded of it, or None if none was kept."""
    zip_path, record = cache / f"{function}-{key}.zip", cache / f"{function}-{key}.json"
    try:
        recorded = json.loads(record.read_text())
        shutil.copyfile(zip_path, destination)
    except (OSError, ValueError):
        return None
    if hashlib.sha256(destination.read_bytes()).hexdigest() != recorded.get("sha256"):
        destination.unlink()  # a kept zip changed on disk since: build it again
        return None
    os.utime(record)  # the newest by use stays
    return recorded


def keep(cache: Path, function: str, key: str, zip_path: Path, recorded: dict[str, Any]) -> None:
    """Keep a new zip by its key (the record written last: a zip without one is never reused),
    and drop the function's zips beyond the newest ``KEEP``."""
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / f".{function}-{key}.zip.partial"
    shutil.copyfile(zip_path, partial)
    partial.replace(cache / f"{function}-{key}.zip")
    (cache / f"{function}-{key}.json").write_text(json.dumps(recorded))
    records = sorted(cache.glob(f"{function}-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in records[KEEP:]:
        old.unlink(missing_ok=True)
        old.with_suffix(".zip").unlink(missing_ok=True)
