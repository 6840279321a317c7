"""The ``recs`` command: one entry point, subcommands contributed by each package.

Each package's ``cli`` module exposes ``register(subparsers)``; heavy imports
(TensorFlow, clients) happen inside the command functions, never here.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMAND_MODULES = (
    "training.cli",  # recs train, recs evaluate
    "indexer.cli",  # recs index ...
    "recommender.cli",  # recs serve, recs package
    "scaling.cli",  # recs scaling plan
    "recs.quickstart",  # recs up
)


class CommandError(Exception):
    """A command failed for a reason the user can act on; printed without a traceback."""


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
