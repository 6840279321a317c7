"""Early stopping on validation Recall@10, shared by every model trained here (the two-tower, SASRec, GRU4Rec).

After each epoch the callback scores the model on its validation users, records the epoch (loss, validation
Recall@10, seconds), keeps the weights of the best epoch, and stops training once ``patience`` epochs in a row
did not beat it. The caller restores ``BestEpoch.weights`` after ``fit``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def check_stopping(epochs: int, patience: int, early_stopping: bool, validation_users: float) -> None:
    """The epoch settings every trained model's configuration shares (``TrainConfig``, ``SequentialConfig``):
    ``ValueError`` unless ``epochs`` and ``patience`` are at least 1 and ``early_stopping`` has users to stop on."""
    if epochs < 1 or patience < 1:
        raise ValueError("epochs and patience must be at least 1")
    if early_stopping and validation_users == 0:
        raise ValueError("early_stopping needs validation_users above 0 (the users it stops on)")


@dataclass
class BestEpoch:
    """What early stopping saw: per-epoch ``history`` and the best epoch (1-based), its score and weights."""

    weights: list[Any]
    score: float = -1.0
    epoch: int = 0
    history: dict[str, list[float]] = field(
        default_factory=lambda: {"loss": [], "val_recall@10": [], "epoch_seconds": []})


def early_stopping(model: Any, validation_recall: Callable[[], float], patience: int,
                   log: Callable[[str], None], label: str = "", keep_latest: bool = False) -> tuple[Any, BestEpoch]:
    """A Keras callback for ``model.fit`` and the ``BestEpoch`` it fills. Each epoch is logged as ``"<label>epoch
    N: loss ..., validation recall@10 ... (s)"``; ``keep_latest`` (no validation users) takes every epoch as the
    best, so training runs all its epochs."""
    import keras

    best = BestEpoch(weights=model.get_weights())
    started = {"epoch": 0.0}

    class Monitor(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            started["epoch"] = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            seconds = time.perf_counter() - started["epoch"]
            loss = float((logs or {}).get("loss", float("nan")))
            recall = validation_recall()
            best.history["loss"].append(loss)
            best.history["val_recall@10"].append(recall)
            best.history["epoch_seconds"].append(round(seconds, 2))
            log(f"{label}epoch {epoch + 1}: loss {loss:.4f}, validation recall@10 {recall:.4f} ({seconds:.1f} s)")
            if recall > best.score or keep_latest:
                best.score, best.epoch, best.weights = recall, epoch + 1, model.get_weights()
            elif epoch + 1 - best.epoch >= patience:
                self.model.stop_training = True

    return Monitor(), best
