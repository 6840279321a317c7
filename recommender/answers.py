"""The service's queries and answers (``recommender.service``), and how answers are kept in the cache.

Cache entries are compact JSON: a recommendation answer as ``Recommendations.to_cache`` writes it,
a similar-movies answer as ``{"movie", "items": [[movie, score], ...]}``, a title search as a list
of movies. A query's cache key ends with ``RecommendationQuery.fingerprint``: the sha256 of the
normalised request, in format ``CACHE_FORMAT``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.features import Movie
from recommender.ports import NO_FILTERS, BackendStatus, Filters, Hit

CACHE_FORMAT = 1


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

    def to_cache(self) -> bytes:
        payload = {"movie": self.movie.to_dict(), "items": [[h.movie.to_dict(), h.score] for h in self.items]}
        return json.dumps(payload, separators=(",", ":")).encode()

    @classmethod
    def from_cache(cls, model_version: str, payload: dict[str, Any]) -> SimilarMovies:
        """From the parsed JSON of ``to_cache`` (``ValueError``, ``KeyError`` or ``TypeError`` if malformed)."""
        return cls(
            model_version,
            Movie.from_dict(payload["movie"]),
            [Hit(Movie.from_dict(m), float(s)) for m, s in payload["items"]],
            cached=True,
        )


@dataclass(frozen=True)
class MovieSearch:
    model_version: str
    items: list[Movie]
    cached: bool = False
    fallback: str | None = None
    """``bundle`` when the index could not answer and the serving bundle's catalog was searched."""

    def to_cache(self) -> bytes:
        return json.dumps([m.to_dict() for m in self.items], separators=(",", ":")).encode()

    @classmethod
    def from_cache(cls, model_version: str, raw: bytes) -> MovieSearch:
        return cls(model_version, [Movie.from_dict(m) for m in json.loads(raw)], cached=True)

    @staticmethod
    def fingerprint(terms: Sequence[str], limit: int) -> str:
        """The cache key's last part for a search: its terms (``core.title_search``) and its limit."""
        return hashlib.sha256(json.dumps([limit, terms], separators=(",", ":")).encode()).hexdigest()


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
