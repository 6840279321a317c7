"""``recs train`` and ``recs evaluate``. TensorFlow is imported only when a model trains (``train``; ``evaluate`` with
SASRec, GRU4Rec or ``--eval-seeds``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from training.options import (
    add_model_options,
    config_from_args,
    parse_seeds,
    parse_tune_space,
    positive_integer,
    tuning_spaces,
)

DEFAULT_DATA = "data/ml-latest-small"
DEFAULT_BUNDLE = "artifacts/bundle"
DEFAULT_REPORT = "report"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    train = subparsers.add_parser(
        "train",
        help="train the two-tower model, evaluate it against the baselines, export the bundle",
        description="Train the two-tower model on a MovieLens directory (any layout), evaluate the served "
        "path (numpy towers + exported vectors) against popularity, item-kNN and EASE (and, with --baselines, "
        "SASRec and GRU4Rec) on the chronological split, write the model bundle and a report. Defaults were chosen "
        "on validation users (--tune runs that search again).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    train.add_argument("--data", default=DEFAULT_DATA, help="MovieLens directory (ml-latest-small, ml-1m, ...)")
    train.add_argument("--out", default=DEFAULT_BUNDLE, help="directory to write the model bundle to")
    train.add_argument("--report", default=DEFAULT_REPORT, help="directory for metrics.json/.md and PNG plots")
    train.add_argument("--json", action="store_true", help="print the evaluation as one JSON object last")
    train.add_argument("--no-baselines", action="store_true", help="evaluate only the two-tower model")
    train.add_argument("--tune", action="store_true",
                       help="first choose the two-tower's and the baselines' hyper-parameters on validation users "
                       "(training.tuning: a small grid, each two-tower point averaged over --tune-seeds; about 70 "
                       "minutes on the bundled sample with 2 CPUs), then train and evaluate the chosen ones; the "
                       "search is recorded in the manifest and report/tuning.*")
    train.add_argument("--tune-space", action="append", type=parse_tune_space, default=[], metavar="MODEL.PARAM=V,...",
                       help="with --tune: the values the search tries for one hyper-parameter, replacing or adding it "
                       "in that model's grid (a single value fixes it); repeatable. E.g. two-tower.user_tower=pooling,"
                       "attention,gru compares the user towers on validation; SASRec.blocks=2 shrinks SASRec's grid")
    train.add_argument("--tune-seeds", type=parse_seeds, default=None, metavar="S1,S2,...",
                       help="with --tune: the seeds each two-tower trial trains with; its validation figures are their "
                       "mean (default: training.tuning.TUNING_SEEDS, 42,7,123). The final model trains from --seed")
    train.add_argument("--tune-max-epochs", type=positive_integer, default=None, metavar="N",
                       help="with --tune: the most epochs any trial trains (the two-tower's, SASRec's, GRU4Rec's), "
                       "early-stopping on the validation users; each final model trains its chosen point's (mean) "
                       "best epoch, the two-tower's replacing --epochs (default: 30 for the two-tower, "
                       "training.tuning.TUNING_MAX_EPOCHS; 200 for SASRec and GRU4Rec, SEQUENTIAL_MAX_EPOCHS)")
    train.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch log")
    add_model_options(train)
    _evaluation_arguments(train)
    train.set_defaults(func=cmd_train)

    evaluate = subparsers.add_parser(
        "evaluate",
        help="evaluate a bundle's served path and the baselines on a MovieLens directory",
        description="Run the evaluation protocol (per-user chronological split, last 20%% as test items, full "
        "catalog ranked with the history excluded) on the served path of a bundle: the numpy user tower and "
        "the exported movie vectors. Popularity, item-kNN (cosine) and EASE (with --baselines, SASRec and "
        "GRU4Rec too; hyper-parameters chosen on validation users) run on the same split.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    evaluate.add_argument("--data", default=DEFAULT_DATA, help="MovieLens directory (any supported layout)")
    evaluate.add_argument("--bundle", default=DEFAULT_BUNDLE, help="model bundle directory; 'none' for baselines only")
    evaluate.add_argument("--report", default=None, help="also write metrics and plots to this directory")
    evaluate.add_argument("--json", action="store_true", help="print the evaluation as one JSON object last")
    evaluate.add_argument("--no-baselines", action="store_true", help="evaluate only the bundle")
    _evaluation_arguments(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)


def _baseline_list(text: str) -> tuple[str, ...]:
    from training.pipeline import BASELINES

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if [n.lower() for n in names] == ["all"]:
        return BASELINES
    by_lower = {b.lower(): b for b in BASELINES}
    unknown = [n for n in names if n.lower() not in by_lower]
    if unknown:
        known = ", ".join(BASELINES)
        raise argparse.ArgumentTypeError(f"unknown baseline(s) {', '.join(unknown)}; choose from {known}")
    return tuple(by_lower[n.lower()] for n in names)


def _evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baselines", type=_baseline_list, default=None, metavar="LIST",
                        help="comma-separated baselines to run, from popularity,item-kNN,EASE,SASRec,GRU4Rec, or 'all' "
                        "(default: popularity,item-kNN,EASE; SASRec and GRU4Rec train for about 6 minutes "
                        "each on the bundled sample)")
    parser.add_argument("--baseline-users", type=int, default=25_000,
                        help="above this many test users the baselines are scored on a seeded sample of this "
                        "size (95%% confidence intervals reported); 0 = always every user")
    parser.add_argument("--baseline-items", type=int, default=20_000,
                        help="item-kNN and EASE use this many most-rated movies (dense n x n matrices: "
                        "4 n^2 bytes each)")
    parser.add_argument("--eval-seeds", type=parse_seeds, default=None, metavar="S1,S2,...",
                        help="also train every model that trains (the two-tower configuration, SASRec, GRU4Rec) "
                        "once per seed and report each one's mean and standard deviation over them, and the served "
                        "model's margin over its best peer on the means (popularity, item-kNN and EASE are "
                        "deterministic). The table's rows and the bundle stay the single runs; a seed equal to a "
                        "model's own seed reuses its run, every other seed costs one more training of each model")


def _baseline_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"baseline_users": args.baseline_users or None, "baseline_items": args.baseline_items,
            "eval_seeds": args.eval_seeds or ()}


def _baselines(args: argparse.Namespace) -> tuple[str, ...]:
    from training.pipeline import DEFAULT_BASELINES

    if args.no_baselines:
        return ()
    return DEFAULT_BASELINES if args.baselines is None else args.baselines


def _errors() -> tuple[type[Exception], ...]:
    from core.errors import BundleError
    from training.errors import DataError

    return (DataError, BundleError, ValueError)


def _run(args: argparse.Namespace, started: float) -> dict[str, Any]:
    """How the report was made: the command line (``recs.cli.main`` sets it), the code's commit when it runs from a
    git checkout, its wall time and the CPUs it had."""
    from training.provenance import source_revision

    return {"command": getattr(args, "command_line", None), "source": source_revision(Path(__file__).parent),
            "seconds": round(time.monotonic() - started, 1), "cpus": os.cpu_count()}


def cmd_train(args: argparse.Namespace) -> int:
    from core.errors import CommandError
    from training.pipeline import format_table, run_training
    from training.report import write_report

    started = time.monotonic()
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    if args.tune_space and not args.tune:
        raise CommandError("--tune-space needs --tune")
    if args.tune_seeds is not None and not args.tune:
        raise CommandError("--tune-seeds needs --tune")
    if args.tune_max_epochs is not None and not args.tune:
        raise CommandError("--tune-max-epochs needs --tune")
    idle = sorted({m for m, _, _ in args.tune_space if m != "two-tower"} - set(_baselines(args)))
    if idle:
        raise CommandError(f"--tune-space names {', '.join(idle)}, which --baselines does not run")
    try:
        config = config_from_args(args)
        bundle, evaluation = run_training(
            args.data, args.out, config, _baselines(args),
            progress=False if args.quiet else None, log=log, tune=args.tune,
            tuning_spaces=tuning_spaces(args.tune_space), tuning_seeds=args.tune_seeds,
            tuning_max_epochs=args.tune_max_epochs, **_baseline_options(args),
        )
    except _errors() as exc:
        raise CommandError(str(exc)) from exc
    training = bundle.manifest.raw.get("training", {})
    write_report(args.report, evaluation, bundle.model_version, training.get("history"), training,
                 run=_run(args, started))
    print(format_table(evaluation))
    print(f"\nbundle {bundle.model_version} written to {Path(args.out)}; report in {Path(args.report)}/")
    if args.json:
        print(json.dumps({"model_version": bundle.model_version, "bundle": str(args.out), **evaluation.to_dict()}))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.errors import CommandError
    from training.pipeline import format_table, run_evaluation
    from training.report import write_report

    started = time.monotonic()
    bundle_dir = None if str(args.bundle).lower() == "none" else args.bundle
    try:
        _, _, evaluation, bundle = run_evaluation(
            args.data, bundle_dir, _baselines(args),
            log=lambda msg: print(msg, file=sys.stderr, flush=True), **_baseline_options(args),
        )
    except _errors() as exc:
        raise CommandError(str(exc)) from exc
    version = bundle.model_version if bundle else None
    if args.report:
        write_report(args.report, evaluation, version, run=_run(args, started))
    print(format_table(evaluation))
    if args.json:
        print(json.dumps({"model_version": version, **evaluation.to_dict()}))
    return 0
