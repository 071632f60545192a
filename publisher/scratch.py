"""A build's files that grow with the tree: private temporary folders, each holding one SQLite
database (:mod:`publisher.index.table`, :mod:`publisher.build.items`, :mod:`publisher.build.manifests`,
the completeness check), in ``$TMPDIR``."""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import tempfile

_SCRATCH = re.compile(r"skyshelf-(?:nodes|previous|items|check)-(.+)-(\d+)-[a-z0-9_]+$")
#: This machine, in scratch folders' names: a shared temporary folder holds other machines' (or
#: containers') builds, whose process ids mean nothing here.
HOST = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"
_swept: set[str] = set()


def sweep(folder: str) -> list[str]:
    """Remove the scratch folders under ``folder`` of this machine's builds whose process is gone
    (killed: a build that ends removes its own), once per process; return them."""
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
        if not found or found.group(1) != HOST or _alive(int(found.group(2))):
            continue
        path = os.path.join(folder, name)
        try:
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
    exit). A killed build leaves its folders: the next build on the machine removes them (their
    names carry the machine's name and the process id, :func:`sweep`)."""

    def __init__(self, name: str, folder: str | None = None) -> None:
        sweep(folder or tempfile.gettempdir())
        self._dir = tempfile.TemporaryDirectory(prefix=f"skyshelf-{name}-{HOST}-{os.getpid()}-", dir=folder)
        self.folder = self._dir.name
        self.db = sqlite3.connect(os.path.join(self.folder, f"{name}.sqlite"), check_same_thread=False, isolation_level=None)

    def close(self) -> None:
        self.db.close()
        self._dir.cleanup()
