"""Publishing a bundle to a bundle root (manifest last, never over an existing version) locally and in S3 (moto),
and reading the live index's model version from the embedded store and from OpenSearch."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from core.bundle import open_bundle
from core.errors import BundleError, LiveIndexError, PublishError
from core.index_schema import IndexParams, index_body
from core.live_index import live_model_version
from core.publish import newest_beside, publish_bundle, put_beside, read_beside
from indexer.jobs import Indexer
from indexer.settings import IndexerSettings
from recs.local.synthetic import write_synthetic_bundle


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return write_synthetic_bundle(tmp_path / "src", n_movies=30, dimension=8, model_version="m1").path


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="recs-b")
        yield client


def test_a_local_publish_writes_the_manifest_last_and_never_replaces_a_version(bundle: Path, tmp_path: Path) -> None:
    root = tmp_path / "bundles"
    published = publish_bundle(bundle, f"{root}/")
    assert published.location == f"{root}/m1" and published.written[-1].endswith("/m1/manifest.json")
    open_bundle(published.location).verify()
    assert not [p for p in (root / "m1").iterdir() if p.name.startswith(".")]  # no temporary file left
    with pytest.raises(PublishError, match="published already"):
        publish_bundle(bundle, root)


def test_an_incomplete_bundle_publishes_nothing(bundle: Path, tmp_path: Path) -> None:
    (bundle / "item_tower.npz").unlink()
    with pytest.raises(BundleError, match=r"item_tower\.npz"):
        publish_bundle(bundle, tmp_path / "bundles")
    assert not (tmp_path / "bundles").exists()


def test_an_s3_publish_puts_each_file_once_and_the_manifest_last(bundle: Path, s3) -> None:
    published = publish_bundle(bundle, "s3://recs-b/bundles/", client=s3)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert published.written[-1] == "s3://recs-b/bundles/m1/manifest.json"
    assert sorted(published.written[:-1]) == sorted(f"s3://recs-b/bundles/m1/{n}" for n in manifest["files"])
    open_bundle("s3://recs-b/bundles/m1").verify()
    with pytest.raises(PublishError, match="published already"):
        publish_bundle(bundle, "s3://recs-b/bundles/", client=s3)
    # a file that exists already is refused by the store itself (If-None-Match), not only by the check above
    with pytest.raises(PublishError, match="exists already"):
        put_beside("s3://recs-b/bundles/", "m1", "catalog.json", b"[]", client=s3)
    stored = s3.get_object(Bucket="recs-b", Key="bundles/m1/catalog.json")["Body"].read()
    assert stored == (bundle / "catalog.json").read_bytes()


def test_files_beside_bundles_are_written_once_and_the_newest_is_found(s3, tmp_path: Path) -> None:
    for root in ("s3://recs-b/bundles/", str(tmp_path / "bundles")):
        assert newest_beside(root, "report.json", client=s3) is None
        put_beside(root, "tt-1", "report.json", b"one", client=s3)
        put_beside(root, "tt-2", "report.json", b"two", client=s3)
        assert newest_beside(root, "report.json", client=s3) == "tt-2"
        assert read_beside(root, "tt-1", "report.json", client=s3) == b"one"
        assert read_beside(root, "tt-3", "report.json", client=s3) is None


def test_the_live_model_of_the_embedded_store(bundle: Path, tmp_path: Path) -> None:
    store = tmp_path / "index"
    assert live_model_version(embedded_store=store) is None
    settings = IndexerSettings.from_env({"embedded_store": str(store), "opensearch_url": ""}, env={})
    Indexer(settings).rebuild(str(bundle))
    assert live_model_version(embedded_store=store) == "m1"


@pytest.mark.opensearch
def test_the_live_model_of_an_opensearch_alias(opensearch_url: str, unique_name) -> None:
    from opensearchpy import OpenSearch

    client = OpenSearch(hosts=[opensearch_url])
    alias = unique_name("movies")
    assert live_model_version(opensearch=client, alias=alias) is None
    for name, version in ((f"{alias}-a", "m1"), (f"{alias}-b", "m2")):
        client.indices.create(index=name, body=index_body(dimension=4, model_version=version, alias=alias,
                                                                  space_type="innerproduct", params=IndexParams()))
    client.indices.put_alias(index=f"{alias}-a", name=alias)
    assert live_model_version(opensearch=client, alias=alias) == "m1"
    client.indices.put_alias(index=f"{alias}-b", name=alias)
    with pytest.raises(LiveIndexError, match="different models"):
        live_model_version(opensearch=client, alias=alias)


def test_an_unreachable_opensearch_is_a_live_index_error(unreachable_url: str) -> None:
    from opensearchpy import OpenSearch

    client = OpenSearch(hosts=[unreachable_url], max_retries=0, timeout=1)
    with pytest.raises(LiveIndexError, match="cannot read the alias"):
        live_model_version(opensearch=client, alias="movies")
