"""The browse page's static files: which they are, their media types, and their copy in a release.

The build copies every file of ``static/`` into each release at ``releases/<id>/browse/<name>``
(public: the page holds nothing private), so the page a release is served with is the one it was
built with, and a rollback brings its page back. A release built before the page existed has no
``browse/`` folder: the handlers serve the package's copy then. Standard library only (the
metadata function imports it at cold start).
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from publisher.stores import Store

STATIC = Path(__file__).parent / "static"
#: The folder of a release that holds its copy of the page.
FOLDER = "browse"
INDEX = "index.html"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon", ".json": "application/json",
               ".woff2": "font/woff2", ".txt": "text/plain; charset=utf-8"}
#: An asset's name: one plain file name with a known suffix (no folders, no dot files, no '..').
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9]+)*")


def media_type(name: str) -> str | None:
    """What an asset is served as; None for a name that is no asset's (a folder, ``..``, an unknown suffix)."""
    if not _NAME.fullmatch(name):
        return None
    return MEDIA_TYPES.get(posixpath.splitext(name)[1].lower())


def files(folder: Path = STATIC) -> list[str]:
    """The assets shipped in the package (what a build copies), by name."""
    return sorted(p.name for p in folder.iterdir() if p.is_file() and media_type(p.name) is not None)


def packaged(name: str, folder: Path = STATIC) -> bytes | None:
    """An asset from the package; None when there is no such asset."""
    if media_type(name) is None:
        return None
    path = folder / name
    return path.read_bytes() if path.is_file() else None


def release_prefix(release: str) -> str:
    return f"releases/{release}/{FOLDER}"


def publish(store: Store, release: str, folder: Path = STATIC) -> list[str]:
    """Copy the page into a release; returns the keys written (the build checks they are all
    there before it switches to the release, as it checks the index)."""
    keys = []
    for name in files(folder):
        key = f"{release_prefix(release)}/{name}"
        store.write_bytes(key, (folder / name).read_bytes())
        keys.append(key)
    return keys
