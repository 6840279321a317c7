"""One snapshot of movies and vectors, prepared for ``NumpyIndex``'s queries.

``RawCatalog``: catalog rows as read from ``catalog.json``, a ``Movie`` built only for a row a query
returns. ``PreparedSnapshot``: a catalog and its vectors with the lookup arrays a query needs (ids
sorted for lookups, years, the popularity order; genre masks and the title index built on first
need), built once per snapshot. ``top_k``: the exact top k rows of a score vector under a mask.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np

from core.errors import BundleError
from core.features import Movie
from core.title_search import TitleIndex
from recommender.ports import Filters


class RawCatalog(Sequence[Movie]):
    """Catalog rows as parsed from ``catalog.json``; a ``Movie`` is built only for a row a query returns.

    Building every frozen ``Movie`` of a 10k catalog costs a cold start 20-40 ms; the columns the
    index needs (ids, years, popularity, genres) are read straight from the rows, and checked then.
    """

    def __init__(self, rows: Any, source: str) -> None:
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise BundleError(f"{source}: not a valid catalog (a JSON list of objects expected)")
        self._rows: list[dict[str, Any]] = rows
        self._source = source

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> Movie: ...

    @overload
    def __getitem__(self, index: slice) -> list[Movie]: ...

    def __getitem__(self, index: int | slice) -> Movie | list[Movie]:
        if isinstance(index, slice):
            return [self._movie(r) for r in self._rows[index]]
        return self._movie(self._rows[index])

    def __iter__(self) -> Iterator[Movie]:
        return (self._movie(r) for r in self._rows)

    def _movie(self, row: dict[str, Any]) -> Movie:
        try:
            return Movie.from_dict(row)
        except (ValueError, KeyError, TypeError) as exc:
            raise BundleError(f"{self._source}: not a valid catalog row {row!r} ({exc})") from exc

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ids, years with NaN for none, popularity)``; a malformed row is a ``BundleError``."""
        n = len(self._rows)
        try:
            ids = np.fromiter((int(r["movie_id"]) for r in self._rows), dtype=np.int64, count=n)
            years = np.fromiter(
                (np.nan if r.get("year") is None else int(r["year"]) for r in self._rows), dtype=np.float64, count=n
            )
            popularity = np.fromiter((float(r.get("popularity") or 0.0) for r in self._rows), np.float64, count=n)
        except (ValueError, KeyError, TypeError) as exc:
            raise BundleError(f"{self._source}: not a valid catalog ({exc})") from exc
        return ids, years, popularity

    def titles(self) -> list[str]:
        return [str(r.get("title") or "") for r in self._rows]

    def has_genre(self, genre: str) -> np.ndarray:
        return np.fromiter((genre in (r.get("genres") or ()) for r in self._rows), dtype=bool, count=len(self._rows))


@dataclass
class PreparedSnapshot:
    """A catalog and its vectors with the lookup arrays a query needs (built once per snapshot)."""

    label: str
    model_version: str
    generation: int
    catalog: Sequence[Movie]
    vectors: np.ndarray
    ids: np.ndarray = field(init=False)
    sorted_ids: np.ndarray = field(init=False)
    sorted_rows: np.ndarray = field(init=False)
    years: np.ndarray = field(init=False)
    popularity_order: np.ndarray = field(init=False)
    _genre_masks: dict[str, np.ndarray] = field(default_factory=dict, init=False)
    _titles: TitleIndex | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        n = len(self.catalog)
        if isinstance(self.catalog, RawCatalog):
            self.ids, self.years, popularity = self.catalog.columns()
        else:
            self.ids = np.fromiter((m.movie_id for m in self.catalog), dtype=np.int64, count=n)
            self.years = np.fromiter(
                (np.nan if m.year is None else m.year for m in self.catalog), dtype=np.float64, count=n
            )
            popularity = np.fromiter((m.popularity for m in self.catalog), dtype=np.float64, count=n)
        self.sorted_rows = np.argsort(self.ids, kind="stable")
        self.sorted_ids = self.ids[self.sorted_rows]
        # most popular first, ties by movie id (as the OpenSearch adapter sorts)
        self.popularity_order = np.lexsort((self.ids, -popularity))

    def rows_of(self, movie_ids: Collection[int]) -> np.ndarray:
        if not movie_ids or self.ids.size == 0:
            return np.empty(0, dtype=np.int64)
        wanted = np.fromiter(movie_ids, dtype=np.int64, count=len(movie_ids))
        pos = np.minimum(np.searchsorted(self.sorted_ids, wanted), self.sorted_ids.size - 1)
        found = self.sorted_ids[pos] == wanted
        return self.sorted_rows[pos[found]]

    def genre_mask(self, genre: str) -> np.ndarray:
        with self._lock:
            mask = self._genre_masks.get(genre)
            if mask is None:
                if isinstance(self.catalog, RawCatalog):
                    mask = self.catalog.has_genre(genre)
                else:
                    n = len(self.catalog)
                    mask = np.fromiter((genre in m.genres for m in self.catalog), dtype=bool, count=n)
                self._genre_masks[genre] = mask
            return mask

    def title_index(self) -> TitleIndex:
        """The token index of the titles, built on the first title search of this snapshot."""
        with self._lock:
            if self._titles is None:
                if isinstance(self.catalog, RawCatalog):
                    titles = self.catalog.titles()
                else:
                    titles = [m.title for m in self.catalog]
                self._titles = TitleIndex(titles, self.popularity_order)
            return self._titles

    def mask(self, filters: Filters, exclude_ids: Collection[int]) -> np.ndarray | None:
        """Boolean mask of the qualifying rows, or ``None`` when every row qualifies."""
        if filters.is_empty() and not exclude_ids:
            return None
        keep = np.ones(len(self.catalog), dtype=bool)
        if filters.genres_any:
            anyof = np.zeros(len(self.catalog), dtype=bool)
            for genre in set(filters.genres_any):
                anyof |= self.genre_mask(genre)
            keep &= anyof
        for genre in set(filters.genres_none):
            keep &= ~self.genre_mask(genre)
        if filters.year_min is not None or filters.year_max is not None:
            with np.errstate(invalid="ignore"):
                keep &= ~np.isnan(self.years)
                if filters.year_min is not None:
                    keep &= self.years >= filters.year_min
                if filters.year_max is not None:
                    keep &= self.years <= filters.year_max
        keep[self.rows_of(exclude_ids)] = False
        return keep


def top_k(scores: np.ndarray, k: int, mask: np.ndarray | None) -> np.ndarray:
    """Row numbers of the ``k`` highest scores among the masked rows, best first (ties: lower row)."""
    if mask is not None:
        candidates = np.flatnonzero(mask)
        scores = scores[candidates]
    else:
        candidates = None
    k = min(k, scores.size)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k] if k < scores.size else np.arange(scores.size)
    order = part[np.lexsort((part, -scores[part]))]
    return order if candidates is None else candidates[order]
