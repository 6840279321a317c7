"""The Redis fixtures start a real redis-server that tests can stop and start again."""

from __future__ import annotations

import pytest
import redis

from tests.support.redis_server import RedisServer


def test_redis_url_is_a_running_empty_server(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.ping()
    assert client.dbsize() == 0
    client.set("recs:harness", "1")
    assert client.get("recs:harness") == b"1"


def test_each_test_starts_with_an_empty_server(redis_url: str) -> None:
    assert redis.Redis.from_url(redis_url).get("recs:harness") is None


def test_stop_refuses_connections_and_start_comes_back_on_the_same_url(redis_server: RedisServer) -> None:
    url = redis_server.url
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    client.set("k", "v")
    redis_server.stop()
    assert not redis_server.running
    with pytest.raises(redis.exceptions.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
    redis_server.start()
    assert redis_server.url == url
    fresh = redis.Redis.from_url(url)
    assert fresh.ping()
    assert fresh.get("k") is None  # no persistence: a restart is an empty server


def test_a_test_that_leaves_the_server_stopped(redis_server: RedisServer) -> None:
    redis_server.stop()


def test_gets_it_running_again_in_the_next_test(redis_server: RedisServer) -> None:
    assert redis_server.running
    assert redis.Redis.from_url(redis_server.url).ping()


def test_a_private_server_as_context_manager() -> None:
    with RedisServer() as server:
        assert redis.Redis.from_url(server.url).ping()
    assert not server.running
