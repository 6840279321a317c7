"""AWS connections shared by every component: the one OpenSearch client builder and the one Redis
auth-token reader, with one rule for SigV4 signing (service and region).

Nothing is imported or built at import time: opensearch-py and boto3 are imported inside the
functions, so the Lambda pays for them only when it first connects.

- **Signing**: a host under ``*.amazonaws.com`` is SigV4-signed (``es`` for managed domains, ``aoss``
  for serverless collections), or any host when a service is given; other hosts are not signed
  (basic auth when a user name is given).
- **Region** to sign for: the configured one (``RECS_AWS_REGION``, else ``AWS_REGION``), else the one
  in the host name (``search-x.eu-west-1.es.amazonaws.com``), else boto3's default; no region means
  no client (``ConnectionSetupError``), never a guess.
- **Redis auth token**: the whole ``SecretString`` of a Secrets Manager secret, or a JSON object's
  ``password``/``token``/``auth_token``/``authToken`` field.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlparse

from core.errors import ConnectionSetupError

TOKEN_FIELDS = ("password", "token", "auth_token", "authToken")
SIGV4_SERVICES = ("es", "aoss")
_REGION_IN_HOST = re.compile(r"\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)\.(?:es|aoss)\.amazonaws\.com$")


def sigv4_service_for(url: str | None, override: str | None = None) -> str | None:
    """``es``/``aoss`` when requests to ``url`` must be SigV4-signed (an AWS host, or ``override``), else None."""
    if not url:
        return None
    if override:
        return override
    host = (urlparse(url).hostname or "").lower()
    if not host.endswith(".amazonaws.com"):
        return None
    return "aoss" if ".aoss." in host else "es"


def region_in_host(url: str | None) -> str | None:
    """The region an OpenSearch endpoint names (``vpc-x.eu-west-1.es.amazonaws.com`` -> ``eu-west-1``)."""
    match = _REGION_IN_HOST.search((urlparse(url or "").hostname or "").lower())
    return match.group("region") if match else None


def signing_region(url: str | None, configured: str | None = None) -> str | None:
    """The region to sign requests to ``url`` for: ``configured``, else the host's, else boto3's default."""
    if configured:
        return configured
    in_host = region_in_host(url)
    if in_host:
        return in_host
    import boto3

    return boto3.Session().region_name


def opensearch_client(
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    service: str | None = None,
    region: str | None = None,
    timeout_seconds: float = 2.0,
    max_retries: int = 1,
    pool_maxsize: int = 16,
) -> Any:
    """An ``opensearchpy.OpenSearch`` for ``url``: SigV4-signed on AWS (the default boto3 credentials:
    the Lambda's or the task's role), basic auth with a user name, otherwise none. Certificates are
    always verified for ``https``. ``max_retries`` transport retries, timeouts included. Raises
    ``ConnectionSetupError`` when signing is needed but no credentials or region can be found."""
    from opensearchpy import OpenSearch

    signer = sigv4_service_for(url, service)
    auth: Any = None
    if signer is not None:
        import boto3
        from opensearchpy import Urllib3AWSV4SignerAuth

        credentials = boto3.Session().get_credentials()
        if credentials is None:
            raise ConnectionSetupError(f"{url} needs SigV4 signing but boto3 found no AWS credentials")
        signing = signing_region(url, region)
        if not signing:
            raise ConnectionSetupError(
                f"{url} needs SigV4 signing but no region is known: set RECS_AWS_REGION (or AWS_REGION)"
            )
        auth = Urllib3AWSV4SignerAuth(credentials, signing, signer)
    elif username:
        auth = (username, password or "")
    return OpenSearch(
        hosts=[url],
        http_auth=auth,
        timeout=timeout_seconds,
        max_retries=max_retries,
        retry_on_timeout=max_retries > 0,
        verify_certs=url.startswith("https"),
        ssl_show_warn=False,
        pool_maxsize=pool_maxsize,
    )


def auth_token_from_secret(raw: str) -> str | None:
    """The Redis auth token in a Secrets Manager ``SecretString``: the string itself, or a JSON object's
    ``password``/``token``/``auth_token``/``authToken`` field; ``None`` for a JSON object without one."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(parsed, dict):
        for key in TOKEN_FIELDS:
            if parsed.get(key):
                return str(parsed[key])
        return None
    return raw


def redis_auth_token(secret_arn: str, region: str | None = None) -> str:
    """The Redis auth token stored in Secrets Manager under ``secret_arn``; ``ConnectionSetupError`` when
    the secret cannot be read or holds no token."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        secret = boto3.client("secretsmanager", region_name=region).get_secret_value(SecretId=secret_arn)
    except (BotoCoreError, ClientError) as exc:
        raise ConnectionSetupError(f"cannot read the Redis auth token {secret_arn}: {exc}") from exc
    token = auth_token_from_secret(str(secret.get("SecretString") or ""))
    if token is None:
        raise ConnectionSetupError(f"secret {secret_arn} has no password/token field (a JSON object without one)")
    return token
