"""SASRec and GRU4Rec (``training.sequential``) on tiny synthetic sequences, through the evaluation of
``recs evaluate``, and the hyper-parameter search (``training.tuning``) on a tiny grid writing its record."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from training.config import TrainConfig
from training.movielens import Ratings
from training.pipeline import evaluate_all, run_training
from training.report import write_report
from training.sequential import ItemSequences, SequentialConfig
from training.split import chronological_split
from training.tuning import grid, tuning_markdown

pytestmark = pytest.mark.slow

N_ITEMS = 120


def chain_ratings(users: int = 80, length: int = 25, seed: int = 0) -> Ratings:
    """Each user walks a cycle of the catalog (item i, then i + 1, ...) from a random start: the next item is
    predictable from the last one, while popularity is nearly flat."""
    rng = np.random.default_rng(seed)
    u, m, t = [], [], []
    for user in range(users):
        start = int(rng.integers(N_ITEMS))
        items = (start + np.arange(length)) % N_ITEMS + 1
        u += [user + 1] * length
        m += items.tolist()
        t += (1_000_000 + 60 * np.arange(length)).tolist()
    n = len(u)
    return Ratings(np.asarray(u, np.int32), np.asarray(m, np.int32), np.full(n, 4.0, np.float32),
                   np.asarray(t, np.int64))


def tiny(model: str, **overrides) -> SequentialConfig:
    values = {"model": model, "max_len": 8, "hidden": 32, "gru_units": 32, "blocks": 1, "heads": 1, "dropout": 0.0,
              "learning_rate": 1e-2, "batch_size": 32, "epochs": 6, "patience": 6, "validation_users": 0.2,
              "jit_compile": False, **overrides}
    return SequentialConfig(**values)


def test_windows_and_inputs_are_right_aligned_next_item_pairs():
    data = ItemSequences(offsets=np.array([0, 7, 7, 10]), items=np.arange(1, 11, dtype=np.int32),
                         n_history=np.array([7, 0, 3]), limit=np.array([6, 0, 3]))
    ends = data.windows(4)
    np.testing.assert_array_equal(ends, [6, 2, 10])  # user 0: targets 2..6 in two windows; user 2: targets 9, 10
    inputs, targets = data.window_batch(ends, 4)
    np.testing.assert_array_equal(inputs, [[2, 3, 4, 5], [0, 0, 0, 1], [0, 0, 8, 9]])
    np.testing.assert_array_equal(targets, [[3, 4, 5, 6], [0, 0, 0, 2], [0, 0, 9, 10]])
    np.testing.assert_array_equal(data.last_items(np.array([0, 1, 2]), data.n_history, 4),
                                  [[4, 5, 6, 7], [0, 0, 0, 0], [0, 8, 9, 10]])


def test_sasrec_and_gru4rec_beat_popularity_on_sequences():
    split = chronological_split(chain_ratings())
    catalog = list(range(1, N_ITEMS + 1))
    # SASRec with cross-entropy over the whole catalog, GRU4Rec over sampled negatives: both losses run
    configs = {"SASRec": tiny("SASRec"), "GRU4Rec": tiny("GRU4Rec", negatives=16)}
    ev = evaluate_all(split, catalog, {"name": "chains"}, None, ("popularity", "SASRec", "GRU4Rec"),
                      log=lambda m: None, sequential=configs)
    pop = ev.results["popularity"]["recall@10"]
    for name in ("SASRec", "GRU4Rec"):
        assert ev.results[name]["recall@10"] > pop + 0.2, (name, ev.results[name], pop)
        info = ev.baselines[name]
        assert info["config"]["model"] == name and not info["config"]["early_stopping"]
        assert info["epochs_run"] == info["best_epoch"] == 6  # no early stopping: every epoch, the last kept
        assert info["validation"]["metrics"]["recall@10"] > 0
        # the column's seconds include the training; training_seconds is rounded to 0.1 s, the column to 0.01 s
        assert ev.seconds[name] >= info["training_seconds"] - 0.05


def make_ml100k(root: Path) -> Path:
    from tests.training.test_cli_any_layout import make_ml100k as make

    return make(root)


def test_the_search_on_a_tiny_grid_is_recorded_and_its_choice_runs(tmp_path: Path):
    data = make_ml100k(tmp_path / "ml-100k")
    spaces = {
        "two-tower": {"temperature": [0.2, 0.5]},
        "EASE": {"ease_lambda": [10.0, 1000.0]},
        "GRU4Rec": {"max_len": [8], "hidden": [16], "gru_units": [16], "jit_compile": [False]},
    }
    config = TrainConfig(epochs=1, batch_size=64, history_length=10, jit_compile=False)
    bundle, evaluation = run_training(data, tmp_path / "bundle", config, ("popularity", "EASE", "GRU4Rec"),
                                      progress=False, log=lambda m: None, tune=True, tuning_spaces=spaces,
                                      tuning_seeds=[5], tuning_max_epochs=2)
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    record = manifest["training"]["tuning"]
    assert set(record) == {"two-tower", "EASE", "GRU4Rec"}
    for name, n in (("two-tower", 2), ("EASE", 2), ("GRU4Rec", 1)):
        rec = record[name]
        assert rec["space"] == spaces[name] and len(rec["trials"]) == n and rec["selection"] == "recall@10"
        assert rec["validation"]["fraction"] == 1.0
        best = max(rec["trials"], key=lambda t: t["validation"]["recall@10"])
        assert rec["chosen"] == best["params"] and 0 <= best["validation"]["recall@10"] <= 1
    assert record["two-tower"]["seeds"] == [5] and record["two-tower"]["max_epochs"] == 2
    assert manifest["training"]["config"]["epochs"] == record["two-tower"]["epochs"]  # the chosen trial's best epoch
    chosen = next(t for t in record["two-tower"]["trials"] if t["params"] == record["two-tower"]["chosen"])
    assert [record["two-tower"]["epochs"]] == chosen["best_epoch"]
    assert "the final model trains `epochs`=" in tuning_markdown(record)
    assert manifest["training"]["config"]["temperature"] == record["two-tower"]["chosen"]["temperature"]
    assert manifest["training"]["config"]["validation_users"] == 0.1  # the final training validates as always
    assert evaluation.baselines["EASE"]["lambda"] == record["EASE"]["chosen"]["ease_lambda"]
    assert evaluation.baselines["GRU4Rec"]["config"]["max_len"] == 8
    gru = record["GRU4Rec"]  # its trial early-stopped within --tune-max-epochs (2); the final model trains its best
    assert gru["max_epochs"] == 2 and gru["epochs"] == gru["trials"][0]["best_epoch"] in (1, 2)
    assert evaluation.baselines["GRU4Rec"]["config"]["epochs"] == gru["epochs"]
    assert not evaluation.baselines["GRU4Rec"]["config"]["early_stopping"]
    assert evaluation.baselines["GRU4Rec"]["epochs_run"] == gru["epochs"]
    written = write_report(tmp_path / "report", evaluation, bundle.model_version, manifest["training"]["history"],
                           manifest["training"])
    assert {p.name for p in written} >= {"tuning.json", "tuning.md", "metrics.md"}
    assert json.loads((tmp_path / "report" / "tuning.json").read_text())["EASE"]["chosen"] == record["EASE"]["chosen"]
    assert "[tuning.md](tuning.md)" in (tmp_path / "report" / "metrics.md").read_text()
    assert "| **0.2** |" in tuning_markdown(record) or "| **0.5** |" in tuning_markdown(record)


def test_grid_is_every_combination_in_order():
    assert grid({"a": [1, 2], "b": ["x", "y"]}) == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"},
                                                  {"a": 2, "b": "y"}]


def test_the_search_markdown_marks_the_choice_and_says_where_a_record_came_from():
    record = {"GRU4Rec": {"space": {"dropout": [0.0, 0.3]}, "base": {"hidden": 64}, "note": "Run on its own.",
                          "trials": [{"params": {"dropout": 0.0}, "validation": {"recall@10": 0.1}, "seconds": 3},
                                     {"params": {"dropout": 0.3}, "validation": {"recall@10": 0.2}, "seconds": 4}],
                          "chosen": {"dropout": 0.3}}}
    text = tuning_markdown(record)
    assert "## GRU4Rec\n\nSpace: `dropout` in {0.0, 0.3}.\n\nRun on its own.\n\nFixed: `hidden`=64." in text
    assert "| **0.3** | 0.2000 |" in text and "| 0.0 | 0.1000 |" in text


def test_the_search_markdown_lists_each_seed_in_the_order_it_ran_and_the_final_epochs():
    # tuning.json is written with sorted keys, so by_seed comes back as "123", "42", "7"
    trial = {"params": {"temperature": 0.2}, "validation": {"recall@10": 0.16},
             "by_seed": {"123": {"recall@10": 0.3}, "42": {"recall@10": 0.1}, "7": {"recall@10": 0.2}},
             "best_epoch": [11, 9, 16], "seconds": 9}
    record = {"two-tower": {"space": {"temperature": [0.2]}, "trials": [trial], "chosen": {"temperature": 0.2},
                            "seeds": [42, 7, 123], "epochs": 12, "max_epochs": 30}}
    text = tuning_markdown(record)
    assert "| 11 / 9 / 16 | 9 | 0.1000 / 0.2000 / 0.3000 |" in text
    assert "(at most 30 epochs); the final model trains `epochs`=12" in text and "(11 / 9 / 16)" in text


def test_sequential_early_stopping_needs_validation_users_and_the_defaults_train_their_chosen_epochs():
    with pytest.raises(ValueError, match="early_stopping needs validation_users"):
        SequentialConfig(early_stopping=True, validation_users=0.0)
    with pytest.raises(ValueError, match="epochs and patience must be at least 1"):
        SequentialConfig(epochs=0)
    from training.sequential import DEFAULTS

    # each model's chosen trial's best epoch in report/tuning.json, trained without early stopping
    record = json.loads((Path(__file__).resolve().parents[2] / "report" / "tuning.json").read_text())
    for name, config in DEFAULTS.items():
        chosen = next(t for t in record[name]["trials"] if t["params"] == record[name]["chosen"])
        assert config.epochs == chosen["best_epoch"] and not config.early_stopping


def test_the_two_tower_default_epochs_are_the_chosen_configurations_mean_best_epoch_in_the_record():
    from training.tuning import TRIAL_SETTINGS, chosen_epochs

    record = json.loads((Path(__file__).resolve().parents[2] / "report" / "tuning.json").read_text())
    default = TrainConfig().to_dict()
    runs = {}  # the default configuration's trials in every two-tower section (three seeds each), each trial once
    for name, section in record.items():  # (a section may list another section's trial again to compare with it)
        for trial in section["trials"] if name.startswith("two-tower") else []:
            settings = {k: v for k, v in {"members": 1, **section.get("base", {}), **trial["params"]}.items()
                        if k not in TRIAL_SETTINGS}  # what the trial trained with, but for seed and epochs (a
            # record from before ensembles trained one model)
            if all(default[k] == v for k, v in settings.items()) and "by_seed" in trial:
                runs[json.dumps(trial["by_seed"], sort_keys=True)] = trial["best_epoch"]
    best_epochs = [e for epochs in runs.values() for e in epochs]
    assert len(best_epochs) >= 3 and TrainConfig().epochs == chosen_epochs(best_epochs)


def test_the_report_says_whether_the_run_trained_with_the_chosen_defaults(tmp_path: Path):
    ev = evaluate_all(chronological_split(chain_ratings(users=20)), list(range(1, N_ITEMS + 1)), {"name": "chains"},
                      None, ("popularity",), log=lambda m: None)
    (tmp_path / "tuning.json").write_text("{}")  # an earlier --tune run's record in the report directory
    defaults = TrainConfig(seed=7).to_dict()  # a run's seed is not a chosen default
    write_report(tmp_path, ev, training={"config": defaults})
    assert "[tuning.md](tuning.md); this run trained the two-tower model with them." in (
        tmp_path / "metrics.md").read_text()
    write_report(tmp_path, ev, training={"config": {**defaults, "learning_rate": 0.01, "epochs": 3}})
    text = (tmp_path / "metrics.md").read_text()
    assert "this run's two-tower configuration differs from them in `epochs`, `learning_rate`." in text
    # the settings line names what differs, so a reader sees the run's values beside the link
    assert "history length 100, temperature 0.2, target window 1, learning rate 0.01," in text


def test_the_report_names_the_commit_it_was_made_at(tmp_path: Path):
    from training.provenance import source_revision

    repo = tmp_path / "checkout"
    repo.mkdir()

    def git(*arguments: str) -> str:
        return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com",
                               *arguments], capture_output=True, text=True, check=True).stdout.strip()

    git("init", "-q")
    (repo / "code.py").write_text("x = 1\n")
    git("add", "code.py")
    git("commit", "-qm", "one")
    head = git("rev-parse", "--short", "HEAD")
    (repo / "scratch.txt").write_text("untracked files are not the code")
    assert source_revision(repo) == {"commit": head, "uncommitted_changes": False}
    (repo / "code.py").write_text("x = 2\n")
    assert source_revision(repo) == {"commit": head, "uncommitted_changes": True}
    assert source_revision(tmp_path / "missing") is None  # git fails: no commit, no error

    ev = evaluate_all(chronological_split(chain_ratings(users=20)), list(range(1, N_ITEMS + 1)), {"name": "chains"},
                      None, ("popularity",), log=lambda m: None)
    run = {"command": "recs train --epochs 3", "source": source_revision(repo), "seconds": 90.0, "cpus": 2}
    write_report(tmp_path / "report", ev, run=run)
    assert (f"Made by `recs train --epochs 3` at commit `{head}` with uncommitted changes in 1.5 minutes of wall "
            "time on 2 CPUs.") in (tmp_path / "report" / "metrics.md").read_text()
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["run"] == run


