"""Retraining with a quality gate: new ratings in, a better (or not worse) model out, or nothing at all.

One run (``Retrainer.run``; ``recs retrain`` locally, ``python -m training.retrain_cli`` in the Fargate task):

1. takes the retrain lock (``core.locks.RETRAIN``: Redis, else an OpenSearch document, else
   ``<embedded store>/retrain.lock``), kept alive by a thread for the whole run: two retrains never
   publish at once, and a second one exits with status 75;
2. reads the live index's model version (``core.live_index``: the embedded store, or the OpenSearch
   alias' ``_meta.model_version``) and opens that model's bundle: ``<root><version>/``, else
   ``RECS_RETRAIN_LIVE_BUNDLE`` (locally ``artifacts/bundle``, where ``recs up`` trained it) when it is
   that version. No live index: this is the first model;
3. reads the ratings and movies (a MovieLens directory, or an ``s3://`` prefix downloaded first) and
   stops (status 4) when they are byte for byte the data the live model was retrained on;
4. splits them by time, trains, and scores the new model and the live one on the same split and the same
   catalog (the newest movies; a movie the live model never saw gets its vector from the live item
   tower with no popularity, as a catalog delta would give it), through the served path;
5. exports the new bundle into a work directory, verifies it, and asks the gate (``training.gate``);
6. publishes it only if it passes: ``core.publish`` copies the files, then ``manifest.json`` last, to
   ``<root><model_version>/`` (in S3 that manifest is what starts the indexer); a crash leaves files
   without a manifest, which nothing reads;
7. always writes the report, both models side by side, the decision and why
   (``retrain-report.json`` and ``.md`` in ``<root><model_version>/``, or ``<root>retrain-<UTC time>/``
   for a run that failed before it had a model), and publishes its summary to ``RECS_RETRAIN_TOPIC_ARN``.

Exit status: 0 published, 3 held back by the gate, 4 nothing new to train on, 1 failed, 2 bad input or
settings, 75 another retrain holds the lock. The report's ``not_published_streak`` counts the runs in a
row that ended held back or failed (0 after a publish): the deployed alarm watches it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.bundle import Bundle, open_bundle
from core.errors import (
    BundleError,
    LocationError,
    LockHeldError,
    PublishError,
    RecsError,
)
from core.live_index import describe_live_index, live_model_version
from core.locations import is_s3, parse_s3_url
from core.locks import RETRAIN, FileLock, OpenSearchLock, RedisLock, RunLock
from core.publish import bundle_location, newest_beside, publish_bundle, put_beside, read_beside
from training.config import TrainConfig
from training.errors import DataError, TrainingError
from training.evaluation import EvalSet, per_user_metrics, served_scorer, summarize
from training.gate import GATED_METRICS, ModelFigures, decide
from training.movielens import Dataset, Ratings, load_movielens
from training.pipeline import MODEL_NAME
from training.retrain_report import render_markdown
from training.retrain_settings import RetrainSettings, RetrainSettingsError
from training.split import Split, chronological_split

EXIT_PUBLISHED = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_HELD_BACK = 3
EXIT_UNCHANGED = 4
EXIT_LOCKED = 75
REPORT_JSON = "retrain-report.json"
REPORT_MD = "retrain-report.md"

Log = Callable[[str], None]


class RetrainError(TrainingError):
    """The retraining run could not compare or publish (the live model's bundle is missing, ...)."""


class LiveBundleMissingError(RetrainError):
    """The live index serves a model whose bundle is nowhere to be found."""


@dataclass
class TrainedCandidate:
    """What a trainer returns: ``training.train.TrainedModel`` (duck-typed so tests can train without TensorFlow)."""

    user_tower: Any
    item_tower: Any
    catalog: list[Any]
    vectors: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


Trainer = Callable[[Dataset, Split, TrainConfig, Log, "bool | None"], Any]
"""``trainer(dataset, split, config, log, progress)`` -> a trained model with ``user_tower``, ``item_tower``,
``catalog``, ``vectors`` and ``info`` (``parity_max_abs_diff``), as ``training.train.train_two_tower`` returns."""


def train_with_tensorflow(data: Dataset, split: Split, config: TrainConfig, log: Log, progress: bool | None) -> Any:
    from training.train import train_two_tower

    return train_two_tower(data, split, config, progress=progress, log=log)


@dataclass
class RetrainResult:
    decision: str
    """``published``, ``held_back``, ``unchanged`` or ``failed``."""
    exit_code: int
    reason: str
    report: dict[str, Any]
    model_version: str | None = None
    location: str | None = None
    """The published bundle (``<root><model_version>``), or None."""
    report_location: str | None = None

    def summary(self) -> dict[str, Any]:
        """The run in one JSON object (the last line ``recs retrain`` prints)."""
        report = self.report
        return {
            "decision": self.decision, "exit_code": self.exit_code, "reason": self.reason,
            "model_version": self.model_version, "bundle": self.location, "report": self.report_location,
            "live_model_version": (report.get("live") or {}).get("model_version"),
            "metrics": {side: (report.get(side) or {}).get("metrics") for side in ("new", "live")},
            "not_published_streak": report.get("not_published_streak"),
            "seconds": report.get("seconds"),
        }


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Retrainer:
    """One retraining run from settings; clients (S3, OpenSearch, Redis, SNS) are built on demand unless given."""

    def __init__(
        self,
        settings: RetrainSettings,
        config: TrainConfig | None = None,
        *,
        force: bool = False,
        log: Log = _stderr,
        progress: bool | None = None,
        trainer: Trainer = train_with_tensorflow,
        s3: Any = None,
        opensearch: Any = None,
        redis: Any = None,
        sns: Any = None,
    ) -> None:
        self.settings = settings
        self.config = config or TrainConfig()
        self.force = force
        self.log = log
        self.progress = progress
        self.trainer = trainer
        self._s3 = s3
        self._opensearch = opensearch
        self._redis = redis
        self._sns = sns

    # -- clients -------------------------------------------------------------------
    @property
    def s3(self) -> Any:
        if self._s3 is None:
            import boto3

            self._s3 = boto3.client("s3", region_name=self.settings.aws_region)
        return self._s3

    def _s3_if_needed(self) -> Any:
        return self.s3 if is_s3(self.settings.root) or is_s3(self.settings.data) else None

    @property
    def opensearch(self) -> Any:
        s = self.settings
        if self._opensearch is None and s.opensearch_url:
            from core.aws import opensearch_client

            self._opensearch = opensearch_client(
                s.opensearch_url, username=s.opensearch_username, password=s.opensearch_password,
                service=s.opensearch_service, region=s.aws_region, timeout_seconds=30.0, max_retries=3,
            )
        return self._opensearch

    @property
    def redis(self) -> Any:
        s = self.settings
        if self._redis is None and s.redis_url:
            import redis

            kwargs: dict[str, Any] = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0}
            if s.redis_auth_secret_arn:
                from core.aws import redis_auth_token

                kwargs["password"] = redis_auth_token(s.redis_auth_secret_arn, s.aws_region)
            self._redis = redis.Redis.from_url(s.redis_url, **kwargs)
        return self._redis

    def lock(self) -> RunLock:
        """Redis when configured, else an OpenSearch document, else ``<embedded store>/retrain.lock``."""
        s = self.settings
        common: dict[str, Any] = {"ttl": s.lock_ttl, "wait": s.lock_wait, "job": "retrain", "spec": RETRAIN}
        if self.redis is not None:
            return RedisLock(self.redis, **common)
        if self.opensearch is not None:
            return OpenSearchLock(self.opensearch, s.alias, **common)
        return FileLock(s.embedded_store, **common)

    # -- the run -------------------------------------------------------------------
    def run(self) -> RetrainResult:
        """Retrain, gate, publish or hold back, report. ``LockHeldError`` (exit 75) when another retrain runs;
        every other failure is a ``failed`` result with its report."""
        started = datetime.now(UTC)
        lock = self.lock()
        lock.acquire()  # LockHeldError: another retrain is running; nothing is reported
        try:
            with lock.keep_alive(), self._work_dir() as work:
                return self._run_locked(lock, work, started)
        finally:
            lock.release()

    @contextlib.contextmanager
    def _work_dir(self) -> Iterator[Path]:
        if self.settings.work_dir:
            path = Path(self.settings.work_dir)
            path.mkdir(parents=True, exist_ok=True)
            yield Path(tempfile.mkdtemp(prefix="retrain-", dir=path))
            return
        with tempfile.TemporaryDirectory(prefix="recs-retrain-") as tmp:
            yield Path(tmp)

    def _run_locked(self, lock: RunLock, work: Path, started: datetime) -> RetrainResult:
        s = self.settings
        clock = time.perf_counter()
        timings: dict[str, float] = {}
        report: dict[str, Any] = {
            "started_at": started.isoformat(timespec="seconds"),
            "data": {"location": s.data},
            "bundle_root": s.root,
            "live_index": describe_live_index(opensearch_url=s.opensearch_url, alias=s.alias,
                                              embedded_store=s.embedded_store),
            "gate": {"tolerance": s.tolerance, "parity_tolerance": s.parity_tolerance, "metrics": list(GATED_METRICS),
                     "force": self.force},
            "live": None,
            "new": None,
            "timings": timings,
        }
        version: str | None = None
        try:
            with _timed(timings, "live_model"):
                live_version = self._live_version()
                live = self._live_bundle(live_version) if live_version else None
            if live is not None:
                report["live"] = {"model_version": live.model_version, "location": str(live.path)}
            self.log(f"live model: {live_version or 'none (this will be the first model)'}")
            with _timed(timings, "data"):
                data_dir = self._fetch_data(work)
                fingerprint = data_fingerprint(data_dir)
            report["data"]["fingerprint"] = fingerprint
            if s.skip_unchanged and not self.force and live is not None and self._same_data(live, fingerprint):
                reason = (f"unchanged: {s.data} is the data the live model {live.model_version} was retrained on; "
                          "nothing to do (--even-if-unchanged trains anyway)")
                self.log(reason)
                report.update(decision="unchanged", reason=reason, exit_code=EXIT_UNCHANGED)
                return self._finish(report, started, clock, None, None, write=False)
            with _timed(timings, "load"):
                dataset = load_movielens(data_dir)
                summary = dataset.summary()
                self.log(f"loaded {dataset.name} ({dataset.layout} layout): {summary}")
                split = chronological_split(dataset.ratings)
                dataset = replace(dataset, ratings=Ratings.empty())  # the split holds the interactions from here on
            report["data"]["dataset"] = summary
            with _timed(timings, "training"):
                trained = self.trainer(dataset, split, self.config, self.log, self.progress)
            with _timed(timings, "evaluation"):
                new_figures, live_figures, users = self._evaluate(split, trained, live)
            with _timed(timings, "export"):
                bundle = self._export(trained, work / "candidate", summary, new_figures)
            version = bundle.model_version
            verify_error = _verify(bundle)
            info = dict(getattr(trained, "info", {}) or {})
            report["new"] = {
                "model_version": version, "location": None, "metrics": dict(new_figures.metrics),
                "ci95": dict(new_figures.ci95), "users": users,
                "training": {k: info.get(k) for k in ("seconds", "epochs_run", "best_epoch", "examples",
                                                       "parity_max_abs_diff", "xla")},
            }
            if live is not None and live_figures is not None:
                report["live"].update(metrics=dict(live_figures.metrics), ci95=dict(live_figures.ci95), users=users)
            decision = decide(new_figures, live_figures, tolerance=s.tolerance,
                              parity_diff=_float_or_none(info.get("parity_max_abs_diff")),
                              parity_tolerance=s.parity_tolerance, verify_error=verify_error, force=self.force)
            report["gate"].update(decision.to_dict())
            self.log(decision.reason)
            lock.heartbeat(force=True)  # LockLostError: another run took over; publish nothing
            location = None
            if decision.publish:
                with _timed(timings, "publish"):
                    location = self._publish(bundle, live, report)
                report["new"]["location"] = location
            report.update(decision="published" if decision.publish else "held_back", reason=decision.reason,
                          exit_code=EXIT_PUBLISHED if decision.publish else EXIT_HELD_BACK)
            return self._finish(report, started, clock, version, location)
        except LockHeldError:
            raise
        except (DataError, RetrainSettingsError, LocationError) as exc:
            return self._failed(report, started, clock, version, exc, EXIT_BAD_INPUT)
        except (RecsError, OSError, ValueError) as exc:
            return self._failed(report, started, clock, version, exc, EXIT_FAILED)

    # -- steps ---------------------------------------------------------------------
    def _live_version(self) -> str | None:
        s = self.settings
        if s.opensearch_url:
            return live_model_version(opensearch=self.opensearch, alias=s.alias)
        return live_model_version(embedded_store=s.embedded_store)

    def _live_bundle(self, version: str) -> Bundle:
        """The live model's bundle: ``<root><version>/``, else the fallback location if it holds that version."""
        s = self.settings
        tried = []
        for location in (bundle_location(s.root, version), s.live_bundle_fallback):
            if not location:
                continue
            tried.append(location)
            try:
                bundle = open_bundle(location)
            except BundleError:
                continue
            if bundle.model_version == version:
                return bundle
        raise LiveBundleMissingError(
            f"the live index serves model {version}, but its bundle is in none of {', '.join(tried)}: cannot compare "
            "the new model with it (publish that bundle under the root, set RECS_RETRAIN_LIVE_BUNDLE, or roll the "
            "index back with `recs index rollback`)"
        )

    def _fetch_data(self, work: Path) -> Path:
        """The data directory: local as it is, or the files directly under an ``s3://`` prefix, downloaded."""
        location = self.settings.data
        if not is_s3(location):
            path = Path(location)
            if not path.is_dir():
                raise DataError(f"{path}: no such data directory (RECS_RETRAIN_DATA / --data)")
            return path
        bucket, prefix = parse_s3_url(location)
        name = prefix.rstrip("/").rsplit("/", 1)[-1] or bucket
        target = work / "data" / name
        target.mkdir(parents=True, exist_ok=True)
        start = f"{prefix}/" if prefix else ""
        from botocore.exceptions import BotoCoreError, ClientError

        count = 0
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=start, Delimiter="/"):
                for item in page.get("Contents", []):
                    leaf = item["Key"][len(start):]
                    if not leaf or "/" in leaf:
                        continue
                    self.s3.download_file(bucket, item["Key"], str(target / leaf))
                    count += 1
        except (ClientError, BotoCoreError) as exc:
            raise DataError(f"{location}: cannot read the data from S3 ({exc})") from exc
        if not count:
            raise DataError(f"{location}: no files under this prefix (upload ratings and movies there)")
        self.log(f"downloaded {count} file(s) from {location}")
        return target

    def _same_data(self, live: Bundle, fingerprint: dict[str, Any]) -> bool:
        raw = read_beside(self.settings.root, live.model_version, REPORT_JSON, client=self._s3_if_needed())
        if raw is None:
            return False
        try:
            previous = json.loads(raw)
        except ValueError:
            return False
        return bool((previous.get("data") or {}).get("fingerprint", {}).get("sha256") == fingerprint["sha256"])

    def _evaluate(self, split: Split, trained: Any, live: Bundle | None) -> tuple[ModelFigures, ModelFigures | None,
                                                                                  int]:
        """Both models through the served path on one split and one catalog (the new model's)."""
        catalog = list(trained.catalog)
        data = EvalSet.build(split, [m.movie_id for m in catalog])
        users = data.users

        def score(user_tower: Any, vectors: np.ndarray, label: str) -> tuple[dict[str, float], dict[str, float]]:
            started = time.perf_counter()
            per_user = per_user_metrics(served_scorer(user_tower, vectors, split), data, users,
                                        progress=self.progress, label=f"evaluating {label}")
            means, ci = summarize(per_user)
            self.log(f"evaluated {label} on {users.shape[0]:,} users: recall@10 {means['recall@10']:.4f}, "
                     f"ndcg@10 {means['ndcg@10']:.4f} ({time.perf_counter() - started:.1f} s)")
            return means, ci

        means, ci = score(trained.user_tower, np.asarray(trained.vectors), "the new model")
        new = ModelFigures("new", means, ci, int(users.shape[0]))
        if live is None:
            return new, None, int(users.shape[0])
        live_means, live_ci = score(live.user_tower, live_vectors_for(live, catalog),
                                    f"the live model {live.model_version}")
        return new, ModelFigures(live.model_version, live_means, live_ci, int(users.shape[0])), int(users.shape[0])

    def _export(self, trained: Any, out: Path, summary: dict[str, Any], figures: ModelFigures) -> Bundle:
        from training.train import export_bundle

        if out.exists():
            shutil.rmtree(out)
        return export_bundle(trained, out, summary, {MODEL_NAME: dict(figures.metrics)})

    def _publish(self, bundle: Bundle, live: Bundle | None, report: dict[str, Any]) -> str:
        """The new bundle to ``<root><version>/``, manifest last. A local root also gets the live model's bundle
        when it was found outside the root (``artifacts/bundle``), so a rollback can serve it from the root."""
        s = self.settings
        client = self._s3_if_needed()
        if live is not None and not is_s3(s.root) and not live.path.resolve().is_relative_to(Path(s.root).resolve()):
            target = Path(bundle_location(s.root, live.model_version))
            if not (target / "manifest.json").exists():
                publish_bundle(live.path, s.root)
                report["adopted_live_bundle"] = str(target)
                self.log(f"copied the live model's bundle {live.path} to {target} (for rollback under the root)")
        published = publish_bundle(bundle.path, s.root, client=client)
        self.log(f"published {published.model_version} to {published.location} (manifest last)")
        return published.location

    # -- endings -------------------------------------------------------------------
    def _failed(self, report: dict[str, Any], started: datetime, clock: float, version: str | None,
                exc: BaseException, code: int) -> RetrainResult:
        reason = f"failed: {type(exc).__name__}: {exc}"
        self.log(reason)
        report.update(decision="failed", reason=reason, exit_code=code)
        return self._finish(report, started, clock, version, None)

    def _finish(self, report: dict[str, Any], started: datetime, clock: float, version: str | None,
                location: str | None, *, write: bool = True) -> RetrainResult:
        s = self.settings
        finished = datetime.now(UTC)
        report["finished_at"] = finished.isoformat(timespec="seconds")
        report["seconds"] = round(time.perf_counter() - clock, 1)
        report_location = None
        if write:
            folder = version or f"retrain-{started:%Y%m%dT%H%M%SZ}"
            report["not_published_streak"] = 0 if report["decision"] == "published" else self._previous_streak() + 1
            try:
                client = self._s3_if_needed()
                put_beside(s.root, folder, REPORT_MD, render_markdown(report).encode(), client=client)
                report_location = put_beside(s.root, folder, REPORT_JSON,
                                             json.dumps(report, indent=2, sort_keys=True).encode(), client=client)
            except (PublishError, LocationError, OSError) as exc:
                self.log(f"could not write the report to {s.root}{folder}/: {exc}")
            self._notify(report, report_location)
        result = RetrainResult(report["decision"], int(report["exit_code"]), str(report["reason"]), report,
                               version, location, report_location)
        self.log(json.dumps({"event": "retrain_finished", **result.summary()}))
        return result

    def _previous_streak(self) -> int:
        """``not_published_streak`` of the most recent report under the root (0 when there is none)."""
        try:
            client = self._s3_if_needed()
            previous = newest_beside(self.settings.root, REPORT_JSON, client=client)
            if previous is None:
                return 0
            raw = read_beside(self.settings.root, previous, REPORT_JSON, client=client)
            return int(json.loads(raw or b"{}").get("not_published_streak") or 0)
        except (PublishError, LocationError, ValueError, OSError) as exc:
            self.log(f"could not read the previous report ({exc}); counting this run as the first of its streak")
            return 0

    def _notify(self, report: dict[str, Any], report_location: str | None) -> None:
        arn = self.settings.topic_arn
        if not arn:
            return
        try:
            if self._sns is None:
                import boto3

                self._sns = boto3.client("sns", region_name=self.settings.aws_region or arn.split(":")[3])
            version = (report.get("new") or {}).get("model_version") or ""
            subject = f"recs retrain: {report['decision'].replace('_', ' ')} {version}"
            text = render_markdown(report)
            if report_location:
                text += f"\nReport: {report_location}\n"
            self._sns.publish(TopicArn=arn, Subject=subject.strip()[:99], Message=text[:200_000])
        except Exception as exc:  # the report is written; a lost notification must not fail the run
            self.log(f"could not publish to {arn}: {type(exc).__name__}: {exc}")


# -- helpers -------------------------------------------------------------------------
@contextlib.contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(time.perf_counter() - started, 2)



def _float_or_none(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _verify(bundle: Bundle) -> str | None:
    """None when every file and array of the bundle checks out, else why not."""
    try:
        open_bundle(bundle.path).verify()
    except BundleError as exc:
        return str(exc)
    return None


def live_vectors_for(live: Bundle, catalog: list[Any]) -> np.ndarray:
    """The live model's vectors in the order of ``catalog``: its own exported vector for a movie it knows, its
    item tower's for one it does not (no popularity, as a catalog delta without a count would give it)."""
    rows = {m.movie_id: i for i, m in enumerate(live.catalog)}
    known = np.asarray([rows.get(m.movie_id, -1) for m in catalog], dtype=np.int64)
    vectors = np.empty((len(catalog), live.dimension), dtype=np.float32)
    have = known >= 0
    vectors[have] = live.movie_vectors[known[have]]
    missing = [replace(catalog[i], popularity=0.0) for i in np.flatnonzero(~have)]
    if missing:
        vectors[~have] = live.item_tower.encode(missing)
    return vectors


def data_fingerprint(directory: Path) -> dict[str, Any]:
    """sha256 and size of every file directly in ``directory``, and one sha256 over them all."""
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")):
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        files[path.name] = {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}
    overall = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    return {"sha256": overall, "files": files}
