"""The serializer record and registry, imported by the serializer modules themselves."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..registry import Registry


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


#: By (family, media type); the package's ``_builtins`` imports the built-in ones.
REGISTRY: Registry[Serializer] = Registry("skyshelf.serializers", "serializer", key_of=lambda ep, s: (s.family, s.media_type))


def register(family: str, media_type: str, aliases: tuple[str, ...] = (), extension: str = "",
             parts: Callable[..., Iterable[bytes]] | None = None) -> Callable[[Callable[..., bytes]], Callable[..., bytes]]:
    def deco(fn: Callable[..., bytes]) -> Callable[..., bytes]:
        REGISTRY.register((family, media_type))(Serializer(family, media_type, fn, aliases, extension, parts))
        return fn

    return deco
