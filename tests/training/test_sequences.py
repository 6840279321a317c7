"""The streaming example pipeline: the same inputs as the served path, examples drawn like requests, and
memory that does not grow with the number of examples."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from core.features import history_inputs
from training.movielens import load_movielens
from training.sequences import (
    BatchFeatures,
    encode_sequences,
    epoch_batches,
    history_windows,
    sample_examples,
    user_histories,
)
from training.split import chronological_split


@pytest.fixture(scope="module")
def sample():
    data = load_movielens("data/ml-latest-small")
    split = chronological_split(data.ratings)
    ids = np.asarray([m.movie_id for m in data.movies], dtype=np.int64)
    vocabulary = np.unique(split.sequences.movie_ids[::3]).astype(np.int64)  # some movies are out of vocabulary
    return split, ids, vocabulary, encode_sequences(split, ids, vocabulary)


def test_history_windows_are_the_served_inputs(sample):
    split, _, vocabulary, seqs = sample
    rng = np.random.default_rng(1)
    users = rng.choice(len(split.sequences), size=60, replace=False)
    cut = [int(rng.integers(0, split.n_history[u] + 1)) for u in users]  # any prefix, empty ones included
    histories = [list(zip(split.history(u)[:c].tolist(), split.history_ratings(u)[:c].tolist(), strict=True))
                 for u, c in zip(users, cut, strict=True)]
    expected = history_inputs(vocabulary, histories, 20)
    lengths = np.zeros(len(split.sequences), dtype=np.int64)
    lengths[users] = cut
    got = user_histories(seqs, users, 20, lengths)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_examples_are_drawn_like_requests(sample):
    split, ids, _, seqs = sample
    limit = np.maximum(split.n_history - 3, 0)
    seqs = encode_sequences(split, ids, np.zeros(0, dtype=np.int64), limit)
    every = sample_examples(seqs, None, 1, np.random.default_rng(0))
    assert len(every) == int(np.maximum(limit - 1, 0).sum())
    capped = sample_examples(seqs, 25, 3, np.random.default_rng(0))
    user = np.searchsorted(seqs.offsets, capped.ends, side="right") - 1
    t = capped.ends - seqs.offsets[user]
    assert np.bincount(user, minlength=seqs.users).max() == 25
    assert (np.minimum(limit - 1, 25) == np.bincount(user, minlength=seqs.users)).all()
    assert ((t >= 1) & (t < limit[user])).all(), "a history ends inside its user's usable prefix"
    # targets are one of the next 3 items, never past the prefix (validation and test items stay unseen)
    nxt = np.stack([seqs.rows[seqs.offsets[user] + np.minimum(t + k, limit[user] - 1)] for k in range(3)])
    assert (nxt == capped.target_rows[None, :]).any(axis=0).all()
    again = sample_examples(seqs, 25, 3, np.random.default_rng(0))
    np.testing.assert_array_equal(again.ends, capped.ends)
    # a history never reaches into the previous user's interactions
    slots, _ = history_windows(seqs, capped.ends, 50)
    assert ((slots > 0).sum(axis=1) == np.minimum(t, 50)).all()


def test_epochs_are_reshuffled_and_reproducible(sample):
    _, ids, _, seqs = sample
    examples = sample_examples(seqs, 300, 1, np.random.default_rng(0))
    features = BatchFeatures({"id_slot": np.zeros(len(ids), np.int32), "genres": np.zeros((len(ids), 2), np.float32),
                              "year": np.zeros((len(ids), 2), np.float32),
                              "tokens": np.zeros((len(ids), 8), np.int32)},
                             np.zeros(len(ids), np.float32), np.zeros(len(ids), np.float32))
    first = [b["target"] for b in epoch_batches(seqs, examples, 50, features, 1000, seed=7, epoch=0)]
    again = [b["target"] for b in epoch_batches(seqs, examples, 50, features, 1000, seed=7, epoch=0)]
    second = [b["target"] for b in epoch_batches(seqs, examples, 50, features, 1000, seed=7, epoch=1)]
    assert len(first) == len(examples) // 1000
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(again))
    assert not np.array_equal(np.concatenate(first), np.concatenate(second))


CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    from training.sequences import BatchFeatures, Sequences, epoch_batches, sample_examples
    from training.stages import peak_rss_mib, reset_peak_rss, _status_kib

    users, per_user = int(sys.argv[1]), 200
    rng = np.random.default_rng(0)
    n = users * per_user
    seqs = Sequences(offsets=np.arange(0, n + 1, per_user, dtype=np.int64),
                     slots=rng.integers(2, 5000, n).astype(np.int32),
                     buckets=rng.integers(1, 11, n).astype(np.int8),
                     rows=rng.integers(0, 5000, n).astype(np.int32),
                     limit=np.full(users, per_user, dtype=np.int64))
    z = np.zeros(5000, np.float32)
    features = BatchFeatures({"id_slot": np.zeros(5000, np.int32), "genres": np.zeros((5000, 20), np.float32),
                              "year": np.zeros((5000, 2), np.float32), "tokens": np.zeros((5000, 8), np.int32)}, z, z)
    before = _status_kib("VmRSS") / 1024
    reset_peak_rss()
    examples = sample_examples(seqs, 150, 1, rng)
    for batch in epoch_batches(seqs, examples, 50, features, 512, 0, 0):
        pass
    print(json.dumps({"examples": len(examples), "growth_mib": peak_rss_mib() - before}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_example_memory_does_not_grow_with_the_number_of_examples():
    """Peak memory of sampling the examples and one epoch of batches, over the data arrays, at two sizes:
    what grows is the example index and the epoch's permutation (20 bytes an example), not the examples
    themselves (a materialised [examples, 50] history alone would be 200 bytes an example)."""
    runs = []
    for users in (2_000, 16_000):
        out = subprocess.run([sys.executable, "-c", CHILD, str(users)], capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    small, large = runs
    assert large["examples"] == 8 * small["examples"]
    per_example = (large["growth_mib"] - small["growth_mib"]) * 2**20 / (large["examples"] - small["examples"])
    assert per_example < 48, f"{per_example:.0f} bytes of peak memory per extra example"
