"""The validation split: carved from the history only, never from the test items.

Some users (``fraction`` of those with at least 3 history items, drawn with the run's seeded
generator) hold out the latest 10% of their history (at least one item). Training reads each user's
first ``limit[u]`` interactions; validation ranks the full catalog for the held-out users from that
prefix (the prefix excluded from the ranking) and compares the top of it with the held-out items,
exactly as the test protocol does with the history and the test items.

Two uses, one code path:

* **early stopping** of every trained model (the two-tower, SASRec, GRU4Rec): ``fraction`` 0.1 by
  default (``TrainConfig.validation_users``);
* **selection** of hyper-parameters (``training.tuning``): the same split with ``fraction`` 1.0, so
  every eligible user holds out the latest 10% of their history (the figures of 61 users on the
  bundled sample were too noisy to tell configurations apart: a 95% half-width of about 0.04).

The test items are never read by either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from training.evaluation import EvalSet, per_user_metrics, summarize
from training.sequences import catalog_rows
from training.split import Split

HOLDOUT = 0.1
"""The share of a validation user's history held out (the latest ones; at least one)."""
MIN_HISTORY = 3


@dataclass(frozen=True)
class ValidationSplit:
    """Which users validate, and how much of each user's history training may read."""

    users: np.ndarray  # sorted user rows of the validation users
    limit: np.ndarray  # [U] int64: training reads the first limit[u] interactions of user u
    n_history: np.ndarray  # [U] int64: the history length (limit[u] < n_history[u] for validation users)
    fraction: float

    def to_dict(self) -> dict[str, object]:
        return {"fraction": self.fraction, "users": int(self.users.shape[0]), "holdout": HOLDOUT,
                "held_out_items": int((self.n_history - self.limit).sum())}


def validation_split(n_history: np.ndarray, fraction: float, rng: np.random.Generator) -> ValidationSplit:
    """``fraction`` of the users with at least 3 history items, drawn with ``rng``, hold out their latest 10%."""
    n_hist = np.asarray(n_history, dtype=np.int64).copy()
    eligible = np.flatnonzero(n_hist >= MIN_HISTORY)
    n_val = round(fraction * eligible.size)
    users = np.sort(rng.choice(eligible, size=n_val, replace=False)) if n_val else np.empty(0, np.int64)
    limit = n_hist.copy()
    holdout = np.maximum(1, (n_hist[users] * HOLDOUT).astype(np.int64))
    limit[users] = n_hist[users] - holdout
    return ValidationSplit(users=users.astype(np.int64), limit=limit, n_history=n_hist, fraction=fraction)


def _binary(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    matrix = sp.csr_matrix((np.ones(rows.shape[0], np.float32), (rows, cols)), shape=shape)
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def validation_evalset(split: Split, val: ValidationSplit, catalog_ids: Sequence[int] | np.ndarray) -> EvalSet:
    """The validation problem as an ``EvalSet``: ``history`` is every user's training prefix (``limit``), ``test``
    the held-out part of the validation users' histories, ``users`` the validation users with a held-out item
    in the catalog. Any scorer of the evaluation (``training.evaluation``) runs on it unchanged."""
    ids = np.asarray(catalog_ids, dtype=np.int64)
    seqs = split.sequences
    cols = catalog_rows(ids, seqs.movie_ids)
    owner = np.repeat(np.arange(len(seqs), dtype=np.int32), np.diff(seqs.offsets))
    pos = np.arange(seqs.movie_ids.shape[0]) - np.repeat(seqs.offsets[:-1], np.diff(seqs.offsets))
    known = cols >= 0
    prefix = known & (pos < val.limit[owner])
    held = known & (pos >= val.limit[owner]) & (pos < val.n_history[owner])
    shape = (len(seqs), ids.shape[0])
    history = _binary(owner[prefix], cols[prefix], shape)
    test = _binary(owner[held], cols[held], shape)
    users = np.flatnonzero(np.diff(test.indptr) > 0).astype(np.int64)
    return EvalSet(ids, history, test, users)


def validation_metrics(score_rows: Callable[[np.ndarray], np.ndarray], data: EvalSet) -> dict[str, float]:
    """Recall@10/100 and NDCG@10/100 on the validation users, with the 95% half-width of Recall@10."""
    if data.users.shape[0] == 0:
        return {}
    means, half = summarize(per_user_metrics(score_rows, data, progress=False))
    return {**means, "recall@10_ci95": half["recall@10"], "users": float(data.users.shape[0])}
