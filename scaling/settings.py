"""The forecaster's settings: one frozen object, read once from ``RECS_SCALING_*`` variables.

An explicit argument beats the environment (``ScalingSettings.from_env(max_capacity=50)``).
Every value is validated at start-up, so a typo in a variable fails with a message naming it.

| variable | meaning | default |
|---|---|---|
| ``RECS_SCALING_FUNCTION_NAME`` | the serving Lambda function | required to read metrics |
| ``RECS_SCALING_ALIAS`` | its alias carrying provisioned concurrency | ``live`` |
| ``RECS_SCALING_RESOURCE_ID`` | the scalable target's resource id | ``function:<name>:<alias>`` |
| ``RECS_SCALING_MIN_CAPACITY`` | floor of every planned hour | ``1`` |
| ``RECS_SCALING_MAX_CAPACITY`` | ceiling of every planned hour | ``100`` |
| ``RECS_SCALING_HEADROOM`` | multiplier on the required concurrency | ``1.1`` |
| ``RECS_SCALING_QUANTILE`` | upper quantile of the forecast | ``0.9`` |
| ``RECS_SCALING_TARGET_UTILIZATION`` | ``0``: size for the peak; in (0, 1]: for the mean at this utilisation | ``0`` |
| ``RECS_SCALING_HISTORY_DAYS`` | CloudWatch history read per run | ``28`` |
| ``RECS_SCALING_TREND_HOURS`` | window of the recent-trend factor | ``24`` |
| ``RECS_SCALING_TREND_MIN`` / ``_MAX`` | bounds of the trend factor | ``0.5`` / ``2.0`` |
| ``RECS_SCALING_HORIZON_HOURS`` | hours planned ahead | ``24`` |
| ``RECS_SCALING_LEAD_MINUTES`` | actions fire this long before their hour | ``10`` |
| ``RECS_SCALING_PERIOD_SECONDS`` | CloudWatch period | ``300`` |
| ``RECS_SCALING_DURATION_STATISTIC`` | CloudWatch statistic of ``Duration`` used in Little's law | ``p99`` |
| ``RECS_SCALING_FALLBACK_DURATION_MS`` | p99 duration assumed when none is known | ``1000`` |
| ``RECS_SCALING_ACTION_PREFIX`` | names of the scheduled actions this code owns | ``recs-predictive-`` |
| ``RECS_SCALING_DRY_RUN`` | plan and log, write nothing | ``false`` |
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import SettingsError
from core.settings import describe, label, load, override, setting

# Application Auto Scaling: a scheduled action name is printable and has no '|', ':' or '/'.
_ACTION_NAME = re.compile(r"^[\x20-\x7e]+$")
_RESOURCE_ID = re.compile(r"^function:[A-Za-z0-9_-]{1,64}:[A-Za-z0-9$_-]{1,128}$")


@dataclass(frozen=True)
class ScalingSettings:
    """Everything the forecaster needs: where to read, how to forecast, where and what to write."""

    function_name: str | None = setting("RECS_SCALING_FUNCTION_NAME", default=None)
    alias: str = setting("RECS_SCALING_ALIAS", default="live")
    resource_id: str | None = setting("RECS_SCALING_RESOURCE_ID", default=None)
    """``function:<name>:<alias>``; derived from the function and alias when unset."""
    min_capacity: int = setting("RECS_SCALING_MIN_CAPACITY", default=1)
    """The floor of every planned hour (raised to 1 while the function has traffic)."""
    max_capacity: int = setting("RECS_SCALING_MAX_CAPACITY", default=100)
    """The ceiling of every planned hour (lowered to the scalable target's own maximum)."""
    headroom: float = setting("RECS_SCALING_HEADROOM", default=1.1)
    quantile: float = setting("RECS_SCALING_QUANTILE", default=0.9)
    target_utilization: float = setting("RECS_SCALING_TARGET_UTILIZATION", default=0.0)
    """``0``: plan ``headroom x`` the forecast peak (``RECS_SCALING_HEADROOM``, ``_QUANTILE``); in (0, 1]:
    plan ``ceil(forecast mean concurrency / target_utilization)`` (see ``scaling/plan.py``)."""
    history_days: int = setting("RECS_SCALING_HISTORY_DAYS", default=28)
    trend_hours: int = setting("RECS_SCALING_TREND_HOURS", default=24)
    trend_min: float = setting("RECS_SCALING_TREND_MIN", default=0.5)
    trend_max: float = setting("RECS_SCALING_TREND_MAX", default=2.0)
    horizon_hours: int = setting("RECS_SCALING_HORIZON_HOURS", default=24)
    lead_minutes: int = setting("RECS_SCALING_LEAD_MINUTES", default=10)
    period_seconds: int = setting("RECS_SCALING_PERIOD_SECONDS", default=300)
    duration_statistic: str = setting("RECS_SCALING_DURATION_STATISTIC", default="p99")
    fallback_duration_ms: float = setting("RECS_SCALING_FALLBACK_DURATION_MS", default=1000.0)
    action_prefix: str = setting("RECS_SCALING_ACTION_PREFIX", default="recs-predictive-")
    dry_run: bool = setting("RECS_SCALING_DRY_RUN", default=False)
    aws_region: str | None = setting("AWS_REGION", "AWS_DEFAULT_REGION", default=None)


    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ScalingSettings:
        """Settings from ``RECS_SCALING_*`` variables (and ``AWS_REGION``), then ``overrides`` (``None``
        values are ignored)."""
        return load(cls, os.environ if env is None else env, **overrides)

    def with_overrides(self, **overrides: Any) -> ScalingSettings:
        return override(self, **overrides)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def bad(name: str, why: str) -> SettingsError:
            return SettingsError(f"{label(self, name)}: {why}")

        if self.function_name is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.function_name):
            raise bad("function_name", f"{self.function_name!r} is not a Lambda function name")
        if not re.fullmatch(r"[A-Za-z0-9$_-]{1,128}", self.alias):
            raise bad("alias", f"{self.alias!r} is not a Lambda alias name")
        if self.resource_id is not None and not _RESOURCE_ID.match(self.resource_id):
            raise bad("resource_id", f"{self.resource_id!r} is not of the form function:<name>:<alias>")
        if self.min_capacity < 0:
            raise bad("min_capacity", "must not be negative")
        if self.max_capacity < 1:
            raise bad("max_capacity", "must be at least 1")
        if self.max_capacity < self.min_capacity:
            raise bad("max_capacity", f"must be at least the minimum capacity ({self.min_capacity})")
        if not 1.0 <= self.headroom <= 10.0:
            raise bad("headroom", "must be between 1 and 10")
        if not 0.5 <= self.quantile < 1.0:
            raise bad("quantile", "must be in [0.5, 1)")
        if not (self.target_utilization == 0.0 or 0.05 <= self.target_utilization <= 1.0):
            raise bad("target_utilization", "must be 0 (size for the peak) or in [0.05, 1]")
        if not 1 <= self.history_days <= 63:
            raise bad("history_days", "must be between 1 and 63 (CloudWatch keeps 5-minute data 63 days)")
        if not 1 <= self.trend_hours <= 168:
            raise bad("trend_hours", "must be between 1 and 168")
        if not 0 < self.trend_min <= 1.0 <= self.trend_max:
            raise bad("trend_min", "need 0 < trend_min <= 1 <= trend_max")
        if not 1 <= self.horizon_hours <= 24:
            raise bad("horizon_hours", "must be between 1 and 24 (one recurring action per hour of the day)")
        if not 0 <= self.lead_minutes <= 59:
            raise bad("lead_minutes", "must be between 0 and 59")
        if self.period_seconds not in (60, 300, 600, 900, 1200, 1800, 3600):
            raise bad("period_seconds", "must be 60, 300, 600, 900, 1200, 1800 or 3600")
        if not re.fullmatch(r"p(\d{1,2}(\.\d{1,2})?|100)|Maximum|Average", self.duration_statistic):
            raise bad("duration_statistic", "must be a percentile such as p99 or p99.9, Maximum or Average")
        if not 1.0 <= self.fallback_duration_ms <= 900_000.0:
            raise bad("fallback_duration_ms", "must be between 1 and 900000 (Lambda's 15-minute limit)")
        if not self.action_prefix or not _ACTION_NAME.match(self.action_prefix) or set("|:/") & set(self.action_prefix):
            raise bad("action_prefix", "must be printable ASCII without '|', ':' or '/'")
        if len(self.action_prefix) > 200:
            raise bad("action_prefix", "must be at most 200 characters")

    @property
    def scalable_resource_id(self) -> str:
        """The Application Auto Scaling resource id of the alias."""
        if self.resource_id:
            return self.resource_id
        if not self.function_name:
            raise SettingsError(f"{label(self, 'function_name')} (or {label(self, 'resource_id')}) is required")
        return f"function:{self.function_name}:{self.alias}"

    @property
    def metric_function_name(self) -> str:
        """The function whose CloudWatch metrics are read (from the resource id when only it is set)."""
        if self.function_name:
            return self.function_name
        return self.scalable_resource_id.split(":")[1]

    @property
    def metric_alias(self) -> str:
        if self.resource_id and not self.function_name:
            return self.resource_id.split(":")[2]
        return self.alias

    def describe(self) -> dict[str, Any]:
        return describe(self)
