"""Users' interactions as flat, time-ordered arrays, and training examples streamed from them.

Nothing here holds a Python object per interaction or per example: memory is the flat arrays
(a few bytes per rating) plus one int64 per example (the example index, at most one per rating),
and batches are assembled from index arrays as they are needed.

The API other code builds on (training, and later a retraining job or sequence baselines):

* :func:`encode_sequences` turns a :class:`~training.split.Split` into :class:`Sequences`: per
  interaction its id slot in a vocabulary, its rating bucket and its catalog row, in time order per
  user (``offsets[u]:offsets[u + 1]``), with ``limit[u]``, how much of each user's sequence
  training may read (history minus the validation hold-out; the test part is never inside it).
* :func:`sample_examples` draws the training examples like requests: for a position ``t`` of a
  user's usable prefix, the last ``history_length`` items before ``t`` predict one of the next
  ``target_window`` items; at most ``max_per_user`` positions per user, sampled without
  replacement. An example is two numbers: where its history ends and where its target is.
* :func:`history_windows` gives the right-aligned (most recent last) history inputs for any set of
  end positions: ``history_inputs`` of ``core.features`` computed from the flat arrays.
* :func:`training_dataset` is the ``tf.data`` pipeline: examples reshuffled each epoch (seeded),
  cut into batches, and each batch assembled in numpy from the flat arrays.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.features import ITEM_INPUTS, PADDING_SLOT, id_slots
from training.split import Split

CHUNK_INTERACTIONS = 1 << 21
"""Users are processed in groups of about this many interactions, so temporaries stay bounded."""


def rating_buckets_array(ratings: np.ndarray) -> np.ndarray:
    """``core.features.rating_buckets`` vectorised: 0 for NaN, else ``round(2 r)`` clipped to 1..10."""
    r = np.asarray(ratings, dtype=np.float64)
    out = np.clip(np.rint(r * 2.0), 1, 10)
    out[np.isnan(r)] = 0
    return out.astype(np.int8)


def catalog_rows(catalog_ids: np.ndarray, movie_ids: np.ndarray) -> np.ndarray:
    """Row of each movie id in the catalog (``catalog_ids`` in catalog order); -1 for unknown ids.
    Computed in chunks, so the temporaries stay bounded however many ids there are."""
    ids = np.asarray(catalog_ids, dtype=np.int64)
    movie_ids = np.asarray(movie_ids)
    out = np.full(movie_ids.shape[0], -1, dtype=np.int32)
    if ids.size == 0:
        return out
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    for start in range(0, movie_ids.shape[0], CHUNK_INTERACTIONS):
        chunk = movie_ids[start : start + CHUNK_INTERACTIONS]
        pos = np.minimum(np.searchsorted(sorted_ids, chunk), ids.size - 1)
        out[start : start + chunk.shape[0]] = np.where(sorted_ids[pos] == chunk, order[pos], -1)
    return out


@dataclass(frozen=True)
class Sequences:
    """Flat per-interaction arrays, time-ordered within each user; user ``u`` is ``offsets[u]:offsets[u + 1]``."""

    offsets: np.ndarray  # [U + 1] int64
    slots: np.ndarray  # [N] int32: id slot of the movie in the vocabulary (OOV_SLOT if it has none)
    buckets: np.ndarray  # [N] int8: rating bucket
    rows: np.ndarray  # [N] int32: catalog row of the movie
    limit: np.ndarray  # [U] int64: the first limit[u] interactions of user u are usable for training

    @property
    def users(self) -> int:
        return int(self.offsets.shape[0] - 1)

    def nbytes(self) -> int:
        return sum(int(a.nbytes) for a in (self.offsets, self.slots, self.buckets, self.rows, self.limit))


def encode_sequences(split: Split, catalog_ids: np.ndarray, vocabulary: np.ndarray,
                     limit: np.ndarray | None = None, rows: np.ndarray | None = None) -> Sequences:
    """The split's sequences as slots, buckets and catalog rows; ``limit`` defaults to each user's history,
    ``rows`` (``catalog_rows`` of the movie ids) is computed unless given."""
    seqs = split.sequences
    n = seqs.movie_ids.shape[0]
    slots = np.empty(n, dtype=np.int32)
    buckets = np.empty(n, dtype=np.int8)
    if rows is None:
        rows = catalog_rows(catalog_ids, seqs.movie_ids)
    for start in range(0, n, CHUNK_INTERACTIONS):  # bounded temporaries (int64 searches, float64 ratings)
        stop = min(n, start + CHUNK_INTERACTIONS)
        slots[start:stop] = id_slots(vocabulary, seqs.movie_ids[start:stop])
        buckets[start:stop] = rating_buckets_array(seqs.ratings[start:stop])
    use = np.asarray(split.n_history if limit is None else limit, dtype=np.int64)
    return Sequences(offsets=np.asarray(seqs.offsets, dtype=np.int64), slots=slots, buckets=buckets, rows=rows,
                     limit=use)


@dataclass(frozen=True)
class Examples:
    """Training examples as two flat arrays: where each history ends and the catalog row of its target."""

    ends: np.ndarray  # [E] int64: flat position t; the history is the interactions before t (same user)
    target_rows: np.ndarray  # [E] int32: catalog row of the target

    def __len__(self) -> int:
        return int(self.ends.shape[0])

    def nbytes(self) -> int:
        return int(self.ends.nbytes + self.target_rows.nbytes)


def _user_chunks(offsets: np.ndarray, limit: np.ndarray) -> Iterator[tuple[int, int]]:
    """``[a, b)`` user ranges of about ``CHUNK_INTERACTIONS`` usable interactions each (fixed by the data)."""
    cum = np.concatenate([[0], np.cumsum(limit)])
    a = 0
    users = limit.shape[0]
    while a < users:
        b = int(np.searchsorted(cum, cum[a] + CHUNK_INTERACTIONS, side="right"))
        b = min(users, max(a + 1, b - 1))
        yield a, b
        a = b


def sample_examples(sequences: Sequences, max_per_user: int | None, target_window: int,
                    rng: np.random.Generator) -> Examples:
    """Positions ``t = 1 .. limit[u] - 1`` of each user (at most ``max_per_user``, sampled without
    replacement) become examples; the target is ``t + randint(target_window)``, clipped to the prefix."""
    ends_parts: list[np.ndarray] = []
    target_parts: list[np.ndarray] = []
    offsets, limit = sequences.offsets, sequences.limit
    for a, b in _user_chunks(offsets, limit):
        n = limit[a:b]
        m = np.maximum(n - 1, 0)  # candidate positions per user
        total = int(m.sum())
        if total == 0:
            continue
        owner = np.repeat(np.arange(b - a), m)
        first = np.concatenate([[0], np.cumsum(m)[:-1]])
        t = np.arange(total) - np.repeat(first, m) + 1  # 1 .. n-1 within the user
        if max_per_user is not None and (m > max_per_user).any():
            keys = rng.random(total)
            keys[m[owner] <= max_per_user] = -1.0  # users under the cap keep every position
            order = np.lexsort((keys, owner))
            rank = np.arange(total) - first[owner[order]]
            keep = np.sort(order[rank < max_per_user])
            owner, t = owner[keep], t[keep]
        base = offsets[a:b][owner]
        if target_window > 1:
            target = np.minimum(t + rng.integers(0, target_window, size=t.shape[0]), n[owner] - 1)
        else:
            target = t
        ends_parts.append(base + t)
        target_parts.append(sequences.rows[base + target])
    if not ends_parts:
        return Examples(np.empty(0, np.int64), np.empty(0, np.int32))
    return Examples(np.concatenate(ends_parts).astype(np.int64), np.concatenate(target_parts).astype(np.int32))


def history_windows(sequences: Sequences, ends: np.ndarray, history_length: int,
                    starts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Slots and rating buckets of the ``history_length`` interactions before each of ``ends``, right-aligned
    (most recent last, padding on the left), never before ``starts`` (default: the start of the user that
    holds position ``end``, which must then lie strictly inside that user's interactions)."""
    ends = np.asarray(ends, dtype=np.int64)
    if starts is None:
        starts = sequences.offsets[np.searchsorted(sequences.offsets, ends, side="right") - 1]
    idx = ends[:, None] - history_length + np.arange(history_length)[None, :]
    valid = idx >= np.asarray(starts, dtype=np.int64)[:, None]
    idx = np.where(valid, idx, 0)
    slots = np.where(valid, sequences.slots[idx], PADDING_SLOT).astype(np.int32)
    buckets = np.where(valid, sequences.buckets[idx], 0).astype(np.int32)
    return slots, buckets


def user_histories(sequences: Sequences, users: np.ndarray, history_length: int,
                   lengths: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The served input of each of ``users``: the last ``history_length`` of its first ``lengths[u]``
    interactions (``limit`` by default)."""
    users = np.asarray(users, dtype=np.int64)
    n = sequences.limit[users] if lengths is None else np.asarray(lengths, dtype=np.int64)[users]
    starts = sequences.offsets[users]
    return history_windows(sequences, starts + n, history_length, starts)


@dataclass(frozen=True)
class BatchFeatures:
    """Per-catalog-row inputs of a target (the item tower's inputs and the loss terms)."""

    item_inputs: dict[str, np.ndarray]
    log_pop: np.ndarray  # [n_movies] float32
    log_q: np.ndarray  # [n_movies] float32


def batch(sequences: Sequences, examples: Examples, picked: np.ndarray, history_length: int,
          features: BatchFeatures) -> dict[str, np.ndarray]:
    """One training batch for the examples ``picked`` (indices into ``examples``)."""
    slots, buckets = history_windows(sequences, examples.ends[picked], history_length)
    rows = examples.target_rows[picked]
    inputs = features.item_inputs
    return {
        "hist_slots": slots,
        "hist_buckets": buckets,
        **{k: inputs[k][rows] for k in ITEM_INPUTS},
        "target": rows.astype(np.int32),
        "log_pop": features.log_pop[rows],
        "log_q": features.log_q[rows],
    }


def epoch_batches(sequences: Sequences, examples: Examples, history_length: int, features: BatchFeatures,
                  batch_size: int, seed: int, epoch: int) -> Iterator[dict[str, np.ndarray]]:
    """The batches of one epoch: a permutation seeded by ``(seed, epoch)``, the last partial batch dropped."""
    order = np.random.default_rng([seed, epoch]).permutation(len(examples))
    for start in range(0, order.shape[0] - batch_size + 1, batch_size):
        yield batch(sequences, examples, order[start : start + batch_size], history_length, features)


def log_q_of(examples: Examples, n_movies: int, batch_size: int = 1, uniform_negatives: int = 0) -> np.ndarray:
    """``log Q(j)`` of the logQ correction: the log of each movie's frequency among the examples' targets (how
    often it is an in-batch negative), plus, with ``uniform_negatives`` movies drawn uniformly per batch of
    ``batch_size``, ``uniform_negatives / (n_movies * batch_size)`` (the expected draws of a movie, in the same
    units: per target in the batch)."""
    counts = np.bincount(examples.target_rows, minlength=n_movies).astype(np.float64)
    n = max(1, len(examples))
    if uniform_negatives:
        q = counts / n + uniform_negatives / (max(1, n_movies) * batch_size)
    else:
        q = np.maximum(counts, 1.0) / n  # a movie that is never a target is counted once
    return np.log(q).astype(np.float32)


def training_dataset(sequences: Sequences, examples: Examples, history_length: int, features: BatchFeatures,
                     batch_size: int, seed: int) -> Any:
    """A ``tf.data.Dataset`` of training batches, reshuffled each time it is iterated (each epoch).

    Epoch ``k`` (the ``k``-th iteration, from 0) is ``epoch_batches(..., epoch=k)``: two runs with
    the same seed see the same batches in the same order.
    """
    import tensorflow as tf

    steps = len(examples) // batch_size
    epoch = {"next": 0}
    g = len(features.item_inputs["genres"][0]) if len(features.item_inputs["genres"]) else 0
    t = features.item_inputs["tokens"].shape[1]
    spec = {
        "hist_slots": tf.TensorSpec((batch_size, history_length), tf.int32),
        "hist_buckets": tf.TensorSpec((batch_size, history_length), tf.int32),
        "id_slot": tf.TensorSpec((batch_size,), tf.int32),
        "genres": tf.TensorSpec((batch_size, g), tf.float32),
        "year": tf.TensorSpec((batch_size, 2), tf.float32),
        "tokens": tf.TensorSpec((batch_size, t), tf.int32),
        "target": tf.TensorSpec((batch_size,), tf.int32),
        "log_pop": tf.TensorSpec((batch_size,), tf.float32),
        "log_q": tf.TensorSpec((batch_size,), tf.float32),
    }

    def generate() -> Iterator[dict[str, np.ndarray]]:
        current = epoch["next"]
        epoch["next"] += 1
        yield from epoch_batches(sequences, examples, history_length, features, batch_size, seed, current)

    dataset = tf.data.Dataset.from_generator(generate, output_signature=spec)
    return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(4)
