"""The three user towers: the numpy forward pass of each (``core.towers``) equals its Keras layer within 1e-5,
and the tower type survives the round trip through ``user_tower.npz`` (old files without it are pooling)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.errors import TowerWeightsError
from core.features import history_inputs
from core.towers import AttentionUserTower, GRUUserTower, UserTower
from training.config import TrainConfig
from training.user_towers import export_user_tower, make_user_tower_layer

VOCAB = np.arange(100, 160, dtype=np.int64)  # 60 movies with an id embedding
HISTORY = 12


def _layer(kind: str, blocks: int = 2, seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    config = TrainConfig(user_tower=kind, history_length=HISTORY, embedding_dim=16, hidden=24, attention_blocks=blocks,
                         attention_heads=2, sequence_dropout=0.3)
    layer = make_user_tower_layer(config, VOCAB.size, 15)
    layer.build()
    rng = np.random.default_rng(seed)
    for w in layer.weights:  # every weight random (LayerNorm gains, biases, ...): nothing cancels by accident
        w.assign(rng.normal(0.0, 0.4, size=w.shape).astype(np.float32))
    return layer, config


def _histories(rng: np.random.Generator) -> list[list[tuple[int, float | None]]]:
    out: list[list[tuple[int, float | None]]] = []
    for n in (0, 1, 2, 5, HISTORY - 1, HISTORY, 3 * HISTORY):
        ids = rng.choice(np.arange(95, 165), size=n)  # some ids outside the vocabulary (out-of-vocabulary slot)
        ratings = [None if rng.random() < 0.2 else float(rng.integers(1, 11)) / 2 for _ in range(n)]
        out.append(list(zip(ids.tolist(), ratings, strict=True)))
    return out


@pytest.mark.parametrize(("kind", "cls"), [("pooling", UserTower), ("attention", AttentionUserTower),
                                           ("gru", GRUUserTower)])
def test_the_numpy_tower_matches_keras(kind: str, cls: type[UserTower]):
    layer, config = _layer(kind)
    tower = export_user_tower(layer, VOCAB, config.temperature, 0.7)
    assert type(tower) is cls and tower.tower_type == kind
    histories = _histories(np.random.default_rng(1))
    slots, buckets = history_inputs(VOCAB, histories, HISTORY)
    assert (slots == 1).any() and (slots == 0).all(axis=1).any()
    keras_u = np.asarray(layer(slots, buckets))  # inference: no dropout
    numpy_u = tower.encode_batch(histories)
    assert np.abs(keras_u / config.temperature - numpy_u[:, :-1]).max() < 1e-5
    assert np.all(numpy_u[:, -1] == np.float32(0.7))
    # one user at a time (the Lambda's case: the leading padding is skipped) gives the same vectors
    single = np.stack([tower.encode(h) for h in histories])
    np.testing.assert_allclose(single, numpy_u, atol=1e-5)


def test_one_attention_block_matches_too():
    layer, config = _layer("attention", blocks=1, seed=3)
    tower = export_user_tower(layer, VOCAB, config.temperature, 0.0)
    histories = _histories(np.random.default_rng(4))
    slots, buckets = history_inputs(VOCAB, histories, HISTORY)
    keras_u = np.asarray(layer(slots, buckets)) / config.temperature
    assert np.abs(keras_u - tower.forward(slots, buckets)[:, :-1]).max() < 1e-5


@pytest.mark.parametrize("kind", ["pooling", "attention", "gru"])
def test_the_tower_type_survives_the_npz(kind: str, tmp_path: Path):
    layer, config = _layer(kind)
    tower = export_user_tower(layer, VOCAB, config.temperature, 0.1)
    path = tmp_path / "user_tower.npz"
    np.savez(path, **tower.arrays())
    loaded = UserTower.load(path)
    assert type(loaded) is type(tower)
    history = [(101, 4.0), (150, None), (999, 2.5)]
    np.testing.assert_array_equal(loaded.encode(history), tower.encode(history))
    assert loaded.history_length == HISTORY and loaded.dimension == 16


def test_a_file_without_a_type_is_a_pooling_tower_and_types_are_checked(tmp_path: Path):
    layer, config = _layer("pooling")
    arrays = export_user_tower(layer, VOCAB, config.temperature, 0.1).arrays()
    del arrays["tower_type"]  # as written before there was a choice
    np.savez(tmp_path / "old.npz", **arrays)
    assert type(UserTower.load(tmp_path / "old.npz")) is UserTower
    with pytest.raises(TowerWeightsError, match="a pooling user tower, not attention"):
        AttentionUserTower.load(tmp_path / "old.npz")
    np.savez(tmp_path / "odd.npz", **{**arrays, "tower_type": np.asarray("lstm")})
    with pytest.raises(TowerWeightsError, match="unknown user tower type 'lstm'"):
        UserTower.load(tmp_path / "odd.npz")
    gru = export_user_tower(_layer("gru")[0], VOCAB, 0.2, 0.1).arrays()
    np.savez(tmp_path / "short.npz", **{**gru, "gru_kernel": gru["gru_kernel"][:, :-1]})
    with pytest.raises(TowerWeightsError, match="gru_kernel has shape"):
        UserTower.load(tmp_path / "short.npz")


def test_bad_tower_settings_are_refused():
    with pytest.raises(ValueError, match="user_tower"):
        TrainConfig(user_tower="lstm")
    with pytest.raises(ValueError, match="heads"):
        replace(TrainConfig(), attention_heads=5)
