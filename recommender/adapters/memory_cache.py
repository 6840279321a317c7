"""``MemoryCache``: an in-process LRU with a time to live, the embedded default of the cache port.

Each Lambda execution environment (or local server) has its own; there is no shared catalog
generation, so keys take the generation from the index and old entries age out by TTL and LRU.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from recommender.ports import BackendStatus


class MemoryCache:
    kind = "memory"

    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        now = self._clock()
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return None
            expires, value = entry
            if expires <= now:
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return value

    def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        if ttl_seconds <= 0:
            return
        expires = self._clock() + ttl_seconds
        with self._lock:
            self._data[key] = (expires, value)
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def generation(self) -> int | None:
        return None

    def status(self) -> BackendStatus:
        with self._lock:
            size = len(self._data)
        return BackendStatus(self.kind, True, "", {"entries": size, "max_entries": self._max})

    def clear(self) -> None:
        """Drop every entry (a SnapStart restore: entries made before the snapshot aged on another clock)."""
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)
