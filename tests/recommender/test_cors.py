"""CORS: the try-it page on another origin (a deployed API's URL in its settings) can call the API.

Preflights get 204 with the methods and headers a browser asks about (X-Api-Key included, no
authorization needed); every answer to a request with an Origin, errors too, carries
Access-Control-Allow-Origin; requests without an Origin get no CORS headers."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from recs.local.server import LocalServer, build_server
from tests.recommender.conftest import load_event

Invoke = Callable[[dict[str, Any]], dict[str, Any]]
ORIGIN = "http://127.0.0.1:9999"


def headers(response: dict[str, Any]) -> dict[str, str]:
    out = {k.lower(): str(v) for k, v in (response.get("headers") or {}).items()}
    out.update({k.lower(): str(v[-1]) for k, v in (response.get("multiValueHeaders") or {}).items()})
    return out


def with_origin(event: dict[str, Any], **extra: str) -> dict[str, Any]:
    added = {"Origin": ORIGIN, **extra}
    event["headers"] = {**(event.get("headers") or {}), **added}
    event["multiValueHeaders"] = {**(event.get("multiValueHeaders") or {}), **{k: [v] for k, v in added.items()}}
    return event


@pytest.mark.parametrize("path", ["/recommendations", "/movies/search", "/movies/12/similar", "/health"])
def test_a_preflight_is_answered_without_authorization(invoke: Invoke, path: str) -> None:
    event = with_origin(
        load_event("get_health", path=path, resource=path, httpMethod="OPTIONS"),
        **{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-api-key"},
    )
    response = invoke(event)
    assert response["statusCode"] == 204
    h = headers(response)
    assert h["access-control-allow-origin"] == "*"
    assert {"GET", "POST"} <= set(h["access-control-allow-methods"].split(","))
    allowed = {x.strip().lower() for x in h["access-control-allow-headers"].split(",")}
    assert {"content-type", "x-api-key", "x-correlation-id"} <= allowed
    assert h["access-control-max-age"] == "600"


@pytest.mark.parametrize(
    ("event", "status"),
    [
        (load_event("post_recommendations"), 200),
        (load_event("get_health"), 200),
        (load_event("post_recommendations_invalid"), 422),
        (load_event("get_movie_unknown"), 404),
        (load_event("get_unknown_route"), 404),
        (load_event("post_recommendations", body="x" * 70_000), 413),  # refused before the resolver
        (load_event("post_recommendations", headers={"Content-Type": "text/plain"},
                    multiValueHeaders={"Content-Type": ["text/plain"]}), 415),
    ],
)
def test_every_answer_to_a_browser_carries_the_origin_header(invoke: Invoke, event: dict[str, Any], status: int
                                                             ) -> None:
    response = invoke(with_origin(event))
    assert response["statusCode"] == status
    h = headers(response)
    assert h["access-control-allow-origin"] == "*"
    assert "x-correlation-id" in h["access-control-expose-headers"].lower()


def test_no_origin_no_cors_headers(invoke: Invoke) -> None:
    response = invoke(load_event("get_health"))
    assert response["statusCode"] == 200
    assert not [k for k in headers(response) if k.startswith("access-control-")]


@pytest.fixture
def server(bundle_dir: Path, tmp_path: Path) -> Iterator[LocalServer]:
    srv = build_server(str(bundle_dir), port=0, embedded_store=str(tmp_path / "store")).start()
    try:
        yield srv
    finally:
        srv.shutdown()


def test_the_local_server_answers_a_real_preflight(server: LocalServer) -> None:
    request = urllib.request.Request(
        f"{server.url}/recommendations", method="OPTIONS",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type,x-api-key"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert response.read() == b""
