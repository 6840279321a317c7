"""The service's answers in the cache (the ``Cache`` port), and what a failing cache costs: nothing.

Keys: ``recs:cache:<model_version>:<catalog generation>:<fingerprint>``, the model the request
was resolved to and the generation of the catalog (Redis's ``recs:catalog:generation``, else the
index's), so a new model or a catalog update never serves an older answer. Entries are the
encodings of ``recommender.answers``. A cache that fails is logged, counted (``CacheErrors``) and
skipped: the answer is served uncached, never an error; an unreadable entry is recomputed.
"""

from __future__ import annotations

import json
import logging

from recommender.answers import MovieSearch, Recommendations, SimilarMovies
from recommender.errors import CacheUnavailableError, IndexUnavailableError
from recommender.ports import Cache, Telemetry, VectorIndex, timed

log = logging.getLogger(__name__)

CACHE_KEY_PREFIX = "recs:cache:"


class AnswerCache:
    """Cached answers on ``cache``, with the catalog generation of ``cache`` or else ``index``."""

    def __init__(self, cache: Cache, index: VectorIndex, ttl_seconds: int, telemetry: Telemetry) -> None:
        self.cache = cache
        self.index = index
        self.ttl_seconds = ttl_seconds
        self.telemetry = telemetry

    @staticmethod
    def key(model_version: str | None, generation: int, fingerprint: str) -> str:
        return f"{CACHE_KEY_PREFIX}{model_version}:{generation}:{fingerprint}"

    def generation(self) -> int | None:
        """The catalog generation for cache keys; ``None`` when the cache cannot be used now."""
        try:
            shared = self.cache.generation()
        except CacheUnavailableError as exc:
            self._failed(exc)
            return None
        if shared is not None:
            return shared
        try:
            return self.index.generation()
        except IndexUnavailableError:
            return 0

    def recommendations(self, key: str, model_version: str) -> Recommendations | None:
        """The cached answer under ``key`` when it is readable and of ``model_version``."""
        with timed(self.telemetry, "CacheLookupTime"):
            raw = self._get(key)
        if raw is not None:
            try:
                result = Recommendations.from_cache(raw)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring an unreadable cache entry %s: %s", key, exc)
            else:
                if result.model_version == model_version:
                    self.telemetry.count("CacheHits")
                    return result
                log.warning("ignoring cache entry %s of model %s", key, result.model_version)
        self.telemetry.count("CacheMisses")
        return None

    def similar(self, key: str, model_version: str) -> SimilarMovies | None:
        raw = self._get(key)
        if raw is not None:
            try:
                payload = json.loads(raw)
                self.telemetry.count("CacheHits")
                return SimilarMovies.from_cache(model_version, payload)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring an unreadable cache entry %s: %s", key, exc)
        self.telemetry.count("CacheMisses")
        return None

    def search(self, key: str, model_version: str) -> MovieSearch | None:
        raw = self._get(key)
        if raw is not None:
            try:
                found = MovieSearch.from_cache(model_version, raw)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring an unreadable cache entry %s: %s", key, exc)
            else:
                self.telemetry.count("CacheHits")
                return found
        self.telemetry.count("CacheMisses")
        return None

    def put(self, key: str, value: bytes) -> None:
        try:
            self.cache.set(key, value, self.ttl_seconds)
        except CacheUnavailableError as exc:
            self._failed(exc)

    def _get(self, key: str) -> bytes | None:
        try:
            return self.cache.get(key)
        except CacheUnavailableError as exc:
            self._failed(exc)
            return None

    def _failed(self, exc: Exception) -> None:
        log.warning("cache unavailable, serving uncached: %s", exc)
        self.telemetry.count("CacheErrors")
