"""The grammar of the data routes' selection parameters: ``slice=``, ``block=`` and
``expected_shape=``. Each parser takes exactly its pattern (the OpenAPI document's, which
imports them from here without the routes' heavy modules); anything else is a 400 naming the
parameter (tests/test_parsers_property.py)."""

from __future__ import annotations

import re
from typing import Any

from publisher.errors import BadRequest

#: One dimension of ``slice=``: an index (``5``, ``-1``) or ``start:stop:step`` with any part left
#: out (``:``, ``::2``, ``1:``, ``:-1:``), ASCII digits only; at most :data:`MAX_DIMS` dimensions
#: and :data:`MAX_TEXT` characters. :data:`SLICE_PATTERN` is exactly what the parser takes, for the
#: OpenAPI document (it leaves out a zero step, which the parser refuses by name);
#: tests/test_parsers_property.py holds the two equal.
_INT = r"-?[0-9]+"
_DIM = rf"(?:{_INT}|(?:{_INT})?:(?:{_INT})?(?::(?:{_INT})?)?)"
_DIM_RE = re.compile(_DIM)
#: Dimensions a ``slice=`` may name (NumPy's own limit), and its longest text (integers of
#: thousands of digits past Python's ``int()`` limit are refused by length, never by a ValueError).
MAX_DIMS = 64
MAX_TEXT = 4000
_DIM_DOC = rf"(?:{_INT}|(?:{_INT})?:(?:{_INT})?(?::(?:-?0*[1-9][0-9]*)?)?)"
SLICE_PATTERN = rf"^(?:{_DIM_DOC}(?:,{_DIM_DOC}){{0,{MAX_DIMS - 1}}})?$"


def parse_slice(text: str | None) -> tuple[Any, ...]:
    """Tiled's ``slice=0:3,::2,5`` (NumPy basic indexing); anything else is a 400 naming the part."""
    if not text:
        return ()
    if len(text) > MAX_TEXT:
        raise BadRequest(f"slice is {len(text)} characters long; at most {MAX_TEXT} are accepted")
    parts = text.split(",", MAX_DIMS)
    if len(parts) > MAX_DIMS:
        raise BadRequest(f"slice names more than {MAX_DIMS} dimensions, got {shown(text)}")
    out: list[Any] = []
    for part in parts:
        if not _DIM_RE.fullmatch(part):
            raise BadRequest(f"slice must look like 0:10,::2,5 (integers, start:stop:step per dimension), "
                             f"got {shown(part)} in {shown(text)}")
        bits = [int(b) if b else None for b in part.split(":")]
        if len(bits) == 3 and bits[2] == 0:
            raise BadRequest(f"slice step cannot be zero, got {shown(part)} in {shown(text)}")
        out.append(slice(*bits) if len(bits) > 1 else bits[0])
    return tuple(out)


def shown(text: str) -> str:
    """A client's text as an error names it: its start, when it is long (a 10,000-digit slice is not echoed whole)."""
    return repr(text if len(text) <= 80 else text[:80] + "...")


#: ``block=``, ``expected_shape=``: non-negative integers, comma-separated, ASCII digits only (Tiled's
#: patterns), at most :data:`MAX_INTS_TEXT` characters (no integer past Python's ``int()`` limit).
MAX_INTS_TEXT = 4000
BLOCK_PATTERN = r"^(?:[0-9]+(?:,[0-9]+)*)?$"
SHAPE_PATTERN = r"^(?:[0-9]+(?:,[0-9]+)*|scalar)$"
_INTS = re.compile(r"[0-9]+(?:,[0-9]+)*")


def ints(text: str | None, name: str) -> tuple[int, ...]:
    """``block=1,0,2`` or ``expected_shape=12,256``: non-negative integers (``int()`` alone would take
    ``+1``, ``1_0``, `` 1`` and other scripts' digits), else a 400 naming ``name``."""
    if text is None or text == "":
        return ()
    if len(text) > MAX_INTS_TEXT:
        raise BadRequest(f"{name} is {len(text)} characters long; at most {MAX_INTS_TEXT} are accepted")
    if not _INTS.fullmatch(text):
        raise BadRequest(f"{name} must be comma-separated integers (non-negative, ASCII digits: e.g. {name}=0,1), got {shown(text)}")
    return tuple(int(p) for p in text.split(","))


def expected_shape(text: str | None) -> tuple[int, ...] | None:
    """``expected_shape=12,256`` or ``scalar`` (``()``); None when not asked; anything else (an empty
    value too, which no shape spells) is a 400."""
    if text is None:
        return None
    if text == "scalar":
        return ()
    if text == "":
        raise BadRequest("expected_shape must be comma-separated non-negative integers or scalar, got ''")
    return ints(text, "expected_shape")
