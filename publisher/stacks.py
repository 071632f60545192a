"""Stack single-array files (TIFF frames, PNGs, .npy) into one array along a new first axis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import SourceError, UnsupportedError
from .nodes import ArrayNode
from .readers import Reader


def stack_arrays(reader: type[Reader], paths: list[Path], key: str, options: Any) -> ArrayNode:
    """An array of shape ``(len(paths), *frame_shape)``; each file is opened only while read."""
    shapes = []
    first: ArrayNode | None = None
    for i, path in enumerate(paths):
        try:
            with _frame(reader).open(path, key, options) as node:
                if not isinstance(node, ArrayNode):
                    raise SourceError(f"{path}: a stacked file must hold one array, it holds a {node.family.value}")
                shapes.append((tuple(node.shape), node.dtype))
                if first is None:
                    first = node
        except UnsupportedError as exc:
            # a frame the reader cannot take among frames it reads is a broken frame, not a format
            # the build leaves out: a failure (the stack was skipped whole, the build "succeeded")
            if i == 0 and not _reads(reader, paths[1:2], key, options):
                raise  # (its first two frames alike: the stack's format, skipped with the reason)
            raise SourceError(f"{path}: frame {i} of the stack cannot be read as the others are: {exc}") from exc
    assert first is not None
    if len(set(shapes)) > 1:
        odd = next(p for p, s in zip(paths, shapes) if s != shapes[0])
        raise SourceError(f"{odd}: frame shape/dtype {shapes[paths.index(odd)]} differs from {paths[0]} {shapes[0]}")
    frame_shape, dtype = shapes[0]

    def read(sel: tuple[slice, ...]) -> np.ndarray:
        frames = range(*sel[0].indices(len(paths)))
        out = np.empty((len(frames), *[len(range(*s.indices(n))) for s, n in zip(sel[1:], frame_shape)]), dtype=dtype)
        for i, frame in enumerate(frames):
            try:
                with _frame(reader).open(paths[frame], key, options) as node:
                    out[i] = node.read(sel[1:])  # type: ignore[misc]
            except (ValueError, RuntimeError, LookupError, EOFError, OSError) as exc:
                if str(paths[frame]) in str(exc) and not isinstance(exc, UnsupportedError):  # (a reader's SourceError names its file)
                    raise
                # which of hundreds of frames is broken (the stack's source is its first file, "+199")
                raise SourceError(f"{paths[frame]}: frame {frame} of the stack: {type(exc).__name__}: {exc}") from exc
        return out

    dims = ["frame", *(first.dims or [f"dim_{i}" for i in range(len(frame_shape))])]
    metadata = dict(first.metadata)
    metadata["frames"] = [p.name for p in paths]
    chunks = (1, *first.source_chunks) if first.source_chunks else None
    return ArrayNode(key=key, metadata=metadata, specs=first.specs, dtype=dtype, shape=(len(paths), *frame_shape), read=read, dims=dims, source_chunks=chunks)


def _reads(reader: type[Reader], paths: list[Path], key: str, options: Any) -> bool:
    """Whether the reader opens each of ``paths`` as a frame (none: False)."""
    try:
        for path in paths:
            with _frame(reader).open(path, key, options):
                pass
    except (UnsupportedError, SourceError, ValueError, RuntimeError, LookupError, EOFError, OSError):
        return False
    return bool(paths)


def _frame(reader: type[Reader]) -> Reader:
    """A reader opening one frame of the stack: the file as it reads, not as part of a multi-file
    series another file would publish (a stack of an OME series' files was skipped whole)."""
    opened = reader()
    opened.stacked = True
    return opened
