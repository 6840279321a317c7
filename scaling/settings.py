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
from dataclasses import dataclass, fields, replace
from typing import Any

ENV_PREFIX = "RECS_SCALING_"
# Application Auto Scaling: a scheduled action name is printable and has no '|', ':' or '/'.
_ACTION_NAME = re.compile(r"^[\x20-\x7e]+$")
_RESOURCE_ID = re.compile(r"^function:[A-Za-z0-9_-]{1,64}:[A-Za-z0-9$_-]{1,128}$")


class SettingsError(ValueError):
    """A setting (argument or ``RECS_SCALING_*`` variable) has an invalid value."""


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


@dataclass(frozen=True)
class ScalingSettings:
    """Everything the forecaster needs: where to read, how to forecast, where and what to write."""

    function_name: str | None = None
    alias: str = "live"
    resource_id: str | None = None
    """``function:<name>:<alias>``; derived from the function and alias when unset."""
    min_capacity: int = 1
    """The floor of every planned hour (raised to 1 while the function has traffic)."""
    max_capacity: int = 100
    """The ceiling of every planned hour (lowered to the scalable target's own maximum)."""
    headroom: float = 1.1
    quantile: float = 0.9
    history_days: int = 28
    trend_hours: int = 24
    trend_min: float = 0.5
    trend_max: float = 2.0
    horizon_hours: int = 24
    lead_minutes: int = 10
    period_seconds: int = 300
    duration_statistic: str = "p99"
    fallback_duration_ms: float = 1000.0
    action_prefix: str = "recs-predictive-"
    dry_run: bool = False
    aws_region: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ScalingSettings:
        """Settings from ``RECS_SCALING_*`` variables, then ``overrides`` (``None`` values are ignored)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        if region:
            values["aws_region"] = region
        for f in fields(cls):
            raw = env.get(env_name(f.name))
            if raw is None or raw.strip() == "":
                continue
            values[f.name] = _parse(f.name, raw, cls.__dataclass_fields__[f.name].default)
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        settings = cls(**values)
        settings.validate()
        return settings

    def with_overrides(self, **overrides: Any) -> ScalingSettings:
        settings = replace(self, **{k: v for k, v in overrides.items() if v is not None})
        settings.validate()
        return settings

    def validate(self) -> None:
        def bad(name: str, why: str) -> SettingsError:
            return SettingsError(f"{env_name(name)}: {why}")

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
            raise SettingsError(f"{env_name('function_name')} (or {env_name('resource_id')}) is required")
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
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _parse(name: str, raw: str, default: Any) -> Any:
    variable = env_name(name)
    if isinstance(default, bool):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{variable}: {raw!r} is not a boolean (true/false)")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{variable}: {raw!r} is not an integer") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(f"{variable}: {raw!r} is not a number") from None
    return raw.strip()
