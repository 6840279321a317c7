"""Clients for OpenSearch and Redis, built on demand (never at import time).

OpenSearch: an AWS host (``*.amazonaws.com``: ``es`` for domains, ``aoss`` for serverless, or
``RECS_OPENSEARCH_SERVICE``) is signed with SigV4 using the default boto3 credentials (the Fargate
task role), as the recommender does; any other URL is used as given, with basic auth from
``RECS_OPENSEARCH_USERNAME``/``RECS_OPENSEARCH_PASSWORD`` if set. The transport's own retries are
off: the indexer backs off itself (``indexer.retry``).

Redis: ``RECS_REDIS_URL``; with ``RECS_REDIS_AUTH_SECRET_ARN`` the ElastiCache auth token is read
from Secrets Manager (a plain string, or JSON with a ``password``/``token``/``auth_token`` field).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

from indexer.errors import SettingsError
from indexer.settings import IndexerSettings
from recommender.aws_auth import auth_token_from_secret, sigv4_service_for

_REGION_IN_HOST = re.compile(r"\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)\.(?:es|aoss)\.amazonaws\.com$")


def sigv4_service(settings: IndexerSettings) -> str | None:
    """``es``/``aoss`` when requests must be SigV4-signed (an AWS host, or ``RECS_OPENSEARCH_SERVICE``), else None."""
    return sigv4_service_for(settings.opensearch_url, settings.opensearch_service)


def aws_region(settings: IndexerSettings) -> str | None:
    """The region to sign for: the setting, else the one in the host name, else boto3's default."""
    if settings.aws_region:
        return settings.aws_region
    match = _REGION_IN_HOST.search((urlparse(settings.opensearch_url or "").hostname or "").lower())
    if match:
        return match.group("region")
    import boto3

    return boto3.Session().region_name


def opensearch_client(settings: IndexerSettings) -> Any:
    """An ``opensearchpy.OpenSearch`` for ``settings.opensearch_url`` (SigV4-signed on AWS)."""
    from opensearchpy import OpenSearch, Urllib3AWSV4SignerAuth, Urllib3HttpConnection

    if not settings.opensearch_url:
        raise SettingsError("RECS_OPENSEARCH_URL is not set")
    options: dict[str, Any] = {
        "hosts": [settings.opensearch_url],
        "timeout": settings.request_timeout,
        "max_retries": 0,
        "retry_on_timeout": False,
    }
    service = sigv4_service(settings)
    if service is not None:
        import boto3

        region = aws_region(settings)
        credentials = boto3.Session().get_credentials()
        if credentials is None or not region:
            raise SettingsError(
                f"{settings.opensearch_url} needs SigV4 signing but boto3 found no AWS "
                f"{'credentials' if credentials is None else 'region (set RECS_AWS_REGION)'}"
            )
        options.update(
            http_auth=Urllib3AWSV4SignerAuth(credentials, region, service),
            connection_class=Urllib3HttpConnection,
            verify_certs=True,
        )
    elif settings.opensearch_username:
        options["http_auth"] = (settings.opensearch_username, settings.opensearch_password or "")
    return OpenSearch(**options)


def redis_password(secret_arn: str, region: str | None = None) -> str:
    """The auth token stored in Secrets Manager under ``secret_arn``."""
    import boto3

    secret = boto3.client("secretsmanager", region_name=region).get_secret_value(SecretId=secret_arn)
    token = auth_token_from_secret(str(secret.get("SecretString") or ""))
    if token is None:
        raise SettingsError(f"{secret_arn}: the secret is JSON without a password/token field")
    return token


def redis_client(settings: IndexerSettings) -> Any:
    """A ``redis.Redis`` for ``settings.redis_url``, or None when no Redis is configured."""
    if not settings.redis_url:
        return None
    import redis

    kwargs: dict[str, Any] = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0}
    if settings.redis_auth_secret_arn:
        kwargs["password"] = redis_password(settings.redis_auth_secret_arn, settings.aws_region)
    return redis.Redis.from_url(settings.redis_url, **kwargs)
