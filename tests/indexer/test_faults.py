"""Faults in OpenSearch and Redis during a run: clear errors, nothing half-built goes live."""

from __future__ import annotations

import threading

import pytest

from indexer.errors import GenerationBumpError, IndexerError
from tests.indexer.conftest import N_MOVIES

pytestmark = pytest.mark.opensearch


def test_opensearch_unreachable(opensearch_world, make_bundle, unreachable_url):
    indexer = opensearch_world.indexer(opensearch_url=unreachable_url)
    with pytest.raises(IndexerError, match=r"reading alias .* failed after 3 attempts: no connection"):
        indexer.rebuild(str(make_bundle("m1").path))
    no_redis = opensearch_world.indexer(opensearch_url=unreachable_url, redis_url="")
    with pytest.raises(IndexerError, match="cannot take the OpenSearch document"):
        no_redis.rebuild(str(make_bundle("m1").path))


@pytest.mark.outage_emulation
def test_opensearch_outage_during_the_load_is_ridden_out(opensearch, opensearch_world, make_bundle):
    restarts: list[threading.Timer] = []

    def outage(step: str) -> None:
        if step == "created":  # the first bulk request meets a closed port, the next ones an open one
            opensearch.proxy.stop()
            timer = threading.Timer(0.4, opensearch.proxy.start)
            timer.start()
            restarts.append(timer)

    summary = opensearch_world.indexer(on_step=outage, max_retries=6, backoff_seconds=0.1).rebuild(
        str(make_bundle("m1").path))
    restarts[0].join()
    assert summary.details["bulk_retries"] > 0  # the outage was met, and ridden out
    assert opensearch_world.live() == summary.index and opensearch_world.count() == N_MOVIES


def test_redis_down_before_the_run(opensearch_world, redis_server, make_bundle):
    redis_server.stop()
    with pytest.raises(IndexerError, match="cannot take the Redis key recs:indexer:lock"):
        opensearch_world.indexer().rebuild(str(make_bundle("m1").path))
    redis_server.start()
    assert opensearch_world.index_names() == []


def test_redis_down_after_the_swap_is_reported(opensearch_world, redis_server, make_bundle):
    first = opensearch_world.indexer().rebuild(str(make_bundle("m1").path)).index

    def crash_redis(step: str) -> None:
        if step == "swapped":
            redis_server.stop()

    with pytest.raises(GenerationBumpError) as caught:
        opensearch_world.indexer(on_step=crash_redis).rebuild(str(make_bundle("m2", seed=1).path))
    live = opensearch_world.live()
    assert live != first and f"now points at {live}" in str(caught.value)
    assert "recs:catalog:generation" in str(caught.value)
    redis_server.start()  # it comes back empty; the next run bumps again
    opensearch_world.indexer().rollback()
    assert opensearch_world.live() == first and opensearch_world.generation() == 1
