"""The indexer's OpenSearch and Redis clients, built on demand from its settings (never at import time).

Both come from ``core.aws``, the one place with the signing and region rules and the Redis token
reader. The OpenSearch transport's own retries are off: the indexer backs off itself
(``indexer.retry``), with a longer timeout than the recommender's.
"""

from __future__ import annotations

from typing import Any

from core.aws import opensearch_client as build_opensearch_client
from core.aws import redis_auth_token
from indexer.errors import SettingsError
from indexer.settings import IndexerSettings


def opensearch_client(settings: IndexerSettings) -> Any:
    """An ``opensearchpy.OpenSearch`` for ``settings.opensearch_url`` (SigV4-signed on AWS)."""
    if not settings.opensearch_url:
        raise SettingsError("RECS_OPENSEARCH_URL is not set")
    return build_opensearch_client(
        settings.opensearch_url,
        username=settings.opensearch_username,
        password=settings.opensearch_password,
        service=settings.opensearch_service,
        region=settings.aws_region,
        timeout_seconds=settings.request_timeout,
        max_retries=0,
    )


def redis_client(settings: IndexerSettings) -> Any:
    """A ``redis.Redis`` for ``settings.redis_url``, or None when no Redis is configured."""
    if not settings.redis_url:
        return None
    import redis

    kwargs: dict[str, Any] = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0}
    if settings.redis_auth_secret_arn:
        kwargs["password"] = redis_auth_token(settings.redis_auth_secret_arn, settings.aws_region)
    return redis.Redis.from_url(settings.redis_url, **kwargs)
