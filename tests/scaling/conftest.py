"""Helpers for the scaling tests: metric histories with a known shape."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from scaling.metrics import MetricHistory
from scaling.settings import ScalingSettings

START = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday


def weekly_rate(t: datetime) -> float:
    """Requests/s: a night floor, an evening peak, busier weekends."""
    evening = max(0.0, math.sin(math.pi * (t.hour - 8) / 16)) if 8 <= t.hour < 24 else 0.0
    return (2.0 + 40.0 * evening) * (1.5 if t.weekday() >= 5 else 1.0)


def make_history(
    days: int,
    *,
    rate: Callable[[datetime], float] = weekly_rate,
    start: datetime = START,
    period: int = 300,
    noise: float = 0.0,
    duration_ms: float | None = 200.0,
    concurrency: bool = True,
    invocations: bool = True,
    busy: bool = True,
    seed: int = 0,
) -> MetricHistory:
    """5-minute metrics of ``rate`` requests/s lasting ``duration_ms`` each (``busy``: with ``Duration`` Sum)."""
    rng = random.Random(seed)
    n = days * 24 * 3600 // period
    inv: list[float | None] = []
    conc: list[float | None] = []
    dur: list[float | None] = []
    total: list[float | None] = []
    for i in range(n):
        t = start + timedelta(seconds=i * period)
        r = rate(t) * (1.0 + rng.gauss(0.0, noise) if noise else 1.0)
        r = max(r, 0.0)
        inv.append(r * period if invocations and r > 0 else None)
        conc.append(max(1.0, r * 0.1) if concurrency and r > 0 else None)
        dur.append(duration_ms if duration_ms is not None and r > 0 else None)
        total.append(r * period * duration_ms if duration_ms is not None and r > 0 else None)
    return MetricHistory(start, period, inv, conc, dur, total if busy else None)


@pytest.fixture
def settings() -> ScalingSettings:
    return ScalingSettings(function_name="api", alias="live", min_capacity=1, max_capacity=100, headroom=1.0)
