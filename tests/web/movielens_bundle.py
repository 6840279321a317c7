"""A small bundle with real MovieLens titles whose recommendations make sense, without training.

The catalog is the ``n`` most rated movies of the bundled ml-latest-small sample (titles, years,
genres, rating counts as popularity), so the page can be searched as a person would. The item
vectors come from ``recs.local.synthetic``'s random item tower over the content features (genres,
year, title words) with a small id part, so movies sharing genres lie close together. The user
tower is built by hand to be the rating-weighted mean of the history's item vectors (its history
embeddings are the item vectors, its two dense layers an identity through the ReLU), so a list of
animated movies gets animated movies back and "because you liked" names the nearest of them.
"""

from __future__ import annotations

import csv
import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np

from core.bundle import Bundle, write_bundle
from core.features import Movie, parse_genres, split_title
from core.towers import UserTower
from recs.local.synthetic import synthetic_towers

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "ml-latest-small"
DIMENSION = 32
HISTORY_LENGTH = 20


def movielens_catalog(n_movies: int, data: Path = SAMPLE) -> list[Movie]:
    """The ``n_movies`` most rated movies of the sample (ties by id), popularity = their rating count."""
    with (data / "ratings.csv").open(newline="", encoding="utf-8") as fh:
        counts = Counter(int(row["movieId"]) for row in csv.DictReader(fh))
    keep = {movie_id for movie_id, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n_movies]}
    movies = []
    with (data / "movies.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            movie_id = int(row["movieId"])
            if movie_id in keep:
                title, year = split_title(row["title"])
                movies.append(Movie(movie_id, title, year, parse_genres(row["genres"]), float(counts[movie_id])))
    return movies


def write_movielens_bundle(out_dir: Path, n_movies: int = 600, seed: int = 5) -> Bundle:
    catalog = movielens_catalog(n_movies)
    _, item = synthetic_towers(catalog, DIMENSION, HISTORY_LENGTH, seed)
    item = dataclasses.replace(item, id_embedding=(item.id_embedding * 0.25).astype(np.float32))
    vectors = item.encode(catalog)
    d = DIMENSION - 1
    ids = item.spec.movie_ids  # sorted
    row_of = {m.movie_id: i for i, m in enumerate(catalog)}
    history_embedding = np.zeros((ids.size + 2, d), np.float32)
    for slot, movie_id in enumerate(ids.tolist(), start=2):
        history_embedding[slot] = vectors[row_of[movie_id], :d]
    eye = np.eye(d, dtype=np.float32)
    dense1 = np.zeros((2 * d, 2 * d), np.float32)
    dense1[:d, :d], dense1[:d, d:] = eye, -eye  # [relu(x), relu(-x)] of the rating-weighted mean
    user = UserTower(
        movie_ids=ids,
        history_embedding=history_embedding,
        position_logit=np.zeros(HISTORY_LENGTH, np.float32),
        # bucket 0 = no rating; 1..10 = 0.5..5 stars: a 5-star movie weighs about 100 times a half-star one
        rating_logit=np.concatenate([[0.0], np.linspace(-4.5, 2.0, 10)]).astype(np.float32),
        dense1_kernel=dense1,
        dense1_bias=np.zeros(2 * d, np.float32),
        dense2_kernel=np.concatenate([eye, -eye]),  # relu(x) - relu(-x) = x
        dense2_bias=np.zeros(d, np.float32),
        inverse_temperature=10.0,
        popularity_weight=0.2,
    )
    return write_bundle(
        out_dir,
        model_version=f"movielens-demo-{n_movies}",
        user_tower=user,
        item_tower=item,
        catalog=catalog,
        movie_vectors=vectors,
        extra={"dataset": {"name": "ml-latest-small (most rated)", "movies": n_movies}},
    )
