"""The evaluation protocol: rank the full catalog per user, history excluded, top-K against test items.

Users are scored in chunks (``batch_size`` users against the whole catalog at a time), so memory
does not grow with the number of users; per-user metrics are kept (one float per user and
metric) so that a mean can come with its confidence interval and be taken over any subset.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from core.towers import UserEncoder
from training.sequences import catalog_rows, encode_sequences, user_histories
from training.split import Split

KS = (10, 100)
METRICS = tuple(f"{m}@{k}" for k in KS for m in ("recall", "ndcg"))
Z95 = 1.959964


def _binary_csr(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    matrix = sp.csr_matrix((np.ones(rows.shape[0], dtype=np.float32), (rows, cols)), shape=shape)
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


@dataclass(frozen=True)
class EvalSet:
    """The split mapped onto catalog columns: binary history and test matrices (users x catalog)."""

    catalog_ids: np.ndarray  # movie ids in catalog order
    history: sp.csr_matrix  # users x catalog, binary
    test: sp.csr_matrix  # users x catalog, binary: the test items that are in the catalog
    users: np.ndarray  # row indices of users with at least one test item

    @classmethod
    def build(cls, split: Split, catalog_ids: Sequence[int] | np.ndarray) -> EvalSet:
        ids = np.asarray(catalog_ids, dtype=np.int64)
        seqs = split.sequences
        cols = catalog_rows(ids, seqs.movie_ids)  # ratings of movies outside the catalog are ignored
        known = cols >= 0
        in_history = split.history_mask()
        owner = np.repeat(np.arange(len(seqs), dtype=np.int32), np.diff(seqs.offsets))
        shape = (len(seqs), ids.shape[0])
        hist = in_history & known
        history = _binary_csr(owner[hist], cols[hist], shape)
        del hist
        tested = ~in_history & known
        test = _binary_csr(owner[tested], cols[tested], shape)
        users = np.flatnonzero(np.diff(test.indptr) > 0).astype(np.int64)
        return cls(ids, history, test, users)

    def test_columns(self, user_row: int) -> np.ndarray:
        """Catalog columns of the test items of the user in row ``user_row``."""
        return self.test.indices[self.test.indptr[user_row] : self.test.indptr[user_row + 1]].astype(np.int64)


def _discounts(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, n + 2))


def per_user_metrics(
    score_rows: Callable[[np.ndarray], np.ndarray],
    data: EvalSet,
    users: np.ndarray | None = None,
    ks: Sequence[int] = KS,
    batch_size: int = 256,
    progress: bool | None = None,
    label: str = "evaluating",
) -> dict[str, np.ndarray]:
    """Recall@K and NDCG@K of each of ``users`` (default: every user with a test item), in that order.

    ``score_rows(user_rows)`` returns ``[len(user_rows), n_catalog]`` scores; the user's history is
    excluded before the top ``max(ks)`` are taken.
    """
    rows_all = data.users if users is None else np.asarray(users, dtype=np.int64)
    max_k = max(ks)
    out = {f"{m}@{k}": np.zeros(rows_all.shape[0], dtype=np.float64) for k in ks for m in ("recall", "ndcg")}
    discounts = _discounts(max_k)
    ideal = np.concatenate([[1.0], np.cumsum(discounts)])  # ideal[n] = IDCG of n hits (ideal[0] unused)
    bar: Any = None
    if progress if progress is not None else sys.stderr.isatty():
        from tqdm.auto import tqdm

        bar = tqdm(total=rows_all.shape[0], desc=label, unit="user", leave=False)
    for start in range(0, rows_all.shape[0], batch_size):
        rows = rows_all[start : start + batch_size]
        scores = np.array(score_rows(rows), dtype=np.float32, copy=True)
        scores[data.history[rows].nonzero()] = -np.inf
        if max_k < scores.shape[1]:
            top = np.argpartition(-scores, max_k, axis=1)[:, :max_k]
        else:  # a catalog smaller than K: rank all of it
            top = np.broadcast_to(np.arange(scores.shape[1]), scores.shape).copy()
        top_scores = np.take_along_axis(scores, top, axis=1)
        top = np.take_along_axis(top, np.argsort(-top_scores, axis=1, kind="stable"), axis=1)
        del scores
        test = data.test[rows]
        relevant = test[np.arange(rows.shape[0])[:, None], top].toarray() > 0
        n_rel = np.diff(test.indptr)
        for k in ks:
            hits = relevant[:, :k]
            n_k = np.minimum(k, n_rel)
            sl = slice(start, start + rows.shape[0])
            out[f"recall@{k}"][sl] = hits.sum(axis=1) / np.maximum(n_k, 1)
            out[f"ndcg@{k}"][sl] = (hits * discounts[: hits.shape[1]]).sum(axis=1) / ideal[np.maximum(n_k, 1)]
        if bar is not None:
            bar.update(rows.shape[0])
    if bar is not None:
        bar.close()
    return out


def summarize(per_user: dict[str, np.ndarray], subset: np.ndarray | None = None) -> tuple[dict[str, float],
                                                                                          dict[str, float]]:
    """Means and 95% confidence half-widths (normal approximation, ``1.96 * sd / sqrt(n)``) over users."""
    means, ci = {}, {}
    for name, values in per_user.items():
        v = values if subset is None else values[subset]
        n = v.shape[0]
        means[name] = float(v.mean()) if n else 0.0
        ci[name] = float(Z95 * v.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
    return means, ci


def evaluate(
    score_rows: Callable[[np.ndarray], np.ndarray],
    data: EvalSet,
    ks: Sequence[int] = KS,
    batch_size: int = 256,
) -> dict[str, float]:
    """Mean metrics over users; ``score_rows(user_rows)`` returns ``[len(user_rows), n_catalog]`` scores."""
    return summarize(per_user_metrics(score_rows, data, ks=ks, batch_size=batch_size, progress=False))[0]


def served_scorer(
    user_tower: UserEncoder, vectors: np.ndarray, split: Split, lengths: np.ndarray | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """Scores of the served path: the numpy user tower on each history, inner product with the vectors.

    The tower's inputs are cut from flat arrays (``training.sequences``), exactly what
    ``core.features.history_inputs`` makes of the user's history as ``(movie_id, rating)`` pairs.
    ``lengths[u]`` (default: the history) is how much of user ``u``'s sequence is the history (validation:
    the training prefix).
    """
    seqs = encode_sequences(split, np.zeros(0, dtype=np.int64), user_tower.movie_ids, limit=lengths,
                            rows=np.zeros(0, dtype=np.int32))

    def score(rows: np.ndarray) -> np.ndarray:
        slots, buckets = user_histories(seqs, rows, user_tower.history_length)
        return user_tower.forward(slots, buckets) @ vectors.T

    return score
