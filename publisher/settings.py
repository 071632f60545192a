"""``SKYSHELF_*`` variables read into typed settings, once, at the edge.

The library never reads the environment for its knobs: each function or class takes its value
as a parameter (``limits.check(..., limit=)``, ``open_store(url, backend=, direct_io=)``,
``write_index(..., min_children=)``). The edges read the variables once with :func:`read`: the
handlers (``handlers.settings.Settings``, once per process), ``publish build`` (:class:`BuildSettings`,
once per build) and the CLI. A field ``name`` is read from ``SKYSHELF_<NAME>``; an empty value
is unset; a malformed one is a :class:`SettingError` naming the variable.

Byte sizes take plain integers, as they always have. ``pydantic.ByteSize`` would also take
``64MiB``, but the handler packages do not ship pydantic and importing it with a validator costs
~0.3 s on a cold start (measured here), so it is not used on this path.

Standard library only: the lean handlers import it at cold start.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from .errors import ConfigError

PREFIX = "SKYSHELF_"
T = TypeVar("T")

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


class SettingError(ConfigError):
    """A ``SKYSHELF_*`` variable holds text its setting cannot take (a server fault, not the client's)."""

    http_status = 500


def flag(name: str, raw: str) -> bool:
    """A yes/no variable: ``0``/``false``/``no``/``off`` mean no (any text used to mean yes)."""
    if raw.strip().lower() in _TRUE:
        return True
    if raw.strip().lower() in _FALSE:
        return False
    raise SettingError(f"{name} must be one of 1/true/yes/on or 0/false/no/off, got {raw!r}")


def read(cls: type[T], environ: Mapping[str, str] | None = None, **overrides: Any) -> T:
    """``cls`` (a dataclass whose fields have defaults) from ``environ`` (default: this process's
    environment), then ``overrides``."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        name = PREFIX + f.name.upper()
        raw = environ.get(name, "")
        if raw.strip() == "":
            continue
        kind = type(f.default) if f.default is not None else str
        if kind is bool:
            values[f.name] = flag(name, raw)
            continue
        try:
            values[f.name] = value = kind(raw)
        except ValueError:
            raise SettingError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {raw!r}") from None
        # every number here is a count, bytes or seconds (inf: never, as SKYSHELF_CATALOG_TTL may say):
        # nan made the journal's thread spin (a wait of nan seconds returns at once), a negative one is none of them
        if kind in (int, float) and (math.isnan(value) or value < 0):
            raise SettingError(f"{name} must be a number, 0 or more, got {raw!r}")
    return cls(**{**values, **overrides})


@dataclass(frozen=True)
class BuildSettings:
    """What ``publish build`` (and the CLI's store commands) read from the environment, once."""

    #: Containers with at least this many children get search columns (written into catalog.json,
    #: where the handlers read it back).
    search_min_children: int = 1000
    #: Big objects go to a local store with O_DIRECT (``0``: ordinary writes, e.g. on NFS).
    direct_io: bool = True
    #: S3's reading client: ``obstore``, ``boto3``, or empty for s3fs throughout.
    s3_backend: str = ""
    #: Seconds between writes of the build's journal of finished items (what a killed build's successor reuses).
    journal_seconds: float = 5.0
    #: On a Dask cluster, arrays of at least this many bytes are written by slab tasks spread over
    #: the workers (0: each item's arrays by the worker that converts it).
    spread_bytes: int = 512 * 2**20

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> BuildSettings:
        return read(cls, environ, **overrides)

    def store_options(self) -> dict[str, Any]:
        """The keyword arguments of ``open_store`` these settings give."""
        return {"backend": self.s3_backend, "direct_io": self.direct_io}


__all__ = ["PREFIX", "BuildSettings", "SettingError", "flag", "read"]
