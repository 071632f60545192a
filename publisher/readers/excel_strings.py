"""A workbook's shared strings (``xl/sharedStrings.xml``: where Excel keeps a cell's text) kept on
disk when the table is big, so a sheet's memory does not grow with its text.

openpyxl reads the table into a list of ``str``: ~190 bytes a string here, so a sheet of a million
rows of two unique texts each held ~400 MB before its first row was read. A big table is read as
openpyxl reads it (the same parser, the same text of rich runs, ``_x005F_`` escapes alike) but
written to an unlinked temporary file, its strings' offsets to another; a cell's string is read
back with ``pread`` (a few microseconds, beside the ~10 of parsing its cell), the last ones used
kept: reading the table takes ~25% longer, a sheet ~10%. It takes the table's uncompressed size
in ``TMPDIR`` (on a RAM-backed /tmp, memory again). Small tables stay openpyxl's list.

The parser holds one string whole, so one string's XML is bounded (:class:`OneStringAtATime`):
a 64 MiB ``<si>`` deflated from 65 KB took 1.1 GB, 1.5 GiB from 1.5 MB was killed at 23 GB.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
import zipfile
from array import array
from collections.abc import Callable, Sequence
from typing import IO, overload
from xml.parsers import expat

from ..scratch import NO_ROOM
from .excel_scan import bounded_part

#: A table of at most this many uncompressed bytes is read into memory as openpyxl reads it.
IN_MEMORY_BYTES = 16 * 2**20
#: Strings kept decoded (a sheet's repeated texts: categories, units, names).
CACHED = 4096
_FLUSH = 65536  # offsets written out this many at a time
_SI = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}si"
#: The most XML one string (one ``<si>``) may take: Excel, openpyxl and xlsxwriter keep at most
#: 32,767 characters in a cell; this leaves 64 bytes a character for escapes and rich-text runs.
MAX_STRING_BYTES = 2 * 2**20
_READ_BYTES = 2**16  # read from the archive at once (the bound is checked between reads)


class OneStringAtATime:
    """The table's XML as read from ``source``, refused once one child of its root (a string)
    takes more than ``limit`` bytes: the parser reading the table keeps a string's text, runs and
    elements until its end, so a string of 1.5 GiB deflated from 1.5 MB took all the memory. An
    expat parser of its own finds the strings' bounds (a byte search would be fooled by ``si>``
    in a text or a CDATA section) before the table's parser is given the bytes."""

    def __init__(self, source: IO[bytes], part: str, limit: int = MAX_STRING_BYTES) -> None:
        self.source, self.part, self.limit = source, part, limit
        self.depth = self.mark = self.fed = 0  # mark: where the last string began or ended
        self.done = False
        self.expat = expat.ParserCreate()
        self.expat.StartElementHandler = self._start
        self.expat.EndElementHandler = self._end

    def _start(self, name: str, attributes: object) -> None:
        self.depth += 1
        if self.depth == 2:
            self.mark = self.expat.CurrentByteIndex

    def _end(self, name: str) -> None:
        if self.depth == 2:
            self.mark = self.expat.CurrentByteIndex
        self.depth -= 1

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(_READ_BYTES if size < 0 else min(size, _READ_BYTES))
        if not self.done:
            self.expat.Parse(data, not data)
            self.done = not data
        self.fed += len(data)
        if self.fed - self.mark > self.limit:
            raise ValueError(f"{self.part}: a shared string takes more than {self.limit // 2**20} MiB of XML (Excel keeps "
                             "at most 32,767 characters in a cell): refused")
        return data


class DiskStrings(Sequence[str]):
    """The shared strings of one workbook, in two unlinked temporary files (gone with the process
    whatever ends it). Index ``i`` is the ``i``-th ``<si>``, as a cell's ``<v>`` names it."""

    def __init__(self, source: IO[bytes] | OneStringAtATime) -> None:
        from openpyxl.cell.text import Text
        from openpyxl.xml.functions import iterparse  # defusedxml's, where installed: openpyxl's own guard

        self._files: list[IO[bytes]] = []
        try:
            text = self._open("skyshelf-strings-")
            offsets = self._open("skyshelf-offsets-")
            ends, end, root = array("q", [0]), 0, None
            for event, node in iterparse(source, events=("start", "end")):
                if root is None:
                    root = node
                if event == "end" and node.tag == _SI:
                    data = Text.from_tree(node).content.replace("x005F_", "").encode("utf-8", "surrogatepass")
                    text.write(data)
                    end += len(data)
                    ends.append(end)
                    root.clear()  # the elements read so far: the table's memory stays that of one string
                    if len(ends) >= _FLUSH:
                        offsets.write(ends.tobytes())
                        ends = array("q")
            offsets.write(ends.tobytes())
            text.flush()
            offsets.flush()
            self._count = offsets.tell() // 8 - 1
        except OSError as exc:
            self.close()
            if exc.errno not in NO_ROOM:
                raise
            raise OSError(exc.errno, f"the temporary folder ran out of room for the workbook's shared strings "
                                     f"({tempfile.gettempdir()}; TMPDIR sets it): {exc.strerror}") from exc
        except BaseException:
            self.close()
            raise
        self._get = _reader(text, offsets, self._count)

    def _open(self, prefix: str) -> IO[bytes]:
        self._files.append(tempfile.TemporaryFile(prefix=prefix))  # noqa: SIM115 (open until close())
        return self._files[-1]

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        if isinstance(index, slice):
            return [self._get(i) for i in range(*index.indices(self._count))]
        return self._get(index + self._count if index < 0 else index)

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        for file in self._files:
            with contextlib.suppress(OSError):  # (a flush that failed as the table was written fails again here: closed all the same)
                file.close()


def _reader(text: IO[bytes], offsets: IO[bytes], count: int) -> Callable[[int], str]:
    """The ``index``-th string read from the files, the last :data:`CACHED` kept (a closure over
    the files, not a method: a table dropped unclosed is freed, and its files closed, at once; read
    after :meth:`DiskStrings.close`, a ValueError, never another file that took the descriptor)."""

    @functools.lru_cache(maxsize=CACHED)
    def read(index: int) -> str:
        if not 0 <= index < count:
            raise IndexError(f"shared string {index} of {count}")
        start, end = array("q", os.pread(offsets.fileno(), 16, 8 * index))
        return os.pread(text.fileno(), end - start, start).decode("utf-8", "surrogatepass")

    return read


def shared_strings(archive: zipfile.ZipFile, part: str | None) -> Sequence[str]:
    """The workbook's shared strings from ``part`` (its path in the archive; None: it has none),
    in memory as openpyxl reads them when small, else on disk (:class:`DiskStrings`)."""
    if part is None:
        return []
    with bounded_part(archive, part) as stream:
        source = OneStringAtATime(stream, part)
        if archive.getinfo(part).file_size <= IN_MEMORY_BYTES:
            from openpyxl.reader.strings import read_string_table

            return read_string_table(source)
        return DiskStrings(source)
