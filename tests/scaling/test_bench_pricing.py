"""The simulator's bill (bench/pricing.py, bench/scaling.py) on hand-computed cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bench.pricing import PRICES, Usage, bill, bills
from bench.scaling import (
    HOUR_S,
    LatencyMixture,
    added_latency,
    clairvoyant_schedule,
    fire_actions,
    fractional_cover,
    history_until,
    measured_init_ms,
    provisioned_served,
    simulate_requests,
)
from scaling.metrics import MetricHistory


def test_provisioned_concurrency_breaks_even_at_60_percent_utilisation():
    for prices in PRICES.values():
        assert prices.break_even_utilization == pytest.approx(0.6, abs=1e-4)
        u = prices.break_even_utilization
        # one provisioned GB-s busy u of the time costs what u GB-s on demand cost
        assert prices.provisioned + u * prices.provisioned_duration == pytest.approx(u * prices.duration)
    assert PRICES["arm64"].duration == pytest.approx(0.8 * PRICES["x86_64"].duration, rel=1e-4)


def test_a_bill_by_hand():
    usage = Usage(
        requests=2_000_000,
        on_demand_gb_s=1000.0,
        provisioned_served_gb_s=500.0,
        provisioned_gb_s=10_000.0,
        init_gb_s=2.0,
        restored_gb=100.0,
        cached_gb_s=3600.0,
    )
    b = bill(usage, PRICES["x86_64"])
    assert b.requests == pytest.approx(0.40)
    assert b.duration_on_demand == pytest.approx(1000 * 0.0000166667)
    assert b.duration_provisioned == pytest.approx(500 * 0.0000097222)
    assert b.provisioned_concurrency == pytest.approx(10_000 * 0.0000041667)
    assert b.init_and_restore == pytest.approx(2 * 0.0000166667)
    assert b.snapstart_restores == pytest.approx(100 * 0.0001397998)
    assert b.snapstart_cache == pytest.approx(3600 * 0.0000015046)
    assert b.total == pytest.approx(sum(v for k, v in b.to_json().items() if k != "total"), abs=1e-3)
    assert set(bills(usage)) == {"x86_64", "arm64"}
    assert bills(usage)["arm64"].total < b.total


def test_provisioned_environments_serve_the_expected_minimum_of_a_poisson_count():
    lam = np.array([0.5, 3.0, 3.0, 3.0, 20.0])
    ready = np.array([1, 0, 4, 100, 10])
    served = provisioned_served(lam, ready)
    assert served[0] == pytest.approx(1 - math.exp(-0.5))  # E[min(N, 1)] = P(N >= 1)
    assert served[1] == 0.0
    assert served[3] == pytest.approx(3.0)  # never short of environments: all of it
    rng = np.random.default_rng(0)
    draws = rng.poisson(3.0, 400_000)
    assert served[2] == pytest.approx(np.minimum(draws, 4).mean(), rel=0.01)
    assert served[4] == pytest.approx(np.minimum(rng.poisson(20.0, 400_000), 10).mean(), rel=0.01)


def test_latency_mixture_is_the_old_computation():
    rng = np.random.default_rng(1)
    durations = rng.lognormal(math.log(40), 0.5, 20_000)
    init = rng.lognormal(math.log(260), 0.3, 20_000)
    mixture = LatencyMixture(durations, init)
    for fraction in (0.0, 2e-5, 0.002, 0.02):
        for q in (0.99, 0.999):
            assert mixture.added(fraction, q) == added_latency(durations, fraction, init, q)
    assert mixture.added(0.05, 0.99) > 150  # 5% cold: the p99 is a cold request


def test_actions_fire_before_their_hour_and_the_clairvoyant_covers_each_hours_peak():
    # hour 1's action (value 5) fires 10 minutes before it, hour 2's (2) likewise
    schedule = fire_actions({1: 5, 2: 2}, first_hour=0, last_hour=3, lead=10, floor=1)
    assert schedule[49] == 1 and schedule[50] == 5 and schedule[109] == 5 and schedule[110] == 2
    peak = np.zeros(4 * HOUR_S, dtype=np.int64)
    peak[HOUR_S + 5] = 7  # hour 1's busiest second
    peak[2 * HOUR_S + 5] = 3
    oracle = clairvoyant_schedule(peak, first_hour=1, last_hour=4, lead=10, floor=1)
    assert oracle[0] == 1  # hour 1's action fired before the span
    assert oracle[49] == 1 and oracle[50] == 7  # hour 2: max(hour 1's 7, its own 3)
    assert oracle[110] == 3  # hour 3: max(hour 2's 3, its own 0)


def test_fractional_cover():
    gain = np.array([10.0, 10.0, 0.0, 5.0])
    cost = np.array([1.0, 4.0, 1.0, 0.0])
    assert fractional_cover(gain, cost, 0.2) == 0.0  # the free hour first
    assert fractional_cover(gain, cost, 0.6) == pytest.approx(1.0)
    assert fractional_cover(gain, cost, 0.8) == pytest.approx(1.0 + 4.0 * 0.5)


def test_replayed_histories_give_the_same_views_as_cloudwatch_ones():
    rng = np.random.default_rng(2)
    rate = np.concatenate([np.full(3 * HOUR_S, 5.0), np.zeros(HOUR_S), np.full(2 * HOUR_S, 2.0)])
    demand = simulate_requests(rate, rng, median_ms=40.0, sigma=0.5, sample_from=0)
    replayed = history_until(demand, 6, 1)
    assert history_until(demand, 6, 1) is replayed  # built once
    plain = MetricHistory(replayed.start, replayed.period_seconds, replayed.invocations, replayed.concurrency,
                          replayed.duration_p99_ms, replayed.duration_sum_ms)
    for view in ("hourly_peak_rate", "hourly_peak_concurrency", "hourly_mean_concurrency"):
        assert getattr(replayed, view)() == getattr(plain, view)()
    means = replayed.hourly_mean_concurrency()
    assert means[-6] == pytest.approx(5.0 * 0.040 * math.exp(0.125), rel=0.1)  # Little's law, first hour
    assert means[-3] == 0.0  # the silent hour


def test_the_init_time_comes_from_the_cold_start_benchmark(tmp_path):
    path = tmp_path / "cold_start.json"
    path.write_text(json.dumps({"numpy_handler": {"median_ms": 250.0}, "numpy_handler_xray": {"median_ms": 262.0}}))
    assert measured_init_ms(path)[0] == 250.0  # as deployed by default: tracing off
    path.write_text(json.dumps({"numpy_handler_xray": {"median_ms": 262.0}}))
    assert measured_init_ms(path)[0] == 262.0
    value, source = measured_init_ms(tmp_path / "missing.json")
    assert value == 1200.0 and "former fixed default" in source
