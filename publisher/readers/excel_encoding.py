"""A sheet part's XML as UTF-8, whatever encoding it was saved in.

The sheet is searched and parsed as bytes, a piece at a time (``excel_scan``, ``excel_rows``),
with patterns and wrappers written for UTF-8; Open XML also allows UTF-16 (pandas reads it), and
a UTF-16 sheet failed as having "no <sheetData>". Such a part is decoded as it is read, in pieces,
and given on as UTF-8 (its declaration still names its own encoding: nothing parses it whole).
"""

from __future__ import annotations

import codecs
import io
import re
import zipfile
from typing import IO

_READ_BYTES = 2**16
#: The encoding named by the XML declaration of an ASCII-compatible part.
_DECLARED = re.compile(rb"""(?:\xef\xbb\xbf)?<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")


def sheet_xml(stream: zipfile.ZipExtFile, part: str) -> IO[bytes]:
    """``stream`` as is when its XML is UTF-8 (or ASCII), else decoded as read and given as UTF-8;
    a ValueError naming ``part`` for an encoding Python does not know."""
    head = stream.peek(256)[:256]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"  # (its byte-order mark says which)
    elif head.startswith(b"<\x00"):
        encoding = "utf-16-le"
    elif head.startswith(b"\x00<"):
        encoding = "utf-16-be"
    else:
        declared = _DECLARED.match(head)
        encoding = declared.group(1).decode() if declared else "utf-8"
        if encoding.lower().replace("-", "") in ("utf16", "utf16le", "utf16be"):
            encoding = "utf-8"  # (saying UTF-16 in bytes that are not: read as its bytes are)
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"{part}: its XML is encoded {encoding!r}, an encoding not known here (Open XML writes UTF-8 "
                         "or UTF-16): not supported") from None
    if name in ("utf-8", "ascii"):
        return stream
    return io.BufferedReader(_Transcoded(stream, name), _READ_BYTES)


class _Transcoded(io.RawIOBase):
    """Bytes of ``encoding`` read as UTF-8, a piece at a time."""

    def __init__(self, stream: IO[bytes], encoding: str) -> None:
        super().__init__()
        self.stream, self.decoder, self.out = stream, codecs.getincrementaldecoder(encoding)(), b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self.out:
            raw = self.stream.read(_READ_BYTES)
            self.out = self.decoder.decode(raw, final=not raw).encode("utf-8", "surrogatepass")
            if not raw:
                break
        n = min(len(buffer), len(self.out))
        buffer[:n] = self.out[:n]
        self.out = self.out[n:]
        return n
