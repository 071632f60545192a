"""Plug-in distributions in the Lambda packages.

Every distribution installed here that provides ``skyshelf.*`` entry points (serializers,
codecs and queries are looked up by the handlers), plus any named explicitly, is copied into
each function's package as installed, its ``dist-info`` included, so that the function
discovers the same plug-ins through ``importlib.metadata`` as this machine does. Plug-ins are
expected to be pure Python (their own dependencies belong in the function's requirements);
a compiled one is copied and noted, since it was built for this machine.
"""

from __future__ import annotations

import importlib.metadata
import shutil
from collections.abc import Iterable
from pathlib import Path

from ..errors import ConfigError

_OURS = {"skyshelf"}


def _key(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def plugin_distributions(names: Iterable[str] = ()) -> list[importlib.metadata.Distribution]:
    """The installed distributions with ``skyshelf.*`` entry points, and those named, sorted by name."""
    found: dict[str, importlib.metadata.Distribution] = {}
    for dist in importlib.metadata.distributions():
        if any(ep.group.startswith("skyshelf.") for ep in dist.entry_points):
            found.setdefault(_key(dist.metadata["Name"]), dist)
    for name in names:
        try:
            found.setdefault(_key(name), importlib.metadata.distribution(name))
        except importlib.metadata.PackageNotFoundError:
            raise ConfigError(f"plug-in distribution {name!r} is not installed here; install it before packaging") from None
    return [found[k] for k in sorted(found) if k not in _OURS]


def copy_plugins(stage: Path, names: Iterable[str] = ()) -> list[str]:
    """Copy the plug-in distributions' files into ``stage``; notes for the package report."""
    notes = []
    for dist in plugin_distributions(names):
        name, copied, compiled, editable = dist.metadata["Name"], 0, False, False
        for file in dist.files or []:
            if ".." in file.parts or "__pycache__" in file.parts or file.suffix == ".pyc":
                continue  # scripts outside site-packages; bytecode is compiled for the runtime later
            source = Path(str(dist.locate_file(file)))
            if not source.is_file():
                continue
            editable |= file.suffix == ".pth" or file.name.startswith("__editable__")
            compiled |= file.suffix in (".so", ".pyd")
            (stage / file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, stage / file)
            copied += 1
        notes.append(f"plug-in {name} {dist.version}: {copied} files")
        if editable:
            notes.append(f"plug-in {name} is installed in editable mode: its code is not in the package; install it normally")
        if compiled:
            notes.append(f"plug-in {name} has compiled modules built for this machine, not necessarily for Lambda")
    return notes
