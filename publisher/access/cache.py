"""Decoded published data kept by a warm process (a Lambda between invocations, ``publish serve``).

Published objects never change (a release writes new keys), so an entry is never stale: a
preview re-rendered with another colormap, tiles of one chunk, or a table read again as CSV
skip reading and decoding. Least recently used out first, up to a byte budget, which the
handlers set from their settings (``SKYSHELF_DECODED_CACHE_BYTES``) with :meth:`DecodedCache.resize`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any


class DecodedCache:
    """Values with an ``nbytes`` (numpy arrays, pyarrow tables), keyed by (store, object key)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.size = 0
        #: Lookups answered from the cache and not, since the process started (the handlers'
        #: metrics report each request's share: ``handlers.observe``).
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
            return value

    def put(self, key: tuple[str, str], value: Any) -> None:
        nbytes = int(value.nbytes)
        if nbytes > self.capacity // 4:  # one big value would flush everything else
            return
        if hasattr(value, "flags"):
            value.flags.writeable = False  # shared by every request that reads it
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self.size += nbytes
            self._trim()

    def resize(self, capacity: int) -> None:
        """A new budget (the oldest values go until it holds; 0 turns the cache off)."""
        if capacity != self.capacity:
            with self._lock:
                self.capacity = capacity
                self._trim()

    def _trim(self) -> None:
        while self.size > self.capacity:
            _, old = self._items.popitem(last=False)
            self.size -= int(old.nbytes)


#: The default budget: 64 MiB.
DECODED_BYTES = 64 * 2**20
#: One cache per process for arrays' chunks and tables' partitions, sized by the handlers from
#: their settings on each request's first use of data (a no-op while the budget is unchanged).
DECODED = DecodedCache(DECODED_BYTES)
