"""Object stores behind one small interface (:class:`Store`): a local folder, S3 through a fast
client (obstore or boto3) with s3fs for the build's bulk work, or any other fsspec URL.

``open_store(url)`` (or ``Store(url)``, the same) picks the implementation from the URL. The
stores know no media types: whoever writes to S3 passes ``content_type=`` (a key → Content-Type
function), so this layer imports nothing above it.
"""

from __future__ import annotations

import os
from typing import Any

from .base import ContentTypes, Store, _Opening, clean_key
from .fsspec_store import FsspecStore
from .local import LocalStore
from .local_io import DIRECT_BYTES
from .s3 import BACKENDS, S3Store

__all__ = ["DIRECT_BYTES", "FsspecStore", "LocalStore", "S3Store", "Store", "clean_key", "open_store"]


def open_store(url: str | os.PathLike[str], *, content_type: ContentTypes | None = None, backend: str | None = None,
               direct_io: bool = True, **storage_options: Any) -> Store:
    """The store at ``url``: a folder (or ``file://``), ``s3://bucket/prefix``, or any fsspec URL
    (``storage_options`` as for fsspec). ``backend`` names S3's reading client ("obstore",
    "boto3"; else s3fs for everything): callers pass ``SKYSHELF_S3_BACKEND`` from their settings.
    ``direct_io=False`` turns a local store's O_DIRECT writes off (``SKYSHELF_DIRECT_IO=0``)."""
    url = os.fspath(url)
    if "://" not in url or url.startswith("file://"):
        return LocalStore(url, content_type, direct_io)
    if url.startswith(("s3://", "s3a://")):
        if backend in BACKENDS:
            return S3Store(url, backend, content_type, **storage_options)
    return FsspecStore(url, content_type, **storage_options)


_Opening.opener = open_store
