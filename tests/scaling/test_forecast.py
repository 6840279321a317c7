"""The seasonal forecast recovers known profiles, follows a trend, and its quantile covers what it says."""

from __future__ import annotations

import math
import random

import pytest

from scaling.errors import InsufficientHistoryError
from scaling.forecast import median, quantile, seasonal_forecast

PROFILE = [5.0 + 50.0 * max(0.0, math.sin(math.pi * ((h % 24) - 7) / 17)) * (1.4 if h >= 120 else 1.0)
           for h in range(168)]


def weeks(n: int, *, noise: float = 0.0, seed: int = 1, scale: float = 1.0) -> list[float | None]:
    rng = random.Random(seed)
    out: list[float | None] = []
    for _ in range(n):
        for h in range(168):
            v = PROFILE[h] * scale
            if noise:
                v = max(0.0, v + rng.gauss(0.0, noise * math.sqrt(v)))
            out.append(v)
    return out


def test_median_and_quantile_on_hand_cases():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert quantile([1.0, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0
    assert quantile([0.0, 10.0], 0.9) == pytest.approx(9.0)
    with pytest.raises(ValueError):
        median([])


def test_recovers_an_exact_weekly_profile():
    forecast = seasonal_forecast(weeks(4), 168, season=168)
    assert forecast.trend == pytest.approx(1.0)
    assert forecast.uplift == pytest.approx(0.0, abs=1e-9)
    assert forecast.values == pytest.approx(PROFILE)


def test_recovers_a_noisy_profile_within_noise():
    forecast = seasonal_forecast(weeks(4, noise=0.5), 168, season=168, quantile_level=0.5)
    errors = [abs(f - p) / p for f, p in zip(forecast.values, PROFILE, strict=True) if f is not None]
    assert len(errors) == 168
    assert sum(errors) / len(errors) < 0.08
    # The weekend lift and the night/evening contrast are there.
    assert forecast.values[20 + 24 * 5] > 1.25 * forecast.values[20]  # type: ignore[operator]
    assert forecast.values[20] > 5 * forecast.values[3]  # type: ignore[operator]


def test_the_upper_quantile_covers_about_that_share_of_a_new_week():
    history = weeks(4, noise=1.0, seed=2)
    forecast = seasonal_forecast(history, 168, season=168, quantile_level=0.9)
    future = weeks(1, noise=1.0, seed=99)
    covered = sum(1 for f, x in zip(forecast.values, future, strict=True) if x <= f)  # type: ignore[operator]
    assert 0.8 <= covered / 168 <= 0.98
    median_forecast = seasonal_forecast(history, 168, season=168, quantile_level=0.5)
    assert all(u >= m for u, m in zip(forecast.values, median_forecast.values, strict=True))  # type: ignore[operator]


def test_recent_trend_lifts_the_forecast():
    history = weeks(4)
    history[-24:] = [v * 1.3 for v in history[-24:]]  # type: ignore[operator]
    forecast = seasonal_forecast(history, 24, season=168, trend_hours=24)
    assert forecast.trend == pytest.approx(1.3, rel=1e-6)
    # The next day is Monday again (the history is whole weeks): its profile, lifted 30%.
    assert forecast.values[12] == pytest.approx(1.3 * PROFILE[12], rel=0.02)


def test_trend_is_clamped():
    history = weeks(4)
    history[-24:] = [v * 10 for v in history[-24:]]  # type: ignore[operator]
    assert seasonal_forecast(history, 24, trend_bounds=(0.5, 2.0)).trend == 2.0


def test_a_past_spike_is_not_forecast_again():
    history = weeks(4)
    spike_hour = 168 * 2 + 30
    history[spike_hour] = 50 * PROFILE[30]
    forecast = seasonal_forecast(history, 168, season=168, quantile_level=0.5)
    assert forecast.values[30] == pytest.approx(PROFILE[30])


def test_unknown_hours_are_skipped_and_unknown_seasons_are_none():
    history: list[float | None] = [None] * 168 + weeks(1)  # the first week did not exist yet
    forecast = seasonal_forecast(history, 200, season=168)
    assert forecast.values[:168] == pytest.approx(PROFILE)
    assert forecast.values[168] == pytest.approx(PROFILE[0])  # two seasons back is the known week


def test_daily_season():
    day = [10.0 + h for h in range(24)]
    forecast = seasonal_forecast(day * 3, 24, season=24)
    assert forecast.values == pytest.approx(day)


def test_too_short_or_bad_series_are_refused():
    with pytest.raises(InsufficientHistoryError):
        seasonal_forecast([1.0] * 100, 24, season=168)
    with pytest.raises(ValueError):
        seasonal_forecast([1.0] * 167 + [-1.0], 24, season=168)
    with pytest.raises(ValueError):
        seasonal_forecast([1.0] * 167 + [math.nan], 24, season=168)
