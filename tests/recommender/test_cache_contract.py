"""The cache contract, run against the in-process LRU and Redis (a real redis-server)."""

from __future__ import annotations

import pytest

from recommender.adapters.memory_cache import MemoryCache
from recommender.adapters.redis_cache import GENERATION_KEY, RedisCache
from recommender.ports import Cache


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def cache(request: pytest.FixtureRequest) -> Cache:
    if request.param == "memory":
        return MemoryCache(max_entries=100)
    url: str = request.getfixturevalue("redis_url")
    return RedisCache(url, timeout_seconds=1.0, retry_after_seconds=0)


def test_a_miss_then_a_hit(cache: Cache) -> None:
    assert cache.get("recs:cache:m:0:a") is None
    cache.set("recs:cache:m:0:a", b"\x00binary\xffvalue", 60)
    assert cache.get("recs:cache:m:0:a") == b"\x00binary\xffvalue"


def test_set_overwrites(cache: Cache) -> None:
    cache.set("k", b"one", 60)
    cache.set("k", b"two", 60)
    assert cache.get("k") == b"two"


def test_a_zero_ttl_stores_nothing(cache: Cache) -> None:
    cache.set("k0", b"v", 0)
    assert cache.get("k0") is None


def test_status_answers(cache: Cache) -> None:
    status = cache.status()
    assert status.ok
    assert status.kind == cache.kind


def test_memory_generation_is_not_shared() -> None:
    assert MemoryCache().generation() is None


def test_redis_generation_follows_the_indexers_counter(redis_url: str) -> None:
    import redis

    cache = RedisCache(redis_url)
    assert cache.generation() == 0
    client = redis.Redis.from_url(redis_url)
    client.incr(GENERATION_KEY)
    client.incr(GENERATION_KEY)
    assert cache.generation() == 2


def test_redis_entries_carry_the_ttl(redis_url: str) -> None:
    import redis

    RedisCache(redis_url).set("recs:cache:m:1:x", b"v", 120)
    ttl = redis.Redis.from_url(redis_url).ttl("recs:cache:m:1:x")
    assert 0 < ttl <= 120


def test_memory_entries_expire_after_their_ttl() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock)
    cache.set("k", b"v", 30)
    clock.now += 29.9
    assert cache.get("k") == b"v"
    clock.now += 0.2
    assert cache.get("k") is None
    assert len(cache) == 0


def test_memory_evicts_the_least_recently_used() -> None:
    cache = MemoryCache(max_entries=3)
    for key in "abc":
        cache.set(key, key.encode(), 60)
    assert cache.get("a") == b"a"  # a is now the most recent
    cache.set("d", b"d", 60)
    assert cache.get("b") is None
    assert [cache.get(k) for k in "acd"] == [b"a", b"c", b"d"]


def test_memory_refuses_a_zero_capacity() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemoryCache(max_entries=0)


