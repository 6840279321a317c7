"""The recommendation service: history -> user tower -> k-NN with filters -> cache -> ranked movies.

It knows nothing about HTTP or Lambda (``recommender.routes`` map requests, ``recommender.responses``
errors) and nothing about OpenSearch or Redis (it talks to the ports in ``recommender.ports``). Its
queries and answers are in ``recommender.answers``, their cache in ``recommender.answer_cache``.

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
- ``explain``: the rule of ``recommender.explain``, on vectors of the index's model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence

import numpy as np

from core.features import Movie
from core.title_search import title_terms
from core.towers import UserEncoder
from recommender.answer_cache import AnswerCache
from recommender.answers import Health, HistoryItem, MovieSearch, RecommendationQuery, Recommendations, SimilarMovies
from recommender.errors import IndexUnavailableError, ModelMismatchError, MovieNotFoundError
from recommender.explain import EXPLAIN_PER_ITEM, because
from recommender.fallback import PopularityFallback
from recommender.live_model import LiveModel, ServingModel
from recommender.ports import NO_FILTERS, BackendStatus, Cache, Hit, NoTelemetry, Telemetry, VectorIndex, timed

log = logging.getLogger(__name__)


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
        user_tower: UserEncoder | None = None,
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
        self.telemetry: Telemetry = telemetry or NoTelemetry()
        self.answers = AnswerCache(cache, index, cache_ttl_seconds, self.telemetry)
        enabled = (fallback is not None) if popular_fallback is None else popular_fallback
        self.fallback = PopularityFallback(enabled, index, models, self.telemetry)

    @property
    def model_version(self) -> str | None:
        """The serving model's version (``None`` before a bundle root has loaded one)."""
        model = self.models.current()
        return None if model is None else model.version

    @property
    def tower(self) -> UserEncoder | None:
        model = self.models.current()
        return None if model is None else model.tower

    def cache_key(self, generation: int, fingerprint: str, model_version: str | None = None) -> str:
        """``recs:cache:<model>:<generation>:<fingerprint>``; the model defaults to the serving one."""
        model = model_version if model_version is not None else self.model_version
        return AnswerCache.key(model, generation, fingerprint)

    # -- the API's operations ----------------------------------------------------------
    def recommend(self, query: RecommendationQuery) -> Recommendations:
        for attempt in range(2):
            try:
                model = self.models.resolve()
            except IndexUnavailableError as exc:
                return self.fallback.index_down(query, exc, self.models.current())
            except ModelMismatchError as exc:
                return self.fallback.model_mismatch(query, exc)
            generation = self.answers.generation()
            key = None if generation is None else self.cache_key(generation, query.fingerprint(), model.version)
            if key is not None:
                cached = self.answers.recommendations(key, model.version)
                if cached is not None:
                    return cached
            try:
                result = self._compute(query, model)
            except IndexUnavailableError as exc:
                return self.fallback.index_down(query, exc, model)
            except ModelMismatchError as exc:
                if attempt == 0:  # the alias moved between resolving the model and searching
                    log.warning("the index changed model during a request (%s); resolving it again", exc)
                    continue
                return self.fallback.model_mismatch(query, exc)
            if key is not None:
                self.answers.put(key, result.to_cache())
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
            with timed(self.telemetry, "KnnTime"):
                items = self.index.popular(query.k, query.filters, seen)
            strategy = "popular"
        else:
            with timed(self.telemetry, "TowerTime"):
                vector = tower.encode([(h.movie_id, h.rating) for h in tail])
            with timed(self.telemetry, "KnnTime"):
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
            generation = self.answers.generation()
            key = None if generation is None else self.cache_key(generation, f"similar:{movie_id}:{k}", version)
            if key is not None:
                cached_similar = self.answers.similar(key, version)
                if cached_similar is not None:
                    return cached_similar
            movie = self.movie(movie_id)
            try:
                vector = self.index.vector(movie_id, model_version=live)
                if vector is None:
                    raise MovieNotFoundError(movie_id)
                query = np.array(vector, dtype=np.float32)
                query[-1] = 0.0
                with timed(self.telemetry, "KnnTime"):
                    items = self.index.search(query, k, NO_FILTERS, {movie_id}, model_version=live)
            except ModelMismatchError:
                if attempt == 0:
                    continue
                raise
            result = SimilarMovies(version, movie, items)
            if key is not None:
                self.answers.put(key, result.to_cache())
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
        generation = self.answers.generation()
        fingerprint = MovieSearch.fingerprint(terms, limit)
        key = None if generation is None else self.cache_key(generation, f"search:{fingerprint}", version)
        if key is not None:
            cached_search = self.answers.search(key, version)
            if cached_search is not None:
                return cached_search
        try:
            with timed(self.telemetry, "TitleSearchTime"):
                items = self.index.search_titles(text, limit)
        except IndexUnavailableError as exc:
            fallback = self.fallback.index_of(self.models.current())
            if fallback is None:
                raise
            log.warning("vector index unavailable, searching the bundle's catalog: %s", exc)
            self.telemetry.count("Fallbacks")
            return MovieSearch(version, fallback.search_titles(text, limit), fallback="bundle")
        result = MovieSearch(version, items)
        if key is not None:
            self.answers.put(key, result.to_cache())
        return result

    def explain(
        self, history: Sequence[HistoryItem], items: Sequence[Hit], per_item: int = EXPLAIN_PER_ITEM
    ) -> dict[int, list[tuple[int, float]]]:
        """Why each item: the liked history movies most similar to it, most similar first (the rule of
        ``recommender.explain``), on vectors the index gives in one ``VectorIndex.vectors`` call.
        Raises ``IndexUnavailableError``."""

        def vectors_of(movie_ids: Collection[int]) -> dict[int, np.ndarray]:
            with timed(self.telemetry, "ExplainTime"):
                return self.index.vectors(movie_ids)

        return because(history, items, vectors_of, per_item)

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
            "popular" if self.fallback.enabled else "none",
            model.tower.history_length if model else None,
        )

