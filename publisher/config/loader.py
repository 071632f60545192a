"""Load pipeline.yml into :class:`Pipeline`, turning every error into one that names file, line and field.

YAML aliases share one node however often they are used, so a few lines ("billion laughs") can
stand for billions of values: expansion is counted while the file is composed and refused past
:data:`MAX_ALIAS_VALUES`, and the file itself past :data:`MAX_PIPELINE_BYTES`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import ConfigError
from .models import Pipeline

Locations = dict[tuple[Any, ...], int]

#: Values that aliases may add, all aliases of a document together.
MAX_ALIAS_VALUES = 10_000
#: Nesting of collections (deeper would exhaust Python's stack in the parser).
MAX_DEPTH = 100
#: pipeline.yml is configuration; big metadata belongs in sidecar files.
MAX_PIPELINE_BYTES = 2**20


class UnboundedYAML(yaml.YAMLError):
    """Aliases that expand past the bound or into themselves, or collections nested too deep."""

    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message, self.mark = message, mark

    def __str__(self) -> str:
        return f"line {self.mark.line + 1}: {self.message}"


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, counting what each alias adds as the document is composed."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}
        self._expanded = 0
        self._depth = 0

    def _size(self, node: yaml.Node, mark: Any, active: set[int]) -> int:
        if id(node) in self._sizes:
            return self._sizes[id(node)]
        if id(node) in active:
            raise UnboundedYAML("an alias refers to a node that contains it (a recursive alias)", mark)
        active.add(id(node))
        size = 1
        if isinstance(node, yaml.SequenceNode):
            size += sum(self._size(item, mark, active) for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            size += sum(self._size(k, mark, active) + self._size(v, mark, active) for k, v in node.value)
        active.discard(id(node))
        if size > MAX_ALIAS_VALUES:
            raise UnboundedYAML(f"aliases expand to more than {MAX_ALIAS_VALUES:,} values (an alias bomb?); refused", mark)
        self._sizes[id(node)] = size
        return size

    def compose_node(self, parent: Any, index: Any) -> Any:
        if not self.check_event(yaml.AliasEvent):
            self._depth += 1
            try:
                if self._depth > MAX_DEPTH:
                    raise UnboundedYAML(f"collections nested deeper than {MAX_DEPTH} levels; refused", self.peek_event().start_mark)
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1
        mark = self.peek_event().start_mark
        node = super().compose_node(parent, index)
        if node.end_mark is None:  # still being composed: the alias is inside its own anchor
            raise UnboundedYAML("an alias refers to a node that contains it (a recursive alias)", mark)
        self._expanded += self._size(node, mark, set())
        if self._expanded > MAX_ALIAS_VALUES:
            raise UnboundedYAML(f"aliases expand to more than {MAX_ALIAS_VALUES:,} values (an alias bomb?); refused", mark)
        return node


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` with aliases bounded (for sidecar files)."""
    return yaml.load(text, Loader=BoundedLoader)  # noqa: S506 - BoundedLoader is a SafeLoader


class DuplicateKey(Exception):
    """A mapping names a key twice: YAML keeps the last, so the first would be dropped unseen."""

    def __init__(self, where: tuple[Any, ...], key: Any, line: int, first: int) -> None:
        super().__init__(key)
        self.where, self.key, self.line, self.first = where, key, line, first


class NotAValue(Exception):
    """A node the pipeline cannot hold: a tag of no safe type (``!!python/name:...``), a merge of
    a scalar, a list or mapping as a key (each a traceback with no line)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line, self.message = line, message


def _key(key_node: yaml.Node) -> Any:
    if not isinstance(key_node, yaml.ScalarNode):
        raise NotAValue(key_node.start_mark.line + 1, "a key must be a plain name, not a list or mapping")
    return key_node.value


def _scalar(node: yaml.Node) -> Any:
    """A scalar as ``safe_load`` gives it (an empty one, ``key:``, is null: serialized and loaded
    again, as this did, it failed as "found '<document end>'")."""
    try:
        return yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        raise NotAValue(node.start_mark.line + 1, f"{exc.problem} (only YAML's plain types are read)") from None


def _no_duplicates(node: yaml.MappingNode, here: tuple[Any, ...]) -> None:
    """The mapping's own keys, each once (keys a ``<<`` merge brings may be overridden: that is what it is for).
    Checked once per node: an alias visits its node again, already flattened with its merge."""
    if getattr(node, "_keys_checked", False):
        return
    node._keys_checked = True  # type: ignore[attr-defined]
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = _key(key_node)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise DuplicateKey(here, key, line, seen[key])
        seen[key] = line


def _construct(node: yaml.Node, here: tuple[Any, ...], lines: Locations) -> Any:
    """Build Python values from a composed YAML tree, recording each value's 1-based line."""
    lines[here] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        _no_duplicates(node, here)
        merges = [key for key, _ in node.value if key.tag == "tag:yaml.org,2002:merge"]
        if merges:  # `<<: *defaults`
            try:
                yaml.constructor.SafeConstructor().flatten_mapping(node)
            except yaml.constructor.ConstructorError as exc:
                raise NotAValue(merges[0].start_mark.line + 1, f"<<: {exc.problem}") from None
        out = {}
        for key_node, value_node in node.value:
            key = _key(key_node)
            out[key] = _construct(value_node, here + (key,), lines)
            lines.setdefault(here + (key,), key_node.start_mark.line + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, here + (i,), lines) for i, item in enumerate(node.value)]
    return _scalar(node)


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
    elif error["type"] == "value_error":  # (a validator's own words, without pydantic's "Value error, ")
        message = message.removeprefix("Value error, ")
    if "input" in error and error["type"] not in ("missing", "extra_forbidden"):
        message += f" (got {json.dumps(error['input'], default=str)[:80]})"
    return message


def load_pipeline(path: str | Path) -> Pipeline:
    """Read and validate a pipeline file; paths in it stay relative to the file's folder."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_PIPELINE_BYTES + 1)
        text = raw.decode()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the pipeline file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc}") from exc
    if len(raw) > MAX_PIPELINE_BYTES:
        raise ConfigError(f"{path}: the pipeline file is larger than {MAX_PIPELINE_BYTES // 2**20} MiB; "
                          "put large metadata in sidecar files next to the sources")
    try:
        root = yaml.compose(text, Loader=BoundedLoader)
    except UnboundedYAML as exc:
        raise ConfigError(f"{path}:{exc.mark.line + 1}: {exc.message}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if root is None:
        raise ConfigError(f"{path}: the file is empty; it needs at least a `sources:` list")
    lines: Locations = {}
    try:
        data = _construct(root, (), lines)
    except DuplicateKey as exc:
        field = ".".join(str(p) for p in (*exc.where, exc.key))
        raise ConfigError(f"{path}:{exc.line}: {field}: duplicate key {exc.key!r} (first at line {exc.first}); YAML would keep "
                          "only the last, dropping the other without a word: keep one") from None
    except NotAValue as exc:
        raise ConfigError(f"{path}:{exc.line}: {exc.message}") from None
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
