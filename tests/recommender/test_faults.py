"""Fault tests: Redis stopped mid-run, OpenSearch unreachable or hanging, a corrupted bundle file."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.bundle import Bundle
from recommender import composition
from recommender.handler import lambda_handler
from tests.recommender.conftest import load_event
from tests.support.knn_emulation import KnnEmulationProxy
from tests.support.opensearch_fixtures import create_movie_index
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
Configure = Callable[..., composition.Container]


def call(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = lambda_handler(event, None)
    return int(response["statusCode"]), json.loads(response["body"])


def recommend(body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    return call(load_event("post_recommendations", **({"body": body} if body is not None else {})))


def test_redis_stopped_mid_run_serves_uncached(configure_service: Configure, redis_server: RedisServer) -> None:
    # GIVEN the API on Redis, with a cached answer
    configure_service(redis_url=redis_server.url, redis_retry_after_seconds=0)
    status, first = recommend()
    assert status == 200 and first["cached"] is False
    assert recommend()[1]["cached"] is True
    # WHEN Redis dies
    redis_server.stop()
    # THEN the same request is still answered, computed again, and /health says the cache is down
    status, during = recommend()
    assert status == 200
    assert during["cached"] is False
    assert during["items"] == first["items"]
    status, health = call(load_event("get_health"))
    assert status == 200
    assert health["status"] == "degraded"
    assert health["cache"]["ok"] is False and health["index"]["ok"] is True
    # AND when Redis comes back (empty), answers are cached again
    redis_server.start()
    assert recommend()[1]["cached"] is False
    assert recommend()[1]["cached"] is True


def test_opensearch_unreachable_is_a_clear_503(configure_service: Configure, unreachable_url: str) -> None:
    # GIVEN the API on an OpenSearch that refuses connections, with no fallback
    configure_service(opensearch_url=unreachable_url, index_fallback="none", opensearch_max_retries=1)
    # WHEN recommendations, a movie or similar movies are asked for
    for event in (load_event("post_recommendations"), load_event("get_movie"), load_event("get_similar")):
        response = lambda_handler(event, None)
        # THEN the answer is a 503 JSON body saying so, with Retry-After
        assert response["statusCode"] == 503
        assert json.loads(response["body"])["error"] == "index_unavailable"
        assert response["multiValueHeaders"]["Retry-After"] == ["5"]
    status, health = call(load_event("get_health"))
    assert status == 503
    assert health["status"] == "unavailable" and health["index"]["ok"] is False


def test_opensearch_unreachable_with_the_popularity_fallback(
    configure_service: Configure, unreachable_url: str, bundle: Bundle
) -> None:
    # GIVEN the API on an unreachable OpenSearch with the (default) popularity fallback
    configure_service(opensearch_url=unreachable_url, opensearch_max_retries=0)
    # WHEN recommendations are asked for, with a filter
    body = {"history": [{"movie_id": 12}], "k": 4, "filters": {"year_min": 1990}}
    status, answer = recommend(body)
    # THEN popular movies of the bundle under the same filters come back, flagged, never cached
    assert status == 200
    assert answer["fallback"] == "popular" and answer["strategy"] == "popular"
    expected = sorted(
        (m for m in bundle.catalog if m.year is not None and m.year >= 1990 and m.movie_id != 12),
        key=lambda m: (-m.popularity, m.movie_id),
    )
    assert [i["movie_id"] for i in answer["items"]] == [m.movie_id for m in expected[:4]]
    assert recommend(body)[1]["cached"] is False
    status, health = call(load_event("get_health"))
    assert status == 200 and health["status"] == "degraded" and health["fallback"] == "popular"


def test_opensearch_unreachable_and_a_fallback_catalog_that_fails_its_check_is_a_503(
    bundle_dir: Path, tmp_path: Path, unreachable_url: str
) -> None:
    # GIVEN the popularity fallback on a bundle whose catalog fails its sha256 check (same size)
    from recommender.settings import ServiceSettings

    copy = tmp_path / "bundle"
    shutil.copytree(bundle_dir, copy)
    catalog = copy / "catalog.json"
    data = bytearray(catalog.read_bytes())
    data[len(data) // 2] = ord("0") if data[len(data) // 2] != ord("0") else ord("1")
    catalog.write_bytes(bytes(data))
    composition.configure(ServiceSettings.from_env(env={}, bundle=str(copy), opensearch_url=unreachable_url,
                                                   opensearch_max_retries=0))
    try:
        # WHEN OpenSearch cannot answer THEN the answer is 503 index_unavailable (no fallback to offer), not a 500
        search = load_event("get_similar", path="/movies/search", resource="/movies/search", pathParameters=None,
                            query={"q": "movie"})
        for event in (load_event("post_recommendations"), search):
            status, body = call(event)
            assert (status, body["error"]) == (503, "index_unavailable"), event["path"]
    finally:
        composition.reset()


@pytest.fixture
def hanging_url() -> Iterator[str]:
    """A port that accepts connections and never answers (a hung OpenSearch)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_a_hanging_opensearch_times_out_into_the_fallback(configure_service: Configure, hanging_url: str) -> None:
    configure_service(opensearch_url=hanging_url, opensearch_timeout_seconds=0.2, opensearch_max_retries=1)
    status, answer = recommend()
    assert status == 200
    assert answer["fallback"] == "popular"


@pytest.mark.opensearch
def test_opensearch_down_mid_run_and_back(
    configure_service: Configure, knn_proxy: KnnEmulationProxy, bundle: Bundle, tmp_path: Path
) -> None:
    # GIVEN the API on OpenSearch holding the bundle's catalog
    create_movie_index(knn_proxy.url, "movies-v1", "movies", bundle.catalog, bundle.movie_vectors,
                       model_version=bundle.model_version)
    configure_service(opensearch_url=knn_proxy.url, opensearch_max_retries=0)
    status, before = recommend()
    assert status == 200 and before["strategy"] == "personalized" and before["fallback"] is None
    # and it answers exactly what the embedded index answers
    composition.configure(None)
    embedded = configure_service()
    assert embedded.service.index.kind == "numpy"
    assert recommend()[1]["items"] == before["items"]
    configure_service(opensearch_url=knn_proxy.url, opensearch_max_retries=0)
    # WHEN OpenSearch goes down
    knn_proxy.stop()
    status, during = recommend({"history": [{"movie_id": 12}], "k": 5})
    # THEN the fallback answers; and when it is back, personalized answers return
    assert status == 200 and during["fallback"] == "popular"
    knn_proxy.start()
    status, after = recommend()
    assert status == 200 and after["fallback"] is None
    assert [i["movie_id"] for i in after["items"]] == [i["movie_id"] for i in before["items"]]


@pytest.fixture
def corrupted_bundle(bundle_dir: Path, tmp_path: Path) -> Path:
    """A copy of the bundle whose user tower file has one byte flipped (same size)."""
    copy = tmp_path / "corrupted"
    shutil.copytree(bundle_dir, copy)
    target = copy / "user_tower.npz"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    return copy


def test_a_corrupted_bundle_file_is_a_clear_error(corrupted_bundle: Path, tmp_path: Path) -> None:
    from recommender.settings import ServiceSettings

    composition.configure(ServiceSettings.from_env(env={}, bundle=str(corrupted_bundle),
                                                   embedded_store=str(tmp_path / "store")))
    try:
        # the composition names the file and the reason
        with pytest.raises(composition.CompositionError, match=r"user_tower\.npz.*sha256"):
            composition.get_container()
        # the API answers 503 JSON, never a traceback
        status, body = recommend()
        assert status == 503 and body["error"] == "model_unavailable"
        status, health = call(load_event("get_health"))
        assert status == 503 and health["status"] == "unavailable"
    finally:
        composition.reset()


def test_recs_serve_refuses_a_corrupted_bundle(corrupted_bundle: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "recs", "serve", "--bundle", str(corrupted_bundle), "--port", "0"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert result.returncode == 2
    assert "user_tower.npz" in result.stderr and "sha256" in result.stderr
    assert "Traceback" not in result.stderr
