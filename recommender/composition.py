"""The one place that builds the service from settings, lazily and once per process.

Nothing here runs at import. The first request (or ``recs serve`` at start-up) calls
``get_container()``, which reads the settings, loads the bundle (local or ``s3://``), and picks the
adapters: ``OpenSearchIndex`` when ``RECS_OPENSEARCH_URL`` is set, else ``NumpyIndex`` over the
embedded store (or the bundle); ``RedisCache`` when ``RECS_REDIS_URL`` is set, else
``MemoryCache``. Warm Lambda invocations reuse the container.

A failed build is not cached for good: the next request after ``RETRY_BUILD_AFTER_SECONDS``
tries again (a bundle fixed in S3 is picked up without a redeploy).

``RECS_BUNDLE`` ending in ``/`` is a bundle root: nothing is loaded from it until the live index
says its model version, then ``<root><version>/`` (``recommender.live_model``); the build tries that
once, so a cold start loads the user tower before the first request as with a fixed bundle.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.aws import opensearch_client, redis_auth_token
from core.bundle import CATALOG, MANIFEST, USER_TOWER, Bundle, open_bundle
from core.errors import BundleError, ConnectionSetupError, EmbeddedStoreError, LocationError
from core.locations import is_s3
from recommender.errors import CompositionError, IndexUnavailableError, ModelMismatchError
from recommender.live_model import LiveModel, ServingModel
from recommender.ports import Cache, NoTelemetry, VectorIndex
from recommender.service import RecommendationService
from recommender.settings import ServiceSettings

log = logging.getLogger(__name__)

RETRY_BUILD_AFTER_SECONDS = 10.0
_MODEL_FOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")


@dataclass
class Container:
    settings: ServiceSettings
    service: RecommendationService
    telemetry: Any
    """``EmfTelemetry`` when metrics are enabled, else ``None``."""
    tracing: Any
    """``recommender.observability.Tracing``."""

    @property
    def bundle(self) -> Bundle | None:
        """The bundle of the serving model (``None`` with a bundle root before one is loaded)."""
        model = self.service.models.current()
        return None if model is None else model.bundle


def load_bundle(settings: ServiceSettings, files: list[str] | None = None, location: str | None = None) -> Bundle:
    """Open the configured bundle (or ``location``); an ``s3://`` one is downloaded (only ``files`` when given)."""
    return open_bundle(location or settings.bundle, cache_dir=settings.bundle_cache_dir, files=files)


def bundle_location(settings: ServiceSettings, model_version: str) -> str:
    """``<root><model_version>`` under the bundle root ``RECS_BUNDLE``; the version must be one folder name."""
    if not _MODEL_FOLDER.match(model_version) or ".." in model_version:
        raise BundleError(f"the index's model version {model_version!r} is not a bundle folder name")
    return f"{settings.bundle}{model_version}"


def load_serving_model(settings: ServiceSettings, model_version: str) -> ServingModel:
    """The user tower of ``<root><model_version>/`` (manifest and tower only; the catalog later, for the
    popularity fallback). Raises ``BundleError``, also when the manifest names another model."""
    location = bundle_location(settings, model_version)
    bundle = load_bundle(settings, files=[MANIFEST, USER_TOWER], location=location)
    if bundle.model_version != model_version:
        raise BundleError(f"{location}: its manifest says model {bundle.model_version!r}, not {model_version!r}")
    tower = bundle.user_tower
    fallback = None
    if settings.opensearch_url and settings.index_fallback == "popular":
        def fallback() -> VectorIndex:
            return _popularity_fallback(settings, bundle, location)

    return ServingModel(model_version, tower, bundle, fallback)


def redis_password(settings: ServiceSettings) -> str | None:
    """The ElastiCache auth token from Secrets Manager (``core.aws.redis_auth_token``), or ``None``."""
    if not settings.redis_auth_secret_arn:
        return None
    try:
        return redis_auth_token(settings.redis_auth_secret_arn, settings.aws_region)
    except ConnectionSetupError as exc:
        raise CompositionError(str(exc)) from exc


def build_index(settings: ServiceSettings, bundle: Bundle | None) -> VectorIndex:
    """OpenSearch or the embedded store; ``bundle`` is ``None`` for a bundle root (the index follows
    whatever model the store or the alias serves)."""
    if settings.opensearch_url:
        from recommender.adapters.opensearch_index import OpenSearchIndex

        space_type = bundle.manifest.space_type if bundle is not None else "innerproduct"
        return OpenSearchIndex(
            _opensearch_client(settings), settings.opensearch_alias, space_type, settings.model_check_seconds
        )
    from core.embedded_store import EmbeddedStore
    from recommender.adapters.numpy_index import NumpyIndex

    store = EmbeddedStore(settings.embedded_store) if settings.embedded_store else None
    if bundle is None:
        if store is None:
            raise ValueError("RECS_BUNDLE is a bundle root: it needs RECS_OPENSEARCH_URL or RECS_EMBEDDED_STORE")
        return NumpyIndex.from_store(store)
    return NumpyIndex.from_bundle(bundle, store)


def _opensearch_client(settings: ServiceSettings) -> Any:
    assert settings.opensearch_url
    return opensearch_client(
        settings.opensearch_url,
        username=settings.opensearch_username,
        password=settings.opensearch_password,
        service=settings.opensearch_service,
        region=settings.aws_region,
        timeout_seconds=settings.opensearch_timeout_seconds,
        max_retries=settings.opensearch_max_retries,
    )


def _redis_client(settings: ServiceSettings) -> Any:
    """A new Redis client, with the auth token read again from Secrets Manager."""
    from recommender.adapters.redis_cache import redis_client

    assert settings.redis_url
    return redis_client(settings.redis_url, password=redis_password(settings),
                        timeout_seconds=settings.redis_timeout_seconds)


def build_cache(settings: ServiceSettings) -> Cache:
    if settings.redis_url:
        from recommender.adapters.redis_cache import RedisCache

        return RedisCache(
            settings.redis_url,
            retry_after_seconds=settings.redis_retry_after_seconds,
            client=_redis_client(settings),
        )
    from recommender.adapters.memory_cache import MemoryCache

    return MemoryCache(settings.cache_max_entries)


def _popularity_fallback(settings: ServiceSettings, bundle: Bundle, location: str | None = None) -> VectorIndex:
    """Popular movies from the bundle's catalog, for when OpenSearch cannot answer."""
    import numpy as np

    from recommender.adapters.numpy_index import NumpyIndex

    location = location or settings.bundle
    if is_s3(location) and not (bundle.path / CATALOG).is_file():
        bundle = load_bundle(settings, files=[CATALOG], location=location)
    catalog = bundle.catalog
    return NumpyIndex.from_arrays(catalog, np.zeros((len(catalog), 0), np.float32), bundle.model_version)


def build_container(settings: ServiceSettings) -> Container:
    """Build everything the handler needs; raises ``CompositionError`` naming what failed."""
    from recommender.observability import EmfTelemetry, Tracing, tracing_wanted

    popular_fallback = bool(settings.opensearch_url) and settings.index_fallback == "popular"
    try:
        if settings.bundle_is_root:
            index = build_index(settings, None)
            models = LiveModel(
                index, loader=lambda version: load_serving_model(settings, version),
                retry_after_seconds=RETRY_BUILD_AFTER_SECONDS,
            )
        else:
            # With OpenSearch the function needs only the user tower (and the catalog, lazily, for the
            # fallback); the embedded index needs the vectors too.
            files = [MANIFEST, USER_TOWER] if settings.opensearch_url else None
            bundle = load_bundle(settings, files=files)
            tower = bundle.user_tower  # verifies the hash and shapes now, not on the first request
            index = build_index(settings, bundle)
            if not settings.opensearch_url:
                index.generation()  # loads (and verifies) the embedded vectors now
            fallback = None
            if popular_fallback:
                def fallback() -> VectorIndex:
                    return _popularity_fallback(settings, bundle)

            models = LiveModel(index, fixed=ServingModel(bundle.model_version, tower, bundle, fallback))
        cache = build_cache(settings)
    except (BundleError, EmbeddedStoreError, ConnectionSetupError, LocationError, OSError, ValueError) as exc:
        if settings.bundle_is_root is False and isinstance(exc, BundleError) and _holds_bundles(settings.bundle):
            exc = BundleError(f"{exc} ({settings.bundle} holds bundles in subfolders: end RECS_BUNDLE with '/' "
                              "to serve the one of the live index's model)")
        raise CompositionError(str(exc)) from exc
    if settings.bundle_is_root:
        try:  # load the live model's user tower now rather than on the first request
            models.resolve()
        except (IndexUnavailableError, ModelMismatchError) as exc:
            log.warning("no model to serve yet (%s); every request tries again", exc)
    telemetry = EmfTelemetry(settings.metrics_namespace, settings.service_name) if settings.metrics_enabled else None
    service = RecommendationService(
        index=index,
        cache=cache,
        models=models,
        cache_ttl_seconds=settings.cache_ttl_seconds,
        popular_fallback=popular_fallback,
        telemetry=telemetry if telemetry is not None else NoTelemetry(),
    )
    return Container(settings, service, telemetry, Tracing(tracing_wanted()))


def _holds_bundles(path: str) -> bool:
    """A local directory without a manifest whose subfolders have one (a bundle root without its '/')."""
    if is_s3(path):
        return False
    root = Path(path)
    return root.is_dir() and not (root / MANIFEST).exists() and any(root.glob(f"*/{MANIFEST}"))


_lock = threading.Lock()
_container: Container | None = None
_configured: ServiceSettings | None = None
_failure: tuple[float, CompositionError] | None = None


def configure(settings: ServiceSettings | None) -> None:
    """Use ``settings`` instead of the environment (local server, tests); drops any built container."""
    global _configured, _container, _failure
    with _lock:
        _configured = settings
        _container = None
        _failure = None


def reset() -> None:
    """Forget the built container and any configured settings (tests)."""
    configure(None)


def reconnect() -> None:
    """After a SnapStart restore (``recommender.snapstart``): the built container gets new OpenSearch and Redis
    clients, so no connection, SigV4 credential or Redis auth token captured in the snapshot is used again (the
    token is read from Secrets Manager again); the index's model is read again on the next request, a bundle
    that failed to load is retried at once, and an in-process cache starts empty. A failed build before the
    snapshot is retried by the next request at once.

    Never raises: when a client cannot be rebuilt (the secret unreadable, say) the container is dropped and the
    next request builds everything again, as after a cold start (logged)."""
    global _container, _failure
    with _lock:
        _failure = None
        container = _container
        if container is None:
            return
        try:
            _reconnect(container)
        except (CompositionError, ConnectionSetupError, OSError, ValueError) as exc:
            log.warning("after the restore the clients could not be rebuilt (%s); the next request builds the "
                        "service again", exc)
            _container = None


def _reconnect(container: Container) -> None:
    from recommender.adapters.memory_cache import MemoryCache
    from recommender.adapters.opensearch_index import OpenSearchIndex
    from recommender.adapters.redis_cache import RedisCache

    settings, service = container.settings, container.service
    if isinstance(service.index, OpenSearchIndex):
        service.index.reconnect(_opensearch_client(settings))
    if isinstance(service.cache, RedisCache):
        service.cache.reconnect(_redis_client(settings))
    elif isinstance(service.cache, MemoryCache):
        service.cache.clear()
    service.models.forget_failures()


def peek() -> Container | None:
    """The container if it has been built, without building it."""
    return _container


def get_container() -> Container:
    """The process's container, built on first use; raises ``CompositionError``."""
    global _container, _failure
    container = _container
    if container is not None:
        return container
    with _lock:
        if _container is not None:
            return _container
        if _failure is not None and time.monotonic() - _failure[0] < RETRY_BUILD_AFTER_SECONDS:
            raise _failure[1]
        try:
            settings = _configured or ServiceSettings.from_env()
            _container = build_container(settings)
        except CompositionError as exc:
            _failure = (time.monotonic(), exc)
            raise
        except ValueError as exc:  # SettingsError
            error = CompositionError(str(exc))
            _failure = (time.monotonic(), error)
            raise error from exc
        _failure = None
        return _container


def bundle_path_for_display(settings: ServiceSettings) -> str:
    return settings.bundle if is_s3(settings.bundle) else str(Path(settings.bundle).resolve())
