"""Sequential baselines, written here in Keras 3 after their papers: SASRec and GRU4Rec.

* **SASRec** (Kang & McAuley, *Self-Attentive Sequential Recommendation*, ICDM 2018): item
  embeddings plus learned position embeddings, ``blocks`` pre-LayerNorm blocks of causal multi-head
  self-attention and a point-wise feed-forward network (ReLU), each with a residual connection and
  dropout, padding zeroed after each block, a final LayerNorm; the score of item ``i`` after
  position ``t`` is the inner product of the block output at ``t`` with ``i``'s embedding (the
  input embeddings are shared with the output).
* **GRU4Rec** (Hidasi, Karatzoglou, Baltrunas & Tikk, *Session-based Recommendations with Recurrent
  Neural Networks*, ICLR 2016; the cross-entropy loss of Hidasi & Karatzoglou, CIKM 2018): a GRU
  over the session's item embeddings (here a session is a user's history, read in windows of
  ``max_len``), its state projected to the embedding size and scored against the item embeddings
  (tied input and output embeddings).

Both are trained the same way: each user's training prefix (the history minus the validation
hold-out) is cut into windows of ``max_len`` interactions from its end (right-aligned, padding on
the left, the state starting from zero in each window), and every position predicts the next item,
with cross-entropy over the whole catalog (``negatives=None``) or over ``negatives`` uniformly
sampled items shared by the batch (for large catalogs). Adam; early stopping on validation Recall@10
(patience ``patience``, best weights restored) on the users of ``training.validation``.

To score a user, the model reads the last ``max_len`` items of the history (every rating is an
interaction, oldest first) and ranks the whole catalog with the output at the last position; the
evaluation (``training.evaluation``) then removes the history, as for every other model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from training.early_stopping import check_stopping, early_stopping
from training.sequences import catalog_rows
from training.split import Split
from training.validation import ValidationSplit, validation_evalset, validation_metrics, validation_split

SEQUENTIAL = ("SASRec", "GRU4Rec")
SCORE_CHUNK = 256


@dataclass(frozen=True)
class SequentialConfig:
    """Hyper-parameters of SASRec or GRU4Rec (``model``). Defaults: chosen on validation (``training.tuning``)."""

    model: str = "SASRec"
    max_len: int = 50
    hidden: int = 64
    """The embedding size (SASRec: also the width of the blocks; GRU4Rec: the items' embedding size)."""
    gru_units: int = 128
    """GRU4Rec: the GRU's state size."""
    blocks: int = 2
    heads: int = 1
    dropout: float = 0.2
    learning_rate: float = 2e-3
    batch_size: int = 32
    """Windows of ``max_len`` interactions per batch. The bundled sample has 1,896 windows: at 128 an epoch
    was 15 steps, and SASRec stopped after 10 epochs at validation Recall@10 0.068; at 32 (and a learning rate
    of 2e-3) it reached 0.121 by epoch 12."""
    epochs: int = 30
    """How many epochs it trains (with ``early_stopping``: at most). ``DEFAULTS`` holds each model's count chosen on
    validation: its grid's chosen trial's best epoch (``training.tuning``), as for the two-tower model."""
    patience: int = 10
    """With ``early_stopping`` (and in the search's trials): epochs without a better validation Recall@10 before
    stopping (RecBole's ``stopping_step``); 5 stopped SASRec while it was still learning."""
    early_stopping: bool = False
    """Stop on the validation users' Recall@10 and keep the best epoch. Off by default, as for the two-tower model: 61
    validation users (the bundled sample) make a noisy signal; the search early-stops on all 610 instead."""
    negatives: int | None = None
    """None: cross-entropy over the whole catalog; else over this many uniformly sampled items (shared per batch)."""
    validation_users: float = 0.1
    seed: int = 42
    jit_compile: bool = True

    def __post_init__(self) -> None:
        if self.model not in SEQUENTIAL:
            raise ValueError(f"model must be one of {', '.join(SEQUENTIAL)}")
        if self.max_len < 2 or self.hidden < 1 or self.blocks < 1 or self.heads < 1 or self.batch_size < 1:
            raise ValueError("max_len must be at least 2; hidden, blocks, heads and batch_size at least 1")
        if self.model == "SASRec" and self.hidden % self.heads:
            raise ValueError("heads must divide hidden")
        if not 0 <= self.dropout < 1:
            raise ValueError("dropout must be in [0, 1)")
        check_stopping(self.epochs, self.patience, self.early_stopping, self.validation_users)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.model == "SASRec":
            out.pop("gru_units")
        else:
            out.pop("blocks")
            out.pop("heads")
        return out


DEFAULTS: dict[str, SequentialConfig] = {
    "SASRec": SequentialConfig(model="SASRec", blocks=1, dropout=0.5, epochs=38),
    "GRU4Rec": SequentialConfig(model="GRU4Rec", gru_units=128, dropout=0.3, epochs=22),
}
"""The configurations ``recs evaluate`` runs, each chosen by its grid on validation users (``training.tuning.SPACES``,
610 users, report/tuning.md), with the chosen trial's best epoch as the epoch count (SASRec 38, GRU4Rec 22). SASRec:
validation Recall@10 0.1487 / 0.1528 / 0.1516 / 0.1370 for 1 block at dropout 0.2 / 0.5 and 2 blocks at 0.2 / 0.5.
GRU4Rec: 0.1208 / 0.1348 / 0.1165 / 0.1358 for 64 units at dropout 0 / 0.3 and 128 units at 0 / 0.3."""


# -- data -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemSequences:
    """Each user's history as model item ids (catalog row + 1; 0 is padding), time ordered, movies outside the
    catalog dropped; ``limit[u]`` of them are training data (history minus the validation hold-out)."""

    offsets: np.ndarray  # [U + 1] int64
    items: np.ndarray  # [N] int32
    n_history: np.ndarray  # [U] int64
    limit: np.ndarray  # [U] int64

    @classmethod
    def build(cls, split: Split, catalog_ids: Sequence[int] | np.ndarray, limit: np.ndarray) -> ItemSequences:
        seqs = split.sequences
        rows = catalog_rows(np.asarray(catalog_ids, dtype=np.int64), seqs.movie_ids)
        lengths = np.diff(seqs.offsets)
        owner = np.repeat(np.arange(len(seqs)), lengths)
        pos = np.arange(rows.shape[0]) - np.repeat(seqs.offsets[:-1], lengths)
        keep = (rows >= 0) & (pos < split.n_history[owner])
        users = len(seqs)
        n_hist = np.bincount(owner[keep], minlength=users).astype(np.int64)
        n_limit = np.bincount(owner[keep & (pos < np.asarray(limit)[owner])], minlength=users).astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(n_hist)]).astype(np.int64)
        return cls(offsets, (rows[keep] + 1).astype(np.int32), n_hist, n_limit)

    def windows(self, max_len: int) -> np.ndarray:
        """Training windows as the flat end (exclusive) of their targets: per user, ``offsets[u] + limit[u]``,
        then ``max_len`` earlier each time while a target remains (the first item of a user is never a target)."""
        n = np.maximum(self.limit - 1, 0)  # targets per user
        count = -(-n // max_len)
        owner = np.repeat(np.arange(n.shape[0]), count)
        k = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        return (self.offsets[:-1][owner] + self.limit[owner] - k * max_len).astype(np.int64)

    def window_batch(self, ends: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets ``[len(ends), max_len]``, right-aligned: target ``p`` follows input ``p - 1``."""
        starts = self.offsets[np.searchsorted(self.offsets, ends - 1, side="right") - 1]
        pos = ends[:, None] - max_len + np.arange(max_len)[None, :]
        valid = pos >= (starts + 1)[:, None]
        targets = np.where(valid, self.items[np.where(valid, pos, 0)], 0).astype(np.int32)
        inputs = np.where(valid, self.items[np.where(valid, pos - 1, 0)], 0).astype(np.int32)
        return inputs, targets

    def last_items(self, users: np.ndarray, lengths: np.ndarray, max_len: int) -> np.ndarray:
        """The last ``max_len`` of the first ``lengths[u]`` items of each of ``users``, right-aligned."""
        start = self.offsets[users]
        end = start + np.asarray(lengths)[users]
        pos = end[:, None] - max_len + np.arange(max_len)[None, :]
        valid = pos >= start[:, None]
        return np.where(valid, self.items[np.where(valid, pos, 0)], 0).astype(np.int32)


# -- models ---------------------------------------------------------------------------------------


def _build_model(config: SequentialConfig, n_items: int) -> Any:
    import keras
    from keras import ops

    d, n = config.hidden, config.max_len

    class Net(keras.Model):
        """Item sequence -> a state per position; ``compute_loss`` is the cross-entropy of the next item."""

        def __init__(self) -> None:
            super().__init__(name=config.model.lower())
            self.item_embedding = self.add_weight(
                name="item_embedding", shape=(n_items + 1, d),
                initializer=keras.initializers.RandomNormal(stddev=1.0 / np.sqrt(d)),
            )
            self.drop = keras.layers.Dropout(config.dropout)
            self.sampler = keras.random.SeedGenerator(config.seed)
            if config.model == "SASRec":
                self.position_embedding = self.add_weight(
                    name="position_embedding", shape=(n, d),
                    initializer=keras.initializers.RandomNormal(stddev=1.0 / np.sqrt(d)),
                )
                self.ln_attention = [keras.layers.LayerNormalization(epsilon=1e-6) for _ in range(config.blocks)]
                self.attention = [
                    keras.layers.MultiHeadAttention(config.heads, d // config.heads, dropout=config.dropout)
                    for _ in range(config.blocks)
                ]
                self.ln_ffn = [keras.layers.LayerNormalization(epsilon=1e-6) for _ in range(config.blocks)]
                self.ffn1 = [keras.layers.Dense(d, activation="relu") for _ in range(config.blocks)]
                self.ffn2 = [keras.layers.Dense(d) for _ in range(config.blocks)]
                self.ln_final = keras.layers.LayerNormalization(epsilon=1e-6)
            else:
                self.gru = keras.layers.GRU(config.gru_units, return_sequences=True, reset_after=True)
                self.project = keras.layers.Dense(d)

        def states(self, items: Any, training: bool = False) -> Any:
            mask = items > 0
            maskf = ops.cast(mask, "float32")[..., None]
            x = ops.take(self.item_embedding, items, axis=0)
            if config.model == "GRU4Rec":
                x = self.drop(x, training=training)
                h = self.gru(x, mask=mask, training=training)
                return self.project(self.drop(h, training=training))
            x = self.drop((x + self.position_embedding[None]) * maskf, training=training)
            causal = ops.cast(ops.tril(ops.ones((n, n))), "bool")
            attention_mask = ops.logical_and(causal[None], mask[:, None, :])
            for b in range(config.blocks):
                h = self.ln_attention[b](x)
                x = x + self.drop(self.attention[b](h, h, attention_mask=attention_mask, training=training),
                                  training=training)
                h = self.ln_ffn[b](x)
                x = x + self.drop(self.ffn2[b](self.drop(self.ffn1[b](h), training=training)), training=training)
                x = x * maskf
            return self.ln_final(x)

        def call(self, inputs: dict[str, Any], training: bool = False) -> Any:
            return self.states(inputs["inputs"], training=training)

        def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None, sample_weight: Any = None,
                         training: bool = True) -> Any:
            targets = x["targets"]
            valid = ops.cast(targets > 0, "float32")
            h = ops.reshape(y_pred, (-1, d))
            flat = ops.reshape(targets, (-1,))
            if config.negatives is None:
                logits = ops.matmul(h, ops.transpose(self.item_embedding[1:]))
                loss = keras.losses.sparse_categorical_crossentropy(ops.maximum(flat - 1, 0), logits, from_logits=True)
            else:
                negatives = keras.random.randint((config.negatives,), 1, n_items + 1, seed=self.sampler)
                positive = ops.sum(h * ops.take(self.item_embedding, flat, axis=0), axis=-1, keepdims=True)
                sampled = ops.matmul(h, ops.transpose(ops.take(self.item_embedding, negatives, axis=0)))
                sampled = ops.where(ops.equal(flat[:, None], negatives[None, :]), -1e9, sampled)
                logits = ops.concatenate([positive, sampled], axis=1)
                loss = keras.losses.sparse_categorical_crossentropy(ops.zeros_like(flat), logits, from_logits=True)
            weights = ops.reshape(valid, (-1,))
            return ops.sum(loss * weights) / ops.maximum(ops.sum(weights), 1.0)

    model = Net()
    model.states(np.zeros((2, n), dtype=np.int32))  # build every weight before the optimizer
    return model


@dataclass
class SequentialModel:
    """A trained SASRec or GRU4Rec and what its training recorded."""

    config: SequentialConfig
    model: Any = field(repr=False)
    data: ItemSequences = field(repr=False)
    info: dict[str, Any] = field(default_factory=dict)

    def states(self, items: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.states(items, training=False))[:, -1]

    def score_users(self, users: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """Scores ``[len(users), n_catalog]`` from the last ``max_len`` items of each user's first ``lengths[u]``
        history items (default: the whole history)."""
        lengths = self.data.n_history if lengths is None else lengths
        items = self.data.last_items(np.asarray(users, dtype=np.int64), lengths, self.config.max_len)
        table = np.asarray(self.model.item_embedding)[1:]
        return self.states(items) @ table.T


def _seed(seed: int, deterministic_ops: bool) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()
    else:
        from tensorflow.python.framework import config as tf_config

        tf_config.disable_op_determinism()  # Keras refuses XLA under op determinism


def _dataset(data: ItemSequences, windows: np.ndarray, config: SequentialConfig) -> tuple[Any, int]:
    import tensorflow as tf

    steps = max(1, -(-windows.shape[0] // config.batch_size))
    epoch = {"next": 0}
    n = config.max_len

    def generate() -> Iterator[dict[str, np.ndarray]]:
        order = np.random.default_rng([config.seed, epoch["next"]]).permutation(windows.shape[0])
        epoch["next"] += 1
        # the last batch is filled up with windows drawn again, so every batch has one shape (one XLA program)
        order = np.resize(order, steps * config.batch_size)
        for start in range(0, steps * config.batch_size, config.batch_size):
            inputs, targets = data.window_batch(windows[order[start : start + config.batch_size]], n)
            yield {"inputs": inputs, "targets": targets}

    spec = {"inputs": tf.TensorSpec((config.batch_size, n), tf.int32),
            "targets": tf.TensorSpec((config.batch_size, n), tf.int32)}
    dataset = tf.data.Dataset.from_generator(generate, output_signature=spec)
    return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(2), steps


def train_sequential(
    split: Split,
    catalog_ids: Sequence[int] | np.ndarray,
    config: SequentialConfig,
    validation: ValidationSplit | None = None,
    log: Callable[[str], None] = print,
    progress: bool | None = None,
) -> SequentialModel:
    """Train on the history part of ``split`` minus the validation hold-out, scoring validation Recall@10 after every
    epoch (``validation``, else ``config.validation_users`` of the users drawn with ``config.seed``: the two-tower
    model's validation users) and, with ``config.early_stopping``, stopping on it. Each epoch is logged unless
    ``progress`` is False."""
    import keras

    started = time.perf_counter()
    _seed(config.seed, deterministic_ops=not config.jit_compile)
    val = validation or validation_split(split.n_history, config.validation_users, np.random.default_rng(config.seed))
    data = ItemSequences.build(split, catalog_ids, val.limit)
    n_items = len(catalog_ids)
    windows = data.windows(config.max_len)
    if windows.shape[0] == 0:
        raise ValueError(f"{config.model}: no user has two training interactions")
    dataset, steps = _dataset(data, windows, config)
    model = _build_model(config, n_items)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), jit_compile=config.jit_compile)
    xla = bool(model.jit_compile)
    if config.jit_compile and not xla:
        log(f"{config.model}: XLA was asked for but Keras turned it off")
    trained = SequentialModel(config, model, data)
    val_data = validation_evalset(split, val, catalog_ids)

    def val_recall() -> float:
        if val_data.users.shape[0] == 0:
            return 0.0
        metrics = validation_metrics(lambda rows: trained.score_users(rows, data.limit), val_data)
        return float(metrics["recall@10"])

    stopping = config.early_stopping and val_data.users.shape[0] > 0
    monitor, best = early_stopping(model, val_recall, config.patience,
                                   log if progress is not False else (lambda message: None), label=f"{config.model} ",
                                   keep_latest=not stopping)
    model.fit(dataset, epochs=config.epochs, callbacks=[monitor], verbose=0, shuffle=False)
    model.set_weights(best.weights)
    seconds = time.perf_counter() - started
    metrics = validation_metrics(lambda rows: trained.score_users(rows, data.limit), val_data) if len(
        val_data.users) else {}
    trained.info = {"config": config.to_dict(), "xla": xla, "windows": int(windows.shape[0]), "steps_per_epoch": steps,
                    "best_epoch": best.epoch, "epochs_run": len(best.history["loss"]),
                    "seconds": round(seconds, 1), "history": best.history,
                    "validation": {**val.to_dict(), "metrics": metrics}}
    kept = "best epoch" if stopping else "the last epoch,"
    log(f"{config.model}: {kept} {best.epoch} of {len(best.history['loss'])} (validation recall@10 "
        f"{best.score:.4f}), {seconds:.1f} s")
    return trained

