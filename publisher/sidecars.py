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


def load_sidecar(path: Path) -> dict[str, Any]:
    """A sidecar's mapping (JSON by suffix, else YAML); ValueError for anything else."""
    from .config.loader import load_yaml

    if not path.is_file():  # a named pipe there would block the plan forever
        raise ValueError("not a regular file")
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else load_yaml(text)
    if not isinstance(data, dict):
        raise ValueError(f"sidecar {path} holds a {type(data).__name__}, expected a mapping")
    return data
