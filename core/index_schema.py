"""The OpenSearch movie index: names of versioned indices, their settings and mapping, and the document
of one movie. The indexer creates indices with exactly this, and the tests build theirs from it.

- Alias ``movies`` (configurable) -> versioned index ``<alias>-<model_version>-<UTC timestamp>``.
- Mapping: ``movie_id`` integer, ``title`` text with a ``raw`` keyword subfield, ``year`` integer,
  ``genres`` keyword, ``popularity`` float, ``embedding`` ``knn_vector`` (HNSW; inner product by default).
- ``_meta``: the model version (the recommender checks it), the alias that owns the index, who made it.
- Document id: ``str(movie_id)``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.features import Movie
from core.settings import setting

CREATED_BY = "recs-indexer"
ENGINES = ("faiss", "lucene")
SPACE_TYPES = ("innerproduct", "cosinesimil", "l2")
_UNSAFE = re.compile(r"[^a-z0-9_.-]+")


@dataclass(frozen=True)
class IndexParams:
    """How a new OpenSearch index is built (ignored by the embedded store, except ``space_type``)."""

    engine: str = setting("RECS_INDEX_ENGINE", default="faiss")
    space_type: str | None = setting("RECS_INDEX_SPACE_TYPE", default=None)
    """None: the space the bundle's manifest names (inner product for the two-tower model)."""
    m: int = setting("RECS_INDEX_M", default=16)
    ef_construction: int = setting("RECS_INDEX_EF_CONSTRUCTION", default=128)
    ef_search: int = setting("RECS_INDEX_EF_SEARCH", default=100)
    shards: int = setting("RECS_INDEX_SHARDS", default=1)
    replicas: int = setting("RECS_INDEX_REPLICAS", default=1)
    refresh_interval: str | None = setting("RECS_INDEX_REFRESH_INTERVAL", default=None)
    """Restored after the load; None: the cluster default (1s)."""


def index_name(alias: str, model_version: str, now: datetime | None = None) -> str:
    """``<alias>-<model_version>-<UTC timestamp to the millisecond>``, lower-case and index-name safe.

    >>> index_name("movies", "Two-Tower v3", datetime(2025, 3, 1, 10, 15, 2, 123456, tzinfo=UTC))
    'movies-two-tower-v3-20250301t101502.123z'
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    model = _UNSAFE.sub("-", model_version.lower()).strip("-_.") or "model"
    stamp = moment.strftime("%Y%m%dt%H%M%S") + f".{moment.microsecond // 1000:03d}z"
    return f"{alias}-{model[:150]}-{stamp}"


def index_body(
    *, dimension: int, model_version: str, alias: str, space_type: str, params: IndexParams,
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """Settings and mapping of a new index; refresh is off until the load is done (``refresh_interval: -1``).

    ``_meta`` records the model version (the recommender checks it) and the alias that owns the
    index (retention and rollback only ever touch indices whose ``_meta.alias`` is theirs).
    """
    return {
        "settings": {
            "index": {
                "knn": True,
                "knn.algo_param.ef_search": params.ef_search,
                "number_of_shards": params.shards,
                "number_of_replicas": params.replicas,
                "refresh_interval": "-1",
            }
        },
        "mappings": {
            "_meta": {
                "model_version": model_version,
                "alias": alias,
                "created_by": CREATED_BY,
                "created_at": (created_at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            },
            "properties": {
                "movie_id": {"type": "integer"},
                "title": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
                "year": {"type": "integer"},
                "genres": {"type": "keyword"},
                "popularity": {"type": "float"},
                "embedding": {
                    "type": "knn_vector",
                    "dimension": dimension,
                    "method": {
                        "name": "hnsw",
                        "space_type": space_type,
                        "engine": params.engine,
                        "parameters": {"m": params.m, "ef_construction": params.ef_construction},
                    },
                },
            },
        },
    }


def document(movie: Movie, vector: Sequence[float]) -> dict[str, Any]:
    """The index document of one movie: its catalog fields and its vector in ``embedding``."""
    return {
        "movie_id": movie.movie_id,
        "title": movie.title,
        "year": movie.year,
        "genres": list(movie.genres),
        "popularity": movie.popularity,
        "embedding": list(vector),
    }
