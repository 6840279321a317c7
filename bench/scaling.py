"""Predictive scaling simulator: ``python -m bench.scaling``.

Replays request traces through a model of Lambda concurrency and compares four ways of managing
the alias's provisioned concurrency, side by side on the same requests:

* ``none``: no provisioned concurrency, on-demand only;
* ``static-peak``: provisioned concurrency fixed at the peak ``ConcurrentExecutions`` of the
  training weeks (what an operator reading CloudWatch would set);
* ``target-tracking``: Application Auto Scaling target tracking on
  ``ProvisionedConcurrencyUtilization`` alone;
* ``predictive+tt``: the forecaster's hourly scheduled ``MinCapacity`` (re-planned every hour by
  the real ``scaling`` code) plus the same target tracking;
* ``predictive-daily+tt``: the same, planned once a day (the forecast 1 to 24 hours ahead).

**Traces** (seeded, regenerated on every run): ``synthetic``, weeks with daily and weekly
seasonality, slow growth, day-to-day and minute-to-minute noise and unannounced spikes (2x to 3x
for 10 to 40 minutes); ``movielens``, the hour-of-week activity profile of the rating sessions in
``data/ml-latest-small/ratings.csv`` (distinct user-hours), scaled to a peak of ``--ml-peak``
requests/s, with the same noise and no spikes. The forecaster is trained on the first
``--train-weeks`` weeks and evaluated on the week after them: each hourly plan sees only the
5-minute CloudWatch-like aggregates (Invocations sum, ConcurrentExecutions max, Duration p99) of
the hours before it.

**Requests** are simulated one by one: Poisson arrivals at the trace's rate, log-normal durations.
The peak number in flight in each second is the demand for execution environments.

**Lambda model** (per second): requests go to ready provisioned environments first; the overflow
goes to on-demand environments, which stay warm while used and are reclaimed after
``--keep-warm`` seconds idle (most-recently-used first). A request that finds no warm environment
is a cold start and waits ``--init-ms`` (log-normal). Provisioned concurrency is billed per second
from the moment it is requested until it is released, at ``--memory-mb``.

**Target tracking model** (AWS defaults for Lambda): one datapoint a minute (Average utilization
of the ready provisioned concurrency), visible ``--metric-lag`` minutes late; scale out when 3
datapoints in a row exceed the target, to ``ceil(capacity x utilization / target)``; scale in when
15 in a row are below 90% of the target; no cooldowns; new capacity is ready
``--provision-delay`` seconds after it is requested. Scheduled actions raise the minimum (and the
capacity, if below it) when they fire, ``lead_minutes`` before their hour.

The report: per trace and policy, the fraction of cold-started requests, the latency they add at
p99 (and p99.9) over the warm p99, and provisioned GB-seconds; a PNG per trace in
``bench/results/``; the JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

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
POLICIES = ("none", "static-peak", "target-tracking", "predictive+tt", "predictive-daily+tt")


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


def history_until(demand: Demand, end_hour: int, days: int) -> MetricHistory:
    per_hour = HOUR_S // PERIOD_S
    first_hour = max(0, end_hour - days * 24)
    lo, hi = first_hour * per_hour, end_hour * per_hour
    inv = [float(v) if v > 0 else None for v in demand.invocations_5m[lo:hi]]
    conc = [float(v) if v > 0 else None for v in demand.concurrency_5m[lo:hi]]
    p99 = [None if math.isnan(v) else float(v) for v in demand.p99_ms_5m[lo:hi]]
    return MetricHistory(START + timedelta(hours=first_hour), PERIOD_S, inv, conc, p99)


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
    minutes = (last_hour - first_hour) * 60
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
    schedule = np.full(minutes, settings.min_capacity, dtype=np.int64)
    current = settings.min_capacity
    for m in range(minutes):
        absolute_minute = first_hour * 60 + m
        if (absolute_minute + lead) % 60 == 0:
            hour_index = (absolute_minute + lead) // 60
            current = action_value.get(hour_index, current)
        schedule[m] = current
    return schedule, plans


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def added_latency(durations_ms: np.ndarray, cold_fraction: float, init_ms: np.ndarray, q: float) -> float:
    """``q``-quantile latency with cold starts minus without: a mixture of warm and cold requests."""
    warm = np.sort(durations_ms)
    base = float(np.quantile(warm, q))
    if cold_fraction <= 0:
        return 0.0
    cold = np.sort(durations_ms + init_ms[: len(durations_ms)])
    values = np.concatenate([warm, cold])
    weights = np.concatenate(
        [np.full(len(warm), (1 - cold_fraction) / len(warm)), np.full(len(cold), cold_fraction / len(cold))]
    )
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    index = int(np.searchsorted(cumulative, q, side="left"))
    return float(values[order][min(index, len(values) - 1)] - base)


@dataclass
class PolicyResult:
    policy: str
    requests: int
    cold_starts: int
    cold_in_spikes: int
    p99_added_ms: float
    p999_added_ms: float
    gb_seconds: float
    mean_provisioned: float
    ready_per_minute: np.ndarray = field(repr=False)

    @property
    def cold_fraction(self) -> float:
        return self.cold_starts / self.requests if self.requests else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "cold_starts": self.cold_starts,
            "cold_fraction": self.cold_fraction,
            "cold_starts_in_spikes": self.cold_in_spikes,
            "p99_added_ms": round(self.p99_added_ms, 1),
            "p999_added_ms": round(self.p999_added_ms, 1),
            "provisioned_gb_seconds": round(self.gb_seconds),
            "mean_provisioned": round(self.mean_provisioned, 2),
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
    keep_warm_s: int
    memory_mb: int
    tracking: TrackingConfig
    settings: ScalingSettings
    out: Path = RESULTS


def run_trace(trace: Trace, config: BenchConfig, rng: np.random.Generator, progress: bool) -> dict[str, Any]:
    eval_from = config.train_weeks * WEEK_S
    eval_to = eval_from + WEEK_S
    sim_from = eval_from - config.warmup_hours * HOUR_S
    t0 = time.perf_counter()
    demand = simulate_requests(
        trace.rate, rng, median_ms=config.median_ms, sigma=config.sigma, sample_from=eval_from
    )
    t_requests = time.perf_counter() - t0
    init_ms = rng.lognormal(math.log(config.init_median_ms), config.init_sigma, len(demand.durations_ms))

    window = slice(sim_from, eval_to)
    peak = demand.peak[window]
    busy = demand.busy[window]
    arrivals = demand.arrivals[window]
    spike = trace.spike[window]
    counted = np.zeros(eval_to - sim_from, dtype=bool)
    counted[eval_from - sim_from :] = True
    requests = int(arrivals[counted].sum())
    static_level = int(demand.peak[:eval_from].max())
    first_hour, last_hour = sim_from // HOUR_S, eval_to // HOUR_S

    t1 = time.perf_counter()
    schedule_hourly, plans = predictive_schedule(
        demand, config.settings, first_hour=first_hour, last_hour=last_hour, replan_hours=1
    )
    # Daily plans at 00:05 (the warm-up starts on an hour, possibly mid-day: align to midnight).
    daily_first = (first_hour // 24) * 24
    schedule_daily_full, _ = predictive_schedule(
        demand, config.settings, first_hour=daily_first, last_hour=last_hour, replan_hours=24
    )
    schedule_daily = schedule_daily_full[(first_hour - daily_first) * 60 :]
    t_forecast = time.perf_counter() - t1

    floor, maximum = config.settings.min_capacity, config.settings.max_capacity
    minutes = len(busy) // 60
    capacity: dict[str, tuple[np.ndarray, np.ndarray]] = {
        "none": (np.zeros(minutes, dtype=np.int64), np.zeros(minutes, dtype=np.int64)),
        "static-peak": (np.full(minutes, static_level), np.full(minutes, static_level)),
        "target-tracking": target_tracking(busy, floor=floor, maximum=maximum, config=config.tracking),
        "predictive+tt": target_tracking(
            busy, floor=floor, maximum=maximum, config=config.tracking, schedule=schedule_hourly
        ),
        "predictive-daily+tt": target_tracking(
            busy, floor=floor, maximum=maximum, config=config.tracking, schedule=schedule_daily
        ),
    }
    gb = config.memory_mb / 1024.0
    results: dict[str, PolicyResult] = {}
    for policy in POLICIES:
        ready_min, billed_min = capacity[policy]
        ready = np.repeat(ready_min, 60)
        cold = cold_starts(peak, ready, config.keep_warm_s, init_s=max(1, round(config.init_median_ms / 1000)))
        cold_count = int(cold[counted].sum())
        fraction = cold_count / requests if requests else 0.0
        counted_min = counted[::60]
        results[policy] = PolicyResult(
            policy=policy,
            requests=requests,
            cold_starts=cold_count,
            cold_in_spikes=int(cold[counted & spike].sum()),
            p99_added_ms=added_latency(demand.durations_ms, fraction, init_ms, 0.99),
            p999_added_ms=added_latency(demand.durations_ms, fraction, init_ms, 0.999),
            gb_seconds=float(billed_min[counted_min].sum()) * 60.0 * gb,
            mean_provisioned=float(billed_min[counted_min].mean()),
            ready_per_minute=ready_min[counted_min],
        )
    tt, pred, static = results["target-tracking"], results["predictive+tt"], results["static-peak"]
    reduction = 1.0 - pred.cold_starts / tt.cold_starts if tt.cold_starts else float("nan")
    cost_ratio = pred.gb_seconds / static.gb_seconds if static.gb_seconds else float("nan")
    fallbacks = sorted({note for p in plans for note in p["notes"]})
    chart = write_chart(trace, demand, results, eval_from, eval_to, config)
    return {
        "trace": trace.name,
        "description": trace.description,
        "requests": requests,
        "mean_rate": requests / WEEK_S,
        "static_level": static_level,
        "policies": {name: r.to_json() for name, r in results.items()},
        "cold_start_reduction_vs_tt": reduction,
        "cold_start_reduction_vs_tt_daily": (
            1.0 - results["predictive-daily+tt"].cold_starts / tt.cold_starts if tt.cold_starts else float("nan")
        ),
        "gb_seconds_vs_static": cost_ratio,
        "target_met": bool(reduction >= 0.9 and cost_ratio <= 1.0),
        "plans": len(plans),
        "plan_notes": fallbacks[:5],
        "chart": str(chart.relative_to(ROOT)) if chart.is_relative_to(ROOT) else str(chart),
        "seconds": {"requests": round(t_requests, 1), "forecaster": round(t_forecast, 1)},
        "_results": results,
        "_static": static_level,
    }


# --------------------------------------------------------------------------------------------
# Chart
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
    cost = [results[p].gb_seconds / 1e6 for p in names]
    x = np.arange(len(names))
    bars = bottom.bar(x - 0.2, cold, 0.4, color="tab:gray", label="cold starts in the week")
    bottom.bar_label(bars, fontsize=8)
    bottom.set_ylabel("cold starts")
    twin = bottom.twinx()
    cost_bars = twin.bar(x + 0.2, cost, 0.4, color="tab:green", label="provisioned GB-s (millions)")
    twin.bar_label(cost_bars, fmt="%.1f", fontsize=8)
    twin.set_ylabel("GB-s (millions)")
    bottom.set_xticks(x, names, fontsize=8)
    bottom.set_ylim(0, max(max(cold), 1) * 1.4)
    twin.set_ylim(0, max(max(cost), 0.1) * 1.4)
    bottom.legend(loc="upper center", bbox_to_anchor=(0.3, 1.0), fontsize=8)
    twin.legend(loc="upper center", bbox_to_anchor=(0.7, 1.0), fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def _table(run: dict[str, Any]) -> Iterator[str]:
    yield f"== {run['trace']}: {run['description']}"
    yield (
        f"   evaluation week: {run['requests']:,} requests ({run['mean_rate']:.1f} req/s mean), "
        f"static level {run['static_level']}, {run['plans']} hourly plans"
    )
    header = f"   {'policy':<21} {'cold starts':>11} {'cold %':>9} {'in spikes':>9} {'p99 +ms':>8} {'p99.9 +ms':>9}"
    yield header + f" {'GB-s':>11} {'mean PC':>8}"
    results: dict[str, PolicyResult] = run["_results"]
    for policy in POLICIES:
        r = results[policy]
        yield (
            f"   {policy:<21} {r.cold_starts:>11,} {r.cold_fraction * 100:>8.4f}% {r.cold_in_spikes:>9,} "
            f"{r.p99_added_ms:>8.0f} {r.p999_added_ms:>9.0f} {r.gb_seconds:>11,.0f} {r.mean_provisioned:>8.2f}"
        )
    yield (
        f"   predictive+tt vs target-tracking: {run['cold_start_reduction_vs_tt'] * 100:.1f}% fewer cold starts "
        f"(daily plan: {run['cold_start_reduction_vs_tt_daily'] * 100:.1f}%); "
        f"GB-s {run['gb_seconds_vs_static'] * 100:.0f}% of static-peak; target "
        f"{'met' if run['target_met'] else 'NOT met'}"
    )
    for note in run["plan_notes"]:
        yield f"   forecaster note (some plans): {note}"
    yield f"   chart: {run['chart']}"


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
    parser.add_argument("--init-ms", type=float, default=1200.0, help="median cold-start (init) time")
    parser.add_argument("--keep-warm", type=int, default=600, help="seconds an idle on-demand environment lives")
    parser.add_argument("--memory-mb", type=int, default=1024)
    parser.add_argument("--target", type=float, default=0.7, help="target-tracking utilization target")
    parser.add_argument("--provision-delay", type=int, default=120, help="seconds until new capacity is ready")
    parser.add_argument("--metric-lag", type=int, default=1, help="minutes before a datapoint is visible")
    parser.add_argument("--headroom", type=float, default=None, help="forecaster headroom (default: its setting)")
    parser.add_argument("--quantile", type=float, default=None, help="forecaster quantile (default: its setting)")
    parser.add_argument("--max-capacity", type=int, default=200)
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the PNGs go")
    args = parser.parse_args(argv)

    settings = ScalingSettings.from_env(
        {},
        function_name="bench",
        min_capacity=1,
        max_capacity=args.max_capacity,
        headroom=args.headroom,
        quantile=args.quantile,
    )
    config = BenchConfig(
        seed=args.seed,
        train_weeks=args.train_weeks,
        warmup_hours=args.warmup_hours,
        synthetic_peak=args.synthetic_peak,
        ml_peak=args.ml_peak,
        spikes_per_week=args.spikes_per_week,
        median_ms=args.median_ms,
        sigma=args.sigma,
        init_median_ms=args.init_ms,
        init_sigma=0.3,
        keep_warm_s=args.keep_warm,
        memory_mb=args.memory_mb,
        tracking=TrackingConfig(
            target=args.target, metric_lag_min=args.metric_lag, provision_delay_s=args.provision_delay
        ),
        settings=settings,
        out=args.out,
    )
    weeks = args.train_weeks + 1
    progress = sys.stderr.isatty()
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

    print(
        "model: Poisson arrivals, log-normal durations (median "
        f"{args.median_ms:g} ms, sigma {args.sigma:g}); cold start {args.init_ms:g} ms median; on-demand kept warm "
        f"{args.keep_warm} s; TT target {args.target:g}, 3x1-min out / 15x1-min in, "
        f"+{args.provision_delay} s to ready; "
        f"forecaster headroom {settings.headroom:g}, quantile {settings.quantile:g}, lead {settings.lead_minutes} min"
    )
    summary = {
        "bench": "scaling",
        "seed": args.seed,
        "train_weeks": args.train_weeks,
        "settings": {
            "headroom": settings.headroom,
            "quantile": settings.quantile,
            "lead_minutes": settings.lead_minutes,
            "keep_warm_s": args.keep_warm,
            "init_ms": args.init_ms,
            "tt_target": args.target,
            "memory_mb": args.memory_mb,
        },
        "traces": {
            run["trace"]: {k: v for k, v in run.items() if not k.startswith("_") and k != "trace"} for run in runs
        },
        "target_met": all(run["target_met"] for run in runs),
    }
    print(json.dumps(summary, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
