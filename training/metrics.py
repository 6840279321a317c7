"""Ranking metrics of the evaluation protocol (binary relevance)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def recall_at_k(ranked: Sequence[int] | np.ndarray, relevant: set[int], k: int) -> float:
    """hits in the top ``k`` / min(k, |relevant|)."""
    if not relevant:
        raise ValueError("recall is undefined without relevant items")
    hits = sum(1 for item in list(ranked)[:k] if item in relevant)
    return hits / min(k, len(relevant))


def ndcg_at_k(ranked: Sequence[int] | np.ndarray, relevant: set[int], k: int) -> float:
    """DCG of the top ``k`` with binary gains over the ideal DCG of min(k, |relevant|) hits."""
    if not relevant:
        raise ValueError("NDCG is undefined without relevant items")
    dcg = sum(1.0 / np.log2(rank + 2) for rank, item in enumerate(list(ranked)[:k]) if item in relevant)
    ideal = sum(1.0 / np.log2(rank + 2) for rank in range(min(k, len(relevant))))
    return float(dcg / ideal)
