"""ech.dns.cache: TTL expiry with an injected clock."""

from __future__ import annotations

import pytest

from ech.dns.cache import CachedValue, TTLCache
from tests.unit.dnsrecords.dns_fakes import FakeClock


def test_hit_reports_remaining_ttl_then_expires() -> None:
    clock = FakeClock()
    cache: TTLCache[str, int] = TTLCache(clock=clock)
    cache.put("a", 1, 300)
    assert cache.get("a") == CachedValue(1, 300)
    clock.now += 100.5
    assert cache.get("a") == CachedValue(1, 199)  # whole seconds, rounded down
    clock.now += 199
    assert cache.get("a") is None  # less than a second left counts as expired
    assert len(cache) == 0


def test_zero_ttl_is_not_stored() -> None:
    """RFC 1035 §3.2.1: TTL 0 means use once, do not cache."""
    cache: TTLCache[str, int] = TTLCache(clock=FakeClock())
    cache.put("a", 1, 0)
    assert cache.get("a") is None


def test_put_replaces() -> None:
    clock = FakeClock()
    cache: TTLCache[str, int] = TTLCache(clock=clock)
    cache.put("a", 1, 10)
    cache.put("a", 2, 20)
    assert cache.get("a") == CachedValue(2, 20)


def test_max_ttl_clamps() -> None:
    cache: TTLCache[str, int] = TTLCache(clock=FakeClock(), max_ttl=60)
    cache.put("a", 1, 86400)
    assert cache.get("a") == CachedValue(1, 60)


def test_capacity_evicts_expired_first_then_oldest() -> None:
    clock = FakeClock()
    cache: TTLCache[str, int] = TTLCache(clock=clock, max_entries=2)
    cache.put("short", 1, 5)
    cache.put("long", 2, 100)
    clock.now += 10
    cache.put("new", 3, 100)  # "short" expired: it goes, "long" stays
    assert cache.get("long") is not None
    cache.put("newer", 4, 100)  # full of live entries: the oldest goes
    assert cache.get("long") is None
    assert cache.get("new") is not None
    assert cache.get("newer") is not None


def test_disabled_cache() -> None:
    cache: TTLCache[str, int] = TTLCache(max_entries=0)
    cache.put("a", 1, 100)
    assert cache.get("a") is None


def test_clear() -> None:
    cache: TTLCache[str, int] = TTLCache(clock=FakeClock())
    cache.put("a", 1, 100)
    cache.clear()
    assert cache.get("a") is None


def test_negative_limits_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        TTLCache(max_entries=-1)
