"""``NumpyIndex``: exact top-k by inner product over a float32 matrix, the embedded vector index.

It reads the published snapshot of the embedded store (``recs index rebuild --target embedded``)
and follows its alias, so a local refresh is picked up on the next request. Built for one bundle
(``from_bundle``), it serves the bundle's own catalog and vectors before anything has been published
or when the store holds vectors of another model; built for a bundle root (``from_store``), it
follows the store whatever its model (the service loads the matching user tower). A store that
turns unreadable after a good snapshot keeps the good one. The per-snapshot arrays a query reads
are in ``recommender.adapters.numpy_snapshot``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import numpy as np

from core.bundle import CATALOG, MOVIE_VECTORS, Bundle
from core.embedded_store import ALIAS_FILE, EmbeddedStore
from core.errors import BundleError, EmbeddedStoreError
from core.features import Movie
from recommender.adapters.numpy_snapshot import PreparedSnapshot, RawCatalog, top_k
from recommender.errors import IndexUnavailableError, ModelMismatchError
from recommender.ports import NO_FILTERS, BackendStatus, Filters, Hit

log = logging.getLogger(__name__)


class NumpyIndex:
    """Exact inner-product top-k in numpy (the embedded default of the vector index port)."""

    kind = "numpy"

    def __init__(self, source: Callable[[], PreparedSnapshot], describe: Callable[[], str] | None = None) -> None:
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
        prepared = PreparedSnapshot("arrays", model_version, generation, list(catalog), np.asarray(vectors, np.float32))
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
    def _check_model(data: PreparedSnapshot, model_version: str | None) -> None:
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
            rows = top_k(scores, k + excluded.size, None)
            if excluded.size:
                rows = rows[~np.isin(rows, excluded)][:k]
        else:
            rows = top_k(scores, k, data.mask(filters, exclude_ids))
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
        self._bundle_data: PreparedSnapshot | None = None
        self._store_data: PreparedSnapshot | None = None
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

    def _from_bundle(self) -> PreparedSnapshot:
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
            self._bundle_data = PreparedSnapshot("bundle", bundle.model_version, 0, catalog, vectors)
        return self._bundle_data

    def __call__(self) -> PreparedSnapshot:
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
                self._store_data = PreparedSnapshot(
                    f"store:{snapshot.name}", snapshot.model_version, snapshot.generation, snapshot.catalog,
                    snapshot.vectors,
                )
                self._store_key = key
            self._note = ""
            return self._store_data
