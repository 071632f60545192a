"""User patterns (Tiled's ``regex`` query and SQL ``like``) as RE2 programs: matching takes time
linear in the text whatever the pattern, so no request can hold a handler (Python's ``re``
backtracks: ``(.*.*.*)*Z`` over a long text never finishes).

A ``regex`` pattern is read by Python's own parser (the syntax Tiled's users write, for
``re.search``) and written out for RE2 with the same meaning: every character atom becomes an
explicit class of the code points Python matches (``\\d``, ``\\w``, ``\\s`` as Python's Unicode
classes; case-insensitive atoms with the cased characters Python's own engine matches, so its
folding holds exactly: ``İ`` matches ``(?i)i``), and ``.``, ``^``, ``$``, ``\\A``, ``\\Z`` and inline
flags behave as in ``re``. What RE2 cannot do is refused by name with the
reason (a 400): backreferences, lookaround, conditional and atomic groups, possessive
quantifiers, counts above 1000, ``\\B`` (RE2's also matches inside a multi-byte character),
and a non-multiline ``$`` with more pattern after it (it may match before a final newline, which
needs lookahead). One difference is kept, documented in docs/serve.md: ``\\b`` sees only ASCII
letters, digits and ``_`` as word characters.

``re2`` is imported at first use: the metadata handler does not load it on a cold start.
"""

from __future__ import annotations

import functools
import re
from array import array
from dataclasses import dataclass
from typing import Any

from ..errors import BadRequest

#: RE2's own limit on a counted repetition ``{n}``.
MAX_COUNT = 1000
#: The longest RE2 program text a pattern may become: Python's Unicode classes are listed out
#: (``\\w`` is ~11,000 characters, ~1 ms to compile), so this bounds a request's compile time.
MAX_PROGRAM_CHARS = 1_000_000


@dataclass(frozen=True)
class TextTest:
    """A compiled user pattern. ``test`` answers for one text; ``blob``, when not None, finds in
    texts joined by newlines (UTF-8) exactly the texts ``test`` accepts, for texts holding no
    newline, with one ``search(blob, pos)`` per hit."""

    one: Any
    blob: Any | None
    whole: bool  # the text must match entirely (SQL LIKE), not somewhere in it (re.search)

    def test(self, text: str | bytes) -> bool:
        data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
        return (self.one.fullmatch(data) if self.whole else self.one.search(data)) is not None


class _Refused(Exception):
    """What RE2 cannot express, named for the client."""


def shown(pattern: str) -> str:
    """A client's text as an answer names it: its start, when it is long."""
    return repr(pattern if len(pattern) <= 80 else pattern[:80] + "...")


def _re2(pattern: str, source: str, what: str = "regex pattern") -> Any:
    import re2

    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise BadRequest(f"{what} {shown(source)} cannot be used: {reason}") from None


@functools.lru_cache(maxsize=256)
def regex(pattern: str, case_sensitive: bool = True) -> TextTest:
    """Tiled's ``Regex(key, pattern, case_sensitive)``: ``re.search`` semantics, run by RE2."""
    from re import _parser  # type: ignore[attr-defined]

    try:
        parsed = _parser.parse(pattern, 0 if case_sensitive else re.IGNORECASE)
    except re.error as exc:
        raise BadRequest(f"bad regex pattern {shown(pattern)}: {exc}") from None
    except (RecursionError, OverflowError, MemoryError):
        raise BadRequest(f"regex pattern {shown(pattern)} is too deeply nested or too large") from None
    try:
        writer, blob_writer = _Translator(blob=False), _Translator(blob=True)
        one, blob = writer.pattern(parsed), blob_writer.pattern(parsed)
    except _Refused as exc:
        raise BadRequest(f"regex pattern {shown(pattern)} cannot be used: {exc} (search runs a linear-time engine, RE2)") from None
    except RecursionError:
        raise BadRequest(f"regex pattern {shown(pattern)} is too deeply nested") from None
    return TextTest(_re2(one, pattern), _re2(blob, pattern) if blob_writer.blob_ok else None, whole=False)


@functools.lru_cache(maxsize=256)
def like(pattern: str) -> TextTest:
    """SQL ``LIKE`` as SQLite runs it: ``%`` any run, ``_`` one character, ASCII letters in
    either case, the whole text."""

    def write(wild_any: str, wild_one: str) -> str:
        return "".join(wild_one if ch == "_" else wild_any if ch == "%" else
                       f"[{ch.lower()}{ch.upper()}]" if ch.isascii() and ch.isalpha() else _char(ord(ch)) for ch in pattern)

    blob = None if "\n" in pattern else _re2("(?m)^" + write("[^\\n]*", "[^\\n]") + "$", pattern, "like pattern")
    return TextTest(_re2("(?s)" + write(".*", "."), pattern, "like pattern"), blob, whole=True)


def _char(code: int) -> str:
    ch = chr(code)
    return ch if ch.isascii() and ch.isalnum() else f"\\x{{{code:x}}}"


def _class(ranges: list[tuple[int, int]], negate: bool = False) -> str:
    if len(ranges) == 1 and ranges[0][0] == ranges[0][1] and not negate:
        return _char(ranges[0][0])
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


@functools.lru_cache(maxsize=1)
def _cased() -> tuple[str, tuple[tuple[int, int], ...]]:
    """The characters that have a case (Python's ``_sre.unicode_iscased``): the only ones case-
    insensitive matching can treat differently from exact matching. As a string and as ranges."""
    import _sre

    every = _every_character()
    cased = "".join(ch for ch in every if _sre.unicode_iscased(ord(ch)))
    return cased, tuple(_merge([(ord(ch), ord(ch)) for ch in cased]))


@functools.lru_cache(maxsize=4096)
def _atom(source: str, exact: tuple[tuple[int, int], ...], flags: int) -> str:
    """One character atom as an RE2 class: ``exact`` (its members, case-sensitive) when ``flags``
    has no IGNORECASE; else those of its members that have no case, and the cased characters
    Python's own engine matches with ``source`` under ``flags`` (its folding exactly: ``lower``,
    its extra equivalences, ASCII-only under ``(?a)``)."""
    if not flags & re.IGNORECASE:
        return _class(list(exact))
    cased, cased_ranges = _cased()
    found = [(ord(ch), ord(ch)) for ch in re.findall(source, cased, flags)]
    return _class(_merge(_subtract(list(exact), list(cased_ranges)) + found))


def _subtract(ranges: list[tuple[int, int]], minus: list[tuple[int, int]]) -> list[tuple[int, int]]:
    keep = _complement(minus)
    out, j = [], 0
    for lo, hi in _merge(ranges):  # intersection with the complement, both sorted
        while j < len(keep) and keep[j][1] < lo:
            j += 1
        k = j
        while k < len(keep) and keep[k][0] <= hi:
            out.append((max(lo, keep[k][0]), min(hi, keep[k][1])))
            k += 1
    return out


@functools.lru_cache(maxsize=64)
def _category_ranges(categories: tuple[str, ...], flags: int) -> tuple[tuple[int, int], ...]:
    return tuple(_merge([r for source in categories for r in _members(source, flags)]))


_CATEGORY_SOURCE = {"CATEGORY_DIGIT": "\\d", "CATEGORY_NOT_DIGIT": "\\D", "CATEGORY_WORD": "\\w", "CATEGORY_NOT_WORD": "\\W",
                    "CATEGORY_SPACE": "\\s", "CATEGORY_NOT_SPACE": "\\S"}


def _code(code: int) -> str:
    return f"\\U{code:08x}"


class _Translator:
    """Python's parse tree written as an RE2 pattern, every character atom an explicit class
    (RE2's own case folding and classes are never used). ``blob``: for texts joined by newlines,
    where ``^``/``$`` are line anchors; ``blob_ok`` turns False when that cannot give each text's
    answer."""

    def __init__(self, blob: bool) -> None:
        self.blob, self.blob_ok, self.size = blob, True, 0

    def pattern(self, parsed: Any) -> str:
        return self.seq(parsed.data, parsed.state.flags, tail=True)

    def seq(self, items: Any, flags: int, tail: bool) -> str:
        items = list(items)
        return "".join(self.item(op, av, flags, tail and i == len(items) - 1) for i, (op, av) in enumerate(items))

    def item(self, op: Any, av: Any, flags: int, tail: bool) -> str:
        from re import _constants as c  # type: ignore[attr-defined]

        if op in (c.LITERAL, c.NOT_LITERAL, c.IN):
            source, exact = self.atom(op, av, flags)
            self.blob_ok &= not any(lo <= 10 <= hi for lo, hi in exact)  # newlines have no case
            written = _atom(source, exact, flags & (re.IGNORECASE | re.ASCII))
            self.size += len(written)
            if self.size > MAX_PROGRAM_CHARS:
                raise _Refused(f"too many Unicode classes (\\d, \\w, \\s: each is thousands of ranges for RE2); "
                               f"the pattern would be over {MAX_PROGRAM_CHARS:,} characters")
            return written
        if op is c.ANY:
            if flags & re.DOTALL:
                self.blob_ok = False
                return "(?s:.)"
            return "[^\\n]"
        if op is c.AT:
            return self.anchor(av, flags, tail)
        if op is c.BRANCH:
            return "(?:" + "|".join(self.seq(branch, flags, tail) for branch in av[1]) + ")"
        if op is c.SUBPATTERN:
            _, add, remove, sub = av
            return f"(?:{self.seq(sub, (flags | add) & ~remove, tail)})"
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

    @staticmethod
    def atom(op: Any, av: Any, flags: int) -> tuple[str, tuple[tuple[int, int], ...]]:
        """(Python source, exact members) of a literal, negated literal or class: the members as
        Python matches them case-sensitively (``\\d``, ``\\w``, ``\\s`` Unicode unless ``(?a)``)."""
        from re import _constants as c  # type: ignore[attr-defined]

        if op is c.LITERAL:
            return _code(av), ((av, av),)
        if op is c.NOT_LITERAL:
            return f"[^{_code(av)}]", tuple(_complement([(av, av)]))
        negate = any(kind is c.NEGATE for kind, _ in av)
        plain = [(v, v) if kind is c.LITERAL else v for kind, v in av if kind in (c.LITERAL, c.RANGE)]
        categories = tuple(_CATEGORY_SOURCE[v.name] for kind, v in av if kind is c.CATEGORY)
        every = _merge(plain + list(_category_ranges(categories, flags & re.ASCII)))
        source = "".join(_code(lo) if lo == hi else f"{_code(lo)}-{_code(hi)}" for lo, hi in plain) + "".join(categories)
        return f"[{'^' if negate else ''}{source}]", tuple(_complement(every) if negate else every)

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
        if at is c.AT_NON_BOUNDARY:  # RE2's \B also matches inside a multi-byte character
            raise _Refused("\\B (not at a word boundary) is not supported")
        raise _Refused(f"the anchor {at} is not supported")


__all__ = ["TextTest", "like", "regex", "shown"]
