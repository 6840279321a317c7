"""The retraining job's settings (``RECS_RETRAIN_*`` and the live index's ``RECS_*``), read once, validated.

The local defaults fit ``recs up``: data ``data/ml-latest-small``, bundles published into the bundle root
``artifacts/bundles/`` (``recs serve --bundle artifacts/bundles/`` serves the live one), the live index in
the embedded store ``artifacts/index``, and a live model that ``recs up`` trained found in
``artifacts/bundle``. Deployed (the Fargate task) the data is ``s3://<bucket>/ratings/``, the root
``s3://<bucket>/bundles/``, the live index OpenSearch and the lock Redis. docs/operations.md lists them all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.aws import SIGV4_SERVICES
from core.errors import SettingsError as CoreSettingsError
from core.locations import is_s3
from core.settings import check, load, setting
from training.errors import TrainingError

DEFAULT_DATA = "data/ml-latest-small"
DEFAULT_BUNDLE_ROOT = "artifacts/bundles/"
LOCAL_LIVE_BUNDLE = "artifacts/bundle"
"""Where ``recs up`` and ``recs train`` put the local bundle: the live model's bundle when it is not under the root."""


class RetrainSettingsError(TrainingError, CoreSettingsError):
    """A retraining setting is missing or invalid; the message names the variable."""


@dataclass(frozen=True)
class RetrainSettings:
    settings_error = RetrainSettingsError

    data: str = setting("RECS_RETRAIN_DATA", default=DEFAULT_DATA)
    """The ratings and movies: a MovieLens directory, or an ``s3://bucket/prefix/`` holding its files."""
    bundle_root: str = setting("RECS_RETRAIN_BUNDLE_ROOT", default=DEFAULT_BUNDLE_ROOT)
    """Where bundles are published (``<root><model_version>/``) and the live model's bundle is looked up."""
    live_bundle: str | None = setting("RECS_RETRAIN_LIVE_BUNDLE", default=None)
    """Another place to find the live model's bundle when it is not under the root (its model version must
    match the live index's); unset with a local root: ``artifacts/bundle``."""
    tolerance: float = setting("RECS_RETRAIN_TOLERANCE", default=0.005)
    """How much lower the new model's Recall@10 and NDCG@10 may be than the live model's (absolute)."""
    parity_tolerance: float = setting("RECS_RETRAIN_PARITY_TOLERANCE", default=1e-4)
    """Largest |Keras - numpy| difference of the exported towers that passes the parity check."""
    skip_unchanged: bool = setting("RECS_RETRAIN_SKIP_UNCHANGED", default=True)
    """Do nothing (exit 4) when the data is byte for byte what the live model was retrained on."""
    lock_ttl: float = setting("RECS_RETRAIN_LOCK_TTL_SECONDS", default=300.0)
    """Seconds the retrain lock lives without being extended (a crashed run frees it after this long)."""
    lock_wait: float = setting("RECS_RETRAIN_LOCK_WAIT_SECONDS", default=0.0)
    """Seconds to wait for another retrain's lock (0: exit 75 at once)."""
    topic_arn: str | None = setting("RECS_RETRAIN_TOPIC_ARN", default=None)
    """An SNS topic the report's summary and the decision are published to (deployed: the alarm topic)."""
    work_dir: str | None = setting("RECS_RETRAIN_WORK_DIR", default=None)
    """Where S3 data is downloaded and the candidate bundle written (default: a temporary directory)."""

    embedded_store: str = setting("RECS_EMBEDDED_STORE", default="artifacts/index")
    opensearch_url: str | None = setting("RECS_OPENSEARCH_URL", default=None)
    alias: str = setting("RECS_OPENSEARCH_ALIAS", default="movies")
    opensearch_username: str | None = setting("RECS_OPENSEARCH_USERNAME", default=None)
    opensearch_password: str | None = setting("RECS_OPENSEARCH_PASSWORD", default=None, secret=True)
    opensearch_service: str | None = setting("RECS_OPENSEARCH_SERVICE", default=None)
    redis_url: str | None = setting("RECS_REDIS_URL", default=None)
    redis_auth_secret_arn: str | None = setting("RECS_REDIS_AUTH_SECRET_ARN", default=None)
    aws_region: str | None = setting("RECS_AWS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION", default=None)

    @classmethod
    def from_env(cls, overrides: Mapping[str, Any] | None = None,
                 env: Mapping[str, str] | None = None) -> RetrainSettings:
        return load(cls, os.environ if env is None else env, **dict(overrides or {}))

    @property
    def root(self) -> str:
        """The bundle root with its trailing ``/``."""
        return self.bundle_root if self.bundle_root.endswith("/") else f"{self.bundle_root}/"

    @property
    def live_bundle_fallback(self) -> str | None:
        if self.live_bundle:
            return self.live_bundle
        return None if is_s3(self.bundle_root) else LOCAL_LIVE_BUNDLE

    def __post_init__(self) -> None:
        check(bool(self.data.strip()), self, "data", "must name a directory or an s3:// prefix")
        check(bool(self.bundle_root.strip()), self, "bundle_root", "must name a directory or an s3:// prefix")
        check(0 <= self.tolerance < 1, self, "tolerance", f"must be in [0, 1), not {self.tolerance}")
        check(0 <= self.parity_tolerance <= 1, self, "parity_tolerance", "must be in [0, 1]")
        check(self.lock_ttl >= 10, self, "lock_ttl", "must be at least 10 seconds")
        check(self.lock_wait >= 0, self, "lock_wait", "must be 0 or more")
        check(self.topic_arn is None or self.topic_arn.startswith("arn:"), self, "topic_arn", "must be an SNS ARN")
        check(not self.opensearch_url or self.opensearch_url.startswith(("http://", "https://")), self,
              "opensearch_url", f"must start with http:// or https://, not {self.opensearch_url!r}")
        check(self.opensearch_service in (None, *SIGV4_SERVICES), self, "opensearch_service", "must be 'es' or 'aoss'")
        check(not self.redis_url or self.redis_url.startswith(("redis://", "rediss://", "unix://")), self,
              "redis_url", f"must start with redis://, rediss:// or unix://, not {self.redis_url!r}")
