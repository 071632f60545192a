"""S3 objects through boto3 alone (``SKYSHELF_S3_BACKEND=boto3``): the library Lambda's runtime
already has, at ~220 ms of cold import and client construction."""

from __future__ import annotations

import posixpath
from concurrent.futures import ThreadPoolExecutor

from .faults import check_put, damaged, encrypted_etag, retrying, store_fault
from .s3_objects import failed, missing, split_root

_ABSENT = ("404", "NoSuchKey", "NotFound")


class Boto3Objects:
    def __init__(self, root: str) -> None:
        import boto3
        from botocore.config import Config

        self.root = root
        self.bucket, self.prefix = split_root(root)
        self.client = boto3.client("s3", config=Config(max_pool_connections=32, retries={"mode": "standard"}))

    def _key(self, key: str) -> str:
        return posixpath.join(self.prefix, key) if self.prefix else key

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        if start is not None and end is not None and end <= start:
            return b""
        extra = {} if start is None else {"Range": f"bytes={start}-{'' if end is None else end - 1}"}
        def fetch() -> bytes:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=self._key(key), **extra)["Body"].read())

        try:  # botocore retries a request, not a body cut short or failing its CRC: those are retried here
            return retrying(fetch, when=damaged)
        except self.client.exceptions.NoSuchKey:
            raise missing(key, self.root) from None
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""
            raise failed("read", key, self.root, exc) from exc
        except Exception as exc:  # (botocore's own: a body cut short, the endpoint unreachable, no credentials)
            if store_fault(exc):
                raise failed("read", key, self.root, exc) from exc
            raise

    def get_many(self, key: str, spans: list[tuple[int, int]]) -> list[bytes]:
        with ThreadPoolExecutor(min(len(spans), 16)) as pool:
            return list(pool.map(lambda span: self.get(key, *span), spans))

    def put(self, key: str, data: bytes, content_type: str | None) -> None:
        extra = {"ContentType": content_type} if content_type else {}
        try:  # sent again when S3 refuses bytes not matching the CRC32 botocore sends (BadDigest), or its ETag is another MD5
            retrying(lambda: check_put(data, self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **extra), key),
                     when=damaged)
        except Exception as exc:  # S3's answer, a checksum, or botocore's own (the endpoint unreachable, no credentials)
            if isinstance(exc, self.client.exceptions.ClientError) or store_fault(exc):
                raise failed("write", key, self.root, exc) from exc
            raise

    def head(self, key: str) -> tuple[int, float] | None:
        try:
            found = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _ABSENT:
                return None
            raise failed("check", key, self.root, exc) from exc
        except Exception as exc:  # botocore's own
            if store_fault(exc):
                raise failed("check", key, self.root, exc) from exc
            raise
        return int(found["ContentLength"]), found["LastModified"].timestamp()

    def encrypted(self, key: str) -> bool:
        """The object is encrypted with KMS or a customer key (its ETag is not its MD5)."""
        try:
            return encrypted_etag(self.client.head_object(Bucket=self.bucket, Key=self._key(key)))
        except self.client.exceptions.ClientError:
            return False

    def presign(self, key: str, seconds: int, disposition: str | None) -> str:
        params = {"Bucket": self.bucket, "Key": self._key(key)}
        if disposition:
            params["ResponseContentDisposition"] = disposition
        return str(self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=seconds))
