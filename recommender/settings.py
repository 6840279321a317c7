"""The recommender's settings: one frozen object, read once from ``RECS_*`` variables (``core.settings``).

An explicit argument beats the environment (``ServiceSettings.from_env(bundle=...)``). Every value is
validated here, at start-up, so a typo in a variable fails with a message naming it instead of a
confusing error on the first request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from core.aws import SIGV4_SERVICES, sigv4_service_for
from core.locations import is_s3
from core.settings import check, describe, load, override, setting

DEFAULT_BUNDLE = "artifacts/bundle"
DEFAULT_EMBEDDED_STORE = "artifacts/index"
DEFAULT_ALIAS = "movies"

MAX_K = 100
"""Largest ``k`` a client may ask for (recommendations and similar movies)."""
MAX_HISTORY_ITEMS = 500
"""Longest history accepted in a request; longer payloads are rejected (the model reads only the last
``history_length`` items, the rest only feed ``exclude_seen``)."""
MAX_BODY_BYTES = 64 * 1024
"""Largest request body accepted (bytes); larger ones get 413."""

FALLBACK_MODES = ("popular", "none")


@dataclass(frozen=True)
class ServiceSettings:
    """Everything the API needs to build its bundle, index, cache and telemetry."""

    bundle: str = setting("RECS_BUNDLE", default=DEFAULT_BUNDLE)
    """Local bundle directory or ``s3://bucket/prefix``: one fixed bundle. Ending in ``/`` it is a bundle
    ROOT (``s3://bucket/bundles/``, ``artifacts/bundles/``): the bundle served is ``<root><model version
    of the live index>/``, and a refresh to another model switches the user tower with it."""
    embedded_store: str = setting("RECS_EMBEDDED_STORE", default=DEFAULT_EMBEDDED_STORE)
    """The embedded store directory read by ``NumpyIndex`` (falls back to the bundle's vectors)."""
    opensearch_url: str | None = setting("RECS_OPENSEARCH_URL", default=None)
    """``https://host[:port]``; unset selects the embedded index."""
    opensearch_alias: str = setting("RECS_OPENSEARCH_ALIAS", default=DEFAULT_ALIAS)
    opensearch_username: str | None = setting("RECS_OPENSEARCH_USERNAME", default=None)
    opensearch_password: str | None = setting("RECS_OPENSEARCH_PASSWORD", default=None, secret=True)
    opensearch_timeout_seconds: float = setting("RECS_OPENSEARCH_TIMEOUT_SECONDS", default=2.0)
    opensearch_max_retries: int = setting("RECS_OPENSEARCH_MAX_RETRIES", default=1)
    opensearch_service: str | None = setting("RECS_OPENSEARCH_SERVICE", default=None)
    """SigV4 service name: ``es`` (managed domains) or ``aoss`` (serverless); guessed from the host."""
    model_check_seconds: float = setting("RECS_MODEL_CHECK_SECONDS", default=10.0)
    """How long the live index's model version (OpenSearch ``_meta.model_version``) is trusted before
    it is read again; every search also checks the model of the index its answer came from."""
    aws_region: str | None = setting("RECS_AWS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION", default=None)
    redis_url: str | None = setting("RECS_REDIS_URL", default=None)
    """``redis://`` or ``rediss://`` URL; unset selects the in-process LRU cache."""
    redis_auth_secret_arn: str | None = setting("RECS_REDIS_AUTH_SECRET_ARN", default=None)
    redis_timeout_seconds: float = setting("RECS_REDIS_TIMEOUT_SECONDS", default=0.25)
    redis_retry_after_seconds: float = setting("RECS_REDIS_RETRY_AFTER_SECONDS", default=5.0)
    """After a Redis failure, skip Redis (serve uncached) for this long before trying again."""
    cache_ttl_seconds: int = setting("RECS_CACHE_TTL_SECONDS", default=300)
    cache_max_entries: int = setting("RECS_CACHE_MAX_ENTRIES", default=10_000)
    bundle_cache_dir: str | None = setting("RECS_BUNDLE_CACHE_DIR", default=None)
    """Where an ``s3://`` bundle is downloaded (default: a folder under the temp directory)."""
    index_fallback: str = setting("RECS_INDEX_FALLBACK", default="popular")
    """When the vector index is unreachable: ``popular`` (answer with the bundle's popular movies,
    flagged ``fallback``) or ``none`` (answer 503)."""
    max_body_bytes: int = setting("RECS_MAX_BODY_BYTES", default=MAX_BODY_BYTES)
    metrics_enabled: bool = setting("RECS_METRICS_ENABLED", default=False)
    """Emit CloudWatch EMF metrics; on by default inside Lambda (``AWS_LAMBDA_FUNCTION_NAME`` set), off
    locally (no stdout spam)."""
    metrics_namespace: str = setting("RECS_METRICS_NAMESPACE", default="MovieRecs")
    service_name: str = "recommender"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ServiceSettings:
        """Settings from ``RECS_*`` variables, then ``overrides`` (``None`` values are ignored)."""
        env = os.environ if env is None else env
        if not env.get("RECS_METRICS_ENABLED", "").strip() and overrides.get("metrics_enabled") is None:
            overrides["metrics_enabled"] = bool(env.get("AWS_LAMBDA_FUNCTION_NAME"))
        return load(cls, env, **overrides)

    def with_overrides(self, **overrides: Any) -> ServiceSettings:
        return override(self, **overrides)

    def __post_init__(self) -> None:
        check(bool(self.bundle), self, "bundle", "must name a bundle directory or s3:// prefix")
        check(not is_s3(self.bundle) or len(self.bundle) > len("s3://"), self, "bundle", "an s3:// URI needs a bucket")
        if self.opensearch_url:
            parsed = urlparse(self.opensearch_url)
            check(parsed.scheme in ("http", "https") and bool(parsed.hostname), self, "opensearch_url",
                  f"{self.opensearch_url!r} is not an http(s)://host[:port] URL")
        check(self.opensearch_service in (None, *SIGV4_SERVICES), self, "opensearch_service", "must be 'es' or 'aoss'")
        if self.redis_url:
            check(urlparse(self.redis_url).scheme in ("redis", "rediss", "unix"), self, "redis_url",
                  f"{self.redis_url!r} is not a redis://, rediss:// or unix:// URL")
        check(self.index_fallback in FALLBACK_MODES, self, "index_fallback",
              f"must be one of {', '.join(FALLBACK_MODES)}")
        for name in ("opensearch_timeout_seconds", "redis_timeout_seconds"):
            check(getattr(self, name) > 0, self, name, "must be positive")
        for name in ("opensearch_max_retries", "redis_retry_after_seconds", "cache_ttl_seconds", "model_check_seconds"):
            check(getattr(self, name) >= 0, self, name, "must not be negative")
        check(self.cache_max_entries >= 1, self, "cache_max_entries", "must be at least 1")
        check(1024 <= self.max_body_bytes <= 10 * 1024 * 1024, self, "max_body_bytes",
              "must be between 1024 and 10485760 (API Gateway's own limit)")

    @property
    def bundle_is_root(self) -> bool:
        """``RECS_BUNDLE`` ends in ``/``: a root of versioned bundles, followed to the index's model."""
        return self.bundle.endswith("/")

    @property
    def uses_opensearch(self) -> bool:
        return bool(self.opensearch_url)

    def sigv4_service(self) -> str | None:
        """``es``/``aoss`` when requests to OpenSearch must be SigV4-signed, else ``None``."""
        return sigv4_service_for(self.opensearch_url, self.opensearch_service)

    def describe(self) -> dict[str, Any]:
        """The settings without secrets, for logs and ``/health``."""
        return describe(self)
