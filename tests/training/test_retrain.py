"""The retraining job end to end without TensorFlow: a stand-in trainer returns towers whose quality the test
controls (a popularity prior of +50 ranks the popular movies first, which is what these synthetic users rate;
-50 ranks them last), and the real job does the rest: the lock, the live model from the embedded store, the
evaluation of both models on one split, the gate, publishing (manifest last), the report, the streak.
Locally (a directory root) and in S3 (moto)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from moto import mock_aws

from core.bundle import open_bundle
from core.errors import LockHeldError
from core.live_index import live_model_version
from core.locks import RETRAIN, FileLock
from indexer.jobs import Indexer
from indexer.settings import IndexerSettings
from recs.local.synthetic import synthetic_towers
from training.retrain import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_HELD_BACK,
    EXIT_PUBLISHED,
    EXIT_UNCHANGED,
    REPORT_JSON,
    REPORT_MD,
    Retrainer,
    TrainedCandidate,
)
from training.retrain_settings import RetrainSettings

N_MOVIES, N_USERS = 40, 60


def write_movielens(directory: Path, seed: int = 0, users: int = N_USERS) -> Path:
    """A small ml-latest-small-like directory: users rate mostly popular movies (Zipf), one rating a day."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    genres = ["Drama", "Comedy", "Action", "Romance"]
    with (directory / "movies.csv").open("w", encoding="utf-8") as fh:
        fh.write("movieId,title,genres\n")
        for i in range(1, N_MOVIES + 1):
            fh.write(f"{i},Movie {i} ({1980 + i}),{genres[i % 4]}|{genres[(i + 1) % 4]}\n")
    weights = 1.0 / np.arange(1, N_MOVIES + 1) ** 1.2
    weights /= weights.sum()
    with (directory / "ratings.csv").open("w", encoding="utf-8") as fh:
        fh.write("userId,movieId,rating,timestamp\n")
        for user in range(1, users + 1):
            seen = rng.choice(np.arange(1, N_MOVIES + 1), size=12, replace=False, p=weights)
            for day, movie in enumerate(seen):
                fh.write(f"{user},{movie},{rng.integers(1, 11) / 2},{1_000_000_000 + 86_400 * (user + day)}\n")
    return directory


def trainer(popularity_weight: float, seed: int = 0, parity: float = 1e-7) -> Any:
    """Each call gives other item vectors (hence another model version, which hashes them)."""
    calls: list[int] = []
    seed += 1000 if popularity_weight < 0 else 0

    def train(data: Any, split: Any, config: Any, log: Any, progress: Any) -> TrainedCandidate:
        calls.append(1)
        movies = list(data.movies)
        ids = np.asarray([m.movie_id for m in movies])
        seqs = split.sequences
        counts = {int(k): int(v) for k, v in zip(*np.unique(seqs.movie_ids[split.history_mask()], return_counts=True),
                                                   strict=True)}
        catalog = [replace(m, popularity=float(counts.get(m.movie_id, 0))) for m in movies]
        user, item = synthetic_towers(catalog, dimension=8, history_length=10, seed=seed + len(calls))
        user = replace(user, popularity_weight=popularity_weight)
        assert ids.size == len(catalog)
        return TrainedCandidate(user, item, catalog, item.encode(catalog),
                                {"parity_max_abs_diff": parity, "seconds": 0.1, "epochs_run": 1, "best_epoch": 1})

    return train


def settings(tmp_path: Path, **overrides: Any) -> RetrainSettings:
    values = {"data": str(tmp_path / "data"), "bundle_root": str(tmp_path / "bundles"),
              "embedded_store": str(tmp_path / "index"), "opensearch_url": "", "live_bundle": str(tmp_path / "none"),
              # two models of the same kind (popularity decides) differ in how they break ties: a few points
              "tolerance": 0.05, **overrides}
    return RetrainSettings.from_env(values, env={})


def index(store: Path, location: str) -> None:
    Indexer(IndexerSettings.from_env({"embedded_store": str(store), "opensearch_url": ""}, env={})).rebuild(location)


def report_of(location: str) -> dict[str, Any]:
    return dict(json.loads(Path(location).read_text()))


def quiet(_: str) -> None:
    pass


@pytest.fixture
def world(tmp_path: Path) -> Path:
    write_movielens(tmp_path / "data")
    return tmp_path


def test_no_live_model_is_a_first_publish_then_the_gate_holds_back_a_worse_one(world: Path) -> None:
    s = settings(world)
    first = Retrainer(s, trainer=trainer(+50.0), log=quiet).run()
    assert (first.decision, first.exit_code) == ("published", EXIT_PUBLISHED)
    assert first.location == f"{world / 'bundles'}/{first.model_version}"
    open_bundle(first.location).verify()
    report = report_of(first.report_location)
    assert report["live"] is None and report["not_published_streak"] == 0
    assert "first model" in report["reason"] and report["new"]["metrics"]["recall@10"] > 0.2
    assert (Path(first.location) / REPORT_MD).read_text().startswith("# Retrain: published")

    index(world / "index", first.location)  # what `recs retrain` (or the S3 trigger) does next
    assert live_model_version(embedded_store=world / "index") == first.model_version

    worse = Retrainer(settings(world, skip_unchanged=False), trainer=trainer(-50.0), log=quiet).run()
    assert (worse.decision, worse.exit_code) == ("held_back", EXIT_HELD_BACK)
    assert worse.location is None
    folder = world / "bundles" / worse.model_version
    assert sorted(p.name for p in folder.iterdir()) == [REPORT_JSON, REPORT_MD]  # a report, no bundle
    report = report_of(worse.report_location)
    assert report["live"]["model_version"] == first.model_version
    assert report["new"]["metrics"]["recall@10"] < report["live"]["metrics"]["recall@10"]
    assert report["reason"].startswith("held back: recall@10") and report["not_published_streak"] == 1
    assert "| **recall@10** |" in (folder / REPORT_MD).read_text()
    assert live_model_version(embedded_store=world / "index") == first.model_version

    again = Retrainer(settings(world, skip_unchanged=False), trainer=trainer(-50.0, seed=7), log=quiet).run()
    assert again.decision == "held_back" and again.report["not_published_streak"] == 2


def test_a_model_as_good_as_the_live_one_is_published_and_resets_the_streak(world: Path) -> None:
    first = Retrainer(settings(world), trainer=trainer(+50.0), log=quiet).run()
    index(world / "index", first.location)
    Retrainer(settings(world, skip_unchanged=False), trainer=trainer(-50.0), log=quiet).run()
    # another model of the same kind: popularity decides, ties among equally popular movies fall otherwise
    equal = Retrainer(settings(world, skip_unchanged=False), trainer=trainer(+50.0, seed=3), log=quiet).run()
    assert equal.decision == "published", equal.reason
    checks = {c["name"]: c for c in equal.report["gate"]["checks"]}
    assert checks["recall@10"]["passed"] and "within the tolerance" in checks["recall@10"]["detail"]
    assert equal.report["not_published_streak"] == 0


def test_the_same_data_twice_trains_nothing(world: Path) -> None:
    train = trainer(+50.0)
    first = Retrainer(settings(world), trainer=train, log=quiet).run()
    index(world / "index", first.location)
    second = Retrainer(settings(world), trainer=train, log=quiet).run()
    assert (second.decision, second.exit_code) == ("unchanged", EXIT_UNCHANGED)
    assert second.report_location is None
    write_movielens(world / "data", seed=1)  # new ratings
    third = Retrainer(settings(world), trainer=train, log=quiet).run()
    assert third.decision == "published"


def test_a_failed_parity_check_or_a_missing_live_bundle_publishes_nothing(world: Path) -> None:
    drifted = Retrainer(settings(world), trainer=trainer(+50.0, parity=0.5), log=quiet).run()
    assert drifted.decision == "held_back" and drifted.reason.startswith("held back: parity")
    assert not (Path(world / "bundles" / drifted.model_version) / "manifest.json").exists()

    first = Retrainer(settings(world), trainer=trainer(+50.0, seed=2), log=quiet).run()
    assert first.decision == "published" and first.report["not_published_streak"] == 0
    index(world / "index", first.location)
    for name in ("manifest.json", "user_tower.npz"):
        (Path(first.location) / name).unlink()
    missing = Retrainer(settings(world, skip_unchanged=False), trainer=trainer(+50.0), log=quiet).run()
    assert (missing.decision, missing.exit_code) == ("failed", EXIT_FAILED)
    assert "LiveBundleMissingError" in missing.reason and first.model_version in missing.reason
    assert missing.report_location is not None and "/retrain-" in missing.report_location
    assert report_of(missing.report_location)["not_published_streak"] == 1  # the publish reset it


def test_bad_data_is_exit_2_with_a_report(world: Path) -> None:
    result = Retrainer(settings(world, data=str(world / "nowhere")), trainer=trainer(1.0), log=quiet).run()
    assert (result.decision, result.exit_code) == ("failed", EXIT_BAD_INPUT)
    assert "no such data directory" in result.reason


def test_the_live_bundle_outside_the_root_is_found_and_copied_in_for_rollback(world: Path) -> None:
    # `recs up` trained artifacts/bundle and indexed it; the first retrain compares with it
    up = Retrainer(settings(world, bundle_root=str(world / "up")), trainer=trainer(+50.0), log=quiet).run()
    index(world / "index", up.location)
    s = settings(world, live_bundle=up.location, skip_unchanged=False)
    result = Retrainer(s, trainer=trainer(+50.0, seed=5), log=quiet).run()
    assert result.decision == "published"
    assert result.report["live"]["model_version"] == up.model_version
    assert result.report["adopted_live_bundle"] == f"{world / 'bundles'}/{up.model_version}"
    open_bundle(world / "bundles" / up.model_version).verify()


def test_a_second_retrain_exits_while_one_runs(world: Path) -> None:
    with FileLock(world / "index", ttl=60, job="other", spec=RETRAIN), pytest.raises(LockHeldError) as caught:
        Retrainer(settings(world), trainer=trainer(1.0), log=quiet).run()
    assert caught.value.exit_code == 75 and "another retrain holds" in str(caught.value)


class FakeSns:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def publish(self, **kwargs: Any) -> None:
        self.messages.append(kwargs)


def test_s3_data_and_root_publish_manifest_last_and_notify(world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="recs-bundles")
        for path in (world / "data").iterdir():
            s3.upload_file(str(path), "recs-bundles", f"ratings/{path.name}")
        sns = FakeSns()
        arn = "arn:aws:sns:us-east-1:123456789012:alarms"
        s = settings(world, data="s3://recs-bundles/ratings/", bundle_root="s3://recs-bundles/bundles/",
                     topic_arn=arn)
        first = Retrainer(s, trainer=trainer(+50.0), log=quiet, s3=s3, sns=sns).run()
        assert first.decision == "published" and first.location == f"s3://recs-bundles/bundles/{first.model_version}"
        open_bundle(first.location).verify()
        assert first.report_location == f"s3://recs-bundles/bundles/{first.model_version}/{REPORT_JSON}"
        (message,) = sns.messages
        assert message["TopicArn"] == arn and message["Subject"].startswith("recs retrain: published tt-")
        assert "# Retrain: published" in message["Message"] and first.report_location in message["Message"]

        index(world / "index", first.location)
        worse = Retrainer(replace(s, skip_unchanged=False), trainer=trainer(-50.0), log=quiet, s3=s3, sns=sns).run()
        assert worse.decision == "held_back"
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="recs-bundles", Prefix=f"bundles/{worse.model_version}/")
                .get("Contents", [])}
        assert keys == {f"bundles/{worse.model_version}/{REPORT_JSON}", f"bundles/{worse.model_version}/{REPORT_MD}"}
        assert sns.messages[-1]["Subject"].startswith("recs retrain: held back")
        assert json.loads(s3.get_object(Bucket="recs-bundles", Key=f"bundles/{worse.model_version}/{REPORT_JSON}")
                          ["Body"].read())["not_published_streak"] == 1
        unchanged = Retrainer(s, trainer=trainer(+50.0), log=quiet, s3=s3, sns=sns).run()
        assert unchanged.decision == "unchanged" and len(sns.messages) == 2  # nothing to report


def test_recs_up_serves_the_bundle_root_once_a_retrain_published_the_live_model(world: Path, capsys) -> None:
    from recs.cli import main as recs_main

    first = Retrainer(settings(world), trainer=trainer(+50.0), log=quiet).run()
    index(world / "index", first.location)
    # no artifacts/bundle at all: without the root it would train; with it, it serves the root and does nothing else
    code = recs_main(["up", "--no-serve", "--bundle", str(world / "missing"), "--store", str(world / "index"),
                      "--bundles", str(world / "bundles")])
    assert code == 0
    assert f"serves {first.model_version}, published by `recs retrain`" in capsys.readouterr().out


def test_the_command_exits_2_on_bad_settings_and_1_when_the_lock_cannot_be_reached(world: Path, unreachable_url: str,
                                                                                  capsys) -> None:
    from recs.cli import main as recs_main

    common = ["retrain", "--data", str(world / "data"), "--bundle-root", str(world / "bundles"),
              "--embedded-store", str(world / "index")]
    assert recs_main([*common, "--tolerance", "2"]) == 2
    assert "RECS_RETRAIN_TOLERANCE" in capsys.readouterr().err
    redis_url = unreachable_url.replace("http://", "redis://")
    assert recs_main([*common, "--redis-url", redis_url]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert json.loads(out[-1])["decision"] == "failed" and "recs:retrain:lock" in json.loads(out[-1])["reason"]
