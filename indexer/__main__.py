"""``python -m indexer [JOB ...]``: the Fargate task's entry point (``auto`` when no job is named).

With no arguments it reads ``RECS_S3_BUCKET``/``RECS_S3_KEY`` (the EventBridge rule's container
overrides) and runs a full rebuild for a new bundle manifest or an update for a delta file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from indexer.cli import add_commands, run


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m indexer",
        description="The movie indexer (the same jobs as `recs index`). With no job: `auto`, from "
                    "RECS_S3_BUCKET and RECS_S3_KEY.",
    )
    sub = parser.add_subparsers(dest="index_command", metavar="JOB")
    add_commands(sub)
    if not args_in:
        args_in = ["auto"]
    args = parser.parse_args(args_in)
    if args.index_command is None:  # only global options were given
        args = parser.parse_args([*args_in, "auto"])
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
