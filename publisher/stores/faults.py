"""What a store's failure means: the store cannot be reached, has no usable credentials, or kept
failing after its client's retries (throttling, 5xx, dropped connections, bodies cut short).
Those are told apart here, once, by the exception (or what it was raised from), so the build's CLI
prints one line that says what to check and the handlers answer ``503`` with ``Retry-After``
rather than a 500. This layer imports no S3 client: errors are recognised by class name, by S3's
error code and by HTTP status.

The clients retry with backoff themselves (botocore: SlowDown, 5xx, dropped connections; s3fs
also bodies cut short; obstore all of these, resuming a cut body from where it stopped).
:func:`retrying` covers what one of them leaves: boto3 does not retry a body cut short
(measured with ``tests/faultproxy.py``: every truncated GET failed).
"""

from __future__ import annotations

import errno
import hashlib
import random
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import StoreError, StoreUnavailable

T = TypeVar("T")

#: What S3 clients (botocore, aiobotocore, aiohttp, obstore) raise when a store cannot be reached.
_UNREACHABLE = {"EndpointConnectionError", "ConnectTimeoutError", "ProxyConnectionError", "ClientConnectorError"}
#: A connection dropped or a body cut short once connected: the store was reached, then failed.
_DROPPED = {"ReadTimeoutError", "ConnectionClosedError", "ServerDisconnectedError", "ClientOSError", "ClientPayloadError",
            "ResponseStreamingError", "IncompleteReadError", "IncompleteRead", "ProtocolError", "ContentLengthError"}
_NO_CREDENTIALS = {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError", "NoAuthTokenError", "UnauthenticatedError"}
#: S3's codes for "slow down" or "try again": the request was fine, the store was not.
_BUSY_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException", "RequestTimeout",
               "InternalError", "ServiceUnavailable", "500", "502", "503", "504"}
#: Codes of a server error no retry mends.
_PERMANENT_CODES = {"NotImplemented", "501"}


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(seen) < 8 and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


#: obstore's errors that a retry cannot mend, by class name (its GenericError carries a status).
_OBSTORE_PERMANENT = {"PermissionDeniedError", "UnauthenticatedError", "PreconditionError", "AlreadyExistsError", "NotSupportedError",
                      "NotFoundError", "NotImplementedError", "UnknownConfigurationKeyError", "InvalidPathError"}
_OBSTORE_STATUS = re.compile(r"status code: (\d{3})")


def _retry_status(status: int) -> bool:
    """Throttling (429) or a server error other than 501 Not Implemented (which no retry mends)."""
    return status == 429 or (status >= 500 and status != 501)


def _busy(exc: BaseException) -> bool:
    """S3 answered throttling or a server error (botocore's response), or obstore gave up retrying one."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0
        return error.get("Code") not in _PERMANENT_CODES and (error.get("Code") in _BUSY_CODES or _retry_status(int(status)))
    if not type(exc).__module__.startswith("obstore") or type(exc).__name__ in _OBSTORE_PERMANENT:
        return False
    # obstore (Rust's object_store) retries 5xx, throttling and dropped connections, then gives up
    # with the last status, or none when the connection failed (every message names "retries")
    text = str(exc)
    found = _OBSTORE_STATUS.search(text)
    if found:
        return _retry_status(int(found.group(1)))
    return any(sign in text for sign in ("HTTP error", "error sending request", "body error", "connection", "timed out"))


#: A body that stopped short of its announced length, or whose checksum did not hold (botocore
#: checks S3's CRC of a GET and sends one with a PUT, which S3 then refuses as ``BadDigest``).
_DAMAGED = {"ClientPayloadError", "ResponseStreamingError", "IncompleteReadError", "IncompleteRead", "ProtocolError", "ContentLengthError",
            "FlexibleChecksumError", "ChecksumMismatch"}
_DAMAGED_CODES = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "XAmzContentChecksumMismatch"}


class ChecksumMismatch(OSError):
    """The bytes a store received or sent are not those its checksum (an MD5 ETag) says."""


def damaged(exc: BaseException) -> bool:
    """The bytes did not arrive intact: a body cut short, or one whose checksum failed."""
    for e in _chain(exc):
        response = getattr(e, "response", None)
        code = ((response.get("Error") or {}).get("Code") if isinstance(response, dict) else None)
        if type(e).__name__ in _DAMAGED or code in _DAMAGED_CODES or (type(e).__module__.startswith("obstore") and "BadDigest" in str(e)):
            return True
    return False


def checksum_failed(exc: BaseException) -> bool:
    """A body whose checksum failed (not one cut short: s3fs retries those itself)."""
    for e in _chain(exc):
        response = getattr(e, "response", None)
        code = ((response.get("Error") or {}).get("Code") if isinstance(response, dict) else None)
        if type(e).__name__ in ("FlexibleChecksumError", "ChecksumMismatch") or code in _DAMAGED_CODES:
            return True
    return False


#: What S3 answers in ServerSideEncryption (or SSECustomerAlgorithm) when an ETag is not the MD5.
_NOT_MD5_SSE = ("aws:kms", "aws:kms:dsse")


def encrypted_etag(response: dict[str, Any]) -> bool:
    """S3's ETag of an object encrypted with KMS or a customer key is not its MD5."""
    return response.get("ServerSideEncryption") in _NOT_MD5_SSE or bool(response.get("SSECustomerAlgorithm"))


def md5_etag(etag: str | None) -> str | None:
    """The MD5 an S3 ETag is (a single-part upload without KMS encryption), else None."""
    value = (etag or "").strip('"').lower()
    return value if len(value) == 32 and all(c in "0123456789abcdef" for c in value) else None


def check_put(data: bytes, response: dict[str, Any], key: str) -> None:
    """:func:`check_md5` of a PUT's (or a part's) answer, unless its ETag is not an MD5 (KMS, SSE-C)."""
    if not encrypted_etag(response):
        check_md5(data, response.get("ETag"), key)


def check_md5(data: bytes, etag: str | None, key: str) -> None:
    """Raise :class:`ChecksumMismatch` unless ``data`` is what the store's MD5 ETag says (when it
    gives one): the end-to-end check of an object sent or received whole. The store computes the
    ETag from the bytes it received, so this holds even where it ignores the CRC a client sends
    (moto stores a PUT's claimed CRC unchecked; measured with tests/faultproxy.py). MD5 runs at
    ~750 MB/s on this VM's cores."""
    expected = md5_etag(etag)
    if expected is not None and hashlib.md5(data, usedforsecurity=False).hexdigest() != expected:
        raise ChecksumMismatch(f"{key!r}: the bytes do not match the store's MD5 ({expected})")


def passing(exc: BaseException) -> bool:
    """A fault worth trying again later: throttling, a 5xx, a dropped connection or a cut body."""
    return damaged(exc) or any(type(e).__name__ in _DROPPED or _busy(e) for e in _chain(exc))


def refused_name(exc: BaseException) -> bool:
    """The store refused a key for its length or characters (a file system's name limit, a ``:``
    on SMB, S3's 1,024 bytes): a name a file's content made (an HDF5 group's), so that file's
    failure, not the store's."""
    return any((isinstance(e, OSError) and e.errno in (errno.ENAMETOOLONG, errno.EINVAL)) or "KeyTooLongError" in str(e) for e in _chain(exc))


def _unreached(chain: list[BaseException]) -> StoreError | None:
    """A store that cannot be reached or has no usable credentials, as the error that says what to check."""
    for seen in chain:
        name = type(seen).__name__
        if name in _NO_CREDENTIALS:
            return StoreError(f"no credentials for the store: {seen}. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                              "or AWS_PROFILE (or output.storage.profile_env), or run where a role provides them")
        if name in _UNREACHABLE or (isinstance(seen, (ConnectionRefusedError, TimeoutError)) and name not in _DROPPED):
            return StoreUnavailable(f"cannot reach the store: {seen}. Is the endpoint (AWS_ENDPOINT_URL, or output.storage) right, "
                                    "and the network up?")
    return None


def store_fault(exc: BaseException) -> bool:
    """Whether an error of a store operation is the store's: a file system's, a passing fault, or
    a store that cannot be reached or has no credentials (botocore's EndpointConnectionError and
    NoCredentialsError are no OSError: they escaped as the error of the item being written, and
    an S3 outage published a release without those items)."""
    return isinstance(exc, OSError) or passing(exc) or store_trouble(exc) is not None


def store_trouble(exc: BaseException) -> StoreError | None:
    """A store that cannot be reached, has no usable credentials or kept failing, as a
    :class:`StoreError` that says what to check (:class:`StoreUnavailable`, a 503, when trying
    again later may help); None for anything else."""
    chain = _chain(exc)
    unreached = _unreached(chain)
    if unreached is not None:
        return unreached
    for seen in chain:
        if type(seen).__name__ in _DROPPED or _busy(seen) or damaged(seen) or isinstance(seen, ConnectionError):
            return StoreUnavailable(f"the store kept failing after retries ({_first_line(seen)}); try again later")
    return None


def store_error(what: str, key: str, url: str, exc: BaseException) -> StoreError:
    """The error for one failed operation on ``key``: :class:`StoreUnavailable` when it was a
    passing fault the client's retries did not outlast, else :class:`StoreError`."""
    if checksum_failed(exc):  # every try: the store's copy (or what it keeps of a checksum) is at fault, not a passing moment
        return StoreError(f"cannot {what} {key!r} in {url}: the bytes failed their checksum every time they were sent "
                          f"({_first_line(exc)})")
    unreached = _unreached(_chain(exc))
    if unreached is not None:
        return type(unreached)(f"cannot {what} {key!r} in {url}: {unreached}")
    if passing(exc):
        return StoreUnavailable(f"cannot {what} {key!r} in {url}: the store kept failing after retries ({_first_line(exc)}); "
                                "try again later")
    return StoreError(f"cannot {what} {key!r} in {url}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def retrying(call: Callable[[], T], *, when: Callable[[BaseException], bool] = passing, attempts: int = 4, base: float = 0.1,
             cap: float = 2.0, sleep: Callable[[float], None] = time.sleep) -> T:
    """``call()``, tried again after a fault ``when`` accepts, with full-jitter exponential
    backoff (AWS's recommendation), up to ``attempts`` times; the last fault is raised."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:
            if attempt == attempts - 1 or not when(exc):
                raise
            sleep(random.uniform(0, min(cap, base * 2**attempt)))
    raise AssertionError("unreachable")
