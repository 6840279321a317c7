"""``recs up``: the README's main job on the embedded defaults.

Train on the bundled sample if no bundle exists (printing the evaluation table),
then index into the embedded store and serve the API locally; the last line printed is the address
of the try-it page (``recs serve``).

After ``recs retrain`` has published a model into the bundle root (``artifacts/bundles/``) and indexed it,
the embedded store serves a model that is not ``artifacts/bundle``'s: ``recs up`` then serves the root
(the API follows the live index) instead of indexing the older local bundle over it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from core.bundle import open_bundle
from core.errors import BundleError


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    up = subparsers.add_parser(
        "up",
        help="train if needed, index into the embedded store and serve the API locally",
        description="The quick start: train on the bundled MovieLens sample if no bundle exists (and print the "
        "evaluation table), index the bundle into the embedded store, and serve the API on the embedded "
        "defaults (numpy index, in-process cache).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    up.add_argument("--data", default="data/ml-latest-small", help="MovieLens directory to train on")
    up.add_argument("--bundle", default="artifacts/bundle", help="model bundle directory (trained if missing)")
    up.add_argument("--report", default="artifacts/report",
                    help="where training writes its report (beside the bundle: report/ holds the committed reference "
                         "run, which the quick start leaves alone)")
    up.add_argument("--store", default="artifacts/index", help="embedded index store to index into")
    up.add_argument("--bundles", default="artifacts/bundles/",
                    help="bundle root `recs retrain` publishes into: when the store serves a model found there, "
                         "the root is served (and nothing is trained or indexed)")
    up.add_argument("--retrain", action="store_true", help="train even if a valid bundle exists")
    up.add_argument("--host", default="127.0.0.1", help="address the local API binds")
    up.add_argument("--port", type=int, default=8080, help="port of the local API (0 picks a free one)")
    up.add_argument("--no-serve", action="store_true", help="stop after indexing (do not start the server)")
    up.set_defaults(func=cmd_up)


def _existing_bundle(path: Path) -> str | None:
    try:
        bundle = open_bundle(path)
        bundle.verify()
    except BundleError as exc:
        if (path / "manifest.json").exists():
            print(f"the bundle in {path} is not usable ({exc}); training a new one", file=sys.stderr)
        return None
    return bundle.model_version


def cmd_up(args: argparse.Namespace) -> int:
    from recs.cli import main as recs_main

    store = Path(args.store)
    retrained = None if args.retrain else _retrained_live_model(store, Path(args.bundles))
    if retrained is not None:
        print(f"==> the embedded index {store} serves {retrained}, published by `recs retrain` into {args.bundles}; "
              "serving that bundle root (the API follows the live index)", flush=True)
        return _serve(args, f"{str(args.bundles).rstrip('/')}/", store)
    bundle_dir = Path(args.bundle)
    version = None if args.retrain else _existing_bundle(bundle_dir)
    if version is None:
        print(f"==> training on {args.data} (no bundle in {bundle_dir} yet)", flush=True)
        code = recs_main(["train", "--data", args.data, "--out", str(bundle_dir), "--report", args.report])
        if code:
            return code
    else:
        print(f"==> using the bundle {version} in {bundle_dir} (pass --retrain to train again)", flush=True)
        _print_stored_metrics(bundle_dir)
    version = open_bundle(bundle_dir).model_version
    if _indexed_version(store) == version:
        print(f"==> the embedded index in {store} already serves {version}", flush=True)
    else:
        print(f"==> indexing {version} into the embedded store {store}", flush=True)
        code = recs_main(["index", "rebuild", "--bundle", str(bundle_dir), "--embedded-store", str(store)])
        if code:
            return code
    return _serve(args, str(bundle_dir), store)


def _serve(args: argparse.Namespace, bundle: str, store: Path) -> int:
    if args.no_serve:
        return 0
    # `recs serve` prints the API's address, a curl line, and last the try-it page's address
    print("==> serving the API and the try-it page on the embedded defaults (Ctrl-C stops it)", flush=True)
    # Replace this process with `recs serve`: numpy (already imported here) must start afresh with one
    # BLAS thread for the server, and signals (Ctrl-C, SIGTERM) then reach the server itself.
    serve = ["serve", "--bundle", bundle, "--store", str(store), "--host", args.host, "--port", str(args.port)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "recs", *serve])


def _retrained_live_model(store: Path, root: Path) -> str | None:
    """The live model's version when its bundle is under the bundle root (``recs retrain`` published it)."""
    version = _indexed_version(store)
    if version is None or not (root / version / "manifest.json").is_file():
        return None
    return version


def _indexed_version(store: Path) -> str | None:
    """The model version the embedded store's alias serves, if any."""
    from core.embedded_store import EmbeddedStore
    from core.errors import EmbeddedStoreError

    try:
        return EmbeddedStore(store).current().model_version
    except EmbeddedStoreError:
        return None


def _print_stored_metrics(bundle_dir: Path) -> None:
    from training.evaluation import METRICS
    from training.pipeline import MODEL_NAME

    metrics = open_bundle(bundle_dir).manifest.metrics
    if not metrics:
        return
    print(f"{'model':<22}" + "".join(f"{m:>12}" for m in METRICS))
    for name, row in sorted(metrics.items(), key=lambda item: item[0] != MODEL_NAME):
        print(f"{name:<22}" + "".join(f"{float(row.get(m, 0.0)):>12.4f}" for m in METRICS))
