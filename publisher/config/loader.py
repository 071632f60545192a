"""Load pipeline.yml into :class:`Pipeline`, turning every error into one that names file, line and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import ConfigError
from .models import Pipeline

Locations = dict[tuple[Any, ...], int]


def _construct(node: yaml.Node, here: tuple[Any, ...], lines: Locations) -> Any:
    """Build Python values from a composed YAML tree, recording each value's 1-based line."""
    lines[here] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node)) if not isinstance(key_node, yaml.ScalarNode) else key_node.value
            out[key] = _construct(value_node, here + (key,), lines)
            lines.setdefault(here + (key,), key_node.start_mark.line + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, here + (i,), lines) for i, item in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))


def _line_of(loc: tuple[Any, ...], lines: Locations) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _describe(error: dict[str, Any]) -> str:
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown field (check its spelling; `publish schema` lists the fields)"
    elif error["type"] == "missing":
        message = "required field is missing"
    if "input" in error and error["type"] not in ("missing", "extra_forbidden"):
        message += f" (got {json.dumps(error['input'], default=str)[:80]})"
    return message


def load_pipeline(path: str | Path) -> Pipeline:
    """Read and validate a pipeline file; paths in it stay relative to the file's folder."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the pipeline file: {exc.strerror or exc}") from exc
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if root is None:
        raise ConfigError(f"{path}: the file is empty; it needs at least a `sources:` list")
    lines: Locations = {}
    data = _construct(root, (), lines)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:{lines[()]}: expected a mapping with `sources:`, got {type(data).__name__}")
    try:
        pipeline = Pipeline.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and part.startswith("function-")))
            line = _line_of(loc, lines)
            field = ".".join(str(p) for p in loc) or "(top level)"
            problems.append(f"{path}:{line}: {field}: {_describe(error)}")
        raise ConfigError("invalid pipeline\n  " + "\n  ".join(problems)) from None
    pipeline._base_dir = path.resolve().parent  # type: ignore[attr-defined]
    pipeline._path = path  # type: ignore[attr-defined]
    pipeline._lines = lines  # type: ignore[attr-defined]
    return pipeline


def pipeline_schema() -> dict[str, Any]:
    """JSON Schema of pipeline.yml for editors (yaml-language-server)."""
    schema = Pipeline.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Skyshelf pipeline.yml"
    return schema
