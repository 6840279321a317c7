"""The two-tower loss's negatives: in-batch ones, uniform ones from the catalog (mixed negative sampling), the logQ
correction of their mixture, and accidental hits masked."""

from __future__ import annotations

import numpy as np
import pytest

from core.features import ITEM_INPUTS
from training.config import TrainConfig
from training.sequences import Examples, log_q_of

N_MOVIES, BATCH, VOCAB, GENRES, TOKENS = 40, 6, 30, 3, 10


def _examples(targets: list[int]) -> Examples:
    n = len(targets)
    return Examples(np.arange(n, dtype=np.int64), np.asarray(targets, np.int32))


def test_log_q_is_the_target_frequency_without_uniform_negatives():
    q = np.exp(log_q_of(_examples([0, 0, 1, 2]), 5))
    np.testing.assert_allclose(q, [0.5, 0.25, 0.25, 0.25, 0.25], rtol=1e-6)  # never a target: counted once


def test_log_q_adds_the_uniform_draws_per_target_of_a_batch():
    # 4 examples, batch of 2, 10 uniform draws over 5 movies: each movie is drawn 2 times a batch, 1 per target
    q = np.exp(log_q_of(_examples([0, 0, 1, 2]), 5, batch_size=2, uniform_negatives=10))
    np.testing.assert_allclose(q, [0.5 + 1, 0.25 + 1, 0.25 + 1, 1, 1], rtol=1e-6)


def test_negative_uniform_negatives_are_refused():
    with pytest.raises(ValueError, match="uniform_negatives"):
        TrainConfig(uniform_negatives=-1)


@pytest.fixture(scope="module")
def model_and_batch():
    from training.model import ItemTowerLayer, TwoTower
    from training.user_towers import make_user_tower_layer

    rng = np.random.default_rng(0)
    catalog = {
        "id_slot": rng.integers(2, VOCAB + 2, N_MOVIES).astype(np.int32),
        "genres": rng.integers(0, 2, (N_MOVIES, GENRES)).astype(np.float32),
        "year": rng.normal(size=(N_MOVIES, 2)).astype(np.float32),
        "tokens": rng.integers(0, TOKENS + 1, (N_MOVIES, 4)).astype(np.int32),
        "log_pop": rng.normal(size=N_MOVIES).astype(np.float32),
        "log_q": rng.normal(size=N_MOVIES).astype(np.float32),
    }
    cfg = TrainConfig(history_length=5, embedding_dim=8, token_dim=4, hidden=16, dimension=9)
    item = ItemTowerLayer(VOCAB, GENRES, TOKENS, 8, 4, 16, 8)
    model = TwoTower(make_user_tower_layer(cfg, VOCAB, 8), item, temperature=0.1, uniform_negatives=4,
                     catalog=catalog)

    def batch(target: list[int]) -> dict[str, np.ndarray]:
        rows = np.asarray(target, np.int32)
        return {
            "hist_slots": rng.integers(0, VOCAB + 2, (len(rows), 5)).astype(np.int32),
            "hist_buckets": rng.integers(0, 5, (len(rows), 5)).astype(np.int32),
            **{k: catalog[k][rows] for k in (*ITEM_INPUTS, "log_pop", "log_q")},
            "target": rows,
        }

    return model, batch, catalog


def _loss(model, x, draws=None, catalog=None) -> float:
    u, v = model(x)
    if draws is None:
        return float(model.compute_loss(x, y_pred=(u, v)))
    rows = np.asarray(draws, np.int32)
    v_neg = model.item_tower(*(catalog[k][rows] for k in ITEM_INPUTS))
    return float(model.compute_loss(x, y_pred=(u, v, v_neg, rows)))


def test_uniform_negatives_add_to_the_loss(model_and_batch):
    model, batch, catalog = model_and_batch
    x = batch([0, 1, 2, 3, 4, 5])
    assert _loss(model, x, draws=[10, 11, 12, 13], catalog=catalog) > _loss(model, x) + 1e-3


def test_accidental_hits_are_masked_in_batch_and_among_the_uniform_draws(model_and_batch):
    model, batch, catalog = model_and_batch
    x = batch([3] * BATCH)  # every row's target is movie 3: each row's in-batch negatives are all accidental hits
    assert _loss(model, x) == pytest.approx(0.0, abs=1e-6)  # only the positive is left in each row
    # drawing movie 3: still masked
    assert _loss(model, x, draws=[3, 3, 3, 3], catalog=catalog) == pytest.approx(0.0, abs=1e-6)
    assert _loss(model, x, draws=[3, 3, 3, 7], catalog=catalog) > 1e-3  # one true negative counts


def test_in_training_the_model_draws_its_uniform_negatives(model_and_batch):
    model, batch, _ = model_and_batch
    x = batch([0, 1, 2, 3, 4, 5])
    out = model(x, training=True)
    assert len(out) == 4 and tuple(out[2].shape) == (4, 8)
    rows = np.asarray(out[3])
    assert rows.min() >= 0 and rows.max() < N_MOVIES
    assert len(model(x, training=False)) == 2


def test_uniform_negatives_need_the_catalog():
    from training.model import ItemTowerLayer, TwoTower
    from training.user_towers import make_user_tower_layer

    cfg = TrainConfig(history_length=5, embedding_dim=8, token_dim=4, hidden=16, dimension=9)
    with pytest.raises(ValueError, match="catalog"):
        TwoTower(make_user_tower_layer(cfg, VOCAB, 8), ItemTowerLayer(VOCAB, GENRES, TOKENS, 8, 4, 16, 8), 0.1,
                 uniform_negatives=4)
