"""User patterns (Tiled's ``regex`` query and SQL ``like``) as RE2 programs: matching takes time
linear in the text whatever the pattern, so no request can hold a handler (Python's ``re``
backtracks: ``(.*.*.*)*Z`` over a long text never finishes).

A ``regex`` pattern is read by Python's own parser (the syntax Tiled's users write, for
``re.search``) and written out for RE2 with the same meaning: ``\\d``, ``\\w`` and ``\\s`` as
Python's Unicode classes (listed out, so RE2's Unicode tables do not matter), ``.``, ``^``, ``$``,
``\\A``, ``\\Z`` and inline flags as in ``re``. What RE2 cannot do is refused by name with the
reason (a 400): backreferences, lookaround, conditional and atomic groups, possessive
quantifiers, counts above 1000, and a non-multiline ``$`` with more pattern after it (it may
match before a final newline, which needs lookahead). One difference is kept, documented in
docs/search.md: ``\\b`` and ``\\B`` see only ASCII letters, digits and ``_`` as word characters.

``re2`` is imported at first use: the metadata handler does not load it on a cold start.
"""

from __future__ import annotations

import functools
import re
from array import array
from dataclasses import dataclass
from typing import Any

from .errors import BadRequest

#: RE2's own limit on a counted repetition ``{n}``.
MAX_COUNT = 1000
#: Classes that need Python's engine to list their members (negated, case-insensitive, with
#: ``\\w``-like categories): each costs a pass over every code point, so a pattern gets few.
MAX_LISTED_CLASSES = 4


@dataclass(frozen=True)
class TextTest:
    """A compiled user pattern. ``test`` answers for one text; ``blob``, when not None, finds in
    texts joined by newlines (UTF-8) exactly the texts ``test`` accepts, for texts holding no
    newline, with one ``search(blob, pos)`` per hit."""

    one: Any
    blob: Any | None
    whole: bool  # the text must match entirely (SQL LIKE), not somewhere in it (re.search)
    on_empty: bool | None = None  # the answer for an empty text, when RE2's differs (\B)

    def test(self, text: str | bytes) -> bool:
        data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
        if not data and self.on_empty is not None:
            return self.on_empty
        return (self.one.fullmatch(data) if self.whole else self.one.search(data)) is not None


class _Refused(Exception):
    """What RE2 cannot express, named for the client."""


def _shown(pattern: str) -> str:
    """A pattern as an answer names it: its start, when it is long."""
    return repr(pattern if len(pattern) <= 80 else pattern[:80] + "...")


def _re2(pattern: str, source: str) -> Any:
    import re2

    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise BadRequest(f"regex pattern {_shown(source)} cannot be used: {reason}") from None


@functools.lru_cache(maxsize=256)
def regex(pattern: str, case_sensitive: bool = True) -> TextTest:
    """Tiled's ``Regex(key, pattern, case_sensitive)``: ``re.search`` semantics, run by RE2."""
    from re import _parser  # type: ignore[attr-defined]

    try:
        parsed = _parser.parse(pattern, 0 if case_sensitive else re.IGNORECASE)
    except re.error as exc:
        raise BadRequest(f"bad regex pattern {_shown(pattern)}: {exc}") from None
    except (RecursionError, OverflowError, MemoryError):
        raise BadRequest(f"regex pattern {_shown(pattern)} is too deeply nested or too large") from None
    try:
        writer, blob_writer = _Translator(blob=False), _Translator(blob=True)
        one, blob = writer.pattern(parsed), blob_writer.pattern(parsed)
        # Python's \B (before 3.14) never matches in an empty text; RE2's does
        empty = _Translator(blob=False, empty=True).pattern(parsed) if writer.non_boundary else None
    except _Refused as exc:
        raise BadRequest(f"regex pattern {_shown(pattern)} cannot be used: {exc} (search runs a linear-time engine, RE2)") from None
    except RecursionError:
        raise BadRequest(f"regex pattern {_shown(pattern)} is too deeply nested") from None
    return TextTest(_re2(one, pattern), _re2(blob, pattern) if blob_writer.blob_ok else None, whole=False,
                    on_empty=None if empty is None else _re2(empty, pattern).search(b"") is not None)


@functools.lru_cache(maxsize=256)
def like(pattern: str) -> TextTest:
    """SQL ``LIKE`` as SQLite runs it: ``%`` any run, ``_`` one character, ASCII letters in
    either case, the whole text."""

    def write(wild_any: str, wild_one: str) -> str:
        return "".join(wild_one if ch == "_" else wild_any if ch == "%" else
                       f"[{ch.lower()}{ch.upper()}]" if ch.isascii() and ch.isalpha() else _char(ord(ch)) for ch in pattern)

    blob = None if "\n" in pattern else _re2("(?m)^" + write("[^\\n]*", "[^\\n]") + "$", pattern)
    return TextTest(_re2("(?s)" + write(".*", "."), pattern), blob, whole=True)


def _folds(flags: int) -> bool:
    """Whether RE2's case folding applies (Python's ASCII mode folds ASCII letters only: we list them)."""
    return bool(flags & re.IGNORECASE) and not flags & re.ASCII


def _ascii_cases(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Ranges with the other case of their ASCII letters added."""
    out = list(ranges)
    for lo, hi in ranges:
        for first, last, shift in ((0x61, 0x7A, -32), (0x41, 0x5A, 32)):
            a, b = max(lo, first), min(hi, last)
            if a <= b:
                out.append((a + shift, b + shift))
    return _merge(out)


def _char(code: int) -> str:
    ch = chr(code)
    return ch if ch.isascii() and ch.isalnum() else f"\\x{{{code:x}}}"


def _class(ranges: list[tuple[int, int]], negate: bool = False) -> str:
    body = "".join(_char(lo) if lo == hi else f"{_char(lo)}-{_char(hi)}" for lo, hi in ranges)
    if not body:  # an empty set matches nothing; its complement everything
        return "[\\x00-\\x{10ffff}]" if negate else "[^\\x00-\\x{10ffff}]"
    return f"[{'^' if negate else ''}{body}]"


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _complement(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out, start = [], 0
    for lo, hi in _merge(ranges):
        if lo > start:
            out.append((start, lo - 1))
        start = hi + 1
    if start <= 0x10FFFF:
        out.append((start, 0x10FFFF))
    return _without_surrogates(out)


def _without_surrogates(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    for lo, hi in ranges:
        if lo < 0xD800 <= hi or lo <= 0xDFFF < hi or (0xD800 <= lo and hi <= 0xDFFF):
            out += [(lo, min(hi, 0xD7FF))] if lo < 0xD800 else []
            out += [(max(lo, 0xE000), hi)] if hi > 0xDFFF else []
        else:
            out.append((lo, hi))
    return out


@functools.lru_cache(maxsize=1)
def _every_character() -> str:
    """Every code point but the surrogates (which UTF-8 text cannot hold), in order."""
    codes = array("I", range(0xD800))
    codes.extend(range(0xE000, 0x110000))
    return codes.tobytes().decode("utf-32-le" if array("I", [1]).tobytes()[0] == 1 else "utf-32-be")


@functools.lru_cache(maxsize=64)
def _members(python_class: str, flags: int) -> tuple[tuple[int, int], ...]:
    """The code points a one-character Python pattern matches, as ranges (a single class cannot
    backtrack: one linear pass)."""
    every = _every_character()
    ranges = []
    for m in re.finditer(f"(?:{python_class})+", every, flags):
        lo, hi = ord(m.group()[0]), ord(m.group()[-1])
        ranges.append((lo, hi))
    return tuple(_without_surrogates(_merge(ranges)))


_CATEGORY_SOURCE = {"CATEGORY_DIGIT": "\\d", "CATEGORY_NOT_DIGIT": "\\D", "CATEGORY_WORD": "\\w", "CATEGORY_NOT_WORD": "\\W",
                    "CATEGORY_SPACE": "\\s", "CATEGORY_NOT_SPACE": "\\S"}


class _Translator:
    """Python's parse tree written as an RE2 pattern. ``blob``: for texts joined by newlines, where
    ``^``/``$`` are line anchors; ``blob_ok`` turns False when that cannot give each text's answer."""

    def __init__(self, blob: bool, empty: bool = False) -> None:
        self.blob, self.blob_ok, self.listed = blob, True, 0
        self.empty, self.non_boundary = empty, False  # empty: \B never matches (for an empty text)

    def pattern(self, parsed: Any) -> str:
        flags = parsed.state.flags
        body = self.seq(parsed.data, flags, tail=True)
        return ("(?i)" if _folds(flags) else "") + body

    def seq(self, items: Any, flags: int, tail: bool) -> str:
        items = list(items)
        return "".join(self.item(op, av, flags, tail and i == len(items) - 1) for i, (op, av) in enumerate(items))

    def item(self, op: Any, av: Any, flags: int, tail: bool) -> str:
        from re import _constants as c  # type: ignore[attr-defined]

        ascii_fold = flags & re.ASCII and flags & re.IGNORECASE  # Python folds ASCII letters only: so do we
        if op is c.LITERAL:
            self.blob_ok &= av != 10
            return _class(_ascii_cases([(av, av)])) if ascii_fold and chr(av).isascii() and chr(av).isalpha() else _char(av)
        if op is c.NOT_LITERAL:
            self.blob_ok &= av == 10
            return _class(_ascii_cases([(av, av)]) if ascii_fold else [(av, av)], negate=True)
        if op is c.ANY:
            if flags & re.DOTALL:
                self.blob_ok = False
                return "(?s:.)"
            return "[^\\n]"
        if op is c.IN:
            return self.charset(av, flags)
        if op is c.AT:
            return self.anchor(av, flags, tail)
        if op is c.BRANCH:
            return "(?:" + "|".join(self.seq(branch, flags, tail) for branch in av[1]) + ")"
        if op is c.SUBPATTERN:
            _, add, remove, sub = av
            inner = (flags | add) & ~remove
            body = self.seq(sub, inner, tail)
            if _folds(inner) != _folds(flags):
                return f"(?{'' if _folds(inner) else '-'}i:{body})"
            return f"(?:{body})"
        if op in (c.MAX_REPEAT, c.MIN_REPEAT):
            lo, hi, sub = av
            unbounded = hi == c.MAXREPEAT
            if lo > MAX_COUNT or (not unbounded and hi > MAX_COUNT):
                raise _Refused(f"counted repetitions above {MAX_COUNT}")
            body = self.seq(sub, flags, tail and not unbounded and hi <= 1)
            if unbounded:
                count = "*" if lo == 0 else "+" if lo == 1 else f"{{{lo},}}"
            else:
                count = "?" if (lo, hi) == (0, 1) else f"{{{lo}}}" if lo == hi else f"{{{lo},{hi}}}"
            return f"(?:{body}){count}{'?' if op is c.MIN_REPEAT else ''}"
        names = {c.GROUPREF: "backreferences (\\1, (?P=name))", c.GROUPREF_EXISTS: "conditional groups ((?(1)a|b))",
                 c.ASSERT: "lookahead and lookbehind assertions", c.ASSERT_NOT: "lookahead and lookbehind assertions",
                 c.ATOMIC_GROUP: "atomic groups ((?>...))", c.POSSESSIVE_REPEAT: "possessive quantifiers (*+, ++, ?+)"}
        raise _Refused(f"{names.get(op, str(op).lower())} are not supported")

    def anchor(self, at: Any, flags: int, tail: bool) -> str:
        from re import _constants as c  # type: ignore[attr-defined]

        multiline = bool(flags & re.MULTILINE)
        if at is c.AT_BEGINNING:
            return "(?m:^)" if multiline or self.blob else "\\A"
        if at is c.AT_END:
            if multiline:
                return "(?m:$)"
            if not tail:
                raise _Refused("'$' followed by more pattern (outside (?m), it also matches before a final newline) is not "
                               "supported; use \\Z for the end of the text")
            return "(?m:$)" if self.blob else "(?:\\n?\\z)"
        if at is c.AT_BEGINNING_STRING:
            self.blob_ok = False
            return "\\A"
        if at is c.AT_END_STRING:
            self.blob_ok = False
            return "\\z"
        if at is c.AT_BOUNDARY:
            return "\\b"
        if at is c.AT_NON_BOUNDARY:  # an empty text has none alone, but one between two newlines
            self.blob_ok, self.non_boundary = False, True
            return _class([]) if self.empty else "\\B"
        raise _Refused(f"the anchor {at} is not supported")

    def charset(self, items: list[tuple[Any, Any]], flags: int) -> str:
        """A class: literals and ranges as RE2 reads them (its case folding is Python's); Python's
        categories (``\\d``, ``\\w``, ``\\s`` and their negations) listed out."""
        from re import _constants as c  # type: ignore[attr-defined]

        negate = any(op is c.NEGATE for op, _ in items)
        plain = [(av, av) if op is c.LITERAL else av for op, av in items if op in (c.LITERAL, c.RANGE)]
        if flags & re.ASCII and flags & re.IGNORECASE:
            plain = _ascii_cases(plain)
        categories = [_CATEGORY_SOURCE[av.name] for op, av in items if op is c.CATEGORY]
        ascii_only = re.ASCII if flags & re.ASCII else 0
        listed = _merge([r for source in categories for r in _members(source, ascii_only)])
        has_newline = any(lo <= 10 <= hi for lo, hi in plain + listed)
        self.blob_ok &= has_newline if negate else not has_newline
        ignore = _folds(flags)
        if not categories:
            return _class(plain, negate)
        if not ignore or not plain:  # categories are not case-folded: keep RE2's folding off them
            every = _merge(plain + listed)
            chosen = _class(_complement(every) if negate else every)
            return f"(?-i:{chosen})" if ignore else chosen
        if not negate:
            return f"(?:{_class(plain)}|(?-i:{_class(listed)}))"
        # negated, case-insensitive, literals with categories: Python's engine lists the members
        self.listed += 1
        if self.listed > MAX_LISTED_CLASSES:
            raise _Refused(f"more than {MAX_LISTED_CLASSES} negated case-insensitive classes holding \\d, \\w or \\s")
        source = "".join(f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in plain)
        return f"(?-i:{_class(list(_members('[^' + source + ''.join(categories) + ']', re.IGNORECASE)))})"


__all__ = ["TextTest", "like", "regex"]
