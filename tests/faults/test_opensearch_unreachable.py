"""OpenSearch unreachable while the API is under load: the documented fallback or a clear 503, then recovery."""

from __future__ import annotations

import time

import pytest

from bench.load import HttpClient, misses_mix
from core.bundle import Bundle
from tests.faults.conftest import N_MOVIES, under_load
from tests.support.opensearch_fixtures import create_movie_index

pytestmark = pytest.mark.opensearch


@pytest.mark.outage_emulation
@pytest.mark.parametrize("fallback", ["popular", "none"])
def test_opensearch_unreachable_during_load(fault_bundle: Bundle, opensearch, unique_name, serve,
                                            fallback: str) -> None:
    # GIVEN the API on OpenSearch holding the bundle's movies, under load where every request is new
    alias = unique_name("movies")
    create_movie_index(opensearch.url, unique_name("movies-v1"), alias, fault_bundle.catalog,
                       fault_bundle.movie_vectors, model_version=fault_bundle.model_version)
    server = serve(fault_bundle, opensearch_url=opensearch.url, opensearch_alias=alias, index_fallback=fallback,
                   opensearch_max_retries=0, opensearch_timeout_seconds=5.0)
    ids = list(range(1, N_MOVIES + 1))
    allowed = {200} if fallback == "popular" else {200, 503}
    health = HttpClient(server.url)
    with under_load(server.url, misses_mix(ids), clients=3, expected=allowed) as load:
        start = time.monotonic()
        load.wait_for_answers(20, after=start, what="answers from OpenSearch")
        # WHEN OpenSearch stops answering (its port refuses connections)
        opensearch.proxy.stop()
        down = time.monotonic()
        load.wait_for_answers(60, after=down, what="answers with OpenSearch down")
        health_status, during = health.request("GET", "/health")
        restarting = time.monotonic()
        opensearch.proxy.start()
        back = time.monotonic()
        load.wait_for("personalized answers again",
                      lambda s: sum(x.status == 200 and not x.fallback and x.started >= back for x in s) >= 20)
    health.close()

    before, outage, after = load.between(start, down), load.between(down, restarting), load.since(back)
    # THEN before the outage every answer came from OpenSearch
    assert before and all(s.status == 200 and s.fallback is None for s in before)
    # during it, every answer was the documented one: the popular fallback, or 503 index_unavailable
    assert len(outage) >= 50
    if fallback == "popular":
        assert all(s.status == 200 and s.fallback == "popular" for s in outage)
        assert health_status == 200 and during["status"] == "degraded"
    else:
        assert all(s.status == 503 and s.error == "index_unavailable" for s in outage)
        assert health_status == 503 and during["status"] == "unavailable"
    assert during["index"]["ok"] is False
    # never a 5xx of the service's own (500), never a refused connection to the API itself
    assert {s.status for s in load.samples} <= allowed
    # AND once it is back, answers come from OpenSearch again
    assert sum(s.status == 200 and s.fallback is None for s in after) >= 20
    status, healthy = HttpClient(server.url).request("GET", "/health")
    assert status == 200 and healthy["index"]["ok"] is True


def test_503_carries_retry_after(fault_bundle: Bundle, unreachable_url: str, serve) -> None:
    # an OpenSearch that was never there: the 503 says when to retry
    import http.client
    import json
    from urllib.parse import urlsplit

    server = serve(fault_bundle, opensearch_url=unreachable_url, index_fallback="none", opensearch_max_retries=0)
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("POST", "/recommendations", body=json.dumps({"history": [{"movie_id": 3}]}),
                 headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    assert response.status == 503 and body["error"] == "index_unavailable"
    assert response.getheader("Retry-After") == "5"
