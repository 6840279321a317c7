"""``RedisCache``: the cache port on Redis (ElastiCache in AWS), through a pooled ``redis-py`` client.

Short socket timeouts and no client-side retries: a cache that is slow is worse than none. After
a failure the adapter stops trying for ``retry_after_seconds`` (the service serves uncached in
the meantime), so a dead Redis costs one timeout per interval, not one per request.

It also reads the catalog generation the indexer bumps (``recs:catalog:generation``), which is
part of every cache key: a refresh invalidates every cached answer without scanning.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from recommender.errors import CacheUnavailableError
from recommender.ports import BackendStatus

GENERATION_KEY = "recs:catalog:generation"
KEY_PREFIX = "recs:cache:"


def redis_client(url: str, *, password: str | None = None, timeout_seconds: float = 0.25) -> Any:
    """A pooled ``redis.Redis`` for ``url``: short timeouts, no client-side retries, no connection until used."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        password=password,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )


class RedisCache:
    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        password: str | None = None,
        timeout_seconds: float = 0.25,
        retry_after_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        client: Any = None,
    ) -> None:
        if client is None:
            client = redis_client(url, password=password, timeout_seconds=timeout_seconds)
        self._client = client
        self._url = url
        self._retry_after = retry_after_seconds
        self._clock = clock
        self._down_until = 0.0
        self._last_error = ""
        self._lock = threading.Lock()

    def _call(self, op: str, fn: Callable[[], Any]) -> Any:
        import redis

        if self._retry_after > 0 and self._clock() < self._down_until:
            raise CacheUnavailableError(f"redis {op} skipped: it failed recently ({self._last_error})")
        try:
            result = fn()
        except (redis.RedisError, OSError) as exc:
            with self._lock:
                self._down_until = self._clock() + self._retry_after
                self._last_error = f"{type(exc).__name__}: {exc}"
            raise CacheUnavailableError(f"redis {op} failed: {self._last_error}") from exc
        return result

    def get(self, key: str) -> bytes | None:
        value = self._call("GET", lambda: self._client.get(key))
        return None if value is None else bytes(value)

    def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        if ttl_seconds <= 0:
            return
        self._call("SET", lambda: self._client.set(key, value, ex=ttl_seconds))

    def generation(self) -> int | None:
        raw = self._call("GET", lambda: self._client.get(GENERATION_KEY))
        try:
            return int(raw) if raw is not None else 0
        except ValueError:
            raise CacheUnavailableError(f"{GENERATION_KEY} holds {raw!r}, not an integer") from None

    def status(self) -> BackendStatus:
        import redis

        try:
            self._client.ping()
            generation = self._client.get(GENERATION_KEY)
        except (redis.RedisError, OSError) as exc:
            return BackendStatus(self.kind, False, f"{type(exc).__name__}: {exc}")
        with self._lock:
            self._down_until = 0.0  # it answers again: stop skipping
        return BackendStatus(self.kind, True, "", {"generation": int(generation or 0)})

    def reconnect(self, client: Any) -> None:
        """Use ``client`` from now on and close the old one's pool (a SnapStart restore: its connections, and the
        auth token it was built with, were captured in the snapshot); a failure recorded before is forgotten."""
        old, self._client = self._client, client
        with self._lock:
            self._down_until = 0.0
            self._last_error = ""
        with contextlib.suppress(Exception):  # sockets from the snapshot: nothing to keep, nothing to report
            old.close()

    def close(self) -> None:
        self._client.close()
