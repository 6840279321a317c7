"""The AWS calls, against moto (CloudWatch, Application Auto Scaling) and botocore's Stubber.

moto's GetMetricData does not compute percentiles (it fails on ``p99``), so the round trip through
moto reads ``Duration`` with the ``Maximum`` statistic (a setting); the ``p99`` request itself is
checked against the real API model with botocore's Stubber.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from scaling.actions import SCALABLE_DIMENSION, SERVICE_NAMESPACE, apply_plan, list_actions
from scaling.errors import ForecasterError, MetricsError
from scaling.metrics import fetch_history, metric_queries
from scaling.plan import MODE_FLOOR, MODE_WEEKLY
from scaling.runner import run_forecaster
from scaling.settings import ScalingSettings

REGION = "us-east-1"
FUNCTION = "recs-recommender"
RESOURCE_ID = f"function:{FUNCTION}:live"
DIMENSIONS = [{"Name": "FunctionName", "Value": FUNCTION}, {"Name": "Resource", "Value": f"{FUNCTION}:live"}]


@pytest.fixture
def aws(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("cloudwatch", region_name=REGION), boto3.client(
            "application-autoscaling", region_name=REGION
        )


def now_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def put_week_of_metrics(cloudwatch, end: datetime, days: int = 8) -> None:
    """Hourly datapoints (moto keeps what it is given): evening traffic, quiet nights."""
    batch = []
    for h in range(days * 24):
        t = end - timedelta(hours=days * 24 - h) + timedelta(minutes=7)
        rate = 40.0 if 17 <= t.hour <= 22 else 2.0  # requests/s in that 5-minute period
        batch += [
            {"MetricName": "Invocations", "Dimensions": DIMENSIONS, "Timestamp": t, "Value": rate * 300,
             "Unit": "Count"},
            {"MetricName": "ConcurrentExecutions", "Dimensions": DIMENSIONS, "Timestamp": t, "Value": rate / 10,
             "Unit": "Count"},
            {"MetricName": "Duration", "Dimensions": DIMENSIONS, "Timestamp": t, "Value": 250.0,
             "Unit": "Milliseconds"},
        ]
    for i in range(0, len(batch), 500):
        cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=batch[i : i + 500])


def register_target(autoscaling, max_capacity: int = 50) -> None:
    autoscaling.register_scalable_target(
        ServiceNamespace=SERVICE_NAMESPACE,
        ResourceId=RESOURCE_ID,
        ScalableDimension=SCALABLE_DIMENSION,
        MinCapacity=1,
        MaxCapacity=max_capacity,
    )


def settings(**overrides) -> ScalingSettings:
    values = {"function_name": FUNCTION, "aws_region": REGION, "duration_statistic": "Maximum", "history_days": 8,
              "headroom": 1.0}
    values.update(overrides)
    return ScalingSettings(**values)


def actions(autoscaling) -> dict[str, dict]:
    response = autoscaling.describe_scheduled_actions(
        ServiceNamespace=SERVICE_NAMESPACE, ResourceId=RESOURCE_ID, ScalableDimension=SCALABLE_DIMENSION
    )
    return {a["ScheduledActionName"]: a for a in response["ScheduledActions"]}


def test_history_read_back_from_cloudwatch(aws):
    cloudwatch, _ = aws
    end = now_hour()
    put_week_of_metrics(cloudwatch, end)
    history, notes = fetch_history(
        cloudwatch, function_name=FUNCTION, alias="live", end=end, days=8, duration_statistic="Maximum"
    )
    assert notes == []
    assert history.hours == 8 * 24
    rates = history.hourly_peak_rate()
    assert max(r for r in rates if r is not None) == pytest.approx(40.0)
    assert min(r for r in rates if r is not None) == pytest.approx(2.0)
    assert history.recent_p99_ms() == pytest.approx(250.0)
    assert max(c for c in history.hourly_peak_concurrency() if c is not None) == pytest.approx(4.0)
    # one 250 ms datapoint an hour (Duration Sum) is 250 ms of work in 3600 s
    assert max(m for m in history.hourly_mean_concurrency() if m is not None) == pytest.approx(0.25 / 3600)


def test_the_forecaster_writes_one_action_per_hour_on_the_alias(aws, caplog):
    cloudwatch, autoscaling = aws
    end = now_hour()
    put_week_of_metrics(cloudwatch, end)
    register_target(autoscaling)
    now = end + timedelta(minutes=5)
    with caplog.at_level(logging.INFO, logger="scaling"):
        result = run_forecaster(settings(), now=now, cloudwatch=cloudwatch, autoscaling=autoscaling)
    assert result.plan.mode == MODE_WEEKLY
    assert result.applied is not None and len(result.applied.written) == 24 and not result.applied.deleted
    written = actions(autoscaling)
    assert sorted(written) == sorted(f"recs-predictive-h{h:02d}" for h in range(24))
    for hour in result.plan.hours:
        action = written[hour.name]
        assert action["Schedule"] == hour.schedule
        assert action["ScalableTargetAction"] == {"MinCapacity": hour.min_capacity}  # MaxCapacity left alone
        assert action["ResourceId"] == RESOURCE_ID
    by_hour = {h.hour.hour: h.min_capacity for h in result.plan.hours}
    assert by_hour[20] == 10  # 40 req/s x 0.25 s
    assert by_hour[4] == 1
    assert any(record.getMessage() == "scheduled actions written" for record in caplog.records)

    # A second run with the same data changes nothing; a stale action of ours goes, a foreign one stays.
    autoscaling.put_scheduled_action(
        ServiceNamespace=SERVICE_NAMESPACE, ScheduledActionName="recs-predictive-old", ResourceId=RESOURCE_ID,
        ScalableDimension=SCALABLE_DIMENSION, Schedule="at(2020-01-01T00:00:00)",
        ScalableTargetAction={"MinCapacity": 3},
    )
    autoscaling.put_scheduled_action(
        ServiceNamespace=SERVICE_NAMESPACE, ScheduledActionName="team-manual-boost", ResourceId=RESOURCE_ID,
        ScalableDimension=SCALABLE_DIMENSION, Schedule="cron(0 12 * * ? *)", ScalableTargetAction={"MinCapacity": 9},
    )
    again = run_forecaster(settings(), now=now, cloudwatch=cloudwatch, autoscaling=autoscaling)
    assert again.applied is not None
    assert len(again.applied.unchanged) == 24 and again.applied.written == []
    assert again.applied.deleted == ["recs-predictive-old"]
    remaining = actions(autoscaling)
    assert "team-manual-boost" in remaining and "recs-predictive-old" not in remaining

    # A higher headroom rewrites only the hours whose minimum changed.
    higher = run_forecaster(settings(headroom=1.5), now=now, cloudwatch=cloudwatch, autoscaling=autoscaling)
    assert higher.applied is not None and 0 < len(higher.applied.written) < 24
    assert actions(autoscaling)[higher.plan.hours[0].name]["ScalableTargetAction"]["MinCapacity"] == (
        higher.plan.hours[0].min_capacity
    )


def test_clamped_to_the_scalable_targets_maximum(aws):
    cloudwatch, autoscaling = aws
    end = now_hour()
    put_week_of_metrics(cloudwatch, end)
    register_target(autoscaling, max_capacity=6)
    result = run_forecaster(settings(), now=end + timedelta(minutes=5), cloudwatch=cloudwatch, autoscaling=autoscaling)
    assert max(a["ScalableTargetAction"]["MinCapacity"] for a in actions(autoscaling).values()) == 6
    assert result.plan.maximum == 6


def test_dry_run_writes_nothing(aws):
    cloudwatch, autoscaling = aws
    end = now_hour()
    put_week_of_metrics(cloudwatch, end)
    register_target(autoscaling)
    result = run_forecaster(
        settings(), now=end + timedelta(minutes=5), dry_run=True, cloudwatch=cloudwatch, autoscaling=autoscaling
    )
    assert result.applied is None and len(result.plan.hours) == 24
    assert actions(autoscaling) == {}


def test_no_history_writes_the_floor(aws):
    cloudwatch, autoscaling = aws
    register_target(autoscaling)
    result = run_forecaster(settings(min_capacity=2), cloudwatch=cloudwatch, autoscaling=autoscaling)
    assert result.plan.mode == MODE_FLOOR
    assert {a["ScalableTargetAction"]["MinCapacity"] for a in actions(autoscaling).values()} == {2}


def test_a_cloudwatch_error_falls_back_to_the_floor_and_says_so(aws, caplog):
    _, autoscaling = aws
    register_target(autoscaling)
    broken = boto3.client("cloudwatch", region_name=REGION)
    stubber = Stubber(broken)
    stubber.add_client_error("get_metric_data", service_error_code="Throttling", http_status_code=400)
    with stubber, caplog.at_level(logging.WARNING, logger="scaling"):
        result = run_forecaster(settings(min_capacity=0), cloudwatch=broken, autoscaling=autoscaling)
    assert result.plan.mode == MODE_FLOOR
    assert {a["ScalableTargetAction"]["MinCapacity"] for a in actions(autoscaling).values()} == {1}
    assert any("Throttling" in record.getMessage() for record in caplog.records)


def test_no_scalable_target_is_an_error_and_nothing_is_written(aws):
    cloudwatch, autoscaling = aws
    with pytest.raises(ForecasterError, match="no usable scalable target"):
        run_forecaster(settings(), cloudwatch=cloudwatch, autoscaling=autoscaling)
    assert list_actions(autoscaling, RESOURCE_ID, "recs-predictive-") == {}


def test_an_autoscaling_error_is_raised_with_what_was_done():
    from scaling.errors import ScalingActionsError
    from scaling.plan import build_plan

    client = boto3.client("application-autoscaling", region_name=REGION, aws_access_key_id="x",
                          aws_secret_access_key="x")
    plan = build_plan(settings(), now_hour(), None, read_error="x")
    stubber = Stubber(client)
    stubber.add_response("describe_scheduled_actions", {"ScheduledActions": []})
    stubber.add_response("put_scheduled_action", {})
    stubber.add_client_error("put_scheduled_action", service_error_code="LimitExceededException")
    with stubber, pytest.raises(ScalingActionsError) as raised:
        apply_plan(client, plan, "recs-predictive-")
    assert raised.value.done.written == [plan.hours[0].name]


def test_the_p99_request_matches_the_api_and_is_parsed():
    client = boto3.client("cloudwatch", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    end = datetime(2024, 5, 1, 12, tzinfo=UTC)
    start = end - timedelta(days=1)
    stamps = [start + timedelta(minutes=5 * i) for i in range(3)]
    stubber = Stubber(client)
    expected = {
        "MetricDataQueries": metric_queries(FUNCTION, "live", 300, "p99"),
        "StartTime": start,
        "EndTime": end,
        "ScanBy": "TimestampAscending",
    }
    stubber.add_response(
        "get_metric_data",
        {
            "MetricDataResults": [
                {"Id": "invocations", "Timestamps": stamps, "Values": [600.0, 900.0, 300.0], "StatusCode": "Complete"},
                {"Id": "duration", "Timestamps": stamps[:2], "Values": [180.0, 220.0], "StatusCode": "PartialData"},
                {"Id": "busy", "Timestamps": stamps, "Values": [36_000.0, 54_000.0, 18_000.0],
                 "StatusCode": "Complete"},
            ],
            "NextToken": "page-2",
        },
        expected,
    )
    stubber.add_response(
        "get_metric_data",
        {"MetricDataResults": [{"Id": "concurrency", "Timestamps": stamps, "Values": [3.0, 4.0, 2.0],
                                "StatusCode": "Complete"}]},
        {**expected, "NextToken": "page-2"},
    )
    with stubber:
        history, notes = fetch_history(client, function_name=FUNCTION, alias="live", end=end, days=1)
    assert [q["MetricStat"]["Stat"] for q in expected["MetricDataQueries"]] == ["Sum", "Maximum", "p99", "Sum"]
    assert [q["MetricStat"]["Metric"]["MetricName"] for q in expected["MetricDataQueries"]] == [
        "Invocations", "ConcurrentExecutions", "Duration", "Duration"]
    assert history.duration_p99_ms[:3] == [180.0, 220.0, None]
    assert history.recent_p99_ms() == pytest.approx(200.0)
    assert history.hourly_peak_rate()[0] == pytest.approx(3.0)
    assert history.hourly_peak_concurrency()[0] == pytest.approx(4.0)
    # Duration Sum: 108 s spent in the function during the first hour = 0.03 requests in flight on average
    assert history.hourly_mean_concurrency()[0] == pytest.approx(108.0 / 3600)
    assert notes == []


def test_fetch_wraps_api_errors():
    client = boto3.client("cloudwatch", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    stubber.add_client_error("get_metric_data", service_error_code="AccessDenied", http_status_code=403)
    with stubber, pytest.raises(MetricsError, match="AccessDenied"):
        fetch_history(client, function_name=FUNCTION, alias="live", end=now_hour(), days=1)
