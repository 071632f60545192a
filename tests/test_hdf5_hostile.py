"""Hostile but valid HDF5 files a review helper built (the h5py path): memory stays bounded and
time stays in proportion to what a file stores, whatever it declares; what cannot be published is
refused saying why."""

from __future__ import annotations

import threading
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator

import pytest

from publisher.writers.chunking import run_slabs


def test_slabs_are_summed_as_they_finish_not_kept_to_the_end() -> None:
    """Every slab's future was kept until the array's end (~1 KB each): 1 GB for the million slabs
    of a 2 KB file declaring 10**12 values. 40,000 slabs now hold what a few in flight do."""
    slabs = [(slice(i, i + 1),) for i in range(40_000)]
    with ThreadPoolExecutor(2) as pool:
        tracemalloc.start()
        try:
            total, longest = run_slabs(pool, threading.Semaphore(4), lambda sel: (8, None), iter(slabs))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert (total, longest) == (8 * 40_000, None)
    assert peak < 4 * 2**20, peak  # (kept to the end: ~40 MB)


def test_a_failing_slab_stops_the_reading_of_more() -> None:
    pulled = 0

    def regions() -> Iterator[tuple[slice, ...]]:
        nonlocal pulled
        for i in range(10_000):
            pulled += 1
            yield (slice(i, i + 1),)

    def write(sel: tuple[slice, ...]) -> tuple[int, int | None]:
        if sel[0].start == 3:
            raise ValueError("a damaged chunk")
        return 1, len(str(sel[0].start))

    with ThreadPoolExecutor(2) as pool, pytest.raises(ValueError, match="a damaged chunk"):
        run_slabs(pool, threading.Semaphore(4), write, regions())
    assert pulled < 100  # (all 10,000 were read before the failure was seen)


def test_the_longest_string_is_the_longest_of_all_slabs() -> None:
    with ThreadPoolExecutor(2) as pool:
        found = run_slabs(pool, threading.Semaphore(2), lambda sel: (1, sel[0].start % 7), ((slice(i, i + 1),) for i in range(100)))
    assert found == (100, 6)
