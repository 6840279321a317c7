"""Index documents and their bulk (NDJSON) lines, encoded a batch at a time.

A document is ``core.index_schema.document`` (``movie_id, title, year, genres, popularity,
embedding``); its id is ``str(movie_id)``. Vectors are written with 7 decimals: the rounding error (at most 5e-8) is
below float32's own resolution for the unit-length part of the vector, and it halves the bytes
on the wire compared with the full float64 repr of each float32.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

import numpy as np

from core.features import Movie
from core.index_schema import document

VECTOR_DECIMALS = 7


class BulkAction(NamedTuple):
    """One bulk operation: the document id (for error reports) and its NDJSON line(s)."""

    doc_id: str
    payload: str


def rounded_rows(vectors: np.ndarray) -> list[list[float]]:
    rows: list[list[float]] = np.round(np.asarray(vectors, dtype=np.float64), VECTOR_DECIMALS).tolist()
    return rows


def index_actions(index: str, movies: Sequence[Movie], vectors: np.ndarray) -> Iterator[BulkAction]:
    """``index`` operations (create or replace) for aligned movies and vectors."""
    if len(movies) != len(vectors):
        raise ValueError(f"{len(movies)} movies but {len(vectors)} vectors")
    index_json = json.dumps(index)
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    for movie, row in zip(movies, rounded_rows(vectors), strict=True):
        doc_id = str(movie.movie_id)
        meta = f'{{"index":{{"_index":{index_json},"_id":"{doc_id}"}}}}\n'
        yield BulkAction(doc_id, meta + dumps(document(movie, row)) + "\n")


def delete_actions(index: str, movie_ids: Iterable[int]) -> Iterator[BulkAction]:
    index_json = json.dumps(index)
    for movie_id in movie_ids:
        doc_id = str(int(movie_id))
        yield BulkAction(doc_id, f'{{"delete":{{"_index":{index_json},"_id":"{doc_id}"}}}}\n')
