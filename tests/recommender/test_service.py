"""The service on real adapters: cache keys and invalidation, movies added after training, the
embedded store as NumpyIndex sees it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.bundle import Bundle
from core.embedded_store import EmbeddedStore
from core.features import Movie
from recommender.adapters.memory_cache import MemoryCache
from recommender.adapters.numpy_index import NumpyIndex
from recommender.adapters.redis_cache import GENERATION_KEY, RedisCache
from recommender.answers import HistoryItem, RecommendationQuery
from recommender.service import RecommendationService

QUERY = RecommendationQuery(history=[HistoryItem(12, 4.0), HistoryItem(40, 5.0)], k=5)


def publish(store: EmbeddedStore, name: str, catalog: list[Movie], vectors: np.ndarray, model: str) -> None:
    store.write_index(name, catalog, vectors, model)
    store.publish(name)


def service(
    bundle: Bundle, index: NumpyIndex, cache: MemoryCache | RedisCache | None = None
) -> RecommendationService:
    return RecommendationService(
        model_version=bundle.model_version,
        user_tower=bundle.user_tower,
        index=index,
        cache=cache if cache is not None else MemoryCache(),
    )


def test_a_new_catalog_generation_misses_the_cache(bundle: Bundle, tmp_path: Path) -> None:
    # GIVEN the embedded store at generation 1 and an answered request
    store = EmbeddedStore(tmp_path / "store")
    publish(store, "one", bundle.catalog, bundle.movie_vectors, bundle.model_version)
    svc = service(bundle, NumpyIndex.from_bundle(bundle, store))
    first = svc.recommend(QUERY)
    assert svc.recommend(QUERY).cached
    # WHEN the indexer publishes a catalog without the first answer's top movie (generation 2)
    top = first.items[0].movie.movie_id
    keep = [i for i, m in enumerate(bundle.catalog) if m.movie_id != top]
    publish(store, "two", [bundle.catalog[i] for i in keep], bundle.movie_vectors[keep], bundle.model_version)
    # THEN the same request is computed again, on the new catalog
    again = svc.recommend(QUERY)
    assert not again.cached
    assert top not in [h.movie.movie_id for h in again.items]
    assert [h.movie.movie_id for h in again.items[:4]] == [h.movie.movie_id for h in first.items[1:5]]


def test_the_redis_generation_is_part_of_the_key(bundle: Bundle, redis_url: str) -> None:
    import redis

    cache = RedisCache(redis_url)
    svc = service(bundle, NumpyIndex.from_bundle(bundle), cache)
    svc.recommend(QUERY)
    assert svc.recommend(QUERY).cached
    keys = [k.decode() for k in redis.Redis.from_url(redis_url).keys("recs:cache:*")]
    assert len(keys) == 1 and keys[0].startswith(f"recs:cache:{bundle.model_version}:0:")
    redis.Redis.from_url(redis_url).incr(GENERATION_KEY)  # what the indexer does after a swap
    assert not svc.recommend(QUERY).cached
    assert svc.recommend(QUERY).cached


def test_a_movie_added_after_training_counts_as_history(bundle: Bundle, tmp_path: Path) -> None:
    # GIVEN a catalog with a movie the user tower has no embedding for (added by an indexer delta)
    store = EmbeddedStore(tmp_path / "store")
    new = Movie(5000, "Brand New", 2024, ("Drama",), 0.0)
    vectors = np.vstack([bundle.movie_vectors, bundle.item_tower.encode([new])])
    publish(store, "delta", [*bundle.catalog, new], vectors, bundle.model_version)
    assert not bundle.user_tower.knows(5000)
    svc = service(bundle, NumpyIndex.from_bundle(bundle, store))
    # WHEN it is the whole history
    result = svc.recommend(RecommendationQuery(history=[HistoryItem(5000, 5.0)], k=5))
    # THEN it is used (out-of-vocabulary embedding), not ignored, and it is excluded as seen
    assert result.ignored_movie_ids == []
    assert result.strategy == "personalized"
    assert result.history_used == 1
    assert 5000 not in [h.movie.movie_id for h in result.items]
    assert svc.movie(5000) == new


def test_the_store_of_another_model_is_not_served(bundle: Bundle, tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "store")
    publish(store, "old", bundle.catalog[:10], bundle.movie_vectors[:10], "some-older-model")
    index = NumpyIndex.from_bundle(bundle, store)
    status = index.status()
    assert status.info["source"] == "bundle"
    assert status.info["movies"] == len(bundle.catalog)
    assert "some-older-model" in status.detail


def test_an_unreadable_store_keeps_the_last_good_snapshot(bundle: Bundle, tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "store")
    publish(store, "good", bundle.catalog[:50], bundle.movie_vectors[:50], bundle.model_version)
    index = NumpyIndex.from_bundle(bundle, store)
    assert index.status().info["movies"] == 50
    # a broken index gets published (its vectors file is garbage)
    store.write_index("broken", bundle.catalog[:60], bundle.movie_vectors[:60], bundle.model_version)
    (tmp_path / "store" / "indices" / "broken" / "vectors.npy").write_bytes(b"not numpy")
    store.publish("broken")
    status = index.status()
    assert status.ok
    assert status.info["source"] == "store:good" and status.info["movies"] == 50
    assert "unreadable" in status.detail


def test_the_request_fingerprint_ignores_filter_order_but_not_ratings() -> None:
    from recommender.ports import Filters

    a = RecommendationQuery(history=[HistoryItem(1, 4.0)], filters=Filters(genres_any=("Drama", "Comedy")))
    b = RecommendationQuery(history=[HistoryItem(1, 4.0)], filters=Filters(genres_any=("Comedy", "Drama")))
    c = RecommendationQuery(history=[HistoryItem(1, 3.5)], filters=Filters(genres_any=("Drama", "Comedy")))
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_an_unreadable_cache_entry_is_recomputed(bundle: Bundle) -> None:
    cache = MemoryCache()
    svc = service(bundle, NumpyIndex.from_bundle(bundle), cache)
    key = svc.cache_key(0, QUERY.fingerprint())
    cache.set(key, b"{not json", 60)
    result = svc.recommend(QUERY)
    assert not result.cached and len(result.items) == 5
    assert json.loads(cache.get(key) or b"")["model_version"] == bundle.model_version


@pytest.mark.parametrize("k", [1, 100])
def test_k_bounds(bundle: Bundle, k: int) -> None:
    svc = service(bundle, NumpyIndex.from_bundle(bundle))
    assert len(svc.recommend(RecommendationQuery(history=[HistoryItem(3)], k=k)).items) == k


def test_the_bundle_path_reads_catalog_rows_lazily_and_answers_the_same(bundle: Bundle) -> None:
    from recommender.adapters.numpy_snapshot import RawCatalog
    from recommender.ports import Filters

    lazy = NumpyIndex.from_bundle(bundle)
    eager = NumpyIndex.from_arrays(bundle.catalog, bundle.movie_vectors, bundle.model_version)
    query = bundle.user_tower.encode([(12, 4.0), (40, None)])
    for flt in (Filters(), Filters(genres_any=("Drama",), year_min=1950), Filters(genres_none=("Comedy",))):
        assert lazy.search(query, 20, flt, {1, 2, 3}) == eager.search(query, 20, flt, {1, 2, 3})
        assert lazy.popular(20, flt, {5}) == eager.popular(20, flt, {5})
    assert lazy.get(12) == eager.get(12)
    raw = RawCatalog([{"movie_id": 1, "title": "A", "year": None, "genres": ["Drama"]}], "catalog.json")
    assert raw[0] == Movie(1, "A", None, ("Drama",), 0.0) and list(raw) == [raw[0]] and raw[0:1] == [raw[0]]


def test_a_malformed_catalog_row_is_a_bundle_error() -> None:
    from core.errors import BundleError
    from recommender.adapters.numpy_snapshot import RawCatalog

    with pytest.raises(BundleError, match=r"catalog\.json"):
        RawCatalog([{"title": "no id"}], "catalog.json").columns()
    with pytest.raises(BundleError, match="list of objects"):
        RawCatalog({"movie_id": 1}, "catalog.json")
