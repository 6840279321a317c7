"""The chronological split and the ranking metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from training.baselines import EASE, ItemKNN, Popularity
from training.evaluation import EvalSet, evaluate
from training.metrics import ndcg_at_k, recall_at_k
from training.movielens import Ratings, load_movielens
from training.split import chronological_split, count_test_items


def ratings(rows: list[tuple[int, int, float, int]]) -> Ratings:
    a = np.asarray(rows, dtype=np.float64)
    return Ratings(a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2].astype(np.float32),
                   a[:, 3].astype(np.int64))


def test_split_takes_the_latest_fifth_by_time_with_at_least_one():
    # user 1 rates 10 movies in shuffled file order; user 2 has a single rating
    rows = [(1, m, 4.0, 100 - m) for m in range(10, 0, -1)] + [(2, 77, 3.0, 5)]
    split = chronological_split(ratings(rows))
    assert split.test(0).tolist() == [2, 1]  # latest timestamps are movies 1 and 2
    assert split.history(0).tolist() == [10, 9, 8, 7, 6, 5, 4, 3]
    assert split.history(1).tolist() == [] and split.test(1).tolist() == [77]


def test_split_keeps_file_order_for_equal_timestamps():
    split = chronological_split(ratings([(1, 5, 4.0, 1), (1, 3, 4.0, 1), (1, 9, 4.0, 1), (1, 1, 4.0, 1),
                                         (1, 2, 4.0, 1)]))
    assert split.history(0).tolist() == [5, 3, 9, 1] and split.test(0).tolist() == [2]


def test_test_count_rule():
    assert [count_test_items(n) for n in (1, 2, 4, 5, 9, 10, 11, 100)] == [1, 1, 1, 1, 1, 2, 2, 20]


def test_split_invariants_on_the_bundled_sample():
    data = load_movielens("data/ml-latest-small")
    split = chronological_split(data.ratings)
    seqs = split.sequences
    for u in range(0, len(seqs), 7):
        hist, test = split.history(u), split.test(u)
        n = hist.size + test.size
        assert test.size == max(1, int(0.2 * n))
        assert not set(hist.tolist()) & set(test.tolist())
        times = seqs.timestamps[seqs.offsets[u] : seqs.offsets[u + 1]]
        assert np.all(np.diff(times) >= 0)
        assert times[hist.size - 1] <= times[hist.size] if hist.size else True


def test_recall_and_ndcg_by_hand():
    ranked = [5, 1, 7, 3]
    relevant = {1, 3, 9}
    assert recall_at_k(ranked, relevant, 2) == pytest.approx(1 / 2)  # min(K, |test|) = 2
    assert recall_at_k(ranked, relevant, 4) == pytest.approx(2 / 3)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranked, relevant, 4) == pytest.approx(dcg / idcg)
    assert ndcg_at_k([1, 3, 9], relevant, 10) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        recall_at_k(ranked, set(), 10)


def test_evaluate_excludes_history_and_matches_the_metric_functions():
    # one user, catalog of 6 movies; history = movie 10 (column 0); test = movies 30, 60
    split = chronological_split(ratings([(1, 10, 4, 1), (1, 20, 4, 2), (1, 40, 4, 3), (1, 50, 4, 4),
                                         (1, 30, 4, 5)] + [(1, 60, 4, 6)] * 0))
    data = EvalSet.build(split, [10, 20, 30, 40, 50, 60])
    assert data.test_columns(0).tolist() == [2]
    scores = np.asarray([[9.0, 8.0, 1.0, 7.0, 6.0, 5.0]])  # history items ranked first must be dropped
    result = evaluate(lambda rows: scores, data, ks=(1, 2))
    # after exclusion of columns 0,1,3,4 the ranking is [5 (60), 2 (30)]
    assert result["recall@1"] == 0.0
    assert result["recall@2"] == pytest.approx(recall_at_k([60, 30], {30}, 2))
    assert result["ndcg@2"] == pytest.approx(ndcg_at_k([60, 30], {30}, 2))


def test_baselines_by_hand():
    x = sp.csr_matrix(np.asarray([[1, 1, 0], [1, 0, 1], [1, 1, 0]], dtype=np.float32))
    assert Popularity(x).score(x[:1]).tolist() == [[3.0, 2.0, 1.0]]
    knn = ItemKNN(x)
    # cos(item1, item0) = 2 / sqrt(3 * 2); user 1 (items 0, 2) scores item 1 with cos(0,1) + cos(2,1) = 0.816 + 0
    assert knn.score(x[1:2])[0, 1] == pytest.approx(2 / math.sqrt(6), rel=1e-5)
    ease = EASE(x, lam=1.0)
    gram = x.T.toarray() @ x.toarray() + np.eye(3)
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0)
    np.testing.assert_allclose(ease.score(x), x.toarray() @ b, rtol=1e-5)
