"""Short-lived signed URLs for a local store, as S3's presigned URLs are for a bucket: what
``publish serve`` hands out for a private object (a spilled private answer, a key of a private
Zarr node), checked by its ``/files/`` route. An HMAC-SHA256 over the key and the expiry with a
secret of the serving process (shared by its workers, :func:`use`): a URL cannot be made for another key or kept past its time.
Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from urllib.parse import parse_qs, quote

EXPIRES, SIGNATURE = "X-Skyshelf-Expires", "X-Skyshelf-Signature"
_SECRET = secrets.token_bytes(32)


def secret() -> bytes:
    """This process's secret, to hand to the workers that serve beside it (:func:`use`)."""
    return _SECRET


def use(shared: bytes) -> None:
    """Sign and check with ``shared``: every worker of one ``publish serve`` the same, as a link
    one of them signed may come back on a connection another one answers (each spawned worker's
    own secret refused three links in four on four workers)."""
    global _SECRET
    _SECRET = shared


def _mac(key: str, expires: int, secret: bytes) -> str:
    return hmac.new(secret, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()


def sign(key: str, seconds: int, secret: bytes | None = None, now: float | None = None) -> str:
    """The query string that lets ``key`` be read for ``seconds``."""
    expires = int((time.time() if now is None else now) + seconds)
    return f"{EXPIRES}={expires}&{SIGNATURE}={_mac(key, expires, secret or _SECRET)}"


def valid(key: str, query: str, secret: bytes | None = None, now: float | None = None) -> bool:
    """Whether ``query`` carries an unexpired signature for exactly ``key``."""
    params = parse_qs(query)
    try:
        expires = int(params[EXPIRES][-1])
        given = params[SIGNATURE][-1]
    except (KeyError, ValueError, IndexError):
        return False
    if expires < (time.time() if now is None else now):
        return False
    return hmac.compare_digest(given, _mac(key, expires, secret or _SECRET))


def signed_path(key: str, seconds: int) -> str:
    return f"{quote(key)}?{sign(key, seconds)}"
