"""Redis killed while the API is under load: answers continue uncached, and cached again when it returns."""

from __future__ import annotations

import time

from bench.load import HttpClient, hits_mix, pool_of_requests
from core.bundle import Bundle
from tests.faults.conftest import N_MOVIES, under_load


def test_redis_killed_during_load(fault_bundle: Bundle, redis_server, serve) -> None:
    # GIVEN the API over HTTP on Redis, under load that mostly repeats 20 requests (cache hits)
    server = serve(fault_bundle, redis_url=redis_server.url, redis_retry_after_seconds=0.2)
    ids = list(range(1, N_MOVIES + 1))
    mix = hits_mix(pool_of_requests(ids, 20), ids, hit_share=0.9)
    health = HttpClient(server.url)
    with under_load(server.url, mix) as load:
        start = time.monotonic()
        load.wait_for("answers from the Redis cache", lambda s: sum(x.cached is True for x in s) >= 50)
        # WHEN Redis is killed (SIGKILL, no shutdown) in the middle of it
        redis_server.stop()
        killed = time.monotonic()
        load.wait_for_answers(150, after=killed, what="answers with Redis down")
        status, during = health.request("GET", "/health")
        # ... and comes back, empty, on the same port
        restarting = time.monotonic()
        redis_server.start()
        back = time.monotonic()
        load.wait_for("answers from the Redis cache again",
                      lambda s: sum(x.cached is True and x.started >= back for x in s) >= 50)
    health.close()

    # THEN not one request failed: no 5xx, no error, no refused connection
    assert load.samples and {s.status for s in load.samples} == {200}, {s.error for s in load.samples}
    before = load.between(start, killed)
    assert any(s.cached for s in before)
    # while Redis was down, everything was computed (nothing can come from a dead Redis) ...
    down = load.between(killed, restarting)
    assert len(down) >= 100 and not any(s.cached for s in down)
    # ... and /health said the cache is down but the API serves
    assert status == 200 and during["status"] == "degraded"
    assert during["cache"]["ok"] is False and during["index"]["ok"] is True
    # AND after Redis returned, answers were cached and served from it again
    assert sum(bool(s.cached) for s in load.since(back)) >= 50
    status, after = HttpClient(server.url).request("GET", "/health")
    assert status == 200 and after["status"] == "ok"
