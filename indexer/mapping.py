"""Names and bodies of versioned movie indices (the mapping documented in docs/architecture.md)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from indexer.settings import IndexParams

CREATED_BY = "recs-indexer"
_UNSAFE = re.compile(r"[^a-z0-9_.-]+")


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
