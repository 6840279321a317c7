"""``recs index ...`` (and ``python -m indexer ...``, the container's entry point): the same commands.

    recs index rebuild  [--bundle PATH|s3://...]   full rebuild into a new index, then an atomic swap
    recs index update   DELTA [--bundle ...]       upsert/delete movies from a CSV or JSON delta
    recs index rollback [--to NAME]                point the alias back at the previous index
    recs index status                              alias, indices, rollback candidates, generation
    recs index auto     [--bucket B --key K]       what an S3 object asks for (RECS_S3_BUCKET/KEY)

The target is OpenSearch when ``--opensearch-url``/``RECS_OPENSEARCH_URL`` is set, else the
embedded store (``--embedded-store``/``RECS_EMBEDDED_STORE``). Exit status: 0 done, 1 failed
(nothing half-built was made live), 2 bad input or settings, 75 another run holds the lock.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

COMMANDS = ("rebuild", "update", "rollback", "status", "auto")


def _common(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("target (an argument beats the RECS_* variable)")
    where.add_argument("--opensearch-url", help="OpenSearch endpoint (RECS_OPENSEARCH_URL); unset: embedded store")
    where.add_argument("--embedded-store", help="embedded store directory (RECS_EMBEDDED_STORE, default "
                                                "artifacts/index); given explicitly, it wins over RECS_OPENSEARCH_URL")
    where.add_argument("--alias", help="alias the API reads (RECS_OPENSEARCH_ALIAS, default movies)")
    where.add_argument("--redis-url", help="Redis for the generation counter and the lock (RECS_REDIS_URL)")
    run = parser.add_argument_group("run")
    run.add_argument("--lock-wait", type=float, metavar="SECONDS",
                     help="wait this long for a busy lock (RECS_INDEX_LOCK_WAIT_SECONDS, default 0: exit)")
    run.add_argument("--lock-ttl", type=float, metavar="SECONDS", help="lock TTL (RECS_INDEX_LOCK_TTL_SECONDS, 120)")


def _index_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("new index (RECS_INDEX_* variables)")
    group.add_argument("--keep", type=int, help="earlier indices kept for rollback (RECS_INDEX_KEEP, default 2)")
    group.add_argument("--engine", choices=("faiss", "lucene"), help="k-NN engine (default faiss)")
    group.add_argument("--space-type", choices=("innerproduct", "cosinesimil", "l2"),
                       help="vector space (default: the bundle's, innerproduct)")
    group.add_argument("--m", type=int, help="HNSW m (default 16)")
    group.add_argument("--ef-construction", type=int, help="HNSW ef_construction (default 128)")
    group.add_argument("--ef-search", type=int, help="HNSW ef_search (default 100)")
    group.add_argument("--shards", type=int, help="primary shards (default 1)")
    group.add_argument("--replicas", type=int, help="replicas (default 1)")
    group.add_argument("--bulk-docs", type=int, help="documents per bulk request (default 500)")
    group.add_argument("--bulk-workers", type=int, help="bulk requests in flight at once (default 4)")
    group.add_argument("--probes", type=int, help="known movies probed after the load (default 3; 0: none)")


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Add rebuild/update/rollback/status/auto to a subparsers object."""
    p = sub.add_parser("rebuild", help="full rebuild from a bundle into a new index, then an atomic alias swap")
    p.add_argument("--bundle", help="bundle directory or s3://bucket/prefix (RECS_BUNDLE, default artifacts/bundle)")
    _common(p)
    _index_options(p)

    p = sub.add_parser("update", help="apply a catalog delta (CSV or JSON: new/changed movies, removed ids)")
    p.add_argument("delta", help="delta file (.csv or .json) or s3://bucket/key")
    p.add_argument("--bundle", help="bundle of the live model, for its item tower (RECS_BUNDLE)")
    _common(p)

    p = sub.add_parser("rollback", help="point the alias back at the index that was live before")
    p.add_argument("--to", help="a specific earlier index (see `status`)")
    _common(p)

    p = sub.add_parser("status", help="show the alias, the indices, rollback candidates and the generation")
    _common(p)

    p = sub.add_parser("auto", help="run what an S3 object asks for: bundles/<v>/manifest.json -> rebuild, "
                                    "deltas/<name>.(json|csv) -> update")
    p.add_argument("--bucket", help="S3 bucket (RECS_S3_BUCKET, set by the EventBridge rule)")
    p.add_argument("--key", help="S3 key (RECS_S3_KEY, set by the EventBridge rule)")
    p.add_argument("--bundle", help="bundle for a delta (default: <bucket>/bundles/<live model version>)")
    _common(p)
    _index_options(p)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``recs index ...``."""
    parser = subparsers.add_parser("index", help="build, update and roll back the movie index",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="index_command", metavar="JOB", required=True)
    add_commands(sub)
    parser.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace) -> Any:
    from indexer.settings import IndexerSettings

    names = ("bundle", "embedded_store", "opensearch_url", "alias", "redis_url", "lock_wait", "lock_ttl", "keep",
             "engine", "space_type", "m", "ef_construction", "ef_search", "shards", "replicas", "bulk_docs",
             "bulk_workers", "probes")
    overrides = {n: getattr(args, n, None) for n in names}
    if getattr(args, "embedded_store", None) and not getattr(args, "opensearch_url", None):
        overrides["opensearch_url"] = ""  # an explicit store beats RECS_OPENSEARCH_URL
    return IndexerSettings.from_env(overrides)


def run(args: argparse.Namespace) -> int:
    """Run one job; errors are reported (JSON on a non-terminal) and turned into an exit status."""
    from core.errors import BundleError, EmbeddedStoreError
    from indexer.errors import DeltaError, IndexerError
    from indexer.jobs import Indexer
    from indexer.reporting import Reporter

    reporter = Reporter()
    command = getattr(args, "index_command", None) or "auto"
    try:
        indexer = Indexer(settings_from_args(args), reporter)
        if command == "rebuild":
            indexer.rebuild(args.bundle)
        elif command == "update":
            indexer.update(args.delta, args.bundle)
        elif command == "rollback":
            indexer.rollback(args.to)
        elif command == "status":
            print(json.dumps(indexer.status(), indent=2 if sys.stdout.isatty() else None))
        else:
            indexer.auto(getattr(args, "bucket", None), getattr(args, "key", None), getattr(args, "bundle", None))
    except (IndexerError, BundleError, EmbeddedStoreError) as exc:
        code = exc.exit_code if isinstance(exc, IndexerError) else 1
        if reporter.tty:
            print(f"recs index {command}: error: {exc}", file=sys.stderr)
        else:
            extra: dict[str, Any] = {"problems": exc.problems} if isinstance(exc, DeltaError) else {}
            failures = getattr(exc, "failures", None)
            if failures:
                extra["failures"] = [{"id": f.doc_id, "status": f.status, "reason": f.reason} for f in failures]
            reporter.log("failed", level="error", job=command, error_type=type(exc).__name__, error=str(exc), **extra)
        return code
    return 0
