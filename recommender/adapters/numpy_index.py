"""``NumpyIndex``: exact top-k by inner product over a float32 matrix, the embedded vector index.

It reads the published snapshot of the embedded store (``recs index rebuild --target embedded``)
and follows its alias, so a local refresh is picked up on the next request. Built for one bundle
(``from_bundle``), it serves the bundle's own catalog and vectors before anything has been published
or when the store holds vectors of another model; built for a bundle root (``from_store``), it
follows the store whatever its model (the service loads the matching user tower). A store that
turns unreadable after a good snapshot keeps the good one.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np

from core.bundle import CATALOG, MOVIE_VECTORS, Bundle
from core.embedded_store import ALIAS_FILE, EmbeddedStore
from core.errors import BundleError, EmbeddedStoreError
from core.features import Movie
from core.title_search import TitleIndex
from recommender.errors import IndexUnavailableError, ModelMismatchError
from recommender.ports import NO_FILTERS, BackendStatus, Filters, Hit

log = logging.getLogger(__name__)


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
class _Prepared:
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


def _top_k(scores: np.ndarray, k: int, mask: np.ndarray | None) -> np.ndarray:
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


class NumpyIndex:
    """Exact inner-product top-k in numpy (the embedded default of the vector index port)."""

    kind = "numpy"

    def __init__(self, source: Callable[[], _Prepared], describe: Callable[[], str] | None = None) -> None:
        self._source = source
        self._describe = describe

    # -- construction -----------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls, catalog: Sequence[Movie], vectors: np.ndarray, model_version: str = "unknown", generation: int = 0
    ) -> NumpyIndex:
        """An index over fixed arrays (tests, benchmarks)."""
        if vectors.ndim != 2 or vectors.shape[0] != len(catalog):
            raise ValueError(f"{vectors.shape} vectors for {len(catalog)} movies")
        prepared = _Prepared("arrays", model_version, generation, list(catalog), np.asarray(vectors, np.float32))
        return cls(lambda: prepared)

    @classmethod
    def from_bundle(cls, bundle: Bundle, store: EmbeddedStore | None = None) -> NumpyIndex:
        """The embedded store's published snapshot when it matches the bundle's model, else the bundle."""
        source = _BundleOrStore(bundle, store)
        return cls(source, source.describe)

    @classmethod
    def from_store(cls, store: EmbeddedStore) -> NumpyIndex:
        """The store's published snapshot, whatever its model (``IndexUnavailableError`` before one is)."""
        source = _BundleOrStore(None, store)
        return cls(source, source.describe)

    @staticmethod
    def _check_model(data: _Prepared, model_version: str | None) -> None:
        if model_version is not None and data.model_version != model_version:
            raise ModelMismatchError(model_version, data.model_version, f"the embedded index is {data.label}")

    # -- the port ---------------------------------------------------------------------
    def search(
        self, vector: np.ndarray, k: int, filters: Filters = NO_FILTERS, exclude_ids: Collection[int] = (),
        *, model_version: str | None = None,
    ) -> list[Hit]:
        data = self._source()
        self._check_model(data, model_version)
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape[0] != data.vectors.shape[1]:
            raise ValueError(f"query has {query.shape[0]} values, the index {data.vectors.shape[1]}")
        scores = data.vectors @ query
        if filters.is_empty():
            # only seen movies to leave out (the common case): the top k + |seen| without a mask
            # over the whole catalog, then drop the seen ones
            excluded = data.rows_of(exclude_ids)
            rows = _top_k(scores, k + excluded.size, None)
            if excluded.size:
                rows = rows[~np.isin(rows, excluded)][:k]
        else:
            rows = _top_k(scores, k, data.mask(filters, exclude_ids))
        return [Hit(data.catalog[int(r)], float(scores[r])) for r in rows]

    def popular(self, k: int, filters: Filters = NO_FILTERS, exclude_ids: Collection[int] = ()) -> list[Hit]:
        data = self._source()
        mask = data.mask(filters, exclude_ids)
        order = data.popularity_order if mask is None else data.popularity_order[mask[data.popularity_order]]
        return [Hit(data.catalog[int(r)], float(data.catalog[int(r)].popularity)) for r in order[:k]]

    def get(self, movie_id: int) -> Movie | None:
        data = self._source()
        rows = data.rows_of([movie_id])
        return data.catalog[int(rows[0])] if rows.size else None

    def vector(self, movie_id: int, *, model_version: str | None = None) -> np.ndarray | None:
        data = self._source()
        self._check_model(data, model_version)
        rows = data.rows_of([movie_id])
        return data.vectors[int(rows[0])].copy() if rows.size else None

    def existing(self, movie_ids: Collection[int]) -> set[int]:
        data = self._source()
        return {int(data.ids[r]) for r in data.rows_of(set(movie_ids))}

    def vectors(self, movie_ids: Collection[int]) -> dict[int, np.ndarray]:
        data = self._source()
        return {int(data.ids[r]): data.vectors[r].copy() for r in data.rows_of(set(movie_ids))}

    def search_titles(self, query: str, limit: int) -> list[Movie]:
        data = self._source()
        return [data.catalog[int(r)] for r in data.title_index().search(query, limit)]

    def generation(self) -> int:
        return self._source().generation

    def model_version(self) -> str | None:
        return self._source().model_version

    def status(self) -> BackendStatus:
        try:
            data = self._source()
        except Exception as exc:  # health must describe, never raise
            return BackendStatus(self.kind, False, str(exc))
        info = {
            "source": data.label,
            "movies": len(data.catalog),
            "dimension": int(data.vectors.shape[1]),
            "model_version": data.model_version,
            "generation": data.generation,
        }
        return BackendStatus(self.kind, True, self._describe() if self._describe else "", info)


class _BundleOrStore:
    """Picks the snapshot ``NumpyIndex`` serves; thread-safe, re-checks the store's alias per call.

    Without a bundle (a bundle root) there is nothing to fall back on: before a snapshot is
    published, or when the first one is unreadable, it raises ``IndexUnavailableError``.
    """

    def __init__(self, bundle: Bundle | None, store: EmbeddedStore | None) -> None:
        self._bundle = bundle
        self._store = store
        self._lock = threading.Lock()
        self._bundle_data: _Prepared | None = None
        self._store_data: _Prepared | None = None
        self._store_key: tuple[str, int] | None = None
        self._failed_stamp: tuple[int, int] | None = None
        self._note = ""

    def describe(self) -> str:
        return self._note

    def _alias_stamp(self) -> tuple[int, int] | None:
        if self._store is None:
            return None
        try:
            st = (Path(self._store.root) / ALIAS_FILE).stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_ino)

    def _from_bundle(self) -> _Prepared:
        if self._bundle_data is None:
            bundle = self._bundle
            if bundle is None:
                raise IndexUnavailableError(self._note or "the embedded store has no published index")
            catalog_path = bundle.file(CATALOG)  # size and sha256 checked
            try:
                rows = json.loads(catalog_path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise BundleError(f"{catalog_path}: not valid JSON ({exc})") from exc
            catalog = RawCatalog(rows, str(catalog_path))
            vectors_path = bundle.file(MOVIE_VECTORS)
            try:
                vectors = np.load(vectors_path, allow_pickle=False)
            except (ValueError, OSError) as exc:
                raise BundleError(f"{vectors_path}: {exc}") from exc
            expected = (len(catalog), bundle.dimension)
            if vectors.dtype != np.float32 or vectors.shape != expected:
                raise BundleError(f"{vectors_path}: {vectors.dtype} {vectors.shape}, want float32 {expected}")
            self._bundle_data = _Prepared("bundle", bundle.model_version, 0, catalog, vectors)
        return self._bundle_data

    def __call__(self) -> _Prepared:
        stamp = self._alias_stamp()
        with self._lock:
            if self._store is None or stamp is None:
                if self._store is None:
                    self._note = ""
                elif self._bundle is None:
                    self._note = f"nothing published in {self._store.root} (run `recs index rebuild`)"
                else:
                    self._note = f"nothing published in {self._store.root}; serving the bundle"
                return self._from_bundle()
            if stamp == self._failed_stamp:
                return self._store_data or self._from_bundle()
            try:
                snapshot = self._store.current()
            except EmbeddedStoreError as exc:
                self._failed_stamp = stamp
                kept = "the previous snapshot" if self._store_data else "the bundle" if self._bundle else "nothing"
                self._note = f"embedded store unreadable ({exc}); serving {kept}"
                log.warning(self._note)
                return self._store_data or self._from_bundle()
            if self._bundle is not None and snapshot.model_version != self._bundle.model_version:
                self._failed_stamp = stamp
                self._note = (
                    f"embedded store holds model {snapshot.model_version}, the bundle is "
                    f"{self._bundle.model_version}; serving the bundle (run `recs index rebuild`)"
                )
                log.warning(self._note)
                return self._from_bundle()
            key = (snapshot.name, snapshot.generation)
            if self._store_data is None or key != self._store_key:
                self._store_data = _Prepared(
                    f"store:{snapshot.name}", snapshot.model_version, snapshot.generation, snapshot.catalog,
                    snapshot.vectors,
                )
                self._store_key = key
            self._note = ""
            return self._store_data
