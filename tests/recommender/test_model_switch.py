"""A user tower is only ever compared with movie vectors of its own model.

After a retrain the indexer moves the alias to the new model's vectors. With ``RECS_BUNDLE`` naming a
bundle ROOT (ending in ``/``) the API follows the index to ``<root><model>/`` without a restart; with
one fixed bundle of another model it refuses to mix (503 ``model_mismatch`` naming both versions, or
the flagged popularity fallback) and ``/health`` says so. Cached answers never cross models.

Real parts throughout: the indexer's own rebuild into the embedded store and into OpenSearch (osmem
behind the k-NN emulation), bundles in S3 (moto), the Lambda handler.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from moto import mock_aws

from core.aws import opensearch_client
from core.bundle import MANIFEST, USER_TOWER, Bundle
from indexer.jobs import Indexer
from indexer.reporting import Reporter
from indexer.settings import IndexerSettings
from recommender import composition
from recommender.adapters.memory_cache import MemoryCache
from recommender.adapters.numpy_index import NumpyIndex
from recommender.adapters.opensearch_index import OpenSearchIndex
from recommender.answers import HistoryItem, RecommendationQuery
from recommender.errors import ModelMismatchError
from recommender.handler import lambda_handler, openapi_document
from recommender.ports import VectorIndex
from recommender.service import RecommendationService
from recommender.settings import ServiceSettings
from recs.local.synthetic import write_synthetic_bundle
from tests.recommender.conftest import load_event
from tests.support.opensearch_fixtures import create_movie_index

N_MOVIES = 120
DIMENSION = 16  # the same for every model: a mix-up would not even fail on the shapes
HISTORY = [{"movie_id": 3, "rating": 5.0}, {"movie_id": 17, "rating": 4.0}, {"movie_id": 42}]
SEEN = {3, 17, 42}
K = 5
BUCKET = "recs-bundles"


# -- helpers ----------------------------------------------------------------------------------


def write_model(folder: Path, version: str, seed: int) -> Bundle:
    return write_synthetic_bundle(folder, n_movies=N_MOVIES, seed=seed, dimension=DIMENSION, model_version=version)


def reference(tower_of: Bundle, vectors_of: Bundle) -> list[int]:
    """Brute-force top K of ``tower_of``'s user vector over ``vectors_of``'s movie vectors, seen left out."""
    vector = tower_of.user_tower.encode([(h["movie_id"], h.get("rating")) for h in HISTORY])
    scores = vectors_of.movie_vectors @ vector
    rows = [i for i, m in enumerate(vectors_of.catalog) if m.movie_id not in SEEN]
    rows.sort(key=lambda i: (-float(scores[i]), vectors_of.catalog[i].movie_id))
    return [vectors_of.catalog[i].movie_id for i in rows[:K]]


def popular_of(bundle: Bundle) -> list[int]:
    movies = sorted((m for m in bundle.catalog if m.movie_id not in SEEN), key=lambda m: (-m.popularity, m.movie_id))
    return [m.movie_id for m in movies[:K]]


def call(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = lambda_handler(event, None)
    return int(response["statusCode"]), json.loads(response["body"])


def recommend() -> tuple[int, dict[str, Any]]:
    return call(load_event("post_recommendations", body={"history": HISTORY, "k": K}))


def ids(answer: dict[str, Any]) -> list[int]:
    return [int(item["movie_id"]) for item in answer["items"]]


def quiet_indexer(**settings: Any) -> Indexer:
    base = {"probes": 3, "keep": 2, "backoff_seconds": 0.01, "max_retries": 2, "lock_ttl": 30.0, "replicas": 0}
    reporter = Reporter(stream=io.StringIO(), out=io.StringIO(), tty=False)
    return Indexer(IndexerSettings.from_env({**base, **settings}, env={}), reporter)


def serve(**settings: Any) -> composition.Container:
    composition.configure(ServiceSettings.from_env(env={}, **settings))
    return composition.get_container()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Bundle]:
    """Two models of the same shape under one bundle root (``root/m1``, ``root/m2``), and ``m3`` elsewhere."""
    base = tmp_path_factory.mktemp("models")
    found = {
        "m1": write_model(base / "root" / "m1", "m1", seed=1),
        "m2": write_model(base / "root" / "m2", "m2", seed=2),
        "m3": write_model(base / "elsewhere" / "m3", "m3", seed=3),
    }
    # the test would prove nothing if the old tower against the new vectors gave the same answer
    assert reference(found["m1"], found["m2"]) != reference(found["m2"], found["m2"])
    assert reference(found["m1"], found["m1"]) != reference(found["m2"], found["m2"])
    return found


@pytest.fixture
def root(models: dict[str, Bundle]) -> Path:
    return models["m1"].path.parent


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    composition.reset()


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """S3 downloads (the indexer's and the API's default cache) go under this test's directory."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


@pytest.fixture
def s3(models: dict[str, Bundle], private_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto S3 with ``bundles/m1/`` and ``bundles/m2/`` uploaded as README "Deploy to AWS" says (manifest last)."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        for version in ("m1", "m2"):
            folder = models[version].path
            for path in sorted(folder.iterdir(), key=lambda p: p.name == MANIFEST):
                client.upload_file(str(path), BUCKET, f"bundles/{version}/{path.name}")
        yield client


# -- the embedded store -------------------------------------------------------------------------


def test_a_bundle_root_follows_the_embedded_store_to_a_new_model(
    models: dict[str, Bundle], root: Path, tmp_path: Path
) -> None:
    # GIVEN the store indexed with model m1 by the indexer, and the API on the bundle root
    store = str(tmp_path / "store")
    quiet_indexer(embedded_store=store).rebuild(str(models["m1"].path))
    serve(bundle=f"{root}/", embedded_store=store)
    status, before = recommend()
    assert status == 200 and before["model_version"] == "m1" and before["strategy"] == "personalized"
    assert ids(before) == reference(models["m1"], models["m1"])
    assert recommend()[1]["cached"] is True
    # WHEN a retrain's bundle m2 is indexed (no restart, no new settings)
    quiet_indexer(embedded_store=store).rebuild(str(models["m2"].path))
    # THEN the same process answers with model m2's tower against m2's vectors, never the cached m1 answer
    status, after = recommend()
    assert status == 200 and after["model_version"] == "m2" and after["cached"] is False
    assert ids(after) == reference(models["m2"], models["m2"])
    status, health = call(load_event("get_health"))
    assert status == 200 and health["status"] == "ok"
    assert health["model_version"] == "m2" and health["index"]["info"]["model_version"] == "m2"


def test_a_fixed_bundle_over_a_store_of_another_model_serves_its_own_vectors(
    models: dict[str, Bundle], tmp_path: Path
) -> None:
    # GIVEN a store of model m2 and the API on the fixed bundle m1 (the local default layout)
    store = str(tmp_path / "store")
    quiet_indexer(embedded_store=store).rebuild(str(models["m2"].path))
    serve(bundle=str(models["m1"].path), embedded_store=store)
    # THEN it answers with m1's tower against m1's own vectors (never m2's), and the health says why
    status, answer = recommend()
    assert status == 200 and answer["model_version"] == "m1"
    assert ids(answer) == reference(models["m1"], models["m1"])
    status, health = call(load_event("get_health"))
    assert status == 200 and health["index"]["info"]["source"] == "bundle"
    assert "holds model m2" in health["index"]["detail"] and "m1" in health["index"]["detail"]


def test_the_bundle_of_the_new_model_missing_from_the_root_is_a_mismatch_until_it_arrives(
    models: dict[str, Bundle], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the API on a root holding m1 only, and a store indexed with m1
    monkeypatch.setattr(composition, "RETRY_BUILD_AFTER_SECONDS", 0.0)
    root = tmp_path / "bundles"
    shutil.copytree(models["m1"].path, root / "m1")
    store = str(tmp_path / "store")
    quiet_indexer(embedded_store=store).rebuild(str(root / "m1"))
    serve(bundle=f"{root}/", embedded_store=store)
    assert recommend()[1]["model_version"] == "m1"
    # WHEN the store moves to model m3, whose bundle is not under the root
    quiet_indexer(embedded_store=store).rebuild(str(models["m3"].path))
    # THEN nothing mixes: 503 naming both models (the embedded index has no popularity fallback)
    status, body = recommend()
    assert status == 503 and body["error"] == "model_mismatch"
    assert (body["bundle_model_version"], body["index_model_version"]) == ("m1", "m3")
    # AND the OpenAPI document describes every field of that body
    documented = json.loads(openapi_document())["components"]["schemas"]["ErrorResponse"]["properties"]
    assert set(body) <= set(documented)
    status, health = call(load_event("get_health"))
    assert status == 503 and health["status"] == "unavailable" and health["index"]["ok"] is False
    assert health["model_version"] == "m1" and health["index"]["info"]["model_version"] == "m3"
    # AND once the bundle is uploaded, the next request serves it
    shutil.copytree(models["m3"].path, root / "m3")
    status, after = recommend()
    assert status == 200 and after["model_version"] == "m3"
    assert ids(after) == reference(models["m3"], models["m3"])


def test_a_directory_of_bundles_without_the_slash_is_refused_with_the_rule(root: Path, tmp_path: Path) -> None:
    with pytest.raises(composition.CompositionError, match="end RECS_BUNDLE with '/'"):
        serve(bundle=str(root), embedded_store=str(tmp_path / "store"))
    assert ServiceSettings.from_env(env={}, bundle="s3://b/bundles/").bundle_is_root
    assert not ServiceSettings.from_env(env={}, bundle="s3://b/bundles/m1").bundle_is_root


# -- OpenSearch ---------------------------------------------------------------------------------


@pytest.mark.opensearch
def test_the_function_follows_a_retrain_in_s3_without_a_redeploy(
    models: dict[str, Bundle], s3: Any, opensearch_url: str, redis_url: str, unique_name: Callable[[str], str],
    private_tmp: Path,
) -> None:
    # GIVEN the deployed set-up: bundles in S3, the indexer rebuilding OpenSearch from an uploaded manifest
    # (and bumping the generation in Redis), the function on the bundle ROOT s3://<bucket>/bundles/ with
    # the model check trusted for an hour, so only the check of the search's own answer can notice the swap
    alias = unique_name("movies")
    indexer = {"opensearch_url": opensearch_url, "alias": alias, "redis_url": redis_url,
               "embedded_store": str(private_tmp / "unused")}
    quiet_indexer(**indexer).auto(BUCKET, "bundles/m1/manifest.json")
    cache_dir = private_tmp / "function-cache"
    serve(bundle=f"s3://{BUCKET}/bundles/", opensearch_url=opensearch_url, opensearch_alias=alias,
          redis_url=redis_url, bundle_cache_dir=str(cache_dir), model_check_seconds=3600)
    status, before = recommend()
    assert status == 200 and before["model_version"] == "m1" and before["fallback"] is None
    assert ids(before) == reference(models["m1"], models["m1"])
    assert recommend()[1]["cached"] is True
    # WHEN a retrain uploads bundles/m2/ and the indexer swaps the alias to m2's vectors
    quiet_indexer(**indexer).auto(BUCKET, "bundles/m2/manifest.json")
    # THEN the warm function answers with m2's user tower, computed afresh (no cached m1 answer)
    status, after = recommend()
    assert status == 200 and after["model_version"] == "m2" and after["cached"] is False
    assert ids(after) == reference(models["m2"], models["m2"])
    status, health = call(load_event("get_health"))
    assert status == 200 and health["status"] == "ok" and health["model_version"] == "m2"
    # it fetched only the manifest and the user tower of the new model
    (m2_dir,) = [p for p in cache_dir.iterdir() if p.name.startswith("m2-")]
    assert sorted(p.name for p in m2_dir.iterdir()) == [MANIFEST, USER_TOWER]
    # similar movies come from the index alone and name its model
    status, similar = call(load_event("get_similar"))
    assert status == 200 and similar["model_version"] == "m2"


@pytest.mark.opensearch
@pytest.mark.parametrize("fallback", ["none", "popular"])
def test_a_fixed_bundle_never_serves_an_index_of_another_model(
    fallback: str, models: dict[str, Bundle], opensearch_url: str, unique_name: Callable[[str], str]
) -> None:
    # GIVEN the function pinned to bundle m1 on an index of m1, without Redis (the generation stays 0, so
    # only the model in the key separates cached answers), with an answer cached
    alias = unique_name("movies")
    m1, m2 = models["m1"], models["m2"]
    create_movie_index(opensearch_url, unique_name("movies-m1"), alias, m1.catalog, m1.movie_vectors,
                       model_version="m1")
    serve(bundle=str(m1.path), opensearch_url=opensearch_url, opensearch_alias=alias, index_fallback=fallback,
          model_check_seconds=0)
    status, before = recommend()
    assert status == 200 and ids(before) == reference(m1, m1)
    assert recommend()[1]["cached"] is True
    # WHEN the alias moves to an index of model m2 (a retrain indexed, the function not redeployed)
    create_movie_index(opensearch_url, unique_name("movies-m2"), alias, m2.catalog, m2.movie_vectors,
                       model_version="m2")
    status, body = recommend()
    # THEN m1's tower is never run against m2's vectors, and the cached m1 answer is not served either
    if fallback == "none":
        assert status == 503 and body["error"] == "model_mismatch"
        assert (body["bundle_model_version"], body["index_model_version"]) == ("m1", "m2")
        assert "m1" in body["message"] and "m2" in body["message"]
    else:
        assert status == 200 and body["fallback"] == "popular" and body["strategy"] == "popular"
        assert body["cached"] is False and ids(body) == popular_of(m2)
        assert recommend()[1]["cached"] is False  # a fallback is never cached
    # AND /health says so, naming both versions
    status, health = call(load_event("get_health"))
    assert health["index"]["ok"] is False
    assert health["model_version"] == "m1" and health["index"]["info"]["model_version"] == "m2"
    assert health["index"]["info"]["serving_model_version"] == "m1"
    if fallback == "none":
        assert status == 503 and health["status"] == "unavailable"
    else:
        assert status == 200 and health["status"] == "degraded"
    # AND when the alias is back on m1 (rolled back), personalized answers return
    create_movie_index(opensearch_url, unique_name("movies-m1b"), alias, m1.catalog, m1.movie_vectors,
                       model_version="m1")
    status, back = recommend()
    assert status == 200 and back["fallback"] is None and ids(back) == reference(m1, m1)


# -- the port -----------------------------------------------------------------------------------


@pytest.fixture(params=["numpy", pytest.param("opensearch", marks=pytest.mark.opensearch)])
def index_of_m1(request: pytest.FixtureRequest, models: dict[str, Bundle]) -> VectorIndex:
    m1 = models["m1"]
    if request.param == "numpy":
        return NumpyIndex.from_arrays(m1.catalog, m1.movie_vectors, "m1")
    url: str = request.getfixturevalue("opensearch_url")
    alias = request.getfixturevalue("unique_name")("movies")
    create_movie_index(url, f"{alias}-m1", alias, m1.catalog, m1.movie_vectors, model_version="m1")
    return OpenSearchIndex(opensearch_client(url, timeout_seconds=10), alias)


def test_the_index_says_its_model_and_checks_the_one_a_search_expects(index_of_m1: VectorIndex) -> None:
    assert index_of_m1.model_version() == "m1"
    query = np.ones(DIMENSION, dtype=np.float32)
    assert index_of_m1.search(query, 3, model_version="m1") == index_of_m1.search(query, 3)
    assert index_of_m1.vector(5, model_version="m1") is not None
    with pytest.raises(ModelMismatchError) as raised:
        index_of_m1.search(query, 3, model_version="m0")
    assert (raised.value.serving, raised.value.index) == ("m0", "m1")
    with pytest.raises(ModelMismatchError):
        index_of_m1.vector(5, model_version="m0")


def test_a_cached_answer_of_another_model_is_never_returned(models: dict[str, Bundle]) -> None:
    # GIVEN an entry under this model's key whose answer is another model's (a stale or foreign writer)
    m1, m2 = models["m1"], models["m2"]
    cache = MemoryCache()
    service = RecommendationService(model_version="m2", user_tower=m2.user_tower, cache=cache,
                                    index=NumpyIndex.from_arrays(m2.catalog, m2.movie_vectors, "m2"))
    query = RecommendationQuery(history=[HistoryItem(h["movie_id"], h.get("rating")) for h in HISTORY], k=K)
    stale = RecommendationService(model_version="m1", user_tower=m1.user_tower, cache=MemoryCache(),
                                  index=NumpyIndex.from_arrays(m1.catalog, m1.movie_vectors, "m1")).recommend(query)
    cache.set(service.cache_key(0, query.fingerprint()), stale.to_cache(), 60)
    # THEN it is ignored and the answer is computed with m2
    answer = service.recommend(query)
    assert answer.model_version == "m2" and not answer.cached
    assert [h.movie.movie_id for h in answer.items] == reference(m2, m2)
