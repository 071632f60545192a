"""Chunk shapes: keep sane source chunks, otherwise aim at the configured chunk size."""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, wait

#: Source chunks whose size lies in [target / SANE_BELOW, target * SANE_ABOVE] are kept as they are.
SANE_BELOW = 16
SANE_ABOVE = 2


def _nbytes(chunks: Sequence[int], itemsize: int) -> int:
    return math.prod(chunks) * itemsize


def auto_chunks(
    shape: Sequence[int],
    itemsize: int,
    target: int,
    source: Sequence[int] | None = None,
    requested: Sequence[int | None] | None = None,
) -> tuple[int, ...]:
    """The chunk shape for an array.

    ``requested`` (from a rule; None or -1 keeps a whole dimension) wins. Otherwise sane
    source chunks are kept. Otherwise, starting from the source chunks (or the whole
    array), large chunks are split, leading dimensions first and then the larger of the
    trailing ones, so frames become tiles; small chunks grow along their leading
    dimension by whole source chunks, so each output chunk reads whole source chunks.
    """
    shape = tuple(int(n) for n in shape)
    itemsize = max(int(itemsize), 1)
    if not shape:
        return ()
    if requested is not None:
        if len(requested) != len(shape):
            raise ValueError(f"chunks {list(requested)} have {len(requested)} dimensions, the array has {len(shape)}")
        return tuple(n if (c is None or c == -1) else max(1, min(int(c), max(n, 1))) for c, n in zip(requested, shape))
    cap = [max(n, 1) for n in shape]
    if 0 in shape:  # no values: one chunk along each dimension (each listed chunk size is a number in the index: 10**13 of them were 235 MB)
        return tuple(cap)
    chunks = [max(1, min(c, n)) for c, n in zip(source, cap)] if source else list(cap)
    size = _nbytes(chunks, itemsize)
    if source and target // SANE_BELOW <= size <= target * SANE_ABOVE:
        return tuple(chunks)
    while _nbytes(chunks, itemsize) > target:
        # split leading dims down to 1 while more than two remain, then the larger trailing dim
        leading = [i for i in range(len(chunks) - 2) if chunks[i] > 1]
        i = leading[0] if leading else max(range(len(chunks)), key=lambda d: chunks[d])
        if chunks[i] == 1:
            break
        chunks[i] = math.ceil(chunks[i] / 2)
    base = list(chunks)
    for i in range(len(chunks)):  # grow small chunks, first dimension first
        while _nbytes(chunks, itemsize) * 2 <= target and chunks[i] < cap[i]:
            chunks[i] = min(cap[i], chunks[i] + base[i] * max(1, chunks[i] // base[i]))
        if chunks[i] < cap[i]:
            break
    return tuple(chunks)


def slabs(shape: Sequence[int], chunks: Sequence[int], budget: int, itemsize: int) -> Iterator[tuple[slice, ...]]:
    """Chunk-aligned regions of at most ``budget`` bytes (at least one chunk), in C order.

    Writing several chunks per call amortises per-call overhead while memory stays bounded.
    """
    if not shape:
        yield ()
        return
    if any(n == 0 for n in shape):
        return
    block = list(chunks)
    for d in range(len(shape) - 1, -1, -1):  # widen the block from the last dimension back
        per = _nbytes(block, itemsize) // block[d]
        fits = max(chunks[d], (budget // max(per, 1)) // chunks[d] * chunks[d])
        block[d] = min(shape[d], fits)
        if block[d] < shape[d]:
            break
    counts = [math.ceil(n / b) for n, b in zip(shape, block)]
    for flat in range(math.prod(counts)):
        idx = []
        for c in reversed(counts):
            flat, r = divmod(flat, c)
            idx.append(r)
        idx.reverse()
        yield tuple(slice(i * b, min((i + 1) * b, n)) for i, b, n in zip(idx, block, shape))


def z_order(ny: int, nx: int) -> Iterator[tuple[int, int]]:
    """The cells of an ``ny`` x ``nx`` grid in Z (Morton) order: every aligned 2^k x 2^k square of
    cells comes whole, one after the other (quadrants split depth first; the walk holds one
    quadrant per level, whatever the grid's size)."""
    size = 1
    while size < max(ny, nx):
        size *= 2
    stack = [(0, 0, size)]
    while stack:
        y, x, s = stack.pop()
        if y >= ny or x >= nx:
            continue
        if s == 1:
            yield y, x
            continue
        h = s // 2
        stack += [(y + h, x + h, h), (y + h, x, h), (y, x + h, h), (y, x, h)]  # popped top-left first


def tiles(shape: Sequence[int], chunks: Sequence[int], budget: int, itemsize: int) -> Iterator[tuple[slice, ...]]:
    """Chunk-aligned regions of an image for its pyramid: squares of 2^k x 2^k chunks of the last
    two dimensions (as many as ``budget`` bytes hold, at least one chunk), in Z order within each
    chunk of the leading dimensions. A level above reduces whole aligned squares of chunks, so each
    of its chunks is complete soon after its first part arrives: the levels hold a few chunks
    each in progress, not a chunk row as wide as the image (:func:`slabs`' C order)."""
    if len(shape) < 2 or any(n == 0 for n in shape):  # not an image: as slabs make it (nothing, or a line)
        yield from slabs(shape, chunks, budget, itemsize)
        return
    side = 1
    while _nbytes(chunks, itemsize) * (2 * side) ** 2 <= budget:
        side *= 2
    cy, cx = chunks[-2] * side, chunks[-1] * side
    lead = [range(math.ceil(n / c)) for n, c in zip(shape[:-2], chunks[:-2])]
    for index in itertools.product(*lead):
        head = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(index, chunks[:-2], shape[:-2]))
        for y, x in z_order(math.ceil(shape[-2] / cy), math.ceil(shape[-1] / cx)):
            yield (*head, slice(y * cy, min((y + 1) * cy, shape[-2])), slice(x * cx, min((x + 1) * cx, shape[-1])))


@contextlib.contextmanager
def no_numpy_hugepages() -> Iterator[None]:
    """Slabs (16 MB arrays, freed within a second) without numpy's transparent-hugepage advice.
    Once the page cache has fragmented memory, each hugepage fault compacts memory in the kernel:
    measured here, system time of a 1 GiB build went from 0.7 s to 2.4 s. Restored afterwards."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    setter = getattr(core.multiarray, "_set_madvise_hugepage", None)
    previous = setter(False) if setter else None
    try:
        yield
    finally:
        if setter:
            setter(previous)


#: The most chunk objects one published array may have: 2**24 (a petabyte in 64 MiB chunks). An
#: HDF5 file of 8 KB may declare a (2**30, 2**30) dataset with no chunk written: each chunk of it
#: was written (its fill value), and the store filled with millions of files until the disk was.
MAX_CHUNKS = 2**24


def bounded(shape: tuple[int, ...], chunks: tuple[int, ...], what: str) -> None:
    """Refuse an array of more than :data:`MAX_CHUNKS` chunks, naming its shape (a SourceError: its file's failure)."""
    from ..errors import SourceError

    along = [math.ceil(n / c) for n, c in zip(shape, chunks)]
    count = max(math.prod(along), sum(along)) if shape else 1  # (the sum: each dimension's chunk sizes are listed, even when another is 0)
    if count > MAX_CHUNKS:
        raise SourceError(f"{what}: its shape {tuple(shape)} in chunks of {tuple(chunks)} makes {count:,} chunks, more than the "
                          f"{MAX_CHUNKS:,} one published array may have (a header that claims more than the file holds?)")


def run_slabs(pool: Executor, slots: threading.Semaphore, write: Callable[[tuple[slice, ...]], tuple[int, int | None]],
              regions: Iterable[tuple[slice, ...]]) -> tuple[int, int | None]:
    """``write`` each region on ``pool``, reading the next only once one of ``slots`` is free
    (bounded memory); the (bytes, longest string) of all, summed as they finish. Only the slabs
    in flight are kept (every slab's future kept to the end took ~1 KB a slab: 1 GB for the
    million slabs of a 2 KB file declaring 10**12 values), and a slab's failure stops the reading
    of more; after a failure no slab still writes once this returns (the caller deletes what was
    written)."""
    futures: list[Future[tuple[int, int | None]]] = []
    total, longest = 0, None

    def collect(everything: bool) -> None:
        nonlocal futures, total, longest
        running = []
        for f in futures:
            if everything or f.done():
                n, m = f.result()
                total += n
                if m is not None:
                    longest = m if longest is None else max(longest, m)
            else:
                running.append(f)
        futures = running

    try:
        for sel in regions:
            slots.acquire()
            future = pool.submit(write, sel)
            future.add_done_callback(lambda _: slots.release())
            futures.append(future)
            collect(everything=False)
        collect(everything=True)
    finally:
        for f in futures:
            f.cancel()
        wait(futures)
    return total, longest
