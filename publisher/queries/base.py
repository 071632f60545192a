"""The contract of a query type: a dataclass whose fields are Tiled's encoded fields, registered
by name (``@register``). It parses its fields from ``filter[NAME][condition][FIELD]`` values,
checks them once (a client's mistake is a 400 before any entry is read), and answers both on one
index entry (:meth:`Query.on_row`, the reference) and on a container's search columns
(:meth:`Query.on_columns`, numpy; ``tests/test_search_columns.py`` holds the two equal).

Adding a query type is adding one such class: in this package (with ``@register``), or in a
plug-in distribution whose ``skyshelf.queries`` entry point names the class (the registry keys it
by its ``name``; a plug-in adds names, it never replaces one).
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ..errors import BadRequest
from ..registry import Registry
from .regex import shown

if TYPE_CHECKING:  # numpy only when search columns are read
    import numpy as np

    from ..formats import Entry

#: A field's value is JSON (``value``, lists); without it, the text as sent.
JSON = {"kind": "json"}
#: A field's value is a boolean as FastAPI reads one.
FLAG = {"kind": "flag"}

#: Booleans as Tiled's server (FastAPI) reads them.
_FLAGS = {"true": True, "1": True, "yes": True, "on": True, "t": True, "y": True,
          "false": False, "0": False, "no": False, "off": False, "f": False, "n": False}

#: name → query class: the built-ins (imported on first use), then the plug-ins (scanned only
#: for a name the built-ins lack, or for the whole list).
QUERIES: Registry[type[Query]] = Registry("skyshelf.queries", "query", builtins=[f"publisher.queries.{m}" for m in ("compare", "text", "fields")],
                                          key_of=lambda ep, cls: cls.name)


@dataclasses.dataclass  # not frozen: a frozen dataclass costs ~1 ms to make, paid on a handler's cold start
class Query:
    """One query of a request. Subclasses set ``name`` and declare their fields in Tiled's order
    (a field with a default may be left out by the client)."""

    name: ClassVar[str] = ""

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def required(cls) -> tuple[str, ...]:
        missing = (dataclasses.MISSING,)
        return tuple(f.name for f in dataclasses.fields(cls) if f.default in missing and f.default_factory in missing)

    @classmethod
    def decode(cls, field: str, raw: str) -> Any:
        """One field's value from its parameter text: a boolean, JSON, or the text itself."""
        label = f"filter[{cls.name}][condition][{field}]"
        kind = next(f for f in dataclasses.fields(cls) if f.name == field).metadata.get("kind")
        if kind == "flag":
            flag = _FLAGS.get(raw.strip().lower())
            if flag is None:
                raise BadRequest(f"{label} must be true or false, got {shown(raw)}")
            return flag
        if kind != "json":
            return raw
        try:
            return json.loads(raw, parse_constant=_not_json, parse_float=_finite)
        except RecursionError:
            raise BadRequest(f"{label} is JSON nested too deeply") from None
        except ValueError as exc:  # not JSON, NaN, a number out of range, an integer of thousands of digits
            raise BadRequest(f"{label} must be JSON, got {shown(raw)} ({exc})") from None

    def validate(self) -> None:
        """Refuse what no entry could make valid (a bad pattern, a value of the wrong type)."""

    def expect(self, field: str, kind: type | tuple[type, ...], what: str, items: type | None = None) -> Any:
        """A field's value, checked to be of ``kind`` (and, for lists, of ``items``): else a 400."""
        value = getattr(self, field)
        if not isinstance(value, kind) or (items is not None and not all(isinstance(v, items) for v in value)):
            raise BadRequest(f"filter[{self.name}][condition][{field}] must be {what}, got {shown(json.dumps(value))}")
        return value

    def on_row(self, entry: Entry) -> bool:
        """Whether one index entry (its ``metadata``, ``key``, ``family``, ...) matches."""
        raise NotImplementedError

    def on_columns(self, cols: Any) -> np.ndarray:
        """Which rows of a container's search columns (:class:`publisher.index.columns_read.SearchColumns`)
        match, as a boolean mask: the same answer as :meth:`on_row` on each row."""
        raise NotImplementedError


@dataclasses.dataclass
class KeyValue(Query):
    """The fields of most queries on one metadata value: a dotted ``key`` and a JSON ``value``."""

    key: str
    value: Any = dataclasses.field(metadata=JSON)


Q = TypeVar("Q", bound=type[Query])


def register(cls: Q) -> Q:
    """Make a built-in query class answer ``filter[cls.name][...]`` (a dataclass, like :class:`Query`)."""
    if not cls.name or "___" in cls.name:
        raise ValueError(f"query class {cls.__qualname__} needs a name without '___'")
    return QUERIES.register(cls.name)(cls)


def _not_json(name: str) -> Any:
    """``NaN`` and ``Infinity`` are not JSON (metadata never holds them): refuse them as values."""
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    """A JSON number as a float, refusing those past float's range (``1e999``), which would be infinite."""
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is out of range")
    return value
