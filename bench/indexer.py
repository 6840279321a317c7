"""Indexer benchmark: ``python -m bench.indexer [--quick] [--sizes 100000,1000000]``.

Full rebuilds of synthetic catalogs (64-d vectors by default) over HTTP, through the real job
(``indexer.jobs.Indexer.rebuild``: bundle checks, streaming read, bulk load with refresh off,
count verification, alias swap), into two servers:

* **osmem**, the in-memory OpenSearch the tests use, for catalogs up to ``--osmem-max`` (200k):
  it keeps about 23 KB per movie document in memory (measured: 486 MB after 20k), so a million
  would need some 23 GB, more than this machine has;
* **sink**: the same osmem behind ``BulkSink``, a proxy that answers bulk requests itself (every
  document accepted and counted) and passes everything else through, for every size. It isolates
  the client's side, which is what scales with the catalog and what this code controls.

Each run happens in a fresh child process so that its figures are its own:

* **docs/s**: documents over the wall time of the whole job (the bundle's sha256 checks included);
* **client CPU per 1,000 docs**: user + system CPU of the indexer process (the server is another
  process), for the whole job, and for the encoding alone (bundle read + NDJSON, nothing sent),
  which is the part that scales with the catalog and that this code controls;
* **peak RSS**: the child's peak resident memory (``VmHWM``), and its growth over the resident
  memory just before the job starts (after imports and the client). Streaming keeps it flat: the
  1M-movie run must not need more memory than the 100k one (compared on the sink, in one run).

The probe queries are off (``probes=0``): osmem has no k-NN search (the tests use an emulation
proxy for that, which would also slow the bulk path). Synthetic bundles are written lazily
(catalog and vectors in chunks) to a temp directory, not built as a list of movies.

Prints a table, then the JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CHUNK = 50_000


def write_streamed_bundle(out: Path, n_movies: int, dimension: int, seed: int = 0) -> str:
    """A valid bundle of ``n_movies`` synthetic movies, written chunk by chunk; returns the model version."""
    from core import manifest as layout
    from recs.local.synthetic import GENRES, WORDS, synthetic_catalog, synthetic_towers

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    user, item = synthetic_towers(synthetic_catalog(50, seed), dimension=dimension, seed=seed)
    user_arrays: dict[str, Any] = user.arrays()
    item_arrays: dict[str, Any] = item.arrays()
    np.savez(out / layout.USER_TOWER, **user_arrays)
    np.savez(out / layout.ITEM_TOWER, **item_arrays)
    vectors = np.lib.format.open_memmap(out / layout.MOVIE_VECTORS, mode="w+", dtype=np.float32,
                                        shape=(n_movies, dimension))
    with (out / layout.CATALOG).open("w", encoding="utf-8") as fh:
        fh.write("[")
        for start in range(0, n_movies, CHUNK):
            size = min(CHUNK, n_movies - start)
            block = rng.standard_normal((size, dimension - 1)).astype(np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            pops = rng.zipf(1.6, size=size).clip(max=10_000).astype(np.float32)
            vectors[start : start + size, :-1] = block
            vectors[start : start + size, -1] = np.log1p(pops)
            years = rng.integers(1920, 2024, size=size)
            genre_idx = rng.integers(0, len(GENRES), size=(size, 2))
            word_idx = rng.integers(0, len(WORDS), size=(size, 2))
            rows = []
            for i in range(size):
                movie_id = start + i + 1
                rows.append(json.dumps({
                    "movie_id": movie_id,
                    "title": f"The {WORDS[word_idx[i, 0]]} {WORDS[word_idx[i, 1]]} {movie_id}",
                    "year": int(years[i]),
                    "genres": sorted({GENRES[genre_idx[i, 0]], GENRES[genre_idx[i, 1]]}),
                    "popularity": float(pops[i]),
                }))
            fh.write(("," if start else "") + ",".join(rows))
        fh.write("]")
    vectors.flush()
    del vectors
    model_version = f"bench-{n_movies}"
    files = {name: {"sha256": layout.sha256_file(out / name), "bytes": (out / name).stat().st_size}
             for name in layout.REQUIRED_FILES}
    manifest = {"format_version": layout.FORMAT_VERSION, "model_version": model_version, "dimension": dimension,
                "history_length": user.history_length, "space_type": "innerproduct", "movies": n_movies,
                "dataset": {"name": "synthetic-bench", "movies": n_movies}, "files": files}
    (out / layout.MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return model_version


def _proc_status_mb(field: str) -> float | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024.0
    return None


def _peak_rss_mb() -> float:
    """Peak resident memory of this process image: ``VmHWM`` on Linux.

    Not ``ru_maxrss``: on Linux that survives ``exec`` and so starts at the parent's RSS at fork
    time (here the bench process, which has just written a bundle through a memory map).
    """
    peak = _proc_status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _rss_now_mb() -> float:
    now = _proc_status_mb("VmRSS")
    return now if now is not None else _peak_rss_mb()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(mode: str, bundle: str, url: str, bulk_docs: int, workers: int = 4) -> dict[str, Any]:
    """One measured run (in its own process)."""
    import io

    from core.bundle import open_bundle
    from indexer.catalog_stream import BundleCatalog
    from indexer.documents import index_actions
    from indexer.jobs import Indexer
    from indexer.reporting import Reporter
    from indexer.settings import IndexerSettings

    settings = IndexerSettings.from_env({"opensearch_url": url, "alias": "movies", "probes": 0, "replicas": 0,
                                         "bulk_docs": bulk_docs, "bulk_workers": workers, "request_timeout": 300.0},
                                        env={})
    indexer = Indexer(settings, Reporter(stream=io.StringIO(), out=io.StringIO(), tty=False))
    if mode == "load":
        indexer.opensearch.info()  # the client exists before the baseline
    baseline, cpu0, t0 = _rss_now_mb(), _cpu(), time.perf_counter()
    if mode == "encode":
        stream = BundleCatalog(open_bundle(bundle), batch_size=bulk_docs)
        docs = payload = 0
        for batch in stream.batches():
            for action in index_actions("movies-x", batch.movies, batch.vectors):
                docs += 1
                payload += len(action.payload)
        extra: dict[str, Any] = {"payload_bytes_per_doc": round(payload / max(docs, 1), 1)}
    else:
        summary = indexer.rebuild(bundle)
        docs = summary.documents
        extra = {"index": summary.index}
    seconds, cpu = time.perf_counter() - t0, _cpu() - cpu0
    return {"mode": mode, "docs": docs, "seconds": seconds, "cpu_seconds": cpu, "baseline_rss_mb": baseline,
            "peak_rss_mb": _peak_rss_mb(), "workers": workers, **extra}


def run_child(mode: str, bundle: Path, url: str, bulk_docs: int, workers: int = 4) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.indexer", "--child", mode, "--bundle", str(bundle), "--url", url,
               "--bulk-docs", str(bulk_docs), "--bulk-workers", str(workers)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


class BulkSink:
    """A pass-through proxy to osmem that absorbs bulk loads: every document is accepted and counted.

    For catalogs osmem cannot hold (it keeps about 23 KB per 64-d movie document in memory, so a
    million would need some 23 GB): everything the job sends (index creation, settings, the lock
    document, aliases, mappings) reaches the real osmem, except ``_bulk`` (answered "201" for each
    document, as fast as it can be parsed) and ``_count`` of an index it absorbed (its tally).
    The job's client-side work is then the same as against a server, without the server's limits.
    """

    def __init__(self, upstream: str) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        target = urlsplit(upstream)
        counts: dict[str, int] = {}
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> None:
                self.send_response(status)
                for key, value in headers or [("content-type", "application/json")]:
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _handle(self) -> None:
                import http.client

                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                path = self.path.split("?", 1)[0]
                if path.endswith("/_bulk") and self.command in ("POST", "PUT"):
                    metas = [line for line in body.split(b"\n") if line.startswith(b'{"index":')]
                    if metas:
                        index = json.loads(metas[0])["index"]["_index"]
                        with lock:
                            counts[index] = counts.get(index, 0) + len(metas)
                    items = ",".join(['{"index":{"status":201}}'] * len(metas))
                    self._reply(200, f'{{"took":0,"errors":false,"items":[{items}]}}'.encode())
                    return
                parts = path.strip("/").split("/")
                if len(parts) == 2 and parts[1] == "_count" and parts[0] in counts:
                    self._reply(200, json.dumps({"count": counts[parts[0]]}).encode())
                    return
                conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=300)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                response = conn.getresponse()
                data = response.read()
                conn.close()
                self._reply(response.status, data, response.getheaders())

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> BulkSink:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _row(n: int, server: str, load: dict[str, Any], encode: dict[str, Any]) -> dict[str, Any]:
    return {
        "movies": n,
        "server": server,
        "workers": load.get("workers"),
        "docs_per_s": round(load["docs"] / load["seconds"], 1),
        "seconds": round(load["seconds"], 2),
        "client_cpu_ms_per_1k_docs": round(1000 * load["cpu_seconds"] / n * 1000, 2),
        "encode_cpu_ms_per_1k_docs": round(1000 * encode["cpu_seconds"] / n * 1000, 2),
        "peak_rss_mb": round(load["peak_rss_mb"], 1),
        "rss_growth_mb": round(load["peak_rss_mb"] - load["baseline_rss_mb"], 1),
        "encode_peak_rss_mb": round(encode["peak_rss_mb"], 1),
        "payload_bytes_per_doc": encode["payload_bytes_per_doc"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.indexer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="catalog sizes (comma-separated)")
    parser.add_argument("--quick", action="store_true", help="sizes 20000 and 100000, osmem up to 20000 (a minute)")
    parser.add_argument("--osmem-max", type=int, default=200_000,
                        help="largest catalog also loaded into osmem itself (~23 KB of its memory per movie)")
    parser.add_argument("--dimension", type=int, default=64)
    parser.add_argument("--bulk-docs", type=int, default=500)
    parser.add_argument("--bulk-workers", default="1,4",
                        help="bulk requests in flight (RECS_INDEX_BULK_WORKERS), comma-separated: each is measured "
                        "into the sink (1 = one request at a time, as before the setting existed)")
    parser.add_argument("--workdir", help="where bundles are written (default: a temp dir, removed after)")
    parser.add_argument("--child", choices=("encode", "load"), help=argparse.SUPPRESS)
    parser.add_argument("--bundle", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.bundle, args.url or "", args.bulk_docs,
                               int(str(args.bulk_workers).split(",")[-1]))))
        return

    from osmem_server import OsmemServer

    sizes = [20_000, 100_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    workers = [int(w) for w in str(args.bulk_workers).split(",") if w.strip()]
    osmem_max = 20_000 if args.quick else args.osmem_max
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-indexer-", dir=args.workdir) as tmp, \
            OsmemServer.start(japanese=False) as server:
        for n in sizes:
            bundle = Path(tmp) / f"bundle-{n}"
            started = time.perf_counter()
            write_streamed_bundle(bundle, n, args.dimension)
            print(f"  wrote a {n:,}-movie bundle in {time.perf_counter() - started:.1f} s", file=sys.stderr)
            encode = run_child("encode", bundle, "", args.bulk_docs)
            for w in workers:
                with server.clone() as clone, BulkSink(clone.url) as sink:
                    rows.append(_row(n, "sink", run_child("load", bundle, sink.url, args.bulk_docs, w), encode))
                print(f"  {n:,} into the sink, {w} worker(s): {rows[-1]['docs_per_s']:,.0f} docs/s", file=sys.stderr)
            if n <= osmem_max:
                with server.clone() as clone:
                    rows.append(_row(n, "osmem", run_child("load", bundle, clone.url, args.bulk_docs, workers[-1]),
                                     encode))
                print(f"  {n:,} into osmem: {rows[-1]['docs_per_s']:,.0f} docs/s", file=sys.stderr)
            for path in bundle.iterdir():
                path.unlink()

    header = ("movies", "server", "workers", "docs/s", "wall s", "CPU ms/1k docs", "encode CPU ms/1k",
              "peak RSS MB", "RSS growth MB")
    print("Indexer full rebuild (one process per run; probes off; sink = osmem with bulk loads absorbed)")
    print("  ".join(f"{h:>16}" for h in header))
    for r in rows:
        cells = (f"{r['movies']:,}", r["server"], str(r["workers"]), f"{r['docs_per_s']:,.0f}", f"{r['seconds']:.1f}",
                 f"{r['client_cpu_ms_per_1k_docs']:.1f}", f"{r['encode_cpu_ms_per_1k_docs']:.1f}",
                 f"{r['peak_rss_mb']:.0f}", f"{r['rss_growth_mb']:.0f}")
        print("  ".join(f"{c:>16}" for c in cells))
    sink_rows = [r for r in rows if r["server"] == "sink" and r["workers"] == workers[-1]]
    small, large = sink_rows[0], sink_rows[-1]
    ratios = {
        "catalog": large["movies"] / small["movies"],
        "peak_rss": round(large["peak_rss_mb"] / small["peak_rss_mb"], 3),
        "cpu_per_1k_docs": round(large["client_cpu_ms_per_1k_docs"] / small["client_cpu_ms_per_1k_docs"], 3),
        "encode_cpu_per_1k_docs": round(large["encode_cpu_ms_per_1k_docs"] / small["encode_cpu_ms_per_1k_docs"], 3),
    }
    print(f"sink, largest/smallest catalog (x{ratios['catalog']:.0f}): peak RSS x{ratios['peak_rss']:.2f}, "
          f"client CPU per 1k docs x{ratios['cpu_per_1k_docs']:.2f}")
    if len(workers) > 1:
        one = {r["movies"]: r for r in rows if r["server"] == "sink" and r["workers"] == workers[0]}
        ratios["docs_per_s_workers_over_one"] = round(large["docs_per_s"] / one[large["movies"]]["docs_per_s"], 2)
        print(f"sink, {large['movies']:,} movies: {large['docs_per_s']:,.0f} docs/s with {workers[-1]} workers, "
              f"{one[large['movies']]['docs_per_s']:,.0f} with {workers[0]} (x{ratios['docs_per_s_workers_over_one']})")
    osmem_rows = [r for r in rows if r["server"] == "osmem"]
    if osmem_rows:
        best = osmem_rows[-1]
        same = next(r for r in sink_rows if r["movies"] == best["movies"])
        ratios["osmem_over_sink_seconds"] = round(best["seconds"] / same["seconds"], 2)
        print(f"osmem, {best['movies']:,} movies: {best['docs_per_s']:,.0f} docs/s, "
              f"{ratios['osmem_over_sink_seconds']:.1f}x the sink's wall time (the server is the bottleneck)")
    result = {"benchmark": "indexer", "dimension": args.dimension, "bulk_docs": args.bulk_docs, "workers": workers,
              "python": sys.version.split()[0], "cpus": os.cpu_count(), "runs": rows, "ratios": ratios}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
