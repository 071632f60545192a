"""How Tiled's SQL catalog on SQLite sees a metadata value, which every query follows: a value is
what ``json_extract`` gives (a missing key is NULL and matches nothing; booleans are 0/1;
objects and arrays are their compact JSON text), values order as SQLite orders storage classes
(numbers, then text by code point), and FTS5's default tokenizer splits the fulltext words.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

#: A key the metadata does not hold (not the same as JSON null, for ``keypresent``).
MISSING = object()


def lookup(metadata: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted key (``sample.element``), or :data:`MISSING`."""
    value: Any = metadata
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def sql(value: Any) -> Any:
    """A metadata value as SQLite's ``json_extract`` gives it: booleans as 0/1, objects and arrays
    as their compact JSON text, JSON null and missing keys as NULL (None)."""
    if value is MISSING or value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return value


def rank(value: Any) -> tuple[int, Any]:
    """SQLite's order across storage classes: numbers, then text (by code point)."""
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))


def compare(op: str, left: Any, right: Any) -> bool:
    """``left op right`` on :func:`sql` values, as SQLite compares them."""
    if left is None or right is None:
        return False  # NULL compares to nothing
    a, b = rank(left), rank(right)
    return {"eq": a == b, "noteq": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]


def like_text(value: Any) -> str | None:
    """What SQL ``LIKE`` sees of a value: text, or a number written out (``1.0`` as SQLite does)."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return f"{value:.1f}"
    return str(value)


#: FTS5's unicode61 tokenizer: letters, numbers and private-use characters make tokens.
_TOKEN = re.compile(r"[^\W_]+|[\ue000-\uf8ff]+")


def tokens(text: str) -> list[str]:
    """The words FTS5's unicode61 tokenizer makes of ``text``: lower-cased and diacritics removed,
    nothing else folded (casefold and compatibility forms made "straße" match "STRASSE", "ﬁlm"
    "film" and "m²" "m2", which Tiled's catalog does not)."""
    folded = unicodedata.normalize("NFD", text.lower())
    if not folded.isascii():  # ASCII has no combining marks: skip the walk (most metadata; ~10x)
        folded = "".join(c for c in folded if not unicodedata.combining(c))
    return _TOKEN.findall(folded)


def json_text(value: Any) -> str:
    """The text SQLite groups and sorts a metadata value by in Tiled's catalog
    (``json_quote(json_extract(...))``): compact JSON in the document's key order, numbers as
    SQLite prints them, booleans as 1/0, a missing key or null as ``null``."""
    if value is None or value is MISSING:
        return "null"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        text = format(value, ".15g")
        return text if any(c in text for c in ".en") else text + ".0"
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def distinct_values(tallies: Iterable[tuple[Any, int]], counts: bool) -> list[dict[str, Any]]:
    """Values with their counts, grouped and ordered as Tiled's SQL catalog does: by their JSON
    text as SQLite prints it (strings, then numbers as text, arrays, ``null`` for a missing key,
    objects); ``count`` is null unless asked for."""
    tally: dict[str, int] = {}
    for value, n in tallies:
        text = json_text(value)
        tally[text] = tally.get(text, 0) + n
    return [{"value": json.loads(text), "count": n if counts else None} for text, n in sorted(tally.items(), key=lambda t: t[0].encode())]


def specs_value(specs: list[str]) -> list[dict[str, Any]]:
    """Specs as Tiled reports them."""
    return [{"name": s, "version": None} for s in specs]
