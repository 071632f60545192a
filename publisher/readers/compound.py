"""Compound types that are really one number: a real/imaginary pair of floats is a complex value.

h5py already maps a compound of fields ``r`` and ``i`` to complex; other writers name the pair
otherwise (FEI/Thermo Velox EMD: ``realFloat``/``imagFloat``; others ``real``/``imag``, ``re``/``im``).
Such a dataset is published as a complex array, bit-exact (each half copied, never converted).
"""

from __future__ import annotations

import numpy as np

#: Field-name pairs (lower-cased) read as (real, imaginary); also any ``real<suffix>``/``imag<suffix>``
#: (Velox: ``realFloat``/``imagFloat``, and ``realFloatHalfEven``/``imagFloatHalfEven`` for a half-stored FFT).
PAIRS = (("r", "i"), ("re", "im"))
_COMPLEX = {4: np.dtype("<c8"), 8: np.dtype("<c16")}


def complex_pair(dtype: np.dtype) -> tuple[str, str, np.dtype] | None:
    """(real field, imaginary field, complex dtype) when ``dtype`` is such a pair of equal floats."""
    if not dtype.names or len(dtype.names) != 2:
        return None
    fields = {name.lower(): name for name in dtype.names}
    if len(fields) != 2:  # two names that differ only by case
        return None
    first, second = sorted(fields)
    pairs = [*PAIRS, *([(second, first)] if second.startswith("real") and first == "imag" + second[4:] else [])]
    for real, imag in pairs:
        if real in fields and imag in fields:
            a, b = dtype.fields[fields[real]][0], dtype.fields[fields[imag]][0]
            if a.kind == b.kind == "f" and a.itemsize == b.itemsize and a.itemsize in _COMPLEX:
                return fields[real], fields[imag], _COMPLEX[a.itemsize]
    return None


def to_complex(values: np.ndarray, pair: tuple[str, str, np.dtype]) -> np.ndarray:
    """The complex array of a structured one (C order, little-endian)."""
    real, imag, dtype = pair
    out = np.empty(values.shape, dtype=dtype)
    out.real = values[real]
    out.imag = values[imag]
    return out


def packed(dtype: np.dtype) -> np.dtype:
    """``dtype`` without padding and little-endian, nested fields and sub-array fields included:
    the layout Tiled sends (its client rebuilds the dtype from names and formats alone, so an
    aligned HDF5 compound's gaps would shift every field). Raises ``ValueError`` naming a field
    that no fixed-size array can hold (variable-length strings or sequences, references)."""
    if dtype.names is None:
        if dtype.subdtype:
            return np.dtype((packed(dtype.subdtype[0]), dtype.subdtype[1]))
        if dtype.hasobject or dtype.kind not in "biufcSVmM":
            raise ValueError(f"{dtype} has no fixed-size form")
        return dtype.newbyteorder("<") if dtype.byteorder == ">" else dtype
    out = []
    for name in dtype.names:
        try:
            out.append((name, packed(dtype.fields[name][0])))
        except ValueError as exc:
            raise ValueError(f"field {name!r}: {exc}") from None
    return np.dtype(out)


def repacked(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``values`` (a structured array as read) in the :func:`packed` ``dtype``, C order. numpy
    assigns structured values field by field in order, converting each field's byte order."""
    return np.ascontiguousarray(values.astype(dtype, copy=False))
