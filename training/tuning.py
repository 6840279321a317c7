"""Hyper-parameter selection on validation users only (``recs train --tune``).

The protocol:

* **Validation** (``training.validation``): every user with at least 3 history items holds out the
  latest 10% of their history (at least one item); the models train on the rest of the history
  and rank the full catalog for those users, the training prefix excluded, exactly as the test
  ranks it with the history excluded. The test items are never read. (Early stopping in each trial
  uses the same held-out items.)
* **Selection**: the highest validation Recall@10 (the table's first metric, the one early stopping
  watches); a tie keeps the earlier trial of the grid. NDCG@10 and Recall@100 are recorded.
* **Epochs**: every two-tower trial early-stops on those users' held-out items (at most ``TUNING_MAX_EPOCHS``);
  the final model trains the chosen point's mean best epoch on all of the history, without early stopping
  (``chosen_epochs``; ``TrainConfig.epochs`` is that count for the bundled sample).
* **Spaces**: small grids, below (``SPACES``). A two-tower trial trains once per seed of
  ``TUNING_SEEDS`` and is scored by the seeds' mean figures: on the bundled sample one configuration's
  validation Recall@10 moves as much between seeds as between the grid's points, so a single seed
  would choose by luck. The baselines' trials train from one seed (EASE has none).

The chosen values are the defaults of the code (``TrainConfig``, ``EASE_LAMBDA``,
``training.sequential.DEFAULTS``): a plain ``recs train`` runs them. ``recs train --tune`` runs
the search again, trains and evaluates the chosen configuration, and records the search (space,
every trial's validation figures, the choice) in the bundle's manifest and in ``report/tuning.json``
and ``report/tuning.md``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from training.config import TrainConfig
from training.movielens import Dataset
from training.sequential import SEQUENTIAL
from training.split import Split

EASE_LAMBDA = 500.0
"""EASE's L2 weight, chosen on validation users (``SPACES["EASE"]``): on the bundled sample, validation Recall@10
0.1112 / 0.1135 / 0.1164 / 0.1170 / 0.1205 / 0.1157 for lambda 50 / 100 / 200 / 300 / 500 / 1000 (610 users)."""

TUNING_VALIDATION_USERS = 1.0
"""The share of eligible users that hold out the latest 10% of their history during the search."""
SELECTION_METRIC = "recall@10"
TUNING_SEEDS: tuple[int, ...] = (42, 7, 123)
"""The seeds every two-tower trial trains with (``recs train --tune-seeds``); a trial's figures are their mean. On the
bundled sample, history 100 at temperature 0.15 (what seed 42 alone chose) scored validation Recall@10 0.1710 / 0.1605
/ 0.1581 with these seeds, a spread as wide as the differences between the grid's points; the means chose temperature
0.2 (report/tuning.md)."""

TUNING_MAX_EPOCHS = 30
"""The most epochs a two-tower trial trains (``recs train --tune-max-epochs``); each early-stops on the search's
validation users (``TrainConfig.patience``) and records its best epoch."""

SEQUENTIAL_MAX_EPOCHS = 200
"""The most epochs a SASRec or GRU4Rec trial trains unless ``recs train --tune-max-epochs`` says (it then caps every
model's trials), early-stopping on the search's validation users; the final model trains the chosen trial's best
epoch."""
TRIAL_SETTINGS = ("seed", "epochs", "early_stopping", "validation_users")
"""What the search sets on each two-tower trial itself, so none is a search-space key (``--tune-space``); SASRec and
GRU4Rec have the same but ``seed`` (:data:`SEQUENTIAL_TRIAL_SETTINGS`)."""
SEQUENTIAL_TRIAL_SETTINGS = ("epochs", "early_stopping", "validation_users")
"""What the search sets on each SASRec and GRU4Rec trial itself (their trials train from the one seed of
``tune_baselines``), so none is a search-space key."""

SPACES: dict[str, dict[str, list[Any]]] = {
    "two-tower": {
        "history_length": [50, 100],
        "temperature": [0.1, 0.15, 0.2],
    },
    "EASE": {"ease_lambda": [50.0, 100.0, 200.0, 300.0, 500.0, 1000.0]},
    "SASRec": {"blocks": [1, 2], "dropout": [0.2, 0.5]},
    "GRU4Rec": {"gru_units": [64, 128], "dropout": [0.0, 0.3]},
}
"""The search spaces: every combination of the listed values (a grid) is a trial. The two-tower's target window is
not searched: next-item targets (1) beat a window of 5 at both temperatures of the first search (report/tuning.md).
Nor is its user tower: the attention tower lost on validation and the GRU tower misses the warm-latency budget
(docs/model.md, "Selection on validation only"), so ``--user-tower attention|gru`` is there to try, and ``recs train
--tune --tune-space two-tower.user_tower=...`` (``tuning_spaces={"two-tower": {...}}`` of ``run_training``) adds it
to the grid."""


def grid(space: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the space's values, in order (the last key varies fastest)."""
    keys = list(space)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(space[k] for k in keys))]


def _select(trials: list[dict[str, Any]]) -> dict[str, Any]:
    scored = [t for t in trials if t["validation"]]
    if not scored:
        raise ValueError("no trial has validation figures (no validation users?)")
    return max(scored, key=lambda t: t["validation"][SELECTION_METRIC])  # max keeps the first of equals


def _record(space: Mapping[str, Sequence[Any]], trials: list[dict[str, Any]], base: dict[str, Any],
            validation: dict[str, Any]) -> dict[str, Any]:
    """The search's record; for trained models (trials with a ``best_epoch``, one or one per seed) also ``epochs``,
    the count the final model trains (``chosen_epochs`` of the chosen trial)."""
    best = _select(trials)
    record = {"space": {k: list(v) for k, v in space.items()}, "base": base, "validation": validation,
              "selection": SELECTION_METRIC, "trials": trials, "chosen": best["params"]}
    if "best_epoch" in best:
        epochs = best["best_epoch"]
        record["epochs"] = chosen_epochs(epochs if isinstance(epochs, list) else [epochs])
    return record


def _mean_figures(by_seed: Sequence[Mapping[str, float]]) -> dict[str, float]:
    keys = [k for k in by_seed[0] if all(k in f for f in by_seed)]
    return {k: float(np.mean([f[k] for f in by_seed])) for k in keys}


def check_seeds(seeds: Sequence[int], what: str = "tuning seeds") -> list[int]:
    """Seeds (``what``: of the search, or ``--eval-seeds``) as a list of integers; ``ValueError`` unless there is at
    least one and they are distinct."""
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"{what} must be distinct and at least one, got {seeds}")
    return seeds


def check_space(model: str, keys: Iterable[str], max_epochs: int | None = None) -> None:
    """``ValueError`` naming ``model.key`` for a search-space key the search sets on each trial itself (the
    two-tower's ``TRIAL_SETTINGS``, SASRec's and GRU4Rec's ``SEQUENTIAL_TRIAL_SETTINGS``); ``max_epochs``, when
    known, is named as the trials' cap. ``--tune-space`` checks at parse time, the searches for library callers."""
    fixed = TRIAL_SETTINGS if model == "two-tower" else SEQUENTIAL_TRIAL_SETTINGS if model in SEQUENTIAL else ()
    searched = [k for k in fixed if k in set(keys)]
    if not searched:
        return
    if searched[0] == "seed":
        raise ValueError(f"{model}.seed is not searched: the seed is not a hyper-parameter; every trial is averaged "
                         "over the seeds of --tune-seeds")
    cap = "--tune-max-epochs" + ("" if max_epochs is None else f", {max_epochs}")
    final = "the chosen point's mean best epoch" if model == "two-tower" else "the chosen trial's best epoch"
    raise ValueError(f"{model}.{searched[0]} is not searched: every trial early-stops on all users' held-out items "
                     f"(at most {cap}) and the final model trains {final}")


def chosen_epochs(best_epochs: Sequence[int]) -> int:
    """The epoch count the final model trains: the mean of the chosen point's best epochs (one per seed), rounded
    half up. The final training cannot early-stop as reliably itself: it holds out only ``validation_users`` of the
    users (``TrainConfig.early_stopping``)."""
    if not best_epochs or min(best_epochs) < 1:
        raise ValueError(f"best epochs must be at least 1, got {list(best_epochs)}")
    return int(np.floor(float(np.mean(best_epochs)) + 0.5))


def tune_two_tower(data: Dataset, split: Split, base: TrainConfig, space: Mapping[str, Sequence[Any]] | None = None,
                   log: Callable[[str], None] = print, seeds: Sequence[int] = TUNING_SEEDS,
                   max_epochs: int = TUNING_MAX_EPOCHS) -> dict[str, Any]:
    """Train one two-tower model per point of ``space`` and seed on the tuning validation split, each early-stopping
    there within ``max_epochs``, and record each point's served-path validation figures, the mean over ``seeds``
    (each seed's are kept under ``by_seed``), and its best epochs. ``chosen`` is the best point by mean validation
    Recall@10; ``epochs`` the epoch count the final model trains (``chosen_epochs`` of the chosen point)."""
    from training.train import train_two_tower

    space = SPACES["two-tower"] if space is None else space
    check_space("two-tower", space, max_epochs)
    if max_epochs < 1:
        raise ValueError(f"tuning max epochs must be at least 1, got {max_epochs}")
    seeds = check_seeds(seeds)
    trials: list[dict[str, Any]] = []
    validation: dict[str, Any] = {}
    points = grid(space)
    for i, params in enumerate(points, 1):
        by_seed: dict[str, dict[str, float]] = {}
        best_epochs: list[int] = []
        started = time.perf_counter()
        for seed in seeds:
            config = replace(base, **params, seed=seed, validation_users=TUNING_VALIDATION_USERS, epochs=max_epochs,
                             early_stopping=True)
            trained = train_two_tower(data, split, config, progress=False, log=lambda m: None)
            by_seed[str(seed)] = dict(trained.info["validation"]["metrics"])
            validation = {k: v for k, v in trained.info["validation"].items() if k != "metrics"}
            best_epochs.append(int(trained.info["best_epoch"]))
            del trained
        figures = _mean_figures(list(by_seed.values()))
        trials.append({"params": params, "validation": figures, "by_seed": by_seed, "best_epoch": best_epochs,
                       "seconds": round(time.perf_counter() - started, 1)})
        spread = ", ".join(f"{f.get('recall@10', float('nan')):.4f}" for f in by_seed.values())
        log(f"tuning two-tower {i}/{len(points)} {params}: validation recall@10 "
            f"{figures.get('recall@10', float('nan')):.4f} (mean of seeds {seeds}: {spread})")
    base_dict = {k: v for k, v in base.to_dict().items() if k not in space and k not in TRIAL_SETTINGS}
    record = _record(space, trials, base_dict, validation)
    record["seeds"] = seeds
    record["max_epochs"] = max_epochs
    log(f"the final model trains {record['epochs']} epochs (the chosen point's mean best epoch)")
    return record


def tune_baselines(split: Split, catalog_ids: Sequence[int] | np.ndarray, names: Sequence[str], seed: int = 42,
                   spaces: Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
                   sequential: Mapping[str, Any] | None = None, baseline_items: int | None = None,
                   log: Callable[[str], None] = print, max_epochs: int | None = None) -> dict[str, dict[str, Any]]:
    """The baselines with hyper-parameters (EASE, SASRec, GRU4Rec among ``names``) on the same validation
    users: EASE is fitted on the training prefixes; SASRec and GRU4Rec train on them with early stopping on
    the held-out items, at most ``max_epochs`` (default :data:`SEQUENTIAL_MAX_EPOCHS`). Returns one record per
    baseline (space, trials, ``chosen``; for SASRec and GRU4Rec ``epochs``, the chosen trial's best epoch, and
    ``max_epochs``)."""
    from training.baselines import DEFAULT_MAX_ITEMS, EASE, Gram
    from training.sequential import DEFAULTS, train_sequential
    from training.validation import validation_evalset, validation_metrics, validation_split

    spaces = {**SPACES, **(spaces or {})}
    cap = SEQUENTIAL_MAX_EPOCHS if max_epochs is None else max_epochs
    if cap < 1:
        raise ValueError(f"tuning max epochs must be at least 1, got {cap}")
    for name in (n for n in SEQUENTIAL if n in names):
        check_space(name, spaces[name], cap)
    val = validation_split(split.n_history, TUNING_VALIDATION_USERS, np.random.default_rng(seed))
    data = validation_evalset(split, val, catalog_ids)
    records: dict[str, dict[str, Any]] = {}
    if "EASE" in names:
        space = spaces["EASE"]
        gram = Gram(data.history, baseline_items or DEFAULT_MAX_ITEMS)
        trials: list[dict[str, Any]] = []
        for params in grid(space):
            started = time.perf_counter()
            model = EASE(gram=gram, lam=float(params["ease_lambda"]))
            figures = validation_metrics(lambda rows, m=model: m.score(data.history[rows]), data)  # type: ignore[misc]
            trials.append({"params": params, "validation": figures, "seconds": round(time.perf_counter() - started, 1)})
            log(f"tuning EASE {params}: validation recall@10 {figures.get('recall@10', float('nan')):.4f}")
            del model
        records["EASE"] = _record(space, trials, {}, val.to_dict())
        del gram
    for name in SEQUENTIAL:
        if name not in names:
            continue
        space = spaces[name]
        base = (sequential or {}).get(name, DEFAULTS[name])
        trials = []
        for params in grid(space):  # early stopping on all users' held-out items, at most ``cap`` epochs
            config = replace(base, **params, epochs=cap, early_stopping=True)
            trained = train_sequential(split, catalog_ids, config, validation=val, log=lambda m: None,
                                       progress=False)
            info = trained.info
            trials.append({"params": params, "validation": info["validation"]["metrics"],
                           "best_epoch": info["best_epoch"], "epochs_run": info["epochs_run"],
                           "seconds": info["seconds"]})
            log(f"tuning {name} {params}: validation recall@10 "
                f"{info['validation']['metrics'].get('recall@10', float('nan')):.4f} (best epoch {info['best_epoch']}, "
                f"{info['seconds']:.0f} s)")
            del trained
        base_dict = {k: v for k, v in base.to_dict().items() if k not in space and k not in SEQUENTIAL_TRIAL_SETTINGS}
        records[name] = _record(space, trials, base_dict, val.to_dict())
        records[name]["max_epochs"] = cap
    return records


def tuning_markdown(record: Mapping[str, Any]) -> str:
    """The search as Markdown: protocol, each model's space, trials (validation figures) and choice."""
    lines = [
        "# Hyper-parameter search (validation users only)",
        "",
        "Every user with at least 3 history items holds out the latest 10% of their history; each trial trains "
        "on the rest and ranks the full catalog for those users (training prefix excluded). The test items are "
        f"never read. Selection: the highest validation {SELECTION_METRIC} (for a trial run with several seeds, their "
        "mean; a tie keeps the earlier trial).",
    ]
    for model, rec in record.items():
        space = rec["space"]
        keys = list(space)
        lines += ["", f"## {model}", "",
                  "Space: " + "; ".join(f"`{k}` in {{{', '.join(str(v) for v in vals)}}}" for k, vals in space.items())
                  + ".", ""]
        if rec.get("note"):
            lines += [str(rec["note"]), ""]
        if rec.get("base"):
            lines += ["Fixed: " + ", ".join(f"`{k}`={v}" for k, v in rec["base"].items()) + ".", ""]
        seeds = rec.get("seeds")
        if seeds:
            lines += [f"Each trial trained with seeds {', '.join(str(s) for s in seeds)}: its figures are their mean; "
                      "the last column gives each seed's validation Recall@10 and the best epochs are listed per seed.",
                      ""]
        by_seed_head, by_seed_rule = (" | recall@10 by seed", "---:|") if seeds else ("", "")
        lines += ["| " + " | ".join(keys) + " | val recall@10 | val ndcg@10 | val recall@100 | best epoch | seconds"
                  + by_seed_head + " |", "|" + "---|" * len(keys) + "---:|---:|---:|---:|---:|" + by_seed_rule]
        for t in rec["trials"]:
            v = t["validation"]
            mark = "**" if t["params"] == rec["chosen"] else ""
            cells = " | ".join(f"{mark}{t['params'][k]}{mark}" for k in keys)
            epochs = t.get("best_epoch", "")
            epochs = " / ".join(str(e) for e in epochs) if isinstance(epochs, list) else epochs
            runs = t.get("by_seed", {})  # in the order of ``seeds`` (a JSON written with sorted keys reorders them)
            by_seed = (" | " + " / ".join(f"{runs.get(str(s), {}).get('recall@10', 0):.4f}" for s in seeds)
                       if seeds else "")
            lines.append(f"| {cells} | {v.get('recall@10', 0):.4f} | {v.get('ndcg@10', 0):.4f} | "
                         f"{v.get('recall@100', 0):.4f} | {epochs} | {t.get('seconds', 0):.0f}{by_seed} |")
        lines += ["", "Chosen: " + ", ".join(f"`{k}`={v}" for k, v in rec["chosen"].items()) + "."]
        if "epochs" in rec:
            best: Mapping[str, Any] = next((t for t in rec["trials"] if t["params"] == rec["chosen"]), {})
            epochs = best.get("best_epoch", [])
            epochs = epochs if isinstance(epochs, list) else [epochs]
            which = "the chosen trial's best epoch" if len(epochs) == 1 else "the mean of the chosen runs' best epochs"
            lines += ["", f"Epochs: each trial early-stopped on the validation users (at most {rec.get('max_epochs')} "
                      f"epochs); the final model trains `epochs`={rec['epochs']}, {which} "
                      f"({' / '.join(str(e) for e in epochs)}), without early stopping."]
    return "\n".join(lines) + "\n"
