"""A streamed write to S3 that is checked end to end: what the build streams (Parquet tables,
manifests, the index) is spooled (in memory up to :data:`SPOOL_BYTES`, then on local disk), then
sent as one verified PUT (:meth:`FsspecStore.write_bytes`: the ETag must be the bytes' MD5) or,
when large, as a multipart upload of :data:`PART_BYTES` parts, each checked against the ETag S3
answers for it and sent again alone when it differs. s3fs streams straight to S3 and checks nothing (moto keeps a PUT's
claimed CRC unchecked: a flipped byte was published, found with tests/faultproxy.py)."""

from __future__ import annotations

import contextlib
import tempfile
from typing import Any, Protocol, Self

from .faults import check_put, damaged, retrying, store_error

SPOOL_BYTES = 16 * 2**20
#: Objects past this go up in parts of this size (what is read into memory at once; S3's parts are 5 MiB to 5 GiB).
PART_BYTES = 16 * 2**20


class _Target(Protocol):
    """What the upload needs of :class:`~publisher.stores.fsspec_store.FsspecStore` (which imports this module)."""

    fs: Any
    url: str

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
                try:
                    self._parts()
                except Exception as exc:  # (S3 requests only: the store's, an AccessDenied as a 503)
                    raise store_error("write", self.key, self.store.url, exc) from exc
        finally:
            self._spool.close()

    def _parts(self) -> None:
        """A multipart upload whose every part is checked against the MD5 (ETag) S3 answers for it
        and sent again alone when it differs; aborted (nothing left behind) if one keeps failing."""
        fs, path = self.store.fs, self.store.path(self.key)
        bucket, key, _ = fs.split_path(path)
        upload = fs.call_s3("create_multipart_upload", Bucket=bucket, Key=key, **self.store.put_kwargs(self.key))["UploadId"]
        try:
            parts = []
            self._spool.seek(0)
            while piece := self._spool.read(PART_BYTES):
                number = len(parts) + 1

                def send(piece: bytes = piece, number: int = number) -> str:
                    answer = fs.call_s3("upload_part", Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=piece)
                    check_put(piece, answer, f"{self.key} part {number}")
                    return str(answer["ETag"])

                parts.append({"PartNumber": number, "ETag": retrying(send, when=damaged)})
            fs.call_s3("complete_multipart_upload", Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts})
        except BaseException:
            with contextlib.suppress(Exception):
                fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload)
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is not None:  # a failed writer: nothing is uploaded
            self.closed = True
            self._spool.close()
            return
        self.close()
