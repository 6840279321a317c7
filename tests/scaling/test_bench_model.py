"""The simulator's Lambda model (bench/scaling.py) on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.scaling import (
    TrackingConfig,
    added_latency,
    cold_starts,
    movielens_profile,
    simulate_requests,
    sliding_max_before,
    synthetic_trace,
    target_tracking,
)


def test_sliding_max_matches_the_definition():
    rng = np.random.default_rng(3)
    values = rng.integers(0, 20, 500)
    for window in (1, 7, 60):
        expected = [max(values[max(0, t - window) : t], default=0) for t in range(len(values))]
        assert sliding_max_before(values, window).tolist() == expected


def test_cold_starts_by_hand():
    peak = np.array([0, 3, 3, 0, 0, 0, 3])
    ready = np.ones_like(peak)
    # Overflow 0 2 2 0 0 0 2; environments idle for 2 s are reclaimed.
    assert cold_starts(peak, ready, keep_warm_s=2, init_s=0).tolist() == [0, 2, 0, 0, 0, 0, 2]
    assert cold_starts(peak, ready, keep_warm_s=10, init_s=0).tolist() == [0, 2, 0, 0, 0, 0, 0]
    # With a 1 s initialisation, the two started at t=1 are still busy at t=2: two more start.
    assert cold_starts(peak, ready, keep_warm_s=2, init_s=1).tolist() == [0, 2, 2, 0, 0, 0, 2]
    assert cold_starts(peak, np.full_like(peak, 3), keep_warm_s=2).tolist() == [0] * 7


def test_target_tracking_scales_out_after_three_datapoints_and_a_delay():
    busy = np.full(60 * 60, 5.0)  # 5 requests in flight, for an hour
    config = TrackingConfig(target=0.7, metric_lag_min=1, provision_delay_s=120)
    ready, billed = target_tracking(busy, floor=1, maximum=50, config=config)
    assert ready[:6].tolist() == [1, 1, 1, 1, 1, 1]
    assert billed[4] == 2  # decided at minute 4 (datapoints 0-2 visible), billed from then
    assert ready[6] == 2  # ready two minutes later
    assert ready[-1] == math.ceil(5 / 0.7)  # converges to in-flight / target
    assert (np.diff(ready) >= 0).all()


def test_schedule_raises_capacity_and_scale_in_respects_it():
    busy = np.concatenate([np.full(30 * 60, 1.0), np.zeros(60 * 60)])
    schedule = np.concatenate([np.full(30, 1), np.full(60, 10)])
    config = TrackingConfig(provision_delay_s=120)
    ready, billed = target_tracking(busy, floor=1, maximum=50, config=config, schedule=schedule)
    assert billed[30] == 10 and ready[31] < 10 and ready[32] == 10
    assert ready[-1] == 10  # idle, but the scheduled minimum holds
    ready_tt, _ = target_tracking(busy, floor=1, maximum=50, config=config)
    assert ready_tt[-1] == 1  # without it, target tracking scales in to the floor


def test_added_latency_mixture():
    durations = np.full(10_000, 10.0)
    init = np.full(10_000, 1000.0)
    assert added_latency(durations, 0.0, init, 0.99) == 0.0
    assert added_latency(durations, 0.05, init, 0.99) == pytest.approx(1000.0)
    assert added_latency(durations, 0.005, init, 0.99) == pytest.approx(0.0)


def test_requests_obey_littles_law():
    rng = np.random.default_rng(5)
    rate = np.full(2 * 3600, 20.0)
    demand = simulate_requests(rate, rng, median_ms=40.0, sigma=0.5, sample_from=0)
    mean_duration_s = 0.040 * math.exp(0.5**2 / 2)
    assert demand.busy.mean() == pytest.approx(20.0 * mean_duration_s, rel=0.03)
    assert demand.arrivals.mean() == pytest.approx(20.0, rel=0.02)
    assert demand.invocations_5m.sum() == demand.arrivals.sum()
    assert (demand.peak >= np.floor(demand.busy)).all()
    assert np.nanmedian(demand.p99_ms_5m) == pytest.approx(40.0 * math.exp(2.326 * 0.5), rel=0.1)


def test_traces_are_reproducible_and_shaped():
    a = synthetic_trace(1, np.random.default_rng([1, 0]), peak=100.0, spikes_per_week=3.0)
    b = synthetic_trace(1, np.random.default_rng([1, 0]), peak=100.0, spikes_per_week=3.0)
    assert np.array_equal(a.rate, b.rate) and np.array_equal(a.spike, b.spike)
    hourly = a.rate.reshape(-1, 3600).mean(axis=1)
    monday = hourly[:24]
    assert monday[20] > 5 * monday[4]  # evening peak, quiet night
    profile = movielens_profile()
    assert profile.shape == (168,) and profile.max() == 1.0 and profile.min() > 0
