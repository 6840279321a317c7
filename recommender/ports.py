"""The ports of the service: what it needs from a vector index and from a cache, and where it reports.

The index and the cache each have an embedded default (``recommender.adapters.numpy_index``,
``recommender.adapters.memory_cache``) and a server adapter (OpenSearch, Redis);
both sides pass the same contract test suite (``tests/recommender/contracts``). The telemetry is
``NoTelemetry`` locally and ``recommender.observability.EmfTelemetry`` in Lambda.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from core.features import Movie


@dataclass(frozen=True)
class Filters:
    """Catalog filters, applied inside the k-NN query (never after it).

    ``genres_any``: keep movies with at least one of these genres; ``genres_none``: drop movies with
    any of these; ``year_min``/``year_max``: inclusive bounds (a movie without a year is dropped as
    soon as either bound is given).
    """

    genres_any: tuple[str, ...] = ()
    genres_none: tuple[str, ...] = ()
    year_min: int | None = None
    year_max: int | None = None

    def is_empty(self) -> bool:
        return not (self.genres_any or self.genres_none or self.year_min is not None or self.year_max is not None)

    def matches(self, movie: Movie) -> bool:
        """The reference semantics every adapter implements."""
        if self.genres_any and not set(self.genres_any) & set(movie.genres):
            return False
        if self.genres_none and set(self.genres_none) & set(movie.genres):
            return False
        if self.year_min is not None or self.year_max is not None:
            if movie.year is None:
                return False
            if self.year_min is not None and movie.year < self.year_min:
                return False
            if self.year_max is not None and movie.year > self.year_max:
                return False
        return True

    def canonical(self) -> dict[str, Any]:
        return {
            "genres_any": sorted(set(self.genres_any)),
            "genres_none": sorted(set(self.genres_none)),
            "year_min": self.year_min,
            "year_max": self.year_max,
        }


NO_FILTERS = Filters()


@dataclass(frozen=True)
class Hit:
    """One ranked movie. ``score`` is the inner product with the query (k-NN) or the popularity."""

    movie: Movie
    score: float


@dataclass(frozen=True)
class BackendStatus:
    """What ``/health`` reports for one backend."""

    kind: str
    ok: bool
    detail: str = ""
    info: dict[str, Any] = field(default_factory=dict)


class VectorIndex(Protocol):
    """Top-k movies by inner product with a query vector, with filters inside the search."""

    kind: str

    def search(
        self, vector: np.ndarray, k: int, filters: Filters = NO_FILTERS, exclude_ids: Collection[int] = (),
        *, model_version: str | None = None,
    ) -> list[Hit]:
        """The ``k`` best movies that pass ``filters`` and are not in ``exclude_ids``, best first
        (fewer only when fewer qualify). Raises ``IndexUnavailableError``.

        With ``model_version``, the answer is guaranteed to come from vectors of that model (checked
        on the answer itself, so an alias swap between two calls is caught): otherwise
        ``ModelMismatchError``."""
        ...

    def popular(self, k: int, filters: Filters = NO_FILTERS, exclude_ids: Collection[int] = ()) -> list[Hit]:
        """The ``k`` most popular qualifying movies (score = popularity)."""
        ...

    def get(self, movie_id: int) -> Movie | None:
        """One movie, or ``None`` when the index does not have it."""
        ...

    def vector(self, movie_id: int, *, model_version: str | None = None) -> np.ndarray | None:
        """A movie's stored vector, or ``None``; ``model_version`` as in ``search``."""
        ...

    def existing(self, movie_ids: Collection[int]) -> set[int]:
        """Which of ``movie_ids`` the index holds."""
        ...

    def vectors(self, movie_ids: Collection[int]) -> dict[int, np.ndarray]:
        """The stored vectors of those of ``movie_ids`` the index holds, in one call (OpenSearch: a
        multi-get of ``embedding``). Raises ``IndexUnavailableError``."""
        ...

    def search_titles(self, query: str, limit: int) -> list[Movie]:
        """Title search as you type: movies whose title holds every term of ``query``, the last one as
        a prefix, most popular first (ties by id), at most ``limit``; the rule of
        ``core.title_search`` (OpenSearch: ``match_bool_prefix`` on ``title``). Raises
        ``IndexUnavailableError``."""
        ...

    def generation(self) -> int:
        """The catalog generation this index knows of (0 when it does not track one)."""
        ...

    def model_version(self) -> str | None:
        """The model whose vectors the index serves now (OpenSearch: ``_meta.model_version`` of the
        alias' index, re-read at most every few seconds; embedded: the snapshot's), ``None`` when the
        index does not record one. Raises ``IndexUnavailableError``."""
        ...

    def status(self) -> BackendStatus:
        """Whether the index answers, with its size and model version when known; never raises."""
        ...


class Cache(Protocol):
    """Bytes by key with a time to live, and the catalog generation when the backend keeps one."""

    kind: str

    def get(self, key: str) -> bytes | None:
        """Raises ``CacheUnavailableError``."""
        ...

    def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        """Raises ``CacheUnavailableError``."""
        ...

    def generation(self) -> int | None:
        """The shared catalog generation (``recs:catalog:generation``), or ``None`` when this cache
        does not hold one. Raises ``CacheUnavailableError``."""
        ...

    def status(self) -> BackendStatus:
        """Whether the cache answers; never raises."""
        ...


class Telemetry(Protocol):
    """Where the service reports timings and counts (CloudWatch EMF in Lambda, nothing locally)."""

    def timing(self, name: str, milliseconds: float) -> None: ...

    def count(self, name: str, value: int = 1) -> None: ...


class NoTelemetry:
    def timing(self, name: str, milliseconds: float) -> None:
        pass

    def count(self, name: str, value: int = 1) -> None:
        pass


@contextmanager
def timed(telemetry: Telemetry, name: str) -> Iterator[None]:
    """Report how long the block takes as the timing ``name`` (milliseconds), raising or not."""
    start = time.perf_counter()
    try:
        yield
    finally:
        telemetry.timing(name, (time.perf_counter() - start) * 1000.0)
