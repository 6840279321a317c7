"""The ``recs`` command: one entry point, subcommands contributed by each package.

Each package's ``cli`` module exposes ``register(subparsers)``; heavy imports
(TensorFlow, clients) happen inside the command functions, never here.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys
from collections.abc import Sequence

from core.errors import CommandError

COMMAND_MODULES = (
    "training.cli",  # recs train, recs evaluate
    "recs.retrain",  # recs retrain (training.retrain, then the indexer on a local bundle root)
    "indexer.cli",  # recs index ...
    "recs.local.cli",  # recs serve
    "infra.cli",  # recs package lambda, recs deploy, recs deploy preflight
    "scaling.cli",  # recs scaling plan
    "recs.quickstart",  # recs up
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recs",
        description="Train, evaluate, index and serve the two-tower movie recommender.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(sub)
    return parser


SERVING_COMMANDS = ("serve",)


def _single_threaded_blas(argv: Sequence[str]) -> None:
    """For the local server: one BLAS thread per request thread.

    The server answers each request on its own thread and multiplies one user vector at a time; an
    OpenBLAS thread pool on top of that contends with the request threads (cache-miss throughput
    fell about tenfold under load, see bench.load). It must be set before numpy is imported.
    """
    if argv and argv[0] in SERVING_COMMANDS:
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, "1")


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    _single_threaded_blas(arguments)
    parser = build_parser()
    args = parser.parse_args(arguments)
    args.command_line = shlex.join(["recs", *arguments])  # what ran, for reports that say how they were made
    try:
        result = args.func(args)
    except CommandError as exc:
        print(f"recs {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
