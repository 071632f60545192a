"""The handlers' settings, typed, read from the environment once per process (a Lambda's cold
start), so no request reads ``os.environ``. ``publish serve`` passes its own (built from its
flags) around each call instead of rewriting the environment, so two local servers of two stores
can run in one process. Each field is read from ``SKYSHELF_<FIELD NAME IN CAPITALS>``.

Library knobs read where they are used (``SKYSHELF_MAX_ANSWER_BYTES`` in :mod:`publisher.limits`,
the spill, cache, search and S3 backend ones) are not here yet.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

PREFIX = "SKYSHELF_"


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
    #: Lambda's synchronous response limit is 6 MB after base64; past this many body bytes we redirect.
    max_body_bytes: int = 4 * 2**20
    #: Seconds an S3 store's catalog is kept before it is read again (a local one is checked per request).
    catalog_ttl: float = 2.0
    #: Nodes a ``container/full`` answer may hold (each costs index reads); past it, a 400.
    max_container_nodes: int = 10_000
    #: ``publish serve`` writes an access log line per request.
    access_log: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **overrides: Any) -> Settings:
        """The settings the environment gives (empty values count as unset), then ``overrides``."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = PREFIX + f.name.upper()
            raw = environ.get(name, "")
            if raw == "":
                continue
            kind = type(f.default) if f.default is not None else str
            if kind is bool:
                values[f.name] = _flag(name, raw)
                continue
            try:
                values[f.name] = kind(raw)
            except ValueError:
                raise ValueError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {raw!r}") from None
        return cls(**{**values, **overrides})


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _flag(name: str, raw: str) -> bool:
    """A yes/no variable: ``SKYSHELF_STORE_ANON=0`` means no (any text used to mean yes)."""
    if raw.strip().lower() in _TRUE:
        return True
    if raw.strip().lower() in _FALSE:
        return False
    raise ValueError(f"{name} must be one of 1/true/yes/on or 0/false/no/off, got {raw!r}")


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
