"""Array serializers: raw bytes, JSON, CSV, PNG, TIFF, NPY, HTML."""

from __future__ import annotations

import base64
import html
import io
import json
import math
import warnings
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadRequest
from .base import register

#: Largest PNG side by default; a 4k frame is averaged down to this for a usable preview.
PNG_MAX_SIZE = 1024
#: Default PNG contrast (percent): the values between these percentiles span black to white, as
#: image viewers' auto-contrast does, so a dead row or a few hot pixels do not turn a frame black.
PNG_PERCENTILES = (0.5, 99.5)
#: zlib for previews: level 1 with the run-length strategy (Z_RLE), which keeps flat regions and
#: masks small and costs less than full LZ77 on noisy frames (512x512 u8 here: 10.3 -> 7.2 ms).
PNG_ZLIB = {"compress_level": 1, "compress_type": 3}


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
    if array.dtype.names:  # structured: nested lists, one per record
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


@cache
def colormaps() -> dict[str, np.ndarray]:
    with np.load(Path(__file__).with_name("colormaps.npz")) as data:
        return {name: data[name] for name in data.files}


def _image_plane(array: np.ndarray) -> np.ndarray:
    """The 2-D plane an image shows (leading length-1 dimensions dropped, 1-D as one row)."""
    plane = array
    while plane.ndim > 2 and plane.shape[0] == 1:
        plane = plane[0]
    if plane.ndim == 1:
        plane = plane.reshape(1, -1)
    if plane.ndim != 2:
        raise BadRequest(f"an image needs a 2-D selection; this one has shape {list(array.shape)} (slice it, e.g. slice=0,:,:)")
    if plane.dtype.kind not in "biuf":
        raise BadRequest(f"an image needs numbers; this array is {plane.dtype}")
    if not plane.size:
        raise BadRequest(f"the selection is empty (shape {list(array.shape)}): an image needs at least one value on each side; "
                         "check the slice's start, stop and step against the array's shape")
    return plane


def _downsample(plane: np.ndarray, max_size: int) -> np.ndarray:
    """Block-mean down to at most ``max_size`` per side (integer factor, NaN-aware: a block of
    fills alone stays NaN)."""
    factor = max(1, -(-max(plane.shape) // max_size))
    if factor == 1:
        return plane.astype("f8", copy=False)
    h, w = (plane.shape[0] // factor) * factor, (plane.shape[1] // factor) * factor
    h, w = max(h, factor), max(w, factor)
    cropped = plane[:h, :w].astype("f8", copy=False)
    if cropped.shape != (h, w):
        return cropped[::factor, ::factor]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "mean of empty slice": an all-fill block
        return np.nanmean(cropped.reshape(h // factor, factor, w // factor, factor), axis=(1, 3))


def _scale(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``lo..hi`` mapped linearly onto 0..255 (clipped, rounded); NaN and infinities become 0."""
    span = hi - lo if hi != lo else 1.0
    with np.errstate(invalid="ignore", over="ignore"):  # a tiny span overflows to inf: clipped to 255
        index = np.clip((values - lo) / span * 255.0, 0, 255)
    return np.where(np.isfinite(values), index, 0).round().astype("u1")


def _robust(values: np.ndarray) -> tuple[float, float]:
    """The default contrast: :data:`PNG_PERCENTILES` of the shown values (data values themselves,
    ``inverted_cdf``), widened to their min and max when the two meet (a mostly flat frame)."""
    if not values.size:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(values, PNG_PERCENTILES, method="inverted_cdf"))
    return (lo, hi) if lo < hi else (float(values.min()), float(values.max()))


#: How values map onto the colormap: ``linear``, or ``log`` (``log10`` of the value; values <= 0
#: are below every positive range, so they take the colormap's lowest colour, and the automatic
#: range is taken over the positive values only).
PNG_SCALES = ("linear", "log")


def png_check(rescale: tuple[float, float] | None = None, colormap: str | None = None, scale: str | None = None,
              **_: Any) -> str:
    """The colormap's name, after checking the options a PNG takes (a 400 naming the bad one), so a
    handler can refuse them before it reads any data."""
    name = (colormap or "gray").lower()
    if name not in colormaps():
        raise BadRequest(f"unknown colormap {colormap!r}; choose one of {sorted(colormaps())}")
    if (scale or "linear") not in PNG_SCALES:
        raise BadRequest(f"unknown scale {scale!r}; choose one of {list(PNG_SCALES)}")
    if rescale is not None:
        lo, hi = rescale
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
            raise BadRequest(f"rescale must be two finite numbers min,max with min <= max, got {lo},{hi}")
        if scale == "log" and lo <= 0:
            raise BadRequest(f"rescale's min must be above 0 with scale=log (log10 of it is taken), got {lo}")
    return name


def _auto_range(values: np.ndarray, log: bool) -> tuple[float, float]:
    """:func:`_robust` of the shown values (the positive ones on a log scale; (1, 10) when none is)."""
    if log:
        values = values[values > 0]
        if not values.size:
            return 1.0, 10.0
    return _robust(values)


def _mapped(values: np.ndarray, lo: float, hi: float, log: bool) -> np.ndarray:
    """:func:`_scale` on the linear or the log scale (values <= 0 become -inf: index 0)."""
    if not log:
        return _scale(values, lo, hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(np.where(values > 0, values, 0.0))  # <= 0 -> -inf, NaN stays NaN
    return _scale(logs, math.log10(lo), math.log10(hi))


def _to_u1(plane: np.ndarray, rescale: tuple[float, float] | None, log: bool = False) -> tuple[np.ndarray, tuple[float, float]]:
    """Floats (NaN where masked) to 0..255 indices, and the range used (in data units)."""
    bounds = rescale or _auto_range(plane[np.isfinite(plane)], log)
    return _mapped(plane, *bounds, log), bounds


def _small_ints_to_u1(plane: np.ndarray, rescale: tuple[float, float] | None, fill: tuple[float, ...] = (),
                      log: bool = False) -> tuple[np.ndarray, tuple[float, float]]:
    """The same mapping for 8- and 16-bit integers (detector frames), through a lookup table of
    the values between the frame's min and max: one gather instead of five float passes."""
    if plane.dtype.kind == "b":
        plane = plane.view("u1")
    if not plane.size:
        return np.zeros(plane.shape, dtype="u1"), rescale or (0.0, 1.0)
    low, high = int(plane.min()), int(plane.max())
    bounds = rescale or _auto_range(plane[~np.isin(plane, fill)] if fill else plane.ravel(), log)
    lut = _mapped(np.arange(low, high + 1, dtype="f8"), *bounds, log)
    offsets = plane - plane.dtype.type(low) if plane.dtype.kind == "u" else np.subtract(plane, low, dtype=np.int32)
    return np.take(lut, offsets), bounds


def _number(value: float, dtype: np.dtype) -> str:
    """A range bound as a JSON number: an integer as one, a float at its data's precision
    (float32 ``10.2``, not ``10.199999809265137``)."""
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(dtype.type(value)) if dtype.kind == "f" and dtype.itemsize < 8 else repr(float(value))


@register("array", "image/png", ("png",), ".png")
def to_png(array: np.ndarray, rescale: tuple[float, float] | None = None, colormap: str | None = None,
           max_size: int | None = None, fill: tuple[float, ...] = (), scale: str | None = None,
           report: dict[str, str] | None = None, **_: Any) -> bytes:
    """8-bit PNG: values mapped from ``rescale`` (default: :func:`_robust`) to 0..255 on a linear
    or log ``scale`` (:data:`PNG_SCALES`), through ``colormap`` (default gray), downsampled to
    ``max_size`` per side. NaN, infinities and the ``fill`` values are left out of the scale and
    drawn transparent. ``report`` (when given) receives ``rescale``: the range used, as
    ``"min,max"`` JSON numbers in data units (a browser shows the automatic one)."""
    from PIL import Image

    name = png_check(rescale, colormap, scale)
    log = scale == "log"
    plane = _image_plane(array)
    fill = tuple(v for v in fill if np.isfinite(v))
    if plane.dtype.kind in "biu" and plane.dtype.itemsize <= 2 and max(plane.shape) <= (max_size or PNG_MAX_SIZE):
        index, bounds = _small_ints_to_u1(plane, rescale, fill, log)
        masked = np.isin(plane, fill) if fill and plane.dtype.kind != "b" else None
    else:
        values = plane.astype("f8")
        if fill:
            values[np.isin(values, fill)] = np.nan
        values = _downsample(values, max_size or PNG_MAX_SIZE)
        index, bounds = _to_u1(values, rescale, log)
        masked = ~np.isfinite(values)
    if report is not None:
        report["rescale"] = ",".join(_number(b, plane.dtype) for b in bounds)
    luts = colormaps()
    pixels = index if name == "gray" else luts[name][index]
    if masked is not None and masked.any():  # an alpha channel only when something is masked
        alpha = np.where(masked, 0, 255).astype("u1")
        image = Image.fromarray(np.dstack([pixels, alpha]), mode="LA" if name == "gray" else "RGBA")
    else:
        image = Image.fromarray(pixels, mode="L" if name == "gray" else "RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG", **PNG_ZLIB)
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
