"""``recs scaling plan`` (offline dry run with a PNG), the Lambda handler under moto, and the asset."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import boto3
from moto import mock_aws

from infra.forecaster_asset import build_forecaster_asset
from recs.cli import main as recs_main
from scaling import lambda_handler
from scaling.actions import SCALABLE_DIMENSION, SERVICE_NAMESPACE
from scaling.metrics import MetricHistory
from tests.scaling.conftest import START, make_history


def test_dry_run_prints_the_table_and_writes_a_png(tmp_path, capsys):
    history_file = tmp_path / "history.json"
    make_history(28).save(history_file)
    chart = tmp_path / "plan.png"
    now = (START + timedelta(days=28, minutes=5)).isoformat()
    code = recs_main(
        ["scaling", "plan", "--dry-run", "--function", "api", "--history", str(history_file), "--now", now,
         "--chart", str(chart)]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "mode hour-of-week" in out and "recs-predictive-h20" in out and "cron(50 19 * * ? *)" in out
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_target_utilization_flag_sizes_for_the_mean(tmp_path, capsys):
    history_file = tmp_path / "history.json"
    make_history(28).save(history_file)
    now = (START + timedelta(days=28, minutes=5)).isoformat()
    assert recs_main(["scaling", "plan", "--dry-run", "--json", "--function", "api", "--history", str(history_file),
                      "--now", now, "--target-utilization", "0.5", "--chart", str(tmp_path / "c.png")]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["target_utilization"] == 0.5
    evening = next(h for h in payload["hours"] if h["hour"].endswith("T16:00:00+00:00"))
    assert evening["required"] == 17  # 42 req/s x 0.2 s = 8.4 in flight, at 50%


def test_a_history_saved_without_duration_sum_still_loads(tmp_path):
    history = make_history(2)
    raw = history.to_json()
    assert MetricHistory.from_json(raw) == history
    del raw["duration_sum_ms"]
    old = MetricHistory.from_json(raw)
    assert old.duration_sum_ms is None and old.hourly_mean_concurrency() == [None] * 48


def test_json_output(tmp_path, capsys):
    history_file = tmp_path / "history.json"
    make_history(3).save(history_file)
    now = (START + timedelta(days=3, minutes=5)).isoformat()
    assert recs_main(["scaling", "plan", "--dry-run", "--json", "--function", "api", "--history", str(history_file),
                      "--now", now, "--chart", str(tmp_path / "c.png")]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["mode"] == "hour-of-day" and len(payload["hours"]) == 24


def test_dry_run_against_aws_saves_the_history_it_read(tmp_path, capsys, monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    saved = tmp_path / "h.json"
    with mock_aws():
        code = recs_main(["scaling", "plan", "--dry-run", "--function", "api", "--save-history", str(saved),
                          "--chart", str(tmp_path / "c.png"), "--history-days", "2"])
    assert code == 0
    assert "mode floor" in capsys.readouterr().out  # moto has no metrics: the floor, and it says why
    assert MetricHistory.load(saved).hours == 48


def test_cli_errors_are_clear(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RECS_SCALING_FUNCTION_NAME", raising=False)
    monkeypatch.delenv("RECS_SCALING_RESOURCE_ID", raising=False)
    assert recs_main(["scaling", "plan", "--dry-run"]) == 2
    assert "RECS_SCALING_FUNCTION_NAME" in capsys.readouterr().err
    assert recs_main(["scaling", "plan", "--dry-run", "--function", "api", "--max-capacity", "0"]) == 2
    assert "RECS_SCALING_MAX_CAPACITY" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{}")
    bad = str(tmp_path / "bad.json")
    assert recs_main(["scaling", "plan", "--dry-run", "--function", "api", "--history", bad]) == 2
    assert "--history" in capsys.readouterr().err


def test_handler_end_to_end_under_moto(monkeypatch, capsys):
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "eu-west-1",
        "RECS_SCALING_FUNCTION_NAME": "recs-recommender",
        "RECS_SCALING_ALIAS": "live",
        "RECS_SCALING_MIN_CAPACITY": "2",
        "RECS_SCALING_DURATION_STATISTIC": "Maximum",  # moto computes no percentiles
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(lambda_handler, "_settings", None)  # settings are read once per environment
    with mock_aws():
        autoscaling = boto3.client("application-autoscaling", region_name="eu-west-1")
        autoscaling.register_scalable_target(
            ServiceNamespace=SERVICE_NAMESPACE, ResourceId="function:recs-recommender:live",
            ScalableDimension=SCALABLE_DIMENSION, MinCapacity=1, MaxCapacity=20,
        )
        rehearsal = lambda_handler.handler({"dry_run": True}, None)
        assert rehearsal["applied"] is None
        assert autoscaling.describe_scheduled_actions(ServiceNamespace=SERVICE_NAMESPACE)["ScheduledActions"] == []
        result = lambda_handler.handler({"source": "aws.events"}, None)
        written = autoscaling.describe_scheduled_actions(ServiceNamespace=SERVICE_NAMESPACE)["ScheduledActions"]
    assert result["mode"] == "floor" and len(result["applied"]["written"]) == 24
    assert {a["ScalableTargetAction"]["MinCapacity"] for a in written} == {2}
    logs = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert any(entry.get("event") == "forecaster.fallback" and entry["level"] == "WARNING" for entry in logs)
    assert any(entry.get("event") == "forecaster.applied" for entry in logs)


def test_the_asset_holds_only_the_package_and_imports_without_site_packages(tmp_path):
    out = build_forecaster_asset(tmp_path / "asset")
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert "scaling/lambda_handler.py" in files and "scaling/forecast.py" in files
    assert all(f.startswith("scaling/") and f.endswith(".py") for f in files if not f.startswith("core/"))
    kernel = sorted(f for f in files if f.startswith("core/"))
    assert kernel == ["core/__init__.py", "core/errors.py", "core/settings.py"]
    assert sum(p.stat().st_size for p in out.rglob("*.py")) < 200_000
    # -S: no site-packages at all, so neither numpy nor boto3 can be imported by the handler path.
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import scaling.lambda_handler as h; "
        "assert callable(h.handler); print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'boto3')))"
    )
    done = subprocess.run([sys.executable, "-S", "-c", probe, str(out)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    # Rebuilding replaces the previous copy.
    (out / "scaling" / "stale.py").write_text("")
    build_forecaster_asset(out)
    assert not (out / "scaling" / "stale.py").exists()
