"""The sequence-aware user towers in Keras 3 (``--user-tower attention|gru``), and the choice among the three.

Each is the pooling tower (``training.model.UserTowerLayer``: two poolings of the history embeddings ->
Dense(relu) -> Dense -> L2) with one more input to its head: the output of a sequence encoder over
the same right-aligned history (id embedding + rating-bucket embedding per position). The layers are
written with the operations of their numpy twins in ``core.towers`` (``AttentionUserTower``,
``GRUUserTower``), and ``export_user_tower`` copies the weights one to one; a test checks the two
forward passes agree within 1e-5. The item tower, the popularity column and the single inner product
that the index ranks by do not change.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from core.features import RATING_BUCKETS
from core.towers import LAYER_NORM_EPSILON, MASKED, AttentionUserTower, GRUUserTower, UserTower
from training.config import TrainConfig
from training.model import UserTowerLayer


def _layer_norm(x: Any, gamma: Any, beta: Any) -> Any:
    mean = ops.mean(x, axis=-1, keepdims=True)
    centred = x - mean
    var = ops.mean(centred * centred, axis=-1, keepdims=True)
    return centred / ops.sqrt(var + LAYER_NORM_EPSILON) * gamma + beta


def _l2_normalize(x: Any) -> Any:
    return x / ops.sqrt(ops.maximum(ops.sum(x * x, axis=-1, keepdims=True), 1e-12))


def _glorot(fan_in: int, fan_out: int) -> keras.initializers.Initializer:
    return keras.initializers.RandomUniform(-np.sqrt(6.0 / (fan_in + fan_out)), np.sqrt(6.0 / (fan_in + fan_out)))


class _SequenceUserTowerLayer(UserTowerLayer):
    """The pooling tower with a sequence encoder's output as a third input of ``dense1``."""

    def __init__(self, vocab_size: int, history_length: int, embedding_dim: int, hidden: int, output_dim: int,
                 dropout: float = 0.0, **kwargs: Any) -> None:
        super().__init__(vocab_size, history_length, embedding_dim, hidden, output_dim, **kwargs)
        self.dropout = dropout
        self.rating_embedding = self.add_weight(
            name="rating_embedding", shape=(RATING_BUCKETS, embedding_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.05),
        )
        self.drop = keras.layers.Dropout(dropout)

    def sequence_width(self) -> int:
        raise NotImplementedError

    def build(self, input_shape: Any = None) -> None:
        self.dense1.build((None, 2 * self.embedding_dim + self.sequence_width()))
        self.dense2.build((None, self.hidden))
        self.built = True

    def encode_sequence(self, emb: Any, buckets: Any, mask: Any, training: bool) -> Any:
        raise NotImplementedError

    def call(self, slots: Any, buckets: Any, training: bool = False) -> Any:
        # the pooling tower's two poolings, exactly as UserTowerLayer.call
        mask = ops.cast(slots > 0, "float32")
        emb = ops.take(self.history_embedding, slots, axis=0)
        weight = mask * ops.softplus(self.position_logit[None, :] + ops.take(self.rating_logit, buckets, axis=0))
        weighted = ops.sum(weight[..., None] * emb, axis=1) / (ops.sum(weight, axis=1, keepdims=True) + 1e-6)
        mean = ops.sum(mask[..., None] * emb, axis=1) / (ops.sum(mask, axis=1, keepdims=True) + 1e-6)
        sequence = self.encode_sequence(emb, buckets, mask, training)
        hidden = self.dense1(ops.concatenate([weighted, mean, sequence], axis=1))
        return _l2_normalize(self.dense2(hidden))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="recs")
class AttentionUserTowerLayer(_SequenceUserTowerLayer):
    """Causal self-attention blocks (pre-LayerNorm, as SASRec) over the history; the last position's output.

    Computed on every position (the numpy tower's serving shortcuts give the same last position).
    Dropout (training only) on the block input and on each residual branch.
    """

    def __init__(self, vocab_size: int, history_length: int, embedding_dim: int, hidden: int, output_dim: int,
                 blocks: int = 1, heads: int = 1, ffn_dim: int | None = None, dropout: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(vocab_size, history_length, embedding_dim, hidden, output_dim, dropout=dropout, **kwargs)
        if embedding_dim % heads:
            raise ValueError(f"{heads} attention heads do not divide embedding_dim {embedding_dim}")
        d, f = embedding_dim, ffn_dim or embedding_dim
        self.blocks, self.heads, self.ffn_dim = blocks, heads, f

        def weight(name: str, shape: tuple[int, ...], init: Any) -> Any:
            return self.add_weight(name=name, shape=shape, initializer=init)

        self.position_embedding = weight("position_embedding", (history_length, d),
                                         keras.initializers.RandomNormal(stddev=0.05))
        self.ln1_gamma = weight("ln1_gamma", (blocks, d), "ones")
        self.ln1_beta = weight("ln1_beta", (blocks, d), "zeros")
        self.qkv_kernel = weight("qkv_kernel", (blocks, d, 3 * d), _glorot(d, d))
        self.qkv_bias = weight("qkv_bias", (blocks, 3 * d), "zeros")
        self.out_kernel = weight("out_kernel", (blocks, d, d), _glorot(d, d))
        self.out_bias = weight("out_bias", (blocks, d), "zeros")
        self.ln2_gamma = weight("ln2_gamma", (blocks, d), "ones")
        self.ln2_beta = weight("ln2_beta", (blocks, d), "zeros")
        self.ffn1_kernel = weight("ffn1_kernel", (blocks, d, f), _glorot(d, f))
        self.ffn1_bias = weight("ffn1_bias", (blocks, f), "zeros")
        self.ffn2_kernel = weight("ffn2_kernel", (blocks, f, d), _glorot(f, d))
        self.ffn2_bias = weight("ffn2_bias", (blocks, d), "zeros")
        self.final_gamma = weight("final_gamma", (d,), "ones")
        self.final_beta = weight("final_beta", (d,), "zeros")

    def sequence_width(self) -> int:
        return self.embedding_dim

    def encode_sequence(self, emb: Any, buckets: Any, mask: Any, training: bool) -> Any:
        d, heads = self.embedding_dim, self.heads
        width = d // heads
        n = self.history_length
        x = (emb + ops.take(self.rating_embedding, buckets, axis=0) + self.position_embedding[None]) * mask[..., None]
        x = self.drop(x, training=training)
        causal = ops.cast(ops.tril(ops.ones((n, n))), "float32")
        allowed = causal[None] * mask[:, None, :]  # [B, n(query), n(key)]
        bias = ((1.0 - allowed) * MASKED)[:, None]  # [B, 1, n, n]
        scale = 1.0 / float(np.sqrt(width))
        for layer in range(self.blocks):
            h = _layer_norm(x, self.ln1_gamma[layer], self.ln1_beta[layer])
            qkv = ops.matmul(h, self.qkv_kernel[layer]) + self.qkv_bias[layer]
            q, k, v = qkv[..., :d], qkv[..., d : 2 * d], qkv[..., 2 * d :]
            q = ops.transpose(ops.reshape(q, (-1, n, heads, width)), (0, 2, 1, 3))
            k = ops.transpose(ops.reshape(k, (-1, n, heads, width)), (0, 2, 3, 1))
            v = ops.transpose(ops.reshape(v, (-1, n, heads, width)), (0, 2, 1, 3))
            att = ops.softmax(ops.matmul(q, k) * scale + bias, axis=-1)
            o = ops.reshape(ops.transpose(ops.matmul(att, v), (0, 2, 1, 3)), (-1, n, d))
            x = x + self.drop(ops.matmul(o, self.out_kernel[layer]) + self.out_bias[layer], training=training)
            h = _layer_norm(x, self.ln2_gamma[layer], self.ln2_beta[layer])
            f = ops.relu(ops.matmul(h, self.ffn1_kernel[layer]) + self.ffn1_bias[layer])
            x = x + self.drop(ops.matmul(f, self.ffn2_kernel[layer]) + self.ffn2_bias[layer], training=training)
            x = x * mask[..., None]
        return _layer_norm(x[:, -1], self.final_gamma, self.final_beta)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "blocks": self.blocks, "heads": self.heads, "ffn_dim": self.ffn_dim}


@keras.saving.register_keras_serializable(package="recs")
class GRUUserTowerLayer(_SequenceUserTowerLayer):
    """A GRU (Keras' cell, ``reset_after=True``) over the history, oldest first; padding steps keep the state."""

    def __init__(self, vocab_size: int, history_length: int, embedding_dim: int, hidden: int, output_dim: int,
                 units: int | None = None, dropout: float = 0.0, **kwargs: Any) -> None:
        super().__init__(vocab_size, history_length, embedding_dim, hidden, output_dim, dropout=dropout, **kwargs)
        self.units = units or embedding_dim
        self.gru = keras.layers.GRU(self.units, reset_after=True, return_sequences=False, name="gru")

    def sequence_width(self) -> int:
        return self.units

    def build(self, input_shape: Any = None) -> None:
        self.gru.build((None, self.history_length, self.embedding_dim))
        super().build(input_shape)

    def encode_sequence(self, emb: Any, buckets: Any, mask: Any, training: bool) -> Any:
        x = self.drop(emb + ops.take(self.rating_embedding, buckets, axis=0), training=training)
        return self.gru(x, mask=mask > 0, training=training)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units}


def make_user_tower_layer(config: TrainConfig, vocab_size: int, output_dim: int) -> UserTowerLayer:
    """The Keras user tower of ``config.user_tower``."""
    args = (vocab_size, config.history_length, config.embedding_dim, config.hidden, output_dim)
    if config.user_tower == "pooling":
        return UserTowerLayer(*args, name="user_tower")
    if config.user_tower == "attention":
        return AttentionUserTowerLayer(*args, blocks=config.attention_blocks, heads=config.attention_heads,
                                       dropout=config.sequence_dropout, name="user_tower")
    if config.user_tower == "gru":
        return GRUUserTowerLayer(*args, dropout=config.sequence_dropout, name="user_tower")
    raise ValueError(f"unknown user tower {config.user_tower!r}")


def export_user_tower(layer: UserTowerLayer, movie_ids: np.ndarray, temperature: float,
                      popularity_weight: float) -> UserTower:
    """Copy the Keras user tower's weights into its numpy twin of ``core.towers``."""

    def arr(x: Any) -> np.ndarray:
        return np.asarray(x, dtype=np.float32)

    common: dict[str, Any] = {
        "movie_ids": movie_ids,
        "history_embedding": arr(layer.history_embedding),
        "position_logit": arr(layer.position_logit),
        "rating_logit": arr(layer.rating_logit),
        "dense1_kernel": arr(layer.dense1.kernel),
        "dense1_bias": arr(layer.dense1.bias),
        "dense2_kernel": arr(layer.dense2.kernel),
        "dense2_bias": arr(layer.dense2.bias),
        "inverse_temperature": 1.0 / temperature,
        "popularity_weight": popularity_weight,
    }
    if isinstance(layer, AttentionUserTowerLayer):
        names = ("position_embedding", "rating_embedding", "ln1_gamma", "ln1_beta", "qkv_kernel", "qkv_bias",
                 "out_kernel", "out_bias", "ln2_gamma", "ln2_beta", "ffn1_kernel", "ffn1_bias", "ffn2_kernel",
                 "ffn2_bias", "final_gamma", "final_beta")
        weights: dict[str, Any] = {n: arr(getattr(layer, n)) for n in names}
        return AttentionUserTower(**common, **weights, heads=layer.heads)
    if isinstance(layer, GRUUserTowerLayer):
        cell = layer.gru.cell
        return GRUUserTower(**common, rating_embedding=arr(layer.rating_embedding), gru_kernel=arr(cell.kernel),
                            gru_recurrent_kernel=arr(cell.recurrent_kernel), gru_bias=arr(cell.bias))
    return UserTower(**common)
