"""Arrays as PNG: previews and downloads of a 2-D plane (values mapped to 8 bits by a robust
contrast, on a linear or log scale, through a colormap), or of a colour image (the last
dimension of 3 or 4: RGB, RGBA), each downsampled to at most ``max_size`` a side."""

from __future__ import annotations

import io
import math
import warnings
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


def _colour_image(array: np.ndarray) -> np.ndarray | None:
    """The (height, width, 3 or 4) colour image an array is (leading length-1 dimensions
    dropped: RGB, RGBA, as a colour PNG or TIFF is published), else None."""
    image = array
    while image.ndim > 3 and image.shape[0] == 1:
        image = image[0]
    if image.ndim == 3 and image.shape[-1] in (3, 4) and image.dtype.kind in "biuf" and image.size:
        return image
    return None


def _colour_png(image: np.ndarray, rescale: tuple[float, float] | None, max_size: int, log: bool,
                report: dict[str, str] | None) -> bytes:
    """A colour PNG: 8-bit channels as they are (unless ``rescale`` says otherwise), others
    mapped to 0..255 by one range for every channel (a colour image's balance kept), each channel
    downsampled as a plane is. It was a 400 ("an image needs a 2-D selection"), where Tiled draws it."""
    from PIL import Image

    values = image.astype("f8")
    if image.dtype == np.uint8 and rescale is None and not log:
        bounds: tuple[float, float] = (0.0, 255.0)
        pixels = image if max(image.shape[:2]) <= max_size else np.dstack([_downsample(values[..., c], max_size) for c in range(image.shape[-1])])
        pixels = np.clip(np.nan_to_num(pixels), 0, 255).astype("u1")
    else:
        channels = [_downsample(values[..., c], max_size) for c in range(image.shape[-1])]
        bounds = rescale or _auto_range(np.concatenate([c[np.isfinite(c)] for c in channels[:3]]), log)
        pixels = np.dstack([_mapped(c, *bounds, log) for c in channels])
    if report is not None:
        report["rescale"] = ",".join(_number(b, image.dtype) for b in bounds)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels), mode="RGB" if image.shape[-1] == 3 else "RGBA").save(buf, format="PNG", **PNG_ZLIB)
    return buf.getvalue()


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
    if (colour := _colour_image(array)) is not None:
        if colormap:
            raise BadRequest(f"a colour image (shape {list(array.shape)}: its last dimension the channels) has its own colours: "
                             "leave out colormap, or slice one channel (e.g. slice=:,:,0)")
        return _colour_png(colour, rescale, max_size or PNG_MAX_SIZE, log, report)
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
