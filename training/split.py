"""The chronological per-user split of the evaluation protocol.

Per user, ratings are sorted by time (ties keep file order); the last 20% (at
least one) are the test items, the rest the history.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.movielens import Ratings


@dataclass(frozen=True)
class UserSequences:
    """Each user's interactions in time order, as index ranges into flat arrays."""

    user_ids: np.ndarray  # [U]
    offsets: np.ndarray  # [U + 1]
    movie_ids: np.ndarray  # flat, time-ordered per user
    ratings: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return int(self.user_ids.shape[0])

    def items(self, u: int) -> np.ndarray:
        return self.movie_ids[self.offsets[u] : self.offsets[u + 1]]

    def rated(self, u: int) -> np.ndarray:
        return self.ratings[self.offsets[u] : self.offsets[u + 1]]


@dataclass(frozen=True)
class Split:
    """History (the first 80%) and test items (the last 20%, at least one) per user."""

    sequences: UserSequences
    n_history: np.ndarray  # [U]: the first n_history[u] interactions are history

    def history(self, u: int) -> np.ndarray:
        s = self.sequences
        return s.movie_ids[s.offsets[u] : s.offsets[u] + self.n_history[u]]

    def history_ratings(self, u: int) -> np.ndarray:
        s = self.sequences
        return s.ratings[s.offsets[u] : s.offsets[u] + self.n_history[u]]

    def test(self, u: int) -> np.ndarray:
        s = self.sequences
        return s.movie_ids[s.offsets[u] + self.n_history[u] : s.offsets[u + 1]]

    def history_mask(self) -> np.ndarray:
        """Boolean mask over the flat arrays: True for history interactions."""
        s = self.sequences
        pos = np.arange(s.movie_ids.shape[0]) - np.repeat(s.offsets[:-1], np.diff(s.offsets))
        return pos < np.repeat(self.n_history, np.diff(s.offsets))


def _time_order(ratings: Ratings) -> np.ndarray:
    """Indices sorting by user, then time, ties in file order (one stable sort of a packed key when it fits)."""
    users, times = ratings.user_ids, ratings.timestamps
    if len(ratings) and users.min() >= 0 and users.max() < 2**29 and times.min() >= 0 and times.max() < 2**33:
        key = (users.astype(np.int64) << 33) | times.astype(np.int64)
        return np.argsort(key, kind="stable")
    return np.lexsort((np.arange(len(ratings)), times, users))


def user_sequences(ratings: Ratings) -> UserSequences:
    order = _time_order(ratings)
    users = ratings.user_ids[order]
    starts = np.flatnonzero(np.diff(users, prepend=users[:1] - 1)) if users.size else np.empty(0, np.int64)
    user_ids = users[starts]
    del users
    offsets = np.append(starts, order.shape[0]).astype(np.int64)
    return UserSequences(
        user_ids=user_ids,
        offsets=offsets,
        movie_ids=ratings.movie_ids[order],
        ratings=ratings.ratings[order],
        timestamps=ratings.timestamps[order],
    )


def count_test_items(n: int, fraction: float = 0.2) -> int:
    """How many of a user's ``n`` interactions are test items: ``max(1, floor(fraction * n))``."""
    return max(1, int(fraction * n)) if n > 0 else 0


def chronological_split(ratings: Ratings, fraction: float = 0.2) -> Split:
    seqs = user_sequences(ratings)
    lengths = np.diff(seqs.offsets)
    n_test = np.where(lengths > 0, np.maximum(1, np.floor(fraction * lengths)), 0).astype(np.int64)
    return Split(sequences=seqs, n_history=lengths - n_test)
