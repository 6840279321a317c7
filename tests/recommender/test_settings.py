"""ServiceSettings: RECS_* variables, explicit arguments first, validation at start-up."""

from __future__ import annotations

import pytest

from core.errors import SettingsError
from recommender.settings import ServiceSettings


def test_defaults_need_no_environment() -> None:
    s = ServiceSettings.from_env(env={})
    assert s.bundle == "artifacts/bundle"
    assert s.embedded_store == "artifacts/index"
    assert s.opensearch_url is None and s.redis_url is None
    assert s.metrics_enabled is False
    assert s.index_fallback == "popular"


def test_variables_are_parsed_and_typed() -> None:
    env = {
        "RECS_BUNDLE": "s3://models/bundles/v3",
        "RECS_OPENSEARCH_URL": "https://search-x.eu-west-1.es.amazonaws.com",
        "RECS_OPENSEARCH_TIMEOUT_SECONDS": "1.5",
        "RECS_OPENSEARCH_MAX_RETRIES": "2",
        "RECS_REDIS_URL": "rediss://cache.local:6379/0",
        "RECS_METRICS_ENABLED": "false",
        "AWS_REGION": "eu-west-1",
        "AWS_LAMBDA_FUNCTION_NAME": "recs",
    }
    s = ServiceSettings.from_env(env=env)
    assert s.bundle == "s3://models/bundles/v3"
    assert s.opensearch_timeout_seconds == 1.5 and s.opensearch_max_retries == 2
    assert s.redis_url == "rediss://cache.local:6379/0"
    assert s.metrics_enabled is False  # explicit variable beats the Lambda default
    assert s.aws_region == "eu-west-1"
    assert ServiceSettings.from_env(env={"AWS_LAMBDA_FUNCTION_NAME": "recs"}).metrics_enabled is True


def test_an_explicit_argument_beats_the_environment() -> None:
    s = ServiceSettings.from_env(env={"RECS_BUNDLE": "/from/env"}, bundle="/from/arg", redis_url=None)
    assert s.bundle == "/from/arg"
    assert s.with_overrides(cache_ttl_seconds=5).cache_ttl_seconds == 5


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"RECS_OPENSEARCH_URL": "search.local:9200"}, "RECS_OPENSEARCH_URL"),
        ({"RECS_REDIS_URL": "http://cache:6379"}, "RECS_REDIS_URL"),
        ({"RECS_CACHE_TTL_SECONDS": "five"}, "RECS_CACHE_TTL_SECONDS"),
        ({"RECS_METRICS_ENABLED": "maybe"}, "RECS_METRICS_ENABLED"),
        ({"RECS_INDEX_FALLBACK": "random"}, "RECS_INDEX_FALLBACK"),
        ({"RECS_MAX_BODY_BYTES": "100"}, "RECS_MAX_BODY_BYTES"),
        ({"RECS_OPENSEARCH_SERVICE": "s3"}, "RECS_OPENSEARCH_SERVICE"),
        ({"RECS_REDIS_TIMEOUT_SECONDS": "0"}, "RECS_REDIS_TIMEOUT_SECONDS"),
    ],
)
def test_bad_values_fail_naming_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError, match=names):
        ServiceSettings.from_env(env=env)


def test_unknown_overrides_are_refused() -> None:
    with pytest.raises(SettingsError, match="bundel"):
        ServiceSettings.from_env(env={}, bundel="x")


@pytest.mark.parametrize(
    ("url", "service"),
    [
        ("https://search-movies-abc.eu-west-1.es.amazonaws.com", "es"),
        ("https://abc123.eu-west-1.aoss.amazonaws.com", "aoss"),
        ("http://localhost:9200", None),
        ("https://opensearch.internal.example:9200", None),
    ],
)
def test_sigv4_is_used_for_aws_hosts_only(url: str, service: str | None) -> None:
    assert ServiceSettings.from_env(env={}, opensearch_url=url).sigv4_service() == service


def test_describe_hides_the_password() -> None:
    s = ServiceSettings.from_env(env={"RECS_OPENSEARCH_PASSWORD": "hunter2"})
    assert s.describe()["opensearch_password"] == "***"
    assert "hunter2" not in repr(s.describe())
