"""Minimal JSON-over-HTTP for tests that talk to OpenSearch's REST API directly (stdlib only)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Response:
    status: int
    body: Any
    headers: dict[str, str]


class OpenSearchHTTPError(RuntimeError):
    """A request answered with a status the caller did not accept."""

    def __init__(self, method: str, url: str, response: Response) -> None:
        super().__init__(f"{method} {url}: {response.status} {json.dumps(response.body)[:2000]}")
        self.response = response


def request(
    base_url: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    ndjson: list[Any] | None = None,
    expect: tuple[int, ...] | None = (200, 201),
    timeout: float = 60.0,
) -> Response:
    """``method base_url+path`` with a JSON (or ndjson) body; raise unless the status is in ``expect``."""
    url = base_url.rstrip("/") + path
    headers = {"Accept": "application/json"}
    data: bytes | None = None
    if ndjson is not None:
        data = "".join(json.dumps(line) + "\n" for line in ndjson).encode()
        headers["Content-Type"] = "application/x-ndjson"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw, resp_headers = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        status, raw, resp_headers = err.code, err.read(), dict(err.headers)
    try:
        parsed: Any = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    response = Response(status, parsed, resp_headers)
    if expect is not None and status not in expect:
        raise OpenSearchHTTPError(method, url, response)
    return response
