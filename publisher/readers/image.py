"""PNG and JPEG → one array (height, width[, band]) via Pillow (16-bit colour PNGs via imagecodecs).

Pillow decodes an image whole (PNG and JPEG cannot be read in parts), so its guard against
decompression bombs is kept: an image of more than twice ``Image.MAX_IMAGE_PIXELS`` (178,956,970
pixels) is skipped with the reason (a tiled TIFF of it is read in parts); one above the limit is
published with a warning in the report, not Pillow's on stderr.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SourceError, UnsupportedError
from ..jsonable import to_json
from ..nodes import ArrayNode, Node
from .base import Reader, register_reader


def _quiet(image: Any) -> None:
    """Pillow's warning past its limit, off for the process: the reader says it in the report
    instead (``catch_warnings`` per file would race between the build's threads). Added again at
    each image, which moves it first (``filterwarnings`` drops the same filter before adding it):
    a test harness or notebook that reset the filters meanwhile gets it back."""
    warnings.filterwarnings("ignore", category=image.DecompressionBombWarning)


def _png16(path: Path, image: Any) -> np.ndarray | None:
    """A PNG of 16-bit colour (RGB, RGBA, grey with alpha) decoded by imagecodecs: Pillow opens it
    in an 8-bit mode and keeps each value's high byte (55745 published as 217). None for others
    (16-bit grey Pillow reads whole)."""
    if image.format != "PNG" or image.mode not in ("RGB", "RGBA", "LA"):
        return None
    with open(path, "rb") as f:
        header = f.read(26)  # the signature, then IHDR: its length, name, width, height, bit depth, colour type
    if len(header) < 26 or header[12:16] != b"IHDR" or header[24] != 16:
        return None
    import imagecodecs

    return np.asarray(imagecodecs.png_decode(path.read_bytes()))


@register_reader
class ImageReader(Reader):
    name = "image"
    alone = True  # (one file, nothing it refers to)
    requires = ("PIL", "imagecodecs")
    extensions = (".png", ".jpg", ".jpeg")
    magic = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")
    stackable = True

    @contextlib.contextmanager
    def open(self, path: Path, key: str, options: Any) -> Iterator[Node]:
        from PIL import Image

        _quiet(Image)
        limit = Image.MAX_IMAGE_PIXELS
        try:
            with Image.open(path) as img:
                size = img.size
                data = _png16(path, img)
                if data is None:
                    data = np.asarray(img)
                metadata = {"mode": img.mode, **{str(k): to_json(v) for k, v in img.info.items() if isinstance(v, (str, int, float))}}
        except Image.DecompressionBombError as exc:
            raise UnsupportedError(f"{path.name}: too large to decode at once ({exc}); PNG and JPEG are decoded whole: "
                                   "store it as a tiled TIFF, which is read in parts") from None
        except Exception as exc:
            raise SourceError(f"{path}: not a readable image: {exc}") from exc
        dims = ["y", "x", "band"][: data.ndim]
        node = ArrayNode(key=key, metadata=metadata, dtype=data.dtype, shape=data.shape, read=lambda sel: np.asarray(data[sel], order="C"), dims=dims)
        if limit and size[0] * size[1] > limit:
            node.warn(f"{path.name}: {size[0]} x {size[1]} pixels, decoded whole ({data.nbytes / 2**20:.0f} MiB in memory): "
                      "a tiled TIFF of it would be read in parts")
        yield node
