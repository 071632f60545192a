"""Array serializers: raw bytes, JSON, CSV, TIFF, NPY, HTML (PNG: :mod:`.png`)."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import BadRequest
from .base import register


@register("array", "application/octet-stream", ("bytes", "raw"), ".bin")
def octet_stream(array: np.ndarray, **_: Any) -> bytes:
    """C order, the advertised dtype (little-endian, as the structure says)."""
    if array.dtype.kind == "O":
        raise BadRequest("a string array has no raw-bytes form; ask for json or csv")
    return np.ascontiguousarray(array).tobytes()


def _jsonable(array: np.ndarray) -> Any:
    if array.dtype.kind in "SV":
        return np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(array).tolist() if array.size else array.tolist()
    if array.dtype.kind in "mM":
        return array.astype(str).tolist()
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        return np.where(np.isfinite(array), array, None).tolist()  # NaN/inf are not JSON: null
    return array.tolist()


#: Values turned into text at a time (numpy's text of a float32 takes 128 bytes a value).
TEXT_PIECE = 1 << 16


def _short_floats_json(array: np.ndarray) -> str:
    """float16/32 as JSON at their own shortest round-trip precision (float32 10.2 as ``10.2``,
    not the ``10.199999809265137`` of its double): numpy's ``str`` of the dtype, nested by hand
    (NaN and infinities as ``null``)."""
    flat, words = array.ravel(), []
    for start in range(0, flat.size, TEXT_PIECE):
        piece = flat[start:start + TEXT_PIECE]
        words.extend(np.where(np.isfinite(piece), piece.astype(str), "null").tolist())

    def nest(items: list[str], shape: tuple[int, ...]) -> str:
        if len(shape) <= 1:
            return items[0] if not shape else "[" + ",".join(items) + "]"
        step = math.prod(shape[1:])
        return "[" + ",".join(nest(items[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])) + "]"

    return nest(words, array.shape)


def _plain(value: Any) -> Any:
    """A structured array's ``tolist()`` made JSON as Tiled sends it: records as lists, bytes as
    ``data:`` URIs; also NaN/inf as null and complex as [real, imag] (Tiled 0.2.20 fails on both)."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):  # a sub-array field
        return _plain(value.tolist())
    if isinstance(value, bytes):
        return "data:application/octet-stream;base64," + base64.b64encode(value).decode()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, complex):
        return [_plain(value.real), _plain(value.imag)]
    return value


@register("array", "application/json", ("json",), ".json")
def to_json(array: np.ndarray, **_: Any) -> bytes:
    if array.dtype.names or array.dtype.kind == "O":  # structured: nested lists, one per record; objects: NaN as null
        return json.dumps(_plain(array.tolist()), separators=(",", ":"), default=str).encode()
    if array.dtype.kind == "c":  # [real, imag] pairs
        array = np.stack([array.real, array.imag], axis=-1)
    if array.dtype.kind == "f" and array.dtype.itemsize < 8:
        return _short_floats_json(array).encode()
    return json.dumps(_jsonable(array), separators=(",", ":")).encode()


def _leaves(values: np.ndarray, name: str = "") -> Iterator[tuple[str, np.ndarray]]:
    """A 1-D structured array's columns: nested fields as ``outer.inner``, a sub-array field's
    elements as ``name[i,j]``."""
    if values.dtype.names:
        for field in values.dtype.names:
            yield from _leaves(values[field], f"{name}.{field}" if name else field)
    elif values.ndim > 1:
        for index in np.ndindex(*values.shape[1:]):
            yield from _leaves(values[(slice(None), *index)], f"{name}[{','.join(map(str, index))}]")
    else:
        yield name, values


def _struct_csv(array: np.ndarray) -> bytes:
    """One row per record and a column per leaf field, with a header (numbers at their own
    precision, strings as UTF-8 text, opaque bytes as ``data:`` URIs)."""
    import csv

    if array.ndim > 1:
        raise BadRequest(f"CSV of a structured array has a row per record, so at most 1 dimension; this selection has {array.ndim} "
                         "(slice it first, or ask for json or octet-stream)")
    columns = list(_leaves(array.reshape(-1)))
    text = [[_plain(v) for v in c.tolist()] if c.dtype.kind == "V" else
            np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(c) if c.dtype.kind == "S" and c.size else c.astype(str)
            for _, c in columns]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([name for name, _ in columns])
    writer.writerows(zip(*text))
    return buf.getvalue().encode()


@register("array", "text/csv", ("csv",), ".csv")
def to_csv(array: np.ndarray, **_: Any) -> bytes:
    if array.dtype.names:
        return _struct_csv(array)
    if array.ndim > 2:
        raise BadRequest(f"CSV holds at most 2 dimensions; this selection has {array.ndim} (slice it first)")
    rows = np.atleast_2d(array) if array.ndim else array.reshape(1, 1)
    if array.ndim == 1:
        rows = array.reshape(-1, 1)
    buf = io.StringIO()
    if rows.dtype.kind in "mM":  # ISO text, as JSON and pandas write them (tolist() gives ns as bare integers)
        rows = rows.astype(str)
    if rows.dtype.kind in "SOUmM":
        import csv

        writer = csv.writer(buf, lineterminator="\n")
        for row in rows:
            writer.writerow([v.decode() if isinstance(v, bytes) else v for v in row.tolist()])
    else:
        # numpy scalars print at their own dtype's shortest round-trip precision (float32 10.2 as 10.2)
        np.savetxt(buf, rows, delimiter=",", fmt="%s" if rows.dtype.kind in "bcf" else "%d")
    return buf.getvalue().encode()


@register("array", "application/x-npy", ("npy",), ".npy")
def to_npy(array: np.ndarray, **_: Any) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False) if array.dtype.kind != "O" else np.save(buf, array.astype(str), allow_pickle=False)
    return buf.getvalue()


@register("array", "image/tiff", ("tiff", "tif"), ".tiff")
def to_tiff(array: np.ndarray, **_: Any) -> bytes:
    import tifffile

    if array.dtype.kind not in "biuf":
        raise BadRequest(f"TIFF holds numbers; this array is {array.dtype}")
    if not array.ndim:
        raise BadRequest("a TIFF image needs at least one dimension; this selection is a single value (ask for json)")
    if not array.size:
        raise BadRequest(f"the selection is empty (shape {list(array.shape)}): a TIFF image needs at least one value; "
                         "check the slice's start, stop and step against the array's shape")
    buf = io.BytesIO()  # 1-D as one row, as the PNG is (tifffile fails on it: a 500)
    tifffile.imwrite(buf, np.ascontiguousarray(np.atleast_2d(array)), photometric="minisblack")
    return buf.getvalue()


#: An HTML answer shows at most this many rows and columns of the first 2-D plane: a page a
#: person reads, not the array (which the note links to in the real formats).
HTML_ROWS, HTML_COLS = 100, 20


def html_window(ndim: int) -> tuple[slice, ...]:
    """What an HTML answer shows of a selection with ``ndim`` dimensions, in its own indices
    (the handler reads only this much)."""
    if ndim == 0:
        return ()
    if ndim == 1:
        return (slice(0, HTML_ROWS),)
    return (slice(0, 1),) * (ndim - 2) + (slice(0, HTML_ROWS), slice(0, HTML_COLS))


def _cell(value: Any) -> str:
    """One value as text: numpy scalars print at their dtype's shortest round-trip precision."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


@register("array", "text/html", ("html",), ".html")
def to_html(array: np.ndarray, shape: tuple[int, ...] | None = None, links: dict[str, str] | None = None, **_: Any) -> bytes:
    """A small table of the first rows and columns (:data:`HTML_ROWS`, :data:`HTML_COLS`) of the
    first 2-D plane of the selection (whose whole ``shape`` the note gives: ``array`` may be just
    the window), with links to the whole answer in other formats."""
    shape = tuple(array.shape if shape is None else shape)
    shown = array[html_window(array.ndim)]
    plane = (shown.reshape(1, 1) if shown.ndim == 0 else shown.reshape(-1, 1) if shown.ndim == 1
             else shown.reshape(shown.shape[-2:]) if shown.size or shown.ndim == 2 else shown.reshape(0, shown.shape[-1]))  # (0 planes: none shown)
    head = "<tr><th></th>" + "".join(f"<th>{j}</th>" for j in range(plane.shape[1])) + "</tr>" if len(shape) > 1 else ""
    body = "".join(f"<tr><th>{i}</th>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for i, row in enumerate(plane))
    whole = "shape " + " × ".join(map(str, shape)) if shape else "a scalar"
    rows, cols = (shape[-2], shape[-1]) if len(shape) > 1 else (shape[0] if shape else 1, 1)
    note = f"<p>Selection of {whole} ({array.dtype}). "
    if plane.shape != (rows, cols) or len(shape) > 2:
        lead = f" of plane [{', '.join(['0'] * (len(shape) - 2))}, :, :]" if len(shape) > 2 else ""
        note += f"Shown: the first {plane.shape[0]} of {rows} rows and {plane.shape[1]} of {cols} columns{lead}. "
    if links:
        note += "Whole selection: " + ", ".join(f'<a href="{html.escape(url)}">{html.escape(name)}</a>' for name, url in links.items()) + "."
    return f"<!doctype html><meta charset=utf-8><title>array of {whole}</title>{note}</p><table>{head}{body}</table>".encode()
