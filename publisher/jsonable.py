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
    if value is None or isinstance(value, (bool, str)):
        return value
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
    return str(value)


def attrs_to_json(attrs: Any) -> dict[str, Any]:
    """Convert an attribute mapping (h5py AttributeManager, dict) to JSON, skipping unreadable ones."""
    out: dict[str, Any] = {}
    for key in attrs.keys():
        try:
            out[str(key)] = to_json(attrs[key])
        except Exception as exc:  # an attribute h5py cannot map (e.g. H5T_TIME, float128)
            out[str(key)] = f"<unreadable attribute: {exc}>"
    return out
