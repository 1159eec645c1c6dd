"""A small TTL cache for DNS answers (RFC 9460 §5: clients SHOULD cache).

Entries expire when their TTL runs out (RFC 1035 §3.2.1, RFC 2308 §5 for
negative answers); a read reports the *remaining* TTL, so what is built
from a cached answer is never cached downstream for longer than the
original. The clock is injectable for tests.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["CachedValue", "TTLCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True)
class CachedValue(Generic[V]):
    """A cache hit.

    Attributes:
        value: What was stored.
        ttl: Whole seconds left before it expires (at least 1 on a hit).
    """

    value: V
    ttl: int


class TTLCache(Generic[K, V]):
    """Values that expire after their TTL; thread-safe.

    Args:
        clock: Monotonic seconds; ``time.monotonic`` by default.
        max_entries: Capacity. When full, expired entries go first, then
            the least recently stored. ``0`` disables caching.
        max_ttl: TTLs above this are clamped (RFC 2181 §8 allows capping).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 1024,
        max_ttl: int = 86400,
    ) -> None:
        if max_entries < 0 or max_ttl < 0:
            raise ValueError("max_entries and max_ttl must not be negative")
        self._clock = clock
        self._max_entries = max_entries
        self._max_ttl = max_ttl
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> CachedValue[V] | None:
        """The live value for ``key`` and its remaining TTL, else ``None``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            value, expires = entry
            remaining = int(expires - self._clock())
            if remaining <= 0:
                del self._entries[key]
                return None
            return CachedValue(value, remaining)

    def put(self, key: K, value: V, ttl: int) -> None:
        """Store ``value`` for ``ttl`` seconds; a TTL of 0 or less stores nothing.

        A TTL of zero means "use once, do not cache" (RFC 1035 §3.2.1).
        """
        if ttl <= 0 or self._max_entries == 0:
            return
        with self._lock:
            now = self._clock()
            self._entries.pop(key, None)
            if len(self._entries) >= self._max_entries:
                for stale in [k for k, (_, exp) in self._entries.items() if exp <= now]:
                    del self._entries[stale]
            while len(self._entries) >= self._max_entries:
                self._entries.popitem(last=False)
            self._entries[key] = (value, now + min(ttl, self._max_ttl))

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        """Entries stored, expired ones included until next touched."""
        return len(self._entries)
