"""Write the plan as Application Auto Scaling scheduled actions on the alias's scalable target.

Only ``MinCapacity`` is set: ``MaxCapacity`` stays whatever the scalable target says, and the
target-tracking policy keeps scaling between the two. Actions are written first and stale ones
(this prefix, not in the plan) deleted afterwards, so the target is never left without a schedule.
An action whose schedule and minimum are already right is not rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scaling.errors import ScalingActionsError
from scaling.plan import Plan

SERVICE_NAMESPACE = "lambda"
SCALABLE_DIMENSION = "lambda:function:ProvisionedConcurrency"
TIMEZONE = "Etc/UTC"
MAX_PAGES = 50


@dataclass(frozen=True)
class ScalableTarget:
    resource_id: str
    min_capacity: int
    max_capacity: int


@dataclass
class ApplyResult:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, list[str]]:
        return {"written": self.written, "unchanged": self.unchanged, "deleted": self.deleted}


def describe_target(autoscaling: Any, resource_id: str) -> ScalableTarget | None:
    """The alias's scalable target, or ``None`` when it is not registered."""
    response = autoscaling.describe_scalable_targets(
        ServiceNamespace=SERVICE_NAMESPACE, ResourceIds=[resource_id], ScalableDimension=SCALABLE_DIMENSION
    )
    for target in response.get("ScalableTargets", []):
        if target.get("ResourceId") == resource_id:
            return ScalableTarget(resource_id, int(target["MinCapacity"]), int(target["MaxCapacity"]))
    return None


def list_actions(autoscaling: Any, resource_id: str, prefix: str) -> dict[str, dict[str, Any]]:
    """This code's scheduled actions on the target, by name."""
    found: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {
        "ServiceNamespace": SERVICE_NAMESPACE,
        "ResourceId": resource_id,
        "ScalableDimension": SCALABLE_DIMENSION,
    }
    for _ in range(MAX_PAGES):
        page = autoscaling.describe_scheduled_actions(**kwargs)
        for action in page.get("ScheduledActions", []):
            name = action.get("ScheduledActionName", "")
            if name.startswith(prefix) and action.get("ResourceId", resource_id) == resource_id:
                found[name] = action
        token = page.get("NextToken")
        if not token:
            break
        kwargs["NextToken"] = token
    return found


def _up_to_date(existing: dict[str, Any] | None, schedule: str, min_capacity: int) -> bool:
    if existing is None:
        return False
    target_action = existing.get("ScalableTargetAction") or {}
    return (
        existing.get("Schedule") == schedule
        and target_action.get("MinCapacity") == min_capacity
        and "MaxCapacity" not in target_action
        and existing.get("Timezone", TIMEZONE) in (TIMEZONE, "UTC")
    )


def apply_plan(autoscaling: Any, plan: Plan, prefix: str) -> ApplyResult:
    """Put the plan's actions (only those that changed), then delete this prefix's stale ones."""
    result = ApplyResult()
    try:
        existing = list_actions(autoscaling, plan.resource_id, prefix)
        for hour in plan.hours:
            if _up_to_date(existing.get(hour.name), hour.schedule, hour.min_capacity):
                result.unchanged.append(hour.name)
                continue
            autoscaling.put_scheduled_action(
                ServiceNamespace=SERVICE_NAMESPACE,
                ScheduledActionName=hour.name,
                ResourceId=plan.resource_id,
                ScalableDimension=SCALABLE_DIMENSION,
                Schedule=hour.schedule,
                Timezone=TIMEZONE,
                ScalableTargetAction={"MinCapacity": hour.min_capacity},
            )
            result.written.append(hour.name)
        planned = {hour.name for hour in plan.hours}
        for name in sorted(set(existing) - planned):
            autoscaling.delete_scheduled_action(
                ServiceNamespace=SERVICE_NAMESPACE,
                ScheduledActionName=name,
                ResourceId=plan.resource_id,
                ScalableDimension=SCALABLE_DIMENSION,
            )
            result.deleted.append(name)
    except Exception as exc:  # botocore ClientError/BotoCoreError
        raise ScalingActionsError(f"Application Auto Scaling: {type(exc).__name__}: {exc}", result) from exc
    return result
