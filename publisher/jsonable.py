"""Turn HDF5/NetCDF attribute values (numpy scalars, arrays, bytes) into JSON values."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def decode_bytes(value: bytes) -> str:
    """Decode attribute bytes: UTF-8 when valid, else Latin-1 (never fails); NULs trimmed."""
    value = value.rstrip(b"\x00")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _float(value: float) -> float | None:
    # JSON has no NaN or infinity; null is what JSON-minded clients (and Tiled) expect.
    return value if math.isfinite(value) else None


def to_json(value: Any) -> Any:
    """Return a JSON-compatible copy of ``value``.

    Bytes are decoded, numpy scalars become Python numbers, arrays become (nested) lists,
    one-element arrays of strings become the string (NeXus often stores NX_class that way),
    structured values become dicts, and non-finite floats become null.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value if value.isascii() else _unescaped(value)
    if isinstance(value, (bytes, np.bytes_)):
        return decode_bytes(bytes(value))
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _float(float(value))
    if isinstance(value, (complex, np.complexfloating)):
        return {"real": _float(float(value.real)), "imag": _float(float(value.imag))}
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.void):
        if value.dtype.names:
            return {name: to_json(value[name]) for name in value.dtype.names}
        return bytes(value).hex()
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SUO" and value.size == 1:
            return to_json(value.reshape(-1)[0])
        if value.ndim == 0:
            return to_json(value[()])
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, np.generic):
        return to_json(value.item())
    if type(value).__name__ == "Empty" and type(value).__module__.startswith("h5py"):  # an attribute with no value (a null dataspace)
        return None
    return str(value)


def _unescaped(value: str) -> str:
    """A string h5py decoded with ``surrogateescape`` (a variable-length one of bytes not UTF-8:
    ``b"\\xb0C"``, an old instrument's Latin-1 degree sign, came as ``"\\udcb0C"``, which no JSON
    encoder can write as UTF-8) as :func:`decode_bytes` reads its bytes."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return decode_bytes(value.encode("utf-8", "surrogateescape"))


#: An HDF5 attribute storing more than this is named in the metadata, not copied into it.
ATTRIBUTE_BYTES = 2**20


def _too_large(attrs: Any, key: str) -> str | None:
    """A placeholder for an h5py attribute of more than :data:`ATTRIBUTE_BYTES`, told from its
    header before it is read: a 256 MiB attribute grew a build by 5.9 GB as JSON lists, and put
    1.4 GB of metadata in the store."""
    get_id = getattr(attrs, "get_id", None)
    if get_id is None:
        return None
    try:
        attribute = get_id(key)
        size = attribute.get_storage_size()
        shape, dtype = attribute.shape, attribute.dtype
    except (KeyError, OSError, RuntimeError, TypeError, ValueError):  # (an attribute h5py cannot describe: read as before)
        return None
    if size <= ATTRIBUTE_BYTES:
        return None
    return too_large(shape, dtype, size)


def too_large(shape: Any, dtype: Any, size: int) -> str:
    """What an attribute of ``size`` bytes (past :data:`ATTRIBUTE_BYTES`) is in the metadata."""
    return f"<attribute of shape {tuple(shape)} {dtype} ({size / 2**20:,.1f} MiB): too large for metadata>"


def _size(value: Any) -> int:
    """The bytes a value read holds: its strings' or arrays' own for one of objects (variable-length)."""
    if isinstance(value, np.ndarray):
        return sum(map(_size, value.flat)) if value.dtype.kind == "O" else value.nbytes
    return len(value) if isinstance(value, (str, bytes)) else 0


def capped_json(value: Any) -> Any:
    """:func:`to_json` of an attribute already read, or its placeholder past :data:`ATTRIBUTE_BYTES`:
    one of 16 MiB was a 40 MB index row and two 40 MB ``zarr.json``. (An HDF5 attribute of
    variable-length strings or sequences is only measured once read: its stored size is that of
    its descriptors, 16 bytes for a string of 100 MB, which went into four files.)"""
    size = _size(value)
    if size > ATTRIBUTE_BYTES:
        return too_large(np.shape(value), getattr(value, "dtype", type(value).__name__), size)
    return to_json(value)


def attrs_to_json(attrs: Any) -> dict[str, Any]:
    """Convert an attribute mapping (h5py AttributeManager, dict) to JSON, skipping unreadable ones."""
    out: dict[str, Any] = {}
    for key in attrs.keys():
        try:
            out[str(key)] = _too_large(attrs, key) or capped_json(attrs[key])
        except Exception as exc:  # an attribute h5py cannot map (e.g. H5T_TIME, float128)
            out[str(key)] = f"<unreadable attribute: {exc}>"
    return out
