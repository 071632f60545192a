"""Sidecar metadata files: ``scan.h5.json`` or ``scan.yaml`` beside ``scan.h5``, named by a source's
``sidecars`` templates (``{name}``: the file's name, ``{stem}``: without its suffix), read as a
mapping merged into the item's metadata."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .source_keys import stem_of


def sidecar_names(templates: Iterable[str], name: str) -> list[str]:
    """The sidecar names the templates give for a file called ``name`` (itself excepted)."""
    stem = stem_of(name)
    return [n for n in (t.format(name=name, stem=stem) for t in templates) if n != name]


#: A sidecar is metadata, copied into each of its file's nodes and the index: as pipeline.yml and
#: an HDF5 attribute are (a 50 MB sidecar made a 101 MB index).
MAX_SIDECAR_BYTES = 2**20


def load_sidecar(path: Path) -> dict[str, Any]:
    """A sidecar's mapping (JSON by suffix, else YAML) as JSON holds it (dates as text, NaN and
    infinities as null: one of them failed the whole build); ValueError for anything else."""
    from .config.loader import load_yaml
    from .jsonable import to_json

    if not path.is_file():  # a named pipe there would block the plan forever
        raise ValueError("not a regular file")
    with path.open("rb") as file:
        raw = file.read(MAX_SIDECAR_BYTES + 1)
    if len(raw) > MAX_SIDECAR_BYTES:
        raise ValueError(f"larger than {MAX_SIDECAR_BYTES // 2**20} MiB (metadata; data belongs in a file of its own)")
    text = raw.decode("utf-8-sig")  # (a byte-order mark, as Notepad writes one: the sidecar was ignored)
    data = json.loads(text) if path.suffix == ".json" else load_yaml(text)
    if not isinstance(data, dict):
        raise ValueError(f"sidecar {path} holds a {type(data).__name__}, expected a mapping")
    return to_json(data)  # type: ignore[no-any-return]
