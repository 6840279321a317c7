"""Back-off and retry for OpenSearch calls: 429 (too many requests), 5xx and lost connections."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import TransportError

from indexer.errors import IndexerError

T = TypeVar("T")
MAX_DELAY_SECONDS = 30.0


def retryable_status(status: object) -> bool:
    """429 and 5xx are worth retrying; everything else is an answer."""
    return isinstance(status, int) and (status == 429 or status >= 500)


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, OpenSearchConnectionError):  # includes timeouts; status_code is "N/A"
        return True
    return isinstance(exc, TransportError) and retryable_status(exc.status_code)


def describe(exc: BaseException) -> str:
    if isinstance(exc, OpenSearchConnectionError):
        return f"no connection ({exc.error})"
    if isinstance(exc, TransportError):
        return f"HTTP {exc.status_code} {exc.error}" + (f": {exc.info}" if isinstance(exc.info, str) else "")
    return f"{type(exc).__name__}: {exc}"


@dataclass
class Backoff:
    """Exponential back-off: ``first * 2**attempt`` seconds, jittered, at most 30 s."""

    first: float = 0.5
    max_retries: int = 6
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def delay(self, attempt: int) -> float:
        return min(MAX_DELAY_SECONDS, self.first * (2**attempt)) * random.uniform(0.75, 1.0)

    def wait(self, attempt: int) -> None:
        self.sleep(self.delay(attempt))

    def call(self, fn: Callable[[], T], what: str) -> T:
        """Run ``fn``, retrying retryable OpenSearch errors; the last error becomes an ``IndexerError``."""
        attempt = 0
        while True:
            try:
                return fn()
            except (TransportError, OpenSearchConnectionError) as exc:
                if not is_retryable(exc) or attempt >= self.max_retries:
                    tries = f" after {attempt + 1} attempts" if attempt else ""
                    raise IndexerError(f"{what} failed{tries}: {describe(exc)}") from exc
                self.wait(attempt)
                attempt += 1
