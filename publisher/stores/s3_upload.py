"""A streamed write to S3 that is checked end to end: what the build streams (Parquet tables,
manifests, the index) is spooled (in memory up to :data:`SPOOL_BYTES`, then on local disk), then
sent as one verified PUT (:meth:`FsspecStore.write_bytes`: the ETag must be the bytes' MD5) or,
when large, in parts of :data:`PART_BYTES` whose combined ETag is checked the same way, and sent
again when it differs. s3fs streams straight to S3 and checks nothing (moto keeps a PUT's
claimed CRC unchecked: a flipped byte was published, found with tests/faultproxy.py)."""

from __future__ import annotations

import hashlib
import tempfile
from typing import Any, Protocol, Self

from .faults import ChecksumMismatch, damaged, md5_etag, retrying

SPOOL_BYTES = 16 * 2**20
#: Objects past this go up in parts of this size (S3's single PUT takes up to 5 GB; parts keep retries small).
PART_BYTES = 64 * 2**20


class _Target(Protocol):
    """What the upload needs of :class:`~publisher.stores.fsspec_store.FsspecStore` (which imports this module)."""

    fs: Any

    def path(self, key: str) -> str: ...

    def put_kwargs(self, key: str) -> dict[str, Any]: ...

    def write_bytes(self, key: str, data: bytes, atomic: bool = False) -> None: ...


class VerifiedUpload:
    """A write-only file; :meth:`close` uploads and verifies, leaving the with-block by an error uploads nothing."""

    def __init__(self, store: _Target, key: str) -> None:
        self.store, self.key = store, key
        self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (closed in close())
        self.closed = False

    def write(self, data: Any) -> int:
        return self._spool.write(data)

    def tell(self) -> int:
        return self._spool.tell()

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            size = self._spool.tell()
            self._spool.seek(0)
            if size <= PART_BYTES:
                self.store.write_bytes(self.key, self._spool.read())
            else:
                retrying(lambda: self._parts(size), when=damaged)
        finally:
            self._spool.close()

    def _parts(self, size: int) -> None:
        self._spool.seek(0)
        digests = []
        with self.store.fs.open(self.store.path(self.key), "wb", block_size=PART_BYTES, **self.store.put_kwargs(self.key)) as out:
            while piece := self._spool.read(PART_BYTES):
                digests.append(hashlib.md5(piece, usedforsecurity=False).digest())
                out.write(piece)
        etag = str(self.store.fs.info(self.store.path(self.key)).get("ETag", ""))
        whole, _, count = etag.strip('"').partition("-")
        # the parts' MD5s, as S3 combines them; checked when S3 cut the parts where they were written
        if count == str(len(digests)) and md5_etag(whole) and hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest() != whole:
            raise ChecksumMismatch(f"{self.key!r}: the parts do not match the store's ETag ({etag})")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is not None:  # a failed writer: nothing is uploaded
            self.closed = True
            self._spool.close()
            return
        self.close()
