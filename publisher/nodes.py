"""The build-side node tree that readers produce and writers consume.

Each node pairs a structure family with what the writer needs to stream its data:
a block reader for arrays, a batch iterator for tables, ordered children for containers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .structures import StructureFamily

if TYPE_CHECKING:
    import pyarrow as pa

BlockReader = Callable[[tuple[slice, ...]], np.ndarray]


@dataclass
class Node:
    key: str
    metadata: dict[str, Any] = field(default_factory=dict)
    specs: list[str] = field(default_factory=list)
    source_path: str = ""
    #: Skyshelf's own bookkeeping (aliases, links, skipped children, warnings), kept apart from source metadata.
    notes: dict[str, Any] = field(default_factory=dict)
    access_tags: list[str] | None = None
    family: StructureFamily = field(init=False)

    def warn(self, message: str) -> None:
        self.notes.setdefault("warnings", []).append(message)


@dataclass
class ArrayNode(Node):
    dtype: np.dtype = field(default_factory=lambda: np.dtype("f8"))
    shape: tuple[int, ...] = ()
    read: BlockReader | None = None
    dims: list[str] | None = None
    source_chunks: tuple[int, ...] | None = None
    #: Attributes written into the Zarr array; defaults to ``metadata``.
    attrs: dict[str, Any] | None = None
    fill_value: Any = None
    #: Chunk shape, set by rules or left to the writer's auto chunking.
    chunks: tuple[int, ...] | None = None
    codec: Any = None
    #: Multiscale pyramid: True forces, False forbids, None lets the writer decide by size (rules set it).
    pyramid: bool | None = None
    #: A label image or mask: pyramid levels take the nearest value.
    labels: bool = False
    #: The one value a region holds when the source stores nothing there (HDF5 chunks never
    #: written: a preallocated stack whose scan stopped early), else None: such a region is not
    #: read and its chunks are encoded once (:func:`publisher.writers.zarr_array.read_region`).
    constant: Callable[[tuple[slice, ...]], np.ndarray | None] | None = None
    #: The source's bytes a value of a string (object) array, when it stores them at a fixed width
    #: (HDF5 ``S``, NumPy ``U``), or the longest of a sample of variable-length ones: what
    #: :attr:`element_bytes` adds to a Python string's own size.
    string_width: int | None = None

    def __post_init__(self) -> None:
        self.family = StructureFamily.array

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * max(self.dtype.itemsize, 1)

    @property
    def element_bytes(self) -> int:
        """Bytes a value takes in memory once read: its itemsize, or for strings (Python objects:
        8 bytes of pointer, ~50 of object, the characters) what the source says or a guess. Sized
        by the pointer alone, a slab of 1,000-byte strings was 2 million of them (2 GB)."""
        if self.dtype.kind != "O":
            return max(self.dtype.itemsize, 1)
        return STRING_OBJECT_BYTES + self.string_width if self.string_width else STRING_BYTES


#: A Python string's size beside its characters (its pointer in the array and the object's header).
STRING_OBJECT_BYTES = 64
#: What a string of unknown width is taken to hold in memory (pointer, object, ~70 characters).
STRING_BYTES = 128


#: A table's batches hold as many rows as fill about this many bytes (Arrow copies a batch's
#: columns from the source's rows: ~3x it at its peak).
BATCH_BYTES = 32 * 2**20


def batch_rows(row_bytes: float, most: int = 65_536) -> int:
    """Rows of ``row_bytes`` each in a batch of about :data:`BATCH_BYTES` (at least one, at most
    ``most``): a fixed count of rows made a batch of 8 KB rows 512 MiB."""
    return max(1, min(most, int(BATCH_BYTES // max(row_bytes, 1))))


@dataclass
class TableNode(Node):
    schema: pa.Schema | None = None
    batches: Callable[[], Iterator[pa.RecordBatch]] | None = None
    num_rows: int | None = None

    def __post_init__(self) -> None:
        self.family = StructureFamily.table


@dataclass
class SparseNode(Node):
    """A sparse matrix or tensor. ``read_coo(region)`` returns ``(coords, data)`` of the nonzeros
    inside ``region`` (one slice per dimension), coordinates relative to the region's start,
    ``coords`` of shape ``(ndim, nnz)`` sorted row-major; only the source rows the region
    touches are read."""

    dtype: np.dtype = field(default_factory=lambda: np.dtype("f8"))
    coord_dtype: np.dtype = field(default_factory=lambda: np.dtype("i8"))
    shape: tuple[int, ...] = ()
    nnz: int = 0
    read_coo: Callable[[tuple[slice, ...]], tuple[np.ndarray, np.ndarray]] | None = None
    dims: list[str] | None = None
    #: Block shape, set by rules or left to the writer.
    chunks: tuple[int, ...] | None = None
    #: Each dimension's block sizes when the reader cuts them unevenly, so that each block holds
    #: about as many nonzeros (a skewed matrix); a rule's ``chunks`` replace it.
    grid: list[list[int]] | None = None

    def __post_init__(self) -> None:
        self.family = StructureFamily.sparse


@dataclass
class AwkwardNode(Node):
    """Ragged or nested data (variable-length datasets, NeXus event lists, AnnData awkward
    groups). ``read()`` returns the whole ``awkward.Array``; ``length`` is its top-level length."""

    length: int = 0
    read: Callable[[], Any] | None = None
    #: The array in pieces of rows, each an ``awkward.Array`` of one type, for data too large to
    #: hold at once (NeXus events): the writer stores one Parquet row group per piece.
    pieces: Callable[[], Iterator[Any]] | None = None

    def __post_init__(self) -> None:
        self.family = StructureFamily.awkward


@dataclass
class ContainerNode(Node):
    children: list[Node] = field(default_factory=list)
    #: True inside a source file: the container is a Zarr group holding its array children.
    in_file: bool = False
    attrs: dict[str, Any] | None = None
    #: Keys of its metadata copied from its children's values (HDF5 scalars, for search): dropped
    #: where a child is of another access class than the container (its value would leak with it).
    copied: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.family = StructureFamily.container

    def child(self, key: str) -> Node | None:
        return next((c for c in self.children if c.key == key), None)


@dataclass
class SkippedNode(Node):
    """A node left out on purpose, with the reason (unsupported dtype, missing virtual source, ...)."""

    reason: str = ""

    def __post_init__(self) -> None:
        self.family = StructureFamily.container  # never published; the family is unused


@dataclass
class LinkNode(Node):
    """Another path to a node published elsewhere (an HDF5 hard or soft link); never published itself."""

    target_path: str = ""
    target: Node | None = None

    def __post_init__(self) -> None:
        self.family = StructureFamily.container  # never published; the family is unused


def walk(node: Node, prefix: str = "") -> Iterator[tuple[str, Node]]:
    """Yield ``(path, node)`` depth-first in child order; the root's path is ``prefix``."""
    yield prefix, node
    if isinstance(node, ContainerNode):
        for child in node.children:
            yield from walk(child, f"{prefix}/{child.key}" if prefix else child.key)
