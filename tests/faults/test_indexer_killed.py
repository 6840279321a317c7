"""The indexer process killed between the bulk load and the alias swap, while the API is under load.

The killed run is a real process (``indexer.jobs.Indexer`` with its ``on_step`` hook sending itself
SIGKILL once the new index is loaded and verified, before the swap): no ``finally`` runs, its lock
stays in Redis until its TTL runs out, its half-built index stays in OpenSearch. The API keeps
answering from the old index; ``recs index rebuild`` run again waits for the dead run's lock,
completes, deletes the leftover and bumps the generation (the cache is invalidated).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.parse

import pytest

from bench.load import HttpClient, child_env, hits_mix, pool_of_requests
from core.bundle import Bundle
from tests.faults.conftest import N_MOVIES, ROOT, under_load
from tests.support.http import request

pytestmark = pytest.mark.opensearch

KILLED_RUN = """
import json, os, signal, sys
from indexer.jobs import Indexer
from indexer.settings import IndexerSettings

settings = IndexerSettings.from_env(json.loads(sys.argv[1]), env={})
kill_at = sys.argv[2]

def step(name):
    print(name, flush=True)
    if name == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

Indexer(settings, on_step=step).rebuild()
"""


def recs_index(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recs", "index", *args], cwd=ROOT, env=child_env(),
                          capture_output=True, text=True, timeout=300)


def live_index(url: str, alias: str) -> str:
    found = request(url, "GET", f"/_alias/{urllib.parse.quote(alias)}")
    (name,) = found.body
    return str(name)


def indices(url: str, alias: str) -> set[str]:
    found = request(url, "GET", f"/_cat/indices/{urllib.parse.quote(alias)}-*?format=json", expect=(200, 404))
    return {row["index"] for row in found.body} if found.status == 200 else set()


def test_indexer_killed_between_load_and_swap(fault_bundle: Bundle, opensearch_url: str, redis_server,
                                              unique_name, serve) -> None:
    alias = unique_name("movies")
    target = ["--opensearch-url", opensearch_url, "--redis-url", redis_server.url, "--alias", alias,
              "--replicas", "0"]
    # GIVEN a live index built by `recs index rebuild`, and the API on it, under load
    first = recs_index("rebuild", "--bundle", str(fault_bundle.path), *target)
    assert first.returncode == 0, first.stderr[-3000:]
    old = json.loads(first.stdout.strip().splitlines()[-1])["index"]
    assert live_index(opensearch_url, alias) == old
    server = serve(fault_bundle, opensearch_url=opensearch_url, opensearch_alias=alias, redis_url=redis_server.url)
    ids = list(range(1, N_MOVIES + 1))
    probe = {"history": [{"movie_id": 5, "rating": 4.5}, {"movie_id": 17}], "k": 8}
    client = HttpClient(server.url)
    status, answer = client.request("POST", "/recommendations", probe)
    assert status == 200 and answer["cached"] is False
    with under_load(server.url, hits_mix(pool_of_requests(ids, 20), ids, hit_share=0.8)) as load:
        load.wait_for_answers(30, after=0.0)
        # WHEN an indexer run is killed (SIGKILL) after loading and verifying its index, before the swap
        settings = {"bundle": str(fault_bundle.path), "opensearch_url": opensearch_url, "alias": alias,
                    "redis_url": redis_server.url, "replicas": 0, "lock_ttl": 2.0, "probes": 3}
        killed = subprocess.run([sys.executable, "-c", KILLED_RUN, json.dumps(settings), "verified"], cwd=ROOT,
                                env=child_env(), capture_output=True, text=True, timeout=300)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
        assert killed.stdout.split() == ["locked", "created", "loaded", "verified"]
        after_kill = time.monotonic()
        leftovers = indices(opensearch_url, alias) - {old}
        # THEN its half-built index exists but is not served: the alias, /health and the answers are the old ones
        assert len(leftovers) == 1 and live_index(opensearch_url, alias) == old
        status, health = client.request("GET", "/health")
        assert status == 200 and health["index"]["info"]["index"] == old
        status, again = client.request("POST", "/recommendations", probe)
        assert status == 200 and again["cached"] is True and again["items"] == answer["items"]
        load.wait_for_answers(100, after=after_kill, what="answers after the kill")

        # AND a rerun waits for the dead run's lock to expire, completes, and removes the leftover
        rerun = recs_index("rebuild", "--bundle", str(fault_bundle.path), "--lock-wait", "60", *target)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        summary = json.loads(rerun.stdout.strip().splitlines()[-1])
        swapped = time.monotonic()
        load.wait_for_answers(50, after=swapped, what="answers after the rerun")

    assert summary["alias_before"] == old and summary["alias_after"] == summary["index"]
    assert live_index(opensearch_url, alias) == summary["index"]
    assert not leftovers & indices(opensearch_url, alias), "the crashed run's index was not deleted"
    assert summary["generation"] == 2  # one bump per completed run; the killed one never got there
    status, health = client.request("GET", "/health")
    assert health["index"]["info"]["index"] == summary["index"]
    # the generation bump invalidated the cached answer; the same model gives the same movies
    status, fresh = client.request("POST", "/recommendations", probe)
    assert status == 200 and fresh["cached"] is False and fresh["items"] == answer["items"]
    client.close()
    # not one request failed during any of it
    assert load.samples and {s.status for s in load.samples} == {200}
    assert not any(s.fallback for s in load.samples)
