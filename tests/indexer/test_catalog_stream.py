"""Streaming a bundle's catalog and vectors in batches, and refusing broken files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.bundle import open_bundle, sha256_file
from core.errors import BundleError
from indexer.catalog_stream import BundleCatalog, iter_json_array


def test_batches_match_the_bundle(make_bundle):
    bundle = make_bundle("m1", n_movies=103)
    stream = BundleCatalog(bundle, batch_size=10)
    assert (stream.count, stream.dimension) == (103, 16)
    batches = list(stream.batches())
    assert [b.start for b in batches] == list(range(0, 103, 10))
    assert [m for b in batches for m in b.movies] == bundle.catalog
    np.testing.assert_array_equal(np.concatenate([b.vectors for b in batches]), bundle.movie_vectors)


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 20])
def test_json_array_reader_is_independent_of_the_block_size(tmp_path, block):
    rows = [{"a": i, "s": "x, } ] {" * (i % 3), "n": [1, {"b": None}]} for i in range(25)]
    path = tmp_path / "a.json"
    path.write_text(" [\n " + " ,\n".join(json.dumps(r) for r in rows) + " ] \n", encoding="utf-8")
    assert list(iter_json_array(path, block_chars=block)) == rows
    path.write_text("[]", encoding="utf-8")
    assert list(iter_json_array(path, block_chars=block)) == []


@pytest.mark.parametrize(("text", "message"), [
    ('{"a": 1}', "not a JSON array"),
    ('[{"a": 1} {"b": 2}]', "expected ',' or ']'"),
    ('[{"a": 1}, 3]', "array element is int"),
    ('[{"a": 1}, {"b": ', "invalid JSON"),
])
def test_json_array_reader_refuses_broken_text(tmp_path, text, message):
    path = tmp_path / "a.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BundleError, match=message):
        list(iter_json_array(path, block_chars=4))


def _rewrite(bundle_path, name, data: bytes):
    """Replace a bundle file and update its manifest entry, so only the content check can catch it."""
    (bundle_path / name).write_bytes(data)
    manifest = json.loads((bundle_path / "manifest.json").read_text())
    manifest["files"][name] = {"sha256": sha256_file(bundle_path / name), "bytes": len(data)}
    (bundle_path / "manifest.json").write_text(json.dumps(manifest))
    return open_bundle(bundle_path)


def test_catalog_and_vectors_of_different_lengths_are_refused(make_bundle):
    bundle = make_bundle("m1", n_movies=20)
    rows = json.loads((bundle.path / "catalog.json").read_text())
    shorter = _rewrite(bundle.path, "catalog.json", json.dumps(rows[:-1]).encode())
    with pytest.raises(BundleError, match="19 movies but 20 vectors"):
        list(BundleCatalog(shorter, batch_size=8).batches())
    longer = _rewrite(bundle.path, "catalog.json", json.dumps([*rows, rows[0]]).encode())
    with pytest.raises(BundleError, match="more movies than the 20 vectors"):
        list(BundleCatalog(longer, batch_size=7).batches())


def test_vectors_of_the_wrong_type_or_a_tampered_file_are_refused(make_bundle, tmp_path):
    bundle = make_bundle("m1", n_movies=20)
    np.save(tmp_path / "v.npy", np.zeros((20, 16), dtype=np.float64))
    wrong = _rewrite(bundle.path, "movie_vectors.npy", (tmp_path / "v.npy").read_bytes())
    with pytest.raises(BundleError, match="want little-endian float32"):
        BundleCatalog(wrong)
    fresh = make_bundle("m2", n_movies=20)
    with (fresh.path / "catalog.json").open("r+b") as fh:
        fh.write(b"{")  # same size, different content
    with pytest.raises(BundleError, match="sha256"):
        BundleCatalog(open_bundle(fresh.path))


def test_a_bad_movie_row_is_named(make_bundle):
    bundle = make_bundle("m1", n_movies=5)
    rows = json.loads((bundle.path / "catalog.json").read_text())
    del rows[3]["title"]
    broken = _rewrite(bundle.path, "catalog.json", json.dumps(rows).encode())
    with pytest.raises(BundleError, match="movie #3 is invalid"):
        list(BundleCatalog(broken).batches())


def test_the_benchmark_writes_valid_bundles_lazily(tmp_path):
    from bench.indexer import CHUNK, write_streamed_bundle

    n = CHUNK + 7  # more than one chunk
    version = write_streamed_bundle(tmp_path / "b", n, dimension=8)
    bundle = open_bundle(tmp_path / "b")
    bundle.verify()
    assert (bundle.model_version, bundle.dimension, len(bundle.catalog)) == (version, 8, n)
    assert [m.movie_id for m in bundle.catalog[CHUNK - 1 : CHUNK + 1]] == [CHUNK, CHUNK + 1]
    np.testing.assert_allclose(np.linalg.norm(bundle.movie_vectors[:, :-1], axis=1), 1.0, atol=1e-5)
    assert sum(b.vectors.shape[0] for b in BundleCatalog(bundle, batch_size=4096).batches()) == n
