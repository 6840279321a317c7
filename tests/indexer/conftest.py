"""Fixtures of the indexer tests: synthetic bundles, and one "world" per index target.

``world`` is parametrized over the embedded store and OpenSearch (osmem behind the k-NN
emulation, or a real cluster with ``--opensearch-url``), so each scenario runs against both
targets through the same assertions. Its helpers read the target the way the API does: through
the alias.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.bundle import Bundle
from core.embedded_store import EmbeddedStore
from core.features import Movie
from indexer.jobs import Indexer
from indexer.reporting import Reporter
from indexer.settings import IndexerSettings
from recs.local.synthetic import write_synthetic_bundle
from tests.support.http import request

N_MOVIES = 120


@pytest.fixture
def make_bundle(tmp_path: Path) -> Callable[..., Bundle]:
    """``make_bundle("m1", n_movies=..., seed=...)``: a synthetic bundle with that model version."""

    def make(model_version: str, n_movies: int = N_MOVIES, seed: int = 0, dimension: int = 16) -> Bundle:
        return write_synthetic_bundle(tmp_path / "bundles" / model_version, n_movies=n_movies, seed=seed,
                                      dimension=dimension, model_version=model_version)

    return make


class QuietReporter(Reporter):
    """Keeps log events and summaries in lists (tests read them) instead of printing."""

    def __init__(self) -> None:
        import io

        super().__init__(stream=io.StringIO(), out=io.StringIO(), tty=False)
        self.events: list[dict[str, Any]] = []

    def log(self, event: str, level: str = "info", **fields: Any) -> None:
        self.events.append({"event": event, "level": level, **fields})


@dataclass
class World:
    """One index target and how to look at it."""

    kind: str
    settings: IndexerSettings
    store_root: Path
    url: str | None = None
    redis_url: str | None = None
    reporters: list[QuietReporter] = field(default_factory=list)

    def indexer(self, on_step: Callable[[str], None] | None = None, **overrides: Any) -> Indexer:
        reporter = QuietReporter()
        self.reporters.append(reporter)
        return Indexer(self.settings.with_overrides(**overrides), reporter, on_step=on_step)

    @property
    def alias(self) -> str:
        return self.settings.alias

    # -- what the API sees -------------------------------------------------------
    def live(self) -> str | None:
        if self.kind == "embedded":
            alias = EmbeddedStore(self.store_root).alias()
            return alias["index"] if alias else None
        found = request(self.url or "", "GET", f"/_alias/{self.alias}", expect=(200, 404))
        return next(iter(found.body)) if found.status == 200 and found.body else None

    def index_names(self) -> list[str]:
        if self.kind == "embedded":
            return EmbeddedStore(self.store_root).index_names()
        found = request(self.url or "", "GET", f"/_cat/indices/{self.alias}-*?format=json", expect=(200, 404))
        return sorted(row["index"] for row in found.body or []) if found.status == 200 else []

    def count(self) -> int:
        """Documents behind the alias."""
        if self.kind == "embedded":
            return len(EmbeddedStore(self.store_root).current().catalog)
        return int(request(self.url or "", "GET", f"/{self.alias}/_count").body["count"])

    def movie(self, movie_id: int) -> tuple[Movie, np.ndarray] | None:
        """A live document and its vector, read through the alias."""
        if self.kind == "embedded":
            snap = EmbeddedStore(self.store_root).current()
            for i, m in enumerate(snap.catalog):
                if m.movie_id == movie_id:
                    return m, snap.vectors[i]
            return None
        found = request(self.url or "", "GET", f"/{self.alias}/_doc/{movie_id}", expect=(200, 404))
        if found.status == 404 or not found.body.get("found"):
            return None
        source = dict(found.body["_source"])
        vector = np.asarray(source.pop("embedding"), dtype=np.float32)
        return Movie.from_dict(source), vector

    def search(self, vector: np.ndarray, k: int = 5) -> list[int]:
        """Movie ids of the top k for ``vector`` (the k-NN query the API sends)."""
        if self.kind == "embedded":
            snap = EmbeddedStore(self.store_root).current()
            order = np.argsort(-(snap.vectors @ vector), kind="stable")[:k]
            return [snap.catalog[i].movie_id for i in order]
        body = {"size": k, "_source": {"excludes": ["embedding"]},
                "query": {"knn": {"embedding": {"vector": [float(x) for x in vector], "k": k}}}}
        hits = request(self.url or "", "POST", f"/{self.alias}/_search", body).body["hits"]["hits"]
        return [int(h["_id"]) for h in hits]

    def generation(self) -> int:
        if self.redis_url:
            import redis

            value = redis.Redis.from_url(self.redis_url).get("recs:catalog:generation")
            return int(value or 0)
        return EmbeddedStore(self.store_root).generation()

    def mapping(self, index: str) -> dict[str, Any]:
        quoted = urllib.parse.quote(index, safe="")
        return request(self.url or "", "GET", f"/{quoted}/_mapping").body[index]["mappings"]  # type: ignore[no-any-return]

    def settings_of(self, index: str) -> dict[str, Any]:
        quoted = urllib.parse.quote(index, safe="")
        return request(self.url or "", "GET", f"/{quoted}/_settings").body[index]["settings"]["index"]  # type: ignore[no-any-return]


def _settings(**values: Any) -> IndexerSettings:
    base = {"probes": 3, "keep": 2, "backoff_seconds": 0.01, "max_retries": 2, "lock_ttl": 30.0, "replicas": 0,
            "bulk_docs": 50}
    base.update(values)
    return IndexerSettings.from_env(base, env={})


@pytest.fixture
def embedded_world(tmp_path: Path) -> World:
    store = tmp_path / "store"
    return World("embedded", _settings(embedded_store=str(store), opensearch_url=""), store)


@pytest.fixture
def opensearch_world(request: pytest.FixtureRequest, tmp_path: Path) -> World:
    url: str = request.getfixturevalue("opensearch_url")
    redis_url: str = request.getfixturevalue("redis_url")
    alias = request.getfixturevalue("unique_name")("movies")
    settings = _settings(opensearch_url=url, alias=alias, redis_url=redis_url, embedded_store=str(tmp_path / "unused"))
    return World("opensearch", settings, tmp_path / "unused", url=url, redis_url=redis_url)


@pytest.fixture(params=["embedded", pytest.param("opensearch", marks=pytest.mark.opensearch)])
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    yield request.getfixturevalue(f"{request.param}_world")


def summary_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]
