"""The two-tower model in Keras 3, written with the same operations as core.towers.

Layer weights map one to one onto the numpy towers' arrays (see ``export``),
so the served numpy forward pass equals this model's.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from core.features import ITEM_INPUTS, RATING_BUCKETS


def _l2_normalize(x: Any) -> Any:
    return x / ops.sqrt(ops.maximum(ops.sum(x * x, axis=-1, keepdims=True), 1e-12))


@keras.saving.register_keras_serializable(package="recs")
class UserTowerLayer(keras.layers.Layer):
    """History slots + rating buckets -> normalised user vector."""

    def __init__(
        self, vocab_size: int, history_length: int, embedding_dim: int, hidden: int, output_dim: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.vocab_size, self.history_length = vocab_size, history_length
        self.embedding_dim, self.hidden, self.output_dim = embedding_dim, hidden, output_dim
        self.history_embedding = self.add_weight(
            name="history_embedding", shape=(vocab_size + 2, embedding_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.05),
        )
        self.position_logit = self.add_weight(name="position_logit", shape=(history_length,), initializer="zeros")
        self.rating_logit = self.add_weight(name="rating_logit", shape=(RATING_BUCKETS,), initializer="zeros")
        self.dense1 = keras.layers.Dense(hidden, activation="relu", name="dense1")
        self.dense2 = keras.layers.Dense(output_dim, name="dense2")

    def build(self, input_shape: Any = None) -> None:
        self.dense1.build((None, 2 * self.embedding_dim))
        self.dense2.build((None, self.hidden))
        self.built = True

    def call(self, slots: Any, buckets: Any) -> Any:
        mask = ops.cast(slots > 0, "float32")
        emb = ops.take(self.history_embedding, slots, axis=0)
        weight = mask * ops.softplus(self.position_logit[None, :] + ops.take(self.rating_logit, buckets, axis=0))
        weighted = ops.sum(weight[..., None] * emb, axis=1) / (ops.sum(weight, axis=1, keepdims=True) + 1e-6)
        mean = ops.sum(mask[..., None] * emb, axis=1) / (ops.sum(mask, axis=1, keepdims=True) + 1e-6)
        hidden = self.dense1(ops.concatenate([weighted, mean], axis=1))
        return _l2_normalize(self.dense2(hidden))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "vocab_size": self.vocab_size, "history_length": self.history_length,
                "embedding_dim": self.embedding_dim, "hidden": self.hidden, "output_dim": self.output_dim}


@keras.saving.register_keras_serializable(package="recs")
class ItemTowerLayer(keras.layers.Layer):
    """Id slot + genres + year + title tokens -> normalised item vector."""

    def __init__(
        self, vocab_size: int, n_genres: int, n_tokens: int, embedding_dim: int, token_dim: int, hidden: int,
        output_dim: int, **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.vocab_size, self.n_genres, self.n_tokens = vocab_size, n_genres, n_tokens
        self.embedding_dim, self.token_dim, self.hidden, self.output_dim = embedding_dim, token_dim, hidden, output_dim
        self.id_embedding = self.add_weight(
            name="id_embedding", shape=(vocab_size + 2, embedding_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.05),
        )
        self.token_embedding = self.add_weight(
            name="token_embedding", shape=(n_tokens + 1, token_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.05),
        )
        self.dense1 = keras.layers.Dense(hidden, activation="relu", name="dense1")
        self.dense2 = keras.layers.Dense(output_dim, name="dense2")

    def build(self, input_shape: Any = None) -> None:
        self.dense1.build((None, self.embedding_dim + self.n_genres + 2 + self.token_dim))
        self.dense2.build((None, self.hidden))
        self.built = True

    def call(self, id_slot: Any, genres: Any, year: Any, tokens: Any) -> Any:
        id_e = ops.take(self.id_embedding, id_slot, axis=0)
        tok_mask = ops.cast(tokens > 0, "float32")
        tok_e = ops.sum(tok_mask[..., None] * ops.take(self.token_embedding, tokens, axis=0), axis=1) / (
            ops.sum(tok_mask, axis=1, keepdims=True) + 1e-6
        )
        hidden = self.dense1(ops.concatenate([id_e, genres, year, tok_e], axis=1))
        return _l2_normalize(self.dense2(hidden))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "vocab_size": self.vocab_size, "n_genres": self.n_genres,
                "n_tokens": self.n_tokens, "embedding_dim": self.embedding_dim, "token_dim": self.token_dim,
                "hidden": self.hidden, "output_dim": self.output_dim}


class TwoTower(keras.Model):
    """Sampled softmax with logQ correction, accidental hits masked, and a popularity logit.

    ``logit(u, j) = u.v_j / temperature + w_pop * log(1 + count_j) - log Q(j)``; at serving time the
    first two terms are one inner product of the exported vectors. The negatives of a batch are its
    other targets (in-batch) and, with ``uniform_negatives`` > 0, that many movies drawn uniformly
    from the whole catalog each step (mixed negative sampling, Yang et al. 2020: in-batch negatives
    are as popular as the targets, so movies that are rarely anyone's target are rarely pushed down);
    ``Q`` is then the mixture of both proposals (``training.sequences.log_q_of``). ``catalog`` holds
    the item tower's inputs, ``log_pop`` and ``log_q`` of every catalog row, for the uniform draws.
    """

    def __init__(self, user_tower: UserTowerLayer, item_tower: ItemTowerLayer, temperature: float,
                 id_dropout: float = 0.0, seed: int = 0, sparse_updates: bool = True, uniform_negatives: int = 0,
                 catalog: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.user_tower = user_tower
        self.item_tower = item_tower
        self.temperature = temperature
        self.id_dropout = id_dropout
        self.sparse_updates = sparse_updates
        if uniform_negatives and catalog is None:
            raise ValueError("uniform_negatives needs the catalog's item inputs, log_pop and log_q")
        self.uniform_negatives = uniform_negatives
        self._catalog = {k: ops.convert_to_tensor(v) for k, v in (catalog or {}).items()}
        for tower in (user_tower, item_tower):  # every weight exists before the optimizer is built
            if not tower.built:
                tower.build()
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.popularity_weight = self.add_weight(name="popularity_weight", shape=(), initializer="zeros")

    def call(self, inputs: dict[str, Any], training: bool = False) -> Any:
        u = self.user_tower(inputs["hist_slots"], inputs["hist_buckets"])
        id_slot = inputs["id_slot"]
        if training and self.id_dropout > 0:
            # Train the content path for movies without an id embedding: some targets lose their id.
            drop = keras.random.uniform(ops.shape(id_slot), seed=self.seed_generator) < self.id_dropout
            id_slot = ops.where(drop, ops.ones_like(id_slot), id_slot)
        v = self.item_tower(id_slot, inputs["genres"], inputs["year"], inputs["tokens"])
        if not (training and self.uniform_negatives):
            return u, v
        c = self._catalog
        rows = keras.random.randint((self.uniform_negatives,), 0, ops.shape(c["log_q"])[0], dtype="int32",
                                    seed=self.seed_generator)
        v_neg = self.item_tower(*(ops.take(c[k], rows, axis=0) for k in ITEM_INPUTS))
        return u, v, v_neg, rows

    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None, sample_weight: Any = None,
                     training: bool = True) -> Any:
        u, v = y_pred[0], y_pred[1]
        target = x["target"]
        logits = self._logits(u, v, x["log_pop"], x["log_q"])
        same = ops.equal(target[:, None], target[None, :])
        eye = ops.eye(ops.shape(logits)[0], dtype="bool")
        logits = ops.where(ops.logical_and(same, ops.logical_not(eye)), -1e9, logits)
        if len(y_pred) == 4:  # uniform negatives: their columns follow the batch's, accidental hits masked
            v_neg, rows = y_pred[2], y_pred[3]
            c = self._catalog
            extra = self._logits(u, v_neg, ops.take(c["log_pop"], rows), ops.take(c["log_q"], rows))
            extra = ops.where(ops.equal(target[:, None], rows[None, :]), -1e9, extra)
            logits = ops.concatenate([logits, extra], axis=1)
        labels = ops.arange(ops.shape(logits)[0])
        loss = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        return ops.mean(loss)

    def _logits(self, u: Any, v: Any, log_pop: Any, log_q: Any) -> Any:
        """``u.v_j / temperature + w_pop * log_pop_j - log_q_j`` for every user row and item column."""
        logits = ops.matmul(u, ops.transpose(v)) / self.temperature
        return logits + self.popularity_weight * log_pop[None, :] - log_q[None, :]

    # -- training step (TensorFlow backend) ---------------------------------------------------------
    def _tables(self) -> list[Any]:
        """The id-embedding tables, updated row by row (see ``train_step``)."""
        return [self.user_tower.history_embedding, self.item_tower.id_embedding]

    def train_step(self, data: Any) -> Any:
        """Keras' TensorFlow ``train_step``, except that the two id-embedding tables get a *lazy* Adam update.

        A batch touches at most ``batch x history_length`` rows of the tables; Keras' Adam updates
        every row of them (and their moments) every step, which on a large catalog costs more than
        the rest of the step (85,000 movies: about 200 ms of CPU per step for the two tables). Here
        only the rows in the batch are updated, with Adam's formula on their summed gradient
        (``LazyAdam``); rows not in the batch keep their moments. Written with static shapes (sort,
        segment sums, scatter), so the step still compiles with XLA.
        """
        import tensorflow as tf
        from keras.src.trainers.data_adapters import data_adapter_utils

        opt = self.optimizer
        plain_adam = isinstance(opt, keras.optimizers.Adam) and not isinstance(opt, keras.optimizers.AdamW)
        if not self.sparse_updates or not plain_adam or getattr(opt, "amsgrad", False):
            return super().train_step(data)
        x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
        if not opt.built:
            opt.build(self.trainable_weights)
        tables = self._tables()
        table_ids = {id(t) for t in tables}
        dense = [w for w in self.trainable_weights if id(w) not in table_ids]
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            self._loss_tracker.update_state(loss, sample_weight=tf.shape(x["target"])[0])
        grads = tape.gradient(loss, [*tables, *dense])
        step = tf.cast(opt.iterations + 1, "float32")
        for table, grad in zip(tables, grads[: len(tables)], strict=True):
            if grad is not None:
                self._lazy_adam(table, grad, step)
        opt.apply(grads[len(tables) :], dense)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _lazy_adam(self, table: Any, grad: Any, step: Any) -> None:
        import tensorflow as tf

        opt = self.optimizer
        index = opt._get_variable_index(table)
        m, v = opt._momentums[index], opt._velocities[index]
        if isinstance(grad, tf.IndexedSlices):
            ids, values = tf.cast(grad.indices, tf.int32), grad.values
        else:  # a dense gradient (should not happen with gathers): every row
            ids = tf.range(tf.shape(grad)[0], dtype=tf.int32)
            values = grad
        n = tf.shape(ids)[0]
        order = tf.argsort(ids, stable=True)
        sorted_ids = tf.gather(ids, order)
        first = tf.concat([[True], sorted_ids[1:] != sorted_ids[:-1]], axis=0)
        segment = tf.cumsum(tf.cast(first, tf.int32)) - 1
        summed = tf.math.unsorted_segment_sum(tf.gather(values, order), segment, n)
        rows = tf.math.unsorted_segment_max(sorted_ids, segment, n)
        # segments past the last one are empty: point them at row 0 (the padding slot, never read: masked)
        rows = tf.where(tf.range(n) <= segment[-1], rows, tf.zeros_like(rows))
        lr = tf.cast(opt.learning_rate, "float32")
        b1, b2 = tf.cast(opt.beta_1, "float32"), tf.cast(opt.beta_2, "float32")
        alpha = lr * tf.sqrt(1.0 - tf.pow(b2, step)) / (1.0 - tf.pow(b1, step))
        m_rows = b1 * tf.gather(m.value, rows) + (1.0 - b1) * summed
        v_rows = b2 * tf.gather(v.value, rows) + (1.0 - b2) * tf.square(summed)
        w_rows = tf.gather(table.value, rows) - alpha * m_rows / (tf.sqrt(v_rows) + opt.epsilon)
        m.value.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.value.scatter_update(tf.IndexedSlices(v_rows, rows))
        table.value.scatter_update(tf.IndexedSlices(w_rows, rows))
