"""The reader contract: detect a file by magic bytes (then extension) and open it as a node tree."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import ConfigError
from ..nodes import Node
from ..registry import Registry, require


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Reader:
    """Subclass, set the class attributes and implement :meth:`open`; register with ``@register_reader``.

    ``open`` is a context manager so that a reader can keep its file open while the
    writer streams blocks out of it, and close it afterwards.
    """

    name: ClassVar[str]
    extensions: ClassVar[tuple[str, ...]] = ()
    magic: ClassVar[tuple[bytes, ...]] = ()
    #: Among readers whose magic matches, the higher priority is asked first.
    priority: ClassVar[int] = 0
    Options: ClassVar[type[BaseModel]] = NoOptions
    #: True for readers of single arrays (images, .npy) whose files may be stacked.
    stackable: ClassVar[bool] = False
    #: Modules :meth:`open` needs (imported inside it); a missing one fails the file with
    #: "install X to read ..." before anything is opened.
    requires: ClassVar[tuple[str, ...]] = ()
    #: Its conversions read only their own file, or set :attr:`others` when they read or looked for
    #: another (an HDF5 external link or virtual dataset, a multi-file TIFF series): only then may a
    #: build take a file moved or copied elsewhere for its converted self (publisher/build/moved.py).
    alone: ClassVar[bool] = False
    #: This conversion read or looked for files other than its own (set on the instance; here as
    #: defaults also for a plug-in whose ``__init__`` does not call this one's).
    others: bool = False
    #: Those of them it can name (an HDF5 file's external links, virtual and external sources, an
    #: OME-TIFF's companions): recorded with the item, converted again when one of them changes.
    referred: frozenset[Path] | set[Path] = frozenset()
    #: Opened as one frame of a stack the pipeline asked for (:mod:`publisher.stacks`): read as it is,
    #: not as part of a multi-file series another file publishes.
    stacked: bool = False

    def __init__(self) -> None:
        require(self.requires, f"read {self.name} files (the {self.name!r} reader)")
        self.others = False
        self.referred = set()

    def read_alone(self) -> bool:
        """Whether this conversion read its file alone: its own class says :attr:`alone` (a plug-in
        subclassing a built-in reader may read more, and does not inherit it) and it met no other."""
        return type(self).__dict__.get("alone") is True and not self.others

    @classmethod
    def magic_matches(cls, head: bytes) -> bool:
        return any(head.startswith(m) for m in cls.magic)

    @classmethod
    def claims(cls, path: Path, head: bytes) -> bool:
        """Tie-break among readers whose magic matches (e.g. NetCDF-4 versus plain HDF5)."""
        return True

    @classmethod
    def parse_options(cls, options: dict[str, Any], where: Callable[..., str] = lambda *loc: "pipeline") -> BaseModel:
        """Validate per-source options; ``where(*field_path)`` names the file and line of a field."""
        try:
            return cls.Options.model_validate(options)
        except ValidationError as exc:
            detail = "\n  ".join(
                f"{where(*e['loc'])}: options.{'.'.join(map(str, e['loc']))}: {e['msg']} (for the {cls.name} reader)" for e in exc.errors()
            )
            raise ConfigError(f"invalid reader options\n  {detail}") from None

    @contextlib.contextmanager
    def open(self, path: Path, key: str, options: BaseModel) -> Iterator[Node]:
        raise NotImplementedError
        yield  # pragma: no cover


#: Readers by name; the package's ``_builtins`` imports the built-in ones (docs/plugins.md).
REGISTRY: Registry[type[Reader]] = Registry("skyshelf.readers", "reader", key_of=lambda ep, cls: cls.name)


#: What a reader decodes whole at most, past which the data is refused (skipped, saying why): a
#: compressed .npz member (a 5 MB file whose member truly holds 5 GiB of zeros took 5 GB), a TIFF
#: frame that cannot be read in parts (tiles of 400 MB in a 49 KB file took 2 GB).
MAX_WHOLE_BYTES = 2 * 2**30


def register_reader(cls: type[Reader]) -> type[Reader]:
    return REGISTRY.register(cls.name)(cls)


def sampled_string_width(read: Callable[[tuple[slice, ...]], Any], shape: tuple[int, ...], rows: int = 64) -> int | None:
    """The longest of a few runs of a variable-length string array's values (its start, thirds
    and end; all of a short one), for :attr:`~publisher.nodes.ArrayNode.string_width`: sized by a
    guess of ~70 characters, slabs of 1,000-character strings were 131,072 of them (~400 MB each
    in memory); small arrays were left to the guess, and 2,000 strings of 1 MiB were one slab of
    2 GB (6.7 GB of memory). None for scalars."""
    if not shape or 0 in shape:
        return None
    n = shape[0]
    longest = 0
    starts = {0} if n <= 4 * rows else {0, n // 3, 2 * n // 3, max(0, n - rows)}
    rows = n if n <= 4 * rows else rows
    for start in sorted(starts):
        sel = (slice(start, min(n, start + rows)), *(slice(0, min(d, 8)) for d in shape[1:]))
        values = np.asarray(read(sel), dtype=object).ravel()  # (a str of other than ASCII: up to 4 bytes a character)
        longest = max([longest, *(len(v) if isinstance(v, bytes) or v.isascii() else 4 * len(v) for v in values if isinstance(v, (str, bytes)))])
    return longest or None
