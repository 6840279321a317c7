"""The Fargate entry point (S3 object -> job, moto S3) and the ``recs index`` command line."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from indexer.__main__ import main as module_main
from indexer.errors import DeltaError, SourceError
from indexer.sources import plan_for_object
from recs.cli import main as recs_main
from tests.indexer.conftest import N_MOVIES, summary_lines

BUCKET = "recs-data"


@pytest.fixture
def s3(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def upload_bundle(s3, bundle, prefix: str) -> None:
    for path in sorted(bundle.path.iterdir()):
        if path.name != "manifest.json":
            s3.upload_file(str(path), BUCKET, f"{prefix}/{path.name}")
    s3.upload_file(str(bundle.path / "manifest.json"), BUCKET, f"{prefix}/manifest.json")  # the trigger, last


def test_plan_for_object_keys():
    rebuild = plan_for_object("b", "bundles/v7/manifest.json")
    assert (rebuild.job, rebuild.location, rebuild.bundles_root) == ("rebuild", "s3://b/bundles/v7", "s3://b/bundles")
    update = plan_for_object("b", "env/prod/deltas/2025-03-01.csv")
    assert (update.job, update.location, update.bundles_root) == (
        "update", "s3://b/env/prod/deltas/2025-03-01.csv", "s3://b/env/prod/bundles")
    assert plan_for_object("b", "deltas/new movies:2025.json").location == "s3://b/deltas/new movies:2025.json"
    for key in ("bundles/v7/user_tower.npz", "deltas/a.txt", "deltas/sub/a.csv", "other/manifest.json"):
        with pytest.raises(SourceError, match="nothing to do"):
            plan_for_object("b", key)
    with pytest.raises(SourceError, match="RECS_S3_BUCKET"):
        plan_for_object(None, "bundles/v7/manifest.json")


def test_s3_bundle_then_s3_delta(s3, embedded_world, make_bundle):
    bundle = make_bundle("m1")
    upload_bundle(s3, bundle, "bundles/m1")
    summary = embedded_world.indexer().auto(BUCKET, "bundles/m1/manifest.json")
    assert (summary.job, summary.model_version, summary.documents) == ("rebuild", "m1", N_MOVIES)
    assert embedded_world.count() == N_MOVIES

    s3.put_object(Bucket=BUCKET, Key="deltas/new.csv",
                  Body=b"movieId,title,genres,popularity,action\n900001,New One (2024),Drama,3,\n1,,,,delete\n")
    summary = embedded_world.indexer().auto(BUCKET, "deltas/new.csv")
    assert summary.job == "update"
    assert summary.details["bundle"] == "s3://recs-data/bundles/m1"  # found from the live model version
    assert embedded_world.movie(900001) is not None and embedded_world.movie(1) is None


def test_a_malformed_s3_delta_is_rejected_before_any_write(s3, embedded_world, make_bundle):
    upload_bundle(s3, make_bundle("m1"), "bundles/m1")
    embedded_world.indexer().auto(BUCKET, "bundles/m1/manifest.json")
    s3.put_object(Bucket=BUCKET, Key="deltas/bad.json", Body=b'{"upsert": [{"movieId": "x"}]}')
    with pytest.raises(DeltaError, match=r"upsert\[0\]: movieId 'x' is not an integer"):
        embedded_world.indexer().auto(BUCKET, "deltas/bad.json")
    assert embedded_world.generation() == 1
    with pytest.raises(DeltaError, match="cannot read it from S3"):
        embedded_world.indexer().auto(BUCKET, "deltas/missing.json")


def test_module_entry_point_reads_the_event_from_the_environment(s3, make_bundle, tmp_path, monkeypatch, capsys):
    upload_bundle(s3, make_bundle("m1"), "bundles/m1")
    monkeypatch.setenv("RECS_S3_BUCKET", BUCKET)
    monkeypatch.setenv("RECS_S3_KEY", "bundles/m1/manifest.json")
    monkeypatch.setenv("RECS_EMBEDDED_STORE", str(tmp_path / "store"))
    monkeypatch.delenv("RECS_OPENSEARCH_URL", raising=False)
    monkeypatch.delenv("RECS_REDIS_URL", raising=False)
    assert module_main([]) == 0
    out = capsys.readouterr()
    summary = summary_lines(out.out)[-1]
    assert (summary["job"], summary["documents"], summary["alias_before"]) == ("rebuild", N_MOVIES, None)
    assert summary["alias_after"].startswith("movies-m1-")
    events = [json.loads(line)["event"] for line in out.err.splitlines()]
    assert events[:3] == ["plan", "rebuild_started", "locked"] and events[-1] == "summary"

    monkeypatch.setenv("RECS_S3_KEY", "bundles/m1/user_tower.npz")
    assert module_main([]) == 2
    error = json.loads(capsys.readouterr().err.splitlines()[-1])
    assert error["level"] == "error" and "nothing to do" in error["error"]


def test_recs_index_commands(make_bundle, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RECS_OPENSEARCH_URL", "http://127.0.0.1:9")  # an explicit --embedded-store wins over it
    store = str(tmp_path / "store")
    b1, b2 = make_bundle("m1"), make_bundle("m2", seed=1)
    assert recs_main(["index", "rebuild", "--bundle", str(b1.path), "--embedded-store", store]) == 0
    assert recs_main(["index", "rebuild", "--bundle", str(b2.path), "--embedded-store", store, "--keep", "1"]) == 0
    first, second = (s["index"] for s in summary_lines(capsys.readouterr().out))

    assert recs_main(["index", "status", "--embedded-store", store]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["live"], status["rollback_candidates"], status["generation"]) == (second, [first], 2)

    delta = tmp_path / "d.csv"
    delta.write_text("movieId,title,genres\n5,Renamed (2001),Drama\n", encoding="utf-8")
    assert recs_main(["index", "update", str(delta), "--bundle", str(b2.path), "--embedded-store", store]) == 0
    assert summary_lines(capsys.readouterr().out)[-1]["details"]["changed"] == 1

    assert recs_main(["index", "rollback", "--embedded-store", store]) == 0
    assert summary_lines(capsys.readouterr().out)[-1]["alias_after"] == first

    delta.write_text("movieId,title,genres\nnope,,\n", encoding="utf-8")
    assert recs_main(["index", "update", str(delta), "--bundle", str(b1.path), "--embedded-store", store]) == 2
    error = json.loads(capsys.readouterr().err.splitlines()[-1])
    assert error["error_type"] == "DeltaError" and error["problems"] == ["line 2: movieId 'nope' is not an integer"]

    assert recs_main(["index", "rebuild", "--bundle", str(tmp_path / "nowhere"), "--embedded-store", store]) == 2
    assert "no manifest" in capsys.readouterr().err


def test_a_busy_lock_exits_75(make_bundle, tmp_path, capsys):
    from indexer.locks import FileLock

    store = tmp_path / "store"
    with FileLock(store, ttl=60, job="other"):
        code = recs_main(["index", "rebuild", "--bundle", str(make_bundle("m1").path), "--embedded-store", str(store)])
    assert code == 75
    error = json.loads(capsys.readouterr().err.splitlines()[-1])
    assert error["error_type"] == "LockHeldError" and "other" in error["error"]


def test_terminal_output_has_a_progress_bar_and_a_summary_table(make_bundle, tmp_path):
    import io

    from indexer.jobs import Indexer
    from indexer.reporting import Reporter
    from indexer.settings import IndexerSettings

    err, out = io.StringIO(), io.StringIO()
    settings = IndexerSettings.from_env({"embedded_store": str(tmp_path / "s"), "bulk_docs": 10}, env={})
    Indexer(settings, Reporter(stream=err, out=out, tty=True)).rebuild(str(make_bundle("m1").path))
    text = err.getvalue()
    assert f"{N_MOVIES}/{N_MOVIES}" in text and "doc/s" in text  # tqdm's bar
    assert "docs/s" in text and "alias" in text and "-> movies-m1-" in text  # the summary table
    assert json.loads(out.getvalue().splitlines()[-1])["documents"] == N_MOVIES
