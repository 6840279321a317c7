"""Feature vocabularies from the training data only (the examples themselves: ``training.sequences``)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from core.features import ItemFeatureSpec, Movie, title_tokens


def build_feature_spec(
    movies: list[Movie], item_counts: np.ndarray, min_item_count: int, max_tokens: int
) -> ItemFeatureSpec:
    """Vocabularies from the training data only: movies rated ``min_item_count`` times (and at least once)
    get an id embedding; ``item_counts[i]`` is how often ``movies[i]`` appears in the training histories."""
    counts = np.asarray(item_counts)
    ids = np.asarray([m.movie_id for m in movies], dtype=np.int64)
    vocab = np.unique(ids[counts >= max(1, min_item_count)])
    genres = tuple(sorted({g for m in movies for g in m.genres}))
    token_counts = Counter(t for m in movies for t in set(title_tokens(m.title)))
    ranked = sorted(token_counts.items(), key=lambda tc: (-tc[1], tc[0]))  # deterministic across processes
    tokens = tuple(t for t, c in ranked[:max_tokens] if c >= 2)
    years = np.asarray([m.year for m in movies if m.year is not None], dtype=np.float64)
    center = float(years.mean()) if years.size else 1990.0
    scale = float(years.std()) if years.size and years.std() > 0 else 20.0
    return ItemFeatureSpec(movie_ids=vocab, genres=genres, tokens=tokens, year_center=center, year_scale=scale)
