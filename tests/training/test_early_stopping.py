"""Early stopping (``training.early_stopping``) on a real Keras fit with a scripted validation score: it stops after
``patience`` epochs without a better score and keeps the best epoch's weights; ``keep_latest`` runs every epoch."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from training.config import TrainConfig
from training.early_stopping import early_stopping


def _fit(scores: list[float], epochs: int, patience: int, keep_latest: bool) -> tuple[Any, list[list[Any]]]:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    script = iter(scores)
    monitor, best = early_stopping(model, lambda: next(script), patience, log=lambda m: None, keep_latest=keep_latest)
    seen: list[list[Any]] = []

    class Snapshot(keras.callbacks.Callback):  # the weights after each epoch, to compare with what was kept
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            seen.append(model.get_weights())

    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    model.fit(x, x.sum(axis=1, keepdims=True), epochs=epochs, batch_size=16, verbose=0,
              callbacks=[Snapshot(), monitor])
    return best, seen


def test_it_stops_after_patience_epochs_without_a_better_score_and_keeps_the_best_weights() -> None:
    best, seen = _fit([0.1, 0.3, 0.2, 0.25, 0.29, 0.5, 0.6], epochs=7, patience=3, keep_latest=False)
    assert len(seen) == 5 and best.history["val_recall@10"] == [0.1, 0.3, 0.2, 0.25, 0.29]
    assert best.epoch == 2 and best.score == 0.3
    for kept, at_epoch_2 in zip(best.weights, seen[1], strict=True):
        np.testing.assert_array_equal(kept, at_epoch_2)
    assert not all(np.array_equal(a, b) for a, b in zip(best.weights, seen[-1], strict=True))


def test_keep_latest_runs_every_epoch_and_keeps_the_last() -> None:
    best, seen = _fit([0.3, 0.2, 0.1, 0.05], epochs=4, patience=1, keep_latest=True)
    assert len(seen) == 4 and best.epoch == 4 and len(best.history["loss"]) == 4
    for kept, last in zip(best.weights, seen[-1], strict=True):
        np.testing.assert_array_equal(kept, last)


def test_early_stopping_needs_validation_users() -> None:
    with pytest.raises(ValueError, match="early_stopping needs validation_users"):
        TrainConfig(early_stopping=True, validation_users=0.0)
    with pytest.raises(ValueError, match="epochs and patience must be at least 1"):
        TrainConfig(epochs=0)
    assert not TrainConfig().early_stopping and TrainConfig(early_stopping=True).validation_users > 0
