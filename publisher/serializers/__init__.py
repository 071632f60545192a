"""Serializers keyed by (structure family, media type), with short aliases (``format=csv``).

One registry for everything that turns published data into bytes: the handlers answer
requests with it and the about document lists it. Serializer modules import their heavy
libraries (pyarrow, Pillow, tifffile, openpyxl) inside the function, on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import NotAcceptable


@dataclass(frozen=True)
class Serializer:
    family: str
    media_type: str
    encode: Callable[..., bytes]
    aliases: tuple[str, ...] = ()
    extension: str = ""
    #: The same bytes as ``encode``, in order, in pieces made side by side: an answer can be
    #: compressed piece by piece while later pieces are still being made.
    parts: Callable[..., Iterable[bytes]] | None = None


_REGISTRY: dict[str, dict[str, Serializer]] = {}
_ALIASES: dict[str, dict[str, str]] = {}


def register(family: str, media_type: str, aliases: tuple[str, ...] = (), extension: str = "",
             parts: Callable[..., Iterable[bytes]] | None = None) -> Callable[[Callable[..., bytes]], Callable[..., bytes]]:
    def deco(fn: Callable[..., bytes]) -> Callable[..., bytes]:
        _REGISTRY.setdefault(family, {})[media_type] = Serializer(family, media_type, fn, aliases, extension, parts)
        for alias in aliases:
            _ALIASES.setdefault(family, {})[alias] = media_type
        return fn

    return deco


def _load() -> None:
    from . import array, container, table  # noqa: F401  (they register themselves)


def formats() -> dict[str, list[str]]:
    """Media types per family (the about document's ``formats``)."""
    _load()
    return {family: list(table) for family, table in _REGISTRY.items()}


def aliases() -> dict[str, dict[str, list[str]]]:
    """Aliases per family and media type (the about document's ``aliases``)."""
    _load()
    return {family: {mt: list(s.aliases) for mt, s in table.items() if s.aliases} for family, table in _REGISTRY.items()}


def media_type_for(extension: str) -> str | None:
    """The media type whose serializer writes files with this extension (``.xlsx``, ``.npy``, ...)."""
    _load()
    for table in _REGISTRY.values():
        for serializer in table.values():
            if serializer.extension == extension:
                return serializer.media_type
    return None


def _parse_accept(accept: str) -> list[str]:
    """Media types from an Accept header, best first (q-values honoured, order kept on ties)."""
    ranked = []
    for n, part in enumerate(accept.split(",")):
        fields = [f.strip() for f in part.split(";")]
        if not fields[0]:
            continue
        q = 1.0
        for f in fields[1:]:
            if f.startswith("q="):
                try:
                    q = float(f[2:])
                except ValueError:
                    q = 0.0
        if q > 0:
            ranked.append((-q, n, fields[0].lower()))
    return [mt for _, _, mt in sorted(ranked)]


def choose(family: str, format: str | None, accept: str | None, default: str) -> Serializer:
    """The serializer for ``format=`` (a media type or an alias) or else the Accept header."""
    _load()
    table = _REGISTRY.get(family, {})
    if format:
        media_type = _ALIASES.get(family, {}).get(format.lower(), format.lower())
        if media_type not in table:
            raise NotAcceptable(f"format {format!r} is not available for {family}s; choose one of {sorted(table)} or {sorted(_ALIASES.get(family, {}))}")
        return table[media_type]
    wanted = _parse_accept(accept or "*/*")
    for media_type in wanted:
        if media_type in table:
            return table[media_type]
        if media_type in ("*/*", "application/*") or (media_type.endswith("/*") and default.startswith(media_type[:-1])):
            return table[default]
    raise NotAcceptable(f"none of the media types in Accept ({accept}) is available for {family}s; available: {sorted(table)}")


def serialize(serializer: Serializer, data: Any, **options: Any) -> bytes:
    return serializer.encode(data, **options)


def serialize_parts(serializer: Serializer, data: Any, **options: Any) -> Iterable[bytes]:
    """The answer's bytes as an iterable of pieces (one piece when the format has no ``parts``)."""
    if serializer.parts is not None:
        return serializer.parts(data, **options)
    return [serializer.encode(data, **options)]


__all__ = ["Serializer", "aliases", "choose", "formats", "media_type_for", "register", "serialize", "serialize_parts"]
