"""Training examples drawn the way requests look: a prefix of a user's history predicts what comes next."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from core.features import ItemFeatureSpec, Movie, history_inputs, title_tokens
from training.split import Split


@dataclass(frozen=True)
class Examples:
    hist_slots: np.ndarray  # [E, H]
    hist_buckets: np.ndarray  # [E, H]
    target_rows: np.ndarray  # [E] catalog rows of the targets

    def __len__(self) -> int:
        return int(self.target_rows.shape[0])


def build_feature_spec(
    movies: list[Movie], item_counts: dict[int, int], min_item_count: int, max_tokens: int
) -> ItemFeatureSpec:
    """Vocabularies from the training data only: movies rated ``min_item_count`` times get an id embedding."""
    vocab = np.asarray(sorted(m for m, c in item_counts.items() if c >= min_item_count), dtype=np.int64)
    genres = tuple(sorted({g for m in movies for g in m.genres}))
    token_counts = Counter(t for m in movies for t in set(title_tokens(m.title)))
    ranked = sorted(token_counts.items(), key=lambda tc: (-tc[1], tc[0]))  # deterministic across processes
    tokens = tuple(t for t, c in ranked[:max_tokens] if c >= 2)
    years = np.asarray([m.year for m in movies if m.year is not None], dtype=np.float64)
    center = float(years.mean()) if years.size else 1990.0
    scale = float(years.std()) if years.size and years.std() > 0 else 20.0
    return ItemFeatureSpec(movie_ids=vocab, genres=genres, tokens=tokens, year_center=center, year_scale=scale)


def build_examples(
    split: Split,
    users: np.ndarray,
    history_limit: np.ndarray,
    catalog_row: dict[int, int],
    vocabulary: np.ndarray,
    history_length: int,
    target_window: int,
    max_per_user: int | None,
    rng: np.random.Generator,
) -> Examples:
    """For each user, positions ``t`` of its first ``history_limit[u]`` history items become examples:
    the items before ``t`` (the last ``history_length``) predict one of the next ``target_window`` items."""
    histories: list[list[tuple[int, float | None]]] = []
    targets: list[int] = []
    for u in users.tolist():
        items = split.history(u)[: history_limit[u]]
        ratings = split.history_ratings(u)[: history_limit[u]]
        n = items.shape[0]
        positions = np.arange(1, n)
        if max_per_user is not None and positions.size > max_per_user:
            positions = np.sort(rng.choice(positions, size=max_per_user, replace=False))
        for t in positions.tolist():
            lo = max(0, t - history_length)
            histories.append(list(zip(items[lo:t].tolist(), ratings[lo:t].tolist(), strict=True)))
            target = t + int(rng.integers(0, target_window)) if target_window > 1 else t
            targets.append(catalog_row[int(items[min(target, n - 1)])])
    slots, buckets = history_inputs(vocabulary, histories, history_length)
    return Examples(slots, buckets, np.asarray(targets, dtype=np.int64))
