"""Why each recommended movie: the liked history movies most similar to it (``explain: true``).

Liked: rated ``LIKED_MIN_RATING`` or more, or unrated. Similarity: the cosine of the two item
vectors without their popularity column (as ``RecommendationService.similar``), kept when above 0,
at most ``per_item``; an item is never its own reason.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import numpy as np

from recommender.answers import HistoryItem
from recommender.ports import Hit

LIKED_MIN_RATING = 3.0
"""``explain`` names history movies rated at least this (or unrated) as the ones "you liked"."""
EXPLAIN_PER_ITEM = 3


def because(
    history: Sequence[HistoryItem],
    items: Sequence[Hit],
    vectors_of: Callable[[Collection[int]], dict[int, np.ndarray]],
    per_item: int = EXPLAIN_PER_ITEM,
) -> dict[int, list[tuple[int, float]]]:
    """``{item movie id: [(liked movie id, similarity), ...]}``, most similar first.

    ``vectors_of`` gives the vectors of the liked history movies and of the items in one call
    (``VectorIndex.vectors``), so both are of the same model; it is not called when nobody is liked.
    """
    out: dict[int, list[tuple[int, float]]] = {h.movie.movie_id: [] for h in items}
    liked = list(dict.fromkeys(
        h.movie_id for h in history if h.rating is None or h.rating >= LIKED_MIN_RATING
    ))
    if not liked or not out:
        return out
    vectors = vectors_of({*liked, *out})
    liked = [i for i in liked if i in vectors]
    targets = [i for i in out if i in vectors]
    if not liked or not targets:
        return out
    similarity = _unit_rows([vectors[i][:-1] for i in targets]) @ _unit_rows([vectors[i][:-1] for i in liked]).T
    for row, target in enumerate(targets):
        order = np.argsort(-similarity[row], kind="stable")
        reasons = [(liked[j], float(similarity[row, j])) for j in order.tolist() if liked[j] != target]
        out[target] = [(i, s) for i, s in reasons if s > 0.0][:per_item]
    return out


def _unit_rows(rows: Sequence[np.ndarray]) -> np.ndarray:
    matrix = np.asarray(np.stack(rows), dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.asarray(matrix / np.maximum(norms, 1e-12), dtype=np.float32)
