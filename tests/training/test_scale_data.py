"""The scale benchmark's generator writes data the real loaders read, in each MovieLens layout, with the
release's counts and its floor of 20 ratings per user."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.scale import SHAPES, Shape, generate
from training.movielens import load_movielens


@pytest.mark.parametrize(("layout", "half_stars"), [("csv", True), ("dat", True), ("dat", False), ("100k", False)])
def test_generated_data_loads_with_the_real_loaders(tmp_path: Path, layout: str, half_stars: bool):
    shape = Shape(f"tiny-{layout}", users=40, movies=120, ratings=2_400, layout=layout, half_stars=half_stars)
    info = generate(shape, tmp_path / layout, seed=3)
    data = load_movielens(tmp_path / layout)
    assert data.layout == layout
    assert data.summary()["users"] == shape.users
    assert len(data.movies) == shape.movies
    assert len(data.ratings) == info["ratings"] >= 0.99 * shape.ratings
    per_user = np.bincount(data.ratings.user_ids)[1:]
    assert per_user.min() >= 20
    pairs = data.ratings.user_ids.astype(np.int64) * 1000 + data.ratings.movie_ids
    assert np.unique(pairs).size == pairs.size, "one rating per user and movie"
    stars = set(np.unique(data.ratings.ratings).tolist())
    assert stars <= {x / 2 for x in range(1, 11)} and (any(s % 1 for s in stars) == half_stars)
    assert all(m.year is not None and m.title for m in data.movies)
    assert any(m.title.endswith(", The") for m in data.movies) or layout == "100k"
    # the same seed writes the same files
    again = generate(shape, tmp_path / "again", seed=3)
    assert again == {**info, "files": info["files"]}
    name = {"csv": "ratings.csv", "dat": "ratings.dat", "100k": "u.data"}[layout]
    assert (tmp_path / layout / name).read_bytes() == (tmp_path / "again" / name).read_bytes()


def test_the_shapes_are_the_releases():
    assert (SHAPES["1m"].users, SHAPES["1m"].movies, SHAPES["1m"].ratings, SHAPES["1m"].layout) == (
        6_040, 3_706, 1_000_209, "dat")
    assert (SHAPES["32m"].users, SHAPES["32m"].movies, SHAPES["32m"].ratings, SHAPES["32m"].layout) == (
        200_948, 87_585, 32_000_204, "csv")
