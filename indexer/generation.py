"""The catalog generation in Redis: ``INCR recs:catalog:generation`` after every swap or delta.

The recommender puts the generation in every cache key, so bumping it makes every cached answer
stale at once without scanning keys.
"""

from __future__ import annotations

from typing import Any

from indexer.errors import GenerationBumpError
from indexer.retry import Backoff

GENERATION_KEY = "recs:catalog:generation"


def read_generation(client: Any) -> int:
    value = client.get(GENERATION_KEY)
    return int(value) if value is not None else 0


def bump_generation(client: Any, backoff: Backoff, what: str) -> int:
    """``INCR`` the generation, retrying lost connections; ``what`` says what already changed."""
    import redis

    attempt = 0
    while True:
        try:
            return int(client.incr(GENERATION_KEY))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if attempt >= backoff.max_retries:
                raise GenerationBumpError(
                    f"{what}, but bumping {GENERATION_KEY} in Redis failed after {attempt + 1} attempts ({exc}): "
                    "cached answers stay until their TTL; rerun the job or INCR the key by hand"
                ) from exc
            backoff.wait(attempt)
            attempt += 1
        except redis.RedisError as exc:
            raise GenerationBumpError(f"{what}, but bumping {GENERATION_KEY} in Redis failed ({exc})") from exc
