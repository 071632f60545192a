"""Shared table helpers: numpy structured arrays (HDF5 compound, NetCDF compound) → Arrow."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import UnsupportedError
from ..jsonable import decode_bytes


def as_text(value: Any) -> Any:
    """A cell as text (None for a missing one): for columns Arrow cannot take as they are."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def unique_names(names: list[str]) -> list[str]:
    """Column names made distinct as pandas makes repeated headers (``x``, ``x.1``). A table's
    columns are found by name: an Excel number cell ``1`` and text cell ``"1"`` (two pandas labels,
    one name as text) failed the sheet, a Parquet file with two columns ``a`` published and then
    failed every read of it ("Column a does not exist in schema")."""
    seen, out = set(names), []
    for name in names:
        if name in out:
            n = 1
            while f"{name}.{n}" in seen:
                n += 1
            name = f"{name}.{n}"
            seen.add(name)
        out.append(name)
    return out


def _column(values: np.ndarray, name: str) -> Any:
    import pyarrow as pa

    dtype = values.dtype
    if dtype.subdtype is not None or values.ndim > 1:
        flat = values.reshape(len(values), -1)
        inner = _column(flat.reshape(-1), name)
        return pa.FixedSizeListArray.from_arrays(inner, flat.shape[1])
    if dtype.kind == "S":
        return pa.array([decode_bytes(bytes(v)) for v in values], type=pa.string())
    if dtype.kind == "O":  # variable-length strings, or variable-length sequences
        items = [decode_bytes(v) if isinstance(v, bytes) else v.tolist() if isinstance(v, np.ndarray) else v for v in values]
        try:
            return pa.array(items)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise UnsupportedError(f"column {name!r}: variable-length values have no common Arrow type ({exc})") from None
    if dtype.kind == "c":
        raise UnsupportedError(f"column {name!r}: complex numbers have no Arrow type")
    if dtype.kind == "V":
        raise UnsupportedError(f"column {name!r}: opaque datatype {dtype} has no Arrow type")
    if dtype.kind == "f" and dtype.itemsize > 8:
        raise UnsupportedError(f"column {name!r}: {dtype} has no Arrow type")
    return pa.array(np.asarray(values, dtype=dtype.newbyteorder("="), order="C"))


def _flatten(values: np.ndarray, prefix: str, out: dict[str, Any]) -> None:
    for field in values.dtype.names or ():
        sub = values[field]
        name = f"{prefix}{field}"
        if sub.dtype.names:  # nested compound: flattened to dotted column names
            _flatten(sub, name + ".", out)
        else:
            out[name] = _column(sub, name)


def structured_to_batch(values: np.ndarray) -> Any:
    """A RecordBatch with one column per field; nested fields become ``outer.inner`` columns."""
    import pyarrow as pa

    columns: dict[str, Any] = {}
    _flatten(values.reshape(-1), "", columns)
    return pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))
