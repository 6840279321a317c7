"""Indexer benchmark: ``python -m bench.indexer [--quick] [--sizes 100000,1000000]``.

Full rebuilds of synthetic catalogs (64-d vectors by default) into an in-memory OpenSearch
(osmem) over HTTP, through the real job (``indexer.jobs.Indexer.rebuild``: bundle checks,
streaming read, bulk load with refresh off, count verification, alias swap). Each run happens in
a fresh child process so that its figures are its own:

* **docs/s**: documents over the wall time of the whole job (the bundle's sha256 checks included);
* **client CPU per 1,000 docs**: user + system CPU of the indexer process (the server is another
  process), for the whole job, and for the encoding alone (bundle read + NDJSON, nothing sent),
  which is the part that scales with the catalog and that this code controls;
* **peak RSS**: ``ru_maxrss`` of the child, and its growth over the RSS measured just before the
  job starts (after imports). Streaming keeps it flat: the 1M-movie run must not need more memory
  than the 100k one.

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
    from recommender import bundle as layout
    from recommender.synthetic import GENRES, WORDS, synthetic_catalog, synthetic_towers

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


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(mode: str, bundle: str, url: str, bulk_docs: int) -> dict[str, Any]:
    """One measured run (in its own process)."""
    import io

    from indexer.catalog_stream import BundleCatalog
    from indexer.documents import index_actions
    from indexer.jobs import Indexer
    from indexer.reporting import Reporter
    from indexer.settings import IndexerSettings
    from recommender.bundle import open_bundle

    settings = IndexerSettings.from_env({"opensearch_url": url, "alias": "movies", "probes": 0, "replicas": 0,
                                         "bulk_docs": bulk_docs, "request_timeout": 300.0}, env={})
    indexer = Indexer(settings, Reporter(stream=io.StringIO(), out=io.StringIO(), tty=False))
    if mode == "load":
        indexer.opensearch.info()  # the client exists before the baseline
    baseline, cpu0, t0 = _rss_mb(), _cpu(), time.perf_counter()
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
            "peak_rss_mb": _rss_mb(), **extra}


def run_child(mode: str, bundle: Path, url: str, bulk_docs: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.indexer", "--child", mode, "--bundle", str(bundle), "--url", url,
               "--bulk-docs", str(bulk_docs)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.indexer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="catalog sizes (comma-separated)")
    parser.add_argument("--quick", action="store_true", help="sizes 20000 and 100000 (a minute)")
    parser.add_argument("--dimension", type=int, default=64)
    parser.add_argument("--bulk-docs", type=int, default=500)
    parser.add_argument("--workdir", help="where bundles are written (default: a temp dir, removed after)")
    parser.add_argument("--child", choices=("encode", "load"), help=argparse.SUPPRESS)
    parser.add_argument("--bundle", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.bundle, args.url or "", args.bulk_docs)))
        return

    from osmem_server import OsmemServer

    sizes = [20_000, 100_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-indexer-", dir=args.workdir) as tmp, \
            OsmemServer.start(japanese=False) as server:
        for n in sizes:
            bundle = Path(tmp) / f"bundle-{n}"
            started = time.perf_counter()
            write_streamed_bundle(bundle, n, args.dimension)
            print(f"  wrote a {n:,}-movie bundle in {time.perf_counter() - started:.1f} s", file=sys.stderr)
            encode = run_child("encode", bundle, "", args.bulk_docs)
            with server.clone() as clone:
                load = run_child("load", bundle, clone.url, args.bulk_docs)
            rows.append({
                "movies": n,
                "docs_per_s": round(load["docs"] / load["seconds"], 1),
                "seconds": round(load["seconds"], 2),
                "client_cpu_ms_per_1k_docs": round(1000 * load["cpu_seconds"] / n * 1000, 2),
                "encode_cpu_ms_per_1k_docs": round(1000 * encode["cpu_seconds"] / n * 1000, 2),
                "peak_rss_mb": round(load["peak_rss_mb"], 1),
                "rss_growth_mb": round(load["peak_rss_mb"] - load["baseline_rss_mb"], 1),
                "encode_peak_rss_mb": round(encode["peak_rss_mb"], 1),
                "payload_bytes_per_doc": encode["payload_bytes_per_doc"],
            })
            print(f"  {n:,}: {rows[-1]['docs_per_s']:,.0f} docs/s", file=sys.stderr)
            for path in bundle.iterdir():
                path.unlink()

    header = ("movies", "docs/s", "wall s", "CPU ms/1k docs", "encode CPU ms/1k", "peak RSS MB", "RSS growth MB")
    print("Indexer full rebuild into osmem (one process per run; probes off)")
    print("  ".join(f"{h:>16}" for h in header))
    for r in rows:
        cells = (f"{r['movies']:,}", f"{r['docs_per_s']:,.0f}", f"{r['seconds']:.1f}",
                 f"{r['client_cpu_ms_per_1k_docs']:.1f}", f"{r['encode_cpu_ms_per_1k_docs']:.1f}",
                 f"{r['peak_rss_mb']:.0f}", f"{r['rss_growth_mb']:.0f}")
        print("  ".join(f"{c:>16}" for c in cells))
    small, large = rows[0], rows[-1]
    ratios = {
        "catalog": large["movies"] / small["movies"],
        "peak_rss": round(large["peak_rss_mb"] / small["peak_rss_mb"], 3),
        "cpu_per_1k_docs": round(large["client_cpu_ms_per_1k_docs"] / small["client_cpu_ms_per_1k_docs"], 3),
        "docs_per_s": round(large["docs_per_s"] / small["docs_per_s"], 3),
    }
    print(f"largest/smallest: catalog x{ratios['catalog']:.0f}, peak RSS x{ratios['peak_rss']:.2f}, "
          f"CPU per 1k docs x{ratios['cpu_per_1k_docs']:.2f}, docs/s x{ratios['docs_per_s']:.2f}")
    result = {"benchmark": "indexer", "dimension": args.dimension, "bulk_docs": args.bulk_docs,
              "python": sys.version.split()[0], "cpus": os.cpu_count(), "runs": rows, "ratios": ratios}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
