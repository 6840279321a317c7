"""The plan: one minimum capacity per hour for the next day, and why.

For each hour two forecasts (``scaling.forecast``) are turned into execution environments:

* Little's law on the forecast arrival rate (the hour's busiest 5 minutes of ``Invocations``)
  times the recent p99 ``Duration``: the requests in flight on average, with slow requests;
* the forecast of the hour's largest ``ConcurrentExecutions``: the bursts of a few seconds that
  an average cannot see, which dominate at low traffic (with 1.5 requests in flight on average,
  an hour routinely has seconds with 6).

``required = ceil(headroom x max(the two))``, clamped to ``[floor, maximum]``: capacity for the
hour's **peak**, so provisioned environments are mostly idle (at 45 req/s of 45 ms requests, the
hour's busiest second has 3 to 5 times the mean in flight).

With ``target_utilization`` set (``RECS_SCALING_TARGET_UTILIZATION`` in (0, 1]), the plan sizes for
the **mean** instead: a third series, the hour's mean concurrency (``Duration`` Sum / 3600 s), is
forecast at its median (quantile 0.5, no headroom) and ``required = ceil(mean / target_utilization)``.
Provisioned concurrency costs less than on-demand only when it is busy (with us-east-1 prices,
above 60% utilisation: ``bench/pricing.py``), so this keeps the scheduled minimum busy and leaves
the bursts above it to target tracking and on-demand environments. Without ``Duration`` Sum data
(an old saved history) the plan sizes for the peak and says so.

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
| a series with under a day of data | flat: its busiest hour so far |
| a series with one day to one week of data | hour-of-day profile instead of hour-of-week |
| ``Invocations`` or ``ConcurrentExecutions`` missing | the other one alone |
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
    rate: float | None
    """Forecast arrival rate (requests/s, the hour's busiest 5 minutes)."""
    peak_concurrency: float | None
    """Forecast of the hour's largest ``ConcurrentExecutions``."""
    required: int | None
    """``ceil(headroom x max(rate x p99 duration, peak concurrency))`` (or, sizing for the mean,
    ``ceil(mean concurrency / target utilization)``), before clamping."""
    capacity: int
    """Clamped capacity for this hour."""
    min_capacity: int
    """What the action sets: ``max(capacity[h-1], capacity[h])`` when it fires early."""
    mean_concurrency: float | None = None
    """Forecast mean requests in flight (sizing for the mean only)."""


@dataclass(frozen=True)
class Plan:
    resource_id: str
    generated_at: datetime
    mode: str
    floor: int
    maximum: int
    headroom: float
    duration_p99_ms: float | None
    trend: float | None
    uplift: float | None
    hours: list[PlannedHour]
    notes: list[str] = field(default_factory=list)
    recent: list[tuple[datetime, float | None]] = field(default_factory=list)
    """The last week's observed need: ``max(rate x p99 duration, peak concurrency)`` per hour."""
    target_utilization: float = 0.0
    """``0``: sized for the peak; else for the forecast mean concurrency at this utilisation."""

    @property
    def sizing(self) -> str:
        if self.target_utilization > 0:
            return f"mean concurrency at {self.target_utilization:.0%} utilisation"
        return f"peak x headroom {self.headroom:g}"

    def table(self) -> str:
        lines = [
            f"plan for {self.resource_id}, generated {self.generated_at:%Y-%m-%d %H:%M} UTC, mode {self.mode}",
            f"floor {self.floor}, maximum {self.maximum}, sizing: {self.sizing}"
            + (f", p99 duration {self.duration_p99_ms:.0f} ms" if self.duration_p99_ms else "")
            + (f", trend x{self.trend:.2f}" if self.trend is not None else "")
            + (f", uplift {self.uplift:+.3f} (sqrt scale)" if self.uplift is not None else ""),
            f"{'hour (UTC)':<16} {'fires':>5} {'rate req/s':>10} {'peak conc':>9} {'mean conc':>9} {'required':>8}"
            f" {'min cap':>7}  action",
        ]
        for h in self.hours:
            rate = f"{h.rate:.2f}" if h.rate is not None else "-"
            peak = f"{h.peak_concurrency:.1f}" if h.peak_concurrency is not None else "-"
            mean = f"{h.mean_concurrency:.2f}" if h.mean_concurrency is not None else "-"
            required = str(h.required) if h.required is not None else "-"
            lines.append(
                f"{h.hour:%a %m-%d %H:%M} {h.fires_at:%H:%M} {rate:>10} {peak:>9} {mean:>9} {required:>8}"
                f" {h.min_capacity:>7}  {h.name} {h.schedule}"
            )
        for note in self.notes:
            lines.append(f"note: {note}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "resource_id": self.resource_id,
            "generated_at": self.generated_at.isoformat(),
            "mode": self.mode,
            "floor": self.floor,
            "maximum": self.maximum,
            "headroom": self.headroom,
            "target_utilization": self.target_utilization,
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
                    "rate": h.rate,
                    "peak_concurrency": h.peak_concurrency,
                    "mean_concurrency": h.mean_concurrency,
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


@dataclass(frozen=True)
class _SeriesForecast:
    values: list[float | None]
    mode: str
    trend: float | None
    uplift: float | None


def _forecast_series(
    series: list[float | None],
    gap: int,
    span: int,
    settings: ScalingSettings,
    label: str,
    notes: list[str],
    quantile: float | None = None,
) -> _SeriesForecast | None:
    """Forecast ``span`` hours starting ``gap`` hours after the end of ``series``; ``None`` without data.

    ``quantile`` overrides the setting's (the mean series is forecast at its median)."""
    first = _first_known(series)
    if first is None:
        return None
    known = len(series) - first
    if known < DAY:
        peak = max(v for v in series[first:] if v is not None)
        notes.append(f"{label}: only {known} h of history, flat plan at the busiest hour seen")
        return _SeriesForecast([peak] * span, MODE_RECENT_PEAK, None, None)
    season = WEEK if known >= WEEK else DAY
    if season == DAY:
        notes.append(f"{label}: only {known} h of history, hour-of-day profile instead of hour-of-week")
    forecast = seasonal_forecast(
        series[first:],
        gap + span,
        season=season,
        quantile_level=settings.quantile if quantile is None else quantile,
        trend_hours=settings.trend_hours,
        trend_bounds=(settings.trend_min, settings.trend_max),
    )
    if forecast.residuals < 24:
        notes.append(f"{label}: {forecast.residuals} residuals only, no quantile uplift")
    mode = MODE_WEEKLY if season == WEEK else MODE_DAILY
    return _SeriesForecast(forecast.values[gap:], mode, forecast.trend, forecast.uplift)


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
    slots = planned_hours(now, settings)
    # Hours to forecast: from the current hour (its end overlaps the first action) to the last slot.
    current = floor_hour(now)
    span = int((slots[-1][0] - current).total_seconds() // 3600) + 1

    def finish(
        mode: str,
        floor_value: int,
        rate: _SeriesForecast | None = None,
        peak: _SeriesForecast | None = None,
        p99_ms: float | None = None,
        recent: list[tuple[datetime, float | None]] | None = None,
        mean: _SeriesForecast | None = None,
    ) -> Plan:
        """``mean`` given: size for the forecast mean at ``settings.target_utilization``."""
        floor_value = min(floor_value, maximum)
        rates: list[float | None] = []
        peaks: list[float | None] = []
        means: list[float | None] = []
        capacities: list[int] = []
        required: list[int | None] = []
        unusable = 0
        for offset in range(span):
            r = _usable(rate.values[offset]) if rate else None
            c = _usable(peak.values[offset]) if peak else None
            m = _usable(mean.values[offset]) if mean else None
            rates.append(r)
            peaks.append(c)
            means.append(m)
            if mean is not None:
                candidates = [] if m is None else [m / settings.target_utilization]
            else:
                candidates = [v for v in (None if r is None else r * (p99_ms or 0.0) / 1000.0, c) if v is not None]
                candidates = [v * settings.headroom for v in candidates]
            if not candidates:
                unusable += rate is not None or peak is not None or mean is not None
                required.append(None)
                capacities.append(floor_value)
                continue
            need = math.ceil(max(candidates) - 1e-9)
            required.append(need)
            capacities.append(clamp_capacity(need, floor_value, maximum))
        if unusable:
            notes_out.append(f"{unusable} hour(s) without a usable forecast: the floor for those")
        hours: list[PlannedHour] = []
        for hour, fires in slots:
            offset = int((hour - current).total_seconds() // 3600)
            capacity = capacities[offset]
            min_capacity = max(capacity, capacities[offset - 1]) if settings.lead_minutes > 0 else capacity
            hours.append(
                PlannedHour(
                    hour=hour,
                    fires_at=fires,
                    name=action_name(settings.action_prefix, hour),
                    schedule=cron_for(fires),
                    rate=rates[offset],
                    peak_concurrency=peaks[offset],
                    required=required[offset],
                    capacity=capacity,
                    min_capacity=min_capacity,
                    mean_concurrency=means[offset],
                )
            )
        main = mean or rate or peak
        return Plan(
            resource_id=settings.scalable_resource_id,
            generated_at=now,
            mode=mode,
            floor=floor_value,
            maximum=maximum,
            headroom=settings.headroom,
            duration_p99_ms=p99_ms,
            trend=main.trend if main else None,
            uplift=main.uplift if main else None,
            hours=hours,
            notes=notes_out,
            recent=recent or [],
            target_utilization=settings.target_utilization if mean is not None else 0.0,
        )

    if history is None:
        notes_out.append(f"could not read metrics ({read_error or 'unknown error'}): planning the floor")
        return finish(MODE_FLOOR, max(settings.min_capacity, 1))

    if history.end > current:
        raise ValueError("the history must end at or before the current hour")
    gap = int((current - history.end).total_seconds() // 3600)  # hours between the history and now
    floor_value = settings.min_capacity
    if history.had_traffic() and floor_value < 1:
        floor_value = 1
        notes_out.append("floor raised to 1: the function had traffic in the last 7 days")

    rate_series = history.hourly_peak_rate()
    peak_series = history.hourly_peak_concurrency()
    rate = _forecast_series(rate_series, gap, span, settings, "Invocations", notes_out)
    peak = _forecast_series(peak_series, gap, span, settings, "ConcurrentExecutions", notes_out)
    if rate is None and peak is None:
        notes_out.append("no Invocations or ConcurrentExecutions data (new function, or no traffic): the floor")
        return finish(MODE_FLOOR, floor_value)
    p99_ms: float | None = None
    if rate is not None:
        p99_ms = history.recent_p99_ms()
        if p99_ms is None:
            p99_ms = settings.fallback_duration_ms
            notes_out.append(f"no Duration p99 in the last 7 days: assuming {p99_ms:g} ms")
    if rate is None:
        notes_out.append("no Invocations data: planning from ConcurrentExecutions alone")
    elif peak is None:
        notes_out.append("no ConcurrentExecutions data: planning from Invocations (Little's law) alone")

    mean: _SeriesForecast | None = None
    if settings.target_utilization > 0:
        mean = _forecast_series(
            history.hourly_mean_concurrency(), gap, span, settings, "Duration Sum", notes_out, quantile=0.5
        )
        if mean is None:
            notes_out.append(
                "no Duration Sum data (mean concurrency unknown): sizing for the peak, not for the mean at "
                f"{settings.target_utilization:.0%} utilisation"
            )

    recent: list[tuple[datetime, float | None]] = []
    for i in range(max(0, history.hours - WEEK), history.hours):
        r, c = rate_series[i], peak_series[i]
        values = [v for v in (None if r is None else r * (p99_ms or 0.0) / 1000.0, c) if v is not None]
        recent.append((history.start + timedelta(hours=i), max(values) if values else None))
    main = mean or rate or peak
    assert main is not None
    return finish(main.mode, floor_value, rate, peak, p99_ms, recent, mean)


def _usable(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) and value >= 0 else None
