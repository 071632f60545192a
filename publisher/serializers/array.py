"""Array serializers: raw bytes, JSON, CSV, PNG, TIFF, NPY, HTML."""

from __future__ import annotations

import html
import io
import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadRequest
from . import register

#: Largest PNG side by default; a 4k frame is averaged down to this for a usable preview.
PNG_MAX_SIZE = 1024
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
    if array.dtype.kind == "c":
        return np.stack([array.real, array.imag], axis=-1).tolist()
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        return np.where(np.isfinite(array), array, None).tolist()  # NaN/inf are not JSON: null
    return array.tolist()


@register("array", "application/json", ("json",), ".json")
def to_json(array: np.ndarray, **_: Any) -> bytes:
    return json.dumps(_jsonable(array), separators=(",", ":")).encode()


@register("array", "text/csv", ("csv",), ".csv")
def to_csv(array: np.ndarray, **_: Any) -> bytes:
    if array.ndim > 2:
        raise BadRequest(f"CSV holds at most 2 dimensions; this selection has {array.ndim} (slice it first)")
    rows = np.atleast_2d(array) if array.ndim else array.reshape(1, 1)
    if array.ndim == 1:
        rows = array.reshape(-1, 1)
    buf = io.StringIO()
    if rows.dtype.kind in "SOUmM":
        import csv

        writer = csv.writer(buf, lineterminator="\n")
        for row in rows:
            writer.writerow([v.decode() if isinstance(v, bytes) else v for v in row.tolist()])
    else:
        np.savetxt(buf, rows, delimiter=",", fmt="%s" if rows.dtype.kind in "bc" else ("%.17g" if rows.dtype.kind == "f" else "%d"))
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
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.ascontiguousarray(array), photometric="minisblack")
    return buf.getvalue()


@cache
def colormaps() -> dict[str, np.ndarray]:
    with np.load(Path(__file__).with_name("colormaps.npz")) as data:
        return {name: data[name] for name in data.files}


def _image_plane(array: np.ndarray) -> np.ndarray:
    plane = array
    while plane.ndim > 2 and plane.shape[0] == 1:
        plane = plane[0]
    if plane.ndim == 1:
        plane = plane.reshape(1, -1)
    if plane.ndim != 2:
        raise BadRequest(f"an image needs a 2-D selection; this one has shape {list(array.shape)} (slice it, e.g. slice=0,:,:)")
    if plane.dtype.kind not in "biuf":
        raise BadRequest(f"an image needs numbers; this array is {plane.dtype}")
    return plane


def _downsample(plane: np.ndarray, max_size: int) -> np.ndarray:
    """Block-mean down to at most ``max_size`` per side (integer factor, NaN-aware)."""
    factor = max(1, -(-max(plane.shape) // max_size))
    if factor == 1:
        return plane.astype("f8")
    h, w = (plane.shape[0] // factor) * factor, (plane.shape[1] // factor) * factor
    h, w = max(h, factor), max(w, factor)
    cropped = plane[:h, :w].astype("f8")
    if cropped.shape != (h, w):
        return cropped[::factor, ::factor]
    with np.errstate(invalid="ignore"):
        return np.nanmean(cropped.reshape(h // factor, factor, w // factor, factor), axis=(1, 3))


def _scale(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``lo..hi`` mapped linearly onto 0..255 (clipped, rounded); NaN and infinities become 0."""
    span = hi - lo if hi != lo else 1.0
    with np.errstate(invalid="ignore", over="ignore"):  # a tiny span overflows to inf: clipped to 255
        index = np.clip((values - lo) / span * 255.0, 0, 255)
    return np.where(np.isfinite(values), index, 0).round().astype("u1")


def _to_u1(plane: np.ndarray, rescale: tuple[float, float] | None) -> np.ndarray:
    finite = np.isfinite(plane)
    if rescale is None:
        rescale = (float(plane[finite].min()), float(plane[finite].max())) if finite.any() else (0.0, 1.0)
    return _scale(plane, *rescale)


def _small_ints_to_u1(plane: np.ndarray, rescale: tuple[float, float] | None) -> np.ndarray:
    """The same mapping for 8- and 16-bit integers (detector frames), through a lookup table of
    the values between the frame's min and max: one gather instead of five float passes."""
    if plane.dtype.kind == "b":
        plane = plane.view("u1")
    if not plane.size:
        return np.zeros(plane.shape, dtype="u1")
    low, high = int(plane.min()), int(plane.max())
    lut = _scale(np.arange(low, high + 1, dtype="f8"), *(rescale or (float(low), float(high))))
    offsets = plane - plane.dtype.type(low) if plane.dtype.kind == "u" else np.subtract(plane, low, dtype=np.int32)
    return np.take(lut, offsets)


@register("array", "image/png", ("png",), ".png")
def to_png(array: np.ndarray, rescale: tuple[float, float] | None = None, colormap: str | None = None, max_size: int | None = None, **_: Any) -> bytes:
    """8-bit PNG: values mapped linearly from ``rescale`` (default: the finite min and max) to 0..255,
    through ``colormap`` (default gray), downsampled to ``max_size`` per side."""
    from PIL import Image

    luts = colormaps()
    name = (colormap or "gray").lower()
    if name not in luts:
        raise BadRequest(f"unknown colormap {colormap!r}; choose one of {sorted(luts)}")
    plane = _image_plane(array)
    if plane.dtype.kind in "biu" and plane.dtype.itemsize <= 2 and max(plane.shape) <= (max_size or PNG_MAX_SIZE):
        index = _small_ints_to_u1(plane, rescale)
    else:
        index = _to_u1(_downsample(plane, max_size or PNG_MAX_SIZE), rescale)
    image = Image.fromarray(index, mode="L") if name == "gray" else Image.fromarray(luts[name][index], mode="RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG", **PNG_ZLIB)
    return buf.getvalue()


@register("array", "text/html", ("html",), ".html")
def to_html(array: np.ndarray, **_: Any) -> bytes:
    rows = array.reshape(1, -1) if array.ndim < 2 else array.reshape(-1, array.shape[-1])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows[:1000].tolist())
    more = f"<p>{len(rows) - 1000} more rows not shown</p>" if len(rows) > 1000 else ""
    return f"<!doctype html><meta charset=utf-8><table>{body}</table>{more}".encode()
