"""Build a movie index exactly as the indexer does (``core.index_schema``), for tests.

``create_movie_index`` creates ``index`` with the documented settings and mapping, bulk-loads one
document per movie (id ``str(movie_id)``, the vector in ``embedding``), refreshes, and points
``alias`` at it (moving the alias off any other index, in one ``_aliases`` call).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.features import Movie
from core.index_schema import IndexParams, document, index_body
from tests.support.http import request

BULK_BATCH = 1000


def movie_index_body(
    dimension: int,
    *,
    space_type: str = "innerproduct",
    engine: str = "faiss",
    model_version: str = "test-model",
    alias: str = "movies",
    ef_search: int = 100,
    m: int = 16,
    ef_construction: int = 128,
    shards: int = 1,
    replicas: int = 0,
) -> dict[str, Any]:
    """Settings and mappings of a movie index: exactly what the indexer creates (``core.index_schema``),
    refresh on (the tests read what they load at once)."""
    params = IndexParams(engine=engine, space_type=space_type, m=m, ef_construction=ef_construction,
                         ef_search=ef_search, shards=shards, replicas=replicas)
    body = index_body(dimension=dimension, model_version=model_version, alias=alias, space_type=space_type,
                      params=params)
    del body["settings"]["index"]["refresh_interval"]
    return body


def movie_document(movie: Movie, vector: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """The index document of one movie (``core.index_schema.document``)."""
    return document(movie, [float(x) for x in np.asarray(vector, dtype=np.float32)])


def create_movie_index(
    url: str,
    index: str,
    alias: str | None,
    movies: Sequence[Movie],
    vectors: Sequence[Sequence[float]] | np.ndarray,
    space_type: str = "innerproduct",
    engine: str = "faiss",
    dimension: int | None = None,
    *,
    model_version: str = "test-model",
    shards: int = 1,
) -> str:
    """Create ``index`` at ``url``, load ``movies`` with ``vectors`` (row i belongs to movie i), point ``alias``.

    Returns ``index``. ``dimension`` defaults to the vectors' width; pass ``alias=None`` for no alias.
    """
    matrix = np.asarray(vectors, dtype=np.float32)
    if len(movies) and (matrix.ndim != 2 or matrix.shape[0] != len(movies)):
        raise ValueError(f"vectors must be ({len(movies)}, dimension); got shape {matrix.shape}")
    if dimension is None:
        if matrix.ndim != 2:
            raise ValueError("dimension is required when there are no vectors")
        dimension = int(matrix.shape[1])
    body = movie_index_body(dimension, space_type=space_type, engine=engine, model_version=model_version,
                            alias=alias or "movies", shards=shards)
    quoted = urllib.parse.quote(index, safe="")
    request(url, "PUT", f"/{quoted}", body)
    for start in range(0, len(movies), BULK_BATCH):
        lines: list[Any] = []
        for movie, vector in zip(movies[start : start + BULK_BATCH], matrix[start : start + BULK_BATCH], strict=True):
            lines.append({"index": {"_index": index, "_id": str(movie.movie_id)}})
            lines.append(movie_document(movie, vector))
        result = request(url, "POST", "/_bulk", ndjson=lines).body
        if result.get("errors"):
            failed = [item for item in result["items"] if next(iter(item.values())).get("error")]
            raise RuntimeError(f"bulk load into {index} failed for {len(failed)} documents: {failed[:3]}")
    request(url, "POST", f"/{quoted}/_refresh")
    if alias:
        point_alias(url, alias, index)
    return index


def point_alias(url: str, alias: str, index: str) -> None:
    """Move ``alias`` to ``index`` atomically (removing it from every index that holds it)."""
    quoted = urllib.parse.quote(alias, safe="")
    current = request(url, "GET", f"/_alias/{quoted}", expect=(200, 404))
    holders = list(current.body) if current.status == 200 and isinstance(current.body, dict) else []
    actions: list[dict[str, Any]] = [{"remove": {"index": h, "alias": alias}} for h in holders if h != index]
    actions.append({"add": {"index": index, "alias": alias}})
    request(url, "POST", "/_aliases", {"actions": actions})
