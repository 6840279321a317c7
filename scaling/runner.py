"""One forecaster run: read the history, plan, write the actions (or only show them on a dry run).

Shared by ``recs scaling plan`` and the scheduled Lambda. AWS clients are built here, lazily,
only when the caller did not pass its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scaling.actions import ApplyResult, ScalableTarget, apply_plan, describe_target
from scaling.errors import ForecasterError, MetricsError
from scaling.log import event, get_logger
from scaling.metrics import MetricHistory, fetch_history, floor_hour
from scaling.plan import Plan, build_plan
from scaling.settings import ScalingSettings


@dataclass(frozen=True)
class RunResult:
    plan: Plan
    applied: ApplyResult | None
    target: ScalableTarget | None
    history: MetricHistory | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "resource_id": self.plan.resource_id,
            "mode": self.plan.mode,
            "notes": self.plan.notes,
            "min_capacity": [h.min_capacity for h in self.plan.hours],
            "applied": self.applied.to_json() if self.applied else None,
        }


def _client(name: str, settings: ScalingSettings) -> Any:
    import boto3  # in the Lambda runtime; imported only when a client is needed

    make_client: Any = boto3.client  # the service name is dynamic, so the typed overloads do not apply
    return make_client(name, region_name=settings.aws_region)


def run_forecaster(
    settings: ScalingSettings,
    *,
    now: datetime | None = None,
    dry_run: bool | None = None,
    history: MetricHistory | None = None,
    cloudwatch: Any = None,
    autoscaling: Any = None,
    logger: logging.Logger | None = None,
) -> RunResult:
    """Plan the next ``horizon_hours`` and, unless it is a dry run, write them.

    ``history`` skips CloudWatch (offline dry runs); otherwise it is read with ``cloudwatch``.
    A metrics failure is not fatal: the plan falls back to the floor and says so.
    """
    log = logger or get_logger()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    dry_run = settings.dry_run if dry_run is None else dry_run
    resource_id = settings.scalable_resource_id
    notes: list[str] = []

    target: ScalableTarget | None = None
    if autoscaling is None and not (dry_run and history is not None):
        autoscaling = _client("application-autoscaling", settings)
    if autoscaling is not None:
        try:
            target = describe_target(autoscaling, resource_id)
        except Exception as exc:
            notes.append(f"could not describe the scalable target: {type(exc).__name__}: {exc}")
        else:
            if target is None:
                notes.append(f"no scalable target is registered for {resource_id}")

    read_error: str | None = None
    if history is None:
        if cloudwatch is None:
            cloudwatch = _client("cloudwatch", settings)
        try:
            history, fetch_notes = fetch_history(
                cloudwatch,
                function_name=settings.metric_function_name,
                alias=settings.metric_alias,
                end=floor_hour(now),
                days=settings.history_days,
                period_seconds=settings.period_seconds,
                duration_statistic=settings.duration_statistic,
            )
            notes.extend(fetch_notes)
        except MetricsError as exc:
            read_error = str(exc)
            history = None

    plan = build_plan(
        settings,
        now,
        history,
        read_error=read_error,
        target_max_capacity=target.max_capacity if target else None,
        notes=notes,
    )
    for note in plan.notes:
        event(log, logging.WARNING, note, event="forecaster.fallback", resource_id=resource_id)
    event(
        log,
        logging.INFO,
        "planned",
        event="forecaster.plan",
        resource_id=resource_id,
        mode=plan.mode,
        min_capacity=[h.min_capacity for h in plan.hours],
        first_hour=plan.hours[0].hour.isoformat(),
        dry_run=dry_run,
    )
    if dry_run:
        return RunResult(plan, None, target, history)
    if target is None:
        raise ForecasterError(f"nothing written: no usable scalable target for {resource_id} ({'; '.join(notes)})")
    applied = apply_plan(autoscaling, plan, settings.action_prefix)
    event(log, logging.INFO, "scheduled actions written", event="forecaster.applied", **applied.to_json())
    return RunResult(plan, applied, target, history)
