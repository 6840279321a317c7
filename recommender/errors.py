"""Errors of the recommendation API; each maps to one answer (``recommender.responses``).

| error | answer |
|---|---|
| ``MovieNotFoundError`` | 404 ``movie_not_found`` |
| ``IndexUnavailableError`` | 503 ``index_unavailable`` (or the popularity fallback) |
| ``ModelMismatchError`` | 503 ``model_mismatch`` (or the popularity fallback) |
| ``CompositionError`` | 503 ``model_unavailable`` |
| ``CacheUnavailableError`` | none: the answer is served uncached |
"""

from __future__ import annotations

from core.errors import RecsError


class RecommenderError(RecsError):
    """Something the recommendation API could not do; the subclass says what."""


class IndexUnavailableError(RecommenderError):
    """The vector index cannot answer (unreachable, timed out, not built yet)."""


class CacheUnavailableError(RecommenderError):
    """The cache cannot answer; callers serve uncached."""


class ModelMismatchError(RecommenderError):
    """The index serves vectors of another model than the user tower that would query it.

    ``serving``: the model of the user tower (``None`` when none is loaded); ``index``: the model
    whose vectors the live index holds (``None`` when it records none). Never compare a user vector
    with item vectors of another model: callers answer 503 or the popularity fallback instead.
    """

    def __init__(self, serving: str | None, index: str | None, reason: str = "") -> None:
        self.serving = serving
        self.index = index
        self.reason = reason
        message = f"the index serves model {index!r}, the user tower is model {serving!r}"
        super().__init__(f"{message}: {reason}" if reason else message)


class MovieNotFoundError(RecommenderError):
    """The movie named in the path is not in the catalog."""

    def __init__(self, movie_id: int) -> None:
        super().__init__(f"movie {movie_id} is not in the catalog")
        self.movie_id = movie_id


class CompositionError(RecommenderError):
    """The service could not be built (bad settings, unreadable bundle ...); the message says why."""
