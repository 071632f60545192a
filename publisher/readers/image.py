"""PNG and JPEG → one array (height, width[, band]) via Pillow."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SourceError
from ..jsonable import to_json
from ..nodes import ArrayNode, Node
from .base import Reader, register_reader


@register_reader
class ImageReader(Reader):
    name = "image"
    requires = ("PIL",)
    extensions = (".png", ".jpg", ".jpeg")
    magic = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")
    stackable = True

    @contextlib.contextmanager
    def open(self, path: Path, key: str, options: Any) -> Iterator[Node]:
        from PIL import Image

        try:
            with Image.open(path) as img:
                data = np.asarray(img)
                metadata = {"mode": img.mode, **{str(k): to_json(v) for k, v in img.info.items() if isinstance(v, (str, int, float))}}
        except Exception as exc:
            raise SourceError(f"{path}: not a readable image: {exc}") from exc
        dims = ["y", "x", "band"][: data.ndim]
        yield ArrayNode(key=key, metadata=metadata, dtype=data.dtype, shape=data.shape, read=lambda sel: np.asarray(data[sel], order="C"), dims=dims)
