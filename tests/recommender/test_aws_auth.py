"""AWS-specific wiring: SigV4-signed OpenSearch requests, the ElastiCache token from Secrets Manager."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from core.aws import opensearch_client
from recommender import composition
from recommender.adapters.opensearch_index import OpenSearchIndex
from recommender.composition import redis_password
from recommender.errors import CompositionError
from recommender.settings import ServiceSettings
from tests.recommender.conftest import embedded_settings, load_event


class Recorder(BaseHTTPRequestHandler):
    """Answers every search with no hits and records the request headers."""

    seen: list[dict[str, str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Recorder.seen.append({k.lower(): v for k, v in self.headers.items()})
        body = json.dumps({"hits": {"total": {"value": 0}, "hits": []}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.mark.parametrize("service", ["es", "aoss"])
def test_requests_to_an_aws_domain_are_sigv4_signed(recorder: str, aws_credentials: None, service: str) -> None:
    index = OpenSearchIndex(opensearch_client(recorder, service=service, region="eu-west-1"), "movies")
    assert index.existing({1, 2}) == set()
    auth = Recorder.seen[-1]["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert f"/eu-west-1/{service}/aws4_request" in auth
    assert "x-amz-date" in Recorder.seen[-1]


def test_basic_auth_off_aws_and_none_by_default(recorder: str) -> None:
    OpenSearchIndex(opensearch_client(recorder, username="admin", password="pw"), "movies").existing({1})
    assert Recorder.seen[-1]["authorization"].startswith("Basic ")
    OpenSearchIndex(opensearch_client(recorder), "movies").existing({1})
    assert "authorization" not in Recorder.seen[-1]


@pytest.mark.parametrize(
    ("secret", "token"),
    [("plain-token-123", "plain-token-123"), (json.dumps({"password": "from-json"}), "from-json")],
)
def test_the_redis_token_comes_from_secrets_manager(aws_credentials: None, secret: str, token: str) -> None:
    with mock_aws():
        arn = boto3.client("secretsmanager").create_secret(Name="recs/redis", SecretString=secret)["ARN"]
        settings = ServiceSettings.from_env(env={}, redis_url="rediss://cache:6379", redis_auth_secret_arn=arn)
        assert redis_password(settings) == token
        assert redis_password(ServiceSettings.from_env(env={})) is None


def test_a_json_secret_without_a_token_is_refused(aws_credentials: None) -> None:
    with mock_aws():
        arn = boto3.client("secretsmanager").create_secret(Name="s", SecretString='{"user": "x"}')["ARN"]
        with pytest.raises(CompositionError, match="no password"):
            redis_password(ServiceSettings.from_env(env={}, redis_auth_secret_arn=arn))


def test_an_unreadable_redis_secret_is_a_503_not_a_bug(
    aws_credentials: None, bundle_dir: Path, tmp_path: Path
) -> None:
    # GIVEN a secret ARN Secrets Manager cannot read (deleted, or no permission)
    from recommender.handler import lambda_handler

    with mock_aws():
        arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:recs/gone-AbCdEf"
        composition.configure(embedded_settings(
            bundle_dir, tmp_path, redis_url="rediss://cache:6379", redis_auth_secret_arn=arn
        ))
        try:
            # THEN the service cannot be built: 503 model_unavailable and an unavailable /health, not a 500
            answer = lambda_handler(load_event("post_recommendations"), None)
            assert answer["statusCode"] == 503
            assert json.loads(answer["body"])["error"] == "model_unavailable"
            health = lambda_handler(load_event("get_health"), None)
            assert health["statusCode"] == 503 and json.loads(health["body"])["status"] == "unavailable"
        finally:
            composition.reset()
