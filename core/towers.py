"""Numpy forward passes of the two towers exported by training.

The serving path (user tower) and the indexer (item tower, for new movies) run
these; a test proves they match the Keras model within 1e-5.

Both towers end in an L2-normalised vector of ``dimension - 1`` values followed
by one popularity column: the user vector carries ``[u / temperature, w_pop]``
and the item vector ``[v, log_popularity]``, so one inner product gives the
training logit ``u.v / temperature + w_pop * log_popularity``. The vector index
therefore uses the inner-product space.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class UserTower:
    """History of ``(movie_id, rating)`` pairs -> user vector (``dimension`` floats)."""

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

    ARRAYS = (
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

    @classmethod
    def from_arrays(cls, weights: Mapping[str, np.ndarray], source: str = "user tower") -> UserTower:
        arrays = {name: _require(weights, name, source) for name in cls.ARRAYS}
        tower = cls(
            movie_ids=arrays["movie_ids"].astype(np.int64),
            history_embedding=arrays["history_embedding"].astype(np.float32),
            position_logit=arrays["position_logit"].astype(np.float32),
            rating_logit=arrays["rating_logit"].astype(np.float32),
            dense1_kernel=arrays["dense1_kernel"].astype(np.float32),
            dense1_bias=arrays["dense1_bias"].astype(np.float32),
            dense2_kernel=arrays["dense2_kernel"].astype(np.float32),
            dense2_bias=arrays["dense2_bias"].astype(np.float32),
            inverse_temperature=float(arrays["inverse_temperature"]),
            popularity_weight=float(arrays["popularity_weight"]),
        )
        tower._check_shapes(source)
        return tower

    @classmethod
    def load(cls, path: str | Path) -> UserTower:
        with np.load(path, allow_pickle=False) as npz:
            return cls.from_arrays(dict(npz), source=str(path))

    def arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, Any] = {name: getattr(self, name) for name in self.ARRAYS}
        out["inverse_temperature"] = np.float32(self.inverse_temperature)
        out["popularity_weight"] = np.float32(self.popularity_weight)
        return out

    def _check_shapes(self, source: str) -> None:
        vocab = self.movie_ids.shape[0]
        emb = self.history_embedding
        if emb.ndim != 2 or emb.shape[0] != vocab + 2:
            raise TowerWeightsError(f"{source}: history_embedding has shape {emb.shape}, want ({vocab + 2}, d)")
        if self.dense1_kernel.shape[0] != 2 * emb.shape[1]:
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
        x = np.concatenate([weighted, mean], axis=1).astype(np.float32)
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
        out = np.empty((len(movies), self.dimension), dtype=np.float32)
        for start in range(0, len(movies), batch_size):
            chunk = movies[start : start + batch_size]
            inputs = self.spec.encode(chunk)
            out[start : start + len(chunk), :-1] = self.forward(**inputs)
            out[start : start + len(chunk), -1] = log_popularity([m.popularity for m in chunk])
        return out
