"""Rows ``start:stop`` of an awkward array stored as buffers (``ak.to_buffers``: AnnData's
``awkward-array`` groups), reading only the parts of each buffer those rows use.

``ak.from_buffers`` needs every buffer whole, so a group was read whole (an AIRR table of a
million cells, whole in memory). awkward has no reader of a row range from buffers, hence this
walk over the form: each node's buffer is read for the range its parent gives, down to the
leaves. Forms with a node it does not know (unions, bit masks) are read whole, as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

#: Reads ``buffer[start:stop]`` of the named buffer (``{form_key}-{role}``, as ``ak.to_buffers`` names them).
ReadBuffer = Callable[[str, int, int], np.ndarray]

_SLICED = ("NumpyForm", "ListOffsetForm", "ListForm", "RegularForm", "RecordForm", "IndexedOptionForm",
           "IndexedForm", "ByteMaskedForm", "UnmaskedForm", "EmptyForm")


def sliceable(form: Any) -> bool:
    """Whether every node of ``form`` is one :func:`rows` reads by range."""
    if type(form).__name__ not in _SLICED:
        return False
    inner = getattr(form, "contents", None)
    if inner is not None:
        return all(sliceable(c) for c in inner)
    content = getattr(form, "content", None)
    return content is None or sliceable(content)


def _index(kind: str, values: np.ndarray) -> Any:
    """An awkward index of the form's declared type ("i32", "u32", "i64"...), as a whole read keeps it."""
    import awkward as ak

    dtype = np.dtype({"i8": "i1", "u8": "u1", "i32": "i4", "u32": "u4", "i64": "i8"}[kind])
    return ak.index.Index(np.ascontiguousarray(values, dtype=dtype))


def rows(form: Any, start: int, stop: int, read: ReadBuffer) -> Any:
    """The layout of rows ``start:stop`` of the array whose form is ``form`` (a node of it)."""
    import awkward as ak

    name, length = type(form).__name__, stop - start
    if name == "NumpyForm":
        inner = math.prod(form.inner_shape)
        dtype = ak.types.numpytype.primitive_to_dtype(form.primitive)
        data = np.asarray(read(f"{form.form_key}-data", start * inner, stop * inner)).astype(dtype, copy=False) if length else np.empty(0, dtype)
        return ak.contents.NumpyArray(data.reshape(length, *form.inner_shape), parameters=form.parameters)
    if name == "ListOffsetForm":
        offsets = np.asarray(read(f"{form.form_key}-offsets", start, stop + 1), dtype=np.int64)
        content = rows(form.content, int(offsets[0]), int(offsets[-1]), read)
        return ak.contents.ListOffsetArray(_index(form.offsets, offsets - offsets[0]), content, parameters=form.parameters)
    if name == "ListForm":
        starts = np.asarray(read(f"{form.form_key}-starts", start, stop), dtype=np.int64)
        stops = np.asarray(read(f"{form.form_key}-stops", start, stop), dtype=np.int64)
        full = stops > starts
        lo, hi = (int(starts[full].min()), int(stops[full].max())) if full.any() else (0, 0)
        content = rows(form.content, lo, hi, read)
        starts, stops = np.where(full, starts - lo, 0), np.where(full, stops - lo, 0)
        return ak.contents.ListArray(_index(form.starts, starts), _index(form.stops, stops), content, parameters=form.parameters)
    if name == "RegularForm":
        content = rows(form.content, start * form.size, stop * form.size, read)
        return ak.contents.RegularArray(content, form.size, zeros_length=length, parameters=form.parameters)
    if name == "RecordForm":
        contents = [rows(c, start, stop, read) for c in form.contents]
        return ak.contents.RecordArray(contents, None if form.is_tuple else form.fields, length=length, parameters=form.parameters)
    if name in ("IndexedOptionForm", "IndexedForm"):
        index = np.asarray(read(f"{form.form_key}-index", start, stop), dtype=np.int64)
        held = index >= 0
        lo, hi = (int(index[held].min()), int(index[held].max()) + 1) if held.any() else (0, 0)
        content = rows(form.content, lo, hi, read)
        index = np.where(held, index - lo, -1)
        if name == "IndexedForm":
            return ak.contents.IndexedArray(_index(form.index, index), content, parameters=form.parameters)
        return ak.contents.IndexedOptionArray(_index(form.index, index), content, parameters=form.parameters)
    if name == "ByteMaskedForm":
        mask = np.asarray(read(f"{form.form_key}-mask", start, stop), dtype=np.int8)
        return ak.contents.ByteMaskedArray(_index(form.mask, mask), rows(form.content, start, stop, read), form.valid_when, parameters=form.parameters)
    if name == "UnmaskedForm":
        return ak.contents.UnmaskedArray(rows(form.content, start, stop, read), parameters=form.parameters)
    if name == "EmptyForm":
        return ak.contents.EmptyArray(parameters=form.parameters)
    raise TypeError(f"no range read for {name}")
