"""The function's recent history from CloudWatch (``GetMetricData``), on a regular grid.

Four series of the alias (dimensions ``FunctionName`` and ``Resource = <function>:<alias>``),
one value per period (5 minutes by default: CloudWatch keeps 5-minute data for 63 days):

* ``Invocations``, statistic ``Sum``;
* ``ConcurrentExecutions``, statistic ``Maximum``;
* ``Duration``, statistic ``p99`` (milliseconds; ``RECS_SCALING_DURATION_STATISTIC``);
* ``Duration``, statistic ``Sum``: the milliseconds spent in the function during the period, so
  the period's **mean** concurrency is ``Sum / period`` (what ``RECS_SCALING_TARGET_UTILIZATION``
  sizes from). Histories saved before this series existed load with it unknown.

Lambda publishes nothing for a period without invocations, so after a series' first data point a
missing period means *no traffic*; before it, *unknown* (the function or alias did not exist).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from scaling.errors import MetricsError
from scaling.forecast import median

NAMESPACE = "AWS/Lambda"
QUERIES = (
    # (query id, metric name, statistic); the duration's statistic is a setting
    ("invocations", "Invocations", "Sum"),
    ("concurrency", "ConcurrentExecutions", "Maximum"),
    ("duration", "Duration", "p99"),
    ("busy", "Duration", "Sum"),
)
MAX_PAGES = 50


def floor_hour(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return moment.replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class MetricHistory:
    """Per-period values from ``start`` (UTC, on an hour) for ``len(invocations)`` periods."""

    start: datetime
    period_seconds: int
    invocations: list[float | None]
    concurrency: list[float | None]
    duration_p99_ms: list[float | None]
    duration_sum_ms: list[float | None] | None = None
    """``Duration`` Sum per period (``None``: not read, e.g. a history saved by an older version)."""

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")
        if 3600 % self.period_seconds:
            raise ValueError("period_seconds must divide an hour")
        if self.start != floor_hour(self.start):
            raise ValueError("start must be on an hour")
        n = len(self.invocations)
        if len(self.concurrency) != n or len(self.duration_p99_ms) != n:
            raise ValueError("the three series must have the same length")
        if self.duration_sum_ms is not None and len(self.duration_sum_ms) != n:
            raise ValueError("the Duration Sum series must have the length of the others")
        if n % self.per_hour:
            raise ValueError("the series must cover whole hours")

    @property
    def per_hour(self) -> int:
        return 3600 // self.period_seconds

    @property
    def hours(self) -> int:
        return len(self.invocations) // self.per_hour

    @property
    def end(self) -> datetime:
        return self.start + timedelta(hours=self.hours)

    # -- hourly views ---------------------------------------------------------------------------

    def _hourly(self, series: Sequence[float | None], scale: float) -> list[float | None]:
        """The hour's largest value (x scale); missing periods are zero after the first data point."""
        first = next((i for i, v in enumerate(series) if v is not None), None)
        out: list[float | None] = []
        for h in range(self.hours):
            lo = h * self.per_hour
            hi = lo + self.per_hour
            if first is None or hi <= first:
                out.append(None)
                continue
            values = [v for v in series[max(lo, first) : hi] if v is not None and math.isfinite(v) and v >= 0]
            out.append(max(values) * scale if values else 0.0)
        return out

    def hourly_peak_rate(self) -> list[float | None]:
        """Per hour, the busiest period's arrival rate in requests per second."""
        return self._hourly(self.invocations, 1.0 / self.period_seconds)

    def hourly_peak_concurrency(self) -> list[float | None]:
        """Per hour, the largest ``ConcurrentExecutions``."""
        return self._hourly(self.concurrency, 1.0)

    def hourly_mean_concurrency(self) -> list[float | None]:
        """Per hour, the mean number of requests in flight: the hour's ``Duration`` Sum / 3600 s.

        ``None`` for hours before the series' first data point (and everywhere without the series);
        a missing period after it is a period without traffic.
        """
        series = self.duration_sum_ms
        if series is None:
            return [None] * self.hours
        first = next((i for i, v in enumerate(series) if v is not None), None)
        out: list[float | None] = []
        for h in range(self.hours):
            lo = h * self.per_hour
            hi = lo + self.per_hour
            if first is None or hi <= first:
                out.append(None)
                continue
            total = sum(v for v in series[max(lo, first) : hi] if v is not None and math.isfinite(v) and v >= 0)
            out.append(total / 3_600_000.0)
        return out

    def recent_p99_ms(self, days: int = 7) -> float | None:
        """Median of the per-period p99 durations over the last ``days`` days (``None`` if none)."""
        tail = self.duration_p99_ms[-days * 24 * self.per_hour :]
        values = [v for v in tail if v is not None and math.isfinite(v) and v > 0]
        return median(values) if values else None

    def had_traffic(self, days: int = 7) -> bool:
        tail = -days * 24 * self.per_hour
        return any((v or 0) > 0 for v in self.invocations[tail:]) or any(
            (v or 0) > 0 for v in self.concurrency[tail:]
        )

    # -- files ----------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "period_seconds": self.period_seconds,
            "invocations": self.invocations,
            "concurrency": self.concurrency,
            "duration_p99_ms": self.duration_p99_ms,
            "duration_sum_ms": self.duration_sum_ms,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> MetricHistory:
        try:
            return cls(
                start=datetime.fromisoformat(raw["start"]).astimezone(UTC),
                period_seconds=int(raw["period_seconds"]),
                invocations=[None if v is None else float(v) for v in raw["invocations"]],
                concurrency=[None if v is None else float(v) for v in raw["concurrency"]],
                duration_p99_ms=[None if v is None else float(v) for v in raw["duration_p99_ms"]],
                duration_sum_ms=(
                    None
                    if raw.get("duration_sum_ms") is None
                    else [None if v is None else float(v) for v in raw["duration_sum_ms"]]
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a metric history: {exc}") from exc

    @classmethod
    def load(cls, path: str | Path) -> MetricHistory:
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json()), encoding="utf-8")


def metric_queries(
    function_name: str, alias: str, period_seconds: int, duration_statistic: str = "p99"
) -> list[dict[str, Any]]:
    """The ``MetricDataQueries`` of ``GetMetricData`` for the alias."""
    dimensions = [
        {"Name": "FunctionName", "Value": function_name},
        {"Name": "Resource", "Value": f"{function_name}:{alias}"},
    ]
    return [
        {
            "Id": query_id,
            "MetricStat": {
                "Metric": {"Namespace": NAMESPACE, "MetricName": metric, "Dimensions": dimensions},
                "Period": period_seconds,
                "Stat": duration_statistic if query_id == "duration" else stat,
            },
            "ReturnData": True,
        }
        for query_id, metric, stat in QUERIES
    ]


def fetch_history(
    cloudwatch: Any,
    *,
    function_name: str,
    alias: str,
    end: datetime,
    days: int,
    period_seconds: int = 300,
    duration_statistic: str = "p99",
) -> tuple[MetricHistory, list[str]]:
    """Read ``days`` days of history ending at the hour ``end`` (exclusive).

    Returns the history and messages about anything partial (a status other than ``Complete``,
    values that are not numbers). Raises :class:`MetricsError` when the API call fails.
    """
    end = floor_hour(end)
    start = end - timedelta(days=days)
    n = days * 24 * 3600 // period_seconds
    series: dict[str, list[float | None]] = {q[0]: [None] * n for q in QUERIES}
    notes: list[str] = []
    kwargs: dict[str, Any] = {
        "MetricDataQueries": metric_queries(function_name, alias, period_seconds, duration_statistic),
        "StartTime": start,
        "EndTime": end,
        "ScanBy": "TimestampAscending",
    }
    try:
        for _ in range(MAX_PAGES):
            page = cloudwatch.get_metric_data(**kwargs)
            for result in page.get("MetricDataResults", []):
                query_id = result.get("Id")
                if query_id not in series:
                    continue
                status = result.get("StatusCode", "Complete")
                if status not in ("Complete", "PartialData"):
                    notes.append(f"CloudWatch returned status {status} for {query_id}")
                values = result.get("Values") or []
                for ts, value in zip(result.get("Timestamps") or [], values, strict=False):
                    index = int((ts.astimezone(UTC) - start).total_seconds() // period_seconds)
                    if not 0 <= index < n:
                        continue
                    if value is None or not isinstance(value, int | float) or not math.isfinite(value):
                        notes.append(f"ignored a non-numeric {query_id} value at {ts.isoformat()}")
                        continue
                    series[query_id][index] = float(value)
            for message in page.get("Messages", []) or []:
                notes.append(f"CloudWatch: {message.get('Code', '')} {message.get('Value', '')}".strip())
            token = page.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
        else:
            notes.append(f"stopped after {MAX_PAGES} pages of GetMetricData")
    except Exception as exc:  # botocore's ClientError/BotoCoreError, network errors
        raise MetricsError(f"GetMetricData failed: {type(exc).__name__}: {exc}") from exc
    history = MetricHistory(
        start=start,
        period_seconds=period_seconds,
        invocations=series["invocations"],
        concurrency=series["concurrency"],
        duration_p99_ms=series["duration"],
        duration_sum_ms=series["busy"],
    )
    return history, notes
