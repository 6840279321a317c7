"""Settings from RECS_* variables (explicit values win), index names, and the mapping a rebuild creates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.aws import signing_region, sigv4_service_for
from core.index_schema import IndexParams, index_body, index_name
from indexer.errors import SettingsError
from indexer.settings import IndexerSettings
from tests.support.opensearch_fixtures import movie_index_body


def test_defaults_need_no_environment():
    s = IndexerSettings.from_env(env={})
    assert (s.bundle_location, s.embedded_store, s.opensearch_url, s.alias, s.keep) == (
        "artifacts/bundle", "artifacts/index", None, "movies", 2)
    assert s.index == IndexParams()
    assert not s.uses_opensearch and s.lock_wait == 0 and s.probes == 3


def test_environment_is_read_and_explicit_values_win():
    env = {
        "RECS_BUNDLE": "s3://b/bundles/v1", "RECS_OPENSEARCH_URL": "https://search-x.eu-west-1.es.amazonaws.com",
        "RECS_OPENSEARCH_ALIAS": "films", "RECS_INDEX_KEEP": "5", "RECS_INDEX_ENGINE": "lucene",
        "RECS_INDEX_M": "24", "RECS_INDEX_REPLICAS": "0", "RECS_INDEX_LOCK_WAIT_SECONDS": "900",
        "RECS_S3_BUCKET": "bkt", "RECS_S3_KEY": "deltas/a.csv", "AWS_REGION": "eu-west-1",
    }
    s = IndexerSettings.from_env({"keep": 1, "alias": None}, env=env)
    assert (s.bundle, s.alias, s.keep, s.lock_wait, s.s3_bucket, s.s3_key) == (
        "s3://b/bundles/v1", "films", 1, 900.0, "bkt", "deltas/a.csv")
    assert (s.index.engine, s.index.m, s.index.replicas) == ("lucene", 24, 0)
    assert s.uses_opensearch and s.aws_region == "eu-west-1"
    assert s.with_overrides(m=32, keep=None).index.m == 32
    assert s.with_overrides(m=32).keep == 1


@pytest.mark.parametrize(("env", "message"), [
    ({"RECS_INDEX_M": "many"}, "RECS_INDEX_M: 'many' is not an integer"),
    ({"RECS_INDEX_ENGINE": "nmslib"}, "RECS_INDEX_ENGINE: must be one of faiss, lucene"),
    ({"RECS_INDEX_SPACE_TYPE": "dot"}, "RECS_INDEX_SPACE_TYPE"),
    ({"RECS_OPENSEARCH_ALIAS": "Movies"}, "RECS_OPENSEARCH_ALIAS: 'Movies'"),
    ({"RECS_INDEX_KEEP": "-1"}, "RECS_INDEX_KEEP"),
    ({"RECS_INDEX_LOCK_TTL_SECONDS": "0"}, "RECS_INDEX_LOCK_TTL_SECONDS"),
    ({"RECS_OPENSEARCH_URL": "localhost:9200"}, "must start with http:// or https://"),
    ({"RECS_REDIS_URL": "localhost:6379"}, "RECS_REDIS_URL"),
    ({"RECS_OPENSEARCH_SERVICE": "opensearch"}, "RECS_OPENSEARCH_SERVICE"),
])
def test_invalid_settings_name_the_variable(env, message):
    with pytest.raises(SettingsError, match=message):
        IndexerSettings.from_env(env=env)


def test_sigv4_only_for_aws_hosts_and_the_region_from_the_host():
    assert sigv4_service_for("http://localhost:9200") is None
    assert sigv4_service_for("https://search-d-abc.us-east-2.es.amazonaws.com") == "es"
    assert sigv4_service_for("https://abc.eu-west-1.aoss.amazonaws.com") == "aoss"
    assert sigv4_service_for("https://proxy.internal", "es") == "es"
    assert signing_region("https://search-d-abc.us-east-2.es.amazonaws.com") == "us-east-2"
    assert signing_region("https://search-d.us-east-2.es.amazonaws.com", "eu-north-1") == "eu-north-1"


def test_index_names_are_versioned_safe_and_sortable():
    moment = datetime(2025, 3, 1, 10, 15, 2, 123456, tzinfo=UTC)
    assert index_name("movies", "Two-Tower v3", moment) == "movies-two-tower-v3-20250301t101502.123z"
    assert index_name("movies", "__", moment) == "movies-model-20250301t101502.123z"
    later = datetime(2025, 3, 1, 10, 15, 2, 124000, tzinfo=UTC)
    assert index_name("movies", "x", moment) < index_name("movies", "x", later)


def test_mapping_is_the_documented_one():
    params = IndexParams(engine="faiss", m=16, ef_construction=128, ef_search=100, shards=1, replicas=0)
    ours = index_body(dimension=32, model_version="v1", alias="movies", space_type="innerproduct", params=params)
    documented = movie_index_body(32, model_version="v1")  # the test harness's copy of docs/architecture.md
    assert ours["mappings"]["properties"] == documented["mappings"]["properties"]
    assert {k: v for k, v in ours["settings"]["index"].items() if k != "refresh_interval"} == \
        documented["settings"]["index"]
    assert ours["settings"]["index"]["refresh_interval"] == "-1"  # off during the load
    assert ours["mappings"]["_meta"]["model_version"] == "v1" and ours["mappings"]["_meta"]["alias"] == "movies"


@pytest.mark.opensearch
def test_a_rebuilt_index_has_the_mapping_and_settings_and_refresh_restored(opensearch_world, make_bundle):
    world = opensearch_world
    summary = world.indexer(engine="faiss", m=8, ef_construction=64, ef_search=50).rebuild(
        str(make_bundle("m1").path))
    mapping = world.mapping(summary.index)
    embedding = mapping["properties"]["embedding"]
    assert embedding == {**embedding, "type": "knn_vector", "dimension": 16}
    assert embedding["method"] == {**embedding["method"], "name": "hnsw", "space_type": "innerproduct",
                                   "engine": "faiss", "parameters": {"m": 8, "ef_construction": 64}}
    assert mapping["properties"]["title"] == {"type": "text", "fields": {"raw": {"type": "keyword"}}}
    meta = mapping["_meta"]
    assert (meta["model_version"], meta["alias"], meta["created_by"]) == ("m1", world.alias, "recs-indexer")
    assert meta["live_at"]
    settings = world.settings_of(summary.index)
    assert str(settings["knn"]) == "true" and str(settings["knn.algo_param.ef_search"]) == "50"
    assert settings.get("refresh_interval") in (None, "1s")  # -1 only while loading
