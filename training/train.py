"""Train the two-tower model and export the bundle.

TensorFlow is imported here (and in ``training.model``) only: the rest of the
project never needs it.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.bundle import Bundle, write_bundle
from core.features import ItemFeatureSpec, Movie, history_inputs
from core.towers import ItemTower, UserTower, log_popularity
from training.config import TrainConfig
from training.examples import build_examples, build_feature_spec
from training.movielens import Dataset
from training.split import Split


@dataclass
class TrainedModel:
    """The exported numpy towers, the catalog with training popularity, and its vectors."""

    user_tower: UserTower
    item_tower: ItemTower
    catalog: list[Movie]
    vectors: np.ndarray
    history: dict[str, list[float]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    keras_towers: tuple[Any, Any] | None = field(default=None, repr=False)
    """The trained Keras user and item tower layers (for parity checks); not exported."""


def _seed_everything(seed: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _topk_recall(scores: np.ndarray, exclude: list[np.ndarray], targets: list[np.ndarray], k: int = 10) -> float:
    total = 0.0
    for i in range(scores.shape[0]):
        row = scores[i].copy()
        row[exclude[i]] = -np.inf
        top = np.argpartition(-row, k)[:k] if k < row.shape[0] else np.arange(row.shape[0])
        total += np.isin(top, targets[i]).sum() / min(k, targets[i].shape[0])
    return float(total / max(1, scores.shape[0]))


def train_two_tower(
    data: Dataset,
    split: Split,
    config: TrainConfig | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] = print,
) -> TrainedModel:
    """Train on the history part of ``split`` (validation users hold out their latest 10%)."""
    cfg = config or TrainConfig()
    progress = sys.stderr.isatty() if progress is None else progress
    started = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    _seed_everything(cfg.seed)
    import keras
    import tensorflow as tf

    from training.model import ItemTowerLayer, TwoTower, UserTowerLayer

    movies = data.movies
    catalog_row = {m.movie_id: i for i, m in enumerate(movies)}
    seqs = split.sequences
    n_users = len(seqs)
    item_counts = Counter(int(m) for u in range(n_users) for m in split.history(u).tolist())
    spec = build_feature_spec(movies, item_counts, cfg.min_item_count, cfg.max_tokens)
    popularity = np.asarray([item_counts.get(m.movie_id, 0) for m in movies], dtype=np.float32)
    catalog = [replace(m, popularity=float(p)) for m, p in zip(movies, popularity.tolist(), strict=True)]
    item_inputs = spec.encode(catalog)
    log_pop = log_popularity(popularity)

    # Validation users: their last 10% of history (at least one) are held out for early stopping.
    n_hist = split.n_history.copy()
    eligible = np.flatnonzero(n_hist >= 3)
    n_val = round(cfg.validation_users * eligible.size)
    val_users = np.sort(rng.choice(eligible, size=n_val, replace=False)) if n_val else np.empty(0, np.int64)
    limit = n_hist.copy()
    val_holdout = np.maximum(1, (n_hist[val_users] * 0.1).astype(np.int64))
    limit[val_users] = n_hist[val_users] - val_holdout

    examples = build_examples(
        split, np.arange(n_users), limit, catalog_row, spec.movie_ids, cfg.history_length,
        cfg.target_window, cfg.max_examples_per_user, rng,
    )
    target_counts = np.bincount(examples.target_rows, minlength=len(movies)).astype(np.float64)
    log_q = np.log(np.maximum(target_counts, 1.0) / max(1, len(examples))).astype(np.float32)
    log(f"training on {len(examples):,} examples from {n_users:,} users, {len(movies):,} movies, "
        f"{spec.movie_ids.size:,} with an id embedding; {n_val} validation users")

    tr = examples.target_rows
    features = {
        "hist_slots": examples.hist_slots,
        "hist_buckets": examples.hist_buckets,
        "id_slot": item_inputs["id_slot"][tr],
        "genres": item_inputs["genres"][tr],
        "year": item_inputs["year"][tr],
        "tokens": item_inputs["tokens"][tr],
        "target": tr.astype(np.int32),
        "log_pop": log_pop[tr],
        "log_q": log_q[tr],
    }
    dataset = (
        tf.data.Dataset.from_tensor_slices(features)
        .shuffle(len(examples), seed=cfg.seed, reshuffle_each_iteration=True)
        .batch(cfg.batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )

    out = cfg.dimension - 1
    user_layer = UserTowerLayer(spec.movie_ids.size, cfg.history_length, cfg.embedding_dim, cfg.hidden,
                                out, name="user_tower")
    item_layer = ItemTowerLayer(spec.movie_ids.size, len(spec.genres), len(spec.tokens), cfg.embedding_dim,
                                cfg.token_dim, cfg.hidden, out, name="item_tower")
    model = TwoTower(user_layer, item_layer, cfg.temperature, cfg.id_dropout, cfg.seed, name="two_tower")
    optimizer = (
        keras.optimizers.AdamW(cfg.learning_rate, weight_decay=cfg.weight_decay)
        if cfg.weight_decay > 0
        else keras.optimizers.Adam(cfg.learning_rate)
    )
    model.compile(optimizer=optimizer, jit_compile=cfg.jit_compile)

    # Validation inputs: prefix histories of validation users, scored against the whole catalog.
    val_hist = [
        list(zip(split.history(u)[: limit[u]][-cfg.history_length :].tolist(),
                 split.history_ratings(u)[: limit[u]][-cfg.history_length :].tolist(), strict=True))
        for u in val_users.tolist()
    ]
    val_slots, val_buckets = history_inputs(spec.movie_ids, val_hist, cfg.history_length)
    val_exclude = [np.asarray([catalog_row[int(m)] for m in split.history(u)[: limit[u]]]) for u in val_users.tolist()]
    val_targets = [np.asarray([catalog_row[int(m)] for m in split.history(u)[limit[u] :]]) for u in val_users.tolist()]

    def served_scores(slots: np.ndarray, buckets: np.ndarray) -> np.ndarray:
        u = np.asarray(user_layer(slots, buckets))
        v = np.asarray(item_layer(item_inputs["id_slot"], item_inputs["genres"], item_inputs["year"],
                                  item_inputs["tokens"]))
        w = float(np.asarray(model.popularity_weight))
        return (u @ v.T) / cfg.temperature + w * log_pop[None, :]

    history: dict[str, list[float]] = {"loss": [], "val_recall@10": []}
    best = {"score": -1.0, "epoch": 0, "weights": model.get_weights()}

    class Monitor(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            loss = float((logs or {}).get("loss", float("nan")))
            history["loss"].append(loss)
            recall = _topk_recall(served_scores(val_slots, val_buckets), val_exclude, val_targets) if n_val else 0.0
            history["val_recall@10"].append(recall)
            log(f"epoch {epoch + 1}: loss {loss:.4f}, validation recall@10 {recall:.4f}")
            if recall > best["score"] or not n_val:
                best.update(score=recall, epoch=epoch + 1, weights=model.get_weights())
            elif epoch + 1 - int(best["epoch"]) >= cfg.patience:
                self.model.stop_training = True

    callbacks: list[Any] = [Monitor()]
    if progress:
        from training.progress import TqdmCallback

        callbacks.append(TqdmCallback(cfg.epochs, len(examples) // cfg.batch_size))
    model.fit(dataset, epochs=cfg.epochs, callbacks=callbacks, verbose=0)
    model.set_weights(best["weights"])
    log(f"best epoch {best['epoch']} (validation recall@10 {best['score']:.4f})")

    user_tower, item_tower = export_towers(
        user_layer, item_layer, spec, cfg, float(np.asarray(model.popularity_weight))
    )
    vectors = item_tower.encode(catalog)
    diff = parity_max_abs_diff(
        user_layer, item_layer, user_tower, item_tower, val_slots[:64], val_buckets[:64], item_inputs
    )
    seconds = time.perf_counter() - started
    info = {
        "config": cfg.to_dict(),
        "examples": len(examples),
        "best_epoch": int(best["epoch"]),
        "epochs_run": len(history["loss"]),
        "seconds": round(seconds, 1),
        "history": history,
        "parity_max_abs_diff": diff,
    }
    return TrainedModel(user_tower, item_tower, catalog, vectors, history, info, (user_layer, item_layer))


def export_bundle(
    trained: TrainedModel, out_dir: str | Path, dataset: dict[str, Any], metrics: dict[str, Any]
) -> Bundle:
    """Write the bundle: towers, catalog, vectors, and a manifest with the dataset and evaluation figures."""
    digest = hashlib.sha256(trained.vectors.tobytes()).hexdigest()[:8]
    now = datetime.now(UTC)
    return write_bundle(
        out_dir,
        model_version=f"tt-{now:%Y%m%dT%H%M%SZ}-{digest}",
        user_tower=trained.user_tower,
        item_tower=trained.item_tower,
        catalog=trained.catalog,
        movie_vectors=trained.vectors,
        extra={
            "created_at": now.isoformat(timespec="seconds"),
            "dataset": dataset,
            "training": trained.info,
            "metrics": metrics,
        },
    )


def export_towers(user_layer: Any, item_layer: Any, spec: ItemFeatureSpec, config: TrainConfig,
                  popularity_weight: float) -> tuple[UserTower, ItemTower]:
    """Copy the Keras weights into the numpy towers of the serving path."""

    def arr(x: Any) -> np.ndarray:
        return np.asarray(x, dtype=np.float32)

    user = UserTower(
        movie_ids=spec.movie_ids,
        history_embedding=arr(user_layer.history_embedding),
        position_logit=arr(user_layer.position_logit),
        rating_logit=arr(user_layer.rating_logit),
        dense1_kernel=arr(user_layer.dense1.kernel),
        dense1_bias=arr(user_layer.dense1.bias),
        dense2_kernel=arr(user_layer.dense2.kernel),
        dense2_bias=arr(user_layer.dense2.bias),
        inverse_temperature=1.0 / config.temperature,
        popularity_weight=popularity_weight,
    )
    item = ItemTower(
        spec=spec,
        id_embedding=arr(item_layer.id_embedding),
        token_embedding=arr(item_layer.token_embedding),
        dense1_kernel=arr(item_layer.dense1.kernel),
        dense1_bias=arr(item_layer.dense1.bias),
        dense2_kernel=arr(item_layer.dense2.kernel),
        dense2_bias=arr(item_layer.dense2.bias),
    )
    return user, item


def parity_max_abs_diff(user_layer: Any, item_layer: Any, user: UserTower, item: ItemTower,
                        slots: np.ndarray, buckets: np.ndarray, item_inputs: dict[str, np.ndarray]) -> float:
    """Largest absolute difference between the Keras towers and the exported numpy towers."""
    keras_u = np.asarray(user_layer(slots, buckets))
    numpy_u = user.forward(slots, buckets)[:, :-1] / np.float32(user.inverse_temperature)
    n = min(512, item_inputs["id_slot"].shape[0])
    sub = {k: v[:n] for k, v in item_inputs.items()}
    keras_v = np.asarray(item_layer(sub["id_slot"], sub["genres"], sub["year"], sub["tokens"]))
    numpy_v = item.forward(**sub)
    return float(max(np.abs(keras_u - numpy_u).max(initial=0.0), np.abs(keras_v - numpy_v).max(initial=0.0)))
