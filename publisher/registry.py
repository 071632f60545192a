"""One small registry per plug-in kind (readers, writers, codecs, serializers, queries).

Built-ins register themselves with ``@registry.register(key)``; third-party packages add
theirs through an entry point group (``skyshelf.readers``, ...), loaded once, on first use.
As in xarray's backends and fsspec's registry, a broken plug-in warns (naming the entry point
and the error) and never breaks discovery, and a missing library is answered with what to
install. Entry points are scanned only when a key is not among the built-ins (or the whole
list is asked for), so a handler answering in a built-in format never pays the scan
(importlib.metadata's import and a walk of every installed distribution, ~20-60 ms cold); a
plug-in adds keys and never replaces a built-in one.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import SkyshelfError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

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
    if module != exc.name and _installed(module):  # (a module it names inside an installed package: installing that changes nothing)
        return f"cannot {purpose}: {module} is installed but has no module {exc.name!r} (a misspelt entry point, or another version of {module}?)"
    return f"install {_DISTRIBUTIONS.get(module, module)} to {purpose} (no module named {module!r})"


def _installed(module: str) -> bool:
    """Whether a top-level module can be found (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(modules: Iterable[str], purpose: str) -> None:
    """Import ``modules`` (once per process) or raise :class:`MissingDependency` saying what to install."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise MissingDependency(install_hint(exc, purpose)) from exc


_scanned: tuple[tuple[str, ...], Any] | None = None
_scan_lock = threading.Lock()


def _entry_points(group: str) -> list[EntryPoint]:
    """The group's entry points, from one scan of every installed distribution shared by all the
    registries (each group scanned on its own walked every distribution again: ~4 ms a group, a
    build loads four registries before it forks its workers), scanned again when ``sys.path``
    changed (a distribution that appeared on it)."""
    import sys
    from importlib.metadata import entry_points

    global _scanned
    with _scan_lock:
        if _scanned is None or _scanned[0] != tuple(sys.path):
            _scanned = (tuple(sys.path), entry_points())
        return list(_scanned[1].select(group=group))


class Registry(Generic[T]):
    """Plug-ins of one kind by key: ``Registry(group).register(key)(obj)``, ``.get(key)``.

    ``builtins`` imports the built-in modules on first use (they register themselves): a
    function whose body imports them (``from . import a, b``: the Lambda packager, which follows
    import statements, then ships them) or the modules' names. ``key_of`` keys an entry point's
    object (by default the entry point's name).
    """

    def __init__(self, group: str, kind: str, builtins: Callable[[], object] | Iterable[str] | None = None,
                 key_of: Callable[[EntryPoint, Any], Any] | None = None) -> None:
        self.group, self.kind = group, kind
        self.builtins = builtins
        self._key_of = key_of or (lambda ep, obj: ep.name)
        self._items: dict[Any, T] = {}
        #: Plug-ins' keys: "<distribution> <version>" of the package that registered them.
        self.origins: dict[Any, str] = {}
        #: Entry points that failed to load: name → the reason, install hint included.
        self.failed: dict[str, str] = {}
        self._builtins_loaded = self._plugins_loaded = False
        self._lock = threading.Lock()

    def register(self, key: Any) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self._items[key] = obj
            return obj

        return deco

    def _ensure(self, plugins: bool) -> None:
        """Import the built-ins once, and with ``plugins`` every entry point of the group once;
        threads asking at the same moment wait for a full registry."""
        if self._plugins_loaded or (self._builtins_loaded and not plugins):
            return
        with self._lock:
            if not self._builtins_loaded:
                for module in self._builtins:
                    importlib.import_module(module)
                if callable(self.builtins):
                    self.builtins()
                self._builtins_loaded = True
            if plugins and not self._plugins_loaded:
                for ep in _entry_points(self.group):
                    self._load(ep)
                self._plugins_loaded = True

    @property
    def _builtins(self) -> tuple[str, ...]:
        """The built-in modules given by name (none when a function imports them)."""
        return () if self.builtins is None or callable(self.builtins) else tuple(self.builtins)

    def load_entry_points(self) -> None:
        """Load the built-ins and every plug-in of the group (once)."""
        self._ensure(plugins=True)

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
            if key in self._items:
                reason = f"{self.kind} {key!r} is already registered (built in, or by an earlier plug-in); a plug-in cannot replace it"
            else:
                self._items[key] = obj
                if ep.dist is not None:
                    self.origins[key] = f"{ep.dist.name} {ep.dist.version}"
                return
        self.failed[ep.name] = reason
        warnings.warn(f"{self.kind} plug-in {ep.name!r} = {ep.value!r}{dist} of {self.group!r} failed to load: {reason}", stacklevel=4)

    def items(self, plugins: bool = True) -> dict[Any, T]:
        """Everything registered; only the built-ins with ``plugins=False`` (no scan)."""
        self._ensure(plugins)
        return dict(self._items)

    def __contains__(self, key: Any) -> bool:
        self._ensure(plugins=False)
        if key not in self._items:
            self._ensure(plugins=True)
        return key in self._items

    def get(self, key: Any) -> T:
        if key in self:
            return self._items[key]
        if isinstance(key, str) and key in self.failed:
            raise NotRegistered(f"{self.kind} {key!r} is unavailable: its plug-in failed to load: {self.failed[key]}")
        known = ", ".join(sorted(map(str, self._items)))
        raise NotRegistered(f"unknown {self.kind} {key!r}; known: {known}")


__all__ = ["MissingDependency", "NotRegistered", "Registry", "install_hint", "require"]
