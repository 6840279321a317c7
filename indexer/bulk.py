"""Streaming bulk writes: bounded chunks, parallel requests, back-off on 429/5xx, every refused document reported.

Actions are consumed lazily and sent in chunks of at most ``chunk_docs`` documents and
``chunk_bytes`` bytes, so memory stays flat however long the stream is: with ``workers`` > 1,
that many chunks are in flight at once (each on its own connection of the client's pool) and at
most ``2 * workers`` are held, so memory stays bounded by ``2 * workers * chunk_bytes``. A whole request that
fails with 429/5xx or a lost connection is resent after a back-off (index and delete by id are
idempotent); inside a successful request, items that failed with 429/5xx are resent alone.
Items refused for any other reason (a mapping conflict, a vector of the wrong dimension) are
failures: they are collected (up to ``max_failures``, after which the writer stops) and the
caller fails the run with the list.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import TransportError

from indexer.documents import BulkAction
from indexer.errors import DocumentFailure, IndexerError
from indexer.retry import Backoff, describe, is_retryable, retryable_status

RESPONSE_FIELDS = "items.*.status,items.*.error"
"""Only what the writer reads from a bulk response (a third of the bytes to parse)."""


@dataclass
class BulkResult:
    succeeded: int = 0
    not_found: int = 0
    """Deletes of ids that were not in the index (not an error)."""
    retried: int = 0
    failures: list[DocumentFailure] = field(default_factory=list)
    stopped_early: bool = False

    def add(self, other: BulkResult) -> None:
        self.succeeded += other.succeeded
        self.not_found += other.not_found
        self.retried += other.retried
        self.failures.extend(other.failures)


def _reason(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
    cause = error.get("caused_by")
    while isinstance(cause, dict):
        text += f" (caused by {cause.get('type')}: {cause.get('reason')})"
        cause = cause.get("caused_by")
    return text


class BulkWriter:
    """Send bulk actions in bounded chunks with retries; see the module docstring."""

    def __init__(
        self,
        client: OpenSearch,
        *,
        chunk_docs: int = 500,
        chunk_bytes: int = 5_000_000,
        backoff: Backoff | None = None,
        max_failures: int = 1000,
        on_chunk: Callable[[int], None] | None = None,
        workers: int = 1,
    ) -> None:
        self.client = client
        self.chunk_docs = chunk_docs
        self.chunk_bytes = chunk_bytes
        self.backoff = backoff or Backoff()
        self.max_failures = max_failures
        self.on_chunk = on_chunk
        self.workers = max(1, workers)

    def _chunks(self, actions: Iterable[BulkAction]) -> Iterator[list[BulkAction]]:
        chunk: list[BulkAction] = []
        size = 0
        for action in actions:
            if chunk and (len(chunk) >= self.chunk_docs or size + action.nbytes > self.chunk_bytes):
                yield chunk
                chunk, size = [], 0
            chunk.append(action)
            size += action.nbytes
        if chunk:
            yield chunk

    def write(self, actions: Iterable[BulkAction]) -> BulkResult:
        """Send every action; ``on_chunk`` is called (in this thread) with the documents done per chunk."""
        if self.workers > 1:
            return self._write_parallel(actions)
        result = BulkResult()
        for chunk in self._chunks(actions):
            self._merge(result, self._send(chunk))
            if len(result.failures) >= self.max_failures:
                result.stopped_early = True
                return result
        return result

    def _merge(self, result: BulkResult, part: BulkResult) -> None:
        result.add(part)
        if self.on_chunk is not None:
            self.on_chunk(part.succeeded + part.not_found + len(part.failures))

    def _write_parallel(self, actions: Iterable[BulkAction]) -> BulkResult:
        """``workers`` chunks in flight; results merged here, in the order the chunks were cut."""
        result = BulkResult()
        in_flight: deque[Future[BulkResult]] = deque()
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="bulk")
        try:
            for chunk in self._chunks(actions):
                while len(in_flight) >= 2 * self.workers or (in_flight and in_flight[0].done()):
                    self._merge(result, in_flight.popleft().result())
                if len(result.failures) >= self.max_failures:
                    result.stopped_early = True
                    break
                in_flight.append(pool.submit(self._send, chunk))
            while in_flight:
                self._merge(result, in_flight.popleft().result())
            if len(result.failures) >= self.max_failures:
                result.stopped_early = True
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return result

    def _send(self, chunk: list[BulkAction]) -> BulkResult:
        """One chunk, with its retries; thread-safe (touches nothing shared but the client)."""
        result = BulkResult()
        pending = chunk
        attempt = 0
        while pending:
            body = "".join(a.payload for a in pending)
            try:
                response = self.client.bulk(body=body, filter_path=RESPONSE_FIELDS)
            except (TransportError, OpenSearchConnectionError) as exc:
                if getattr(exc, "status_code", None) == 413:
                    raise IndexerError(
                        f"bulk request of {len(body)} bytes refused as too large (HTTP 413): "
                        "lower RECS_INDEX_BULK_BYTES or RECS_INDEX_BULK_DOCS"
                    ) from exc
                if not is_retryable(exc) or attempt >= self.backoff.max_retries:
                    tries = f" after {attempt + 1} attempts" if attempt else ""
                    raise IndexerError(
                        f"bulk request of {len(pending)} documents failed{tries}: {describe(exc)}"
                    ) from exc
                result.retried += len(pending)
                self.backoff.wait(attempt)
                attempt += 1
                continue
            items = response.get("items", [])
            if len(items) != len(pending):
                raise IndexerError(f"bulk response has {len(items)} items for {len(pending)} documents")
            retry: list[BulkAction] = []
            for action, item in zip(pending, items, strict=True):
                op, outcome = next(iter(item.items()))
                status = int(outcome.get("status", 500))
                if status < 300:
                    result.succeeded += 1
                elif op == "delete" and status == 404:
                    result.not_found += 1
                elif retryable_status(status) and attempt < self.backoff.max_retries:
                    retry.append(action)
                else:
                    result.failures.append(DocumentFailure(action.doc_id, status, _reason(outcome.get("error"))))
            if retry:
                result.retried += len(retry)
                self.backoff.wait(attempt)
                attempt += 1
            pending = retry
        return result
