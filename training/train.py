"""Train the two-tower model and export the bundle.

TensorFlow is imported here (and in ``training.model``) only: the rest of the
project never needs it.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from core.bundle import Bundle, write_bundle
from core.features import ITEM_INPUTS, ItemFeatureSpec, Movie
from core.towers import (
    ItemEncoder,
    ItemTower,
    UserEncoder,
    UserTower,
    ensemble_item_tower,
    ensemble_user_tower,
    log_popularity,
)
from training.config import TrainConfig
from training.early_stopping import early_stopping
from training.evaluation import served_scorer
from training.examples import build_feature_spec
from training.movielens import Dataset
from training.sequences import (
    BatchFeatures,
    Sequences,
    catalog_rows,
    encode_sequences,
    log_q_of,
    sample_examples,
    training_dataset,
    user_histories,
)
from training.split import Split
from training.stages import Stages
from training.validation import ValidationSplit, validation_evalset, validation_metrics, validation_split

EVAL_CHUNK = 512
"""Users scored against the whole catalog at a time (validation): bounded memory on any catalog."""


@dataclass
class TrainedModel:
    """The exported numpy towers, the catalog with training popularity, and its vectors."""

    user_tower: UserEncoder
    item_tower: ItemEncoder
    catalog: list[Movie]
    vectors: np.ndarray
    history: dict[str, list[float]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    keras_towers: tuple[Any, Any] | None = field(default=None, repr=False)
    """The trained Keras user and item tower layers (for parity checks; a single model's); not exported."""
    validation_split: ValidationSplit | None = field(default=None, repr=False)
    """The users whose latest history was held out (``info["validation"]`` describes it); not exported."""


def _seed_everything(seed: int, deterministic_ops: bool) -> None:
    """Seed Python, numpy and TensorFlow; op determinism only without XLA.

    Keras refuses ``jit_compile=True`` while TensorFlow op determinism is on (it falls back to
    ``jit_compile=False`` with a warning), so an XLA run keeps the seeds but not op determinism: on
    CPU its compiled step and the seeded input order still give the same figures run after run on
    one machine (checked by running twice), but that is an observation, not TensorFlow's guarantee.
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()
    else:
        from tensorflow.python.framework import config as tf_config

        tf_config.disable_op_determinism()  # an earlier run in this process may have turned it on


def _validation_targets(seqs: Sequences, users: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                        n_movies: int) -> sp.csr_matrix:
    """users x catalog: 1 for the catalog rows of interactions ``offsets[u] + lo[u] .. offsets[u] + hi[u]``."""
    n = np.maximum(hi - lo, 0)
    row = np.repeat(np.arange(users.shape[0]), n)
    within = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    flat = np.repeat(seqs.offsets[users] + lo, n) + within
    cols = seqs.rows[flat]
    matrix = sp.csr_matrix((np.ones(row.shape[0], np.float32), (row, cols)), shape=(users.shape[0], n_movies))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def _topk_recall(scores: np.ndarray, exclude: sp.csr_matrix, targets: sp.csr_matrix, n_targets: np.ndarray,
                 k: int = 10) -> np.ndarray:
    """Per row: hits of the top ``k`` (``exclude`` removed) among ``targets`` / min(k, n_targets)."""
    scores = np.array(scores, dtype=np.float32, copy=True)
    scores[exclude.nonzero()] = -np.inf
    if k < scores.shape[1]:
        top = np.argpartition(-scores, k, axis=1)[:, :k]
    else:
        top = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    hits = np.asarray(targets[np.arange(scores.shape[0])[:, None], top].sum(axis=1)).ravel()
    return hits / np.minimum(k, np.maximum(n_targets, 1))


def train_two_tower(
    data: Dataset,
    split: Split,
    config: TrainConfig | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] = print,
    stages: Stages | None = None,
) -> TrainedModel:
    """Train on the history part of ``split`` (validation users hold out their latest 10%): one model, or with
    ``members`` above 1 that many from seeds ``seed``, ``seed + 1``, ..., served as one ensemble
    (:func:`train_ensemble`)."""
    cfg = config or TrainConfig()
    if cfg.members > 1:
        return train_ensemble(data, split, cfg, progress=progress, log=log, stages=stages)
    return _train_member(data, split, cfg, progress=progress, log=log, stages=stages)


def train_ensemble(
    data: Dataset,
    split: Split,
    config: TrainConfig,
    progress: bool | None = None,
    log: Callable[[str], None] = print,
    stages: Stages | None = None,
) -> TrainedModel:
    """``config.members`` models of ``config`` from seeds ``seed + i``, one after the other (only one is in memory
    while it trains), combined into an ``EnsembleUserTower`` / ``EnsembleItemTower`` and its catalog vectors.

    Every member holds out the validation users drawn with ``config.seed`` (member 0's: a member draws its own as a
    single run of its seed would, so member 0 is the single model of ``config.seed``, then uses member 0's), so
    the ensemble's validation figures are on items no member trained on. The ensemble's ``history`` is the
    members' mean per epoch; ``info["members"]`` keeps each member's seed, best epoch, time and validation figures,
    and ``info["best_epoch"]`` is the members' mean best epoch rounded half up."""
    started = time.perf_counter()
    trained: list[TrainedModel] = []
    val: ValidationSplit | None = None
    for i in range(config.members):
        seed = config.seed + i
        log(f"training member {i + 1} of {config.members} (seed {seed})")
        member = _train_member(data, split, replace(config, seed=seed, members=1), progress=progress, log=log,
                               stages=stages, val=val)
        member.keras_towers = None  # not exported; frees the Keras layers before the next member
        val = member.validation_split
        trained.append(member)
    assert val is not None
    user_tower = ensemble_user_tower([m.user_tower for m in trained])
    item_tower = ensemble_item_tower([m.item_tower for m in trained])
    catalog = trained[0].catalog
    vectors = item_tower.encode(catalog)
    catalog_ids = np.asarray([m.movie_id for m in catalog], dtype=np.int64)
    validation = served_validation(split, val, user_tower, vectors, catalog_ids) if val.users.size else {}
    best_epochs = [int(m.info["best_epoch"]) for m in trained]
    history = _mean_history([m.history for m in trained])
    info = {
        **{k: v for k, v in trained[0].info.items() if k not in ("seconds", "history", "validation")},
        "config": config.to_dict(),
        "best_epoch": int(np.floor(np.mean(best_epochs) + 0.5)),
        "epochs_run": max(int(m.info["epochs_run"]) for m in trained),
        "seconds": round(time.perf_counter() - started, 1),
        "history": history,
        "parity_max_abs_diff": max(float(m.info["parity_max_abs_diff"]) for m in trained),
        "validation": {**val.to_dict(), "metrics": validation},
        "members": [{"seed": config.seed + i, "best_epoch": m.info["best_epoch"], "epochs_run": m.info["epochs_run"],
                     "seconds": m.info["seconds"], "validation": m.info["validation"]["metrics"]}
                    for i, m in enumerate(trained)],
    }
    return TrainedModel(user_tower, item_tower, catalog, vectors, history, info)


def _mean_history(histories: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    """Per key, the mean over the members that ran each epoch (early stopping may end members at different
    epochs)."""
    out: dict[str, list[float]] = {}
    for key in histories[0]:
        runs = [h.get(key, []) for h in histories]
        out[key] = [float(np.mean([r[e] for r in runs if e < len(r)])) for e in range(max(len(r) for r in runs))]
    return out


def _train_member(
    data: Dataset,
    split: Split,
    cfg: TrainConfig,
    progress: bool | None = None,
    log: Callable[[str], None] = print,
    stages: Stages | None = None,
    val: ValidationSplit | None = None,
) -> TrainedModel:
    """One model of ``cfg`` (its ``members`` is not read); ``val``: hold out these validation users instead of the
    ones drawn with ``cfg.seed`` (the draw still happens, so the run's random stream is a single run's)."""
    stage = stages or Stages()
    progress = sys.stderr.isatty() if progress is None else progress
    started = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    _seed_everything(cfg.seed, deterministic_ops=not cfg.jit_compile)
    import keras

    from training.model import ItemTowerLayer, TwoTower
    from training.user_towers import make_user_tower_layer

    movies = data.movies
    n_movies = len(movies)
    with stage("examples"):
        catalog_ids = np.asarray([m.movie_id for m in movies], dtype=np.int64)
        rows = catalog_rows(catalog_ids, split.sequences.movie_ids)
        popularity = np.bincount(rows[split.history_mask() & (rows >= 0)], minlength=n_movies).astype(np.float32)
        spec = build_feature_spec(movies, popularity, cfg.min_item_count, cfg.max_tokens)
        catalog = [replace(m, popularity=float(p)) for m, p in zip(movies, popularity.tolist(), strict=True)]
        item_inputs = spec.encode(catalog)
        log_pop = log_popularity(popularity)

        # Validation users: their last 10% of history (at least one) are held out, scored after every epoch.
        drawn = validation_split(split.n_history, cfg.validation_users, rng)
        val = drawn if val is None else val
        n_hist, limit, val_users = val.n_history, val.limit, val.users
        n_val = int(val_users.shape[0])

        seqs = encode_sequences(split, catalog_ids, spec.movie_ids, limit, rows=rows)
        del rows
        examples = sample_examples(seqs, cfg.max_examples_per_user, cfg.target_window, rng)
        log_q = log_q_of(examples, n_movies, cfg.batch_size, cfg.uniform_negatives)
        features = BatchFeatures(item_inputs, log_pop, log_q)
        dataset = training_dataset(seqs, examples, cfg.history_length, features, cfg.batch_size, cfg.seed)
        steps = len(examples) // cfg.batch_size

        # Validation inputs: prefix histories of validation users, scored against the whole catalog.
        val_slots, val_buckets = user_histories(seqs, val_users, cfg.history_length)
        zeros = np.zeros(n_val, dtype=np.int64)
        val_exclude = _validation_targets(seqs, val_users, zeros, limit[val_users], n_movies)
        val_targets = _validation_targets(seqs, val_users, limit[val_users], n_hist[val_users], n_movies)
        val_n_targets = n_hist[val_users] - limit[val_users]
    log(f"training on {len(examples):,} examples ({steps:,} batches of {cfg.batch_size}) from {seqs.users:,} users, "
        f"{n_movies:,} movies, {spec.movie_ids.size:,} with an id embedding; {n_val:,} validation users; "
        f"sequences {seqs.nbytes() / 2**20:,.0f} MiB, examples {examples.nbytes() / 2**20:,.0f} MiB")

    out = cfg.dimension - 1
    user_layer = make_user_tower_layer(cfg, spec.movie_ids.size, out)
    item_layer = ItemTowerLayer(spec.movie_ids.size, len(spec.genres), len(spec.tokens), cfg.embedding_dim,
                                cfg.token_dim, cfg.hidden, out, name="item_tower")
    catalog_inputs = {**item_inputs, "log_pop": log_pop, "log_q": log_q} if cfg.uniform_negatives else None
    model = TwoTower(user_layer, item_layer, cfg.temperature, cfg.id_dropout, cfg.seed,
                     sparse_updates=cfg.sparse_updates, uniform_negatives=cfg.uniform_negatives,
                     catalog=catalog_inputs, name="two_tower")
    optimizer = (
        keras.optimizers.AdamW(cfg.learning_rate, weight_decay=cfg.weight_decay)
        if cfg.weight_decay > 0
        else keras.optimizers.Adam(cfg.learning_rate)
    )
    model.compile(optimizer=optimizer, jit_compile=cfg.jit_compile)
    xla = bool(model.jit_compile)
    if cfg.jit_compile and not xla:
        log("XLA was asked for but Keras turned it off (jit_compile=False)")

    def item_vectors() -> np.ndarray:
        parts = []
        for lo in range(0, n_movies, EVAL_CHUNK * 8):
            sl = slice(lo, lo + EVAL_CHUNK * 8)
            parts.append(np.asarray(item_layer(*(item_inputs[k][sl] for k in ITEM_INPUTS))))
        return np.concatenate(parts) if parts else np.zeros((0, out), np.float32)

    def validation_recall() -> float:
        v = item_vectors()
        w = float(np.asarray(model.popularity_weight))
        total = 0.0
        for lo in range(0, n_val, EVAL_CHUNK):
            sl = slice(lo, lo + EVAL_CHUNK)
            u = np.asarray(user_layer(val_slots[sl], val_buckets[sl]))
            scores = (u @ v.T) / cfg.temperature + w * log_pop[None, :]
            total += float(_topk_recall(scores, val_exclude[sl], val_targets[sl], val_n_targets[sl]).sum())
        return total / max(1, n_val)

    stopping = cfg.early_stopping and n_val > 0
    monitor, best = early_stopping(model, lambda: validation_recall() if n_val else 0.0, cfg.patience, log,
                                   keep_latest=not stopping)
    history = best.history
    callbacks: list[Any] = [monitor]
    if progress:
        from training.progress import TqdmCallback

        callbacks.append(TqdmCallback(cfg.epochs, steps))
    with stage("training"):
        model.fit(dataset, epochs=cfg.epochs, callbacks=callbacks, verbose=0, shuffle=False)  # shuffled per epoch
    model.set_weights(best.weights)
    if stopping:
        log(f"best epoch {best.epoch} (validation recall@10 {best.score:.4f})")
    else:
        log(f"kept the last epoch, {best.epoch}" + (f" (validation recall@10 {best.score:.4f})" if n_val else ""))

    user_tower, item_tower = export_towers(
        user_layer, item_layer, spec, cfg, float(np.asarray(model.popularity_weight))
    )
    vectors = item_tower.encode(catalog)
    diff = parity_max_abs_diff(
        user_layer, item_layer, user_tower, item_tower, val_slots[:64], val_buckets[:64], item_inputs
    )
    validation = served_validation(split, val, user_tower, vectors, catalog_ids) if n_val else {}
    seconds = time.perf_counter() - started
    info = {
        "config": cfg.to_dict(),
        "xla": xla,
        "op_determinism": not cfg.jit_compile,
        "examples": len(examples),
        "steps_per_epoch": steps,
        "best_epoch": best.epoch,
        "epochs_run": len(history["loss"]),
        "seconds": round(seconds, 1),
        "history": history,
        "parity_max_abs_diff": diff,
        "validation": {**val.to_dict(), "metrics": validation},
    }
    return TrainedModel(user_tower, item_tower, catalog, vectors, history, info, (user_layer, item_layer), val)


def served_validation(split: Split, val: ValidationSplit, user_tower: UserEncoder, vectors: np.ndarray,
                      catalog_ids: np.ndarray) -> dict[str, float]:
    """The served path (numpy user tower, exported vectors) on the validation users: the figures the tuning
    compares (``training.validation``), ranked like the test with the training prefix as the history."""
    data = validation_evalset(split, val, catalog_ids)
    return validation_metrics(served_scorer(user_tower, vectors, split, lengths=val.limit), data)


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
    """Copy the Keras weights into the numpy towers of the serving path (the user tower of its type)."""
    from training.user_towers import export_user_tower

    def arr(x: Any) -> np.ndarray:
        return np.asarray(x, dtype=np.float32)

    user = export_user_tower(user_layer, spec.movie_ids, config.temperature, popularity_weight)
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
    keras_v = np.asarray(item_layer(*(sub[k] for k in ITEM_INPUTS)))
    numpy_v = item.forward(**sub)
    return float(max(np.abs(keras_u - numpy_u).max(initial=0.0), np.abs(keras_v - numpy_v).max(initial=0.0)))
