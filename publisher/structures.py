"""Structure families: the spine shared by readers, writers, the index and the handlers.

Small JSON-round-trippable dataclasses in Tiled's shapes (``ArrayStructure``,
``TableStructure``, ``ContainerStructure``), kept free of numpy and pyarrow so that a
Lambda handler can read the index without paying for them at import.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class StructureFamily(str, Enum):
    array = "array"
    table = "table"
    container = "container"
    sparse = "sparse"
    awkward = "awkward"


#: Tiled's specs for a dataset (a container whose children are all arrays, each one of the two
#: others, with ``{"attrs": ...}`` metadata and dims): the tiled client ``read()``s it as an xarray.Dataset.
XARRAY_DATASET, XARRAY_COORD, XARRAY_DATA_VAR = "xarray_dataset", "xarray_coord", "xarray_data_var"

_ENDIANNESS = {"<": "little", ">": "big", "|": "not_applicable", "=": sys.byteorder}


@dataclass(frozen=True)
class DataType:
    """A numpy dtype in Tiled's ``BuiltinDtype`` form; ``kind`` "T" is a variable-length string."""

    kind: str
    itemsize: int
    endianness: str = "little"
    dt_units: str | None = None

    @classmethod
    def from_numpy(cls, dtype: Any, max_chars: int | None = None) -> DataType | StructDtype:
        """``max_chars`` (the longest value of a variable-length string array, when known) gives
        Tiled's form for strings: fixed-width unicode, 4 bytes per character. A structured dtype
        gives a :class:`StructDtype` (as Tiled's ``ArrayStructure.data_type`` is either)."""
        if dtype.names:
            return StructDtype.from_numpy(dtype)
        if dtype.kind == "O" or dtype.kind == "T":  # variable-length strings
            if max_chars is not None:
                return cls(kind="U", itemsize=4 * max(max_chars, 1), endianness="little")
            return cls(kind="T", itemsize=0, endianness="not_applicable")
        units = None
        if dtype.kind in "mM":
            units = "[" + dtype.str.split("[")[1] if "[" in dtype.str else None  # Tiled's form: "[ns]", brackets kept
        return cls(kind=dtype.kind, itemsize=dtype.itemsize, endianness=_ENDIANNESS[dtype.byteorder], dt_units=units)

    def to_numpy_str(self) -> str:
        """The numpy dtype string, e.g. ``<f8`` (``StringDType`` spelled ``T``)."""
        if self.kind == "T":
            return "T"
        order = {"little": "<", "big": ">", "not_applicable": "|"}[self.endianness]
        if self.kind in "mM":
            return f"{order}{self.kind}8" + (f"[{self.dt_units.strip('[]')}]" if self.dt_units else "")
        size = self.itemsize // 4 if self.kind == "U" else self.itemsize
        return f"{order}{self.kind}{size}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DataType:
        return cls(**data)


@dataclass(frozen=True)
class StructField:
    """One field of a :class:`StructDtype` (Tiled's ``Field``): ``shape`` for a sub-array field."""

    name: str
    dtype: DataType | StructDtype
    shape: tuple[int, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype.to_json(), "shape": list(self.shape) if self.shape is not None else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StructField:
        shape = data.get("shape")
        return cls(data["name"], data_type_from_json(data["dtype"]), tuple(shape) if shape is not None else None)

    def to_numpy_descr(self) -> tuple[Any, ...]:
        base = self.dtype.to_numpy_descr() if isinstance(self.dtype, StructDtype) else self.dtype.to_numpy_str()
        return (self.name, base) if self.shape is None else (self.name, base, self.shape)


@dataclass(frozen=True)
class StructDtype:
    """A structured (compound) dtype in Tiled's ``StructDtype`` form. Its values are sent PACKED
    (the tiled client builds the numpy dtype from names and formats alone), so ``itemsize`` is
    the packed size and publishers repack before writing (``readers/compound.packed``)."""

    itemsize: int
    fields: tuple[StructField, ...]
    kind = "V"  # what code asking a DataType for its kind sees (not part of the JSON)

    @classmethod
    def from_numpy(cls, dtype: Any) -> StructDtype:
        fields = []
        for name in dtype.names:
            ftype = dtype.fields[name][0]
            base, shape = ftype.subdtype if ftype.subdtype else (ftype, None)
            fields.append(StructField(name, DataType.from_numpy(base), shape))
        return cls(itemsize=dtype.itemsize, fields=tuple(fields))

    def to_numpy_descr(self) -> list[tuple[Any, ...]]:
        return [f.to_numpy_descr() for f in self.fields]

    def to_numpy_dtype(self) -> Any:
        import numpy as np  # not at import: handlers read structures without numpy

        return np.dtype(self.to_numpy_descr())

    def to_json(self) -> dict[str, Any]:
        return {"itemsize": self.itemsize, "fields": [f.to_json() for f in self.fields]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StructDtype:
        return cls(itemsize=int(data["itemsize"]), fields=tuple(StructField.from_json(f) for f in data["fields"]))


def data_type_from_json(data: dict[str, Any]) -> DataType | StructDtype:
    """Tiled's rule: a data type with ``fields`` is a struct, any other a builtin."""
    return StructDtype.from_json(data) if "fields" in data else DataType.from_json(data)


def regular_chunks(shape: tuple[int, ...], chunk_shape: tuple[int, ...]) -> list[list[int]]:
    """Tiled's per-dimension chunk sizes for a regular grid (last chunk may be short)."""
    out = []
    for size, c in zip(shape, chunk_shape):
        c = max(int(c), 1)
        full, rest = divmod(size, c)
        out.append([c] * full + ([rest] if rest else []) or [0])
    return out


@dataclass
class ArrayStructure:
    data_type: DataType | StructDtype
    shape: list[int]
    chunks: list[list[int]]
    dims: list[str] | None = None
    resizable: bool = False

    @property
    def chunk_shape(self) -> list[int]:
        """The regular chunk shape (every chunk but the last has this size)."""
        return [c[0] if c else 0 for c in self.chunks]

    def to_json(self) -> dict[str, Any]:
        return {
            "data_type": self.data_type.to_json(),
            "shape": list(self.shape),
            "chunks": [list(c) for c in self.chunks],
            "dims": list(self.dims) if self.dims is not None else None,
            "resizable": self.resizable,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ArrayStructure:
        return cls(
            data_type=data_type_from_json(data["data_type"]),
            shape=list(data["shape"]),
            chunks=[list(c) for c in data["chunks"]],
            dims=data.get("dims"),
            resizable=data.get("resizable", False),
        )


@dataclass
class TableStructure:
    """``arrow_schema`` is Tiled's data URI of the IPC-serialized schema."""

    arrow_schema: str
    columns: list[str]
    npartitions: int
    row_count: int
    partition_rows: list[int] = field(default_factory=list)
    resizable: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableStructure:
        return cls(**data)


@dataclass
class ContainerStructure:
    count: int
    contents: None = None  # Tiled's slot for inlined children; the index pages them instead

    def to_json(self) -> dict[str, Any]:
        return {"contents": None, "count": self.count}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContainerStructure:
        return cls(count=data["count"])


@dataclass
class SparseStructure:
    """Tiled's ``sparse`` family: a COO array cut into a regular block grid (``chunks`` as for arrays)."""

    data_type: DataType
    coord_data_type: DataType
    shape: list[int]
    chunks: list[list[int]]
    dims: list[str] | None = None
    resizable: bool = False
    layout: str = "COO"

    def to_json(self) -> dict[str, Any]:
        return {
            "chunks": [list(c) for c in self.chunks],
            "shape": list(self.shape),
            "data_type": self.data_type.to_json(),
            "coord_data_type": self.coord_data_type.to_json(),
            "dims": list(self.dims) if self.dims is not None else None,
            "resizable": self.resizable,
            "layout": self.layout,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SparseStructure:
        return cls(
            data_type=DataType.from_json(data["data_type"]),
            coord_data_type=DataType.from_json(data.get("coord_data_type") or {"kind": "i", "itemsize": 8}),
            shape=list(data["shape"]),
            chunks=[list(c) for c in data["chunks"]],
            dims=data.get("dims"),
            resizable=data.get("resizable", False),
            layout=data.get("layout", "COO"),
        )


@dataclass
class AwkwardStructure:
    """Tiled's ``awkward`` family: the top-level length and the awkward form (a JSON dict whose
    ``form_key`` s name the buffers, ``{form_key}-{attribute}``)."""

    length: int
    form: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"length": self.length, "form": self.form}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AwkwardStructure:
        return cls(length=int(data["length"]), form=dict(data["form"]))


STRUCTURES: dict[StructureFamily, type] = {
    StructureFamily.array: ArrayStructure,
    StructureFamily.table: TableStructure,
    StructureFamily.container: ContainerStructure,
    StructureFamily.sparse: SparseStructure,
    StructureFamily.awkward: AwkwardStructure,
}


def structure_from_json(family: str, data: dict[str, Any]) -> Any:
    return STRUCTURES[StructureFamily(family)].from_json(data)
