"""`recs train` and `recs evaluate` as functions: data -> split -> model and baselines -> table, report, bundle."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.bundle import Bundle, open_bundle
from core.towers import UserTower
from training.baselines import DEFAULT_MAX_ITEMS, EASE, Gram, ItemKNN, Popularity
from training.config import TrainConfig
from training.evaluation import METRICS, EvalSet, per_user_metrics, served_scorer, summarize
from training.movielens import Dataset, Ratings, load_movielens
from training.sequential import DEFAULTS as SEQUENTIAL_DEFAULTS
from training.sequential import SEQUENTIAL, SequentialConfig
from training.split import Split, chronological_split
from training.stages import Stages

MODEL_NAME = "two-tower (served)"
BASELINES = ("popularity", "item-kNN", "EASE", "SASRec", "GRU4Rec")
"""Every baseline, in the table's order; ``--baselines`` picks some (``all``: every one)."""
DEFAULT_BASELINES = ("popularity", "item-kNN", "EASE")
"""What ``recs train`` and ``recs evaluate`` run unless told: the ones that take seconds. SASRec and GRU4Rec
train for a quarter of an hour each on the bundled sample (2 CPUs), so they run on request
(``--baselines all``), as for the committed report."""


DEFAULT_BASELINE_USERS = 25_000
"""Above this many test users, the baselines are scored on a seeded sample of them (with a 95% CI)."""


@dataclass(frozen=True)
class Evaluation:
    """Metrics per model on one split, with wall time per model.

    ``ci95`` holds each metric's 95% confidence half-width over the users it was computed on
    (``users``). When the baselines ran on a sample of the users, ``sample`` says which (size, seed)
    and gives the served path's figures on the same sample, for a like-for-like comparison.
    """

    dataset: dict[str, Any]
    results: dict[str, dict[str, float]]
    seconds: dict[str, float]
    ci95: dict[str, dict[str, float]] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)
    sample: dict[str, Any] | None = None
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per baseline with hyper-parameters: what ran (EASE's lambda; SASRec's and GRU4Rec's configuration, epochs,
    training seconds and validation figures)."""

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "metrics": self.results, "seconds": self.seconds, "ci95": self.ci95,
                "users": self.users, "sample": self.sample, "baselines": self.baselines}


def evaluate_all(
    split: Split,
    catalog_ids: Sequence[int],
    dataset: dict[str, Any],
    served: tuple[UserTower, np.ndarray] | None,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    ease_lambda: float | None = None,
    log: Callable[[str], None] = print,
    baseline_users: int | None = DEFAULT_BASELINE_USERS,
    baseline_items: int = DEFAULT_MAX_ITEMS,
    seed: int = 0,
    progress: bool | None = None,
    sequential: dict[str, SequentialConfig] | None = None,
) -> Evaluation:
    """The served path on every test user; the baselines on every test user too, or, above
    ``baseline_users`` of them, on a sample drawn with ``seed`` (the served path is also reported on it).

    Hyper-parameters default to the ones chosen on validation users (``training.tuning``): EASE's
    ``ease_lambda``, SASRec's and GRU4Rec's configurations (``sequential``, by name). SASRec and GRU4Rec
    train here, on the history minus the validation hold-out (``training.sequential``); their
    ``seconds`` include the training."""
    from training.tuning import EASE_LAMBDA

    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(BASELINES)}")
    lam = EASE_LAMBDA if ease_lambda is None else ease_lambda
    configs = {**SEQUENTIAL_DEFAULTS, **(sequential or {})}
    info: dict[str, dict[str, Any]] = {}
    data = EvalSet.build(split, catalog_ids)
    results: dict[str, dict[str, float]] = {}
    ci95: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    seconds: dict[str, float] = {}
    everyone = data.users
    sample_rows = everyone
    sample: dict[str, Any] | None = None
    if baselines and baseline_users is not None and everyone.shape[0] > baseline_users:
        rng = np.random.default_rng(seed)
        sample_rows = np.sort(rng.choice(everyone, size=baseline_users, replace=False))
        sample = {"users": int(baseline_users), "of": int(everyone.shape[0]), "seed": seed}

    def run(name: str, score: Callable[[np.ndarray], np.ndarray], users: np.ndarray) -> dict[str, np.ndarray]:
        started = time.perf_counter()
        per_user = per_user_metrics(score, data, users, progress=progress, label=f"evaluating {name}")
        results[name], ci95[name] = summarize(per_user)
        counts[name] = int(users.shape[0])
        seconds[name] = round(time.perf_counter() - started, 2)
        log(f"evaluated {name} on {users.shape[0]:,} users: recall@10 {results[name]['recall@10']:.4f} "
            f"(+/- {ci95[name]['recall@10']:.4f}) ({seconds[name]:.1f} s)")
        return per_user

    if served is not None:
        per_user = run(MODEL_NAME, served_scorer(served[0], served[1], split), everyone)
        if sample is not None:
            means, half = summarize(per_user, np.searchsorted(everyone, sample_rows))
            sample["served"] = {"metrics": means, "ci95": half}
    gram: Gram | None = None
    bars = progress if progress is not None else sys.stderr.isatty()
    for name in baselines:
        started = time.perf_counter()
        if name in SEQUENTIAL:
            from training.sequential import train_sequential

            trained = train_sequential(split, data.catalog_ids, configs[name], log=log, progress=progress)
            info[name] = {k: v for k, v in trained.info.items() if k != "history"}
            fit = time.perf_counter() - started
            run(name, trained.score_users, sample_rows)
            seconds[name] = round(seconds[name] + fit, 2)
            info[name]["training_seconds"] = round(fit, 1)
            del trained
            continue
        if name == "popularity":
            model: Popularity | ItemKNN | EASE = Popularity(data.history)
        elif name == "item-kNN":
            if gram is None:
                gram = Gram(data.history, baseline_items, progress=bars)
            model = ItemKNN(gram=gram)
        elif name == "EASE":
            if gram is None:
                gram = Gram(data.history, baseline_items, progress=bars)
            model = EASE(gram=gram, lam=lam, consume=True)
            gram = None
            info[name] = {"lambda": lam}
        else:
            raise ValueError(f"unknown baseline {name!r}")
        fit = time.perf_counter() - started
        run(name, lambda rows, m=model: m.score(data.history[rows]), sample_rows)  # type: ignore[misc]
        seconds[name] = round(seconds[name] + fit, 2)
        del model
    return Evaluation(dataset, results, seconds, ci95, counts, sample, info)


def format_table(evaluation: Evaluation) -> str:
    header = f"{'model':<22}" + "".join(f"{m:>12}" for m in METRICS) + f"{'seconds':>10}"
    lines = [header, "-" * len(header)]
    for name, row in evaluation.results.items():
        lines.append(f"{name:<22}" + "".join(f"{row[m]:>12.4f}" for m in METRICS)
                     + f"{evaluation.seconds.get(name, 0.0):>10.1f}")
    return "\n".join(lines)


def run_training(
    data_dir: str | Path,
    out_dir: str | Path,
    config: TrainConfig,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    progress: bool | None = None,
    log: Callable[[str], None] = print,
    baseline_users: int | None = DEFAULT_BASELINE_USERS,
    baseline_items: int = DEFAULT_MAX_ITEMS,
    stages: Stages | None = None,
    tune: bool = False,
    tuning_spaces: dict[str, dict[str, list[Any]]] | None = None,
    tuning_seeds: Sequence[int] | None = None,
    tuning_max_epochs: int | None = None,
) -> tuple[Bundle, Evaluation]:
    """Load, split, train, evaluate the served path and the baselines, and write the bundle.

    ``stages`` (if given) records the wall time and peak memory of each stage: ``load``, (``tuning``),
    ``examples``, ``training``, ``evaluation``, ``export``. With ``tune``, the hyper-parameters of the
    two-tower model and of the baselines that have some are first chosen on validation users
    (``training.tuning``; ``tuning_spaces`` replaces some of its spaces, ``tuning_seeds`` the seeds each two-tower
    trial is averaged over, ``tuning_max_epochs`` the most epochs a trial early-stops within), the chosen ones train
    (from ``config.seed``; the two-tower for the chosen point's mean best epoch) and are evaluated, and the search is
    recorded in the manifest (``training.tuning``).
    """
    from training.train import export_bundle, train_two_tower

    stage = stages or Stages()
    with stage("load"):
        data = load_movielens(data_dir)
        summary = data.summary()
        log(f"loaded {data.name} ({data.layout} layout): {summary}")
        split = chronological_split(data.ratings)
        data = replace(data, ratings=Ratings.empty())  # the split holds the interactions from here on
    tuning: dict[str, Any] | None = None
    ease_lambda: float | None = None
    sequential: dict[str, SequentialConfig] = {}
    if tune:
        from training.tuning import SPACES, TUNING_MAX_EPOCHS, TUNING_SEEDS, tune_baselines, tune_two_tower

        spaces = {**SPACES, **(tuning_spaces or {})}
        with stage("tuning"):
            tuning = {"two-tower": tune_two_tower(
                data, split, config, spaces["two-tower"], log=log,
                seeds=TUNING_SEEDS if tuning_seeds is None else tuning_seeds,
                max_epochs=TUNING_MAX_EPOCHS if tuning_max_epochs is None else tuning_max_epochs)}
            config = replace(config, **tuning["two-tower"]["chosen"], epochs=tuning["two-tower"]["epochs"])
            tuning.update(tune_baselines(split, [m.movie_id for m in data.movies], list(baselines), seed=config.seed,
                                         spaces=spaces, baseline_items=baseline_items, log=log))
        if "EASE" in tuning:
            ease_lambda = float(tuning["EASE"]["chosen"]["ease_lambda"])
        for name in SEQUENTIAL:
            if name in tuning:
                sequential[name] = replace(SEQUENTIAL_DEFAULTS[name],
                                           **{**tuning[name]["chosen"], "epochs": tuning[name]["epochs"]})
        log("chosen on validation: " + "; ".join(f"{k}: {v['chosen']}" for k, v in tuning.items()))
    trained = train_two_tower(data, split, config, progress=progress, log=log, stages=stage)
    with stage("evaluation"):
        evaluation = evaluate_all(
            split, [m.movie_id for m in trained.catalog], summary, (trained.user_tower, trained.vectors),
            baselines, ease_lambda=ease_lambda, log=log, baseline_users=baseline_users, baseline_items=baseline_items,
            seed=config.seed, progress=progress, sequential=sequential,
        )
    with stage("export"):
        trained.info.update(stage.to_dict())
        if tuning is not None:
            trained.info["tuning"] = tuning
        bundle = export_bundle(trained, out_dir, summary, evaluation.results)
    return bundle, evaluation



def run_evaluation(
    data_dir: str | Path,
    bundle_dir: str | Path | None,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    log: Callable[[str], None] = print,
    baseline_users: int | None = DEFAULT_BASELINE_USERS,
    baseline_items: int = DEFAULT_MAX_ITEMS,
) -> tuple[Dataset, Split, Evaluation, Bundle | None]:
    data = load_movielens(data_dir)
    split = chronological_split(data.ratings)
    bundle = open_bundle(bundle_dir) if bundle_dir else None
    if bundle is not None:
        catalog_ids = [m.movie_id for m in bundle.catalog]
        served: tuple[UserTower, np.ndarray] | None = (bundle.user_tower, bundle.movie_vectors)
    else:
        catalog_ids = [m.movie_id for m in data.movies]
        served = None
    evaluation = evaluate_all(split, catalog_ids, data.summary(), served, baselines, log=log,
                              baseline_users=baseline_users, baseline_items=baseline_items)
    return data, split, evaluation, bundle
