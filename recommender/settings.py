"""The recommender's settings: one frozen object, read once from ``RECS_*`` variables.

An explicit argument beats the environment (``ServiceSettings.from_env(bundle=...)``).
Every value is validated here, at start-up, so a typo in a variable fails with a
message naming it instead of a confusing error on the first request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import urlparse

from recommender.aws_auth import sigv4_service_for

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


class SettingsError(ValueError):
    """A setting (argument or ``RECS_*`` variable) has an invalid value."""


def _env_name(field_name: str) -> str:
    return "RECS_" + field_name.upper()


def _in_lambda(env: Mapping[str, str]) -> bool:
    return bool(env.get("AWS_LAMBDA_FUNCTION_NAME"))


@dataclass(frozen=True)
class ServiceSettings:
    """Everything the API needs to build its bundle, index, cache and telemetry."""

    bundle: str = DEFAULT_BUNDLE
    """Local bundle directory or ``s3://bucket/prefix``: one fixed bundle. Ending in ``/`` it is a bundle
    ROOT (``s3://bucket/bundles/``, ``artifacts/bundles/``): the bundle served is ``<root><model version
    of the live index>/``, and a refresh to another model switches the user tower with it."""
    embedded_store: str = DEFAULT_EMBEDDED_STORE
    """The embedded store directory read by ``NumpyIndex`` (falls back to the bundle's vectors)."""
    opensearch_url: str | None = None
    """``https://host[:port]``; unset selects the embedded index."""
    opensearch_alias: str = DEFAULT_ALIAS
    opensearch_username: str | None = None
    opensearch_password: str | None = None
    opensearch_timeout_seconds: float = 2.0
    opensearch_max_retries: int = 1
    opensearch_service: str | None = None
    """SigV4 service name: ``es`` (managed domains) or ``aoss`` (serverless); guessed from the host."""
    model_check_seconds: float = 10.0
    """How long the live index's model version (OpenSearch ``_meta.model_version``) is trusted before
    it is read again; every search also checks the model of the index its answer came from."""
    aws_region: str | None = None
    redis_url: str | None = None
    """``redis://`` or ``rediss://`` URL; unset selects the in-process LRU cache."""
    redis_auth_secret_arn: str | None = None
    redis_timeout_seconds: float = 0.25
    redis_retry_after_seconds: float = 5.0
    """After a Redis failure, skip Redis (serve uncached) for this long before trying again."""
    cache_ttl_seconds: int = 300
    cache_max_entries: int = 10_000
    bundle_cache_dir: str | None = None
    """Where an ``s3://`` bundle is downloaded (default: a folder under the temp directory)."""
    index_fallback: str = "popular"
    """When the vector index is unreachable: ``popular`` (answer with the bundle's popular movies,
    flagged ``fallback``) or ``none`` (answer 503)."""
    max_body_bytes: int = MAX_BODY_BYTES
    metrics_enabled: bool = False
    """Emit CloudWatch EMF metrics; on by default inside Lambda, off locally (no stdout spam)."""
    metrics_namespace: str = "MovieRecs"
    service_name: str = "recommender"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ServiceSettings:
        """Settings from ``RECS_*`` variables, then ``overrides`` (``None`` values are ignored)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {"metrics_enabled": _in_lambda(env)}
        if env.get("AWS_REGION"):
            values["aws_region"] = env["AWS_REGION"]
        for f in fields(cls):
            raw = env.get(_env_name(f.name))
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, raw, cls.__dataclass_fields__[f.name].default)
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        settings = cls(**values)
        settings.validate()
        return settings

    def with_overrides(self, **overrides: Any) -> ServiceSettings:
        settings = replace(self, **{k: v for k, v in overrides.items() if v is not None})
        settings.validate()
        return settings

    def validate(self) -> None:
        def bad(name: str, why: str) -> SettingsError:
            return SettingsError(f"{_env_name(name)}: {why}")

        if not self.bundle:
            raise bad("bundle", "must name a bundle directory or s3:// prefix")
        if self.bundle.startswith("s3://") and len(self.bundle) <= len("s3://"):
            raise bad("bundle", "an s3:// URI needs a bucket")
        if self.opensearch_url:
            parsed = urlparse(self.opensearch_url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise bad("opensearch_url", f"{self.opensearch_url!r} is not an http(s)://host[:port] URL")
        if self.opensearch_service not in (None, "es", "aoss"):
            raise bad("opensearch_service", "must be 'es' or 'aoss'")
        if self.redis_url and urlparse(self.redis_url).scheme not in ("redis", "rediss", "unix"):
            raise bad("redis_url", f"{self.redis_url!r} is not a redis://, rediss:// or unix:// URL")
        if self.index_fallback not in FALLBACK_MODES:
            raise bad("index_fallback", f"must be one of {', '.join(FALLBACK_MODES)}")
        for name in ("opensearch_timeout_seconds", "redis_timeout_seconds"):
            if getattr(self, name) <= 0:
                raise bad(name, "must be positive")
        for name in ("opensearch_max_retries", "redis_retry_after_seconds", "cache_ttl_seconds", "model_check_seconds"):
            if getattr(self, name) < 0:
                raise bad(name, "must not be negative")
        if self.cache_max_entries < 1:
            raise bad("cache_max_entries", "must be at least 1")
        if not 1024 <= self.max_body_bytes <= 10 * 1024 * 1024:
            raise bad("max_body_bytes", "must be between 1024 and 10485760 (API Gateway's own limit)")

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
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if out.get("opensearch_password"):
            out["opensearch_password"] = "***"
        return out


def _parse(name: str, raw: str, default: Any) -> Any:
    env_name = _env_name(name)
    if isinstance(default, bool):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{env_name}: {raw!r} is not a boolean (true/false)")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{env_name}: {raw!r} is not an integer") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(f"{env_name}: {raw!r} is not a number") from None
    return raw.strip()
