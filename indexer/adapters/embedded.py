"""The embedded store as an index target: the same jobs as OpenSearch, on the local file system.

A rebuild writes a complete ``indices/NAME`` directory and then replaces ``alias.json`` (one
``os.replace``), which is this store's atomic alias swap. Documents are checked against the same
field types as the OpenSearch mapping (integers in range, finite floats, vectors of the right
dimension), so a document OpenSearch would refuse is refused here too, by id.

A delta cannot change a published directory in place (a reader may be loading it), so it writes
``<index>.u<generation>`` with the changes applied and swaps to it; the directory it replaces is
deleted by the next run (one run of grace for readers still loading it).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from core.embedded_store import INDICES_DIR, EmbeddedStore
from core.features import Movie
from core.index_schema import index_name
from indexer.catalog_stream import CatalogBatch
from indexer.errors import BulkLoadError, DocumentFailure, IndexerError, RollbackError, VerificationError
from indexer.target import DeltaResult, IndexInfo, LoadResult, Probe, SwapResult, exact_scores

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
_DELTA_SUFFIX = re.compile(r"\.u\d+$")


def document_problems(movie: Movie, vector: np.ndarray, dimension: int) -> list[str]:
    """Why OpenSearch's mapping would refuse this document (empty if it would not)."""
    problems = []
    if not INT_MIN <= movie.movie_id <= INT_MAX:
        problems.append(f"movie_id {movie.movie_id} is out of range of integer")
    if movie.year is not None and not INT_MIN <= movie.year <= INT_MAX:
        problems.append(f"year {movie.year} is out of range of integer")
    if not math.isfinite(movie.popularity):
        problems.append(f"popularity {movie.popularity} is not a finite number")
    if vector.shape != (dimension,):
        problems.append(f"vector dimension mismatch: expected {dimension}, given {vector.shape[-1]}")
    elif not np.all(np.isfinite(vector)):
        problems.append("vector has values that are not finite numbers")
    return problems


class EmbeddedTarget:
    """Index target over ``core.embedded_store.EmbeddedStore``."""

    kind = "embedded"

    def __init__(self, root: str | Path, alias: str = "movies", max_failures: int = 1000) -> None:
        self.root = Path(root)
        self.alias = alias
        self.store = EmbeddedStore(self.root)
        self.max_failures = max_failures
        self._pending: dict[str, tuple[str, int, str]] = {}
        self._loaded: dict[str, tuple[list[Movie], np.ndarray]] = {}

    def describe(self) -> str:
        return f"embedded store {self.root}"

    # -- reading -----------------------------------------------------------------
    def _info(self, name: str, served: set[str]) -> IndexInfo | None:
        meta = self.store.index_meta(name)
        if meta is None:
            return None
        created = (self.root / INDICES_DIR / name / "meta.json").stat().st_mtime
        return IndexInfo(name, str(meta.get("model_version")), created, name in served, int(meta.get("count", 0)))

    def _published(self) -> tuple[str | None, list[str]]:
        alias = self.store.alias() or {}
        live = alias.get("index")
        return (str(live) if live else None), [str(p) for p in alias.get("previous", [])]

    def live(self) -> IndexInfo | None:
        name, _ = self._published()
        return self._info(name, {name}) if name else None

    def indices(self) -> list[IndexInfo]:
        live, previous = self._published()
        served = set(previous) | ({live} if live else set())
        infos = [info for n in self.store.index_names() if (info := self._info(n, served)) is not None]
        return sorted(infos, key=lambda i: (i.created, i.name))

    def generation(self) -> int | None:
        return self.store.generation()

    # -- full rebuild ------------------------------------------------------------
    def new_name(self, model_version: str) -> str:
        existing = set(self.store.index_names())
        name = index_name(self.alias, model_version)
        while name in existing:
            time.sleep(0.002)
            name = index_name(self.alias, model_version)
        return name

    def create(self, name: str, *, model_version: str, dimension: int, space_type: str) -> None:
        if (self.root / INDICES_DIR / name).exists():
            raise IndexerError(f"{self.root}: index {name} already exists")
        self._pending[name] = (model_version, dimension, space_type)

    def load(self, name: str, batches: Iterable[CatalogBatch], on_docs: Callable[[int], None]) -> LoadResult:
        _, dimension, _ = self._pending[name]
        movies: list[Movie] = []
        blocks: list[np.ndarray] = []
        failures: list[DocumentFailure] = []
        for batch in batches:
            good = np.ones(len(batch.movies), dtype=bool)
            for i, (movie, vector) in enumerate(zip(batch.movies, batch.vectors, strict=True)):
                problems = document_problems(movie, vector, dimension)
                if problems:
                    good[i] = False
                    failures.append(DocumentFailure(str(movie.movie_id), 400, "; ".join(problems)))
            if len(failures) >= self.max_failures:
                raise BulkLoadError(name, failures, stopped_early=True)
            movies.extend(m for m, ok in zip(batch.movies, good, strict=True) if ok)
            blocks.append(np.asarray(batch.vectors[good], dtype=np.float32))
            on_docs(int(good.sum()))
        if failures:
            raise BulkLoadError(name, failures)
        vectors = np.concatenate(blocks) if blocks else np.zeros((0, dimension), dtype=np.float32)
        # Like an index keyed by document id: a later duplicate replaces the earlier document.
        last = {m.movie_id: i for i, m in enumerate(movies)}
        if len(last) != len(movies):
            keep = sorted(last.values())
            movies = [movies[i] for i in keep]
            vectors = vectors[keep]
        self._loaded[name] = (movies, vectors)
        return LoadResult(len(movies))

    def finish(self, name: str) -> None:
        model_version, _, space_type = self._pending.pop(name)
        movies, vectors = self._loaded.pop(name)
        self.store.write_index(name, movies, vectors, model_version, space_type)

    def verify(self, name: str, expected: int, probes: Sequence[Probe]) -> None:
        snapshot = self.store.read_index(name)
        if len(snapshot.catalog) != expected:
            raise VerificationError(f"{name}: {len(snapshot.catalog)} documents, the catalog has {expected}")
        position = {m.movie_id: i for i, m in enumerate(snapshot.catalog)}
        for probe in probes:
            scores = exact_scores(snapshot.vectors, probe.vector, snapshot.space_type)
            own = position.get(probe.movie_id)
            best = int(np.argmax(scores)) if len(scores) else -1
            if own is None or scores[own] < scores[best] - 1e-6 * max(1.0, abs(float(scores[best]))):
                found = snapshot.catalog[best].movie_id if best >= 0 else None
                raise VerificationError(f"{name}: the probe for movie {probe.movie_id} found movie {found} first")

    def swap(self, name: str, keep: int) -> SwapResult:
        before, previous = self._published()
        chain = ([before] if before else []) + [p for p in previous if p not in (name, before)]
        kept = chain[:keep]
        self.store.publish(name, previous=kept)
        spared = {name, *kept, *([before] if before else [])}
        deleted = [n for n in self.store.index_names() if n not in spared]
        for n in deleted:
            self.store.delete_index(n)
        return SwapResult(before, name, deleted)

    def discard(self, name: str) -> None:
        self._pending.pop(name, None)
        self._loaded.pop(name, None)
        if name != self._published()[0]:
            self.store.delete_index(name)

    # -- rollback ----------------------------------------------------------------
    def rollback_candidates(self) -> list[IndexInfo]:
        _, previous = self._published()
        infos = [self._info(n, set(previous)) for n in previous]
        return [i for i in infos if i is not None]

    def rollback(self, to: str) -> SwapResult:
        before, previous = self._published()
        if to not in previous or self.store.index_meta(to) is None:
            raise RollbackError(
                f"{to} is not an earlier index of {self.root} (candidates: {', '.join(previous) or 'none'})"
            )
        self.store.publish(to, previous=previous[previous.index(to) + 1 :])
        return SwapResult(before, to)

    # -- incremental -------------------------------------------------------------
    def fetch(self, movie_ids: Sequence[int]) -> dict[int, Movie]:
        live, _ = self._published()
        if live is None:
            return {}
        wanted = set(movie_ids)
        return {m.movie_id: m for m in self.store.read_index(live).catalog if m.movie_id in wanted}

    def apply(self, live: IndexInfo, upserts: Sequence[Movie], vectors: np.ndarray,
              deletes: Sequence[int]) -> DeltaResult:
        snapshot = self.store.read_index(live.name)
        dimension = snapshot.vectors.shape[1]
        failures = [DocumentFailure(str(m.movie_id), 400, "; ".join(p))
                    for m, v in zip(upserts, vectors, strict=True) if (p := document_problems(m, v, dimension))]
        if failures:
            raise BulkLoadError(live.name, failures)
        catalog = list(snapshot.catalog)
        position = {m.movie_id: i for i, m in enumerate(catalog)}
        matrix = snapshot.vectors.copy()
        appended: list[np.ndarray] = []
        for movie, vector in zip(upserts, vectors, strict=True):
            at = position.get(movie.movie_id)
            if at is None:
                position[movie.movie_id] = len(catalog)
                catalog.append(movie)
                appended.append(vector)
            else:
                catalog[at] = movie
                matrix[at] = vector
        all_vectors = np.concatenate([matrix, *([np.asarray(appended, dtype=np.float32)] if appended else [])])
        gone = {m for m in deletes if m in position}
        keep = [i for i, m in enumerate(catalog) if m.movie_id not in gone]
        name = f"{_DELTA_SUFFIX.sub('', live.name)}.u{self.store.generation() + 1}"
        self.store.write_index(name, [catalog[i] for i in keep], all_vectors[keep], snapshot.model_version,
                               snapshot.space_type)
        _, previous = self._published()
        self.store.publish(name, previous=previous)
        for n in self.store.index_names():  # the replaced directory stays until the next run
            if n not in {name, live.name, *previous}:
                self.store.delete_index(n)
        return DeltaResult(name, len(upserts), len(gone), len(deletes) - len(gone), before=live.name, after=name)
