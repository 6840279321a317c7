"""What a job needs from an index target; OpenSearch and the embedded store both provide it.

A full rebuild: ``new_name`` -> ``create`` -> ``load`` -> ``finish`` -> ``verify`` -> ``swap``
(atomic, with retention). A crash anywhere before ``swap`` leaves the alias where it was; the
unfinished index is deleted by the next rebuild (it is never a rollback candidate: only indices
that went live are).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from core.features import Movie
from indexer.catalog_stream import CatalogBatch


@dataclass(frozen=True)
class IndexInfo:
    name: str
    model_version: str | None
    created: float
    """Creation time (seconds since the epoch): orders indices for retention and rollback."""
    served: bool = False
    """It went live once (after passing verification) and was not rolled back from since."""
    count: int | None = None


@dataclass(frozen=True)
class LoadResult:
    documents: int
    retried: int = 0
    """Documents sent again after a 429, a 5xx or a lost connection."""


@dataclass(frozen=True)
class SwapResult:
    before: str | None
    after: str
    deleted: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Probe:
    """A known movie and the query vector that must find it first."""

    movie_id: int
    vector: np.ndarray


@dataclass(frozen=True)
class DeltaResult:
    index: str
    upserted: int
    deleted: int
    not_found: int
    before: str | None = None
    after: str | None = None


class IndexTarget(Protocol):
    kind: str
    alias: str

    def describe(self) -> str: ...

    def live(self) -> IndexInfo | None: ...

    def indices(self) -> list[IndexInfo]:
        """Indices owned by this alias, oldest first."""
        ...

    def new_name(self, model_version: str) -> str: ...

    def create(self, name: str, *, model_version: str, dimension: int, space_type: str) -> None: ...

    def load(self, name: str, batches: Iterable[CatalogBatch], on_docs: Callable[[int], None]) -> LoadResult:
        """Write every batch; raises ``BulkLoadError`` listing refused documents."""
        ...

    def finish(self, name: str) -> None:
        """Make the loaded documents searchable (restore refresh, refresh / write the files)."""
        ...

    def verify(self, name: str, expected: int, probes: Sequence[Probe]) -> None: ...

    def swap(self, name: str, keep: int) -> SwapResult:
        """Point the alias at ``name`` atomically, keep ``keep`` earlier served indices, delete the rest."""
        ...

    def discard(self, name: str) -> None:
        """Delete an index that will never be made live (best effort)."""
        ...

    def rollback_candidates(self) -> list[IndexInfo]:
        """Earlier served indices, newest first."""
        ...

    def rollback(self, to: str) -> SwapResult: ...

    def fetch(self, movie_ids: Sequence[int]) -> dict[int, Movie]:
        """The live documents among ``movie_ids`` (without vectors)."""
        ...

    def apply(self, live: IndexInfo, upserts: Sequence[Movie], vectors: np.ndarray,
              deletes: Sequence[int]) -> DeltaResult: ...

    def generation(self) -> int | None:
        """The target's own catalog generation, if it keeps one (the embedded store does)."""
        ...


def probe_positions(count: int, probes: int) -> list[int]:
    """Catalog rows to probe: spread evenly from the first to the last."""
    if count <= 0 or probes <= 0:
        return []
    if probes == 1 or count == 1:
        return [0]
    return sorted({round(i * (count - 1) / (probes - 1)) for i in range(min(probes, count))})


def probe_vector(vector: np.ndarray, space_type: str) -> np.ndarray:
    """The query that must find ``vector``'s movie first.

    In the inner-product space the last column is ``log(1 + popularity)``: a more popular movie
    can outscore a movie's own vector, so the probe zeroes that column and compares the
    normalised part only (a movie's own score is then 1, any other's is below 1 unless it has
    the very same vector). Other spaces use the vector as it is.
    """
    query = np.array(vector, dtype=np.float32, copy=True)
    if space_type == "innerproduct" and query.size > 1:
        query[-1] = 0.0
    return query


def exact_scores(vectors: np.ndarray, query: np.ndarray, space_type: str) -> np.ndarray:
    """Scores (higher is better) of every row for ``query``, exactly, in numpy."""
    if space_type == "l2":
        return -np.sum((vectors - query) ** 2, axis=1)
    if space_type == "cosinesimil":
        norms = np.linalg.norm(vectors, axis=1) * max(float(np.linalg.norm(query)), 1e-12)
        return (vectors @ query) / np.maximum(norms, 1e-12)
    return vectors @ query
