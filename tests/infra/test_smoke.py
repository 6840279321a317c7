"""The post-deploy smoke script against moto (CloudFormation, S3, API Gateway) and a local HTTP API."""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra import smoke
from recs.local.synthetic import write_synthetic_bundle

REGION = "us-east-1"
API_KEY = "k" * 40


class FakeApi:
    """A stand-in for the deployed API: key or SigV4 checked, /health ready after ``ready_after`` calls."""

    def __init__(self, model_version: str, ready_after: int = 0, require_key: bool = True) -> None:
        self.model_version = model_version
        self.ready_after = ready_after
        self.require_key = require_key
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.health_calls = 0

    def answer(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        self.requests.append((method, path, headers, body))
        authorized = headers.get("x-api-key") == API_KEY if self.require_key else headers.get(
            "authorization", "").startswith("AWS4-HMAC-SHA256")
        if not authorized:
            return 403, {"error": "client_error", "message": "Forbidden"}
        if path == "/v1/health":
            self.health_calls += 1
            if self.health_calls <= self.ready_after:
                return 503, {"status": "unavailable", "model_version": None}
            return 200, {"status": "ok", "model_version": self.model_version}
        if path == "/v1/recommendations" and method == "POST":
            items = [{"movie_id": i, "title": f"Movie {i}"} for i in range(body["k"])]
            return 200, {"model_version": self.model_version, "items": items, "cached": False}
        return 404, {"error": "not_found"}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    write_synthetic_bundle(tmp_path / "bundle", n_movies=30, dimension=8, history_length=5, model_version="smoke-1")
    return tmp_path / "bundle"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.session.Session]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.session.Session(region_name=REGION)


def serve(api: FakeApi) -> tuple[str, ThreadingHTTPServer]:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, answer = api.answer(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            raw = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = _handle  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/v1/", server


@pytest.fixture
def api_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, FakeApi]]:
    api = FakeApi(**getattr(request, "param", {"model_version": "smoke-1"}))
    url, server = serve(api)
    yield url, api
    server.shutdown()


def _deploy_fake_stacks(session: boto3.session.Session, outputs: dict[str, dict[str, str]]) -> None:
    cloudformation = session.client("cloudformation")
    for name, values in outputs.items():
        template = {
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {key: {"Value": value} for key, value in values.items()},
        }
        cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))


def test_the_bundle_is_uploaded_under_its_version_with_the_manifest_last(aws, bundle: Path) -> None:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="bundles")
    version, keys = smoke.upload_bundle(s3, "bundles", bundle)
    assert version == "smoke-1"
    assert keys[-1] == "bundles/smoke-1/manifest.json"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert sorted(keys[:-1]) == sorted(f"bundles/smoke-1/{name}" for name in manifest["files"])
    stored = {o["Key"] for o in s3.list_objects_v2(Bucket="bundles")["Contents"]}
    assert stored == set(keys)
    body = s3.get_object(Bucket="bundles", Key="bundles/smoke-1/catalog.json")["Body"].read()
    assert body == (bundle / "catalog.json").read_bytes()


def test_an_incomplete_bundle_is_not_uploaded(aws, bundle: Path) -> None:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="bundles")
    (bundle / "movie_vectors.npy").unlink()
    with pytest.raises(smoke.SmokeError, match=r"movie_vectors\.npy"):
        smoke.upload_bundle(s3, "bundles", bundle)
    assert "Contents" not in s3.list_objects_v2(Bucket="bundles")


def test_stack_outputs_and_the_api_key_are_read_from_aws(aws) -> None:
    _deploy_fake_stacks(aws, {"recs-serving": {"ApiUrl": "https://example/v1/", "ModelVersion": "m"}})
    assert smoke.stack_outputs(aws.client("cloudformation"), "recs-serving") == {
        "ApiUrl": "https://example/v1/", "ModelVersion": "m"}
    with pytest.raises(smoke.SmokeError, match="recs-missing"):
        smoke.stack_outputs(aws.client("cloudformation"), "recs-missing")
    key = aws.client("apigateway").create_api_key(name="k", value=API_KEY, enabled=True)
    assert smoke.api_key_value(aws.client("apigateway"), key["id"]) == API_KEY


@pytest.mark.parametrize("api_server", [{"model_version": "smoke-1", "ready_after": 2}], indirect=True)
def test_a_full_smoke_run_uploads_waits_for_the_new_model_and_checks_recommendations(
    aws, bundle: Path, api_server: tuple[str, FakeApi]
) -> None:
    url, api = api_server
    aws.client("s3").create_bucket(Bucket="bundles")
    key = aws.client("apigateway").create_api_key(name="k", value=API_KEY, enabled=True)
    _deploy_fake_stacks(aws, {
        "recs-data": {"BundleBucketName": "bundles"},
        "recs-serving": {"ApiUrl": url, "ApiKeyId": key["id"], "ModelVersion": "smoke-1"},
    })
    said: list[str] = []
    args = argparse.Namespace(prefix="recs", bundle=str(bundle), timeout=5.0, interval=0.01, skip_upload=False)
    smoke.run(args, aws, say=said.append)
    assert api.health_calls == 3  # two 503s while the indexer ran, then the new model
    method, path, headers, body = api.requests[-1]
    assert (method, path) == ("POST", "/v1/recommendations")
    assert headers["x-api-key"] == API_KEY
    assert len(body["history"]) == 3 and body["k"] == 5
    assert any(line.startswith("uploaded 5 files") for line in said)
    assert "Contents" in aws.client("s3").list_objects_v2(Bucket="bundles", Prefix="bundles/smoke-1/")


def test_health_that_never_serves_the_model_times_out(api_server: tuple[str, FakeApi]) -> None:
    url, api = api_server
    api.model_version = "older"
    with pytest.raises(smoke.SmokeError, match="did not serve 'smoke-1'"):
        smoke.wait_for_health(url, "smoke-1", timeout=0.05, interval=0.01, api_key=API_KEY, say=lambda _: None)
    assert api.health_calls >= 1


@pytest.mark.parametrize("api_server", [{"model_version": "smoke-1", "require_key": False}], indirect=True)
def test_iam_mode_signs_requests_with_sigv4(aws, api_server: tuple[str, FakeApi]) -> None:
    url, api = api_server
    sign = smoke.sigv4_signer(aws, REGION)
    answer = smoke.call_api(url + "health", sign=sign)
    assert answer.status == 200
    _, _, headers, _ = api.requests[-1]
    assert "/execute-api/aws4_request" in headers["authorization"]
    assert "x-amz-date" in headers


def test_a_short_answer_fails_the_recommendation_check(api_server: tuple[str, FakeApi]) -> None:
    url, _ = api_server
    with pytest.raises(smoke.SmokeError, match="403"):
        smoke.check_recommendations(url, [1, 2], api_key="wrong")
    answer = smoke.check_recommendations(url, [1, 2], k=4, api_key=API_KEY)
    assert len(answer.body["items"]) == 4
