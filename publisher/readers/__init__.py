"""Reader registry, keyed by reader name; detection by magic bytes first, then extension.

Built-in readers live one per module here; third-party readers register through the
``skyshelf.readers`` entry point group. A broken plug-in warns and never breaks discovery.
"""

from __future__ import annotations

import importlib
import threading
import warnings
from importlib.metadata import entry_points
from pathlib import Path

from ..errors import ConfigError
from .base import NoOptions, Reader

_REGISTRY: dict[str, type[Reader]] = {}
_BUILTIN = ("hdf5", "netcdf", "hdf4", "tiff", "image", "npy", "csv", "parquet", "excel")
_loaded = False
_lock = threading.Lock()


def register_reader(cls: type[Reader]) -> type[Reader]:
    _REGISTRY[cls.name] = cls
    return cls


def _load() -> None:
    """Import the built-in readers and plug-ins once; threads detecting at once wait for a full registry."""
    global _loaded
    if _loaded:
        return
    with _lock:
        if _loaded:
            return
        for module in _BUILTIN:
            importlib.import_module(f"{__name__}.{module}")
        for ep in entry_points(group="skyshelf.readers"):
            try:
                register_reader(ep.load())
            except Exception as exc:  # a broken plug-in must not break the others
                warnings.warn(f"reader plug-in {ep.name!r} failed to load: {exc}", stacklevel=2)
        _loaded = True


def readers() -> dict[str, type[Reader]]:
    _load()
    return dict(_REGISTRY)


def get_reader(name: str) -> type[Reader]:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown reader type {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def detect(path: Path) -> type[Reader] | None:
    """The reader for a file: magic bytes first, then the extension; None when nothing fits."""
    _load()
    with open(path, "rb") as f:
        head = f.read(2048)
    by_magic = sorted((r for r in _REGISTRY.values() if r.magic_matches(head)), key=lambda r: -r.priority)
    for reader in by_magic:
        if reader.claims(path, head):
            return reader
    suffix = path.suffix.lower()
    # A known extension with the wrong magic still goes to its reader, which reports the file as corrupt.
    by_ext = [r for r in _REGISTRY.values() if suffix in r.extensions]
    return by_ext[0] if by_ext else None


__all__ = ["NoOptions", "Reader", "detect", "get_reader", "readers", "register_reader"]
