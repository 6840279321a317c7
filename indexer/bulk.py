"""Streaming bulk writes: bounded chunks, back-off on 429/5xx, every refused document reported.

Actions are consumed lazily and sent in chunks of at most ``chunk_docs`` documents and
``chunk_bytes`` bytes, so memory stays flat however long the stream is. A whole request that
fails with 429/5xx or a lost connection is resent after a back-off (index and delete by id are
idempotent); inside a successful request, items that failed with 429/5xx are resent alone.
Items refused for any other reason (a mapping conflict, a vector of the wrong dimension) are
failures: they are collected (up to ``max_failures``, after which the writer stops) and the
caller fails the run with the list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
    ) -> None:
        self.client = client
        self.chunk_docs = chunk_docs
        self.chunk_bytes = chunk_bytes
        self.backoff = backoff or Backoff()
        self.max_failures = max_failures
        self.on_chunk = on_chunk

    def write(self, actions: Iterable[BulkAction]) -> BulkResult:
        result = BulkResult()
        chunk: list[BulkAction] = []
        size = 0
        for action in actions:
            if chunk and (len(chunk) >= self.chunk_docs or size + len(action.payload) > self.chunk_bytes):
                self._send(chunk, result)
                if len(result.failures) >= self.max_failures:
                    result.stopped_early = True
                    return result
                chunk, size = [], 0
            chunk.append(action)
            size += len(action.payload)
        if chunk:
            self._send(chunk, result)
        return result

    def _send(self, chunk: list[BulkAction], result: BulkResult) -> None:
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
            if self.on_chunk is not None:
                self.on_chunk(len(pending) - len(retry))
            if retry:
                result.retried += len(retry)
                self.backoff.wait(attempt)
                attempt += 1
            pending = retry
