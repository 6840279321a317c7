"""Bulk writes: bounded chunks, back-off and retry on 429/5xx, refused documents listed by id.

The retry paths need OpenSearch to answer 429 or 503 on demand, which no local server does, so
these tests give ``BulkWriter`` a scripted stand-in for the opensearch-py client (the external
dependency, not project code); the same writer loads real osmem indices in test_scenarios.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import TransportError

from core.features import Movie
from indexer.bulk import BulkWriter
from indexer.documents import BulkAction, delete_actions, index_actions
from indexer.errors import IndexerError
from indexer.retry import Backoff


class ScriptedClient:
    """Answers ``bulk`` from a script: an exception, a list of item statuses, or None (all 201)."""

    def __init__(self, script):
        self.script = list(script)
        self.requests: list[list[str]] = []

    def bulk(self, body: str, **params):
        objects = [json.loads(line) for line in body.splitlines()]
        ids = [obj[op]["_id"] for obj in objects for op in obj if op in ("index", "delete")]
        self.requests.append(ids)
        step = self.script.pop(0) if self.script else None
        if isinstance(step, Exception):
            raise step
        statuses = step or [201] * len(ids)
        items = []
        for doc_id, status in zip(ids, statuses, strict=True):
            outcome = {"_id": doc_id, "status": status}
            if status >= 300:
                kind = "es_rejected_execution_exception" if status == 429 else "mapper_parsing_exception"
                outcome["error"] = {"type": kind, "reason": f"status {status}",
                                    "caused_by": {"type": "x", "reason": "deeper"}}
            items.append({"index": outcome})
        return {"errors": any(s >= 300 for s in statuses), "items": items}


def actions(n: int) -> list[BulkAction]:
    movies = [Movie(i, f"M{i}", 2000, ("Drama",), 1.0) for i in range(1, n + 1)]
    return list(index_actions("idx", movies, np.ones((n, 4), dtype=np.float32)))


def writer(client, **kwargs) -> tuple[BulkWriter, list[float]]:
    sleeps: list[float] = []
    backoff = Backoff(first=0.1, max_retries=kwargs.pop("max_retries", 3), sleep=sleeps.append)
    return BulkWriter(client, backoff=backoff, **kwargs), sleeps


def test_chunks_are_bounded_by_documents_and_bytes():
    client = ScriptedClient([])
    bulk, _ = writer(client, chunk_docs=4)
    assert bulk.write(actions(10)).succeeded == 10
    assert [len(r) for r in client.requests] == [4, 4, 2]
    one = len(actions(1)[0].payload)
    client = ScriptedClient([])
    bulk, _ = writer(client, chunk_docs=100, chunk_bytes=3 * one + 5)
    bulk.write(actions(10))
    assert [len(r) for r in client.requests] == [3, 3, 3, 1]


def test_the_stream_is_consumed_lazily():
    consumed = []

    def gen():
        for a in actions(9):
            consumed.append(a.doc_id)
            yield a

    client = ScriptedClient([])
    progress: list[int] = []
    bulk, _ = writer(client, chunk_docs=3, on_chunk=lambda n: progress.append(len(consumed)))
    bulk.write(gen())
    assert progress == [4, 7, 9]  # one action read ahead of each chunk sent, never the whole stream


def test_whole_request_429_and_503_and_lost_connections_are_retried_with_backoff():
    client = ScriptedClient([
        TransportError(429, "too_many_requests", "slow down"),
        TransportError(503, "unavailable", "busy"),
        OpenSearchConnectionError("N/A", "connection refused", None),
    ])
    bulk, sleeps = writer(client)
    result = bulk.write(actions(3))
    assert result.succeeded == 3 and result.failures == [] and result.retried == 9
    assert len(client.requests) == 4
    assert len(sleeps) == 3 and sleeps[0] <= 0.1 and 0.1 < sleeps[1] <= 0.2 and 0.2 < sleeps[2] <= 0.4


def test_items_refused_with_429_are_resent_alone():
    client = ScriptedClient([[201, 429, 201, 503], [429, 201], None])
    bulk, sleeps = writer(client)
    result = bulk.write(actions(4))
    assert client.requests == [["1", "2", "3", "4"], ["2", "4"], ["2"]]
    assert (result.succeeded, result.retried, result.failures) == (4, 3, [])
    assert len(sleeps) == 2


def test_items_still_failing_after_the_last_retry_are_failures():
    client = ScriptedClient([[429, 201]] + [[429]] * 5)
    bulk, _ = writer(client, max_retries=2)
    result = bulk.write(actions(2))
    assert [(f.doc_id, f.status) for f in result.failures] == [("1", 429)]
    assert result.succeeded == 1


def test_refused_documents_are_listed_with_their_reasons():
    client = ScriptedClient([[201, 400, 201, 400]])
    bulk, sleeps = writer(client)
    result = bulk.write(actions(4))
    assert [f.doc_id for f in result.failures] == ["2", "4"]
    assert str(result.failures[0]) == ("movie 2: HTTP 400 mapper_parsing_exception: status 400 "
                                       "(caused by x: deeper)")
    assert sleeps == []  # a 400 is an answer, not a reason to retry


def test_the_writer_stops_after_max_failures():
    client = ScriptedClient([[400, 400], [400, 400], None])
    bulk, _ = writer(client, chunk_docs=2, max_failures=3)
    result = bulk.write(actions(6))
    assert result.stopped_early and len(result.failures) == 4 and len(client.requests) == 2


def test_a_request_that_keeps_failing_or_is_refused_raises():
    bulk, _ = writer(ScriptedClient([TransportError(503, "unavailable", "x")] * 5), max_retries=2)
    with pytest.raises(IndexerError, match="failed after 3 attempts: HTTP 503"):
        bulk.write(actions(2))
    bulk, _ = writer(ScriptedClient([TransportError(413, "too_large", "x")]))
    with pytest.raises(IndexerError, match="RECS_INDEX_BULK_BYTES"):
        bulk.write(actions(2))
    bulk, sleeps = writer(ScriptedClient([TransportError(400, "bad", "x")]))
    with pytest.raises(IndexerError, match="HTTP 400"):
        bulk.write(actions(2))
    assert sleeps == []


def test_deletes_of_missing_documents_are_not_failures():
    class Deletes(ScriptedClient):
        def bulk(self, body: str, **params):
            ids = [json.loads(line)["delete"]["_id"] for line in body.splitlines()]
            return {"items": [{"delete": {"_id": i, "status": 404 if i == "2" else 200}} for i in ids]}

    result = writer(Deletes([]))[0].write(delete_actions("idx", [1, 2, 3]))
    assert (result.succeeded, result.not_found, result.failures) == (2, 1, [])


def test_documents_round_vectors_and_escape_titles():
    movie = Movie(5, 'Quote " and \\ and é', None, ("A", "B"), 2.5)
    (action,) = index_actions('we"ird', [movie], np.array([[0.123456789, -1e-9, 3.0]], dtype=np.float32))
    meta, source = (json.loads(line) for line in action.payload.splitlines())
    assert meta == {"index": {"_index": 'we"ird', "_id": "5"}}
    assert source == {"movie_id": 5, "title": 'Quote " and \\ and é', "year": None, "genres": ["A", "B"],
                      "popularity": 2.5, "embedding": [0.12345679, -1e-09, 3.0]}
    # each float32 is written as the shortest text that reads back as that same float32
    assert np.array_equal(np.asarray(source["embedding"], dtype=np.float32),
                          np.array([0.123456789, -1e-9, 3.0], dtype=np.float32))
    assert action.size == len(action.payload.encode()) > len(action.payload)  # the é is two bytes
    with pytest.raises(ValueError, match="2 movies but 1 vectors"):
        list(index_actions("i", [movie, movie], np.zeros((1, 3), dtype=np.float32)))


class ConcurrentClient:
    """Answers by document id (not by call order, which threads make arbitrary) and records concurrency."""

    def __init__(self, refuse=(), throttle_once=(), fail_request_with=None, delay=0.02):
        import threading

        self.refuse, self.throttled = set(refuse), set(throttle_once)
        self.fail_request_with = fail_request_with
        self.delay = delay
        self.lock = threading.Lock()
        self.active = self.max_active = self.calls = 0
        self.sent: list[str] = []

    def bulk(self, body: str, **params):
        import time

        ids = [json.loads(line)["index"]["_id"] for line in body.splitlines() if line.startswith('{"index"')]
        with self.lock:
            self.active += 1
            self.calls += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(self.delay)
            if self.fail_request_with is not None and self.fail_request_with in ids:
                raise TransportError(400, "illegal_argument_exception", "bad request")
            items = []
            for doc_id in ids:
                if doc_id in self.refuse:
                    items.append({"index": {"_id": doc_id, "status": 400,
                                            "error": {"type": "mapper_parsing_exception", "reason": "no"}}})
                elif doc_id in self.throttled:
                    with self.lock:
                        self.throttled.discard(doc_id)
                    items.append({"index": {"_id": doc_id, "status": 429, "error": {"type": "es_rejected"}}})
                else:
                    with self.lock:
                        self.sent.append(doc_id)
                    items.append({"index": {"_id": doc_id, "status": 201}})
            return {"items": items}
        finally:
            with self.lock:
                self.active -= 1


def test_parallel_workers_keep_every_guarantee():
    refused = {str(i) for i in range(7, 301, 37)}
    client = ConcurrentClient(refuse=refused, throttle_once={"3", "150", "299"})
    progress: list[int] = []
    bulk, sleeps = writer(client, chunk_docs=10, workers=4, on_chunk=progress.append)
    result = bulk.write(actions(300))
    assert client.max_active > 1, "requests must overlap"
    assert sorted(f.doc_id for f in result.failures) == sorted(refused)  # every refused document, by id
    assert all(f.status == 400 for f in result.failures)
    assert result.succeeded == 300 - len(refused) and result.retried == 3 and len(sleeps) == 3
    assert sorted(client.sent, key=int) == [str(i) for i in range(1, 301) if str(i) not in refused]
    assert sum(progress) == 300


def test_parallel_workers_stop_after_max_failures_and_raise_a_failed_request():
    client = ConcurrentClient(refuse={str(i) for i in range(1, 301)}, delay=0.0)
    bulk, _ = writer(client, chunk_docs=10, workers=4, max_failures=25)
    result = bulk.write(actions(300))
    assert result.stopped_early and 25 <= len(result.failures) < 300
    assert client.calls < 30, "no chunk is sent once the failures reach the limit (those in flight finish)"
    bulk, _ = writer(ConcurrentClient(fail_request_with="123"), chunk_docs=10, workers=4)
    with pytest.raises(IndexerError, match="bulk request of 10 documents failed: HTTP 400"):
        bulk.write(actions(300))


def test_bulk_workers_setting():
    from indexer.errors import SettingsError
    from indexer.settings import IndexerSettings

    assert IndexerSettings.from_env(env={}).bulk_workers == 4
    assert IndexerSettings.from_env(env={"RECS_INDEX_BULK_WORKERS": "2"}).bulk_workers == 2
    with pytest.raises(SettingsError, match=r"RECS_INDEX_BULK_WORKERS: must be within 1\.\.16"):
        IndexerSettings.from_env(env={"RECS_INDEX_BULK_WORKERS": "0"})
