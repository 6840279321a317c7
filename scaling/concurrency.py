"""From demand to execution environments: Little's law, headroom and the configured bounds.

Little's law: the mean number of requests in flight is the arrival rate times the time each one
stays, ``L = lambda * W``. Planning with the **p99** duration instead of the mean (and the hour's
busiest 5-minute rate, at an upper quantile) covers the bursts around the mean; ``headroom`` is
a last multiplier on top. Provisioned concurrency is an integer, so the result is rounded up.
"""

from __future__ import annotations

import math

_EPSILON = 1e-9


def littles_law(rate_per_second: float, duration_seconds: float) -> float:
    """Mean requests in flight for an arrival rate (req/s) and a time in the system (s)."""
    if rate_per_second < 0 or duration_seconds < 0:
        raise ValueError("rate and duration must not be negative")
    return rate_per_second * duration_seconds


def required_concurrency(rate_per_second: float, p99_duration_seconds: float, headroom: float) -> int:
    """Execution environments needed: ``ceil(rate x p99 duration x headroom)``."""
    if headroom < 1.0:
        raise ValueError("headroom must be at least 1")
    value = littles_law(rate_per_second, p99_duration_seconds) * headroom
    return math.ceil(value - _EPSILON)


def clamp_capacity(value: float | None, floor: int, maximum: int) -> int:
    """``value`` rounded up and clamped to ``[floor, maximum]``; ``None``/NaN/inf become the floor."""
    if floor > maximum:
        raise ValueError(f"floor {floor} is above maximum {maximum}")
    if value is None or not math.isfinite(value):
        return floor
    return max(floor, min(maximum, math.ceil(value - _EPSILON)))
