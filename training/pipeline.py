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
from core.towers import UserEncoder
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
    seeds: dict[str, dict[str, Any]] = field(default_factory=dict)
    """With ``eval_seeds``, per model that trains (the two-tower, SASRec, GRU4Rec): its runs one per seed
    (:func:`over_seeds`; the served model's also on the baselines' ``sample``, as ``"sample"``); its row in
    ``results`` stays the run at its own seed. Popularity, item-kNN and EASE are deterministic: one run is every
    seed's."""

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "metrics": self.results, "seconds": self.seconds, "ci95": self.ci95,
                "users": self.users, "sample": self.sample, "baselines": self.baselines, "seeds": self.seeds}

    def seed_means(self) -> dict[str, dict[str, float]]:
        """Every model's metrics over the seeds: the mean of its runs when it trained once per seed, else its one
        run (deterministic models, or no ``eval_seeds``)."""
        return {name: dict(self.seeds[name]["mean"]) if name in self.seeds else dict(row)
                for name, row in self.results.items()}

    def like_for_like(self, seed_means: bool = False) -> dict[str, dict[str, float]]:
        """Every model's figures (``seed_means``: over the seeds) on the users the baselines were scored on: when
        they ran on a ``sample``, the served model's figures on that sample; what :func:`margins` compares."""
        table = self.seed_means() if seed_means else {name: dict(row) for name, row in self.results.items()}
        served = (self.sample or {}).get("served")
        if served and MODEL_NAME in table:
            runs = self.seeds.get(MODEL_NAME)
            table[MODEL_NAME] = dict(runs["sample"]["mean"] if seed_means and runs else served["metrics"])
        return table

    @property
    def seed_list(self) -> list[int]:
        """The ``eval_seeds`` the models trained with, in order (empty without)."""
        return list(next(iter(self.seeds.values()))["seeds"]) if self.seeds else []

    def leads(self) -> list[tuple[bool, dict[str, dict[str, Any]]]]:
        """The served model's :func:`margins` on the single runs, then (with ``eval_seeds``) on the seed means, each
        as ``(seed_means, margins)``, like for like (:meth:`like_for_like`); what the table and the report print."""
        return [(means, margins(self.like_for_like(means))) for means in (False, True) if self.seeds or not means]

    @property
    def served_on_sample(self) -> bool:
        """Whether the baselines ran on a sample of the users, so the margins use the served model's figures on it."""
        return bool((self.sample or {}).get("served"))


def check_eval_seeds(eval_seeds: Sequence[int], served: bool, baselines: Sequence[str]) -> list[int]:
    """``eval_seeds`` as distinct integers; ``ValueError`` naming ``--eval-seeds`` unless some model of the run trains
    (a ``served`` bundle or configuration, SASRec, GRU4Rec: popularity, item-kNN and EASE are deterministic)."""
    from training.tuning import check_seeds

    seeds = check_seeds(eval_seeds, "--eval-seeds")
    if not served and not set(baselines) & set(SEQUENTIAL):
        raise ValueError("--eval-seeds: no model in this run trains (popularity, item-kNN and EASE are "
                         "deterministic); evaluate a bundle or add SASRec or GRU4Rec to --baselines")
    return seeds


def over_seeds(runs: dict[int, dict[str, float]]) -> dict[str, Any]:
    """One model's runs by seed -> ``{"seeds", "by_seed", "mean", "sd"}`` (sample standard deviation over the
    seeds, 0 for a single seed; seeds as strings in ``by_seed``). ``seeds`` keeps the order: a JSON file written with
    sorted keys reorders ``by_seed``."""
    seeds = list(runs)
    values = {m: np.array([runs[s][m] for s in seeds], dtype=np.float64) for m in runs[seeds[0]]}
    return {"seeds": seeds, "by_seed": {str(s): dict(runs[s]) for s in seeds},
            "mean": {m: float(v.mean()) for m, v in values.items()},
            "sd": {m: float(v.std(ddof=1)) if v.shape[0] > 1 else 0.0 for m, v in values.items()}}


def margins(means: dict[str, dict[str, float]], model: str = MODEL_NAME) -> dict[str, dict[str, Any]]:
    """Per metric, ``model`` against the best of the other models (popularity aside: the floor, not a peer):
    ``{"peer", "peer_value", "value", "relative"}``, relative = value / peer_value - 1 (a metric whose best peer
    scores 0 is left out). Pass figures on the same users (:meth:`Evaluation.like_for_like`)."""
    out: dict[str, dict[str, Any]] = {}
    peers = {n: row for n, row in means.items() if n not in (model, "popularity")}
    if model not in means or not peers:
        return out
    for metric in METRICS:
        peer = max(peers, key=lambda n: peers[n][metric])
        best, value = peers[peer][metric], means[model][metric]
        if best > 0:
            out[metric] = {"peer": peer, "peer_value": best, "value": value, "relative": value / best - 1}
    return out


def evaluate_all(
    split: Split,
    catalog_ids: Sequence[int],
    dataset: dict[str, Any],
    served: tuple[UserEncoder, np.ndarray] | None,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    ease_lambda: float | None = None,
    log: Callable[[str], None] = print,
    baseline_users: int | None = DEFAULT_BASELINE_USERS,
    baseline_items: int = DEFAULT_MAX_ITEMS,
    seed: int = 0,
    progress: bool | None = None,
    sequential: dict[str, SequentialConfig] | None = None,
    eval_seeds: Sequence[int] = (),
    retrain: Callable[[int], tuple[UserEncoder, np.ndarray]] | None = None,
    served_seed: int | None = None,
) -> Evaluation:
    """The served path on every test user; the baselines on every test user too, or, above
    ``baseline_users`` of them, on a sample drawn with ``seed`` (the served path is also reported on it).

    Hyper-parameters default to the ones chosen on validation users (``training.tuning``): EASE's
    ``ease_lambda``, SASRec's and GRU4Rec's configurations (``sequential``, by name). SASRec and GRU4Rec
    train here, on the history minus the validation hold-out (``training.sequential``); their
    ``seconds`` include the training.

    With ``eval_seeds``, every model that trains also trains once per seed (the served model through
    ``retrain(seed)``, which returns its user tower and catalog vectors; its own run, at ``served_seed``, is
    reused) and is scored on the same users; ``Evaluation.seeds`` holds the runs. The table's rows and seconds
    stay each model's run at its own seed."""
    from training.tuning import EASE_LAMBDA

    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(BASELINES)}")
    lam = EASE_LAMBDA if ease_lambda is None else ease_lambda
    configs = {**SEQUENTIAL_DEFAULTS, **(sequential or {})}
    if eval_seeds:
        eval_seeds = check_eval_seeds(eval_seeds, served is not None, baselines)
        if served is not None and retrain is None:
            raise ValueError("eval_seeds needs retrain(seed) for the served model")
    seed_runs: dict[str, dict[str, Any]] = {}
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

    def over(name: str, own: int | None, users: np.ndarray,
             scorer: Callable[[int], Callable[[np.ndarray], np.ndarray]],
             on_sample: dict[str, float] | None = None) -> None:
        """``name`` once per seed of ``eval_seeds`` (its own run reused at ``own``) -> ``seed_runs[name]``; with
        ``on_sample`` (its own run's figures on the baselines' sample; ``users`` is everyone), also on the sample."""
        runs: dict[int, dict[str, float]] = {}
        sampled: dict[int, dict[str, float]] = {}
        for s in eval_seeds:
            if s == own:
                runs[s] = results[name]
                if on_sample is not None:
                    sampled[s] = on_sample
                continue
            per_user = per_user_metrics(scorer(s), data, users, progress=progress,
                                        label=f"evaluating {name}, seed {s}")  # the model is freed here
            runs[s] = summarize(per_user)[0]
            if on_sample is not None:
                sampled[s] = summarize(per_user, np.searchsorted(users, sample_rows))[0]
            log(f"evaluated {name} trained with seed {s}: recall@10 {runs[s]['recall@10']:.4f}")
        seed_runs[name] = over_seeds(runs)
        if on_sample is not None:
            seed_runs[name]["sample"] = over_seeds(sampled)

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
        if eval_seeds and retrain is not None:
            over(MODEL_NAME, served_seed, everyone, lambda s: served_scorer(*retrain(s), split),
                 sample["served"]["metrics"] if sample is not None else None)
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
            if eval_seeds:
                def fit_seed(seed: int, config: SequentialConfig = configs[name]) -> Callable[[np.ndarray], np.ndarray]:
                    return train_sequential(split, data.catalog_ids, replace(config, seed=seed), log=log,
                                            progress=progress).score_users

                over(name, configs[name].seed, sample_rows, fit_seed)
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
    return Evaluation(dataset, results, seconds, ci95, counts, sample, info, seed_runs)


def format_table(evaluation: Evaluation) -> str:
    """The table ``recs train`` and ``recs evaluate`` print: each model's run, then (with ``eval_seeds``) the seed
    means and standard deviations, then the served model's margin over its best peer per metric."""
    header = f"{'model':<22}" + "".join(f"{m:>12}" for m in METRICS) + f"{'seconds':>10}"
    lines = [header, "-" * len(header)]
    for name, row in evaluation.results.items():
        lines.append(f"{name:<22}" + "".join(f"{row[m]:>12.4f}" for m in METRICS)
                     + f"{evaluation.seconds.get(name, 0.0):>10.1f}")
    if evaluation.seeds:
        seeds = ", ".join(str(s) for s in evaluation.seed_list)
        header = f"{'model':<22}" + "".join(f"{m:>19}" for m in METRICS)
        lines += ["", f"over seeds {seeds}: mean +/- standard deviation (deterministic models: their one run)",
                  header, "-" * len(header)]
        for name, row in evaluation.results.items():
            runs = evaluation.seeds.get(name)
            cells = (f"{runs['mean'][m]:.4f} +/- {runs['sd'][m]:.4f}" if runs else f"{row[m]:.4f}" for m in METRICS)
            lines.append(f"{name:<22}" + "".join(f"{c:>19}" for c in cells))
    sampled = " on the baselines' sample of users" if evaluation.served_on_sample else ""
    for means, lead in evaluation.leads():
        if lead:
            lines += ["", f"{MODEL_NAME} against the best peer{' (seed means)' if means else ''}{sampled}: "
                      + "; ".join(f"{m} {v['relative']:+.1%} ({v['peer']})" for m, v in lead.items())]
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
    eval_seeds: Sequence[int] = (),
) -> tuple[Bundle, Evaluation]:
    """Load, split, train, evaluate the served path and the baselines, and write the bundle.

    ``stages`` (if given) records the wall time and peak memory of each stage: ``load``, (``tuning``),
    ``examples``, ``training``, ``evaluation``, ``export``. With ``tune``, the hyper-parameters of the
    two-tower model and of the baselines that have some are first chosen on validation users
    (``training.tuning``; ``tuning_spaces`` replaces some of its spaces, ``tuning_seeds`` the seeds each two-tower
    trial is averaged over, ``tuning_max_epochs`` the most epochs any trial early-stops within: default 30 for the
    two-tower, 200 for SASRec and GRU4Rec), the chosen ones train
    (from ``config.seed``; the two-tower for the chosen point's mean best epoch) and are evaluated, and the search is
    recorded in the manifest (``training.tuning``). With ``eval_seeds``, the two-tower configuration and the
    sequential baselines also train once per seed for the evaluation's seed means (:func:`evaluate_all`); only the
    ``config.seed`` model is exported (the ``evaluation`` stage includes those trainings).
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
                                         spaces=spaces, baseline_items=baseline_items, log=log,
                                         max_epochs=tuning_max_epochs))
        if "EASE" in tuning:
            ease_lambda = float(tuning["EASE"]["chosen"]["ease_lambda"])
        for name in SEQUENTIAL:
            if name in tuning:
                sequential[name] = replace(SEQUENTIAL_DEFAULTS[name],
                                           **{**tuning[name]["chosen"], "epochs": tuning[name]["epochs"]})
        log("chosen on validation: " + "; ".join(f"{k}: {v['chosen']}" for k, v in tuning.items()))
    trained = train_two_tower(data, split, config, progress=progress, log=log, stages=stage)
    trained.keras_towers = None  # the Keras layers are not exported; free them before the evaluation's trainings
    catalog_ids = [m.movie_id for m in trained.catalog]
    with stage("evaluation"):
        evaluation = evaluate_all(
            split, catalog_ids, summary, (trained.user_tower, trained.vectors),
            baselines, ease_lambda=ease_lambda, log=log, baseline_users=baseline_users, baseline_items=baseline_items,
            seed=config.seed, progress=progress, sequential=sequential, eval_seeds=eval_seeds,
            retrain=retrainer(data, split, config, catalog_ids, progress, log), served_seed=config.seed,
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
    eval_seeds: Sequence[int] = (),
    progress: bool | None = None,
) -> tuple[Dataset, Split, Evaluation, Bundle | None]:
    """Evaluate a bundle (``None``: baselines only) and the baselines on ``data_dir``'s split (the returned data set
    holds its movies; its ratings are in the split). With ``eval_seeds``,
    the bundle's recorded training configuration retrains once per seed (its own seed's run is the bundle) and the
    sequential baselines train once per seed (:func:`evaluate_all`)."""
    if eval_seeds:  # refused before the data loads
        eval_seeds = check_eval_seeds(eval_seeds, bundle_dir is not None, baselines)
    data = load_movielens(data_dir)
    summary = data.summary()  # counts the ratings, so before they are dropped
    split = chronological_split(data.ratings)
    data = replace(data, ratings=Ratings.empty())  # the split holds the interactions from here on
    bundle = open_bundle(bundle_dir) if bundle_dir else None
    retrain = None
    served_seed = None
    if bundle is not None:
        catalog_ids = [m.movie_id for m in bundle.catalog]
        served: tuple[UserEncoder, np.ndarray] | None = (bundle.user_tower, bundle.movie_vectors)
        if eval_seeds:
            config = bundle_config(bundle)
            retrain, served_seed = retrainer(data, split, config, catalog_ids, progress, log), config.seed
    else:
        catalog_ids = [m.movie_id for m in data.movies]
        served = None
    evaluation = evaluate_all(split, catalog_ids, summary, served, baselines, log=log,
                              baseline_users=baseline_users, baseline_items=baseline_items, progress=progress,
                              eval_seeds=eval_seeds, retrain=retrain, served_seed=served_seed)
    return data, split, evaluation, bundle


def bundle_config(bundle: Bundle) -> TrainConfig:
    """The training configuration a bundle's manifest records (``training.config``), to retrain it
    (``--eval-seeds``); ``BundleError`` if it records none, or not every setting of this version's ``TrainConfig``
    (a bundle of an older version: today's default for a missing setting may not be what it trained with), or a
    setting this version does not know."""
    from dataclasses import fields

    from core.errors import BundleError

    recorded = (bundle.manifest.raw.get("training") or {}).get("config")
    if not isinstance(recorded, dict):
        raise BundleError("--eval-seeds retrains the bundle's configuration, but its manifest records none "
                          "(training.config)")
    known = {f.name for f in fields(TrainConfig)}
    unknown, missing = sorted(set(recorded) - known), sorted(known - set(recorded))
    if unknown or missing:
        raise BundleError("--eval-seeds retrains the bundle's configuration, but this version cannot rebuild it: "
                          + "; ".join(f"{what}: {', '.join(names)}" for what, names in
                                      (("settings it does not know", unknown), ("settings it lacks", missing)) if names)
                          + " (retrain the bundle with this version's recs train)")
    try:
        return TrainConfig(**recorded)
    except ValueError as exc:
        raise BundleError(f"--eval-seeds: the bundle's training configuration is not valid here: {exc}") from exc


def retrainer(
    data: Dataset, split: Split, config: TrainConfig, catalog_ids: Sequence[int], progress: bool | None,
    log: Callable[[str], None],
) -> Callable[[int], tuple[UserEncoder, np.ndarray]]:
    """``retrain(seed)``: ``config`` trained again from ``seed`` on ``split`` -> its numpy user tower and catalog
    vectors, in ``catalog_ids``' order (the evaluation's columns). ``ValueError`` at once, before any training, when
    ``data``'s catalog (the one a training exports) is not ``catalog_ids`` (a bundle of another data set)."""
    from training.train import train_two_tower

    if [m.movie_id for m in data.movies] != [int(i) for i in catalog_ids]:
        raise ValueError("--eval-seeds: the bundle's catalog is not --data's movies (a bundle of another data set?), "
                         "so its configuration cannot retrain on this data")

    def retrain(seed: int) -> tuple[UserEncoder, np.ndarray]:
        other = train_two_tower(data, split, replace(config, seed=seed), progress=progress, log=log)
        return other.user_tower, other.vectors

    return retrain
