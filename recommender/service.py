"""The recommendation service: history -> user tower -> k-NN with filters -> cache -> ranked movies.

It knows nothing about HTTP or Lambda (``recommender.handler`` maps requests and errors) and
nothing about OpenSearch or Redis (it talks to the ports in ``recommender.ports``).

Rules it implements (documented in the README's "The API"):

- History order is as sent, most recent last; when every item carries a ``timestamp`` the
  history is ordered by it (stable). The user tower reads the last ``history_length`` items.
- A history movie id is *known* when the user tower has an embedding for it or the index holds
  it (a movie added after training gets the out-of-vocabulary embedding). Unknown ids are
  ignored and listed in ``ignored_movie_ids``.
- ``exclude_seen`` drops every known history movie inside the k-NN query, so the answer still
  has ``k`` items when that many qualify.
- No usable history -> the most popular movies under the same filters (``strategy: popular``).
- Index unreachable -> ``IndexUnavailableError``, or with the ``popular`` fallback the bundle's
  popular movies under the same filters, flagged ``fallback: "popular"`` and never cached.
- A user vector is only compared with movie vectors of its own model: the serving model is resolved
  against the live index's model per request (``recommender.live_model``) and the search checks it.
  When no tower of the index's model can serve (a fixed bundle of another model, or the bundle of the
  new model cannot be loaded) -> ``ModelMismatchError`` (503 ``model_mismatch``), or with the
  ``popular`` fallback the live catalog's popular movies, flagged ``fallback: "popular"``, never cached.
- Cache unreachable -> served uncached (logged, counted), never an error.
- Cache keys: ``recs:cache:<model_version>:<catalog generation>:<sha256 of the request>``, with the
  model the request was resolved to (and a cached answer of another model is ignored).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from core.errors import BundleError
from core.features import Movie
from core.title_search import title_terms
from core.towers import UserTower
from recommender.errors import CacheUnavailableError, IndexUnavailableError, ModelMismatchError, MovieNotFoundError
from recommender.live_model import LiveModel, ServingModel
from recommender.ports import NO_FILTERS, BackendStatus, Cache, Filters, Hit, VectorIndex

log = logging.getLogger(__name__)

CACHE_KEY_PREFIX = "recs:cache:"
CACHE_FORMAT = 1
LIKED_MIN_RATING = 3.0
"""``explain`` names history movies rated at least this (or unrated) as the ones "you liked"."""
EXPLAIN_PER_ITEM = 3


class Telemetry(Protocol):
    """Where the service reports timings and counts (CloudWatch EMF in Lambda, nothing locally)."""

    def timing(self, name: str, milliseconds: float) -> None: ...

    def count(self, name: str, value: int = 1) -> None: ...


class NoTelemetry:
    def timing(self, name: str, milliseconds: float) -> None:
        pass

    def count(self, name: str, value: int = 1) -> None:
        pass


@dataclass(frozen=True)
class HistoryItem:
    movie_id: int
    rating: float | None = None
    timestamp: int | None = None


@dataclass(frozen=True)
class RecommendationQuery:
    history: Sequence[HistoryItem] = ()
    k: int = 10
    exclude_seen: bool = True
    filters: Filters = NO_FILTERS

    def ordered_history(self) -> list[HistoryItem]:
        items = list(self.history)
        if items and all(h.timestamp is not None for h in items):
            items.sort(key=lambda h: h.timestamp)  # type: ignore[arg-type, return-value]
        return items

    def fingerprint(self) -> str:
        canonical = {
            "f": CACHE_FORMAT,
            "h": [[h.movie_id, h.rating] for h in self.ordered_history()],
            "k": self.k,
            "x": self.exclude_seen,
            "filters": self.filters.canonical(),
        }
        raw = json.dumps(canonical, separators=(",", ":"), sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class Recommendations:
    model_version: str
    items: list[Hit]
    strategy: str
    """``personalized`` (user tower + k-NN) or ``popular`` (no usable history)."""
    ignored_movie_ids: list[int] = field(default_factory=list)
    history_used: int = 0
    cached: bool = False
    fallback: str | None = None
    """``popular`` when the index could not answer and the popularity fallback did."""

    def to_cache(self) -> bytes:
        payload = {
            "model_version": self.model_version,
            "strategy": self.strategy,
            "ignored_movie_ids": self.ignored_movie_ids,
            "history_used": self.history_used,
            "items": [[h.movie.to_dict(), h.score] for h in self.items],
        }
        return json.dumps(payload, separators=(",", ":")).encode()

    @classmethod
    def from_cache(cls, raw: bytes) -> Recommendations:
        payload = json.loads(raw)
        return cls(
            model_version=payload["model_version"],
            strategy=payload["strategy"],
            ignored_movie_ids=[int(i) for i in payload["ignored_movie_ids"]],
            history_used=int(payload["history_used"]),
            items=[Hit(Movie.from_dict(m), float(s)) for m, s in payload["items"]],
            cached=True,
        )


@dataclass(frozen=True)
class SimilarMovies:
    model_version: str
    movie: Movie
    items: list[Hit]
    cached: bool = False


@dataclass(frozen=True)
class MovieSearch:
    model_version: str
    items: list[Movie]
    cached: bool = False
    fallback: str | None = None
    """``bundle`` when the index could not answer and the serving bundle's catalog was searched."""


@dataclass(frozen=True)
class Health:
    model_version: str | None
    """The model of the serving user tower (``None`` with a bundle root before one is loaded)."""
    index: BackendStatus
    cache: BackendStatus
    fallback: str
    history_length: int | None = None

    @property
    def status(self) -> str:
        """``ok``; ``degraded`` (cache down, or index down / of another model with a fallback); ``unavailable``."""
        if self.index.ok and self.cache.ok:
            return "ok"
        if self.index.ok or self.fallback != "none":
            return "degraded"
        return "unavailable"


class RecommendationService:
    """The API's work, on a user tower, a vector index and a cache.

    The user tower comes from ``models`` (``recommender.live_model.LiveModel``), resolved against the
    live index's model for every request: a user vector is only ever compared with movie vectors of
    its own model. ``model_version`` + ``user_tower`` (+ ``fallback``) is the short form for one fixed
    model. ``popular_fallback`` (default: whether ``fallback`` is given) says whether a request that
    cannot be served personalized (index down, or of another model) gets popular movies, flagged.
    """

    def __init__(
        self,
        *,
        index: VectorIndex,
        cache: Cache,
        model_version: str | None = None,
        user_tower: UserTower | None = None,
        models: LiveModel | None = None,
        cache_ttl_seconds: int = 300,
        fallback: Callable[[], VectorIndex] | None = None,
        popular_fallback: bool | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        if models is None:
            if model_version is None or user_tower is None:
                raise ValueError("give model_version and user_tower, or models")
            models = LiveModel(index, fixed=ServingModel(model_version, user_tower, fallback=fallback))
        self.models = models
        self.index = index
        self.cache = cache
        self.cache_ttl_seconds = cache_ttl_seconds
        self._popular_fallback = (fallback is not None) if popular_fallback is None else popular_fallback
        self._fallbacks: dict[str, VectorIndex] = {}
        self._fallback_lock = threading.Lock()
        self.telemetry: Telemetry = telemetry or NoTelemetry()

    @property
    def model_version(self) -> str | None:
        """The serving model's version (``None`` before a bundle root has loaded one)."""
        model = self.models.current()
        return None if model is None else model.version

    @property
    def tower(self) -> UserTower | None:
        model = self.models.current()
        return None if model is None else model.tower

    # -- helpers ------------------------------------------------------------------
    @contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.telemetry.timing(name, (time.perf_counter() - start) * 1000.0)

    def _generation(self) -> int | None:
        """The catalog generation for cache keys; ``None`` when the cache cannot be used now."""
        try:
            shared = self.cache.generation()
        except CacheUnavailableError as exc:
            self._cache_failed(exc)
            return None
        if shared is not None:
            return shared
        try:
            return self.index.generation()
        except IndexUnavailableError:
            return 0

    def _cache_failed(self, exc: Exception) -> None:
        log.warning("cache unavailable, serving uncached: %s", exc)
        self.telemetry.count("CacheErrors")

    def _cache_get(self, key: str) -> bytes | None:
        try:
            return self.cache.get(key)
        except CacheUnavailableError as exc:
            self._cache_failed(exc)
            return None

    def _cache_set(self, key: str, value: bytes) -> None:
        try:
            self.cache.set(key, value, self.cache_ttl_seconds)
        except CacheUnavailableError as exc:
            self._cache_failed(exc)

    def cache_key(self, generation: int, fingerprint: str, model_version: str | None = None) -> str:
        """``recs:cache:<model>:<generation>:<fingerprint>``; the model defaults to the serving one."""
        model = model_version if model_version is not None else self.model_version
        return f"{CACHE_KEY_PREFIX}{model}:{generation}:{fingerprint}"

    def _fallback_index(self, model: ServingModel | None) -> VectorIndex | None:
        if not self._popular_fallback or model is None or model.fallback is None:
            return None
        with self._fallback_lock:
            index = self._fallbacks.get(model.version)
            if index is None:
                try:
                    index = model.fallback()
                except (BundleError, OSError, ValueError) as exc:  # e.g. the catalog fails its check
                    log.error("the popularity fallback cannot be built (tried again next time): %s", exc)
                    return None
                self._fallbacks[model.version] = index
            return index

    def _fallback_answer(
        self, query: RecommendationQuery, exc: IndexUnavailableError, model: ServingModel | None
    ) -> Recommendations:
        """The bundle's popular movies under the query's filters, flagged; re-raises without a fallback."""
        fallback = self._fallback_index(model)
        if fallback is None or model is None:
            raise exc
        log.warning("vector index unavailable, serving the popularity fallback: %s", exc)
        self.telemetry.count("Fallbacks")
        seen = {h.movie_id for h in query.history} if query.exclude_seen else set()
        return Recommendations(
            model_version=model.version,
            items=fallback.popular(query.k, query.filters, seen),
            strategy="popular",
            ignored_movie_ids=[],
            history_used=0,
            fallback="popular",
        )

    def _mismatch_answer(self, query: RecommendationQuery, exc: ModelMismatchError) -> Recommendations:
        """No tower of the index's model: popular movies of the live catalog (no vectors involved),
        flagged, or ``ModelMismatchError`` (503) without the popularity fallback. Never cached."""
        log.error("not serving the user tower against another model's vectors: %s", exc)
        self.telemetry.count("ModelMismatches")
        if not self._popular_fallback:
            raise exc
        seen = {h.movie_id for h in query.history} if query.exclude_seen else set()
        try:
            items = self.index.popular(query.k, query.filters, seen)
        except IndexUnavailableError as down:
            return self._fallback_answer(query, down, self.models.current())
        return Recommendations(
            model_version=exc.index or exc.serving or "unknown",
            items=items,
            strategy="popular",
            ignored_movie_ids=[],
            history_used=0,
            fallback="popular",
        )

    def _cached(self, key: str, model_version: str) -> Recommendations | None:
        with self._timed("CacheLookupTime"):
            raw = self._cache_get(key)
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

    # -- the API's operations ----------------------------------------------------------
    def recommend(self, query: RecommendationQuery) -> Recommendations:
        for attempt in range(2):
            try:
                model = self.models.resolve()
            except IndexUnavailableError as exc:
                return self._fallback_answer(query, exc, self.models.current())
            except ModelMismatchError as exc:
                return self._mismatch_answer(query, exc)
            generation = self._generation()
            key = None if generation is None else self.cache_key(generation, query.fingerprint(), model.version)
            if key is not None:
                cached = self._cached(key, model.version)
                if cached is not None:
                    return cached
            try:
                result = self._compute(query, model)
            except IndexUnavailableError as exc:
                return self._fallback_answer(query, exc, model)
            except ModelMismatchError as exc:
                if attempt == 0:  # the alias moved between resolving the model and searching
                    log.warning("the index changed model during a request (%s); resolving it again", exc)
                    continue
                return self._mismatch_answer(query, exc)
            if key is not None:
                self._cache_set(key, result.to_cache())
            return result
        raise AssertionError("unreachable")

    def _compute(self, query: RecommendationQuery, model: ServingModel) -> Recommendations:
        tower = model.tower
        history = query.ordered_history()
        ids = list(dict.fromkeys(h.movie_id for h in history))
        untrained = [i for i in ids if not tower.knows(i)]
        in_index = self.index.existing(untrained) if untrained else set()
        ignored = sorted(set(untrained) - in_index)
        ignored_set = set(ignored)
        usable = [h for h in history if h.movie_id not in ignored_set]
        tail = usable[-tower.history_length :] if usable else []
        seen = {h.movie_id for h in usable} if query.exclude_seen else set()
        if not tail:
            with self._timed("KnnTime"):
                items = self.index.popular(query.k, query.filters, seen)
            strategy = "popular"
        else:
            with self._timed("TowerTime"):
                vector = tower.encode([(h.movie_id, h.rating) for h in tail])
            with self._timed("KnnTime"):
                items = self.index.search(vector, query.k, query.filters, seen, model_version=model.version)
            strategy = "personalized"
        return Recommendations(
            model_version=model.version,
            items=items,
            strategy=strategy,
            ignored_movie_ids=ignored,
            history_used=len(tail),
        )

    def movie(self, movie_id: int) -> Movie:
        movie = self.index.get(movie_id)
        if movie is None:
            raise MovieNotFoundError(movie_id)
        return movie

    def similar(self, movie_id: int, k: int) -> SimilarMovies:
        """Movies nearest to ``movie_id`` by the content+collaborative part of the item vectors.

        The popularity column of the query is zeroed, so the score is the cosine similarity of the
        normalised item-tower outputs (popular movies do not crowd out similar ones). Only the index's
        vectors are involved (no user tower), so the answer names the index's model, and the query
        vector and the searched vectors are checked to be of that one model.
        """
        for attempt in range(2):
            live = self.index.model_version()
            version = live or self.model_version or "unknown"
            generation = self._generation()
            key = None if generation is None else self.cache_key(generation, f"similar:{movie_id}:{k}", version)
            if key is not None:
                raw = self._cache_get(key)
                if raw is not None:
                    try:
                        payload = json.loads(raw)
                        self.telemetry.count("CacheHits")
                        return SimilarMovies(
                            version,
                            Movie.from_dict(payload["movie"]),
                            [Hit(Movie.from_dict(m), float(s)) for m, s in payload["items"]],
                            cached=True,
                        )
                    except (ValueError, KeyError, TypeError) as exc:
                        log.warning("ignoring an unreadable cache entry %s: %s", key, exc)
                self.telemetry.count("CacheMisses")
            movie = self.movie(movie_id)
            try:
                vector = self.index.vector(movie_id, model_version=live)
                if vector is None:
                    raise MovieNotFoundError(movie_id)
                query = np.array(vector, dtype=np.float32)
                query[-1] = 0.0
                with self._timed("KnnTime"):
                    items = self.index.search(query, k, NO_FILTERS, {movie_id}, model_version=live)
            except ModelMismatchError:
                if attempt == 0:
                    continue
                raise
            result = SimilarMovies(version, movie, items)
            if key is not None:
                payload = {"movie": movie.to_dict(), "items": [[h.movie.to_dict(), h.score] for h in items]}
                self._cache_set(key, json.dumps(payload, separators=(",", ":")).encode())
            return result
        raise AssertionError("unreachable")

    def search_movies(self, text: str, limit: int) -> MovieSearch:
        """Title search as you type (the rule of ``core.title_search``), cached by the query's
        terms like the other answers. With the index down and the popularity fallback on, the serving
        bundle's catalog is searched instead (flagged ``fallback: "bundle"``, never cached)."""
        version = self.model_version or "unknown"
        terms = title_terms(text)
        if not terms:
            return MovieSearch(version, [])
        digest = hashlib.sha256(json.dumps([limit, terms], separators=(",", ":")).encode()).hexdigest()
        generation = self._generation()
        key = None if generation is None else self.cache_key(generation, f"search:{digest}", version)
        if key is not None:
            raw = self._cache_get(key)
            if raw is not None:
                try:
                    items = [Movie.from_dict(m) for m in json.loads(raw)]
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("ignoring an unreadable cache entry %s: %s", key, exc)
                else:
                    self.telemetry.count("CacheHits")
                    return MovieSearch(version, items, cached=True)
            self.telemetry.count("CacheMisses")
        try:
            with self._timed("TitleSearchTime"):
                items = self.index.search_titles(text, limit)
        except IndexUnavailableError as exc:
            fallback = self._fallback_index(self.models.current())
            if fallback is None:
                raise
            log.warning("vector index unavailable, searching the bundle's catalog: %s", exc)
            self.telemetry.count("Fallbacks")
            return MovieSearch(version, fallback.search_titles(text, limit), fallback="bundle")
        if key is not None:
            self._cache_set(key, json.dumps([m.to_dict() for m in items], separators=(",", ":")).encode())
        return MovieSearch(version, items)

    def explain(
        self, history: Sequence[HistoryItem], items: Sequence[Hit], per_item: int = EXPLAIN_PER_ITEM
    ) -> dict[int, list[tuple[int, float]]]:
        """Why each item: the liked history movies most similar to it, most similar first.

        Liked: rated ``LIKED_MIN_RATING`` or more, or unrated. Similarity: the cosine of the two item
        vectors without their popularity column (as ``similar``), kept when above 0, at most
        ``per_item``; an item is never its own reason. The vectors of the history and the items come
        from the index in one call (``VectorIndex.vectors``), so both are of the same model. Raises
        ``IndexUnavailableError``.
        """
        out: dict[int, list[tuple[int, float]]] = {h.movie.movie_id: [] for h in items}
        liked = list(dict.fromkeys(
            h.movie_id for h in history if h.rating is None or h.rating >= LIKED_MIN_RATING
        ))
        if not liked or not out:
            return out
        with self._timed("ExplainTime"):
            vectors = self.index.vectors({*liked, *out})
        liked = [i for i in liked if i in vectors]
        targets = [i for i in out if i in vectors]
        if not liked or not targets:
            return out
        similarity = _unit_rows([vectors[i][:-1] for i in targets]) @ _unit_rows([vectors[i][:-1] for i in liked]).T
        for row, target in enumerate(targets):
            order = np.argsort(-similarity[row], kind="stable")
            reasons = [(liked[j], float(similarity[row, j])) for j in order.tolist() if liked[j] != target]
            out[target] = [(i, s) for i, s in reasons if s > 0.0][:per_item]
        return out

    def health(self) -> Health:
        """Backends and model; a user tower of another model than the index's makes the index not ok."""
        index = self.index.status()
        try:
            self.models.resolve()  # with a bundle root this also switches to the index's model
        except ModelMismatchError as exc:
            info = {**index.info, "model_version": exc.index, "serving_model_version": exc.serving}
            index = BackendStatus(index.kind, False, str(exc), info)
        except IndexUnavailableError:
            pass  # the index status already says why
        model = self.models.current()
        return Health(
            model.version if model else None,
            index,
            self.cache.status(),
            "popular" if self._popular_fallback else "none",
            model.tower.history_length if model else None,
        )


def _unit_rows(rows: Sequence[np.ndarray]) -> np.ndarray:
    matrix = np.asarray(np.stack(rows), dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.asarray(matrix / np.maximum(norms, 1e-12), dtype=np.float32)


def hits_to_json(hits: Sequence[Hit]) -> list[dict[str, Any]]:
    return [
        {
            "movie_id": h.movie.movie_id,
            "title": h.movie.title,
            "year": h.movie.year,
            "genres": list(h.movie.genres),
            "score": round(h.score, 6),
        }
        for h in hits
    ]
