"""Bundles from s3:// (moto's in-process S3): downloaded once into a cache keyed by model version
and manifest hash, checked like a local bundle, partial downloads for the OpenSearch case."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from core.bundle import CATALOG, MANIFEST, USER_TOWER, open_bundle
from core.errors import BundleError, LocationError
from core.locations import parse_s3_url
from core.s3_bundle import fetch_bundle
from recommender import composition
from recommender.settings import ServiceSettings

BUCKET = "recs-models"
PREFIX = "bundles/synthetic-test"


class CountingClient:
    """The real (moto) S3 client, counting downloads."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.downloads: list[str] = []

    def get_object(self, **kwargs: Any) -> Any:
        return self._client.get_object(**kwargs)

    def download_file(self, bucket: str, key: str, filename: str) -> None:
        self.downloads.append(key.rsplit("/", 1)[-1])
        self._client.download_file(bucket, key, filename)


@pytest.fixture
def s3(bundle_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        for path in bundle_dir.iterdir():
            client.upload_file(str(path), BUCKET, f"{PREFIX}/{path.name}")
        yield client


def test_open_bundle_reads_an_s3_prefix(s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    bundle = open_bundle(f"s3://{BUCKET}/{PREFIX}")
    bundle.verify()
    assert bundle.model_version == "synthetic-test"
    assert bundle.path.parent == tmp_path / "recs-bundles"
    assert bundle.path.name.startswith("synthetic-test-")


def test_downloads_once_and_only_what_is_asked(s3: Any, tmp_path: Path) -> None:
    client = CountingClient(s3)
    local = fetch_bundle(f"s3://{BUCKET}/{PREFIX}/", cache_dir=tmp_path, files=[USER_TOWER], client=client)
    assert client.downloads == [USER_TOWER]
    assert sorted(p.name for p in local.iterdir()) == [MANIFEST, USER_TOWER]
    assert open_bundle(local).user_tower.history_length == 20
    again = fetch_bundle(f"s3://{BUCKET}/{PREFIX}", cache_dir=tmp_path, client=client)
    assert again == local
    # the second call fetched the other files; the user tower was already there
    assert sorted(client.downloads) == sorted([USER_TOWER, CATALOG, "item_tower.npz", "movie_vectors.npy"])


def test_a_tampered_file_in_s3_is_refused(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{CATALOG}", Body=b"[]")
    bundle = open_bundle(fetch_bundle(f"s3://{BUCKET}/{PREFIX}", cache_dir=tmp_path, client=s3))
    with pytest.raises(BundleError, match=r"catalog\.json"):
        _ = bundle.catalog


def test_a_missing_bundle_names_the_uri(s3: Any, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"s3://recs-models/nothing-here/manifest\.json"):
        fetch_bundle(f"s3://{BUCKET}/nothing-here", cache_dir=tmp_path, client=s3)


def test_a_new_model_gets_its_own_cache_directory(s3: Any, tmp_path: Path) -> None:
    first = fetch_bundle(f"s3://{BUCKET}/{PREFIX}", cache_dir=tmp_path, files=[], client=s3)
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/{MANIFEST}")["Body"].read())
    manifest["model_version"] = "synthetic-test-2"
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{MANIFEST}", Body=json.dumps(manifest).encode())
    second = fetch_bundle(f"s3://{BUCKET}/{PREFIX}", cache_dir=tmp_path, files=[], client=s3)
    assert first != second and second.name.startswith("synthetic-test-2-")


def test_parse_s3_url() -> None:
    assert parse_s3_url("s3://b/a/b/") == ("b", "a/b")
    assert parse_s3_url("s3://b") == ("b", "")
    with pytest.raises(LocationError, match="no bucket"):
        parse_s3_url("s3:///x")
    with pytest.raises(LocationError, match="no key"):
        parse_s3_url("s3://b/", key_required=True)
    with pytest.raises(LocationError, match="not an s3"):
        parse_s3_url("/local/path")
    with pytest.raises(BundleError, match="no bucket"):
        fetch_bundle("s3:///x")


def test_the_lambda_with_opensearch_downloads_only_the_user_tower(s3: Any, tmp_path: Path,
                                                                   unreachable_url: str) -> None:
    # GIVEN the settings of the deployed function: bundle in S3, OpenSearch for the vectors
    settings = ServiceSettings.from_env(
        env={}, bundle=f"s3://{BUCKET}/{PREFIX}", bundle_cache_dir=str(tmp_path), opensearch_url=unreachable_url,
    )
    container = composition.build_container(settings)
    # THEN only the manifest and the user tower were fetched at start-up
    assert sorted(p.name for p in container.bundle.path.iterdir()) == [MANIFEST, USER_TOWER]
    # and the popularity fallback fetches the catalog when it is first needed
    from recommender.answers import RecommendationQuery

    result = container.service.recommend(RecommendationQuery(k=3))
    assert result.fallback == "popular" and len(result.items) == 3
    assert CATALOG in {p.name for p in container.bundle.path.iterdir()}
