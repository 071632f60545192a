"""Serializers keyed by (structure family, media type), with short aliases (``format=csv``).

One registry for everything that turns published data into bytes: the handlers answer
requests with it and the about document lists it. Serializer modules import their heavy
libraries (pyarrow, Pillow, tifffile, openpyxl) inside the function, on first use.
Third-party serializers are :class:`Serializer` objects named by ``skyshelf.serializers``
entry points (docs/plugins.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import NotAcceptable
from .base import REGISTRY, Serializer, register


def _builtins() -> None:
    from . import array, awkward, container, png, sparse, table  # noqa: F401  (they register themselves)


REGISTRY.builtins = _builtins


def _tables(plugins: bool = True) -> dict[str, dict[str, Serializer]]:
    """Serializers per family and media type, in registration order (the built-ins alone
    without ``plugins``: no entry-point scan)."""
    out: dict[str, dict[str, Serializer]] = {}
    for (family, media_type), serializer in REGISTRY.items(plugins).items():
        out.setdefault(family, {})[media_type] = serializer
    return out


def formats() -> dict[str, list[str]]:
    """Media types per family (the about document's ``formats``)."""
    return {family: list(table) for family, table in _tables().items()}


def aliases() -> dict[str, dict[str, list[str]]]:
    """Aliases per family and media type (the about document's ``aliases``)."""
    return {family: {mt: list(s.aliases) for mt, s in table.items() if s.aliases} for family, table in _tables().items()}


def media_type_for(extension: str) -> str | None:
    """The media type whose serializer writes files with this extension (``.xlsx``, ``.npy``, ...)."""
    for plugins in (False, True):  # the built-ins first: no entry-point scan when they know it
        for serializer in REGISTRY.items(plugins).values():
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


class _AskPlugins(Exception):
    """The built-ins alone cannot decide: a wanted media type may be a plug-in's."""


def choose(family: str, format: str | None, accept: str | None, default: str) -> Serializer:
    """The serializer for ``format=`` (a media type or an alias) or else the Accept header;
    plug-ins are looked up only when the built-ins do not decide."""
    try:
        return _choose(_tables(plugins=False).get(family, {}), family, format, accept, default, complete=False)
    except _AskPlugins:
        return _choose(_tables().get(family, {}), family, format, accept, default, complete=True)


#: Media types Tiled answers with CSV (its registry's synonyms): asked for where the family has
#: no serializer of its own for them, they get CSV (``export("x.txt")`` was a 406 here).
CSV_SYNONYMS = {"text/plain": "text/csv", "text/x-comma-separated-values": "text/csv", "application/vnd.ms-excel": "text/csv"}

#: What a wildcard of a kind (``image/*``, ``text/*``) that does not cover the default answers with.
_WILDCARD_FIRST = ("image/png", "text/csv")


def _choose(table: dict[str, Serializer], family: str, format: str | None, accept: str | None, default: str,
            complete: bool) -> Serializer:
    if format:
        known = {alias: mt for mt, s in table.items() for alias in s.aliases}
        media_type = known.get(format.lower(), format.lower())
        media_type = media_type if media_type in table else CSV_SYNONYMS.get(media_type, media_type)
        if media_type in table:
            return table[media_type]
        if not complete:
            raise _AskPlugins
        raise NotAcceptable(f"format {format!r} is not available for {family}s; choose one of {sorted(table)} or {sorted(known)}")
    for media_type in _parse_accept(accept or "*/*"):
        media_type = media_type if media_type in table else CSV_SYNONYMS.get(media_type, media_type)
        if media_type in table:
            return table[media_type]
        if media_type == "*/*" or (media_type.endswith("/*") and default.startswith(media_type[:-1])):
            return table[default]
        if media_type.endswith("/*") and (first := next((m for m in sorted(table, key=lambda m: m not in _WILDCARD_FIRST)
                                                         if m.startswith(media_type[:-1])), None)):
            return table[first]  # (image/*: PNG, as Tiled answers; else the first of its kind registered)
        if not complete:  # preferred to anything that follows, and perhaps a plug-in's
            raise _AskPlugins
    raise NotAcceptable(f"none of the media types in Accept ({accept}) is available for {family}s; available: {sorted(table)}")


def serialize(serializer: Serializer, data: Any, **options: Any) -> bytes:
    return serializer.encode(data, **options)


def serialize_parts(serializer: Serializer, data: Any, **options: Any) -> Iterable[bytes]:
    """The answer's bytes as an iterable of pieces (one piece when the format has no ``parts``)."""
    if serializer.parts is not None:
        return serializer.parts(data, **options)
    return [serializer.encode(data, **options)]


__all__ = ["REGISTRY", "Serializer", "aliases", "choose", "formats", "media_type_for", "register", "serialize", "serialize_parts"]
