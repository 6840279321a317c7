"""Seasonal forecast of an hourly demand series, in pure Python (no numpy: the forecaster Lambda stays tiny).

The series is hourly (``None`` = unknown, e.g. before the function existed). For a season of
``P`` hours (168 = hour of week, or 24 = hour of day when less than a week is known):

1. **Profile.** The expected value of hour ``t`` is the median of the same hour in the previous
   seasons, ``x[t-P], x[t-2P], ...`` (up to ``max_seasons``; unknown ones skipped). The median,
   not the mean, so that last Tuesday's unannounced spike is not forecast again this Tuesday.
2. **Recent trend.** ``L = sum(actual) / sum(profile)`` over the last ``trend_hours`` hours, clamped
   to ``trend_bounds``: a catalogue release that lifted traffic 30% since last week lifts the whole
   forecast 30%. The forecast level is ``L * profile[t]``.
3. **Upper quantile.** The same forecast is replayed over the history (each hour with only the data
   before it: profile from earlier seasons, trend from the hours before), and the residuals
   ``sqrt(actual) - sqrt(L * profile)`` are pooled. Their ``quantile`` (e.g. 0.9) is the uplift
   ``u``, and the forecast is ``(sqrt(L * profile[t]) + u) ** 2``. The square-root scale makes
   the noise of a count-like series about as wide at night as at the peak, so one pooled quantile
   fits every hour (on the raw scale the peak's noise would dominate; on ratios the night's would).
   With fewer than ``MIN_RESIDUALS`` residuals the uplift is 0 and the caller is told.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scaling.errors import InsufficientHistoryError

MIN_RESIDUALS = 24


@dataclass(frozen=True)
class SeasonalForecast:
    """Forecast of the ``horizon`` hours after the series (index 0 = the hour right after it)."""

    values: list[float | None]
    """The upper-quantile forecast; ``None`` where no earlier season is known."""
    profile: list[float | None]
    """The seasonal median for the same hours (before trend and uplift)."""
    season: int
    trend: float
    uplift: float
    residuals: int


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("median of nothing")
    mid = n // 2
    return ordered[mid] if n % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (the usual "type 7")."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("quantile of nothing")
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _expected(series: Sequence[float | None], t: int, season: int, max_seasons: int) -> float | None:
    n = len(series)
    past = []
    for k in range(1, max_seasons + 1):
        j = t - k * season
        if j < 0:
            break
        if j < n:
            v = series[j]
            if v is not None:
                past.append(v)
    return median(past) if past else None


def _trend(
    series: Sequence[float | None],
    expected: Sequence[float | None],
    end: int,
    hours: int,
    bounds: tuple[float, float],
) -> float:
    actual_sum = 0.0
    expected_sum = 0.0
    for j in range(max(0, end - hours), end):
        x, e = series[j], expected[j]
        if x is None or e is None:
            continue
        actual_sum += x
        expected_sum += e
    if expected_sum <= 1e-12:
        return 1.0
    return min(bounds[1], max(bounds[0], actual_sum / expected_sum))


def seasonal_forecast(
    series: Sequence[float | None],
    horizon: int,
    *,
    season: int = 168,
    quantile_level: float = 0.9,
    trend_hours: int = 24,
    trend_bounds: tuple[float, float] = (0.5, 2.0),
    max_seasons: int = 4,
) -> SeasonalForecast:
    """Forecast the ``horizon`` hours that follow ``series`` (see the module docstring)."""
    if season < 1 or horizon < 1:
        raise ValueError("season and horizon must be positive")
    n = len(series)
    if n < season:
        raise InsufficientHistoryError(f"{n} hours of history, a season of {season} needs at least {season}")
    for v in series:
        if v is not None and (v < 0 or not math.isfinite(v)):
            raise ValueError(f"demand values must be finite and non-negative, got {v!r}")

    # In-sample replay: each hour's expectation uses only earlier seasons.
    expected = [_expected(series, t, season, max_seasons) for t in range(n)]
    residuals: list[float] = []
    for t in range(n):
        x, e = series[t], expected[t]
        if x is None or e is None:
            continue
        level = _trend(series, expected, t, trend_hours, trend_bounds) * e
        residuals.append(math.sqrt(x) - math.sqrt(level))
    uplift = quantile(residuals, quantile_level) if len(residuals) >= MIN_RESIDUALS else 0.0

    trend = _trend(series, expected, n, trend_hours, trend_bounds)
    profile = [_expected(series, n + h, season, max_seasons) for h in range(horizon)]
    values: list[float | None] = []
    for e in profile:
        if e is None:
            values.append(None)
            continue
        root = math.sqrt(trend * e) + uplift
        values.append(root * root if root > 0 else 0.0)
    return SeasonalForecast(
        values=values, profile=profile, season=season, trend=trend, uplift=uplift, residuals=len(residuals)
    )
