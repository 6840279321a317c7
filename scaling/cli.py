"""``recs scaling plan``: forecast the next day and write (or, with ``--dry-run``, show) the schedule."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_CHART = "artifacts/scaling/plan.png"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this package's subcommands to ``recs``."""
    scaling = subparsers.add_parser(
        "scaling",
        help="predictive scaling of the API's provisioned concurrency",
        description="Predictive scaling of the serving Lambda's provisioned concurrency.",
    )
    sub = scaling.add_subparsers(dest="scaling_command", metavar="SUBCOMMAND", required=True)
    plan = sub.add_parser(
        "plan",
        help="forecast the next day and write the scheduled actions (or show them with --dry-run)",
        description=(
            "Read the alias's CloudWatch history, forecast the next day hour by hour, and write one "
            "Application Auto Scaling scheduled action per hour (MinCapacity). Settings default to "
            "RECS_SCALING_* variables; flags win."
        ),
    )
    plan.add_argument("--function", dest="function_name", help="serving Lambda function name")
    plan.add_argument("--alias", help="alias with provisioned concurrency (default live)")
    plan.add_argument("--resource-id", help="scalable target resource id (default function:<name>:<alias>)")
    plan.add_argument("--region", dest="aws_region", help="AWS region")
    plan.add_argument("--min-capacity", type=int, help="floor of every hour")
    plan.add_argument("--max-capacity", type=int, help="ceiling of every hour")
    plan.add_argument("--headroom", type=float, help="multiplier on the required concurrency")
    plan.add_argument("--quantile", type=float, help="upper quantile of the forecast, e.g. 0.9")
    plan.add_argument(
        "--target-utilization",
        type=float,
        help="size for the forecast mean concurrency at this utilisation, e.g. 0.6 (0: for the peak)",
    )
    plan.add_argument("--lead-minutes", type=int, help="actions fire this long before their hour")
    plan.add_argument("--history-days", type=int, help="days of CloudWatch history to read")
    plan.add_argument("--dry-run", action="store_true", help="print the plan and write a PNG; change nothing")
    plan.add_argument("--chart", type=Path, help=f"PNG of the plan (default on --dry-run: {DEFAULT_CHART})")
    plan.add_argument("--history", type=Path, help="read the metric history from this JSON file, not CloudWatch")
    plan.add_argument("--save-history", type=Path, help="save the metric history read to this JSON file")
    plan.add_argument("--now", help="plan as if it were this UTC time (ISO 8601); for replays")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON instead of a table")
    plan.set_defaults(func=_plan)


def _plan(args: argparse.Namespace) -> int:
    from core.errors import CommandError, SettingsError
    from scaling import log
    from scaling.errors import ForecasterError, ScalingActionsError
    from scaling.metrics import MetricHistory
    from scaling.runner import run_forecaster
    from scaling.settings import ScalingSettings

    log.configure()
    try:
        settings = ScalingSettings.from_env(
            function_name=args.function_name,
            alias=args.alias,
            resource_id=args.resource_id,
            aws_region=args.aws_region,
            min_capacity=args.min_capacity,
            max_capacity=args.max_capacity,
            headroom=args.headroom,
            quantile=args.quantile,
            target_utilization=args.target_utilization,
            lead_minutes=args.lead_minutes,
            history_days=args.history_days,
        )
        settings.scalable_resource_id  # noqa: B018 - fails early when neither function nor resource id is set
    except SettingsError as exc:
        raise CommandError(str(exc)) from exc
    now = None
    if args.now:
        try:
            now = datetime.fromisoformat(args.now)
        except ValueError:
            raise CommandError(f"--now: {args.now!r} is not an ISO 8601 time") from None
        now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    history = None
    if args.history:
        try:
            history = MetricHistory.load(args.history)
        except (OSError, ValueError) as exc:
            raise CommandError(f"--history: {exc}") from exc
    dry_run = args.dry_run or settings.dry_run
    try:
        result = run_forecaster(settings, now=now, dry_run=dry_run, history=history)
    except (ForecasterError, ScalingActionsError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    if args.save_history and result.history is not None:
        result.history.save(args.save_history)
        print(f"history: {args.save_history}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.plan.to_json(), indent=2))
    else:
        print(result.plan.table())
    chart = args.chart or (Path(DEFAULT_CHART) if dry_run else None)
    if chart is not None:
        from scaling.chart import write_plan_chart

        try:
            write_plan_chart(result.plan, chart)
        except ImportError:
            print("chart skipped: matplotlib is not installed (pip install -e '.[dev]')", file=sys.stderr)
        else:
            print(f"chart: {chart}", file=sys.stderr)
    if result.applied is not None:
        applied = result.applied
        print(
            f"written {len(applied.written)}, unchanged {len(applied.unchanged)}, deleted {len(applied.deleted)}",
            file=sys.stderr,
        )
    return 0
