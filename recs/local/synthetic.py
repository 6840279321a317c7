"""Random-weight bundles with synthetic catalogs, for tests and benchmarks.

They follow the bundle contract exactly (same files, same shapes, same hashes)
but carry no learned signal; use ``recs train`` for a real model.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from core.bundle import Bundle, write_bundle
from core.features import ItemFeatureSpec, Movie
from core.towers import ItemTower, UserTower, ensemble_item_tower, ensemble_user_tower

GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip
WORDS = (
    "night", "star", "love", "dark", "city", "last", "man", "story", "war", "time", "house",
    "king", "dead", "girl", "world", "blue", "road", "dream", "fire", "secret",
)  # fmt: skip


def synthetic_catalog(n_movies: int, seed: int = 0) -> list[Movie]:
    rng = np.random.default_rng(seed)
    years = rng.integers(1920, 2024, size=n_movies)
    pops = rng.zipf(1.6, size=n_movies).clip(max=10_000)
    movies = []
    for i in range(n_movies):
        n_genres = int(rng.integers(1, 4))
        genres = tuple(sorted({GENRES[j] for j in rng.integers(0, len(GENRES), size=n_genres)}))
        words = " ".join(WORDS[j] for j in rng.integers(0, len(WORDS), size=2))
        movies.append(
            Movie(movie_id=i + 1, title=f"The {words} {i + 1}", year=int(years[i]), genres=genres,
                  popularity=float(pops[i]))
        )
    return movies


def synthetic_towers(
    catalog: list[Movie], dimension: int = 32, history_length: int = 20, seed: int = 0
) -> tuple[UserTower, ItemTower]:
    rng = np.random.default_rng(seed)
    d = dimension - 1
    emb, hidden = 16, 32
    ids = np.asarray(sorted(m.movie_id for m in catalog), dtype=np.int64)
    spec = ItemFeatureSpec(movie_ids=ids, genres=GENRES, tokens=WORDS, year_center=1990.0, year_scale=20.0)

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)

    user = UserTower(
        movie_ids=ids,
        history_embedding=w(ids.size + 2, emb),
        position_logit=w(history_length),
        rating_logit=w(11),
        dense1_kernel=w(2 * emb, hidden),
        dense1_bias=np.zeros(hidden, np.float32),
        dense2_kernel=w(hidden, d),
        dense2_bias=np.zeros(d, np.float32),
        inverse_temperature=10.0,
        popularity_weight=0.1,
    )
    item = ItemTower(
        spec=spec,
        id_embedding=w(ids.size + 2, emb),
        token_embedding=w(len(WORDS) + 1, 8),
        dense1_kernel=w(emb + len(GENRES) + 2 + 8, hidden),
        dense1_bias=np.zeros(hidden, np.float32),
        dense2_kernel=w(hidden, d),
        dense2_bias=np.zeros(d, np.float32),
    )
    return user, item


def write_synthetic_bundle(
    out_dir: str | os.PathLike[str],
    n_movies: int = 500,
    dimension: int = 32,
    history_length: int = 20,
    seed: int = 0,
    model_version: str | None = None,
    members: int = 1,
) -> Bundle:
    """A complete, valid bundle with random weights over a synthetic catalog; ``members`` above 1: an ensemble of
    that many random models (seeds ``seed``, ``seed + 1``, ...; ``dimension`` is each member's)."""
    catalog = synthetic_catalog(n_movies, seed)
    towers = [synthetic_towers(catalog, dimension, history_length, seed + i) for i in range(members)]
    user = ensemble_user_tower([u for u, _ in towers])
    item = ensemble_item_tower([i for _, i in towers])
    vectors = item.encode(catalog)
    return write_bundle(
        Path(out_dir),
        model_version=model_version or f"synthetic-{n_movies}-{seed}",
        user_tower=user,
        item_tower=item,
        catalog=catalog,
        movie_vectors=vectors,
        extra={"dataset": {"name": "synthetic", "movies": n_movies}},
    )
