"""Predictive scaling simulator, priced in full: ``python -m bench.scaling``.

Replays request traces through a model of Lambda concurrency and compares ways of avoiding cold
starts, side by side on the same requests, by the cold-started requests, the latency they add and
the **whole weekly Lambda bill** (``bench/pricing.py``: requests, duration at the on-demand rate and
at the provisioned rate for the requests provisioned environments serve, provisioned concurrency,
billed INIT, SnapStart cache and restores; us-east-1 list prices, x86_64 and arm64):

* ``none``: no provisioned concurrency, on-demand only;
* ``snapstart``: on-demand with SnapStart: a cold start restores a snapshot (``--restore-ms``)
  instead of running the init, for a cache charge while the version is active and a charge per
  restore (SnapStart cannot be combined with provisioned concurrency);
* ``static-peak``: provisioned concurrency fixed at the peak ``ConcurrentExecutions`` of the
  training weeks (what an operator reading CloudWatch would set);
* ``target-tracking``: Application Auto Scaling target tracking on
  ``ProvisionedConcurrencyUtilization`` alone;
* ``predictive+tt``: the forecaster's hourly scheduled ``MinCapacity`` (re-planned every hour by
  the real ``scaling`` code with the settings given: ``--headroom``, ``--quantile``,
  ``--target-utilization``) plus the same target tracking;
* ``predictive-daily+tt``: the same, planned once a day (the forecast 1 to 24 hours ahead);
* ``oracle-peak+tt``: a reference no forecaster can reach, each hour's minimum at that hour's
  actual busiest second (known in hindsight), plus target tracking.

Then a **sweep** (``--no-sweep`` skips it) varies each family's parameters: static level, the
target-tracking target, the forecaster's headroom and quantile (sizing for the peak) and its target
utilisation (``RECS_SCALING_TARGET_UTILIZATION``, sizing for the mean), for the Pareto chart
``bench/results/scaling-pareto.png`` (cold-started requests against the weekly bill).

**Traces** (seeded, regenerated on every run): ``synthetic``, weeks with daily and weekly
seasonality, slow growth, day-to-day and minute-to-minute noise and unannounced spikes (2x to 3x
for 10 to 40 minutes); ``movielens``, the hour-of-week activity profile of the rating sessions in
``data/ml-latest-small/ratings.csv`` (distinct user-hours), scaled to a peak of ``--ml-peak``
requests/s, with the same noise and no spikes. The forecaster is trained on the first
``--train-weeks`` weeks and evaluated on the week after them: each hourly plan sees only the
5-minute CloudWatch-like aggregates (Invocations sum, ConcurrentExecutions max, Duration p99 and
sum) of the hours before it.

**Requests** are simulated one by one: Poisson arrivals at the trace's rate, log-normal durations.
The peak number in flight in each second is the demand for execution environments.

**Lambda model** (per second): requests go to ready provisioned environments first; the overflow
goes to on-demand environments, which stay warm while used and are reclaimed after
``--keep-warm`` seconds idle (most-recently-used first). A request that finds no warm environment
is a cold start and waits the init (log-normal, median ``--init-ms``; by default the median that
``bench.cold_start`` measured for the handler with X-Ray in a fresh local process, read from
``bench/results/cold_start.json``, which does not include the sandbox start a real Lambda adds;
1200 ms, the former fixed default, when that file is missing), or with SnapStart the restore
(median ``--restore-ms``, 500 ms: an assumption, AWS publishes "as low as sub-second" for Python
and no figure). Provisioned concurrency is billed per minute from the moment it is requested until
it is released, at ``--memory-mb``. The share of the run time served by provisioned environments is
``E[min(N, ready)]`` per second with ``N`` Poisson (requests in flight).

**Target tracking model** (AWS defaults for Lambda): one datapoint a minute (Average utilization
of the ready provisioned concurrency), visible ``--metric-lag`` minutes late; scale out when 3
datapoints in a row exceed the target, to ``ceil(capacity x utilization / target)``; scale in when
15 in a row are below 90% of the target; no cooldowns; new capacity is ready
``--provision-delay`` seconds after it is requested. Scheduled actions raise the minimum (and the
capacity, if below it) when they fire, ``lead_minutes`` before their hour.

The report: the price table; per trace and policy, the cold-started requests, the latency they add
at p99 and p99.9 over the warm p99 and the median a cold-started request waits, provisioned GB-s and
the weekly bill (total, then by part, x86_64 and arm64); the sweep; whether predictive + target
tracking meets the target (at least 90% fewer cold-started requests than target tracking alone at
no more than 1.2x its bill, on both architectures), the cheapest swept point with 90% fewer, and a
lower bound for any hourly schedule (``hourly_cover_bound``); a PNG per trace and the Pareto PNG in
``bench/results/``; the JSON object on the last line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench.pricing import ARCHITECTURES, PARTS, PRICES, Bill, Usage, bills, price_table
from bench.pricing import to_json as pricing_json
from scaling.metrics import MetricHistory
from scaling.plan import build_plan
from scaling.settings import ScalingSettings

ROOT = Path(__file__).resolve().parent.parent
RATINGS = ROOT / "data" / "ml-latest-small" / "ratings.csv"
RESULTS = Path(__file__).resolve().parent / "results"
WEEK_S = 7 * 24 * 3600
HOUR_S = 3600
PERIOD_S = 300
START = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday, 00:00 UTC
POLICIES = (
    "none",
    "snapstart",
    "static-peak",
    "target-tracking",
    "predictive+tt",
    "predictive-daily+tt",
    "oracle-peak+tt",
)
RESTORE_MEDIAN_MS = 500.0
"""SnapStart restore, median: an assumption (AWS publishes "as low as sub-second" for Python, no figure)."""


# --------------------------------------------------------------------------------------------
# Traces: per-second arrival rates
# --------------------------------------------------------------------------------------------


@dataclass
class Trace:
    name: str
    rate: np.ndarray
    """Requests per second, one value per second from ``START``."""
    spike: np.ndarray
    """True in the seconds of an unannounced spike."""
    description: str


def _bump(hour: np.ndarray, centre: float, width: float) -> np.ndarray:
    d = np.abs(hour - centre)
    d = np.minimum(d, 24.0 - d)
    return np.asarray(np.exp(-0.5 * (d / width) ** 2))


def _noise(rng: np.random.Generator, seconds: int, *, day_sigma: float, minute_sigma: float) -> np.ndarray:
    """Multiplicative noise: a level per day (interpolated) times an AR(1) per minute."""
    days = seconds // 86400 + 2
    day_level = rng.lognormal(0.0, day_sigma, days)
    t_days = np.arange(seconds) / 86400.0
    level = np.interp(t_days, np.arange(days) + 0.5, day_level)
    minutes = seconds // 60 + 1
    phi = 0.95
    shocks = rng.normal(0.0, minute_sigma * math.sqrt(1 - phi * phi), minutes)
    ar = np.empty(minutes)
    ar[0] = rng.normal(0.0, minute_sigma)
    for i in range(1, minutes):  # 50k steps: fast enough
        ar[i] = phi * ar[i - 1] + shocks[i]
    per_minute = np.exp(ar - 0.5 * minute_sigma**2)
    return np.asarray(level * np.repeat(per_minute, 60)[:seconds])


def synthetic_trace(weeks: int, rng: np.random.Generator, peak: float, spikes_per_week: float) -> Trace:
    seconds = weeks * WEEK_S
    t = np.arange(seconds, dtype=np.float64)
    hour = (t % 86400) / 3600.0
    day = (t // 86400).astype(np.int64) % 7
    shape = 0.06 + 0.22 * _bump(hour, 8.5, 1.5) + 0.45 * _bump(hour, 13.0, 2.0) + 1.0 * _bump(hour, 20.5, 2.3)
    weekday_factor = np.array([0.9, 0.92, 0.95, 1.0, 1.1, 1.2, 1.15])[day]
    weekend = (day >= 5).astype(np.float64)
    shape = shape * weekday_factor + weekend * 0.35 * _bump(hour, 15.0, 3.0)
    growth = 1.0 + 0.03 * t / WEEK_S
    rate = peak / 1.1 * shape * growth * _noise(rng, seconds, day_sigma=0.07, minute_sigma=0.08)
    spike = np.zeros(seconds, dtype=bool)
    factor = np.ones(seconds)
    count = rng.poisson(spikes_per_week * weeks)
    for _ in range(count):
        day_start = int(rng.integers(0, weeks * 7)) * 86400
        start = day_start + int(rng.uniform(9, 23) * 3600)
        magnitude = rng.uniform(1.0, 2.0)  # +100% .. +200%
        ramp = int(rng.uniform(60, 180))
        plateau = int(rng.uniform(600, 2400))
        decay = 600.0
        length = min(seconds - start, ramp + plateau + int(5 * decay))
        if length <= 0:
            continue
        s = np.arange(length, dtype=np.float64)
        profile = np.where(
            s < ramp, s / ramp, np.where(s < ramp + plateau, 1.0, np.exp(-(s - ramp - plateau) / decay))
        )
        factor[start : start + length] += magnitude * profile
        spike[start : start + length] |= profile > 0.05
    return Trace(
        name="synthetic",
        rate=rate * factor,
        spike=spike,
        description=(
            f"{weeks} weeks: evening peak {peak:g} req/s on weekdays, weekend afternoons, +3%/week, "
            f"{count} unannounced spikes of 2x-3x"
        ),
    )


def movielens_profile(path: Path = RATINGS) -> np.ndarray:
    """Relative activity per hour of the week (Monday 00:00 UTC = 0): distinct user-hours, smoothed."""
    raw = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(0, 3), dtype=np.int64)
    users, stamps = raw[:, 0], raw[:, 1]
    hours = stamps // 3600
    sessions = np.unique(users * 10**8 + hours)
    how = ((sessions % 10**8) + 72) % 168  # 1970-01-01 was a Thursday (hour 72 of a Monday week)
    counts = np.bincount(how, minlength=168).astype(np.float64)
    smooth = 0.25 * np.roll(counts, 1) + 0.5 * counts + 0.25 * np.roll(counts, -1)
    return np.asarray(smooth / smooth.max())


def movielens_trace(weeks: int, rng: np.random.Generator, peak: float, path: Path = RATINGS) -> Trace:
    profile = movielens_profile(path)
    seconds = weeks * WEEK_S
    t = np.arange(seconds, dtype=np.float64)
    # Linear interpolation between hour centres, around the week.
    how = (t % WEEK_S) / 3600.0 - 0.5
    ext = np.concatenate([profile, profile[:1]])
    base = np.interp(how % 168, np.arange(169), ext)
    growth = 1.0 + 0.03 * t / WEEK_S
    rate = peak * base * growth * _noise(rng, seconds, day_sigma=0.07, minute_sigma=0.08)
    return Trace(
        name="movielens",
        rate=rate,
        spike=np.zeros(seconds, dtype=bool),
        description=(
            f"{weeks} weeks: hour-of-week profile of the MovieLens rating sessions "
            f"(peak/trough {profile.max() / profile.min():.1f}x), peak {peak:g} req/s, +3%/week, no spikes"
        ),
    )


# --------------------------------------------------------------------------------------------
# Requests: arrivals, durations, peak in flight per second, CloudWatch-like aggregates
# --------------------------------------------------------------------------------------------


@dataclass
class Demand:
    arrivals: np.ndarray  # per second
    peak: np.ndarray  # per second: most requests in flight at once
    busy: np.ndarray  # per second: mean requests in flight (sum of durations / 1 s)
    invocations_5m: np.ndarray
    concurrency_5m: np.ndarray
    p99_ms_5m: np.ndarray  # NaN without requests
    durations_ms: np.ndarray  # a sample of the evaluation week's durations
    busy_ms_5m: np.ndarray  # CloudWatch's Duration Sum: milliseconds of work started in the period
    histories: dict[tuple[int, int], MetricHistory] = field(default_factory=dict, repr=False)


def simulate_requests(
    rate: np.ndarray,
    rng: np.random.Generator,
    *,
    median_ms: float,
    sigma: float,
    sample_from: int,
    sample_per_hour: int = 3000,
) -> Demand:
    seconds = len(rate)
    hours = seconds // HOUR_S
    arrivals = np.zeros(seconds, dtype=np.int32)
    peak = np.zeros(seconds, dtype=np.int32)
    busy = np.zeros(seconds, dtype=np.float32)
    per_hour_periods = HOUR_S // PERIOD_S
    inv5 = np.zeros(hours * per_hour_periods)
    conc5 = np.zeros(hours * per_hour_periods)
    p99_5 = np.full(hours * per_hour_periods, np.nan)
    samples: list[np.ndarray] = []
    carry = np.zeros(0, dtype=np.int64)  # end times (us, relative to the hour) still running
    us = 1_000_000
    second_starts = np.arange(HOUR_S, dtype=np.int64) * us
    for h in range(hours):
        lo = h * HOUR_S
        counts = rng.poisson(rate[lo : lo + HOUR_S])
        n = int(counts.sum())
        sec = np.repeat(np.arange(HOUR_S, dtype=np.int64), counts)
        start = np.sort(sec * us + (rng.random(n) * us).astype(np.int64))
        sec = start // us
        duration = rng.lognormal(math.log(median_ms * 1000.0), sigma, n).astype(np.int64)
        end = np.sort(start + duration)
        carry_sorted = np.sort(carry)
        # In flight right after each arrival: arrivals so far - ended so far (+ carried still running).
        inflight = (
            np.arange(1, n + 1)
            - np.searchsorted(end, start, side="right")
            + (len(carry_sorted) - np.searchsorted(carry_sorted, start, side="right"))
        )
        # In flight at the start of each second (covers seconds without arrivals).
        at_boundary = (
            np.searchsorted(start, second_starts, side="left")
            - np.searchsorted(end, second_starts, side="right")
            + (len(carry_sorted) - np.searchsorted(carry_sorted, second_starts, side="right"))
        )
        hour_peak = at_boundary.astype(np.int64)
        if n:
            nonzero = np.flatnonzero(counts)
            bounds = np.concatenate(([0], np.cumsum(counts)[:-1]))[nonzero]
            hour_peak[nonzero] = np.maximum(hour_peak[nonzero], np.maximum.reduceat(inflight, bounds))
        arrivals[lo : lo + HOUR_S] = counts
        peak[lo : lo + HOUR_S] = hour_peak
        busy[lo : lo + HOUR_S] = np.bincount(sec, weights=duration, minlength=HOUR_S) / us
        base = h * per_hour_periods
        period_counts = counts.reshape(per_hour_periods, -1).sum(axis=1)
        inv5[base : base + per_hour_periods] = period_counts
        conc5[base : base + per_hour_periods] = hour_peak.reshape(per_hour_periods, -1).max(axis=1)
        edges = np.concatenate(([0], np.cumsum(period_counts)))
        for p in range(per_hour_periods):
            if edges[p + 1] > edges[p]:
                p99_5[base + p] = np.percentile(duration[edges[p] : edges[p + 1]], 99) / 1000.0
        if lo >= sample_from and n:
            samples.append(duration[rng.choice(n, size=min(n, sample_per_hour), replace=False)] / 1000.0)
        carry = end[end >= HOUR_S * us] - HOUR_S * us
    return Demand(
        arrivals=arrivals,
        peak=peak,
        busy=busy,
        invocations_5m=inv5,
        concurrency_5m=conc5,
        p99_ms_5m=p99_5,
        durations_ms=np.concatenate(samples) if samples else np.zeros(1),
        busy_ms_5m=busy[: hours * HOUR_S].astype(np.float64).reshape(-1, PERIOD_S).sum(axis=1) * 1000.0,
    )


# --------------------------------------------------------------------------------------------
# Capacity policies
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackingConfig:
    target: float = 0.7
    high_points: int = 3
    low_points: int = 15
    low_ratio: float = 0.9
    metric_lag_min: int = 1
    provision_delay_s: int = 120


def target_tracking(
    busy: np.ndarray,
    *,
    floor: int,
    maximum: int,
    config: TrackingConfig,
    schedule: np.ndarray | None = None,
    initial: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Ready and billed provisioned concurrency per minute.

    ``busy`` is the mean in-flight count per second; ``schedule`` the scheduled ``MinCapacity`` in
    effect each minute (``None``: the floor all the time).
    """
    minutes = len(busy) // 60
    per_minute = busy[: minutes * 60].reshape(minutes, 60).astype(np.float64)
    delay = max(1, math.ceil(config.provision_delay_s / 60))
    ready = desired = max(floor, initial or 0)
    pending: list[tuple[int, int]] = []  # (minute it is ready, capacity)
    utils: list[float] = []  # one datapoint per minute
    caps: list[int] = []  # the ready capacity each datapoint was measured against
    last_scale_in = 0
    ready_out = np.zeros(minutes, dtype=np.int64)
    billed_out = np.zeros(minutes, dtype=np.int64)
    for m in range(minutes):
        while pending and pending[0][0] <= m:
            _, value = pending.pop(0)
            ready = max(ready, min(value, desired))
        minimum = int(schedule[m]) if schedule is not None else floor
        minimum = min(max(minimum, floor), maximum)
        if desired < minimum:
            desired = minimum
            pending.append((m + delay, desired))
        visible = len(utils) - config.metric_lag_min
        # New capacity = capacity x utilization / target, with the capacity the datapoint was measured
        # against (kinder to target tracking than applying a stale datapoint to today's capacity).
        if visible >= config.high_points and caps[visible - 1] > 0:
            recent = utils[visible - config.high_points : visible]
            if all(u > config.target for u in recent):
                want = min(maximum, math.ceil(caps[visible - 1] * recent[-1] / config.target - 1e-9))
                if want > desired:
                    desired = want
                    pending.append((m + delay, desired))
        # Scale in only on datapoints measured after the previous scale-in (no double scale-in on stale data).
        if visible - config.low_points >= last_scale_in and ready > 0 and not pending:
            recent = utils[visible - config.low_points : visible]
            if all(u < config.target * config.low_ratio for u in recent):
                want = max(minimum, math.ceil(caps[visible - 1] * recent[-1] / config.target - 1e-9))
                if want < desired:
                    desired = ready = want
                    last_scale_in = m
        ready_out[m] = ready
        billed_out[m] = max(ready, desired)
        caps.append(ready)
        utils.append(float(np.minimum(per_minute[m], ready).mean() / ready) if ready > 0 else 0.0)
    return ready_out, billed_out


def sliding_max_before(values: np.ndarray, window: int) -> np.ndarray:
    """``out[t] = max(values[t-window : t])`` (0 before the start), in O(n) (van Herk / Gil-Werman)."""
    n = len(values)
    x = np.concatenate([np.zeros(window, dtype=values.dtype), values])
    length = len(x)
    blocks = -(-length // window)
    padded = np.zeros(blocks * window, dtype=values.dtype)
    padded[:length] = x
    b = padded.reshape(blocks, window)
    forward = np.maximum.accumulate(b, axis=1).ravel()
    backward = np.maximum.accumulate(b[:, ::-1], axis=1)[:, ::-1].ravel()
    idx = np.arange(n)
    # Window [idx, idx + window - 1] in padded coordinates = values[t - window .. t - 1].
    return np.asarray(np.maximum(backward[idx], forward[idx + window - 1]))


def _cold_once(demand: np.ndarray, ready: np.ndarray, keep_warm_s: int) -> np.ndarray:
    overflow = np.maximum(demand - ready, 0)
    warm = sliding_max_before(overflow, keep_warm_s)
    return np.asarray(np.maximum(overflow - warm, 0))


def cold_starts(peak: np.ndarray, ready: np.ndarray, keep_warm_s: int, init_s: int = 1) -> np.ndarray:
    """Cold starts per second: overflow beyond provisioned that no warm on-demand environment absorbs.

    A cold-started request holds its environment through its initialisation, so it is still in
    flight ``init_s`` seconds later and takes a place other requests would have reused: the demand
    of the following seconds grows by the cold starts before them, which can start more. Solved by
    fixed-point iteration (each pass pushes the knock-on effect one more second).
    """
    base = peak.astype(np.int64)
    provisioned = ready.astype(np.int64)
    cold = _cold_once(base, provisioned, keep_warm_s)
    for _ in range(100):
        if init_s <= 0 or not cold.any():
            break
        initialising = np.zeros_like(base)
        for lag in range(1, init_s + 1):
            initialising[lag:] += cold[:-lag]
        again = _cold_once(base + initialising, provisioned, keep_warm_s)
        if np.array_equal(again, cold):
            break
        cold = again
    return cold


# --------------------------------------------------------------------------------------------
# The forecaster, replayed hour by hour
# --------------------------------------------------------------------------------------------


class ReplayedHistory(MetricHistory):
    """A ``MetricHistory`` whose hourly views are computed once: the sweep plans the same hours with
    many settings (same values as the parent's methods; the bench's only shortcut)."""

    def _once(self, name: str, make: Callable[[], list[float | None]]) -> list[float | None]:
        views = self.__dict__.setdefault("_views", {})  # frozen dataclass: the instance dict directly
        if name not in views:
            views[name] = make()
        return list(views[name])

    def hourly_peak_rate(self) -> list[float | None]:
        return self._once("rate", super().hourly_peak_rate)

    def hourly_peak_concurrency(self) -> list[float | None]:
        return self._once("concurrency", super().hourly_peak_concurrency)

    def hourly_mean_concurrency(self) -> list[float | None]:
        return self._once("mean", super().hourly_mean_concurrency)


def history_until(demand: Demand, end_hour: int, days: int) -> MetricHistory:
    """What CloudWatch would return at ``end_hour`` for the last ``days`` days (built once per hour)."""
    key = (end_hour, days)
    if key not in demand.histories:
        demand.histories[key] = _history_until(demand, end_hour, days)
    return demand.histories[key]


def _history_until(demand: Demand, end_hour: int, days: int) -> MetricHistory:
    per_hour = HOUR_S // PERIOD_S
    first_hour = max(0, end_hour - days * 24)
    lo, hi = first_hour * per_hour, end_hour * per_hour
    inv = [float(v) if v > 0 else None for v in demand.invocations_5m[lo:hi]]
    conc = [float(v) if v > 0 else None for v in demand.concurrency_5m[lo:hi]]
    p99 = [None if math.isnan(v) else float(v) for v in demand.p99_ms_5m[lo:hi]]
    total = [float(v) if v > 0 else None for v in demand.busy_ms_5m[lo:hi]]
    return ReplayedHistory(START + timedelta(hours=first_hour), PERIOD_S, inv, conc, p99, total)


def predictive_schedule(
    demand: Demand,
    settings: ScalingSettings,
    *,
    first_hour: int,
    last_hour: int,
    replan_hours: int,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Scheduled MinCapacity per minute over ``[first_hour, last_hour)``, from plans made every
    ``replan_hours`` at 5 past the hour with only the history before them."""
    # The value each hour's action carries when it fires (latest plan made before the firing).
    action_value: dict[int, int] = {}
    plans: list[dict[str, Any]] = []
    lead = settings.lead_minutes
    for plan_hour in range(first_hour - 1, last_hour, replan_hours):
        now = START + timedelta(hours=plan_hour, minutes=5)
        history = history_until(demand, plan_hour, settings.history_days)
        plan = build_plan(settings, now, history)
        plans.append({"hour": plan_hour, "mode": plan.mode, "notes": plan.notes})
        for h in plan.hours:
            hour_index = int((h.hour - START).total_seconds() // HOUR_S)
            action_value[hour_index] = h.min_capacity
    return fire_actions(action_value, first_hour, last_hour, lead, settings.min_capacity), plans


def fire_actions(action_value: dict[int, int], first_hour: int, last_hour: int, lead: int, floor: int) -> np.ndarray:
    """The ``MinCapacity`` in effect each minute when hour ``h``'s action fires ``lead`` minutes before it."""
    minutes = (last_hour - first_hour) * 60
    schedule = np.full(minutes, floor, dtype=np.int64)
    current = floor
    for m in range(minutes):
        absolute_minute = first_hour * 60 + m
        if (absolute_minute + lead) % 60 == 0:
            hour_index = (absolute_minute + lead) // 60
            current = action_value.get(hour_index, current)
        schedule[m] = current
    return schedule


def clairvoyant_schedule(peak: np.ndarray, first_hour: int, last_hour: int, lead: int, floor: int) -> np.ndarray:
    """A reference no forecaster can reach: each hour's action carries that hour's *actual* largest
    per-second concurrency (``max`` with the previous hour's, as the real actions do when they fire early)."""
    hours = np.arange(first_hour - 1, last_hour)
    level = {int(h): int(peak[h * HOUR_S : (h + 1) * HOUR_S].max()) if h >= 0 else floor for h in hours}
    values = {h: max(floor, level[h], level[h - 1]) for h in range(first_hour, last_hour)}
    return fire_actions(values, first_hour, last_hour, lead, floor)


# --------------------------------------------------------------------------------------------
# Metrics: latency added, what each policy is billed
# --------------------------------------------------------------------------------------------


class LatencyMixture:
    """Latency of a mixture of warm requests and cold ones (duration + start-up), sorted once for
    the many cold fractions of the policies and the sweep."""

    def __init__(self, durations_ms: np.ndarray, startup_ms: np.ndarray) -> None:
        self.warm = np.sort(durations_ms)
        cold = durations_ms + startup_ms[: len(durations_ms)]
        values = np.concatenate([self.warm, cold])
        order = np.argsort(values, kind="stable")
        self.values = values[order]
        is_cold = order >= len(self.warm)
        self.warm_share = np.cumsum(~is_cold) / len(self.warm)
        self.cold_share = np.cumsum(is_cold) / len(cold)

    def added(self, cold_fraction: float, q: float) -> float:
        """``q``-quantile latency with a ``cold_fraction`` of cold starts minus without any."""
        base = float(np.quantile(self.warm, q))
        if cold_fraction <= 0:
            return 0.0
        cumulative = (1 - cold_fraction) * self.warm_share + cold_fraction * self.cold_share
        index = int(np.searchsorted(cumulative, q, side="left"))
        return float(self.values[min(index, len(self.values) - 1)] - base)


def added_latency(durations_ms: np.ndarray, cold_fraction: float, init_ms: np.ndarray, q: float) -> float:
    """``q``-quantile latency with cold starts minus without: a mixture of warm and cold requests."""
    return LatencyMixture(durations_ms, init_ms).added(cold_fraction, q)


def provisioned_served(busy: np.ndarray, ready: np.ndarray) -> np.ndarray:
    """Per second, the mean number of requests in flight on provisioned environments.

    Requests in flight are Poisson with mean ``busy`` (the number in an M/G/infinity system), and
    provisioned environments take them first, so provisioned ones serve ``E[min(N, ready)]`` =
    ``sum over j = 1..ready of P(N >= j)``; the rest runs on on-demand environments at the higher price.
    """
    lam = busy.astype(np.float64)
    r = ready.astype(np.int64)
    served = np.zeros_like(lam)
    p = np.exp(-lam)  # P(N = j), from j = 0
    below = p.copy()  # P(N <= j - 1) at step j
    for j in range(1, int(r.max(initial=0)) + 1):
        served += np.where(r >= j, 1.0 - below, 0.0)
        p = p * lam / j
        below += p
    return np.asarray(np.minimum(served, lam))


@dataclass
class PolicyResult:
    policy: str
    requests: int
    cold_starts: int
    cold_in_spikes: int
    p99_added_ms: float
    p999_added_ms: float
    cold_added_ms: float
    """Median latency a cold-started request gets on top of its duration (init, or SnapStart's restore)."""
    gb_seconds: float
    """Provisioned concurrency configured, GB-s."""
    mean_provisioned: float
    usage: Usage
    bills: dict[str, Bill]
    ready_per_minute: np.ndarray = field(repr=False)
    billed_per_minute: np.ndarray = field(repr=False)
    cold_per_hour: np.ndarray = field(repr=False)

    @property
    def cold_fraction(self) -> float:
        return self.cold_starts / self.requests if self.requests else 0.0

    def cost(self, architecture: str = "x86_64") -> float:
        return self.bills[architecture].total

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "cold_starts": self.cold_starts,
            "cold_fraction": self.cold_fraction,
            "cold_starts_in_spikes": self.cold_in_spikes,
            "p99_added_ms": round(self.p99_added_ms, 1),
            "p999_added_ms": round(self.p999_added_ms, 1),
            "cold_start_added_ms": round(self.cold_added_ms, 1),
            "provisioned_gb_seconds": round(self.gb_seconds),
            "mean_provisioned": round(self.mean_provisioned, 2),
            "weekly_bill_usd": {arch: b.to_json() for arch, b in self.bills.items()},
        }


# --------------------------------------------------------------------------------------------
# One trace end to end
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchConfig:
    seed: int
    train_weeks: int
    warmup_hours: int
    synthetic_peak: float
    ml_peak: float
    spikes_per_week: float
    median_ms: float
    sigma: float
    init_median_ms: float
    init_sigma: float
    restore_median_ms: float
    restore_sigma: float
    snapstart_versions: int
    keep_warm_s: int
    memory_mb: int
    tracking: TrackingConfig
    settings: ScalingSettings
    sweep: bool = True
    out: Path = RESULTS


@dataclass
class _Window:
    """The simulated span (warm-up + evaluation week) of one trace, and what every policy shares."""

    demand: Demand
    trace: Trace
    config: BenchConfig
    first_hour: int
    last_hour: int
    counted: np.ndarray  # per second of the span: in the evaluation week
    requests: int
    init_ms: np.ndarray
    restore_ms: np.ndarray
    memo: dict[Any, Any] = field(default_factory=dict)

    def once(self, key: Any, make: Callable[[], Any]) -> Any:
        """``make()`` the first time ``key`` is asked for (sweep points equal to a policy are not redone)."""
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]

    def mixture(self, snapstart: bool) -> LatencyMixture:
        startup = self.restore_ms if snapstart else self.init_ms
        return self.once(("mixture", snapstart), lambda: LatencyMixture(self.demand.durations_ms, startup))

    @property
    def span(self) -> slice:
        return slice(self.first_hour * HOUR_S, self.last_hour * HOUR_S)

    def evaluate(
        self, policy: str, ready_min: np.ndarray, billed_min: np.ndarray, *, snapstart: bool = False
    ) -> PolicyResult:
        config = self.config
        peak = self.demand.peak[self.span]
        busy = self.demand.busy[self.span]
        counted = self.counted
        counted_min = counted[::60]
        gb = config.memory_mb / 1024.0
        start_ms = self.restore_ms if snapstart else self.init_ms
        start_median = config.restore_median_ms if snapstart else config.init_median_ms
        ready = np.repeat(ready_min, 60)
        cold = cold_starts(peak, ready, config.keep_warm_s, init_s=max(1, round(start_median / 1000)))
        cold_count = int(cold[counted].sum())
        fraction = cold_count / self.requests if self.requests else 0.0
        mixture = self.mixture(snapstart)

        # Run time, rounded up to 1 ms per request (+0.5 ms on average), split between provisioned
        # and on-demand environments.
        busy_counted = busy[counted].astype(np.float64)
        run_seconds = float(busy_counted.sum()) + 0.0005 * self.requests
        if ready_min[counted_min].any():
            share = float(provisioned_served(busy_counted, ready[counted]).sum()) / max(float(busy_counted.sum()), 1e-9)
        else:
            share = 0.0
        billed = billed_min[counted_min]
        increments = np.diff(billed_min[np.flatnonzero(counted_min)[0] - 1 :]) if counted_min.any() else np.zeros(0)
        start_s = float(start_ms.mean()) / 1000.0
        usage = Usage(
            requests=self.requests,
            on_demand_gb_s=run_seconds * (1.0 - share) * gb,
            provisioned_served_gb_s=run_seconds * share * gb,
            provisioned_gb_s=float(billed.sum()) * 60.0 * gb,
            init_gb_s=0.0 if snapstart else cold_count * start_s * gb,
            provisioned_init_gb_s=float(np.maximum(increments, 0).sum()) * float(self.init_ms.mean()) / 1000.0 * gb,
            restore_gb_s=cold_count * start_s * gb if snapstart else 0.0,
            restored_gb=cold_count * gb if snapstart else 0.0,
            cached_gb_s=config.snapstart_versions * gb * WEEK_S if snapstart else 0.0,
        )
        return PolicyResult(
            policy=policy,
            requests=self.requests,
            cold_starts=cold_count,
            cold_in_spikes=int(cold[counted & self.trace.spike[self.span]].sum()),
            p99_added_ms=mixture.added(fraction, 0.99),
            p999_added_ms=mixture.added(fraction, 0.999),
            cold_added_ms=float(np.median(start_ms)),
            gb_seconds=usage.provisioned_gb_s,
            mean_provisioned=float(billed.mean()),
            usage=usage,
            bills=bills(usage),
            ready_per_minute=ready_min[counted_min],
            billed_per_minute=billed,
            cold_per_hour=cold[counted].reshape(-1, HOUR_S).sum(axis=1),
        )

    def tracking(
        self, target: float | None = None, schedule: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        config = self.config
        tracking = config.tracking if target is None else replace(config.tracking, target=target)
        return target_tracking(
            self.demand.busy[self.span],
            floor=config.settings.min_capacity,
            maximum=config.settings.max_capacity,
            config=tracking,
            schedule=schedule,
        )

    def predictive(self, settings: ScalingSettings, replan_hours: int = 1) -> tuple[np.ndarray, list[dict[str, Any]]]:
        key = ("schedule", settings.headroom, settings.quantile, settings.target_utilization, replan_hours)
        return self.once(key, lambda: self._predictive(settings, replan_hours))

    def static_result(self, level: int) -> PolicyResult:
        flat = np.full(len(self.counted) // 60, level, dtype=np.int64)
        return self.once(("static", level), lambda: self.evaluate("static-peak", flat, flat))

    def tracking_result(self, target: float) -> PolicyResult:
        return self.once(("tt", target), lambda: self.evaluate("target-tracking", *self.tracking(target)))

    def predictive_result(self, settings: ScalingSettings, replan_hours: int = 1) -> PolicyResult:
        name = "predictive+tt" if replan_hours == 1 else "predictive-daily+tt"
        key = ("predictive", settings.headroom, settings.quantile, settings.target_utilization, replan_hours)
        schedule = self.predictive(settings, replan_hours)[0]
        return self.once(key, lambda: self.evaluate(name, *self.tracking(schedule=schedule)))

    def _predictive(self, settings: ScalingSettings, replan_hours: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
        if replan_hours == 1:
            return predictive_schedule(
                self.demand, settings, first_hour=self.first_hour, last_hour=self.last_hour, replan_hours=1
            )
        # Daily plans at 00:05 (the warm-up starts on an hour, possibly mid-day: align to midnight).
        daily_first = (self.first_hour // 24) * 24
        full, plans = predictive_schedule(
            self.demand, settings, first_hour=daily_first, last_hour=self.last_hour, replan_hours=replan_hours
        )
        return full[(self.first_hour - daily_first) * 60 :], plans


SWEEP_TARGETS = (0.5, 0.6, 0.7, 0.8, 0.9)
SWEEP_PEAK = ((1.0, 0.5), (1.0, 0.9), (1.1, 0.9), (1.3, 0.9))  # (headroom, quantile)
SWEEP_UTILIZATION = (0.3, 0.45, 0.6, 0.75, 0.9)
SWEEP_STATIC = (0.5, 0.75, 1.0)  # x the training weeks' peak


def _point(family: str, parameter: str, r: PolicyResult, short: str = "") -> dict[str, Any]:
    return {
        "family": family,
        "parameter": parameter,
        "label": short,
        "cold_starts": r.cold_starts,
        "p99_added_ms": round(r.p99_added_ms, 1),
        "p999_added_ms": round(r.p999_added_ms, 1),
        "mean_provisioned": round(r.mean_provisioned, 2),
        "weekly_usd": {arch: round(b.total, 2) for arch, b in r.bills.items()},
    }


def run_trace(trace: Trace, config: BenchConfig, rng: np.random.Generator, progress: bool) -> dict[str, Any]:
    eval_from = config.train_weeks * WEEK_S
    eval_to = eval_from + WEEK_S
    sim_from = eval_from - config.warmup_hours * HOUR_S
    t0 = time.perf_counter()
    demand = simulate_requests(
        trace.rate, rng, median_ms=config.median_ms, sigma=config.sigma, sample_from=eval_from
    )
    t_requests = time.perf_counter() - t0
    sample = len(demand.durations_ms)
    init_ms = rng.lognormal(math.log(config.init_median_ms), config.init_sigma, sample)
    restore_ms = rng.lognormal(math.log(config.restore_median_ms), config.restore_sigma, sample)
    counted = np.zeros(eval_to - sim_from, dtype=bool)
    counted[eval_from - sim_from :] = True
    w = _Window(
        demand=demand,
        trace=trace,
        config=config,
        first_hour=sim_from // HOUR_S,
        last_hour=eval_to // HOUR_S,
        counted=counted,
        requests=int(demand.arrivals[eval_from:eval_to].sum()),
        init_ms=init_ms,
        restore_ms=restore_ms,
    )
    static_level = int(demand.peak[:eval_from].max())
    settings = config.settings
    zeros = np.zeros((eval_to - sim_from) // 60, dtype=np.int64)

    t1 = time.perf_counter()
    with memoized_forecasts():
        plans = w.predictive(settings)[1]
        oracle = clairvoyant_schedule(
            demand.peak, w.first_hour, w.last_hour, settings.lead_minutes, settings.min_capacity
        )
        results: dict[str, PolicyResult] = {
            "none": w.evaluate("none", zeros, zeros),
            "snapstart": w.evaluate("snapstart", zeros, zeros, snapstart=True),
            "static-peak": w.static_result(static_level),
            "target-tracking": w.tracking_result(config.tracking.target),
            "predictive+tt": w.predictive_result(settings),
            "predictive-daily+tt": w.predictive_result(settings, replan_hours=24),
            "oracle-peak+tt": w.evaluate("oracle-peak+tt", *w.tracking(schedule=oracle)),
        }
        t_policies = time.perf_counter() - t1

        # The Pareto sweep: each family with its parameters varied.
        t2 = time.perf_counter()
        sweep: list[dict[str, Any]] = [
            _point("none", "-", results["none"]),
            _point("snapstart", f"restore {config.restore_median_ms:g} ms", results["snapstart"]),
            _point("oracle-peak+tt", "clairvoyant", results["oracle-peak+tt"], "clairvoyant"),
        ]
        if config.sweep:
            for factor in SWEEP_STATIC:
                level = max(1, round(static_level * factor))
                sweep.append(_point("static", f"{level}", w.static_result(level), f"{level}"))
            for target in SWEEP_TARGETS:
                sweep.append(_point("target-tracking", f"target {target:g}", w.tracking_result(target), f"{target:g}"))
            for headroom, quantile in SWEEP_PEAK:
                swept = settings.with_overrides(headroom=headroom, quantile=quantile, target_utilization=0.0)
                label = f"headroom {headroom:g}, q {quantile:g}"
                short = f"h{headroom:g} q{quantile:g}"
                sweep.append(_point("predictive+tt (peak)", label, w.predictive_result(swept), short))
            for utilization in SWEEP_UTILIZATION:
                swept = settings.with_overrides(target_utilization=utilization)
                label = f"utilisation {utilization:g}"
                sweep.append(_point("predictive+tt (mean)", label, w.predictive_result(swept), f"u{utilization:g}"))
        t_sweep = time.perf_counter() - t2

    tt, pred = results["target-tracking"], results["predictive+tt"]
    reduction = 1.0 - pred.cold_starts / tt.cold_starts if tt.cold_starts else float("nan")
    cost_ratio = {arch: pred.cost(arch) / tt.cost(arch) for arch in ARCHITECTURES}
    target_met = bool(reduction >= 0.9 and all(ratio <= 1.2 for ratio in cost_ratio.values()))
    best = _best_meeting_reduction(sweep, tt)
    bound = hourly_cover_bound(w, tt)
    fallbacks = sorted({note for p in plans for note in p["notes"]})
    chart = write_chart(trace, demand, results, eval_from, eval_to, config)
    return {
        "trace": trace.name,
        "description": trace.description,
        "requests": w.requests,
        "mean_rate": w.requests / WEEK_S,
        "static_level": static_level,
        "policies": {name: r.to_json() for name, r in results.items()},
        "cold_start_reduction_vs_tt": reduction,
        "cold_start_reduction_vs_tt_daily": (
            1.0 - results["predictive-daily+tt"].cold_starts / tt.cold_starts if tt.cold_starts else float("nan")
        ),
        "bill_vs_tt": cost_ratio,
        "gb_seconds_vs_static": pred.gb_seconds / results["static-peak"].gb_seconds,
        "target_met": target_met,
        "cheapest_point_with_90pct_fewer_cold_starts": best,
        "hourly_schedule_bound_90pct": bound,
        "sweep": sweep,
        "plans": len(plans),
        "plan_notes": fallbacks[:5],
        "chart": _relative(chart),
        "seconds": {
            "requests": round(t_requests, 1),
            "policies": round(t_policies, 1),
            "sweep": round(t_sweep, 1),
        },
        "_results": results,
    }


@contextlib.contextmanager
def memoized_forecasts() -> Iterator[None]:
    """Share forecasts between the plans of one trace: a plan's forecast depends on the series and
    the quantile, not on the headroom or the target utilisation, so the sweep's plans (and the
    hourly replan's overlapping horizons) would otherwise repeat most of the work. Bench only:
    ``scaling.plan``'s ``seasonal_forecast`` is wrapped while the block runs."""
    import scaling.plan as plan_module

    original = plan_module.seasonal_forecast
    cache: dict[Any, Any] = {}

    def cached(series: Any, horizon: int, **kwargs: Any) -> Any:
        key = (tuple(series), horizon, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = original(series, horizon, **kwargs)
        return cache[key]

    plan_module.seasonal_forecast = cached
    try:
        yield
    finally:
        plan_module.seasonal_forecast = original


def fractional_cover(gain: np.ndarray, cost: np.ndarray, share: float) -> float:
    """Least cost to collect ``share`` of ``gain`` when items may be taken in fractions (greedy by
    gain per cost: exact for the fractional knapsack, a lower bound for whole items)."""
    order = np.argsort(-gain / np.maximum(cost, 1e-12), kind="stable")
    need, spent = share * float(gain.sum()), 0.0
    for i in order:
        if need <= 1e-12:
            break
        if gain[i] <= 0:
            continue
        take = min(1.0, need / float(gain[i]))
        spent += take * float(cost[i])
        need -= take * float(gain[i])
    return spent


def hourly_cover_bound(w: _Window, tt: PolicyResult, share: float = 0.9) -> dict[str, Any]:
    """How cheap *any* hourly schedule on top of target tracking could remove ``share`` of its cold starts.

    Cold starts come from the seconds when more requests are in flight than environments are warm;
    an hour's cold starts all go only if its minimum reaches the hour's busiest second. Covering
    hour ``h`` costs ``max(0, busiest second - target tracking's mean level) x 1 h`` of provisioned
    concurrency. Choosing the hours with perfect knowledge of the week is a knapsack problem; its
    fractional relaxation (take hours by cold starts removed per dollar) is a lower bound on it, and
    on-demand duration moving to the provisioned rate is credited in full. An estimate under this
    model's assumptions, not a property of Lambda: it says how far any forecaster is from the target.
    """
    eval_from = w.config.train_weeks * WEEK_S
    gb = w.config.memory_mb / 1024.0
    busiest = w.demand.peak[eval_from : eval_from + WEEK_S].reshape(-1, HOUR_S).max(axis=1).astype(np.float64)
    level = tt.billed_per_minute.reshape(-1, 60).mean(axis=1)
    mean_in_flight = w.demand.busy[eval_from : eval_from + WEEK_S].reshape(-1, HOUR_S).mean(axis=1)
    cold = tt.cold_per_hour.astype(np.float64)
    out: dict[str, Any] = {
        "share": share,
        "busiest_second_over_hour_mean_median": float(np.median(busiest / np.maximum(mean_in_flight, 1e-9))),
    }
    for arch, prices in PRICES.items():
        cost = np.maximum(busiest - level, 0.0) * HOUR_S * gb * prices.provisioned
        spent = fractional_cover(cold, cost, share)
        credit = tt.bills[arch].duration_on_demand * (1.0 - prices.provisioned_duration / prices.duration)
        out[arch] = {"added_usd": spent, "bill_vs_tt": (tt.cost(arch) + spent - credit) / tt.cost(arch)}
    return out


def _best_meeting_reduction(sweep: list[dict[str, Any]], tt: PolicyResult) -> dict[str, Any] | None:
    """The cheapest swept point (x86_64) with at least 90% fewer cold starts than target tracking (the
    clairvoyant reference excluded: no forecaster knows the hour's busiest second in advance)."""
    meeting = [
        p
        for p in sweep
        if tt.cold_starts and p["cold_starts"] <= 0.1 * tt.cold_starts and p["family"] != "oracle-peak+tt"
    ]
    if not meeting:
        return None
    point = min(meeting, key=lambda p: p["weekly_usd"]["x86_64"])
    return {
        **point,
        "bill_vs_tt": {arch: point["weekly_usd"][arch] / tt.cost(arch) for arch in ARCHITECTURES},
    }


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


# --------------------------------------------------------------------------------------------
# Charts
# --------------------------------------------------------------------------------------------


def write_chart(
    trace: Trace,
    demand: Demand,
    results: dict[str, PolicyResult],
    eval_from: int,
    eval_to: int,
    config: BenchConfig,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config.out.mkdir(parents=True, exist_ok=True)
    path = config.out / f"scaling-{trace.name}.png"
    minutes = (eval_to - eval_from) // 60
    peak_min = demand.peak[eval_from:eval_to].reshape(minutes, 60).max(axis=1)
    hours = np.arange(minutes) / 60.0
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(13, 7.5), gridspec_kw={"height_ratios": [3, 1.3]}, constrained_layout=True
    )
    top.plot(hours, peak_min, color="0.7", linewidth=0.6, label="demand (peak in flight per minute)")
    colours = {"static-peak": "tab:red", "target-tracking": "tab:orange", "predictive+tt": "tab:blue"}
    for policy, colour in colours.items():
        top.plot(hours, results[policy].ready_per_minute, color=colour, linewidth=1.1, label=f"{policy} provisioned")
    spike_min = trace.spike[eval_from:eval_to].reshape(minutes, 60).any(axis=1)
    if spike_min.any():
        top.fill_between(hours, 0, peak_min.max() * 1.05, where=spike_min, color="tab:purple", alpha=0.12,
                         label="unannounced spike")
    top.set_xlim(0, 168)
    top.set_xticks(np.arange(0, 169, 24), ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", ""])
    top.set_ylabel("execution environments")
    top.set_title(f"{trace.name}: evaluation week (week {config.train_weeks + 1}), {trace.description}", fontsize=9)
    top.legend(loc="upper left", fontsize=8, ncol=2)
    top.grid(alpha=0.3)
    names = list(POLICIES)
    cold = [results[p].cold_starts for p in names]
    cost = [results[p].cost("x86_64") for p in names]
    x = np.arange(len(names))
    bars = bottom.bar(x - 0.2, cold, 0.4, color="tab:gray", label="cold starts in the week")
    bottom.bar_label(bars, fontsize=8)
    bottom.set_ylabel("cold starts")
    twin = bottom.twinx()
    cost_bars = twin.bar(x + 0.2, cost, 0.4, color="tab:green", label="Lambda bill, USD/week (x86_64)")
    twin.bar_label(cost_bars, fmt="$%.0f", fontsize=8)
    twin.set_ylabel("USD / week")
    bottom.set_xticks(x, names, fontsize=8)
    bottom.set_ylim(0, max(max(cold), 1) * 1.4)
    twin.set_ylim(0, max(max(cost), 0.1) * 1.4)
    bottom.legend(loc="upper center", bbox_to_anchor=(0.3, 1.0), fontsize=8)
    twin.legend(loc="upper center", bbox_to_anchor=(0.7, 1.0), fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


PARETO_STYLE = {
    "none": ("black", "X"),
    "snapstart": ("tab:purple", "D"),
    "static": ("tab:red", "s"),
    "target-tracking": ("tab:orange", "o"),
    "predictive+tt (peak)": ("tab:blue", "^"),
    "predictive+tt (mean)": ("tab:green", "v"),
    "oracle-peak+tt": ("0.4", "*"),
}


def write_pareto(runs: list[dict[str, Any]], out: Path) -> Path:
    """Cold-started requests against the weekly bill (x86_64), every swept point, one panel per trace,
    with the crowd of cheap policies (none, SnapStart, target tracking, sizing for the mean) magnified."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    path = out / "scaling-pareto.png"
    fig, axes = plt.subplots(
        2, len(runs), figsize=(7.2 * len(runs), 9.5), squeeze=False, constrained_layout=True,
        gridspec_kw={"height_ratios": [3, 2]},
    )
    for column, run in enumerate(runs):
        tt: PolicyResult = run["_results"]["target-tracking"]
        tt_cost, tt_cold = tt.cost("x86_64"), tt.cold_starts
        whole, crowd = axes[0][column], axes[1][column]
        cheap = [p for p in run["sweep"] if p["weekly_usd"]["x86_64"] <= 1.45 * tt_cost]
        for ax, points_shown, labelled in ((whole, run["sweep"], False), (crowd, cheap, True)):
            ax.fill_between([0, 1.2 * tt_cost], [-1, -1], [0.1 * tt_cold] * 2, color="tab:green", alpha=0.12,
                            label="target: >=90% fewer cold starts than TT, <=1.2x its bill")
            for family, (colour, marker) in PARETO_STYLE.items():
                points = [p for p in points_shown if p["family"] == family]
                if not points:
                    continue
                xs = [p["weekly_usd"]["x86_64"] for p in points]
                ys = [p["cold_starts"] for p in points]
                ax.plot(xs, ys, color=colour, marker=marker, linestyle="-" if len(points) > 1 else "none",
                        markersize=7, linewidth=1, label=family)
                for p, x, y in zip(points, xs, ys, strict=True):
                    if p["label"] and (labelled or family in ("static", "predictive+tt (peak)", "oracle-peak+tt")):
                        ax.annotate(p["label"], (x, y), textcoords="offset points", xytext=(4, 5), fontsize=7,
                                    color=colour)
            ax.grid(alpha=0.3, which="both")
            ax.set_xlabel("Lambda bill, USD per week (x86_64, us-east-1 list prices)")
            ax.set_ylabel("cold-started requests in the week")
        whole.set_yscale("symlog", linthresh=10)
        whole.set_ylim(-0.5, max(p["cold_starts"] for p in run["sweep"]) * 3)
        whole.set_xlim(0, max(p["weekly_usd"]["x86_64"] for p in run["sweep"]) * 1.08)
        whole.set_title(f"{run['trace']}: {run['requests']:,} requests in the week; every swept point", fontsize=10)
        ys = [p["cold_starts"] for p in cheap]
        crowd.set_ylim(min(ys) * 0.9, max(ys) * 1.05)
        crowd.set_xlim(min(p["weekly_usd"]["x86_64"] for p in cheap) * 0.97, 1.47 * tt_cost)
        crowd.axvline(1.2 * tt_cost, color="tab:green", linestyle=":", linewidth=1)
        crowd.set_title("magnified: bills up to 1.45x target tracking's (labels: TT target, utilisation u)",
                        fontsize=9)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _table(run: dict[str, Any]) -> Iterator[str]:
    yield f"== {run['trace']}: {run['description']}"
    yield (
        f"   evaluation week: {run['requests']:,} requests ({run['mean_rate']:.1f} req/s mean), "
        f"static level {run['static_level']}, {run['plans']} hourly plans"
    )
    results: dict[str, PolicyResult] = run["_results"]
    tt = results["target-tracking"]
    yield (
        f"   {'policy':<20} {'cold starts':>11} {'cold %':>9} {'in spikes':>9} {'p99 +ms':>7} {'p99.9 +ms':>9}"
        f" {'cold +ms':>8} {'mean PC':>7} {'PC GB-s':>11} {'x86 $/wk':>9} {'arm $/wk':>9} {'vs TT':>6}"
    )
    for policy in POLICIES:
        r = results[policy]
        yield (
            f"   {policy:<20} {r.cold_starts:>11,} {r.cold_fraction * 100:>8.4f}% {r.cold_in_spikes:>9,} "
            f"{r.p99_added_ms:>7.0f} {r.p999_added_ms:>9.0f} {r.cold_added_ms:>8.0f} {r.mean_provisioned:>7.2f} "
            f"{r.gb_seconds:>11,.0f} {r.cost('x86_64'):>9.2f} {r.cost('arm64'):>9.2f} "
            f"{r.cost('x86_64') / tt.cost('x86_64'):>5.2f}x"
        )
    for arch in ARCHITECTURES:
        yield f"   weekly bill by part, {arch}, USD:"
        yield f"   {'policy':<20} " + " ".join(f"{title:>12}" for _, title in PARTS) + f" {'total':>9}"
        for policy in POLICIES:
            b = results[policy].bills[arch]
            parts = " ".join(f"{_money(getattr(b, name)):>12}" for name, _ in PARTS)
            yield f"   {policy:<20} {parts} {_money(b.total):>9}"
    if run["sweep"] and len(run["sweep"]) > 3:
        yield "   sweep (Pareto chart):"
        yield (
            f"   {'family':<21} {'parameter':<22} {'cold starts':>11} {'mean PC':>7} {'x86 $/wk':>9} "
            f"{'arm $/wk':>9} {'vs TT':>6}"
        )
        for p in run["sweep"]:
            ratio = p["weekly_usd"]["x86_64"] / tt.cost("x86_64")
            yield (
                f"   {p['family']:<21} {p['parameter']:<22} {p['cold_starts']:>11,} {p['mean_provisioned']:>7.2f} "
                f"{p['weekly_usd']['x86_64']:>9.2f} {p['weekly_usd']['arm64']:>9.2f} {ratio:>5.2f}x"
            )
    ratio = run["bill_vs_tt"]
    yield (
        f"   predictive+tt vs target-tracking: {run['cold_start_reduction_vs_tt'] * 100:.1f}% fewer cold starts "
        f"(daily plan: {run['cold_start_reduction_vs_tt_daily'] * 100:.1f}%) at {ratio['x86_64']:.2f}x its bill "
        f"(arm64 {ratio['arm64']:.2f}x); target (>=90% fewer at <=1.2x) {'met' if run['target_met'] else 'NOT met'}"
    )
    best = run["cheapest_point_with_90pct_fewer_cold_starts"]
    if best:
        yield (
            f"   cheapest point with >=90% fewer cold starts than target tracking: {best['family']} "
            f"({best['parameter']}), {best['cold_starts']} cold starts at {best['bill_vs_tt']['x86_64']:.2f}x "
            f"target tracking's bill (arm64 {best['bill_vs_tt']['arm64']:.2f}x)"
        )
    bound = run["hourly_schedule_bound_90pct"]
    yield (
        f"   no hourly schedule can do much better: removing 90% of target tracking's cold starts needs at "
        f"least {bound['x86_64']['bill_vs_tt']:.2f}x its bill (arm64 {bound['arm64']['bill_vs_tt']:.2f}x), even "
        "choosing the hours with hindsight (the hour's busiest second has "
        f"{bound['busiest_second_over_hour_mean_median']:.1f}x the hour's mean in flight, median over hours)"
    )
    for note in run["plan_notes"]:
        yield f"   forecaster note (some plans): {note}"
    yield f"   chart: {run['chart']}"


def measured_init_ms(path: Path = RESULTS / "cold_start.json") -> tuple[float, str]:
    """The median cold start measured by ``bench.cold_start`` (the numpy handler as deployed by default:
    tracing off; the X-Ray row when that is all there is)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 1200.0, f"{_relative(path)} unreadable: 1200 ms (the former fixed default)"
    for key in ("numpy_handler", "numpy_handler_xray"):
        value = (raw.get(key) or {}).get("median_ms")
        if isinstance(value, int | float) and value > 0:
            return float(value), f"{key} median, measured by bench.cold_start ({_relative(path)})"
    return 1200.0, f"no median in {_relative(path)}: 1200 ms (the former fixed default)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--traces", default="synthetic,movielens", help="comma-separated: synthetic, movielens")
    parser.add_argument("--train-weeks", type=int, default=4)
    parser.add_argument("--warmup-hours", type=int, default=24, help="simulated before the week, not counted")
    parser.add_argument("--synthetic-peak", type=float, default=100.0, help="weekday evening peak, req/s")
    parser.add_argument("--ml-peak", type=float, default=80.0, help="MovieLens trace peak, req/s")
    parser.add_argument("--spikes-per-week", type=float, default=3.0)
    parser.add_argument("--median-ms", type=float, default=40.0, help="median request duration")
    parser.add_argument("--sigma", type=float, default=0.5, help="log-normal sigma of durations")
    parser.add_argument("--init-ms", type=float, default=None,
                        help="median cold start (init) time (default: bench/results/cold_start.json)")
    parser.add_argument("--restore-ms", type=float, default=RESTORE_MEDIAN_MS,
                        help="median SnapStart restore time (an assumption: see the module docstring)")
    parser.add_argument("--snapstart-versions", type=int, default=1, help="function versions with a cached snapshot")
    parser.add_argument("--keep-warm", type=int, default=600, help="seconds an idle on-demand environment lives")
    parser.add_argument("--memory-mb", type=int, default=1024)
    parser.add_argument("--target", type=float, default=0.7, help="target-tracking utilization target")
    parser.add_argument("--provision-delay", type=int, default=120, help="seconds until new capacity is ready")
    parser.add_argument("--metric-lag", type=int, default=1, help="minutes before a datapoint is visible")
    parser.add_argument("--headroom", type=float, default=None, help="forecaster headroom (default: its setting)")
    parser.add_argument("--quantile", type=float, default=None, help="forecaster quantile (default: its setting)")
    parser.add_argument("--target-utilization", type=float, default=None,
                        help="forecaster RECS_SCALING_TARGET_UTILIZATION (default: its setting)")
    parser.add_argument("--max-capacity", type=int, default=200)
    parser.add_argument("--no-sweep", action="store_true", help="no parameter sweep (no Pareto chart)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the PNGs go")
    args = parser.parse_args(argv)

    settings = ScalingSettings.from_env(
        {},
        function_name="bench",
        min_capacity=1,
        max_capacity=args.max_capacity,
        headroom=args.headroom,
        quantile=args.quantile,
        target_utilization=args.target_utilization,
    )
    if args.init_ms is None:
        init_ms, init_source = measured_init_ms()
    else:
        init_ms, init_source = args.init_ms, "--init-ms"
    config = BenchConfig(
        seed=args.seed,
        train_weeks=args.train_weeks,
        warmup_hours=args.warmup_hours,
        synthetic_peak=args.synthetic_peak,
        ml_peak=args.ml_peak,
        spikes_per_week=args.spikes_per_week,
        median_ms=args.median_ms,
        sigma=args.sigma,
        init_median_ms=init_ms,
        init_sigma=0.3,
        restore_median_ms=args.restore_ms,
        restore_sigma=0.3,
        snapstart_versions=args.snapstart_versions,
        keep_warm_s=args.keep_warm,
        memory_mb=args.memory_mb,
        tracking=TrackingConfig(
            target=args.target, metric_lag_min=args.metric_lag, provision_delay_s=args.provision_delay
        ),
        settings=settings,
        sweep=not args.no_sweep,
        out=args.out,
    )
    weeks = args.train_weeks + 1
    progress = sys.stderr.isatty()
    for line in price_table():
        print(line)
    print()
    runs = []
    for offset, name in enumerate(t.strip() for t in args.traces.split(",") if t.strip()):
        rng = np.random.default_rng([args.seed, offset])
        if name == "synthetic":
            trace = synthetic_trace(weeks, rng, args.synthetic_peak, args.spikes_per_week)
        elif name == "movielens":
            trace = movielens_trace(weeks, rng, args.ml_peak)
        else:
            parser.error(f"unknown trace {name!r}")
        if progress:
            print(f"simulating {name} ({weeks} weeks of requests)...", file=sys.stderr, flush=True)
        run = run_trace(trace, config, rng, progress)
        runs.append(run)
        for line in _table(run):
            print(line)
        print()
    pareto = write_pareto(runs, args.out) if config.sweep and runs else None
    if pareto is not None:
        print(f"Pareto chart (every swept point, cold-started requests against the x86_64 bill): {_relative(pareto)}")

    if settings.target_utilization > 0:
        sizing = f"mean concurrency at {settings.target_utilization:g} utilisation"
    else:
        sizing = f"peak x headroom {settings.headroom:g}, quantile {settings.quantile:g}"
    print(
        "model: Poisson arrivals, log-normal durations (median "
        f"{args.median_ms:g} ms, sigma {args.sigma:g}); cold start {init_ms:.0f} ms median ({init_source}; a real "
        f"Lambda adds its sandbox start); SnapStart restore {args.restore_ms:g} ms median (assumed); on-demand kept "
        f"warm {args.keep_warm} s; TT target {args.target:g}, 3x1-min out / 15x1-min in, +{args.provision_delay} s "
        f"to ready; forecaster sizing {sizing}, lead {settings.lead_minutes} min; {args.memory_mb} MB"
    )
    summary = {
        "bench": "scaling",
        "seed": args.seed,
        "train_weeks": args.train_weeks,
        "settings": {
            "headroom": settings.headroom,
            "quantile": settings.quantile,
            "target_utilization": settings.target_utilization,
            "lead_minutes": settings.lead_minutes,
            "keep_warm_s": args.keep_warm,
            "init_ms": init_ms,
            "init_source": init_source,
            "restore_ms": args.restore_ms,
            "snapstart_versions": args.snapstart_versions,
            "tt_target": args.target,
            "memory_mb": args.memory_mb,
        },
        "pricing": pricing_json(),
        "traces": {
            run["trace"]: {k: v for k, v in run.items() if not k.startswith("_") and k != "trace"} for run in runs
        },
        "pareto_chart": _relative(pareto) if pareto is not None else None,
        "target_met": all(run["target_met"] for run in runs),
    }
    print(json.dumps(summary, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
