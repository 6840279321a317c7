"""The plan: one minimum capacity per hour for the next day, and why.

Each planned hour becomes one **recurring** Application Auto Scaling action,
``<prefix>hHH`` with ``cron(M H * * ? *)`` in UTC, firing ``lead_minutes`` before hour ``HH``
(provisioned concurrency takes a few minutes to become ready). Every run rewrites the 24 actions
with the forecast for their next firing, so the set of actions is bounded and, if the forecaster
ever stops, yesterday's plan keeps repeating instead of the capacity freezing at one value.

An action that fires before its hour also covers the end of the previous hour, so its minimum is
``max(capacity[h-1], capacity[h])``.

Fall-backs (each one says what happened in ``Plan.notes``, which the caller logs):

| situation | plan |
|---|---|
| CloudWatch could not be read | the floor, at least 1 (traffic unknown) |
| no data at all (brand-new function, or no traffic) | the floor |
| under a day of data | flat: the busiest hour seen so far |
| one day to one week of data | hour-of-day profile instead of hour-of-week |
| ``Invocations`` missing but ``ConcurrentExecutions`` present | forecast the concurrency itself |
| no ``Duration`` p99 | ``fallback_duration_ms`` |
| a forecast that is not a finite number | the floor for that hour |

The floor is raised to 1 whenever the last 7 days had any traffic (never zero while there is
traffic), and every hour is clamped to ``[floor, maximum]`` where the maximum is the smaller of
``max_capacity`` and the scalable target's own ``MaxCapacity``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from scaling.concurrency import clamp_capacity
from scaling.forecast import seasonal_forecast
from scaling.metrics import MetricHistory, floor_hour
from scaling.settings import ScalingSettings

WEEK = 168
DAY = 24

MODE_WEEKLY = "hour-of-week"
MODE_DAILY = "hour-of-day"
MODE_RECENT_PEAK = "recent-peak"
MODE_FLOOR = "floor"


@dataclass(frozen=True)
class PlannedHour:
    hour: datetime
    """Start of the hour (UTC) this capacity is for."""
    fires_at: datetime
    name: str
    schedule: str
    demand: float | None
    """Forecast demand: requests/s (``demand_kind == "rate"``) or concurrency."""
    required: int | None
    """Concurrency the forecast asks for (Little's law x headroom), before clamping."""
    capacity: int
    """Clamped capacity for this hour."""
    min_capacity: int
    """What the action sets: ``max(capacity[h-1], capacity[h])`` when it fires early."""


@dataclass(frozen=True)
class Plan:
    resource_id: str
    generated_at: datetime
    mode: str
    demand_kind: str
    """``rate`` (Little's law on requests/s) or ``concurrency`` (forecast of ConcurrentExecutions)."""
    floor: int
    maximum: int
    headroom: float
    duration_p99_ms: float | None
    trend: float | None
    uplift: float | None
    hours: list[PlannedHour]
    notes: list[str] = field(default_factory=list)
    recent: list[tuple[datetime, float | None]] = field(default_factory=list)
    """The last week's observed demand in concurrency units (for the chart)."""

    def table(self) -> str:
        unit = "req/s" if self.demand_kind == "rate" else "conc"
        lines = [
            f"plan for {self.resource_id}, generated {self.generated_at:%Y-%m-%d %H:%M} UTC, mode {self.mode}",
            f"floor {self.floor}, maximum {self.maximum}, headroom {self.headroom:g}"
            + (f", p99 duration {self.duration_p99_ms:.0f} ms" if self.duration_p99_ms else "")
            + (f", trend x{self.trend:.2f}" if self.trend is not None else "")
            + (f", uplift {self.uplift:+.3f} (sqrt scale)" if self.uplift is not None else ""),
            f"{'hour (UTC)':<17} {'fires (UTC)':<11} {'demand ' + unit:>13} {'required':>8} {'min cap':>7}  action",
        ]
        for h in self.hours:
            demand = f"{h.demand:.2f}" if h.demand is not None else "-"
            required = str(h.required) if h.required is not None else "-"
            lines.append(
                f"{h.hour:%a %m-%d %H:%M}  {h.fires_at:%H:%M}       {demand:>13} {required:>8} {h.min_capacity:>7}  "
                f"{h.name} {h.schedule}"
            )
        for note in self.notes:
            lines.append(f"note: {note}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "resource_id": self.resource_id,
            "generated_at": self.generated_at.isoformat(),
            "mode": self.mode,
            "demand_kind": self.demand_kind,
            "floor": self.floor,
            "maximum": self.maximum,
            "headroom": self.headroom,
            "duration_p99_ms": self.duration_p99_ms,
            "trend": self.trend,
            "uplift": self.uplift,
            "notes": list(self.notes),
            "hours": [
                {
                    "hour": h.hour.isoformat(),
                    "fires_at": h.fires_at.isoformat(),
                    "name": h.name,
                    "schedule": h.schedule,
                    "demand": h.demand,
                    "required": h.required,
                    "capacity": h.capacity,
                    "min_capacity": h.min_capacity,
                }
                for h in self.hours
            ],
        }


def planned_hours(now: datetime, settings: ScalingSettings) -> list[tuple[datetime, datetime]]:
    """``(hour, fires_at)`` for the next ``horizon_hours`` hours whose action fires after ``now``."""
    lead = timedelta(minutes=settings.lead_minutes)
    hour = floor_hour(now) + timedelta(hours=1)
    while hour - lead <= now:
        hour += timedelta(hours=1)
    return [(hour + timedelta(hours=i), hour + timedelta(hours=i) - lead) for i in range(settings.horizon_hours)]


def action_name(prefix: str, hour: datetime) -> str:
    return f"{prefix}h{hour.hour:02d}"


def cron_for(moment: datetime) -> str:
    """A daily Application Auto Scaling cron expression (UTC) firing at ``moment``'s time of day."""
    return f"cron({moment.minute} {moment.hour} * * ? *)"


def _first_known(series: Sequence[float | None]) -> int | None:
    return next((i for i, v in enumerate(series) if v is not None), None)


def build_plan(
    settings: ScalingSettings,
    now: datetime,
    history: MetricHistory | None,
    *,
    read_error: str | None = None,
    target_max_capacity: int | None = None,
    notes: Sequence[str] = (),
) -> Plan:
    """Turn the history into a plan (pure: no AWS call). ``history=None`` means it could not be read."""
    now = now.astimezone(UTC)
    notes_out = list(notes)
    maximum = settings.max_capacity
    if target_max_capacity is not None and target_max_capacity < maximum:
        maximum = max(0, target_max_capacity)
        notes_out.append(f"maximum lowered to the scalable target's MaxCapacity {target_max_capacity}")
    floor = settings.min_capacity
    slots = planned_hours(now, settings)
    # Hours to forecast: from the current hour (its end overlaps the first action) to the last slot.
    current = floor_hour(now)
    span = int((slots[-1][0] - current).total_seconds() // 3600) + 1

    def finish(
        mode: str,
        demand_kind: str,
        demand_by_offset: Sequence[float | None] | None,
        to_concurrency: float,
        *,
        p99_ms: float | None = None,
        trend: float | None = None,
        uplift: float | None = None,
        floor_value: int = floor,
        recent: list[tuple[datetime, float | None]] | None = None,
    ) -> Plan:
        floor_value = min(floor_value, maximum)
        capacities: list[int] = []
        required: list[int | None] = []
        unusable = 0
        for offset in range(span):
            demand = demand_by_offset[offset] if demand_by_offset is not None else None
            if demand is None or not math.isfinite(demand) or demand < 0:
                unusable += demand_by_offset is not None
                required.append(None)
                capacities.append(floor_value)
                continue
            need = math.ceil(demand * to_concurrency * settings.headroom - 1e-9)
            required.append(need)
            capacities.append(clamp_capacity(need, floor_value, maximum))
        if unusable:
            notes_out.append(f"{unusable} hour(s) without a usable forecast: the floor for those")
        hours: list[PlannedHour] = []
        for hour, fires in slots:
            offset = int((hour - current).total_seconds() // 3600)
            capacity = capacities[offset]
            min_capacity = max(capacity, capacities[offset - 1]) if settings.lead_minutes > 0 else capacity
            demand = demand_by_offset[offset] if demand_by_offset is not None else None
            hours.append(
                PlannedHour(
                    hour=hour,
                    fires_at=fires,
                    name=action_name(settings.action_prefix, hour),
                    schedule=cron_for(fires),
                    demand=demand,
                    required=required[offset],
                    capacity=capacity,
                    min_capacity=min_capacity,
                )
            )
        return Plan(
            resource_id=settings.scalable_resource_id,
            generated_at=now,
            mode=mode,
            demand_kind=demand_kind,
            floor=floor_value,
            maximum=maximum,
            headroom=settings.headroom,
            duration_p99_ms=p99_ms,
            trend=trend,
            uplift=uplift,
            hours=hours,
            notes=notes_out,
            recent=recent or [],
        )

    if history is None:
        notes_out.append(f"could not read metrics ({read_error or 'unknown error'}): planning the floor")
        return finish(MODE_FLOOR, "rate", None, 0.0, floor_value=max(floor, 1))

    if history.end > current:
        raise ValueError("the history must end at or before the current hour")
    gap = int((current - history.end).total_seconds() // 3600)  # hours between the history and now
    floor_value = floor
    if history.had_traffic() and floor < 1:
        floor_value = 1
        notes_out.append("floor raised to 1: the function had traffic in the last 7 days")

    rate = history.hourly_peak_rate()
    demand_kind = "rate"
    to_concurrency = 0.0
    p99_ms: float | None = None
    if _first_known(rate) is not None:
        series = rate
        p99_ms = history.recent_p99_ms()
        if p99_ms is None:
            p99_ms = settings.fallback_duration_ms
            notes_out.append(f"no Duration p99 in the last 7 days: assuming {p99_ms:g} ms")
        to_concurrency = p99_ms / 1000.0
    else:
        series = history.hourly_peak_concurrency()
        if _first_known(series) is None:
            notes_out.append("no Invocations or ConcurrentExecutions data (new function, or no traffic): the floor")
            return finish(MODE_FLOOR, "rate", None, 0.0, floor_value=floor_value)
        demand_kind = "concurrency"
        to_concurrency = 1.0
        notes_out.append("no Invocations data: forecasting ConcurrentExecutions directly")

    first = _first_known(series)
    assert first is not None
    known_hours = len(series) - first
    recent_start = max(0, len(series) - WEEK)
    recent: list[tuple[datetime, float | None]] = []
    for i in range(recent_start, len(series)):
        value = series[i]
        recent.append((history.start + timedelta(hours=i), None if value is None else value * to_concurrency))
    # The forecast starts right after the history; pad the hours between the history and now.
    horizon = gap + span

    if known_hours < DAY:
        peak = max(v for v in series[first:] if v is not None)
        notes_out.append(f"only {known_hours} h of history: flat plan at the busiest hour seen")
        return finish(
            MODE_RECENT_PEAK,
            demand_kind,
            [peak] * span,
            to_concurrency,
            p99_ms=p99_ms,
            floor_value=floor_value,
            recent=recent,
        )
    season = WEEK if known_hours >= WEEK else DAY
    if season == DAY:
        notes_out.append(f"only {known_hours} h of history: hour-of-day profile instead of hour-of-week")
    forecast = seasonal_forecast(
        series[first:],
        horizon,
        season=season,
        quantile_level=settings.quantile,
        trend_hours=settings.trend_hours,
        trend_bounds=(settings.trend_min, settings.trend_max),
    )
    if forecast.residuals < 24:
        notes_out.append(f"{forecast.residuals} residuals only: no quantile uplift")
    demand = forecast.values[gap:]
    return finish(
        MODE_WEEKLY if season == WEEK else MODE_DAILY,
        demand_kind,
        demand,
        to_concurrency,
        p99_ms=p99_ms,
        trend=forecast.trend,
        uplift=forecast.uplift,
        floor_value=floor_value,
        recent=recent,
    )
