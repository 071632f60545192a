"""An S3 store whose reads, small writes and signatures go through one fast client (obstore or
boto3, ``SKYSHELF_S3_BACKEND``), while the build's listing, streaming writes and moves stay with
s3fs (imported only when those are used). obstore's import, client and first ranged GET cost a
cold start ~15 ms against boto3's ~220 ms (``benchmarks/s3_backend.py``, docs/deploy.md); each
deployed function names its client in the function table (``publisher/functions.py``)."""

from __future__ import annotations

from typing import Any

from .base import ContentTypes, clean_key
from .fsspec_store import FsspecStore
from .s3_objects import S3Objects

#: What ``SKYSHELF_S3_BACKEND`` may name; anything else (or nothing) reads through s3fs.
BACKENDS = ("obstore", "boto3")


class S3Store(FsspecStore):
    def __init__(self, url: str, backend: str, content_type: ContentTypes | None = None, **storage_options: Any) -> None:
        super().__init__(url, content_type, **storage_options)
        self.backend = backend
        if backend == "obstore":
            from .s3_obstore import ObstoreObjects

            self.client: S3Objects = ObstoreObjects(self.root, storage_options)
        else:
            from .s3_boto3 import Boto3Objects

            self.client = Boto3Objects(self.root)

    def read_bytes(self, key: str) -> bytes:
        return self.client.get(clean_key(key))

    def read_ranges(self, key: str, spans: list[tuple[int, int]]) -> list[bytes]:
        if not spans:
            return []
        key = clean_key(key)
        return [self.client.get(key, *spans[0])] if len(spans) == 1 else self.client.get_many(key, spans)

    def exists(self, key: str) -> bool:
        return self.client.head(clean_key(key)) is not None

    def stat(self, key: str) -> tuple[int, float] | None:
        return self.client.head(clean_key(key))

    def write_bytes(self, key: str, data: bytes, atomic: bool = False) -> None:
        key = clean_key(key)
        self.client.put(key, data, self.content_type(key) if self.content_type else None)

    def presign(self, key: str, seconds: int = 3600, disposition: str | None = None) -> str:
        return self.client.presign(clean_key(key), seconds, disposition)
