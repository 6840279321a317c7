"""Fixtures of the fault tests: synthetic bundles, the local server over HTTP, load in the background.

``under_load(url, mix)`` keeps ``bench.load``'s clients sending requests to a server while a test
breaks something under it; every answer is kept as a ``bench.load.Sample`` (start time, status,
``cached``, ``fallback``), so a test can look at what was answered before, during and after a
fault. Waits are bounded (they fail the test with a message instead of hanging), never timed
assertions: they wait for a number of answers, not for a duration.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bench.load import LoadRun, Mix, Sample, drive
from core.bundle import Bundle
from recommender.settings import ServiceSettings
from recs.local.server import LocalServer, build_server
from recs.local.synthetic import write_synthetic_bundle

ROOT = Path(__file__).resolve().parents[2]
N_MOVIES = 400
WAIT_SECONDS = 90.0
"""Upper bound of any wait for answers (a generous bound on a loaded 2-core machine, not a target)."""


@pytest.fixture(scope="session")
def fault_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """A valid synthetic bundle (movies 1..400, dimension 16), model ``faults-m1``; read-only."""
    return write_synthetic_bundle(tmp_path_factory.mktemp("faults") / "m1", n_movies=N_MOVIES, dimension=16,
                                  history_length=10, seed=21, model_version="faults-m1")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., LocalServer]]:
    """``serve(bundle, **settings)`` -> a running local server (the ``recs serve`` server, in this process)."""
    servers: list[LocalServer] = []

    def start(bundle: Bundle | Path, **overrides: Any) -> LocalServer:
        path = bundle.path if isinstance(bundle, Bundle) else bundle
        overrides.setdefault("embedded_store", str(tmp_path / "store"))
        settings = ServiceSettings.from_env(env={}, bundle=str(path), **overrides)
        server = build_server(port=0, settings=settings).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()


class BackgroundLoad:
    """``bench.load.drive`` on a thread; ``samples`` grows as answers arrive."""

    def __init__(self, url: str, mix: Mix, clients: int, max_seconds: float, expected: set[int]) -> None:
        self.expected = expected
        self.samples: list[Sample] = []
        self.stop_event = threading.Event()
        self.result: LoadRun | None = None

        def run() -> None:
            self.result = drive(url, mix, clients=clients, duration=max_seconds, stop=self.stop_event,
                                on_sample=self.samples.append)

        self.thread = threading.Thread(target=run, name="background-load", daemon=True)

    def since(self, moment: float) -> list[Sample]:
        return [s for s in list(self.samples) if s.started >= moment]

    def between(self, start: float, end: float) -> list[Sample]:
        """Samples sent at or after ``start`` and answered before ``end``."""
        return [s for s in list(self.samples) if s.started >= start and s.started + s.seconds <= end]

    def wait_for(self, what: str, predicate: Callable[[Sequence[Sample]], bool]) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while not predicate(list(self.samples)):
            unexpected = [s for s in list(self.samples) if s.status not in self.expected]
            if unexpected:  # fail at once, with the first culprit, rather than at the deadline
                first = unexpected[0]
                raise AssertionError(f"an answer {first.status} ({first.error}) while waiting for {what}")
            if self.stop_event.is_set() or not self.thread.is_alive():
                raise AssertionError(f"the load stopped before {what}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {WAIT_SECONDS:.0f} s ({len(self.samples)} answers so far)")
            time.sleep(0.02)

    def wait_for_answers(self, count: int, after: float, what: str = "") -> None:
        self.wait_for(what or f"{count} answers", lambda samples: sum(s.started >= after for s in samples) >= count)


@contextlib.contextmanager
def under_load(url: str, mix: Mix, clients: int = 4, max_seconds: float = 240.0,
               expected: set[int] | None = None) -> Iterator[BackgroundLoad]:
    """Load on ``url`` for the duration of the block (bounded by ``max_seconds``); a wait fails at once
    when an answer's status is not in ``expected`` (default: 200 only)."""
    load = BackgroundLoad(url, mix, clients, max_seconds, expected or {200})
    load.thread.start()
    try:
        yield load
    finally:
        load.stop_event.set()
        load.thread.join(timeout=60)
