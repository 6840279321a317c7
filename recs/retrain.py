"""``recs retrain``: the retraining job (``training.retrain``) and, on this machine, the indexer after a publish.

Deployed, publishing ``bundles/<version>/manifest.json`` to S3 is what starts the indexer (the bucket's
EventBridge rule); a local bundle root has no such trigger, so after a publish into one this command runs
``recs index rebuild`` on the published bundle itself (the embedded store, or OpenSearch when
``RECS_OPENSEARCH_URL`` names one). Then ``recs serve --bundle artifacts/bundles/`` serves the new model:
under a bundle root the API follows the live index's model.

    recs retrain --data data/ml-latest-small        # train, gate, publish into artifacts/bundles/, index
    recs serve --bundle artifacts/bundles/           # the live model, whichever it is
    recs index rollback                              # back to the previous model (the API follows)
"""

from __future__ import annotations

import argparse
import json
from typing import Any

INDEX_MODES = ("auto", "always", "never")


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    from training.retrain_cli import DESCRIPTION, EPILOG, add_arguments

    parser = subparsers.add_parser(
        "retrain",
        help="retrain on the newest ratings, publish the model only if it passes the quality gate, index it",
        description=DESCRIPTION + " Locally (a bundle root that is a directory) the published bundle is then "
        "indexed, so `recs serve --bundle artifacts/bundles/` serves it.",
        epilog=EPILOG,
    )
    add_arguments(parser)
    parser.add_argument("--index", choices=INDEX_MODES, default="auto",
                        help="run `recs index rebuild` on a published bundle: auto = when the bundle root is local "
                             "(in S3 the upload starts the deployed indexer), always, never (default: auto)")
    parser.set_defaults(func=cmd_retrain)


def cmd_retrain(args: argparse.Namespace) -> int:
    from core.locations import is_s3
    from training.retrain_cli import run

    code = run(args)
    result = getattr(args, "retrain_result", None)
    if code != 0 or result is None or result.location is None:
        return code
    location = str(result.location)
    if args.index == "never" or (args.index == "auto" and is_s3(location)):
        return code
    indexed = _index(args, location)
    print(json.dumps({**result.summary(), "indexed": indexed == 0}))  # the last line: the run's summary
    return indexed


def _index(args: argparse.Namespace, location: str) -> int:
    """``recs index rebuild --bundle <published>`` against the live index this run compared with."""
    from recs.cli import main as recs_main

    settings = args.retrain_settings
    command = ["index", "rebuild", "--bundle", location]
    if settings.opensearch_url:
        command += ["--opensearch-url", settings.opensearch_url]
    else:
        command += ["--embedded-store", settings.embedded_store]
    command += ["--alias", settings.alias]
    if settings.redis_url:
        command += ["--redis-url", settings.redis_url]
    print(f"==> indexing the published model: recs {' '.join(command)}", flush=True)
    indexed = recs_main(command)
    if indexed:
        print(f"retrain: the model was published to {location} but indexing it failed (exit {indexed}); run "
              f"`recs index rebuild --bundle {location}` again", flush=True)
    return int(indexed)
