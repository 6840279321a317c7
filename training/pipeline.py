"""`recs train` and `recs evaluate` as functions: data -> split -> model and baselines -> table, report, bundle."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.bundle import Bundle, open_bundle
from core.towers import UserTower
from training.baselines import EASE, ItemKNN, Popularity
from training.config import TrainConfig
from training.evaluation import METRICS, EvalSet, evaluate
from training.movielens import Dataset, load_movielens
from training.split import Split, chronological_split

MODEL_NAME = "two-tower (served)"
BASELINES = ("popularity", "item-kNN", "EASE")


@dataclass(frozen=True)
class Evaluation:
    """Metrics per model on one split, with wall time per model."""

    dataset: dict[str, Any]
    results: dict[str, dict[str, float]]
    seconds: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "metrics": self.results, "seconds": self.seconds}


def served_scorer(
    user_tower: UserTower, vectors: np.ndarray, split: Split
) -> Callable[[np.ndarray], np.ndarray]:
    """Scores of the served path: the numpy user tower on each history, inner product with the vectors."""

    def score(rows: np.ndarray) -> np.ndarray:
        histories = [
            list(zip(split.history(u).tolist(), split.history_ratings(u).tolist(), strict=True)) for u in rows.tolist()
        ]
        return user_tower.encode_batch(histories) @ vectors.T

    return score


def evaluate_all(
    split: Split,
    catalog_ids: Sequence[int],
    dataset: dict[str, Any],
    served: tuple[UserTower, np.ndarray] | None,
    baselines: Sequence[str] = BASELINES,
    ease_lambda: float = 300.0,
    log: Callable[[str], None] = print,
) -> Evaluation:
    data = EvalSet.build(split, catalog_ids)
    results: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}

    def run(name: str, score: Callable[[np.ndarray], np.ndarray]) -> None:
        started = time.perf_counter()
        results[name] = evaluate(score, data)
        seconds[name] = round(time.perf_counter() - started, 2)
        log(f"evaluated {name}: recall@10 {results[name]['recall@10']:.4f} ({seconds[name]:.1f} s)")

    if served is not None:
        run(MODEL_NAME, served_scorer(served[0], served[1], split))
    for name in baselines:
        started = time.perf_counter()
        if name == "popularity":
            model: Popularity | ItemKNN | EASE = Popularity(data.history)
        elif name == "item-kNN":
            model = ItemKNN(data.history)
        elif name == "EASE":
            model = EASE(data.history, lam=ease_lambda)
        else:
            raise ValueError(f"unknown baseline {name!r}")
        fit = time.perf_counter() - started
        run(name, lambda rows, m=model: m.score(data.history[rows]))  # type: ignore[misc]
        seconds[name] = round(seconds[name] + fit, 2)
    return Evaluation(dataset, results, seconds)


def format_table(evaluation: Evaluation) -> str:
    header = f"{'model':<22}" + "".join(f"{m:>12}" for m in METRICS)
    lines = [header, "-" * len(header)]
    for name, row in evaluation.results.items():
        lines.append(f"{name:<22}" + "".join(f"{row[m]:>12.4f}" for m in METRICS))
    return "\n".join(lines)


def run_training(
    data_dir: str | Path,
    out_dir: str | Path,
    config: TrainConfig,
    baselines: Sequence[str] = BASELINES,
    progress: bool | None = None,
    log: Callable[[str], None] = print,
) -> tuple[Bundle, Evaluation]:
    """Load, split, train, evaluate the served path and the baselines, and write the bundle."""
    from training.train import export_bundle, train_two_tower

    data = load_movielens(data_dir)
    log(f"loaded {data.name} ({data.layout} layout): {data.summary()}")
    split = chronological_split(data.ratings)
    trained = train_two_tower(data, split, config, progress=progress, log=log)
    evaluation = evaluate_all(
        split, [m.movie_id for m in trained.catalog], data.summary(), (trained.user_tower, trained.vectors),
        baselines, log=log,
    )
    bundle = export_bundle(trained, out_dir, data.summary(), evaluation.results)
    return bundle, evaluation


def run_evaluation(
    data_dir: str | Path,
    bundle_dir: str | Path | None,
    baselines: Sequence[str] = BASELINES,
    log: Callable[[str], None] = print,
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
    return data, split, evaluate_all(split, catalog_ids, data.summary(), served, baselines, log=log), bundle
