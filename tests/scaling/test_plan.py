"""The plan: schedule arithmetic, Little's law on real-looking history, and every bad-data fall-back."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from scaling.metrics import MetricHistory
from scaling.plan import (
    MODE_DAILY,
    MODE_FLOOR,
    MODE_RECENT_PEAK,
    MODE_WEEKLY,
    build_plan,
    cron_for,
    planned_hours,
)
from scaling.settings import ScalingSettings
from tests.scaling.conftest import START, make_history


def at(days: int, hour: int = 0, minute: int = 5) -> datetime:
    return START + timedelta(days=days, hours=hour, minutes=minute)


def test_planned_hours_fire_before_their_hour_and_after_now(settings):
    now = datetime(2024, 5, 1, 14, 55, tzinfo=UTC)
    slots = planned_hours(now, settings)  # lead 10 min: 15:00's action would fire at 14:50, already past
    assert len(slots) == 24
    assert slots[0] == (datetime(2024, 5, 1, 16, tzinfo=UTC), datetime(2024, 5, 1, 15, 50, tzinfo=UTC))
    assert slots[-1][0] == datetime(2024, 5, 2, 15, tzinfo=UTC)
    assert all(fires > now for _, fires in slots)
    assert cron_for(datetime(2024, 5, 1, 15, 50, tzinfo=UTC)) == "cron(50 15 * * ? *)"
    assert planned_hours(datetime(2024, 5, 1, 14, 5, tzinfo=UTC), settings)[0][0].hour == 15


def test_a_weekly_plan_follows_littles_law_on_known_traffic(settings):
    history = make_history(28, concurrency=False)
    plan = build_plan(settings, at(28), history)
    assert plan.mode == MODE_WEEKLY
    assert plan.duration_p99_ms == pytest.approx(200.0)
    assert [h.name for h in plan.hours] == [f"recs-predictive-h{h:02d}" for h in [*range(1, 24), 0]]
    assert {h.hour.hour for h in plan.hours} == set(range(24))
    for h in plan.hours:
        # A noise-free Monday: the forecast is the profile; 0.2 s p99; headroom 1.
        t = h.hour
        assert h.rate is not None
        assert h.required == math.ceil(h.rate * 0.2 - 1e-9)
        assert h.capacity == max(1, h.required)
        assert h.fires_at == t - timedelta(minutes=10)
        assert h.schedule == f"cron(50 {(t.hour - 1) % 24} * * ? *)"
    # The action that fires before its hour also covers the previous one.
    capacities = {h.hour: h.capacity for h in plan.hours}
    for h in plan.hours[1:]:
        assert h.min_capacity == max(capacities[h.hour], capacities[h.hour - timedelta(hours=1)])
    evening = next(h for h in plan.hours if h.hour.hour == 16)
    night = next(h for h in plan.hours if h.hour.hour == 4)
    assert evening.min_capacity == math.ceil(42.0 * 0.2)  # 42 req/s x 0.2 s
    assert night.min_capacity == 1


def test_headroom_and_peak_concurrency_raise_the_requirement():
    settings = ScalingSettings(function_name="api", headroom=1.5)
    history = make_history(28)  # ConcurrentExecutions = max(1, rate / 10): above rate x 0.2 s at night
    plan = build_plan(settings, at(28), history)
    evening = next(h for h in plan.hours if h.hour.hour == 16)
    assert evening.required == math.ceil(1.5 * 42.0 * 0.2)
    night = next(h for h in plan.hours if h.hour.hour == 4)
    assert night.peak_concurrency == pytest.approx(1.0)
    assert night.required == math.ceil(1.5 * max(2.0 * 0.2, 1.0))


def test_clamped_to_the_configured_and_the_targets_maximum():
    history = make_history(28, rate=lambda t: 1000.0)
    plan = build_plan(ScalingSettings(function_name="api", max_capacity=50), at(28), history)
    assert {h.min_capacity for h in plan.hours} == {50}
    plan = build_plan(ScalingSettings(function_name="api", max_capacity=50), at(28), history, target_max_capacity=20)
    assert {h.min_capacity for h in plan.hours} == {20}
    assert any("MaxCapacity 20" in note for note in plan.notes)


def test_metrics_api_error_plans_the_floor_never_zero():
    settings = ScalingSettings(function_name="api", min_capacity=0, max_capacity=10)
    plan = build_plan(settings, at(28), None, read_error="AccessDenied")
    assert plan.mode == MODE_FLOOR
    assert {h.min_capacity for h in plan.hours} == {1}  # traffic unknown: not zero
    assert any("AccessDenied" in note for note in plan.notes)
    plan = build_plan(ScalingSettings(function_name="api", min_capacity=3), at(28), None, read_error="x")
    assert {h.min_capacity for h in plan.hours} == {3}


def test_a_brand_new_function_without_data_gets_the_floor():
    empty = MetricHistory(START, 300, [None] * 288, [None] * 288, [None] * 288)
    plan = build_plan(ScalingSettings(function_name="api", min_capacity=2), at(1), empty)
    assert plan.mode == MODE_FLOOR
    assert {h.min_capacity for h in plan.hours} == {2}
    assert any("no Invocations or ConcurrentExecutions" in note for note in plan.notes)


def test_never_zero_while_there_is_traffic():
    settings = ScalingSettings(function_name="api", min_capacity=0, max_capacity=10, headroom=1.0)
    quiet = make_history(28, rate=lambda t: 0.01, concurrency=False)  # 0.01 req/s x 0.2 s rounds to 1
    plan = build_plan(settings, at(28), quiet)
    assert plan.floor == 1
    assert min(h.min_capacity for h in plan.hours) >= 1
    assert any("floor raised to 1" in note for note in plan.notes)


def test_only_concurrency_data():
    history = make_history(28, invocations=False)
    plan = build_plan(ScalingSettings(function_name="api", headroom=1.0), at(28), history)
    assert plan.mode == MODE_WEEKLY
    assert any("no Invocations data" in note for note in plan.notes)
    evening = next(h for h in plan.hours if h.hour.hour == 16)
    assert evening.rate is None
    assert evening.required == math.ceil(4.2 - 1e-9)  # ConcurrentExecutions = rate / 10 = 4.2


def test_no_duration_uses_the_fallback_duration():
    history = make_history(28, duration_ms=None, concurrency=False)
    settings = ScalingSettings(function_name="api", headroom=1.0, fallback_duration_ms=500.0)
    plan = build_plan(settings, at(28), history)
    assert plan.duration_p99_ms == 500.0
    assert any("no Duration p99" in note for note in plan.notes)
    evening = next(h for h in plan.hours if h.hour.hour == 16)
    assert evening.required == math.ceil(42.0 * 0.5)


def test_partial_history_degrades_to_daily_then_to_recent_peak(settings):
    three_days = make_history(3, concurrency=False)
    plan = build_plan(settings, at(3), three_days)
    assert plan.mode == MODE_DAILY
    assert any("hour-of-day" in note for note in plan.notes)
    evening = next(h for h in plan.hours if h.hour.hour == 16)
    assert evening.required == math.ceil(42.0 * 0.2)

    # Twelve hours of data inside a day-long window: flat at the busiest hour seen.
    young = make_history(1, concurrency=False)
    blank = 12 * 12
    young = MetricHistory(
        young.start,
        300,
        [None] * blank + young.invocations[blank:],
        [None] * 288,
        young.duration_p99_ms,
    )
    plan = build_plan(settings, at(1), young)
    assert plan.mode == MODE_RECENT_PEAK
    assert len({h.min_capacity for h in plan.hours}) == 1
    assert plan.hours[0].min_capacity == math.ceil(42.0 * 0.2)


def test_non_numeric_and_gappy_metrics_are_tolerated(settings):
    history = make_history(28, concurrency=False)
    invocations = list(history.invocations)
    invocations[-100] = math.nan
    invocations[-200] = -5.0
    durations = list(history.duration_p99_ms)
    durations[-50] = math.inf
    gappy = MetricHistory(history.start, 300, invocations, history.concurrency, durations)
    plan = build_plan(settings, at(28), gappy)
    assert plan.mode == MODE_WEEKLY
    assert plan.duration_p99_ms == pytest.approx(200.0)
    assert all(1 <= h.min_capacity <= settings.max_capacity for h in plan.hours)


def test_history_after_now_is_refused(settings):
    with pytest.raises(ValueError):
        build_plan(settings, at(27), make_history(28))


def test_a_gap_between_history_and_now_is_bridged(settings):
    plan = build_plan(settings, at(29), make_history(28, concurrency=False))  # history ended a day ago
    evening = next(h for h in plan.hours if h.hour.hour == 16)
    assert evening.required == math.ceil(42.0 * 0.2)


def test_table_and_json_render(settings):
    plan = build_plan(settings, at(28), make_history(28))
    table = plan.table()
    assert "hour-of-week" in table and "recs-predictive-h16" in table
    payload = plan.to_json()
    assert len(payload["hours"]) == 24 and payload["hours"][0]["schedule"].startswith("cron(")


def test_sizing_for_the_mean_at_a_target_utilization():
    settings = ScalingSettings(function_name="api", headroom=1.5, target_utilization=0.6)
    plan = build_plan(settings, at(28), make_history(28))
    assert plan.target_utilization == 0.6 and "60% utilisation" in plan.table()
    evening = next(h for h in plan.hours if h.hour.hour == 16)
    night = next(h for h in plan.hours if h.hour.hour == 4)
    # 42 req/s x 0.2 s = 8.4 in flight on average; headroom does not apply to the mean
    assert evening.mean_concurrency == pytest.approx(8.4)
    assert evening.required == 14  # 8.4 / 0.6
    assert night.mean_concurrency == pytest.approx(0.4)
    assert night.required == 1 and night.min_capacity == 1
    peak_plan = build_plan(settings.with_overrides(target_utilization=0.0), at(28), make_history(28))
    assert peak_plan.target_utilization == 0.0 and "headroom 1.5" in peak_plan.table()
    assert next(h for h in peak_plan.hours if h.hour.hour == 16).required == math.ceil(1.5 * 8.4)
    assert plan.to_json()["hours"][0]["mean_concurrency"] is not None


def test_sizing_for_the_mean_without_duration_sum_sizes_for_the_peak():
    settings = ScalingSettings(function_name="api", headroom=1.0, target_utilization=0.6)
    plan = build_plan(settings, at(28), make_history(28, busy=False))
    assert plan.target_utilization == 0.0
    assert any("no Duration Sum data" in note for note in plan.notes)
    evening = next(h for h in plan.hours if h.hour.hour == 16)
    assert evening.mean_concurrency is None and evening.required == math.ceil(8.4 - 1e-9)


def test_sizing_for_the_mean_never_plans_zero_while_there_is_traffic():
    settings = ScalingSettings(function_name="api", min_capacity=0, max_capacity=10, target_utilization=1.0)
    quiet = make_history(28, rate=lambda t: 0.01)  # 0.002 requests in flight on average
    plan = build_plan(settings, at(28), quiet)
    assert min(h.min_capacity for h in plan.hours) == 1
