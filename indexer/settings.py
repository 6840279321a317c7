"""The indexer's settings: one frozen object, read from ``RECS_*`` variables, validated at start-up.

An explicit argument (``IndexerSettings.from_env(overrides)``, fed by the command line) wins over
the environment; the embedded default needs no variable at all.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from indexer.errors import SettingsError

ENGINES = ("faiss", "lucene")
SPACE_TYPES = ("innerproduct", "cosinesimil", "l2")
_ALIAS_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,100}$")

T = TypeVar("T")


@dataclass(frozen=True)
class IndexParams:
    """How a new OpenSearch index is built (ignored by the embedded store, except ``space_type``)."""

    engine: str = "faiss"
    space_type: str | None = None
    """None: the space the bundle's manifest names (inner product for the two-tower model)."""
    m: int = 16
    ef_construction: int = 128
    ef_search: int = 100
    shards: int = 1
    replicas: int = 1
    refresh_interval: str | None = None
    """Restored after the load; None: the cluster default (1s)."""


@dataclass(frozen=True)
class IndexerSettings:
    """Everything a run needs; see the table in docs/architecture.md."""

    bundle: str | None = None
    """Bundle location (path or ``s3://bucket/prefix``); None: not configured (``artifacts/bundle`` locally)."""
    embedded_store: str = "artifacts/index"
    opensearch_url: str | None = None
    """None: write the embedded store instead of OpenSearch."""
    alias: str = "movies"
    opensearch_username: str | None = None
    opensearch_password: str | None = None
    opensearch_service: str | None = None
    """SigV4 service (``es`` or ``aoss``); None: guessed from an ``*.amazonaws.com`` host, else unsigned."""
    redis_url: str | None = None
    redis_auth_secret_arn: str | None = None
    aws_region: str | None = None
    s3_bucket: str | None = None
    s3_key: str | None = None
    keep: int = 2
    """Earlier indices kept for ``recs index rollback``; older ones are deleted."""
    index: IndexParams = field(default_factory=IndexParams)
    bulk_docs: int = 500
    bulk_bytes: int = 5_000_000
    max_retries: int = 6
    backoff_seconds: float = 0.5
    """First back-off after a 429 or 5xx; doubles on each retry, capped at 30 s."""
    request_timeout: float = 60.0
    lock_ttl: float = 120.0
    """Seconds the run lock lives without a heartbeat (a crashed run frees it after this long)."""
    lock_wait: float = 0.0
    """Seconds a run waits for a busy lock before giving up (0: exit at once)."""
    probes: int = 3
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
        env = os.environ if env is None else env
        given = {k: v for k, v in (overrides or {}).items() if v is not None}

        def pick(name: str, var: str, parse: Callable[[str], T], default: T) -> T:
            if name in given:
                return given[name]  # type: ignore[no-any-return,unused-ignore]
            raw = env.get(var, "").strip()
            if not raw:
                return default
            try:
                return parse(raw)
            except ValueError as exc:
                raise SettingsError(f"{var}={raw!r}: {exc}") from exc

        def text(raw: str) -> str:
            return raw

        index = IndexParams(
            engine=pick("engine", "RECS_INDEX_ENGINE", text, "faiss"),
            space_type=pick("space_type", "RECS_INDEX_SPACE_TYPE", text, None),
            m=pick("m", "RECS_INDEX_M", int, 16),
            ef_construction=pick("ef_construction", "RECS_INDEX_EF_CONSTRUCTION", int, 128),
            ef_search=pick("ef_search", "RECS_INDEX_EF_SEARCH", int, 100),
            shards=pick("shards", "RECS_INDEX_SHARDS", int, 1),
            replicas=pick("replicas", "RECS_INDEX_REPLICAS", int, 1),
            refresh_interval=pick("refresh_interval", "RECS_INDEX_REFRESH_INTERVAL", text, None),
        )
        settings = cls(
            bundle=pick("bundle", "RECS_BUNDLE", text, None),
            embedded_store=pick("embedded_store", "RECS_EMBEDDED_STORE", text, "artifacts/index"),
            opensearch_url=pick("opensearch_url", "RECS_OPENSEARCH_URL", text, None),
            alias=pick("alias", "RECS_OPENSEARCH_ALIAS", text, "movies"),
            opensearch_username=pick("opensearch_username", "RECS_OPENSEARCH_USERNAME", text, None),
            opensearch_password=pick("opensearch_password", "RECS_OPENSEARCH_PASSWORD", text, None),
            opensearch_service=pick("opensearch_service", "RECS_OPENSEARCH_SERVICE", text, None),
            redis_url=pick("redis_url", "RECS_REDIS_URL", text, None),
            redis_auth_secret_arn=pick("redis_auth_secret_arn", "RECS_REDIS_AUTH_SECRET_ARN", text, None),
            aws_region=pick("aws_region", "RECS_AWS_REGION", text,
                            env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None),
            s3_bucket=pick("s3_bucket", "RECS_S3_BUCKET", text, None),
            s3_key=pick("s3_key", "RECS_S3_KEY", text, None),
            keep=pick("keep", "RECS_INDEX_KEEP", int, 2),
            index=index,
            bulk_docs=pick("bulk_docs", "RECS_INDEX_BULK_DOCS", int, 500),
            bulk_bytes=pick("bulk_bytes", "RECS_INDEX_BULK_BYTES", int, 5_000_000),
            max_retries=pick("max_retries", "RECS_INDEX_MAX_RETRIES", int, 6),
            backoff_seconds=pick("backoff_seconds", "RECS_INDEX_BACKOFF_SECONDS", float, 0.5),
            request_timeout=pick("request_timeout", "RECS_INDEX_TIMEOUT_SECONDS", float, 60.0),
            lock_ttl=pick("lock_ttl", "RECS_INDEX_LOCK_TTL_SECONDS", float, 120.0),
            lock_wait=pick("lock_wait", "RECS_INDEX_LOCK_WAIT_SECONDS", float, 0.0),
            probes=pick("probes", "RECS_INDEX_PROBES", int, 3),
        )
        settings.validate()
        return settings

    def with_overrides(self, **changes: Any) -> IndexerSettings:
        """A validated copy with some fields replaced (None values are ignored)."""
        index_fields = set(IndexParams.__dataclass_fields__)
        index_changes = {k: v for k, v in changes.items() if k in index_fields and v is not None}
        own = {k: v for k, v in changes.items() if k not in index_fields and v is not None}
        updated = replace(self, index=replace(self.index, **index_changes), **own)
        updated.validate()
        return updated

    def validate(self) -> None:
        """Raise ``SettingsError`` naming the first invalid value."""
        checks: list[tuple[bool, str]] = [
            (self.index.engine in ENGINES, f"RECS_INDEX_ENGINE must be one of {', '.join(ENGINES)}, "
                                          f"not {self.index.engine!r}"),
            (self.index.space_type is None or self.index.space_type in SPACE_TYPES,
             f"RECS_INDEX_SPACE_TYPE must be one of {', '.join(SPACE_TYPES)}, not {self.index.space_type!r}"),
            (2 <= self.index.m <= 100, f"RECS_INDEX_M must be within 2..100, not {self.index.m}"),
            (self.index.ef_construction >= 2, "RECS_INDEX_EF_CONSTRUCTION must be at least 2"),
            (self.index.ef_search >= 1, "RECS_INDEX_EF_SEARCH must be at least 1"),
            (self.index.shards >= 1, "RECS_INDEX_SHARDS must be at least 1"),
            (self.index.replicas >= 0, "RECS_INDEX_REPLICAS must be 0 or more"),
            (bool(_ALIAS_RE.match(self.alias)),
             f"RECS_OPENSEARCH_ALIAS {self.alias!r} must be lower-case letters, digits, '-', '_' or '.'"),
            (self.keep >= 0, "RECS_INDEX_KEEP must be 0 or more"),
            (self.bulk_docs >= 1, "RECS_INDEX_BULK_DOCS must be at least 1"),
            (self.bulk_bytes >= 1024, "RECS_INDEX_BULK_BYTES must be at least 1024"),
            (self.max_retries >= 0, "RECS_INDEX_MAX_RETRIES must be 0 or more"),
            (self.backoff_seconds >= 0, "RECS_INDEX_BACKOFF_SECONDS must be 0 or more"),
            (self.request_timeout > 0, "RECS_INDEX_TIMEOUT_SECONDS must be positive"),
            (self.lock_ttl >= 1, "RECS_INDEX_LOCK_TTL_SECONDS must be at least 1"),
            (self.lock_wait >= 0, "RECS_INDEX_LOCK_WAIT_SECONDS must be 0 or more"),
            (self.probes >= 0, "RECS_INDEX_PROBES must be 0 or more"),
            (not self.opensearch_url or self.opensearch_url.startswith(("http://", "https://")),
             f"RECS_OPENSEARCH_URL must start with http:// or https://, not {self.opensearch_url!r}"),
            (self.opensearch_service in (None, "es", "aoss"),
             f"RECS_OPENSEARCH_SERVICE must be 'es' or 'aoss', not {self.opensearch_service!r}"),
            (not self.redis_url or self.redis_url.startswith(("redis://", "rediss://", "unix://")),
             f"RECS_REDIS_URL must start with redis://, rediss:// or unix://, not {self.redis_url!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise SettingsError(message)
