"""Item and history features shared by training, serving and the indexer.

Everything here is plain Python and numpy so that the Lambda and the indexer
image can compute exactly what the Keras model saw during training.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

PADDING_SLOT = 0
"""Embedding row for an empty history position (masked out)."""
OOV_SLOT = 1
"""Embedding row for a movie without a learned id embedding (new or too rare)."""
FIRST_ID_SLOT = 2

RATING_BUCKETS = 11
"""Bucket 0 is "no rating given"; buckets 1..10 are 0.5 .. 5.0 stars."""

MAX_TITLE_TOKENS = 8
NO_GENRES = "(no genres listed)"
ITEM_INPUTS: tuple[str, ...] = ("id_slot", "genres", "year", "tokens")
"""The item tower's inputs, in the order its Keras layer and its numpy forward pass take them
(``ItemFeatureSpec.encode`` returns them by these names)."""

_YEAR_RE = re.compile(r"\((\d{4})(?:\s*[-\u2013]\s*(?:\d{4})?)?\)\s*$")
_TOKEN_RE = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Movie:
    """One catalog entry, as the bundle, the index and the API see it."""

    movie_id: int
    title: str
    year: int | None
    genres: tuple[str, ...]
    popularity: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "movie_id": self.movie_id,
            "title": self.title,
            "year": self.year,
            "genres": list(self.genres),
            "popularity": self.popularity,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> Movie:
        year = raw.get("year")
        genres = raw.get("genres") or []
        if not isinstance(genres, list | tuple):
            raise TypeError("genres must be a list")
        return cls(
            movie_id=int(raw["movie_id"]),  # type: ignore[call-overload]
            title=str(raw["title"]),
            year=None if year is None else int(year),  # type: ignore[call-overload]
            genres=tuple(str(g) for g in genres),
            popularity=float(raw.get("popularity") or 0.0),  # type: ignore[arg-type]
        )


def split_title(raw_title: str) -> tuple[str, int | None]:
    """``"Toy Story (1995)"`` -> ``("Toy Story", 1995)``; titles without a year keep ``None``."""
    title = raw_title.strip()
    match = _YEAR_RE.search(title)
    if not match:
        return title, None
    return title[: match.start()].strip(), int(match.group(1))


def parse_genres(raw: str) -> tuple[str, ...]:
    """``"Adventure|Animation"`` -> ``("Adventure", "Animation")``; the no-genre marker gives ``()``."""
    return tuple(g.strip() for g in raw.split("|") if g.strip() and g.strip() != NO_GENRES)


def title_tokens(title: str) -> list[str]:
    """Lower-case alphanumeric tokens of a title (the year is not part of ``title``)."""
    return _TOKEN_RE.findall(title.lower())


@dataclass(frozen=True)
class ItemFeatureSpec:
    """Vocabularies and scalings that turn movies into item-tower inputs."""

    movie_ids: np.ndarray
    """Sorted int64 ids that own a learned id embedding; slot = index + FIRST_ID_SLOT."""
    genres: tuple[str, ...]
    tokens: tuple[str, ...]
    """Title-token vocabulary; token slot = index + 1, 0 is padding."""
    year_center: float
    year_scale: float

    def id_slots(self, movie_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        return id_slots(self.movie_ids, movie_ids)

    def encode(self, movies: Sequence[Movie]) -> dict[str, np.ndarray]:
        """Inputs of the item tower for ``movies``: id slots, genres, year and title tokens."""
        n = len(movies)
        genre_index = {g: i for i, g in enumerate(self.genres)}
        token_index = {t: i + 1 for i, t in enumerate(self.tokens)}
        genres = np.zeros((n, len(self.genres)), dtype=np.float32)
        year = np.zeros((n, 2), dtype=np.float32)
        tokens = np.zeros((n, MAX_TITLE_TOKENS), dtype=np.int32)
        for row, movie in enumerate(movies):
            for g in movie.genres:
                col = genre_index.get(g)
                if col is not None:
                    genres[row, col] = 1.0
            if movie.year is None:
                year[row, 1] = 1.0
            else:
                year[row, 0] = (movie.year - self.year_center) / self.year_scale
            slots = [token_index[t] for t in title_tokens(movie.title) if t in token_index]
            slots = slots[:MAX_TITLE_TOKENS]
            tokens[row, : len(slots)] = slots
        columns = (self.id_slots([m.movie_id for m in movies]), genres, year, tokens)
        return dict(zip(ITEM_INPUTS, columns, strict=True))


def id_slots(vocabulary: np.ndarray, movie_ids: Sequence[int] | np.ndarray) -> np.ndarray:
    """Map movie ids to embedding slots of a sorted vocabulary; unknown ids map to ``OOV_SLOT``."""
    ids = np.asarray(movie_ids, dtype=np.int64)
    if vocabulary.size == 0 or ids.size == 0:
        return np.full(ids.shape, OOV_SLOT, dtype=np.int32)
    pos = np.searchsorted(vocabulary, ids)
    pos_clipped = np.minimum(pos, vocabulary.size - 1)
    found = vocabulary[pos_clipped] == ids
    return np.where(found, pos_clipped + FIRST_ID_SLOT, OOV_SLOT).astype(np.int32)


def rating_buckets(ratings: Iterable[float | None]) -> np.ndarray:
    """0 for a missing rating, else 1..10 for 0.5..5.0 stars (clipped)."""
    out = []
    for r in ratings:
        if r is None or r != r:  # None or NaN
            out.append(0)
        else:
            out.append(int(min(10, max(1, round(float(r) * 2)))))
    return np.asarray(out, dtype=np.int32)


def history_inputs(
    vocabulary: np.ndarray,
    histories: Sequence[Sequence[tuple[int, float | None]]],
    history_length: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Right-aligned (most recent last) id slots and rating buckets for a batch of histories.

    Each history is a sequence of ``(movie_id, rating)`` pairs, oldest first; only
    the last ``history_length`` are kept. Empty positions are ``PADDING_SLOT``.
    """
    batch = len(histories)
    slots = np.zeros((batch, history_length), dtype=np.int32)
    buckets = np.zeros((batch, history_length), dtype=np.int32)
    for row, history in enumerate(histories):
        recent = list(history)[-history_length:] if history_length > 0 else []
        if not recent:
            continue
        ids = [m for m, _ in recent]
        start = history_length - len(recent)
        slots[row, start:] = id_slots(vocabulary, ids)
        buckets[row, start:] = rating_buckets(r for _, r in recent)
    return slots, buckets
