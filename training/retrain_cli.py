"""The retraining job's command line: ``python -m training.retrain_cli`` (the Fargate task's entry point) and,
with the local indexing step added by ``recs/retrain.py``, ``recs retrain``.

Every option has a ``RECS_*`` variable (an option beats it); the hyper-parameters are ``recs train``'s.
Exit status: 0 published, 3 held back by the gate, 4 nothing new to train on, 1 failed, 2 bad input or
settings, 75 another retrain holds the lock. The last stdout line is the run's JSON summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from training.options import add_model_options, config_from_args, model_flags

DESCRIPTION = (
    "Retrain on the newest ratings and publish the new model only if it passes the quality gate: both the new "
    "model and the live one (the live index's model) are scored through the served path on the same newest "
    "split; the new one is published (files first, manifest last) when its Recall@10 and NDCG@10 are not worse "
    "by more than the tolerance, it is at parity with the trained Keras towers and its bundle verifies. A report "
    "(both models, the decision and why) is always written next to the bundle."
)
EPILOG = ("exit status: 0 published, 3 held back, 4 unchanged data (nothing trained), 1 failed, 2 bad input or "
          "settings, 75 another retrain holds the lock")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("data and bundles (an option beats its RECS_* variable)")
    where.add_argument("--data", help="MovieLens directory or s3://bucket/prefix/ with its files "
                                      "(RECS_RETRAIN_DATA, default data/ml-latest-small)")
    where.add_argument("--bundle-root", help="where bundles are published, <root><model_version>/ "
                                             "(RECS_RETRAIN_BUNDLE_ROOT, default artifacts/bundles/)")
    where.add_argument("--live-bundle", help="the live model's bundle if it is not under the root "
                                             "(RECS_RETRAIN_LIVE_BUNDLE; locally default artifacts/bundle)")
    where.add_argument("--work-dir", help="where S3 data is downloaded and the candidate written "
                                          "(RECS_RETRAIN_WORK_DIR, default a temporary directory)")
    gate = parser.add_argument_group("the gate")
    gate.add_argument("--tolerance", type=float,
                      help="how much lower Recall@10 / NDCG@10 may be than the live model's (RECS_RETRAIN_TOLERANCE, "
                           "default 0.005)")
    gate.add_argument("--parity-tolerance", type=float,
                      help="largest |Keras - numpy| tower difference (RECS_RETRAIN_PARITY_TOLERANCE, default 1e-4)")
    gate.add_argument("--force", action="store_true",
                      help="publish even if worse than the live model (verification and parity still apply)")
    gate.add_argument("--even-if-unchanged", action="store_true",
                      help="train even when the data is what the live model was retrained on "
                           "(RECS_RETRAIN_SKIP_UNCHANGED=false)")
    live = parser.add_argument_group("the live index and the lock")
    live.add_argument("--embedded-store", help="embedded store (RECS_EMBEDDED_STORE, default artifacts/index)")
    live.add_argument("--opensearch-url", help="OpenSearch instead of the embedded store (RECS_OPENSEARCH_URL)")
    live.add_argument("--alias", help="the live alias (RECS_OPENSEARCH_ALIAS, default movies)")
    live.add_argument("--redis-url", help="Redis for the lock (RECS_REDIS_URL)")
    live.add_argument("--lock-wait", type=float, metavar="SECONDS",
                      help="wait this long for another retrain (RECS_RETRAIN_LOCK_WAIT_SECONDS, default 0: exit 75)")
    live.add_argument("--lock-ttl", type=float, metavar="SECONDS",
                      help="lock TTL, extended while the run lives (RECS_RETRAIN_LOCK_TTL_SECONDS, default 300)")
    live.add_argument("--topic-arn", help="SNS topic for the report's summary (RECS_RETRAIN_TOPIC_ARN)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch log")
    model = parser.add_argument_group("model and training (as `recs train`)")
    add_model_options(model)


def check_model_flags(text: str) -> list[str]:
    """``text`` split like a shell would, checked to hold only the model and training options (``recs train``'s
    hyper-parameters and ``--no-jit``) with valid values: the extra arguments of a deployed retraining task
    (``retrainArgs``). Raises ``ValueError`` naming the problem."""
    import contextlib
    import io
    import shlex

    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"cannot split {text!r}: {exc}") from exc
    allowed = model_flags()
    for token in tokens:
        name = token.split("=", 1)[0]
        if token.startswith("-") and name not in allowed:
            raise ValueError(f"{name} is not a model or training option (allowed: {', '.join(sorted(allowed))})")
    parser = build_parser()
    messages = io.StringIO()
    try:
        with contextlib.redirect_stderr(messages):
            args = parser.parse_args(tokens)
    except SystemExit:
        raise ValueError(messages.getvalue().strip().splitlines()[-1]) from None
    config_from_args(args)  # the values themselves (TrainConfig's checks)
    return tokens


def settings_from_args(args: argparse.Namespace) -> Any:
    from training.retrain_settings import RetrainSettings

    overrides: dict[str, Any] = {
        "data": args.data, "bundle_root": args.bundle_root, "live_bundle": args.live_bundle, "work_dir": args.work_dir,
        "tolerance": args.tolerance, "parity_tolerance": args.parity_tolerance,
        "embedded_store": args.embedded_store, "opensearch_url": args.opensearch_url, "alias": args.alias,
        "redis_url": args.redis_url, "lock_wait": args.lock_wait, "lock_ttl": args.lock_ttl,
        "topic_arn": args.topic_arn, "skip_unchanged": False if args.even_if_unchanged else None,
    }
    if args.embedded_store and not args.opensearch_url:
        overrides["opensearch_url"] = ""  # an explicit store beats RECS_OPENSEARCH_URL, as for `recs index`
    return RetrainSettings.from_env(overrides)


def retrain(args: argparse.Namespace) -> Any:
    """Run one retraining from parsed arguments: a ``RetrainResult`` (``LockHeldError``, ``SettingsError``
    and ``ValueError`` for bad hyper-parameters propagate)."""
    from training.retrain import Retrainer

    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    settings = settings_from_args(args)
    args.retrain_settings = settings
    retrainer = Retrainer(settings, config_from_args(args), force=args.force, log=log,
                          progress=False if args.quiet else None)
    result = retrainer.run()
    args.retrain_result = result
    return result


def print_result(result: Any) -> None:
    """The two models side by side, the decision, and the JSON summary as the last line."""
    from training.evaluation import METRICS

    report = result.report
    new, live = report.get("new") or {}, report.get("live") or {}
    if new.get("metrics"):
        header = f"{'model':<40}" + "".join(f"{m:>12}" for m in METRICS)
        print(header)
        print("-" * len(header))
        for label, side in ((f"new {new['model_version']}", new), (f"live {live.get('model_version')}", live)):
            if side.get("metrics"):
                print(f"{label:<40}" + "".join(f"{side['metrics'][m]:>12.4f}" for m in METRICS))
        print()
    print(f"{result.decision.replace('_', ' ')}: {result.reason}")
    if result.report_location:
        print(f"report: {result.report_location}")
    print(json.dumps(result.summary()))


def run(args: argparse.Namespace) -> int:
    """The command: exit status from the run's decision; a busy lock is 75, bad settings 2."""
    from core.errors import LockHeldError, RecsError, SettingsError
    from training.retrain import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_LOCKED

    try:
        result = retrain(args)
    except LockHeldError as exc:
        print(f"retrain: {exc}", file=sys.stderr)
        print(json.dumps({"decision": "locked", "exit_code": EXIT_LOCKED, "reason": str(exc)}))
        return EXIT_LOCKED
    except (SettingsError, ValueError) as exc:
        print(f"retrain: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RecsError as exc:  # the lock's backend or a client could not be reached: nothing was trained
        print(f"retrain: error: {exc}", file=sys.stderr)
        print(json.dumps({"decision": "failed", "exit_code": EXIT_FAILED, "reason": str(exc)}))
        return EXIT_FAILED
    print_result(result)
    return int(result.exit_code)


def build_parser(prog: str = "python -m training.retrain_cli") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG)
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
