"""The run lock: one contract, three backends (Redis, an OpenSearch document, a file in the store)."""

from __future__ import annotations

import threading
import time

import pytest

from indexer.errors import LockHeldError, LockLostError
from indexer.locks import FileLock, OpenSearchLock, RedisLock


class Clock:
    """A clock the test moves by hand (the TTL logic of the OpenSearch and file locks reads it)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["redis", pytest.param("opensearch", marks=pytest.mark.opensearch), "file"])
def make_lock(request, tmp_path):
    """``make_lock(job, ttl=..., wait=..., clock=...)`` on one shared backend."""
    kind = request.param
    if kind == "redis":
        import redis

        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))

        def make(job="run", **kw):
            return RedisLock(client, job=job, **kw)
    elif kind == "opensearch":
        from opensearchpy import OpenSearch

        client = OpenSearch(hosts=[request.getfixturevalue("opensearch_url")])
        name = request.getfixturevalue("unique_name")("lock")

        def make(job="run", **kw):
            return OpenSearchLock(client, name, job=job, **kw)
    else:

        def make(job="run", **kw):
            return FileLock(tmp_path / "store", job=job, **kw)

    make.kind = kind
    return make


def test_one_holder_at_a_time(make_lock):
    first, second = make_lock("rebuild", ttl=30), make_lock("update", ttl=30)
    with first:
        with pytest.raises(LockHeldError) as caught:
            second.acquire()
        assert first.owner in str(caught.value) and "expires in" in str(caught.value)
        owner, left = second.holder()
        assert owner == first.owner and 0 < left <= 30
        second.release()  # not held: releasing does nothing to the other run's lock
        assert second.holder()[0] == first.owner
    assert first.holder() is None
    with second:
        assert second.holder()[0] == second.owner


def test_heartbeat_extends_and_detects_a_lost_lock(make_lock):
    if make_lock.kind == "redis":
        clock = time.time
        ttl = 0.3
    else:
        clock = Clock()
        ttl = 30.0
    lock = make_lock("rebuild", ttl=ttl, clock=clock)
    lock.acquire()
    lock.heartbeat(force=True)
    assert lock.holder()[1] > ttl * 0.5
    # The lock expires (the run stalled) and another run takes it.
    if make_lock.kind == "redis":
        time.sleep(ttl + 0.1)
    else:
        clock.now += ttl + 1
    thief = make_lock("other", ttl=ttl * 30, clock=clock)
    thief.acquire()
    with pytest.raises(LockLostError, match="taken by another run"):
        lock.heartbeat(force=True)
    lock.release()  # must not drop the thief's lock
    assert thief.holder()[0] == thief.owner
    thief.release()


def test_heartbeat_only_writes_after_a_third_of_the_ttl(make_lock):
    clock = Clock() if make_lock.kind != "redis" else time.time
    lock = make_lock("rebuild", ttl=60.0, clock=clock)
    with lock:
        before = lock._last_extend
        lock.heartbeat()
        assert lock._last_extend == before
        if make_lock.kind != "redis":
            clock.now += 21
            lock.heartbeat()
            assert lock._last_extend == clock.now


def test_a_waiting_run_gets_the_lock_when_it_is_released(make_lock):
    first = make_lock("rebuild", ttl=30)
    first.acquire()
    timer = threading.Timer(0.3, first.release)
    timer.start()
    second = make_lock("update", ttl=30, wait=10)
    started = time.monotonic()
    second.acquire()
    assert second.holder()[0] == second.owner
    assert time.monotonic() - started >= 0.25
    second.release()
    timer.join()


def test_an_expired_lock_is_taken_over(make_lock):
    clock = Clock() if make_lock.kind != "redis" else time.time
    ttl = 30.0 if make_lock.kind != "redis" else 0.3
    crashed = make_lock("crashed", ttl=ttl, clock=clock)
    crashed.acquire()  # and never released
    if make_lock.kind == "redis":
        time.sleep(ttl + 0.1)
    else:
        clock.now += ttl + 0.5
    fresh = make_lock("rebuild", ttl=30, clock=clock)
    fresh.acquire()
    assert fresh.holder()[0] == fresh.owner
    fresh.release()
