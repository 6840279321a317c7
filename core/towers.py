"""Numpy forward passes of the two towers exported by training.

The serving path (user tower) and the indexer (item tower, for new movies) run
these; a test proves they match the Keras model within 1e-5.

Both towers end in an L2-normalised vector of ``dimension - 1`` values followed
by one popularity column: the user vector carries ``[u / temperature, w_pop]``
and the item vector ``[v, log_popularity]``, so one inner product gives the
training logit ``u.v / temperature + w_pop * log_popularity``. The vector index
therefore uses the inner-product space.

An *ensemble* (``EnsembleUserTower``, ``EnsembleItemTower``) serves several such models trained from
different seeds as one: its vectors are the members' normalised parts side by side and one popularity
column, ``[u_1 / T, ..., u_n / T, w_1 + ... + w_n]`` and ``[v_1, ..., v_n, log_popularity]``, so one
inner product is the sum of the members' logits. The last column is the popularity column for every
bundle. ``load_user_tower`` and ``load_item_tower`` return whichever a file holds; the serving path,
the indexer and the evaluation see the interfaces ``UserEncoder`` and ``ItemEncoder`` only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from core.errors import TowerWeightsError
from core.features import ItemFeatureSpec, Movie, history_inputs

_EPS = 1e-12


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x).astype(np.float32)


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    norm = np.sqrt(np.maximum(np.sum(x * x, axis=-1, keepdims=True), _EPS))
    return (x / norm).astype(np.float32)


def _dense_relu(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return np.maximum(x @ kernel + bias, 0.0).astype(np.float32)


def _require(weights: Mapping[str, np.ndarray], name: str, source: str) -> np.ndarray:
    if name not in weights:
        raise TowerWeightsError(f"{source}: missing array {name!r}")
    return np.asarray(weights[name])


def log_popularity(counts: np.ndarray | Sequence[float]) -> np.ndarray:
    """The popularity feature of the item vector: ``log(1 + count)``."""
    return np.log1p(np.asarray(counts, dtype=np.float32)).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (0.5 + 0.5 * np.tanh(0.5 * x)).astype(np.float32)  # no overflow for large |x|


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    return (centred / np.sqrt(var + LAYER_NORM_EPSILON) * gamma + beta).astype(np.float32)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


LAYER_NORM_EPSILON = 1e-5
MASKED = -1e9
"""Added to the attention score of a padding key: its weight is exactly 0 in float32 (never -inf: a row
without any valid key, an empty history, then averages identical padding vectors instead of making NaN)."""
USER_TOWER_TYPES = ("pooling", "attention", "gru")
"""The user tower types a bundle may hold (``tower_type`` in ``user_tower.npz``; absent = pooling); an ensemble's
members are each of one of them."""
ENSEMBLE = "ensemble"
"""``tower_type`` of an ensemble's ``user_tower.npz`` and ``item_tower.npz`` (its members' arrays are prefixed
``member<i>.``)."""


class UserEncoder(Protocol):
    """What serving, evaluation and the bundle use of a user tower: one tower (``UserTower`` and its sequence-aware
    subclasses) or an ensemble of them (``EnsembleUserTower``)."""

    @property
    def movie_ids(self) -> np.ndarray: ...

    @property
    def history_length(self) -> int: ...

    @property
    def dimension(self) -> int: ...

    @property
    def tower_type(self) -> str: ...

    def knows(self, movie_id: int) -> bool: ...

    def forward(self, slots: np.ndarray, buckets: np.ndarray) -> np.ndarray: ...

    def encode_batch(self, histories: Sequence[Sequence[tuple[int, float | None]]]) -> np.ndarray: ...

    def encode(self, history: Sequence[tuple[int, float | None]]) -> np.ndarray: ...

    def arrays(self) -> dict[str, np.ndarray]: ...


class ItemEncoder(Protocol):
    """What the indexer, training and the bundle use of an item tower: one (``ItemTower``) or an ensemble
    (``EnsembleItemTower``)."""

    @property
    def spec(self) -> ItemFeatureSpec: ...

    @property
    def dimension(self) -> int: ...

    def encode(self, movies: Sequence[Movie], batch_size: int = 4096) -> np.ndarray: ...

    def arrays(self) -> dict[str, np.ndarray]: ...


def user_tower_type(weights: Mapping[str, np.ndarray]) -> str:
    """The tower type recorded in a user tower's arrays; bundles written before there was a choice are pooling."""
    return str(np.asarray(weights["tower_type"])) if "tower_type" in weights else "pooling"


@dataclass(frozen=True)
class UserTower:
    """History of ``(movie_id, rating)`` pairs -> user vector (``dimension`` floats): the *pooling* tower.

    Two poolings of the history embeddings (a learned attention weight per position and rating
    bucket, and a plain mean) -> Dense(relu) -> Dense -> L2. The sequence-aware towers
    (``AttentionUserTower``, ``GRUUserTower``) are subclasses that add one more input to the same
    head, so every tower has this interface; ``UserTower.load`` returns the type the file records.
    """

    movie_ids: np.ndarray
    history_embedding: np.ndarray
    position_logit: np.ndarray
    rating_logit: np.ndarray
    dense1_kernel: np.ndarray
    dense1_bias: np.ndarray
    dense2_kernel: np.ndarray
    dense2_bias: np.ndarray
    inverse_temperature: float
    popularity_weight: float

    ARRAYS: ClassVar[tuple[str, ...]] = (
        "movie_ids",
        "history_embedding",
        "position_logit",
        "rating_logit",
        "dense1_kernel",
        "dense1_bias",
        "dense2_kernel",
        "dense2_bias",
        "inverse_temperature",
        "popularity_weight",
    )

    TOWER_TYPE = "pooling"
    SCALARS: ClassVar[dict[str, type[float] | type[int]]] = {"inverse_temperature": float, "popularity_weight": float}
    """Arrays stored as 0-d arrays and held as Python numbers."""

    @classmethod
    def from_arrays(cls, weights: Mapping[str, np.ndarray], source: str = "user tower") -> UserTower:
        """The tower the arrays describe: its type is ``tower_type`` (absent: pooling). Called on a subclass, the
        arrays must be of that type."""
        kind = user_tower_type(weights)
        target = _USER_TOWER_CLASSES.get(kind)
        if target is None:
            known = ", ".join(USER_TOWER_TYPES)
            raise TowerWeightsError(f"{source}: unknown user tower type {kind!r} (known: {known})")
        if cls is not UserTower and target is not cls:
            raise TowerWeightsError(f"{source}: a {kind} user tower, not {cls.TOWER_TYPE}")
        arrays = {name: _require(weights, name, source) for name in target.ARRAYS}
        values: dict[str, Any] = {}
        for name, value in arrays.items():
            if name in target.SCALARS:
                values[name] = target.SCALARS[name](value)
            elif name == "movie_ids":
                values[name] = value.astype(np.int64)
            else:
                values[name] = value.astype(np.float32)
        tower = target(**values)
        tower._check_shapes(source)
        return tower

    @classmethod
    def load(cls, path: str | Path) -> UserTower:
        with np.load(path, allow_pickle=False) as npz:
            return cls.from_arrays(dict(npz), source=str(path))

    def arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, Any] = {name: getattr(self, name) for name in self.ARRAYS}
        for name, kind in self.SCALARS.items():
            out[name] = np.float32(out[name]) if kind is float else np.int32(out[name])
        out["tower_type"] = np.asarray(self.TOWER_TYPE)
        return out

    @property
    def tower_type(self) -> str:
        return self.TOWER_TYPE

    def _sequence_width(self) -> int:
        """Width of the sequence encoder's output, the head's third input (0: the pooling tower has none)."""
        return 0

    def _check_shapes(self, source: str) -> None:
        vocab = self.movie_ids.shape[0]
        emb = self.history_embedding
        if emb.ndim != 2 or emb.shape[0] != vocab + 2:
            raise TowerWeightsError(f"{source}: history_embedding has shape {emb.shape}, want ({vocab + 2}, d)")
        if self.dense1_kernel.shape[0] != 2 * emb.shape[1] + self._sequence_width():
            raise TowerWeightsError(f"{source}: dense1_kernel has shape {self.dense1_kernel.shape}")
        if self.dense2_kernel.shape[0] != self.dense1_kernel.shape[1]:
            raise TowerWeightsError(f"{source}: dense2_kernel has shape {self.dense2_kernel.shape}")
        if self.rating_logit.shape != (11,):
            raise TowerWeightsError(f"{source}: rating_logit has shape {self.rating_logit.shape}, want (11,)")

    @property
    def history_length(self) -> int:
        return int(self.position_logit.shape[0])

    @property
    def dimension(self) -> int:
        return int(self.dense2_kernel.shape[1]) + 1

    def knows(self, movie_id: int) -> bool:
        pos = int(np.searchsorted(self.movie_ids, movie_id))
        return pos < self.movie_ids.size and int(self.movie_ids[pos]) == movie_id

    def forward(self, slots: np.ndarray, buckets: np.ndarray) -> np.ndarray:
        """The tower on prepared inputs: ``slots`` and ``buckets`` are ``[batch, history_length]``."""
        mask = (slots > 0).astype(np.float32)
        emb = self.history_embedding[slots]  # [B, H, d]
        weight = mask * _softplus(self.position_logit[None, :] + self.rating_logit[buckets])
        weighted = np.einsum("bh,bhd->bd", weight, emb) / (weight.sum(axis=1, keepdims=True) + 1e-6)
        mean = np.einsum("bh,bhd->bd", mask, emb) / (mask.sum(axis=1, keepdims=True) + 1e-6)
        parts = [weighted, mean]
        if self._sequence_width():
            parts.append(self._sequence(emb, buckets, mask))
        x = np.concatenate(parts, axis=1).astype(np.float32)
        hidden = _dense_relu(x, self.dense1_kernel, self.dense1_bias)
        u = _l2_normalize(hidden @ self.dense2_kernel + self.dense2_bias)
        pop = np.full((u.shape[0], 1), self.popularity_weight, dtype=np.float32)
        return np.concatenate([u * np.float32(self.inverse_temperature), pop], axis=1).astype(np.float32)

    def encode_batch(self, histories: Sequence[Sequence[tuple[int, float | None]]]) -> np.ndarray:
        slots, buckets = history_inputs(self.movie_ids, histories, self.history_length)
        return self.forward(slots, buckets)

    def encode(self, history: Sequence[tuple[int, float | None]]) -> np.ndarray:
        """One user's vector from ``(movie_id, rating)`` pairs, oldest first."""
        return self.encode_batch([history])[0]

    def _sequence(self, emb: np.ndarray, buckets: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The sequence encoder's output per user, ``[batch, _sequence_width()]`` (subclasses)."""
        raise NotImplementedError


def _used_columns(mask: np.ndarray) -> slice:
    """The history positions from the first one any row uses: the leading positions are padding in every row,
    and dropping them changes no output of the sequence towers (see their ``_sequence``)."""
    used = np.flatnonzero(mask.any(axis=0))
    return slice(int(used[0]) if used.size else mask.shape[1] - 1, None)


@dataclass(frozen=True)
class AttentionUserTower(UserTower):
    """The pooling tower's head with a third input: causal self-attention over the history (SASRec-style blocks).

    Each position's input is its id embedding (the pooling's table) + a rating-bucket embedding + a learned
    position embedding (by age, most recent last), zero at padding. ``blocks`` pre-LayerNorm blocks follow:
    ``x += MultiHead(LN(x))`` (causal, padding keys masked) and ``x += FFN(LN(x))`` (ReLU), then ``x *= mask``;
    the final LayerNorm of the most recent position is the sequence output, concatenated with the two poolings
    before ``dense1``. Block weights are stacked on a leading axis (``[blocks, ...]``).

    Serving shortcuts, exact up to float rounding: positions that are padding in every row are dropped first
    (padding keys get weight 0 and padding queries never reach the last position), and the last block computes
    its query for the last position only (the only output used).
    """

    position_embedding: np.ndarray  # [H, d]
    rating_embedding: np.ndarray  # [11, d]
    ln1_gamma: np.ndarray  # [L, d]
    ln1_beta: np.ndarray
    qkv_kernel: np.ndarray  # [L, d, 3d]: query, key, value
    qkv_bias: np.ndarray  # [L, 3d]
    out_kernel: np.ndarray  # [L, d, d]
    out_bias: np.ndarray  # [L, d]
    ln2_gamma: np.ndarray
    ln2_beta: np.ndarray
    ffn1_kernel: np.ndarray  # [L, d, f]
    ffn1_bias: np.ndarray  # [L, f]
    ffn2_kernel: np.ndarray  # [L, f, d]
    ffn2_bias: np.ndarray  # [L, d]
    final_gamma: np.ndarray  # [d]
    final_beta: np.ndarray
    heads: int

    TOWER_TYPE = "attention"
    ARRAYS = (
        *UserTower.ARRAYS,
        "position_embedding", "rating_embedding", "ln1_gamma", "ln1_beta", "qkv_kernel", "qkv_bias", "out_kernel",
        "out_bias", "ln2_gamma", "ln2_beta", "ffn1_kernel", "ffn1_bias", "ffn2_kernel", "ffn2_bias", "final_gamma",
        "final_beta", "heads",
    )  # fmt: skip
    SCALARS = {**UserTower.SCALARS, "heads": int}

    @property
    def blocks(self) -> int:
        return int(self.qkv_kernel.shape[0])

    def _sequence_width(self) -> int:
        return int(self.history_embedding.shape[1])

    def _check_shapes(self, source: str) -> None:
        super()._check_shapes(source)
        h, d, n = self.history_length, self.history_embedding.shape[1], self.blocks
        want = {
            "position_embedding": (h, d), "rating_embedding": (11, d), "ln1_gamma": (n, d), "ln1_beta": (n, d),
            "qkv_kernel": (n, d, 3 * d), "qkv_bias": (n, 3 * d), "out_kernel": (n, d, d), "out_bias": (n, d),
            "ln2_gamma": (n, d), "ln2_beta": (n, d), "ffn2_bias": (n, d), "final_gamma": (d,), "final_beta": (d,),
        }  # fmt: skip
        for name, shape in want.items():
            if getattr(self, name).shape != shape:
                raise TowerWeightsError(f"{source}: {name} has shape {getattr(self, name).shape}, want {shape}")
        f = self.ffn1_kernel.shape[-1]
        if self.ffn1_kernel.shape != (n, d, f) or self.ffn1_bias.shape != (n, f) or self.ffn2_kernel.shape != (n, f, d):
            shapes = f"{self.ffn1_kernel.shape}, {self.ffn2_kernel.shape}"
            raise TowerWeightsError(f"{source}: feed-forward kernels {shapes}")
        if self.heads < 1 or d % self.heads:
            raise TowerWeightsError(f"{source}: {self.heads} heads do not divide the width {d}")

    def _sequence(self, emb: np.ndarray, buckets: np.ndarray, mask: np.ndarray) -> np.ndarray:
        cols = _used_columns(mask)
        m = mask[:, cols]
        x = emb[:, cols] + self.rating_embedding[buckets[:, cols]] + self.position_embedding[cols][None]
        x = x * m[..., None]
        b, n, d = x.shape
        heads, width = self.heads, d // self.heads
        allowed = np.tril(np.ones((n, n), dtype=bool))[None] & (m[:, None, :] > 0)
        bias = np.where(allowed, np.float32(0.0), np.float32(MASKED)).astype(np.float32)[:, None]  # [B, 1, n, n]
        scale = np.float32(1.0 / np.sqrt(width))
        for layer in range(self.blocks):
            last = layer == self.blocks - 1
            h = _layer_norm(x, self.ln1_gamma[layer], self.ln1_beta[layer])
            qkv = h @ self.qkv_kernel[layer] + self.qkv_bias[layer]
            q, k, v = qkv[..., :d], qkv[..., d : 2 * d], qkv[..., 2 * d :]
            if last:  # only the last position's output is used
                q, bias, x, m = q[:, -1:], bias[:, :, -1:], x[:, -1:], m[:, -1:]
            q = q.reshape(b, -1, heads, width).transpose(0, 2, 1, 3)
            k = k.reshape(b, n, heads, width).transpose(0, 2, 3, 1)
            v = v.reshape(b, n, heads, width).transpose(0, 2, 1, 3)
            att = _softmax((q @ k) * scale + bias)
            o = (att @ v).transpose(0, 2, 1, 3).reshape(b, -1, d)
            x = x + o @ self.out_kernel[layer] + self.out_bias[layer]
            h = _layer_norm(x, self.ln2_gamma[layer], self.ln2_beta[layer])
            f = _dense_relu(h, self.ffn1_kernel[layer], self.ffn1_bias[layer])
            x = ((x + f @ self.ffn2_kernel[layer] + self.ffn2_bias[layer]) * m[..., None]).astype(np.float32)
        return _layer_norm(x[:, -1], self.final_gamma, self.final_beta)


@dataclass(frozen=True)
class GRUUserTower(UserTower):
    """The pooling tower's head with a third input: the last state of a GRU run over the history, oldest first.

    Each step's input is the id embedding + a rating-bucket embedding; padding steps keep the state (which
    starts at 0), so leading padding changes nothing and is skipped. The cell is Keras' ``GRU`` with
    ``reset_after=True``: gates ``z, r = sigmoid(x W + b_in + h U + b_rec)`` (in that order in the kernels),
    ``h' = tanh(x W_h + b_in_h + r * (h U_h + b_rec_h))``, ``h = z * h + (1 - z) * h'``.
    """

    rating_embedding: np.ndarray  # [11, d]
    gru_kernel: np.ndarray  # [d, 3u]: z, r, h
    gru_recurrent_kernel: np.ndarray  # [u, 3u]
    gru_bias: np.ndarray  # [2, 3u]: input bias, recurrent bias

    TOWER_TYPE = "gru"
    ARRAYS = (*UserTower.ARRAYS, "rating_embedding", "gru_kernel", "gru_recurrent_kernel", "gru_bias")

    def _sequence_width(self) -> int:
        return int(self.gru_recurrent_kernel.shape[0])

    def _check_shapes(self, source: str) -> None:
        super()._check_shapes(source)
        d, u = self.history_embedding.shape[1], self._sequence_width()
        want = {"rating_embedding": (11, d), "gru_kernel": (d, 3 * u), "gru_recurrent_kernel": (u, 3 * u),
                "gru_bias": (2, 3 * u)}
        for name, shape in want.items():
            if getattr(self, name).shape != shape:
                raise TowerWeightsError(f"{source}: {name} has shape {getattr(self, name).shape}, want {shape}")

    def _sequence(self, emb: np.ndarray, buckets: np.ndarray, mask: np.ndarray) -> np.ndarray:
        cols = _used_columns(mask)
        m = mask[:, cols] > 0
        u = self._sequence_width()
        recurrent_bias = self.gru_bias[1]
        gx = (emb[:, cols] + self.rating_embedding[buckets[:, cols]]) @ self.gru_kernel + self.gru_bias[0]
        gx[..., : 2 * u] += recurrent_bias[: 2 * u]  # the gates' recurrent bias, added once
        state = np.zeros((emb.shape[0], u), dtype=np.float32)
        every_row = np.asarray(m.all(axis=0))
        for t in range(gx.shape[1]):
            gh = state @ self.gru_recurrent_kernel
            zr = _sigmoid(gx[:, t, : 2 * u] + gh[:, : 2 * u])
            candidate = np.tanh(gx[:, t, 2 * u :] + zr[:, u:] * (gh[:, 2 * u :] + recurrent_bias[2 * u :]))
            new = candidate + zr[:, :u] * (state - candidate)
            state = new if every_row[t] else np.where(m[:, t, None], new, state)
        return state.astype(np.float32)


_USER_TOWER_CLASSES: dict[str, type[UserTower]] = {
    "pooling": UserTower, "attention": AttentionUserTower, "gru": GRUUserTower,
}


@dataclass(frozen=True)
class ItemTower:
    """Movie (id, genres, year, title) -> item vector (``dimension`` floats)."""

    spec: ItemFeatureSpec
    id_embedding: np.ndarray
    token_embedding: np.ndarray
    dense1_kernel: np.ndarray
    dense1_bias: np.ndarray
    dense2_kernel: np.ndarray
    dense2_bias: np.ndarray

    ARRAYS = (
        "movie_ids",
        "genres",
        "tokens",
        "year_center",
        "year_scale",
        "id_embedding",
        "token_embedding",
        "dense1_kernel",
        "dense1_bias",
        "dense2_kernel",
        "dense2_bias",
    )

    @classmethod
    def from_arrays(cls, weights: Mapping[str, np.ndarray], source: str = "item tower") -> ItemTower:
        a = {name: _require(weights, name, source) for name in cls.ARRAYS}
        spec = ItemFeatureSpec(
            movie_ids=a["movie_ids"].astype(np.int64),
            genres=tuple(str(g) for g in a["genres"].tolist()),
            tokens=tuple(str(t) for t in a["tokens"].tolist()),
            year_center=float(a["year_center"]),
            year_scale=float(a["year_scale"]),
        )
        tower = cls(
            spec=spec,
            id_embedding=a["id_embedding"].astype(np.float32),
            token_embedding=a["token_embedding"].astype(np.float32),
            dense1_kernel=a["dense1_kernel"].astype(np.float32),
            dense1_bias=a["dense1_bias"].astype(np.float32),
            dense2_kernel=a["dense2_kernel"].astype(np.float32),
            dense2_bias=a["dense2_bias"].astype(np.float32),
        )
        tower._check_shapes(source)
        return tower

    @classmethod
    def load(cls, path: str | Path) -> ItemTower:
        with np.load(path, allow_pickle=False) as npz:
            return cls.from_arrays(dict(npz), source=str(path))

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "movie_ids": self.spec.movie_ids,
            "genres": np.asarray(self.spec.genres, dtype=np.str_),
            "tokens": np.asarray(self.spec.tokens, dtype=np.str_),
            "year_center": np.float32(self.spec.year_center),  # type: ignore[dict-item]
            "year_scale": np.float32(self.spec.year_scale),  # type: ignore[dict-item]
            "id_embedding": self.id_embedding,
            "token_embedding": self.token_embedding,
            "dense1_kernel": self.dense1_kernel,
            "dense1_bias": self.dense1_bias,
            "dense2_kernel": self.dense2_kernel,
            "dense2_bias": self.dense2_bias,
        }

    def _check_shapes(self, source: str) -> None:
        vocab = self.spec.movie_ids.shape[0]
        if self.id_embedding.shape[0] != vocab + 2:
            raise TowerWeightsError(f"{source}: id_embedding has shape {self.id_embedding.shape}")
        if self.token_embedding.shape[0] != len(self.spec.tokens) + 1:
            raise TowerWeightsError(f"{source}: token_embedding has shape {self.token_embedding.shape}")
        width = self.id_embedding.shape[1] + len(self.spec.genres) + 2 + self.token_embedding.shape[1]
        if self.dense1_kernel.shape[0] != width:
            raise TowerWeightsError(f"{source}: dense1_kernel has shape {self.dense1_kernel.shape}, want ({width}, h)")
        if self.dense2_kernel.shape[0] != self.dense1_kernel.shape[1]:
            raise TowerWeightsError(f"{source}: dense2_kernel has shape {self.dense2_kernel.shape}")

    @property
    def dimension(self) -> int:
        return int(self.dense2_kernel.shape[1]) + 1

    def forward(
        self,
        id_slot: np.ndarray,
        genres: np.ndarray,
        year: np.ndarray,
        tokens: np.ndarray,
    ) -> np.ndarray:
        """The normalised content+collaborative part of the vector, ``[n, dimension - 1]``."""
        id_e = self.id_embedding[id_slot]
        tok_mask = (tokens > 0).astype(np.float32)
        tok_e = np.einsum("nt,ntd->nd", tok_mask, self.token_embedding[tokens]) / (
            tok_mask.sum(axis=1, keepdims=True) + 1e-6
        )
        x = np.concatenate([id_e, genres, year, tok_e], axis=1).astype(np.float32)
        hidden = _dense_relu(x, self.dense1_kernel, self.dense1_bias)
        return _l2_normalize(hidden @ self.dense2_kernel + self.dense2_bias)

    def encode(self, movies: Sequence[Movie], batch_size: int = 4096) -> np.ndarray:
        """Index vectors ``[len(movies), dimension]``: the tower output plus ``log(1 + popularity)``."""
        return _encode_items((self,), movies, batch_size)


def _encode_items(members: Sequence[ItemTower], movies: Sequence[Movie], batch_size: int) -> np.ndarray:
    """``[len(movies), sum(d_i - 1) + 1]``: each member's normalised output side by side, then ``log(1 +
    popularity)``; the features are encoded once per chunk of ``batch_size`` movies (the members share them)."""
    spec = members[0].spec
    widths = [m.dimension - 1 for m in members]
    out = np.empty((len(movies), sum(widths) + 1), dtype=np.float32)
    for start in range(0, len(movies), batch_size):
        chunk = movies[start : start + batch_size]
        rows = slice(start, start + len(chunk))
        inputs = spec.encode(chunk)
        col = 0
        for member, width in zip(members, widths, strict=True):
            out[rows, col : col + width] = member.forward(**inputs)
            col += width
        out[rows, -1] = log_popularity([m.popularity for m in chunk])
    return out


def _member_arrays(members: Sequence[UserTower | ItemTower]) -> dict[str, np.ndarray]:
    out = {"tower_type": np.asarray(ENSEMBLE), "members": np.asarray(len(members), dtype=np.int32)}
    for i, member in enumerate(members):
        out.update({f"member{i}.{name}": value for name, value in member.arrays().items()})
    return out


def _member_weights(weights: Mapping[str, np.ndarray], source: str) -> list[dict[str, np.ndarray]]:
    """An ensemble file's arrays split per member (``member<i>.`` prefixes); ``TowerWeightsError`` unless it holds
    ``members`` of at least 2 and each member's arrays."""
    count = int(_require(weights, "members", source))
    if count < 2:
        raise TowerWeightsError(f"{source}: an ensemble of {count} member(s); it needs at least 2")
    members: list[dict[str, np.ndarray]] = [{} for _ in range(count)]
    for key, value in weights.items():
        head, dot, name = key.partition(".")
        if dot and head.startswith("member") and head[6:].isdigit() and int(head[6:]) < count:
            members[int(head[6:])][name] = value
    for i, arrays in enumerate(members):
        if not arrays:
            raise TowerWeightsError(f"{source}: ensemble member {i} has no arrays")
    return members


@dataclass(frozen=True)
class _Ensemble:
    """What both ensembles share: at least two members of one class (``MEMBER``) that read the same inputs, their
    arrays under ``member<i>.`` prefixes, and a vector of the members' parts side by side plus one popularity
    column."""

    members: tuple[Any, ...]

    MEMBER: ClassVar[Any]
    NAME: ClassVar[str]
    MISMATCH: ClassVar[str]
    """How a member whose inputs differ from member 0's is described in the error."""

    def __post_init__(self) -> None:
        if len(self.members) < 2:
            raise TowerWeightsError(f"{self.NAME}: an ensemble needs at least 2 members, got {len(self.members)}")
        for i, member in enumerate(self.members[1:], 1):
            if not self._same_inputs(self.members[0], member):
                raise TowerWeightsError(f"{self.NAME}: member {i} {self.MISMATCH} than member 0")

    @staticmethod
    def _same_inputs(first: Any, other: Any) -> bool:
        raise NotImplementedError

    @classmethod
    def _from_arrays(cls, weights: Mapping[str, np.ndarray], source: str) -> Any:
        members = tuple(cls.MEMBER.from_arrays(arrays, f"{source} (member {i})")
                        for i, arrays in enumerate(_member_weights(weights, source)))
        try:
            return cls(members)
        except TowerWeightsError as exc:
            raise TowerWeightsError(f"{source}: {exc}") from None

    def arrays(self) -> dict[str, np.ndarray]:
        return _member_arrays(self.members)

    @property
    def dimension(self) -> int:
        return sum(m.dimension - 1 for m in self.members) + 1


@dataclass(frozen=True)
class EnsembleUserTower(_Ensemble):
    """User towers trained from different seeds, served as one: the vector is the members' ``u / temperature``
    parts side by side and one popularity weight, their sum (``dimension`` = the members' parts + 1), so its inner
    product with an ``EnsembleItemTower`` vector is the sum of the members' logits. The members read the same
    history (same movie vocabulary and history length); each may be of any tower type."""

    members: tuple[UserTower, ...]

    MEMBER = UserTower
    NAME = "user tower ensemble"
    MISMATCH = "reads another history (movie ids or history length)"
    TOWER_TYPE: ClassVar[str] = ENSEMBLE

    @staticmethod
    def _same_inputs(first: UserTower, other: UserTower) -> bool:
        return other.history_length == first.history_length and np.array_equal(other.movie_ids, first.movie_ids)

    @classmethod
    def from_arrays(cls, weights: Mapping[str, np.ndarray], source: str = "user tower") -> EnsembleUserTower:
        tower: EnsembleUserTower = cls._from_arrays(weights, source)
        return tower

    @property
    def tower_type(self) -> str:
        return ENSEMBLE

    @property
    def member_types(self) -> list[str]:
        return [m.tower_type for m in self.members]

    @property
    def movie_ids(self) -> np.ndarray:
        return self.members[0].movie_ids

    @property
    def history_length(self) -> int:
        return self.members[0].history_length

    def knows(self, movie_id: int) -> bool:
        return self.members[0].knows(movie_id)

    def forward(self, slots: np.ndarray, buckets: np.ndarray) -> np.ndarray:
        """Every member on the same prepared inputs (``[batch, history_length]``), side by side."""
        outputs = [m.forward(slots, buckets) for m in self.members]
        popularity = np.sum([o[:, -1:] for o in outputs], axis=0)
        return np.concatenate([o[:, :-1] for o in outputs] + [popularity], axis=1).astype(np.float32)

    def encode_batch(self, histories: Sequence[Sequence[tuple[int, float | None]]]) -> np.ndarray:
        slots, buckets = history_inputs(self.movie_ids, histories, self.history_length)
        return self.forward(slots, buckets)

    def encode(self, history: Sequence[tuple[int, float | None]]) -> np.ndarray:
        """One user's vector from ``(movie_id, rating)`` pairs, oldest first."""
        return self.encode_batch([history])[0]


@dataclass(frozen=True)
class EnsembleItemTower(_Ensemble):
    """The item towers of an ensemble (``EnsembleUserTower``): a movie's vector is the members' normalised outputs
    side by side, then ``log(1 + popularity)`` once. The members share the feature vocabularies (``spec``)."""

    members: tuple[ItemTower, ...]

    MEMBER = ItemTower
    NAME = "item tower ensemble"
    MISMATCH = "has other feature vocabularies"

    @staticmethod
    def _same_inputs(first: ItemTower, other: ItemTower) -> bool:
        a, b = first.spec, other.spec
        same = (a.genres, a.tokens, a.year_center, a.year_scale) == (b.genres, b.tokens, b.year_center, b.year_scale)
        return same and np.array_equal(a.movie_ids, b.movie_ids)

    @classmethod
    def from_arrays(cls, weights: Mapping[str, np.ndarray], source: str = "item tower") -> EnsembleItemTower:
        tower: EnsembleItemTower = cls._from_arrays(weights, source)
        return tower

    @property
    def spec(self) -> ItemFeatureSpec:
        return self.members[0].spec

    def encode(self, movies: Sequence[Movie], batch_size: int = 4096) -> np.ndarray:
        """Index vectors ``[len(movies), dimension]``: the members' outputs, then ``log(1 + popularity)``."""
        return _encode_items(self.members, movies, batch_size)


def _is_ensemble(weights: Mapping[str, np.ndarray]) -> bool:
    return "tower_type" in weights and str(np.asarray(weights["tower_type"])) == ENSEMBLE


def user_tower_from_arrays(weights: Mapping[str, np.ndarray], source: str = "user tower") -> UserEncoder:
    """The user tower (or ensemble) the arrays describe."""
    if _is_ensemble(weights):
        return EnsembleUserTower.from_arrays(weights, source)
    return UserTower.from_arrays(weights, source)


def item_tower_from_arrays(weights: Mapping[str, np.ndarray], source: str = "item tower") -> ItemEncoder:
    """The item tower (or ensemble) the arrays describe (``tower_type`` ``ensemble``; absent: one tower)."""
    if _is_ensemble(weights):
        return EnsembleItemTower.from_arrays(weights, source)
    return ItemTower.from_arrays(weights, source)


def load_user_tower(path: str | Path) -> UserEncoder:
    """``user_tower.npz``: one user tower of its recorded type, or an ensemble."""
    with np.load(path, allow_pickle=False) as npz:
        return user_tower_from_arrays(dict(npz), source=str(path))


def load_item_tower(path: str | Path) -> ItemEncoder:
    """``item_tower.npz``: one item tower, or an ensemble."""
    with np.load(path, allow_pickle=False) as npz:
        return item_tower_from_arrays(dict(npz), source=str(path))


def ensemble_user_tower(members: Sequence[UserEncoder]) -> UserEncoder:
    """One member: itself; more: their ``EnsembleUserTower`` (``TowerWeightsError`` if a member is an ensemble)."""
    singles = [m for m in members if isinstance(m, UserTower)]
    if len(singles) != len(members):
        raise TowerWeightsError("an ensemble's members are single user towers")
    return singles[0] if len(singles) == 1 else EnsembleUserTower(tuple(singles))


def ensemble_item_tower(members: Sequence[ItemEncoder]) -> ItemEncoder:
    """One member: itself; more: their ``EnsembleItemTower`` (``TowerWeightsError`` if a member is an ensemble)."""
    singles = [m for m in members if isinstance(m, ItemTower)]
    if len(singles) != len(members):
        raise TowerWeightsError("an ensemble's members are single item towers")
    return singles[0] if len(singles) == 1 else EnsembleItemTower(tuple(singles))
