"""Fixtures of the recommender tests: a synthetic bundle, the handler on embedded defaults."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.bundle import Bundle, open_bundle
from recommender import composition
from recommender.settings import ServiceSettings
from recs.local.synthetic import write_synthetic_bundle

EVENTS = Path(__file__).resolve().parent.parent / "events"
N_MOVIES = 300


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid synthetic bundle (300 movies, ids 1..300, dimension 32, history length 20); read-only."""
    path = tmp_path_factory.mktemp("bundle") / "bundle"
    write_synthetic_bundle(path, n_movies=N_MOVIES, seed=7, model_version="synthetic-test")
    return path


@pytest.fixture(scope="session")
def bundle(bundle_dir: Path) -> Bundle:
    return open_bundle(bundle_dir)


def embedded_settings(bundle_dir: Path, tmp_path: Path, **overrides: Any) -> ServiceSettings:
    return ServiceSettings.from_env(
        env={}, bundle=str(bundle_dir), embedded_store=str(tmp_path / "store"), **overrides
    )


@pytest.fixture
def configure_service(bundle_dir: Path, tmp_path: Path) -> Iterator[Callable[..., composition.Container]]:
    """``configure_service(**overrides)`` -> the built container the handler will use; reset after."""

    def configure(**overrides: Any) -> composition.Container:
        composition.configure(embedded_settings(bundle_dir, tmp_path, **overrides))
        return composition.get_container()

    yield configure
    composition.reset()


@pytest.fixture
def invoke(configure_service: Callable[..., composition.Container]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Call the Lambda handler with an event; returns the response with ``json`` (parsed body) added."""
    from recommender.handler import lambda_handler

    configure_service()

    def call(event: dict[str, Any]) -> dict[str, Any]:
        response = lambda_handler(event, None)
        body = response.get("body")
        response["json"] = json.loads(body) if body else None
        return response

    return call


def load_event(name: str, **changes: Any) -> dict[str, Any]:
    """A stored API Gateway REST proxy event from ``tests/events``.

    ``body=`` (a dict, a string or None) replaces its body; ``query=`` its query string (both the
    single- and the multi-value forms, as API Gateway sends them); other keys replace top-level fields.
    """
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))
    if "query" in changes:
        query = changes.pop("query")
        event["queryStringParameters"] = query or None
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
    if "body" in changes:
        body = changes.pop("body")
        event["body"] = body if isinstance(body, str) or body is None else json.dumps(body)
    event.update(changes)
    return event
