"""Rules about AWS credentials shared by the recommender and the indexer (pure functions, no clients)."""

from __future__ import annotations

import json
from urllib.parse import urlparse

TOKEN_FIELDS = ("password", "token", "auth_token", "authToken")


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
