"""The indexer's settings: one frozen object, read from ``RECS_*`` variables, validated at start-up.

An explicit argument (``IndexerSettings.from_env(overrides)``, fed by the command line) wins over
the environment; the embedded default needs no variable at all.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.aws import SIGV4_SERVICES
from core.index_schema import ENGINES, SPACE_TYPES, IndexParams
from core.settings import label, load, override, setting
from indexer.errors import SettingsError

_ALIAS_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,100}$")


@dataclass(frozen=True)
class IndexerSettings:
    """Everything a run needs; see the configuration table in docs/operations.md."""

    settings_error = SettingsError
    bundle: str | None = setting("RECS_BUNDLE", default=None)
    """Bundle location (path or ``s3://bucket/prefix``); None: not configured (``artifacts/bundle`` locally)."""
    embedded_store: str = setting("RECS_EMBEDDED_STORE", default="artifacts/index")
    opensearch_url: str | None = setting("RECS_OPENSEARCH_URL", default=None)
    """None: write the embedded store instead of OpenSearch."""
    alias: str = setting("RECS_OPENSEARCH_ALIAS", default="movies")
    opensearch_username: str | None = setting("RECS_OPENSEARCH_USERNAME", default=None)
    opensearch_password: str | None = setting("RECS_OPENSEARCH_PASSWORD", default=None, secret=True)
    opensearch_service: str | None = setting("RECS_OPENSEARCH_SERVICE", default=None)
    """SigV4 service (``es`` or ``aoss``); None: guessed from an ``*.amazonaws.com`` host, else unsigned."""
    redis_url: str | None = setting("RECS_REDIS_URL", default=None)
    redis_auth_secret_arn: str | None = setting("RECS_REDIS_AUTH_SECRET_ARN", default=None)
    aws_region: str | None = setting("RECS_AWS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION", default=None)
    s3_bucket: str | None = setting("RECS_S3_BUCKET", default=None)
    s3_key: str | None = setting("RECS_S3_KEY", default=None)
    keep: int = setting("RECS_INDEX_KEEP", default=2)
    """Earlier indices kept for ``recs index rollback``; older ones are deleted."""
    index: IndexParams = field(default_factory=IndexParams)
    bulk_docs: int = setting("RECS_INDEX_BULK_DOCS", default=500)
    bulk_bytes: int = setting("RECS_INDEX_BULK_BYTES", default=5_000_000)
    bulk_workers: int = setting("RECS_INDEX_BULK_WORKERS", default=4)
    """Bulk requests in flight at once (threads sharing the client's connection pool of 16)."""
    max_retries: int = setting("RECS_INDEX_MAX_RETRIES", default=6)
    backoff_seconds: float = setting("RECS_INDEX_BACKOFF_SECONDS", default=0.5)
    """First back-off after a 429 or 5xx; doubles on each retry, capped at 30 s."""
    request_timeout: float = setting("RECS_INDEX_TIMEOUT_SECONDS", default=60.0)
    lock_ttl: float = setting("RECS_INDEX_LOCK_TTL_SECONDS", default=120.0)
    """Seconds the run lock lives without a heartbeat (a crashed run frees it after this long)."""
    lock_wait: float = setting("RECS_INDEX_LOCK_WAIT_SECONDS", default=0.0)
    """Seconds a run waits for a busy lock before giving up (0: exit at once)."""
    probes: int = setting("RECS_INDEX_PROBES", default=3)
    """Known movies queried after a full load; each must find itself first (0 disables the probe)."""

    DEFAULT_BUNDLE = "artifacts/bundle"

    @property
    def bundle_location(self) -> str:
        return self.bundle or self.DEFAULT_BUNDLE

    @property
    def uses_opensearch(self) -> bool:
        return bool(self.opensearch_url)

    @classmethod
    def from_env(
        cls, overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
    ) -> IndexerSettings:
        """Read ``RECS_*`` variables; values in ``overrides`` that are not None win. Raises ``SettingsError``."""
        return load(cls, os.environ if env is None else env, **dict(overrides or {}))

    def with_overrides(self, **changes: Any) -> IndexerSettings:
        """A validated copy with some fields replaced (None values are ignored)."""
        return override(self, **changes)

    def __post_init__(self) -> None:
        """Raise ``SettingsError`` naming the first invalid value."""
        params = self.index

        def param(name: str) -> str:
            return label(IndexParams, name)

        checks: list[tuple[bool, str, str]] = [
            (params.engine in ENGINES, param("engine"), f"must be one of {', '.join(ENGINES)}, not {params.engine!r}"),
            (params.space_type is None or params.space_type in SPACE_TYPES, param("space_type"),
             f"must be one of {', '.join(SPACE_TYPES)}, not {params.space_type!r}"),
            (2 <= params.m <= 100, param("m"), f"must be within 2..100, not {params.m}"),
            (params.ef_construction >= 2, param("ef_construction"), "must be at least 2"),
            (params.ef_search >= 1, param("ef_search"), "must be at least 1"),
            (params.shards >= 1, param("shards"), "must be at least 1"),
            (params.replicas >= 0, param("replicas"), "must be 0 or more"),
            (bool(_ALIAS_RE.match(self.alias)), label(self, "alias"),
             f"{self.alias!r} must be lower-case letters, digits, '-', '_' or '.'"),
            (self.keep >= 0, label(self, "keep"), "must be 0 or more"),
            (self.bulk_docs >= 1, label(self, "bulk_docs"), "must be at least 1"),
            (self.bulk_bytes >= 1024, label(self, "bulk_bytes"), "must be at least 1024"),
            (1 <= self.bulk_workers <= 16, label(self, "bulk_workers"),
             f"must be within 1..16, not {self.bulk_workers}"),
            (self.max_retries >= 0, label(self, "max_retries"), "must be 0 or more"),
            (self.backoff_seconds >= 0, label(self, "backoff_seconds"), "must be 0 or more"),
            (self.request_timeout > 0, label(self, "request_timeout"), "must be positive"),
            (self.lock_ttl >= 1, label(self, "lock_ttl"), "must be at least 1"),
            (self.lock_wait >= 0, label(self, "lock_wait"), "must be 0 or more"),
            (self.probes >= 0, label(self, "probes"), "must be 0 or more"),
            (not self.opensearch_url or self.opensearch_url.startswith(("http://", "https://")),
             label(self, "opensearch_url"), f"must start with http:// or https://, not {self.opensearch_url!r}"),
            (self.opensearch_service in (None, *SIGV4_SERVICES), label(self, "opensearch_service"),
             f"must be 'es' or 'aoss', not {self.opensearch_service!r}"),
            (not self.redis_url or self.redis_url.startswith(("redis://", "rediss://", "unix://")),
             label(self, "redis_url"), f"must start with redis://, rediss:// or unix://, not {self.redis_url!r}"),
        ]
        for ok, name, why in checks:
            if not ok:
                raise SettingsError(f"{name}: {why}")
