"""Decoded published data kept by a warm process (a Lambda between invocations, ``publish serve``).

Published objects never change (a release writes new keys), so an entry is never stale: a
preview re-rendered with another colormap, tiles of one chunk, or a table read again as CSV
skip reading and decoding. Least recently used out first, up to a byte budget.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any


class DecodedCache:
    """Values with an ``nbytes`` (numpy arrays, pyarrow tables), keyed by (store, object key)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.size = 0
        self._items: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
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
            while self.size > self.capacity:
                _, old = self._items.popitem(last=False)
                self.size -= int(old.nbytes)


#: One budget per process for arrays' chunks and tables' partitions; ``SKYSHELF_DECODED_CACHE_BYTES``
#: sizes it (0 turns it off).
DECODED = DecodedCache(int(os.environ.get("SKYSHELF_DECODED_CACHE_BYTES", 64 * 2**20)))
