"""Fixtures of the fuzz tests: a synthetic bundle, the handler on the embedded defaults, a local server."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from core.bundle import Bundle
from recommender import composition
from recommender.settings import ServiceSettings
from recs.local.server import LocalServer, build_server, http_to_event
from recs.local.synthetic import write_synthetic_bundle

N_MOVIES = 300
"""Movie ids 1..300; ids above are unknown to the model and the catalog."""


@pytest.fixture(scope="module")
def fuzz_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return write_synthetic_bundle(tmp_path_factory.mktemp("fuzz") / "bundle", n_movies=N_MOVIES, seed=11,
                                  model_version="synthetic-fuzz")


@pytest.fixture(scope="module")
def handler(fuzz_bundle: Bundle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """``handler(method, target, body=None, headers=None)`` -> (status, parsed JSON body, headers),
    through the Lambda handler on the embedded defaults (no HTTP: thousands of examples stay fast)."""
    from recommender.handler import lambda_handler

    composition.configure(ServiceSettings.from_env(
        env={}, bundle=str(fuzz_bundle.path), embedded_store=str(tmp_path_factory.mktemp("store"))))
    composition.get_container()

    def call(method: str, target: str, body: bytes | str | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, Any]]:
        raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
        given = list((headers if headers is not None else {"Content-Type": "application/json"}).items())
        response = lambda_handler(http_to_event(method, target, given, raw), None)
        text = response.get("body") or ""
        return int(response["statusCode"]), json.loads(text) if text else None, dict(response.get("headers") or {})

    yield call
    composition.reset()


@pytest.fixture(scope="module")
def served(fuzz_bundle: Bundle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """The local HTTP server (``recs serve``'s) on the embedded defaults, on a free port."""
    server = build_server(str(fuzz_bundle.path), port=0,
                          embedded_store=str(tmp_path_factory.mktemp("served-store"))).start()
    yield server
    server.shutdown()
