"""One small registry per plug-in kind (readers, writers, codecs, serializers, queries).

Built-ins register themselves with ``@registry.register(key)``; third-party packages add
theirs through an entry point group (``skyshelf.readers``, ...), loaded once, on first use.
As in xarray's backends and fsspec's registry, a broken plug-in warns (naming the entry point
and the error) and never breaks discovery, and a missing library is answered with what to
install. Nothing heavy is imported here: handlers use the serializer and codec registries.
"""

from __future__ import annotations

import importlib
import threading
import warnings
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

from .errors import SkyshelfError

T = TypeVar("T")

#: Import names whose distribution is named otherwise (what ``pip install`` wants).
_DISTRIBUTIONS = {"PIL": "pillow", "yaml": "pyyaml", "skimage": "scikit-image", "cv2": "opencv-python",
                  "sklearn": "scikit-learn", "netCDF4": "netCDF4", "pyhdf": "pyhdf"}


class MissingDependency(SkyshelfError, ImportError):
    """A library a plug-in needs is not installed; the message says what to install."""


class NotRegistered(SkyshelfError, LookupError):
    """No plug-in of this kind under this key (or its plug-in failed to load)."""


def install_hint(exc: ImportError, purpose: str) -> str:
    """``install X to <purpose>`` for a missing module, naming the distribution pip knows."""
    module = (exc.name or "").split(".")[0]
    if not module:
        return f"{purpose}: {exc}"
    return f"install {_DISTRIBUTIONS.get(module, module)} to {purpose} (no module named {module!r})"


def require(modules: Iterable[str], purpose: str) -> None:
    """Import ``modules`` (once per process) or raise :class:`MissingDependency` saying what to install."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise MissingDependency(install_hint(exc, purpose)) from exc


class Registry(Generic[T]):
    """Plug-ins of one kind by key: ``Registry(group).register(key)(obj)``, ``.get(key)``.

    ``builtins`` are modules imported on first use (they register themselves); ``key_of``
    keys an entry point's object (by default the entry point's name).
    """

    def __init__(self, group: str, kind: str, builtins: Iterable[str] = (),
                 key_of: Callable[[EntryPoint, Any], Any] | None = None) -> None:
        self.group, self.kind = group, kind
        self._builtins = tuple(builtins)
        self._key_of = key_of or (lambda ep, obj: ep.name)
        self._items: dict[Any, T] = {}
        #: Entry points that failed to load: name → the reason, install hint included.
        self.failed: dict[str, str] = {}
        self._loaded = False
        self._lock = threading.Lock()

    def register(self, key: Any) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self._items[key] = obj
            return obj

        return deco

    def load_entry_points(self) -> None:
        """Import the built-ins, then every plug-in of the group, once; threads wait for a full registry."""
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            for module in self._builtins:
                importlib.import_module(module)
            for ep in entry_points(group=self.group):
                self._load(ep)
            self._loaded = True

    def _load(self, ep: EntryPoint) -> None:
        dist = f" (from {ep.dist.name})" if ep.dist is not None else ""
        try:
            obj = ep.load()
            key = self._key_of(ep, obj)
        except ImportError as exc:
            reason = install_hint(exc, f"use the {self.kind} plug-in {ep.name!r}{dist}")
        except Exception as exc:  # a broken plug-in must not break the others
            reason = f"{type(exc).__name__}: {exc}"
        else:
            if key is not None:
                self._items[key] = obj
            return
        self.failed[ep.name] = reason
        warnings.warn(f"{self.kind} plug-in {ep.name!r} = {ep.value!r}{dist} of {self.group!r} failed to load: {reason}", stacklevel=4)

    def items(self) -> dict[Any, T]:
        self.load_entry_points()
        return dict(self._items)

    def __contains__(self, key: Any) -> bool:
        self.load_entry_points()
        return key in self._items

    def get(self, key: Any) -> T:
        self.load_entry_points()
        try:
            return self._items[key]
        except KeyError:
            pass
        if isinstance(key, str) and key in self.failed:
            raise NotRegistered(f"{self.kind} {key!r} is unavailable: its plug-in failed to load: {self.failed[key]}")
        known = ", ".join(sorted(map(str, self._items)))
        raise NotRegistered(f"unknown {self.kind} {key!r}; known: {known}")


__all__ = ["MissingDependency", "NotRegistered", "Registry", "install_hint", "require"]
