"""The indexer's scenarios, each run against the embedded store and against OpenSearch (``world``)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from core.bundle import write_bundle
from indexer.delta import parse_delta_json
from indexer.errors import BulkLoadError, DeltaError, IndexerError, LockHeldError, NoLiveIndexError, RollbackError
from indexer.target import probe_vector
from recs.local.synthetic import synthetic_catalog, synthetic_towers
from tests.indexer.conftest import N_MOVIES


class SimulatedCrash(BaseException):
    """Stands for the process dying (not an Exception: no cleanup handler catches it)."""


def crash_at(step: str):
    def hook(name: str) -> None:
        if name == step:
            raise SimulatedCrash(step)

    return hook


def test_full_rebuild_loads_verifies_and_swaps(world, make_bundle):
    bundle = make_bundle("m1")
    summary = world.indexer().rebuild(str(bundle.path))

    live = world.live()
    assert live == summary.index == summary.alias_after
    assert live.startswith(f"{world.alias}-m1-")
    assert summary.alias_before is None and summary.documents == N_MOVIES
    assert summary.details["probes"] == 3 and summary.docs_per_s > 0
    assert world.count() == N_MOVIES
    assert world.generation() == summary.generation == 1
    for row in (0, 57, N_MOVIES - 1):  # documents read through the alias carry the bundle's data
        expected = bundle.catalog[row]
        movie, vector = world.movie(expected.movie_id)
        assert movie == expected
        np.testing.assert_allclose(vector, bundle.movie_vectors[row], atol=1e-6)
    # The API's query finds a movie from its own (popularity-free) vector.
    target = bundle.catalog[10]
    assert world.search(probe_vector(bundle.movie_vectors[10], "innerproduct"))[0] == target.movie_id
    steps = [e["event"] for e in world.reporters[-1].events]
    assert steps.index("loaded") < steps.index("verified") < steps.index("swapped") < steps.index("bumped")


def test_second_rebuild_keeps_previous_indices_and_deletes_older(world, make_bundle):
    names = []
    for version in ("m1", "m2", "m3"):
        names.append(world.indexer(keep=1).rebuild(str(make_bundle(version, seed=len(names)).path)).index)
    assert world.live() == names[2]
    assert world.index_names() == sorted(names[1:])  # m1 deleted, m2 kept for rollback
    assert world.generation() == 3
    status = world.indexer().status()
    assert status["live"] == names[2] and status["rollback_candidates"] == [names[1]]


def test_rollback_returns_to_the_previous_index(world, make_bundle):
    first = world.indexer().rebuild(str(make_bundle("m1").path)).index
    second = world.indexer().rebuild(str(make_bundle("m2", seed=1).path)).index

    summary = world.indexer().rollback()
    assert (summary.alias_before, summary.alias_after) == (second, first)
    assert world.live() == first and world.count() == N_MOVIES
    assert world.generation() == 3  # a rollback also invalidates cached answers
    with pytest.raises(RollbackError, match="no earlier index"):
        world.indexer().rollback()
    # The next rebuild prunes the index we rolled back from: it is newer than the live one.
    third = world.indexer().rebuild(str(make_bundle("m3", seed=2).path)).index
    assert world.index_names() == sorted([first, third])


def test_rollback_to_a_named_index_and_refusals(world, make_bundle):
    with pytest.raises(NoLiveIndexError):
        world.indexer().rollback()
    first = world.indexer().rebuild(str(make_bundle("m1").path)).index
    with pytest.raises(RollbackError):
        world.indexer().rollback()
    world.indexer().rebuild(str(make_bundle("m2", seed=1).path))
    world.indexer().rebuild(str(make_bundle("m3", seed=2).path))
    with pytest.raises(RollbackError, match="not an earlier"):
        world.indexer().rollback("movies-nope")
    assert world.indexer().rollback(first).alias_after == first
    assert world.live() == first


def test_incremental_upsert_and_delete(world, make_bundle):
    bundle = make_bundle("m1")
    world.indexer().rebuild(str(bundle.path))
    changed = bundle.catalog[4]
    delta = {
        "upsert": [
            {"movieId": 900001, "title": "Brand New Night Story (2024)", "genres": "Drama|Sci-Fi", "popularity": 7},
            {"movieId": changed.movie_id, "title": "Renamed Dark City (1999)", "genres": ["Thriller"]},
        ],
        "delete": [bundle.catalog[6].movie_id, 777777],
    }
    summary = world.indexer().update(parse_delta_json(json.dumps(delta), "d1.json"), str(bundle.path))

    assert world.count() == N_MOVIES  # one new, one deleted
    assert world.generation() == 2
    assert summary.details == {**summary.details, "new": 1, "changed": 1, "deleted": 1, "delete_not_found": 1}
    assert world.movie(bundle.catalog[6].movie_id) is None
    new_movie, new_vector = world.movie(900001)
    assert (new_movie.title, new_movie.year, new_movie.genres, new_movie.popularity) == (
        "Brand New Night Story", 2024, ("Drama", "Sci-Fi"), 7.0)
    expected = bundle.item_tower.encode([new_movie])[0]  # embedded with the bundle's item tower, in numpy
    np.testing.assert_allclose(new_vector, expected, atol=1e-6)
    assert world.search(probe_vector(expected, "innerproduct"))[0] == 900001
    renamed, vector = world.movie(changed.movie_id)
    assert (renamed.title, renamed.year, renamed.genres) == ("Renamed Dark City", 1999, ("Thriller",))
    assert renamed.popularity == changed.popularity  # omitted in the delta: kept
    np.testing.assert_allclose(vector, bundle.item_tower.encode([renamed])[0], atol=1e-6)

    # Re-applying the same delta is harmless (a rerun after a crash finishes the work).
    world.indexer().update(parse_delta_json(json.dumps(delta), "d1.json"), str(bundle.path))
    assert world.count() == N_MOVIES


def test_malformed_delta_is_rejected_before_any_write(world, make_bundle, tmp_path):
    bundle = make_bundle("m1")
    world.indexer().rebuild(str(bundle.path))
    before = (world.live(), world.count(), world.generation())
    bad = tmp_path / "bad.csv"
    bad.write_text("movieId,title,genres,popularity\n900001,Fine (2020),Drama,\nabc,Broken,Drama,\n"
                   "900002,,Comedy,\n900003,Negative (2001),Drama,-4\n", encoding="utf-8")
    with pytest.raises(DeltaError) as caught:
        world.indexer().update(str(bad), str(bundle.path))
    assert [p.split(":")[0] for p in caught.value.problems] == ["line 3", "line 4 (movieId 900002)",
                                                               "line 5 (movieId 900003)"]
    assert (world.live(), world.count(), world.generation()) == before
    assert world.movie(900001) is None


def test_update_needs_a_live_index_and_the_live_model(world, make_bundle):
    delta = parse_delta_json('{"delete": [1]}', "d.json")
    with pytest.raises(NoLiveIndexError, match="full rebuild first"):
        world.indexer().update(delta, str(make_bundle("m1").path))
    world.indexer().rebuild(str(make_bundle("m1").path))
    with pytest.raises(IndexerError, match="holds vectors of model m1"):
        world.indexer().update(delta, str(make_bundle("m2", seed=1).path))
    assert world.count() == N_MOVIES


def test_crash_between_load_and_swap_leaves_the_alias_on_the_old_index(world, make_bundle):
    first = world.indexer().rebuild(str(make_bundle("m1").path)).index
    second_bundle = make_bundle("m2", seed=1)
    with pytest.raises(SimulatedCrash):
        world.indexer(on_step=crash_at("verified")).rebuild(str(second_bundle.path))

    assert world.live() == first  # the alias never moved
    assert len(world.index_names()) == 2  # the finished but never swapped index is left behind
    assert world.count() == N_MOVIES  # and queries still answer from the old index
    old = make_bundle("m1")
    assert world.search(probe_vector(old.movie_vectors[3], "innerproduct"))[0] == old.catalog[3].movie_id
    assert world.generation() == 1
    status = world.indexer().status()
    assert status["rollback_candidates"] == []  # an unverified leftover is never a rollback target

    summary = world.indexer().rebuild(str(second_bundle.path))  # a rerun finishes the work
    assert world.live() == summary.index != first
    assert world.index_names() == sorted([first, summary.index])  # the leftover was deleted
    assert world.generation() == 2


def test_crash_right_after_create_then_rerun(world, make_bundle):
    with pytest.raises(SimulatedCrash):
        world.indexer(on_step=crash_at("created")).rebuild(str(make_bundle("m1").path))
    assert world.live() is None
    summary = world.indexer().rebuild(str(make_bundle("m1").path))
    assert world.live() == summary.index and world.count() == N_MOVIES


def test_rejected_document_fails_the_run_naming_it(world, make_bundle, tmp_path):
    first = world.indexer().rebuild(str(make_bundle("m1").path)).index
    catalog = synthetic_catalog(40, seed=3)
    catalog[7] = replace(catalog[7], year=10_000_000_000)  # out of range of the integer field
    user, item = synthetic_towers(catalog, dimension=16, seed=3)
    bad = write_bundle(tmp_path / "bad", model_version="bad", user_tower=user, item_tower=item, catalog=catalog,
                       movie_vectors=item.encode(catalog))
    with pytest.raises(BulkLoadError) as caught:
        world.indexer().rebuild(str(bad.path))

    failures = caught.value.failures
    assert [f.doc_id for f in failures] == [str(catalog[7].movie_id)]
    assert failures[0].status == 400 and "year" in failures[0].reason
    assert f"movie {catalog[7].movie_id}" in str(caught.value)
    assert world.live() == first and world.index_names() == [first]  # the failed index was removed
    assert world.generation() == 1


def test_a_vector_that_is_not_finite_is_refused_by_id(world, make_bundle, tmp_path):
    world.indexer().rebuild(str(make_bundle("m1").path))
    catalog = synthetic_catalog(30, seed=4)
    user, item = synthetic_towers(catalog, dimension=16, seed=4)
    vectors = item.encode(catalog)
    vectors[12, 3] = np.nan
    bad = write_bundle(tmp_path / "nan", model_version="nan", user_tower=user, item_tower=item, catalog=catalog,
                       movie_vectors=vectors)
    with pytest.raises(BulkLoadError) as caught:
        world.indexer().rebuild(str(bad.path))
    assert [f.doc_id for f in caught.value.failures] == [str(catalog[12].movie_id)]


def test_lock_held_by_another_run(world, make_bundle):
    bundle = make_bundle("m1")
    other = world.indexer().lock("rebuild")
    other.acquire()
    try:
        with pytest.raises(LockHeldError) as caught:
            world.indexer().rebuild(str(bundle.path))
        assert other.owner in str(caught.value) and "another indexer run" in str(caught.value)
        assert world.live() is None and world.index_names() == []  # nothing was written
        with pytest.raises(LockHeldError):
            world.indexer().update(parse_delta_json('{"delete": [1]}', "d.json"), str(bundle.path))
    finally:
        other.release()
    assert world.indexer().rebuild(str(bundle.path)).documents == N_MOVIES


def test_lock_wait_then_run(world, make_bundle):
    """A second run configured to wait takes the lock once the first run's lock expires."""
    bundle = make_bundle("m1")
    stale = world.indexer(lock_ttl=1.0).lock("crashed")
    stale.acquire()  # never released: the run "crashed"
    summary = world.indexer(lock_wait=10.0).rebuild(str(bundle.path))
    assert summary.documents == N_MOVIES
