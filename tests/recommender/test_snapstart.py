"""SnapStart runtime hooks (``recommender.snapstart``): registered only for a SnapStart init, the service built and
warmed before the snapshot, fresh clients, credentials and random state after the restore, and the handler answering
across a simulated snapshot and restore.

``snapshot_restore_py`` exists only in the Lambda runtime: a fake with the same functions is put in ``sys.modules``,
and the registered hooks are run the way the runtime interface client runs them (before-snapshot hooks in reverse
order of registration, after-restore hooks in order). Redis and OpenSearch are the real test servers.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.bundle import Bundle
from recommender import composition, snapstart
from recommender.adapters.memory_cache import MemoryCache
from recommender.adapters.opensearch_index import OpenSearchIndex
from recommender.adapters.redis_cache import RedisCache
from recommender.errors import CompositionError
from recommender.handler import _resolve, lambda_handler
from recommender.routes.operations import openapi_document
from tests.recommender.conftest import embedded_settings, load_event
from tests.support.opensearch_fixtures import create_movie_index

ROOT = Path(__file__).resolve().parents[2]


class FakeHooks(types.ModuleType):
    """``snapshot_restore_py`` as the Lambda runtime provides it: two registries and the functions filling them."""

    def __init__(self) -> None:
        super().__init__("snapshot_restore_py")
        self.before: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        self.after: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []

    def register_before_snapshot(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.before.append((func, args, kwargs))

    def register_after_restore(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.after.append((func, args, kwargs))

    def snapshot(self) -> None:
        """What awslambdaric does once the init is complete: before-snapshot hooks, last registered first."""
        for func, args, kwargs in reversed(self.before):
            func(*args, **kwargs)

    def restore(self) -> None:
        for func, args, kwargs in self.after:
            func(*args, **kwargs)


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHooks]:
    """A SnapStart init: the variable Lambda sets, the fake module, and the handler's hooks registered with it."""
    fake = FakeHooks()
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", fake)
    monkeypatch.setenv(snapstart.INITIALIZATION_TYPE, snapstart.SNAP_START)
    assert snapstart.install(_resolve)  # what importing recommender.handler does in a SnapStart init
    assert [f for f, _, _ in fake.before] == [snapstart.before_snapshot]
    assert [f for f, _, _ in fake.after] == [snapstart.after_restore]
    yield fake
    composition.reset()
    openapi_document.cache_clear()


def invoke(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = lambda_handler(event, None)
    return response["statusCode"], json.loads(response["body"])


def recommend() -> tuple[int, dict[str, Any]]:
    body = {"history": [{"movie_id": 3, "rating": 5.0}, {"movie_id": 17, "rating": 4.0}, {"movie_id": 42}], "k": 5}
    return invoke(load_event("post_recommendations", body=body))


def test_nothing_is_registered_or_imported_outside_a_snapstart_init(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "snapshot_restore_py", raising=False)
    for value in (None, "on-demand", "provisioned-concurrency"):
        if value is None:
            monkeypatch.delenv(snapstart.INITIALIZATION_TYPE, raising=False)
        else:
            monkeypatch.setenv(snapstart.INITIALIZATION_TYPE, value)
        assert snapstart.install(_resolve) is False  # and no ImportError: the module is not looked for
    assert "snapshot_restore_py" not in sys.modules


def test_importing_the_handler_registers_the_hooks_only_in_a_snapstart_init(tmp_path: Path) -> None:
    # a fresh interpreter, as Lambda starts one: snapshot_restore_py on the path as the runtime has it
    (tmp_path / "snapshot_restore_py.py").write_text(
        "before, after = [], []\n"
        "def register_before_snapshot(f, *a, **k): before.append(f.__name__)\n"
        "def register_after_restore(f, *a, **k): after.append(f.__name__)\n"
    )
    probe = ("import sys, recommender.handler; m = sys.modules.get('snapshot_restore_py'); "
             "print(m and (m.before, m.after))")
    env = {k: v for k, v in os.environ.items() if k != snapstart.INITIALIZATION_TYPE}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(tmp_path)])
    out = {}
    for init in ("on-demand", "snap-start"):
        result = subprocess.run([sys.executable, "-c", probe], env={**env, snapstart.INITIALIZATION_TYPE: init},
                                capture_output=True, text=True, check=True, cwd=tmp_path)
        out[init] = result.stdout.strip().splitlines()[-1]
    assert out["on-demand"] == "None"
    assert out["snap-start"] == "(['before_snapshot'], ['after_restore'])"


def test_before_the_snapshot_the_service_is_built_and_warmed(
    hooks: FakeHooks, bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    composition.configure(embedded_settings(bundle_dir, tmp_path, metrics_enabled=True))
    assert composition.peek() is None
    hooks.snapshot()
    container = composition.peek()
    assert container is not None and container.bundle is not None  # settings, bundle, user tower, index
    assert openapi_document.cache_info().currsize == 1  # generated before the snapshot, not on a first GET
    warmed = [line for line in capsys.readouterr().err.splitlines() if "ready for the snapshot" in line]
    assert len(warmed) == 1
    statuses = json.loads(warmed[0])["warm_up"]
    assert statuses == {"POST /recommendations": 200, "GET /movies/search": 200, "GET /health": 200,
                        "GET /openapi.json": 200, "GET /movies/1": 200, "GET /movies/1/similar": 200}
    # the warm-up is no traffic: no request log line, and its metrics are dropped rather than flushed later
    assert container.telemetry is not None and not container.telemetry.metrics.metric_set
    status, first = recommend()
    assert status == 200 and len(first["items"]) == 5
    out = capsys.readouterr().out
    assert '"Requests"' in out and "CacheMisses" in out and out.count("RequestLatency") == 2  # name + value, once


def test_the_handler_answers_across_a_restore_with_fresh_state(
    hooks: FakeHooks, bundle_dir: Path, tmp_path: Path
) -> None:
    composition.configure(embedded_settings(bundle_dir, tmp_path))
    hooks.snapshot()
    status, before = recommend()
    assert status == 200 and before["cached"] is False
    assert recommend()[1]["cached"] is True
    container = composition.peek()
    assert container is not None and isinstance(container.service.cache, MemoryCache)
    shared_state = random.getstate()  # what every environment restored from this snapshot would start with

    hooks.restore()

    assert random.getstate() != shared_state  # reseeded from the OS
    assert composition.peek() is container  # the loaded model and index are kept
    assert len(container.service.cache) == 0  # entries made on the snapshot's clock are dropped
    status, after = recommend()
    assert status == 200 and after["cached"] is False
    assert [i["movie_id"] for i in after["items"]] == [i["movie_id"] for i in before["items"]]


def test_a_failed_build_before_the_snapshot_does_not_fail_the_publish(
    hooks: FakeHooks, tmp_path: Path
) -> None:
    # e.g. a first deploy, before any bundle is uploaded: the snapshot holds no service, a restored environment
    # builds it on its first request (retried at once, not after the failure's 10 s on the snapshot's clock)
    composition.configure(embedded_settings(tmp_path / "no-bundle-yet", tmp_path))
    hooks.snapshot()
    assert composition.peek() is None
    hooks.restore()
    status, answer = recommend()
    assert status == 503 and answer["error"] == "model_unavailable"


@pytest.mark.opensearch
def test_after_the_restore_redis_and_opensearch_get_new_clients(
    hooks: FakeHooks, bundle_dir: Path, bundle: Bundle, tmp_path: Path, opensearch_url: str, redis_url: str,
    unique_name: Callable[[str], str],
) -> None:
    # GIVEN the deployed shape: OpenSearch k-NN and Redis, the service built and warmed before the snapshot
    alias = unique_name("movies")
    create_movie_index(opensearch_url, unique_name("movies-idx"), alias, bundle.catalog, bundle.movie_vectors,
                       model_version=bundle.model_version)
    composition.configure(embedded_settings(bundle_dir, tmp_path, opensearch_url=opensearch_url,
                                            opensearch_alias=alias, redis_url=redis_url, model_check_seconds=3600))
    hooks.snapshot()
    container = composition.peek()
    assert container is not None
    index, cache = container.service.index, container.service.cache
    assert isinstance(index, OpenSearchIndex) and isinstance(cache, RedisCache)
    status, before = recommend()
    assert status == 200 and before["fallback"] is None
    opensearch_before, redis_before = index._client, cache._client
    old_connections = [*redis_before.connection_pool._available_connections,
                       *redis_before.connection_pool._in_use_connections]
    assert any(c._sock is not None for c in old_connections)  # the snapshot would hold open sockets

    # WHEN the environment is restored
    hooks.restore()

    # THEN no client, connection or credential of the snapshot is used again, and the answer is the same one
    assert composition.peek() is container
    assert index._client is not opensearch_before and cache._client is not redis_before
    assert all(c._sock is None for c in old_connections)  # the old pool was disconnected
    assert index._live is None  # the alias' model is read again (the snapshot may be days old)
    status, after = recommend()
    assert status == 200 and after["cached"] is True  # Redis is shared: the answer cached before the snapshot
    assert [i["movie_id"] for i in after["items"]] == [i["movie_id"] for i in before["items"]]
    status, health = invoke(load_event("get_health"))
    assert status == 200 and health["status"] == "ok"


def test_a_restore_that_cannot_rebuild_a_client_builds_the_service_again(
    hooks: FakeHooks, bundle_dir: Path, tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    composition.configure(embedded_settings(bundle_dir, tmp_path, redis_url=redis_url,
                                            redis_auth_secret_arn="arn:aws:secretsmanager:eu-west-1:1:secret:t"))
    monkeypatch.setattr(composition, "redis_password", lambda settings: None)  # the token, before the snapshot
    hooks.snapshot()
    assert composition.peek() is not None

    def unreadable(settings: Any) -> str:
        raise CompositionError("cannot read the Redis auth token: AccessDenied")

    monkeypatch.setattr(composition, "redis_password", unreadable)
    hooks.restore()  # never raises: Lambda would fail the restore
    assert composition.peek() is None
    monkeypatch.setattr(composition, "redis_password", lambda settings: None)  # readable again
    status, answer = recommend()
    assert status == 200 and answer["cached"] is False
