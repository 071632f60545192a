"""Reader registry, keyed by reader name; detection by magic bytes first, then extension.

Built-in readers live one per module here; third-party readers register through the
``skyshelf.readers`` entry point group (the entry point names a :class:`Reader` subclass, keyed
by its ``name``). A broken plug-in warns and never breaks discovery.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..registry import NotRegistered
from .base import REGISTRY, NoOptions, Reader, register_reader


def _builtins() -> None:
    """The built-in readers register themselves, in this order (detection's tie-break)."""
    from . import hdf5  # noqa: F401
    from . import netcdf  # noqa: F401
    from . import hdf4  # noqa: F401
    from . import tiff  # noqa: F401
    from . import image  # noqa: F401
    from . import npy  # noqa: F401
    from . import npz  # noqa: F401
    from . import csv  # noqa: F401
    from . import parquet  # noqa: F401
    from . import excel  # noqa: F401


REGISTRY.builtins = _builtins


def readers() -> dict[str, type[Reader]]:
    return REGISTRY.items()


def get_reader(name: str) -> type[Reader]:
    try:
        return REGISTRY.get(name)
    except NotRegistered as exc:
        raise ConfigError(str(exc).replace("unknown reader", "unknown reader type", 1)) from None


#: Why a file is skipped when no reader detects it (a build compares it: a reader installed since reads it).
NO_READER = "no reader for this file type (unknown magic bytes and extension)"


def detect(path: Path) -> type[Reader] | None:
    """The reader for a file: magic bytes first, then the extension; None when nothing fits."""
    registered = REGISTRY.items().values()
    with open(path, "rb") as f:
        head = f.read(4096)  # an HDF5 superblock may start at 2048 (readers/hdf5.py)
    by_magic = sorted((r for r in registered if r.magic_matches(head)), key=lambda r: -r.priority)
    for reader in by_magic:
        if reader.claims(path, head):
            return reader
    suffix = path.suffix.lower()
    # A known extension with the wrong magic still goes to its reader, which reports the file as corrupt.
    by_ext = [r for r in registered if suffix in r.extensions]
    return by_ext[0] if by_ext else None


__all__ = ["NO_READER", "REGISTRY", "NoOptions", "Reader", "detect", "get_reader", "readers", "register_reader"]
