"""The evaluation protocol: rank the full catalog per user, history excluded, top-K against test items."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from training.split import Split

KS = (10, 100)
METRICS = tuple(f"{m}@{k}" for k in KS for m in ("recall", "ndcg"))


@dataclass(frozen=True)
class EvalSet:
    """The split mapped onto catalog columns."""

    catalog_ids: np.ndarray  # movie ids in catalog order
    history: sp.csr_matrix  # users x catalog, binary
    users: np.ndarray  # row indices of users with at least one test item
    test_columns: list[np.ndarray]  # per row in ``users``: catalog columns of the test items

    @classmethod
    def build(cls, split: Split, catalog_ids: Sequence[int] | np.ndarray) -> EvalSet:
        ids = np.asarray(catalog_ids, dtype=np.int64)
        order = np.argsort(ids, kind="stable")

        def columns(movie_ids: np.ndarray) -> np.ndarray:
            pos = order[np.searchsorted(ids[order], movie_ids)]
            return pos.astype(np.int64)

        seqs = split.sequences
        known = np.isin(seqs.movie_ids, ids)  # ratings of movies outside the catalog are ignored
        mask = split.history_mask() & known
        rows = np.repeat(np.arange(len(seqs)), np.diff(seqs.offsets))[mask]
        cols = columns(seqs.movie_ids[mask])
        history = sp.csr_matrix(
            (np.ones(rows.shape[0], dtype=np.float32), (rows, cols)), shape=(len(seqs), ids.shape[0])
        )
        history.sum_duplicates()
        history.data[:] = 1.0
        tests = [columns(t[np.isin(t, ids)]) for t in (split.test(u) for u in range(len(seqs)))]
        users = np.asarray([u for u in range(len(seqs)) if tests[u].size], dtype=np.int64)
        return cls(ids, history, users, [tests[u] for u in users])


def _ranking_metrics(top: np.ndarray, test: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    relevant = np.isin(top, test)
    out = {}
    discounts = 1.0 / np.log2(np.arange(2, top.shape[0] + 2))
    for k in ks:
        hits = relevant[:k]
        n_rel = min(k, test.shape[0])
        out[f"recall@{k}"] = float(hits.sum() / n_rel)
        out[f"ndcg@{k}"] = float((hits * discounts[:k]).sum() / discounts[:n_rel].sum())
    return out


def evaluate(
    score_rows: Callable[[np.ndarray], np.ndarray],
    data: EvalSet,
    ks: Sequence[int] = KS,
    batch_size: int = 256,
) -> dict[str, float]:
    """Mean metrics over users; ``score_rows(user_rows)`` returns ``[len(user_rows), n_catalog]`` scores."""
    max_k = max(ks)
    totals = {f"{m}@{k}": 0.0 for k in ks for m in ("recall", "ndcg")}
    for start in range(0, data.users.shape[0], batch_size):
        rows = data.users[start : start + batch_size]
        scores = np.array(score_rows(rows), dtype=np.float32, copy=True)
        hist = data.history[rows]
        scores[hist.nonzero()] = -np.inf
        if max_k < scores.shape[1]:
            top = np.argpartition(-scores, max_k, axis=1)[:, :max_k]
        else:  # a catalog smaller than K: rank all of it
            top = np.broadcast_to(np.arange(scores.shape[1]), scores.shape).copy()
        top_scores = np.take_along_axis(scores, top, axis=1)
        top = np.take_along_axis(top, np.argsort(-top_scores, axis=1, kind="stable"), axis=1)
        for i, _ in enumerate(rows):
            for name, value in _ranking_metrics(top[i], data.test_columns[start + i], ks).items():
                totals[name] += value
    n = max(1, data.users.shape[0])
    return {name: value / n for name, value in totals.items()}
