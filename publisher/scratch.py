"""A build's files that grow with the tree: private temporary folders, each holding one SQLite
database (:mod:`publisher.index.table`, :mod:`publisher.build.items`, :mod:`publisher.build.manifests`,
the completeness check), in ``$TMPDIR``."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import tempfile
import time

#: A scratch folder of a process that is gone is removed once nothing in it changed for so long
#: (another machine's build in a shared temporary folder never stays untouched that long).
STALE_SECONDS = 3600.0
_SCRATCH = re.compile(r"skyshelf-(?:nodes|previous|items|check)-(\d+)-")
_swept: set[str] = set()


def sweep(folder: str) -> list[str]:
    """Remove killed builds' scratch folders under ``folder`` (once per process); return them."""
    if folder in _swept:
        return []
    _swept.add(folder)
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    for name in names:
        found = _SCRATCH.match(name)
        if not found or _alive(int(found.group(1))):
            continue
        path = os.path.join(folder, name)
        try:
            newest = max([os.stat(path).st_mtime, *(e.stat().st_mtime for e in os.scandir(path))])
            if time.time() - newest > STALE_SECONDS:
                shutil.rmtree(path)
                removed.append(path)
        except OSError:
            continue  # gone meanwhile, or not ours
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    return True


class Scratch:
    """A private temporary folder holding one SQLite database, removed on :meth:`close` (or at
    exit). A killed build leaves its folders: the next build removes those of processes that are
    gone, once untouched for :data:`STALE_SECONDS` (their names carry the process id)."""

    def __init__(self, name: str, folder: str | None = None) -> None:
        sweep(folder or tempfile.gettempdir())
        self._dir = tempfile.TemporaryDirectory(prefix=f"skyshelf-{name}-{os.getpid()}-", dir=folder)
        self.folder = self._dir.name
        self.db = sqlite3.connect(os.path.join(self.folder, f"{name}.sqlite"), check_same_thread=False, isolation_level=None)

    def close(self) -> None:
        self.db.close()
        self._dir.cleanup()
