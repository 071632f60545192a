"""The handlers' settings, typed, read from the environment once per process (a Lambda's cold
start), so no request reads ``os.environ``. ``publish serve`` passes its own (built from its
flags) around each call instead of rewriting the environment, so two local servers of two stores
can run in one process. Each field is read from ``SKYSHELF_<FIELD NAME IN CAPITALS>``
(:func:`publisher.settings.read`). The library's knobs are fields here too, passed in by the
handlers (``limits.check(limit=)``, ``spills.write(max_age=, max_bytes=)``, ``open_store(backend=,
direct_io=)``, the decoded cache's budget): no library module reads the environment.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from publisher import limits, spills
from publisher.access.cache import DECODED_BYTES
from publisher.settings import PREFIX, read

__all__ = ["LOCAL", "PREFIX", "Settings", "current", "environment", "reset"]


@dataclass(frozen=True)
class Settings:
    #: The published store: a folder or an ``s3://`` URL (AWS settings come from the environment).
    store: str = "site"
    #: Read the store without credentials (a public bucket).
    store_anon: bool = False
    #: ``scheme://host`` the links in answers start with; unset: from the request's Host.
    base_url: str | None = None
    #: Where spilled answers of a local store are fetched; unset: the server's own ``/files``.
    files_url: str | None = None
    #: Where the store's objects are read without the API (a public bucket's ``https://`` URL, the
    #: deploy sets it): the start of ``data_sources`` addresses. Unset: the store's ``s3://`` URL, or ``files_url``.
    direct_url: str | None = None
    #: Lambda's synchronous response limit is 6 MB after base64; past this many body bytes we redirect.
    max_body_bytes: int = 4 * 2**20
    #: Seconds an S3 store's catalog is kept before it is read again (a local one is checked per request).
    catalog_ttl: float = 2.0
    #: Nodes a ``container/full`` answer may hold (each costs index reads); past it, a 400.
    max_container_nodes: int = 10_000
    #: ``publish serve`` writes an access log line per request.
    access_log: bool = False
    #: Memory one answer may take to build (estimated first, refused past it with advice).
    max_answer_bytes: int = limits.MAX_ANSWER_BYTES
    #: Seconds a spilled answer is redirected to before it is written again.
    spill_max_age: float = spills.MAX_AGE
    #: Bytes a local store's spilled answers may hold together (oldest deleted first).
    spill_max_bytes: int = spills.MAX_BYTES
    #: The process's budget for decoded chunks and partitions (0 turns the cache off).
    decoded_cache_bytes: int = DECODED_BYTES
    #: S3's reading client: ``obstore``, ``boto3``, or empty for s3fs throughout.
    s3_backend: str = ""
    #: Big objects (spilled answers) go to a local store with O_DIRECT.
    direct_io: bool = True
    #: The role ``/auth/credentials`` assumes for a signed-in caller (the deploy sets it); unset: the endpoint is off.
    credentials_role_arn: str | None = None
    #: STS's endpoint for that (unset: boto3's default for the region).
    sts_endpoint_url: str | None = None
    #: Seconds the scoped credentials last (STS takes 900 to the role's maximum, 3600 by default).
    credentials_seconds: int = 900
    #: The DynamoDB table of API key records (the deploy makes it and sets this); unset: the store's private area.
    keys_table: str | None = None
    #: Trace each Lambda request with X-Ray (Powertools' Tracer; the deploy sets it with ``deploy.tracing``).
    tracing: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """The settings the environment gives (empty values count as unset), then ``overrides``;
        a malformed value is a ``SettingError`` naming its variable."""
        return read(cls, environ, **overrides)


_process: Settings | None = None
#: Set by ``publish serve`` around a call: the settings of the server that took the request.
LOCAL: contextvars.ContextVar[Settings | None] = contextvars.ContextVar("skyshelf_settings", default=None)


def environment() -> Settings:
    """This process's settings from its environment, read on first use and kept."""
    global _process
    if _process is None:
        _process = Settings.from_env()
    return _process


def current() -> Settings:
    """The settings of the request being answered: ``publish serve``'s, else the environment's."""
    return LOCAL.get() or environment()


def reset() -> None:
    """Forget the environment's settings so the next request reads them again (tests that change
    the environment call it; a Lambda never needs to)."""
    global _process
    _process = None
