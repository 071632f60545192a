"""One small thread pool for splitting a single answer's work over the cores.

A Lambda with 1,769 MB or more has two or more vCPUs; the libraries doing the heavy part of an
answer (pyarrow's CSV writer, zstd) release the GIL, so pieces of one answer run side by side.
Only the standard library is imported here.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def cores() -> int:
    """The CPUs this process may use (a Lambda's vCPUs)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _shared_pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=cores(), thread_name_prefix="skyshelf-part")
        return _pool


def map_parts(fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
    """``fn(x)`` for each item, yielded in order as each is done; the items run on the pool's
    threads when there are several and more than one core (the work in ``fn`` should release
    the GIL). Tasks never submit further tasks, so callers on any thread (the local server's
    executor included) cannot deadlock the pool."""
    if len(items) < 2 or cores() < 2:
        return (fn(x) for x in items)
    return _shared_pool().map(fn, items)


def spans(total: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous ``(start, stop)`` ranges covering ``range(total)``, as equal as can be."""
    parts = max(1, min(parts, total)) if total else 1
    step, extra = divmod(total, parts)
    out, start = [], 0
    for i in range(parts):
        stop = start + step + (1 if i < extra else 0)
        out.append((start, stop))
        start = stop
    return out
